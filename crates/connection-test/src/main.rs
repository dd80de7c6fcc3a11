//! The `connection-test` Lambda function. Thin on purpose: logging, the AWS clients and the
//! trust store are set up once per cold start; each invocation runs the library's check and
//! returns its response (never a Lambda error, so `aws lambda invoke` shows the diagnosis).

use dbcreds_runtime::{Budget, env_lookup};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::time::Duration;

/// Kept back from the invocation's deadline to build and return the response.
const REPORT_RESERVE: Duration = Duration::from_millis(500);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    dbcreds_runtime::init_logging();
    let toolkit = connection_test::aws::toolkit_from_env().await;
    let toolkit = &toolkit;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let budget = Budget::from_deadline_ms(event.context.deadline, REPORT_RESERVE);
        Ok::<Value, Error>(connection_test::handle(&event.payload, env_lookup, toolkit, &budget).await)
    }))
    .await
}
