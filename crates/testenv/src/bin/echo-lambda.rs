//! A tiny Lambda function for testing the Runtime API emulator, built on lambda_runtime like the
//! project's real functions. It echoes its event, and takes orders from it:
//!
//! - `{"sleep_ms": N}`: sleep N milliseconds first (to pass a deadline);
//! - `{"fail": "message"}`: return an error;
//! - `{"exit": code}`: exit the process mid-invocation;
//! - `{"log": "line"}`: print the line to stdout and stderr.
//!
//! Every response carries the pid, so tests can tell a cold start from a warm one, and the
//! deadline the runtime gave it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if let Ok(message) = std::env::var("ECHO_LAMBDA_FAIL_INIT") {
        eprintln!("echo-lambda: failing init on purpose: {message}");
        std::process::exit(3);
    }
    lambda_runtime::run(service_fn(echo)).await
}

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if let Some(line) = payload.get("log").and_then(Value::as_str) {
        println!("stdout: {line}");
        eprintln!("stderr: {line}");
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(code as i32);
    }
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(message.into());
    }
    let deadline_ms = context.deadline;
    Ok(json!({
        "echo": payload,
        "pid": std::process::id(),
        "request_id": context.request_id,
        "function_arn": context.invoked_function_arn,
        "deadline_ms": deadline_ms,
        "function_name": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
        "extra_env": std::env::var("ECHO_LAMBDA_EXTRA").ok(),
    }))
}
