//! The `rotator` Lambda function: Secrets Manager's four-step rotation for MySQL, MariaDB, Aurora
//! MySQL, PostgreSQL and Aurora PostgreSQL, single user or alternating users
//! (`ROTATION_STRATEGY`). Thin on purpose: the state machine is `dbcreds_rotation`.
//!
//! Once per cold start: JSON logging, the AWS clients, the Secrets Manager store (whose version
//! cache then serves the whole warm process), RDS, the TLS trust store (`DB_CA_BUNDLE`) and the
//! configuration. A setup problem (no region, an unreadable CA bundle, a bad variable) does not
//! crash the process: every invocation reports it as a clear error, so Secrets Manager's
//! rotation status shows it.

use dbcreds_aws::{AwsClients, RdsEndpoints, SecretsManagerStore};
use dbcreds_db::TrustStore;
use dbcreds_rotation::{LiveDatabases, RotationConfig, RotationError, Rotator};
use dbcreds_runtime::{Budget, env_lookup};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Kept back from the invocation's deadline to log the outcome and return a clean failure.
const REPORT_RESERVE: Duration = Duration::from_millis(1500);

/// Everything built once per cold start.
struct Function {
    store: SecretsManagerStore,
    rds: RdsEndpoints,
    databases: LiveDatabases,
    config: RotationConfig,
}

async fn cold_start() -> Result<Function, RotationError> {
    let config = RotationConfig::from_lookup(env_lookup)?;
    let clients = AwsClients::from_env().await?;
    let trust = TrustStore::load(env_lookup)?;
    tracing::info!(strategy = config.strategy.as_str(), trust = ?trust.sources(), region = clients.region(), "rotator ready");
    Ok(Function { store: SecretsManagerStore::new(&clients), rds: RdsEndpoints::new(&clients), databases: LiveDatabases::new(Arc::new(trust)), config })
}

async fn handle(function: &Result<Function, RotationError>, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let function = match function {
        Ok(function) => function,
        Err(err) => {
            tracing::error!(error_class = err.class.as_str(), error = %err.message, "the function is misconfigured");
            return Err(diagnostic(err));
        }
    };
    let budget = Budget::from_deadline_ms(event.context.deadline, REPORT_RESERVE);
    // Per-invocation views: the same clients and version cache, every call bounded by the deadline.
    let store = function.store.with_deadline(budget.deadline().into_std());
    let rds = function.rds.with_deadline(budget.deadline().into_std());
    let rotator = Rotator { store: &store, databases: &function.databases, endpoints: Some(&rds), config: &function.config };
    let before = store.calls();
    let report = rotator.run(&event.payload, budget.deadline()).await;
    report.log(Some(store.calls().since(&before).total()));
    match report.result {
        Ok(outcome) => Ok(json!({"Step": report.info.step.map(|s| s.as_str()), "outcome": outcome.as_str()})),
        Err(err) => Err(diagnostic(&err)),
    }
}

/// What Lambda (and so Secrets Manager's rotation status) shows: `errorType` is the class,
/// `errorMessage` says what failed and what to do. Never a secret value.
fn diagnostic(err: &RotationError) -> Diagnostic {
    Diagnostic { error_type: format!("dbcreds.{}", err.class.as_str()), error_message: err.to_string() }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    dbcreds_runtime::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let function = cold_start().await;
    if !args.is_empty() {
        return local::run(&function, &args).await;
    }
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handle(function, event))).await
}

/// Outside Lambda: `rotator --step createSecret --secret-id ID --token VERSION_ID` (or
/// `rotator --event events/rotator/createSecret.json`) runs one step the way an invocation
/// would, with a 30 s budget, prints the response, and exits non-zero on failure. For running
/// a rotation by hand against moto or a real account (docs/rotator.md).
mod local {
    use super::*;

    const USAGE: &str = "usage: rotator --step <createSecret|setSecret|testSecret|finishSecret> --secret-id <arn> --token <version id> [--rotation-token <token>]\n       rotator --event <event.json>\nwithout arguments it runs as a Lambda function";

    pub async fn run(function: &Result<Function, RotationError>, args: &[String]) -> Result<(), Error> {
        let payload = match parse(args) {
            Ok(payload) => payload,
            Err(problem) => {
                eprintln!("{problem}\n{USAGE}");
                std::process::exit(2);
            }
        };
        let deadline_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0) + 30_000;
        let mut context = lambda_runtime::Context::default();
        context.deadline = deadline_ms;
        match handle(function, LambdaEvent::new(payload, context)).await {
            Ok(response) => {
                println!("{response}");
                Ok(())
            }
            Err(diagnostic) => {
                eprintln!("{}: {}", diagnostic.error_type, diagnostic.error_message);
                std::process::exit(1);
            }
        }
    }

    fn parse(args: &[String]) -> Result<Value, String> {
        let mut fields = serde_json::Map::new();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--event" => {
                    let path = value()?;
                    let text = std::fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
                    return serde_json::from_str(&text).map_err(|err| format!("{path} is not JSON: {err}"));
                }
                "--step" => fields.insert("Step".into(), Value::String(value()?)),
                "--secret-id" => fields.insert("SecretId".into(), Value::String(value()?)),
                "--token" => fields.insert("ClientRequestToken".into(), Value::String(value()?)),
                "--rotation-token" => fields.insert("RotationToken".into(), Value::String(value()?)),
                other => return Err(format!("unknown argument {}", dbcreds_core::sanitize::for_log(other))),
            };
        }
        Ok(Value::Object(fields))
    }
}
