//! What every dbcreds Lambda entrypoint shares: structured JSON logs and the time budget.

pub mod budget;
pub mod logging;

pub use budget::Budget;
pub use logging::{init_cli_logging, init_logging};

/// Reads configuration from the process environment. Functions take `impl Fn(&str) ->
/// Option<String>` so their parsing is testable; this is the production source.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
