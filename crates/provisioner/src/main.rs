//! The `provisioner` Lambda function. Thin on purpose: logging, the AWS clients, the trust store
//! and the response client are built once per cold start; each invocation is answered by the
//! custom-resource responder, which always sends exactly one response.

use dbcreds_custom_resource::{ResponseSender, RetryPolicy, answer};
use dbcreds_runtime::Budget;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use provisioner::Provisioner;
use serde_json::{Value, json};
use std::time::Duration;

/// Kept back from the invocation's deadline to send the response (with retries) before Lambda
/// stops the function: past this point the work is abandoned and FAILED is sent.
const RESPONSE_RESERVE: Duration = Duration::from_secs(6);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    dbcreds_runtime::init_logging();
    let provisioner = Provisioner::from_env().await;
    // The system's roots as the trust store reads them (the distribution's bundle file, decoded
    // fast), not rustls-native-certs' slower read of the file and the directory: 5 ms of init.
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(dbcreds_db::tls::system_roots());
    let sender = ResponseSender::from_roots(roots).unwrap_or_else(|err| {
        // Without roots no https answer can be verified; every delivery will fail and say so.
        tracing::error!(step = "init", error = %err, "no system CA roots: responses to CloudFormation cannot be delivered");
        ResponseSender::with_roots(rustls::RootCertStore::empty(), RetryPolicy::DEFAULT).expect("a client with no roots always builds")
    });
    let (provisioner, sender) = (&provisioner, &sender);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let budget = Budget::from_deadline_ms(event.context.deadline, RESPONSE_RESERVE);
        let answered = answer(&event.payload, budget, sender, provisioner).await?;
        let summary = json!({
            "Status": answered.response.status.as_str(),
            "PhysicalResourceId": answered.response.physical_resource_id,
            "Delivered": answered.delivery.is_ok(),
        });
        match answered.delivery {
            Ok(_) => Ok(summary),
            // A Lambda error makes an asynchronous invocation (CloudFormation's) retry, which is
            // one more chance to answer; handling a request twice is harmless.
            Err(err) => Err(Error::from(err.to_string())),
        }
    }))
    .await
}
