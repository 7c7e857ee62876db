//! The shutdown signal of every sealpod binary: the first SIGTERM (how Kubernetes and `sealpod
//! up` stop a process) or SIGINT (Ctrl-C in a terminal).

/// Resolves on the first SIGTERM or SIGINT. Where SIGTERM cannot be listened for, Ctrl-C alone
/// ends it.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
