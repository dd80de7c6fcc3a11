//! Structured JSON logs in the shape Lambda's JSON log format expects.
//!
//! One JSON object per line with `timestamp`, `level`, `message` and the event's fields
//! flattened beside them, plus the fields of the enclosing spans (the step, secret ARN, version,
//! engine, host), so CloudWatch Logs Insights can filter on any of them. The level comes from
//! `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging configuration) or `RUST_LOG`, default INFO.
//!
//! Secrets cannot reach these logs through formatting: passwords and tokens are
//! `SecretString`s, whose `Debug` and `Display` print `<redacted>`.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| level.to_ascii_lowercase())
        .filter(|level| ["trace", "debug", "info", "warn", "error"].contains(&level.as_str()));
    let default = match level {
        Some(level) => format!("warn,dbcreds={level},{crates}", crates = our_crates(&level)),
        None => format!("warn,{}", our_crates("info")),
    };
    install(filter(std::env::var("RUST_LOG").ok(), &default), std::io::stdout);
}

/// For a command-line tool (the `dbcreds` operator CLI), whose stdout is its output and whose
/// own messages are text: the same JSON lines, on stderr, only when asked for. `level` is for our
/// crates (`None`: no logs at all); dependencies log errors only, so the SDK's chatter (a missing
/// instance metadata service on a laptop) stays out of the operator's way. `RUST_LOG` wins.
pub fn init_cli_logging(level: Option<&str>) {
    let default = match level {
        Some(level) => format!("error,{}", our_crates(level)),
        None => "off".to_owned(),
    };
    install(filter(std::env::var("RUST_LOG").ok(), &default), std::io::stderr);
}

/// `RUST_LOG` when it is set and readable, else `default`. The directives are targets and levels
/// (`warn,dbcreds_db=debug`), read by tracing-subscriber's `Targets` rather than its `EnvFilter`:
/// the span and field filters `EnvFilter` adds need a regex engine of their own in every binary
/// (BENCHMARKS.md, "Release profile"), and a Lambda function's log level needs none of them.
fn filter(rust_log: Option<String>, default: &str) -> Targets {
    let read = |directives: &str| directives.parse::<Targets>().ok();
    rust_log.as_deref().and_then(read).or_else(|| read(default)).unwrap_or_default()
}

/// One JSON object per line, with the spans' fields, no ANSI colours.
fn install<W>(filter: Targets, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer);
    let _ = tracing_subscriber::registry().with(filter).with(json).try_init();
}

/// Our crates log at the chosen level; dependencies only warn, so a driver's debug output can
/// never dump a packet with a password in it.
fn our_crates(level: &str) -> String {
    ["dbcreds_core", "dbcreds_db", "dbcreds_aws", "dbcreds_rotation", "dbcreds_custom_resource", "dbcreds_runtime", "provisioner", "rotator", "connection_test", "dbcreds"]
        .iter()
        .map(|krate| format!("{krate}={level}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_wins_when_readable_and_the_default_holds_otherwise() {
        let default = format!("warn,{}", our_crates("info"));
        let chosen = filter(Some("warn,dbcreds_db=debug".into()), &default);
        assert!(chosen.would_enable("dbcreds_db::mysql", &Level::DEBUG));
        assert!(!chosen.would_enable("hyper", &Level::INFO));
        let fallback = filter(Some("dbcreds_db=loud".into()), &default);
        assert!(fallback.would_enable("rotator", &Level::INFO) && !fallback.would_enable("rotator", &Level::DEBUG));
        assert!(fallback.would_enable("aws_smithy_runtime", &Level::WARN) && !fallback.would_enable("aws_smithy_runtime", &Level::INFO));
        let off = filter(None, "off");
        assert!(!off.would_enable("dbcreds", &Level::ERROR));
    }
}
