//! What an operator sees when the network or the clock is the problem. These use sockets on
//! 127.0.0.1 that the test owns: one nobody listens on, one that accepts and never answers.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use dbcreds_aws::{AWSCURRENT, AwsClients, SecretStore, SecretsManagerStore, VersionSelector};
use dbcreds_core::ErrorClass;
use std::time::{Duration, Instant};

fn clients_for(endpoint: &str) -> AwsClients {
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test")))
        .endpoint_url(endpoint)
        .build();
    AwsClients::from_sdk_config(config, None).unwrap()
}

/// A loopback port with nothing listening: bind, note the port, close.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_endpoint_reads_as_a_missing_route() {
    let clients = clients_for(&format!("http://127.0.0.1:{}", closed_port()));
    let store = SecretsManagerStore::new(&clients);
    let err = store.get_value("app", VersionSelector::stage(AWSCURRENT)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Aws, "{err}");
    assert_eq!(err.code, None);
    assert!(err.message.contains("no route to the endpoint: VPC endpoint or NAT"), "{err}");
    assert!(err.message.starts_with("GetSecretValue \"app\""), "{err}");
    assert!(err.is_transient());
    assert_eq!(store.calls().get_secret_value, 1);
}

#[tokio::test]
async fn a_spent_budget_sends_nothing() {
    let clients = clients_for(&format!("http://127.0.0.1:{}", closed_port()));
    let store = SecretsManagerStore::new(&clients).with_deadline(Instant::now());
    let err = store.describe("app").await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Deadline, "{err}");
    assert!(err.message.contains("DescribeSecret"), "{err}");
    assert_eq!(store.calls().total(), 0);
}

#[tokio::test]
async fn a_silent_service_is_cut_off_at_the_invocation_deadline() {
    // Accepts connections and never answers, as a black-holed endpoint behind a proxy would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });

    let clients = clients_for(&format!("http://127.0.0.1:{port}"));
    // Without the deadline the default timeouts (10 s per attempt, 3 attempts) would apply.
    let store = SecretsManagerStore::new(&clients).with_deadline(Instant::now() + Duration::from_millis(1500));
    let err = store.get_value("app", VersionSelector::stage(AWSCURRENT)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Deadline, "{err}");
    assert!(err.message.contains("deadline"), "{err}");
    held.abort();
}
