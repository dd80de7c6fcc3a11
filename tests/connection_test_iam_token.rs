//! IAM-mode plumbing: the token reaches the server as the password, over verified TLS, through
//! the very phases the `connection-test` function runs after its token phase.
//!
//! Why at the library level: a real token depends on the signing time and on the credentials
//! STS hands out, and moto's are random, so no local server can know the function's token in
//! advance. Here the token is signed by the shared signer (`dbcreds_aws::iam_token`) with frozen
//! credentials (a session token included, as assumed-role credentials carry one) and a frozen
//! clock, a local user is given that token as its password, and `connect_and_query` (what the
//! binary calls with the token it signed) logs in with `Credential::IamToken`. The binary's own
//! IAM path (assume role against moto, sign, probe, log in) is proven in
//! `connection_test_auth.rs`, up to the server refusing a token it cannot know.
//!
//! What this proves and what it cannot:
//! - PostgreSQL: the user's pg_hba method is `password`, so the server sends a *cleartext*
//!   password request, as RDS and RDS Proxy do, and the client answers it with the token.
//! - MariaDB: the user has `mysql_native_password`, so the token is the password of a scramble.
//!   The `mysql_clear_password` exchange RDS uses needs a server that asks for it
//!   (AWSAuthenticationPlugin, or MariaDB's PAM plugin with a PAM stack), which a throwaway
//!   local server does not have; that the adapter enables the cleartext plugin only for IAM
//!   tokens and refuses them without TLS is checked below and in the MySQL adapter's tests.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::time::StaticTimeSource;
use connection_test::check::{Target, connect_and_query};
use connection_test::report::{Diagnostics, PhaseStatus};
use dbcreds_aws::iam_token::{self, IamTokenRequest};
use dbcreds_core::{EngineFamily, ErrorClass, SecretString, TlsPolicy};
use dbcreds_db::{Credential, TrustStore};
use dbcreds_runtime::Budget;
use dbcreds_testenv::{MariaDb, Postgres, ServerOptions};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// 2024-08-26T22:00:00Z, the instant of aws-sdk-rust's published vector.
const FROZEN_EPOCH: u64 = 1_724_709_600;
const USER: &str = "app_iam";

fn frozen_config(epoch: u64) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "ASIAFROZENEXAMPLE",
            "frozen-secret-access-key",
            Some("FROZEN-SESSION-TOKEN".to_owned()),
            None,
            "frozen",
        )))
        .time_source(StaticTimeSource::new(UNIX_EPOCH + Duration::from_secs(epoch)))
        .region(Region::new("eu-west-1"))
        .build()
}

async fn token_for(host: &str, port: u16, epoch: u64) -> SecretString {
    let token = iam_token::generate(&frozen_config(epoch), &IamTokenRequest { host, port, username: USER, region: None }).await.expect("sign the token");
    let text = token.expose();
    assert!(text.starts_with(&format!("{host}:{port}/?")), "a token is a presigned URL without its scheme: {}", &text[..40.min(text.len())]);
    assert!(text.contains("Action=connect") && text.contains(&format!("DBUser={USER}")), "not an rds-db connect token");
    assert!(text.contains("X-Amz-Date=20240826T22000"), "the frozen clock was not used");
    assert!(text.contains("X-Amz-Security-Token=FROZEN-SESSION-TOKEN"), "the session token must be part of the signed query");
    assert!(text.contains("%2Feu-west-1%2Frds-db%2Faws4_request"), "signed for the region and the rds-db service");
    token
}

fn target(family: EngineFamily, port: u16) -> Target {
    Target { family, host: "localhost".into(), port, username: USER.into(), database: None, tls: TlsPolicy::VerifyFull }
}

fn budget() -> Budget {
    Budget::from_remaining(Duration::from_secs(30), Duration::from_millis(500))
}

fn assert_every_phase_passed(d: &Diagnostics) {
    let phases: Vec<(&str, PhaseStatus)> = d.phases.iter().map(|p| (p.phase.as_str(), p.status)).collect();
    assert_eq!(
        phases,
        [("dns", PhaseStatus::Ok), ("tcp", PhaseStatus::Ok), ("tls", PhaseStatus::Ok), ("authentication", PhaseStatus::Ok), ("query", PhaseStatus::Ok)],
        "{d:#?}"
    );
    let tls = d.tls.as_ref().expect("TLS is reported");
    assert!(tls.certificate_verified, "{tls:?}");
    assert!(matches!(tls.version.as_deref(), Some("TLSv1.3" | "TLSv1.2")), "{tls:?}");
}

fn assert_no_token(d: &Diagnostics, token: &SecretString) {
    let text = d.to_response().to_string();
    assert!(!text.contains(token.expose()), "the token leaked into the response");
    assert!(!text.contains("X-Amz-Signature"), "part of a token leaked into the response");
}

