//! The connection test: proves an application can reach its database, through RDS Proxy with
//! IAM authentication or with a secret's credentials, and when it can't, says which layer
//! failed and what to check.
//!
//! - [`config`]: the environment (AWS sample's names kept) with validated event overrides.
//! - [`check`]: the phases (assume role, token, read secret, DNS, TCP, TLS, authentication,
//!   query), each timed and bounded by the invocation's remaining time.
//! - [`login`]: TCP, TLS and the login on one connection, the driver's; the probe only when
//!   the login fails below the server's answer or is slow.
//! - [`probe`]: the function's own DNS, TCP and TLS probes, which classify network failures.
//! - [`report`]: the diagnostics and the response in the AWS sample's shape.
//! - [`cloud`] / [`aws`]: the port to AWS and its implementation over `dbcreds-aws`.
//!
//! Nothing here knows Lambda: `main.rs` wires [`handle`] to the runtime, and the `dbcreds check`
//! command can call the same functions.

pub mod aws;
pub mod check;
pub mod cloud;
pub mod config;
pub mod login;
pub mod probe;
pub mod report;

use check::Toolkit;
use config::Config;
use dbcreds_runtime::Budget;
use report::{Diagnostics, Failure, Phase};
use serde_json::Value;

/// One invocation: read the configuration (environment + event), run the check, and return the
/// response. Never an error: a failure is a response that says what failed.
pub async fn handle(event: &Value, env: impl Fn(&str) -> Option<String>, toolkit: &Toolkit, budget: &Budget) -> Value {
    let diagnostics = match Config::load(env, event) {
        Ok(config) => check::run(&config, toolkit, budget).await,
        Err(err) => {
            tracing::warn!(step = "configuration", error_class = "input", field = err.field.as_str(), error = %err, "invalid configuration");
            let hint = format!("fix {}: {}; nothing was tried", err.field, err.fix);
            let mut diagnostics = Diagnostics::default();
            diagnostics.record(Phase::Configuration, report::PhaseStatus::Failed, None, None);
            diagnostics.failure = Some(Failure::new(Phase::Configuration, dbcreds_core::ErrorClass::Input, err.to_string()).with_hint(hint));
            diagnostics
        }
    };
    if diagnostics.succeeded() {
        tracing::info!(
            engine = diagnostics.engine.as_deref().unwrap_or(""),
            endpoint = diagnostics.endpoint.as_deref().unwrap_or(""),
            total_ms = diagnostics.total_ms,
            "database connection was successful"
        );
    }
    diagnostics.to_response()
}
