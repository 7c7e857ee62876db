//! The log-filter convention of every sealpod binary: the filter (tracing `EnvFilter` syntax,
//! e.g. `info,kube=warn`) comes from `SEALPOD_LOG` (`sealpod up`: `SEALPOD_UP_LOG`), else from
//! `RUST_LOG`, else from the binary's default. An invalid filter is reported on stderr and the
//! default used, so a typo never silences a component.

use tracing_subscriber::EnvFilter;

/// The variable every platform binary reads its log filter from.
pub const LOG_ENV: &str = "SEALPOD_LOG";

/// The filter from `var`, else `RUST_LOG`, else `default`.
pub fn filter(var: &str, default: &str) -> EnvFilter {
    for name in [var, "RUST_LOG"] {
        if let Ok(text) = std::env::var(name) {
            match EnvFilter::try_new(&text) {
                Ok(f) => return f,
                Err(e) => eprintln!("{name}: invalid log filter ({e}); using {default:?}"),
            }
            break;
        }
    }
    EnvFilter::new(default)
}
