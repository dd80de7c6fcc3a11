//! Shared by the moto tests: a moto server, clients pointed at it, unique names, and the few IAM
//! calls needed to make moto deny something (sent as raw form posts: the crate has no IAM SDK,
//! and adding one only for fixtures would cost more build time than these forty lines).
#![allow(dead_code)]

use dbcreds_aws::AwsClients;
use dbcreds_testenv::Moto;
#[allow(unused_imports)] // each test binary uses its own subset
pub use dbcreds_testenv::moto_iam::{iam, set_iam_enforcement, user_with_key};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub async fn moto() -> Moto {
    Moto::start().await
}

pub async fn clients(moto: &Moto) -> AwsClients {
    AwsClients::from_sdk_config(moto.sdk_config().await, None).expect("clients for moto")
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A ClientRequestToken (32 to 64 characters).
pub fn version_token(tag: &str) -> String {
    let token = format!("{:0>40}", unique(tag));
    token[token.len().saturating_sub(64)..].to_owned()
}

/// Creates a secret with one version (AWSCURRENT) through the SDK directly, so the code under
/// test is not its own fixture. Returns (ARN, VersionId).
pub async fn create_secret(clients: &AwsClients, name: &str, value: &str, tags: &[(&str, &str)]) -> (String, String) {
    let version = version_token("v1");
    let mut request = clients.secrets.create_secret().name(name).secret_string(value).client_request_token(&version);
    for (key, tag_value) in tags {
        request = request.tags(aws_sdk_secretsmanager::types::Tag::builder().key(*key).value(*tag_value).build());
    }
    let output = request.send().await.expect("CreateSecret on moto");
    (output.arn.expect("ARN"), output.version_id.expect("VersionId"))
}

/// A new IAM user with one inline policy, and clients that act as it. The policy matters only
/// while IAM enforcement is on ([`set_iam_enforcement`]). Returns the user name and the clients.
pub async fn iam_user(moto: &Moto, policy: &str) -> (String, AwsClients) {
    let user = unique("user");
    let (key_id, secret_key) = user_with_key(moto, &user).await;
    iam(moto, &[("Action", "PutUserPolicy"), ("UserName", &user), ("PolicyName", "test-policy"), ("PolicyDocument", policy)]).await;
    let credentials = aws_credential_types::Credentials::new(key_id, secret_key, None, None, "moto-user");
    let mut config = moto.sdk_config().await.to_builder();
    config.set_credentials_provider(Some(aws_credential_types::provider::SharedCredentialsProvider::new(credentials)));
    (user, AwsClients::from_sdk_config(config.build(), None).expect("clients for the user"))
}

