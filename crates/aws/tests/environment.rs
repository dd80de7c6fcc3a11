//! `AwsClients::from_env` reads the standard environment and AWS's `SECRETS_MANAGER_ENDPOINT`,
//! and building the clients sends nothing.
//!
//! One test in its own binary on purpose: it sets process environment variables, which no
//! other test in the same process may race with.

mod common;

use dbcreds_aws::{AWSCURRENT, AwsClients, RoleAssumer, SecretStore, SecretsManagerStore, VersionSelector};
use dbcreds_core::ErrorClass;
use std::io::ErrorKind;
use std::time::Duration;

#[tokio::test]
async fn from_env_builds_without_calling_and_honours_secrets_manager_endpoint() {
    let moto = common::moto().await;
    let seeding = common::clients(&moto).await;
    let (arn, _) = common::create_secret(&seeding, &common::unique("env"), "value", &[]).await;

    // Every endpoint but the secrets manager one is a socket we own and watch.
    let watched = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    watched.set_nonblocking(true).unwrap();
    let watched_url = format!("http://{}", watched.local_addr().unwrap());
    let vars = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_ENDPOINT_URL", &watched_url),
        // AWS's variable wins over the SDK's service-specific one, as boto3's explicit
        // endpoint_url does in AWS's rotation functions.
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &watched_url),
        ("SECRETS_MANAGER_ENDPOINT", &moto.endpoint()),
    ];
    for (name, value) in vars {
        // SAFETY: this binary runs this one test; nothing else reads the environment meanwhile.
        unsafe { std::env::set_var(name, value) };
    }

    let clients = AwsClients::from_env().await.unwrap();
    assert_eq!(clients.region(), "us-east-1");
    // Nothing connected while building: the connect of any call would have completed (and sit
    // in the listener's backlog) before from_env returned.
    assert_eq!(watched.accept().map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock, "building the clients made a connection");

    let store = SecretsManagerStore::new(&clients);
    assert_eq!(store.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await.unwrap().value.expose(), "value");

    // STS follows AWS_ENDPOINT_URL: our socket, which accepts and never answers.
    let assumer = RoleAssumer::new(&clients).with_deadline(std::time::Instant::now() + Duration::from_millis(800));
    let err = assumer.assume_role("arn:aws:iam::123456789012:role/r", "dbcreds-test", None, Duration::from_secs(900)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Deadline, "{err}");
    assert!(watched.accept().is_ok(), "STS did not go to AWS_ENDPOINT_URL");

    // A malformed SECRETS_MANAGER_ENDPOINT is named, not discovered on the first call.
    // SAFETY: as above.
    unsafe { std::env::set_var("SECRETS_MANAGER_ENDPOINT", "vpce-123.secretsmanager.us-east-1.vpce.amazonaws.com") };
    let err = AwsClients::from_env().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Input);
    assert!(err.message.starts_with("SECRETS_MANAGER_ENDPOINT:"), "{err}");
}
