//! Structured JSON logs in the shape Lambda's JSON log format expects.
//!
//! One JSON object per line with `timestamp`, `level`, `message` and the event's fields
//! flattened beside them, plus the fields of the enclosing spans (the step, secret ARN, version,
//! engine, host), so CloudWatch Logs Insights can filter on any of them. The level comes from
//! `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging configuration) or `RUST_LOG`, default INFO.
//!
//! Secrets cannot reach these logs through formatting: passwords and tokens are
//! `SecretString`s, whose `Debug` and `Display` print `<redacted>`.

use tracing_subscriber::EnvFilter;

pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| level.to_ascii_lowercase())
        .filter(|level| ["trace", "debug", "info", "warn", "error"].contains(&level.as_str()));
    let filter = match (level, std::env::var("RUST_LOG").ok()) {
        (_, Some(directives)) => EnvFilter::new(directives),
        (Some(level), None) => EnvFilter::new(format!("warn,dbcreds={level},{crates}", crates = our_crates(&level))),
        (None, None) => EnvFilter::new(format!("warn,{}", our_crates("info"))),
    };
    install(filter, std::io::stdout);
}

/// For a command-line tool (the `dbcreds` operator CLI), whose stdout is its output and whose
/// own messages are text: the same JSON lines, on stderr, only when asked for. `level` is for our
/// crates (`None`: no logs at all); dependencies log errors only, so the SDK's chatter (a missing
/// instance metadata service on a laptop) stays out of the operator's way. `RUST_LOG` wins.
pub fn init_cli_logging(level: Option<&str>) {
    let filter = match (std::env::var("RUST_LOG").ok(), level) {
        (Some(directives), _) => EnvFilter::new(directives),
        (None, Some(level)) => EnvFilter::new(format!("error,{}", our_crates(level))),
        (None, None) => EnvFilter::new("off"),
    };
    install(filter, std::io::stderr);
}

/// One JSON object per line, with the spans' fields, no ANSI colours.
fn install<W>(filter: EnvFilter, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
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
