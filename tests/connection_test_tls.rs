//! TLS failures against real MariaDB and PostgreSQL servers, through the `connection-test`
//! binary: a CA the function does not trust, a certificate for another name, and a server
//! without TLS. IAM mode without a role (the token is signed locally and never sent: every one
//! of these stops before the login).

mod connection_test_support;

use connection_test_support::*;
use dbcreds_testenv::{MariaDb, Postgres, ServerOptions, TlsMode};
use serde_json::json;
use std::path::Path;

fn env(port: u16, engine: &str, ca_bundle: &Path) -> Vec<(String, String)> {
    let mut env = offline_aws_env();
    env.extend(pairs(&[
        ("RDS_PROXY_APPLICATION_ENDPOINT", "localhost"),
        ("DB_PORT", &port.to_string()),
        ("DB_ENGINE", engine),
        ("DB_USERNAME", "app_iam"),
        ("DB_CA_BUNDLE", &ca_bundle.display().to_string()),
    ]));
    env
}

const UP_TO_TLS: &[(&str, &str)] = &[("assume_role", "skipped"), ("token", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "failed")];

/// (engine, port, CA, unrelated CA) of a started server; the servers stay up while in scope.
struct Servers {
    mariadb: MariaDb,
    postgres: Postgres,
}

impl Servers {
    async fn start(options: ServerOptions) -> Servers {
        let (mariadb, postgres) = tokio::join!(MariaDb::start(options.clone()), Postgres::start(options));
        Servers { mariadb, postgres }
    }

    fn each(&self) -> [(&'static str, u16, &Path, &Path); 2] {
        [
            ("mysql", self.mariadb.port(), self.mariadb.ca_pem_path(), self.mariadb.unrelated_ca_pem_path()),
            ("postgres", self.postgres.port(), self.postgres.ca_pem_path(), self.postgres.unrelated_ca_pem_path()),
        ]
    }
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_tls_verification() {
    let servers = Servers::start(ServerOptions::new()).await;
    for (engine, port, _, unrelated_ca) in servers.each() {
        let mut function = start(env(port, engine, unrelated_ca)).await;
        let (response, _) = invoke(&mut function, json!({})).await;
        expect_failure(&response, "tls", "tls_verification", 502);
        expect_phases(&response, UP_TO_TLS);
        let message = failure_message(&response);
        assert!(message.contains("does not chain to a trusted CA"), "{engine}: {message}");
        assert!(message.contains("DB_CA_BUNDLE"), "{engine}: the trusted roots are listed: {message}");
        assert!(failure_hint(&response).contains("DB_CA_BUNDLE"), "{engine}: {}", pretty(&response));
    }
}

#[tokio::test]
async fn a_certificate_for_another_name_is_tls_verification_naming_both() {
    let servers = Servers::start(ServerOptions::new().tls(TlsMode::WrongName)).await;
    for (engine, port, ca, _) in servers.each() {
        let mut function = start(env(port, engine, ca)).await;
        let (response, _) = invoke(&mut function, json!({})).await;
        expect_failure(&response, "tls", "tls_verification", 502);
        expect_phases(&response, UP_TO_TLS);
        let message = failure_message(&response);
        assert!(message.contains("not valid for \"localhost\""), "{engine}: {message}");
        assert!(message.contains("wrong.example"), "{engine}: the certificate's names are listed: {message}");
        assert!(failure_hint(&response).contains("host name the certificate carries"), "{engine}: {}", pretty(&response));
    }
}

#[tokio::test]
async fn a_server_without_tls_is_tls_unavailable_and_the_token_is_never_sent() {
    let servers = Servers::start(ServerOptions::new().tls(TlsMode::Off)).await;
    for (engine, port, ca, _) in servers.each() {
        let mut function = start(env(port, engine, ca)).await;
        let (response, _) = invoke(&mut function, json!({})).await;
        expect_failure(&response, "tls", "tls_unavailable", 502);
        expect_phases(&response, UP_TO_TLS);
        assert!(failure_message(&response).contains("does not offer TLS"), "{engine}: {}", pretty(&response));
    }
}

#[tokio::test]
async fn an_event_may_bring_its_own_ca_bundle() {
    let servers = Servers::start(ServerOptions::new()).await;
    for (engine, port, ca, unrelated_ca) in servers.each() {
        // The environment trusts the wrong CA; the event names the right one. TLS now passes and
        // the login is tried (the locally signed token is, rightly, refused).
        let mut function = start(env(port, engine, unrelated_ca)).await;
        let (response, _) = invoke(&mut function, json!({ "DB_CA_BUNDLE": ca.display().to_string() })).await;
        expect_failure(&response, "authentication", "authentication", 401);
        let tls = &response["diagnostics"]["tls"];
        assert_eq!(tls["certificate_verified"], true, "{engine}: {}", pretty(&response));
        assert!(tls["trust_store"].to_string().contains(&ca.display().to_string()), "{engine}: {tls}");
        // The cold start's trust store is still the environment's for the next invocation.
        let (response, _) = invoke(&mut function, json!({})).await;
        expect_failure(&response, "tls", "tls_verification", 502);
    }
}
