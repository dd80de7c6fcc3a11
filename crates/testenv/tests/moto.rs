//! moto in server mode answers Secrets Manager through the real AWS SDK.

use dbcreds_testenv::Moto;
use std::time::Instant;

#[tokio::test]
async fn create_and_read_a_secret() {
    let started = Instant::now();
    let moto = Moto::start().await;
    eprintln!("moto ready in {:?}", started.elapsed());
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));

    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let created = client.create_secret().name("app/db").secret_string(r#"{"username":"app"}"#).send().await.expect("CreateSecret");
    let arn = created.arn().expect("an ARN").to_string();
    assert!(arn.starts_with(&format!("arn:aws:secretsmanager:us-east-1:{}:secret:app/db-", moto.account_id())), "unexpected ARN {arn}");

    let read = client.get_secret_value().secret_id(&arn).send().await.expect("GetSecretValue");
    assert_eq!(read.secret_string(), Some(r#"{"username":"app"}"#));
    assert_eq!(read.version_stages(), ["AWSCURRENT".to_string()]);

    let missing = client.get_secret_value().secret_id("no/such/secret").send().await.expect_err("a missing secret");
    assert!(missing.into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn env_points_an_sdk_at_moto_only() {
    let moto = Moto::start().await;
    let env: std::collections::HashMap<String, String> = moto.env().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], moto.endpoint());
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "testing");
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "testing");
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
}

#[tokio::test]
async fn two_motos_do_not_share_state() {
    let (first, second) = tokio::join!(Moto::start(), Moto::start());
    assert_ne!(first.port(), second.port());
    let first_client = aws_sdk_secretsmanager::Client::new(&first.sdk_config().await);
    let second_client = aws_sdk_secretsmanager::Client::new(&second.sdk_config().await);
    first_client.create_secret().name("only-in-first").secret_string("x").send().await.expect("CreateSecret");
    let error = second_client.describe_secret().secret_id("only-in-first").send().await.expect_err("the second moto has no such secret");
    assert!(error.into_service_error().is_resource_not_found_exception());
}
