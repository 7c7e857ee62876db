//! The log-filter convention of every sealpod binary: the filter (tracing `EnvFilter` syntax,
//! e.g. `info,kube=warn`) comes from `SEALPOD_LOG` (`sealpod up`: `SEALPOD_UP_LOG`), else from
//! `RUST_LOG`, else from the binary's default. An invalid filter is reported on stderr and the
//! default used, so a typo never silences a component. The API server takes its filter as the
//! flag `--log` (variable `SEALPOD_LOG`, default `info`) and checks it the same way ([`parse`]).

use tracing_subscriber::EnvFilter;

/// The variable every platform binary reads its log filter from.
pub const LOG_ENV: &str = "SEALPOD_LOG";

/// The filter from `var`, else `RUST_LOG`, else `default`.
pub fn filter(var: &str, default: &str) -> EnvFilter {
    for name in [var, "RUST_LOG"] {
        if let Ok(text) = std::env::var(name) {
            return parse(name, &text, default);
        }
    }
    EnvFilter::new(default)
}

/// The filter `text` (given by `source`, a flag or variable), or `default` when it is invalid.
pub fn parse(source: &str, text: &str, default: &str) -> EnvFilter {
    EnvFilter::try_new(text).unwrap_or_else(|e| {
        eprintln!("{source}: invalid log filter ({e}); using {default:?}");
        EnvFilter::new(default)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_filter_falls_back_to_the_default() {
        assert_eq!(
            parse("--log", "debug,kube=warn", "info").to_string(),
            "kube=warn,debug"
        );
        assert_eq!(parse("--log", "kube=[", "info").to_string(), "info");
    }
}
