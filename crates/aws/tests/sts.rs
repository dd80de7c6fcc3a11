//! STS AssumeRole against moto, and what the assumed credentials are good for.

mod common;

use common::{clients, create_secret, moto, unique};
use dbcreds_aws::iam_token::{self, IamTokenRequest};
use dbcreds_aws::{RoleAssumer, SecretStore, SecretsManagerStore};
use dbcreds_core::ErrorClass;
use std::time::Duration;

const ACCOUNT: &str = "123456789012";

#[tokio::test]
async fn assumed_credentials_are_usable_and_redacted() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let role = unique("db-access");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{role}");

    let assumer = RoleAssumer::new(&clients);
    let credentials = assumer.assume_role(&role_arn, "dbcreds-test", Some("external-id-1"), Duration::from_secs(900)).await.unwrap();
    assert_eq!(credentials.assumed_role_arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/dbcreds-test"));
    assert!(!credentials.access_key_id.is_empty());
    assert!(credentials.secret_access_key.len() >= 16 && credentials.session_token.len() >= 16);
    assert!(credentials.expiration > std::time::SystemTime::now());

    let debug = format!("{credentials:?}");
    assert!(!debug.contains(credentials.secret_access_key.expose()), "{debug}");
    assert!(!debug.contains(credentials.session_token.expose()), "{debug}");
    assert!(debug.contains(&credentials.access_key_id));

    // Clients acting as the role reach the same endpoints.
    let as_role = clients.for_assumed_role(&credentials, None).unwrap();
    let (arn, _) = create_secret(&clients, &unique("cross"), "x", &[]).await;
    assert_eq!(SecretsManagerStore::new(&as_role).describe(&arn).await.unwrap().arn, arn);

    // And an IAM token signed as the role carries its key and session token.
    let token = iam_token::generate(&as_role.config, &IamTokenRequest { host: "proxy.example.com", port: 5432, username: "app", region: None }).await.unwrap();
    assert!(token.expose().contains(&format!("X-Amz-Credential={}%2F", credentials.access_key_id)), "token for another key");
    let encoded_session: String = form_urlencode(credentials.session_token.expose());
    assert!(token.expose().contains(&format!("X-Amz-Security-Token={encoded_session}")), "token without the session token");
    assert_eq!(assumer.calls(), 1);
}

#[tokio::test]
async fn a_bad_role_arn_is_named_and_nothing_is_sent() {
    let moto = moto().await;
    let assumer = RoleAssumer::new(&clients(&moto).await);
    let err = assumer.assume_role("arn:aws:iam::123:role/x", "dbcreds-test", None, Duration::from_secs(900)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Input);
    assert!(err.message.starts_with("role_arn:"), "{err}");
    let err = assumer.assume_role(&format!("arn:aws:iam::{ACCOUNT}:role/x"), "dbcreds-test", None, Duration::from_secs(60)).await.unwrap_err();
    assert!(err.message.starts_with("duration:"), "{err}");
    assert_eq!(assumer.calls(), 0);
}

#[tokio::test]
async fn a_wrong_external_id_is_assume_role_denied() {
    let moto = moto().await;

    // A caller allowed to assume roles, and a role that trusts it only with the right external id.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#;
    let (user, as_user) = common::iam_user(&moto, policy).await;
    let role = unique("db-access");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/{user}"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"right-id"}}}}}}]}}"#
    );
    common::iam(&moto, &[("Action", "CreateRole"), ("RoleName", &role), ("AssumeRolePolicyDocument", &trust)]).await;
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{role}");

    let assumer = RoleAssumer::new(&as_user);

    common::set_iam_enforcement(&moto, true).await;
    let wrong = assumer.assume_role(&role_arn, "dbcreds-test", Some("wrong-id"), Duration::from_secs(900)).await;
    let right = assumer.assume_role(&role_arn, "dbcreds-test", Some("right-id"), Duration::from_secs(900)).await;
    common::set_iam_enforcement(&moto, false).await;

    let err = wrong.unwrap_err();
    assert_eq!(err.class, ErrorClass::AssumeRoleDenied, "{err}");
    // AWS's code; moto's error body does not follow the query protocol, so here it comes from
    // the HTTP 403 (error.rs).
    assert_eq!(err.code.as_deref(), Some("AccessDenied"));
    assert!(err.message.contains("trust policy") && err.message.contains("EXTERNAL_ID"), "{err}");
    assert!(err.message.contains(&role_arn), "{err}");
    assert!(!err.is_transient());
    // The same call with the right external id succeeds: the denial was the trust policy's.
    assert_eq!(right.unwrap().assumed_role_arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/dbcreds-test"));
}

fn form_urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