#[tokio::test]
async fn postgres_gets_the_token_as_the_answer_to_a_cleartext_password_request() {
    let server = Postgres::start(ServerOptions::new().require_tls(true)).await;
    let token = token_for("localhost", server.port(), FROZEN_EPOCH).await;
    // The token holds only URL characters ([A-Za-z0-9%&=._:/?-]): safe inside a SQL literal.
    assert!(!token.expose().contains('\''));
    server.admin_exec(&format!("CREATE ROLE {USER} LOGIN PASSWORD '{}'", token.expose())).await;

    // RDS asks for the password in clear text (over TLS): give this user pg_hba's `password`
    // method, ahead of the server's scram-sha-256 lines.
    let hba_file = server.admin_query_strings("SHOW hba_file").await[0][0].clone().expect("hba_file");
    let hba = std::fs::read_to_string(&hba_file).expect("read pg_hba.conf");
    std::fs::write(&hba_file, format!("hostssl all {USER} 127.0.0.1/32 password\n{hba}")).expect("write pg_hba.conf");
    server.admin_exec("SELECT pg_reload_conf()").await;
    let method = server.admin_query_strings(&format!("SELECT auth_method FROM pg_hba_file_rules WHERE '{USER}' = ANY(user_name) ORDER BY line_number LIMIT 1")).await;
    assert_eq!(method[0][0].as_deref(), Some("password"), "the user must get a cleartext password request");

    let trust = Arc::new(TrustStore::from_pem(server.ca_pem()).unwrap());
    let mut d = Diagnostics::default();
    connect_and_query(&target(EngineFamily::Postgres, server.port()), Credential::IamToken(token.clone()), &trust, None, &budget(), &mut d)
        .await
        .unwrap_or_else(|failure| panic!("the token should log in: {failure:?}"));
    assert_every_phase_passed(&d);
    assert_eq!(d.current_user.as_deref(), Some(USER));
    assert_no_token(&d, &token);

    // The server really checks the token: one signed a second later is refused.
    let other = token_for("localhost", server.port(), FROZEN_EPOCH + 1).await;
    assert_ne!(other.expose(), token.expose());
    let mut d = Diagnostics::default();
    let failure = connect_and_query(&target(EngineFamily::Postgres, server.port()), Credential::IamToken(other.clone()), &trust, None, &budget(), &mut d)
        .await
        .expect_err("a different token must be refused");
    assert_eq!((failure.phase.as_str(), failure.class), ("authentication", ErrorClass::Authentication), "{failure:?}");
    assert!(failure.hint.contains("rds-db:connect"), "the IAM hint: {failure:?}");
    d.failure = Some(failure);
    assert_eq!(d.to_response()["statusCode"], 401);
    assert_no_token(&d, &other);
}

#[tokio::test]
async fn mariadb_gets_the_token_as_the_password_over_verified_tls() {
    let server = MariaDb::start(ServerOptions::new().require_tls(true)).await;
    let token = token_for("localhost", server.port(), FROZEN_EPOCH).await;
    server.admin_exec(&format!("CREATE USER '{USER}'@'%' IDENTIFIED BY '{}'", token.expose())).await;
    let plugin = server.admin_query_strings(&format!("SELECT plugin FROM mysql.user WHERE User = '{USER}'")).await;
    assert_eq!(plugin[0][0].as_deref(), Some("mysql_native_password"), "what this test proves depends on the plugin");

    let trust = Arc::new(TrustStore::from_pem(server.ca_pem()).unwrap());
    let mut d = Diagnostics::default();
    connect_and_query(&target(EngineFamily::MySql, server.port()), Credential::IamToken(token.clone()), &trust, None, &budget(), &mut d)
        .await
        .unwrap_or_else(|failure| panic!("the token should log in: {failure:?}"));
    assert_every_phase_passed(&d);
    assert_eq!(d.current_user.as_deref(), Some("app_iam@%"));
    assert!(d.server_version.as_deref().is_some_and(|v| v.contains("MariaDB")), "{d:?}");
    assert_no_token(&d, &token);

    let other = token_for("localhost", server.port(), FROZEN_EPOCH + 1).await;
    let mut d = Diagnostics::default();
    let failure = connect_and_query(&target(EngineFamily::MySql, server.port()), Credential::IamToken(other), &trust, None, &budget(), &mut d)
        .await
        .expect_err("a different token must be refused");
    assert_eq!((failure.phase.as_str(), failure.class), ("authentication", ErrorClass::Authentication), "{failure:?}");

    // A token never travels without TLS: asked for plaintext, the login is refused before
    // anything is sent (the probe skips TLS, the adapter refuses the IAM token).
    let mut plaintext = target(EngineFamily::MySql, server.port());
    plaintext.tls = TlsPolicy::Disabled;
    let mut d = Diagnostics::default();
    let failure = connect_and_query(&plaintext, Credential::IamToken(token), &trust, None, &budget(), &mut d).await.expect_err("no token over plaintext");
    assert_eq!((failure.phase.as_str(), failure.class), ("authentication", ErrorClass::Input), "{failure:?}");
    assert!(failure.message.contains("TLS"), "{failure:?}");
}
