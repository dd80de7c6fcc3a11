//! The floor under every init figure: the smallest Lambda function there is (the Lambda runtime
//! crate, answering `{}`), started the same way as the real ones. Its init is what process start,
//! the dynamic loader, tokio and the first Runtime API request cost on this machine, with none of
//! our code. Built with the benchmark harness (no fat LTO), which makes no difference for a
//! binary this small.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async { Ok::<Value, Error>(json!({})) })).await
}
