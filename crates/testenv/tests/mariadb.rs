//! The throwaway MariaDB server: verified TLS works, the wrong CA and the wrong name are refused,
//! plaintext is refused when TLS is required, and data survives kill -9 + restart.

use dbcreds_testenv::{MariaDb, ServerOptions, TlsMode};
use std::time::Instant;

#[tokio::test]
async fn admin_connects_over_verified_tls() {
    let started = Instant::now();
    let server = MariaDb::start(ServerOptions::default()).await;
    eprintln!("MariaDB ready in {:?}: {:?}", started.elapsed(), server.start_timings());
    assert_eq!(server.host(), "localhost");
    assert_eq!(server.admin_user(), "root");

    let rows = server.admin_query_strings("SELECT CURRENT_USER(), @@bind_address, @@have_ssl, @@require_secure_transport").await;
    assert_eq!(rows, vec![vec![Some("root@%".into()), Some("127.0.0.1".into()), Some("YES".into()), Some("0".into())]]);
    // The admin session really is encrypted, not merely allowed to be.
    let cipher = server.admin_query_strings("SHOW SESSION STATUS LIKE 'Ssl_version'").await;
    assert!(cipher[0][1].as_deref().is_some_and(|version| version.starts_with("TLSv1.")), "admin session not on TLS: {cipher:?}");
}

#[tokio::test]
async fn anonymous_users_are_gone_and_root_has_a_password() {
    let server = MariaDb::start(ServerOptions::default()).await;
    let anonymous = server.admin_query_strings("SELECT COUNT(*) FROM mysql.global_priv WHERE User = ''").await;
    assert_eq!(anonymous, vec![vec![Some("0".into())]]);
    let accounts = server.admin_query_strings("SELECT User, Host FROM mysql.user WHERE User = 'root' ORDER BY Host").await;
    assert_eq!(accounts, vec![vec![Some("root".into()), Some("%".into())], vec![Some("root".into()), Some("localhost".into())]]);
    // A user created as '%' logs in from 127.0.0.1: nothing more specific shadows it.
    server.admin_exec("CREATE USER 'app'@'%' IDENTIFIED BY 'app-password'; GRANT USAGE ON *.* TO 'app'@'%'").await;
    let who = server.query_as("app", "app-password", "SELECT CURRENT_USER()").await.expect("app logs in from 127.0.0.1");
    assert_eq!(who, vec![vec![Some("app@%".into())]]);
    let refused = server.query_as("app", "wrong-password", "SELECT 1").await.expect_err("a wrong password is refused");
    assert!(refused.contains("Access denied"), "unexpected error: {refused}");
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let server = MariaDb::start(ServerOptions::default()).await;
    let error = server.query_as_admin_trusting(Some(server.unrelated_ca_pem()), "SELECT 1").await.expect_err("the unrelated CA must not verify the server");
    assert!(error.contains("UnknownIssuer"), "unexpected error: {error}");
}

#[tokio::test]
async fn the_wrong_name_certificate_fails_hostname_verification() {
    let server = MariaDb::start(ServerOptions::new().tls(TlsMode::WrongName)).await;
    let error = server.try_admin_query_strings("SELECT 1").await.expect_err("a certificate for wrong.example must not verify as localhost");
    assert!(error.contains("not valid for name"), "unexpected error: {error}");
}

#[tokio::test]
async fn require_tls_refuses_plaintext_and_accepts_tls() {
    let server = MariaDb::start(ServerOptions::new().require_tls(true)).await;
    let error = server.query_as_admin_trusting(None, "SELECT 1").await.expect_err("plaintext must be refused");
    // MariaDB 10.11 refuses insecure transport as "Access denied" (1045), not with its own code;
    // the same credentials over TLS, just below, show it is the transport that was refused.
    assert!(error.contains("1045") && error.contains("Access denied"), "unexpected error: {error}");
    let rows = server.admin_query_strings("SELECT @@require_secure_transport").await;
    assert_eq!(rows, vec![vec![Some("1".into())]]);
}

#[tokio::test]
async fn tls_off_serves_plaintext_only() {
    let server = MariaDb::start(ServerOptions::new().tls(TlsMode::Off)).await;
    let rows = server.admin_query_strings("SELECT @@have_ssl").await;
    assert_eq!(rows, vec![vec![Some("DISABLED".into())]]);
    let error = server.query_as_admin_trusting(Some(server.ca_pem()), "SELECT 1").await.expect_err("no TLS to negotiate");
    assert!(!error.is_empty());
}

#[tokio::test]
async fn data_survives_kill_and_restart() {
    let mut server = MariaDb::start(ServerOptions::default()).await;
    let port = server.port();
    server.admin_exec("CREATE DATABASE keep; CREATE TABLE keep.t (v VARCHAR(20)) ENGINE=InnoDB; INSERT INTO keep.t VALUES ('still here')").await;
    let pid = server.pid().expect("running");
    server.kill();
    assert!(!process_exists(pid), "mariadbd {pid} still alive after kill");
    assert!(server.try_admin_query_strings("SELECT 1").await.is_err(), "a killed server answered");

    let restarted = Instant::now();
    server.restart().await;
    eprintln!("MariaDB restarted after kill -9 in {:?}", restarted.elapsed());
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(pid));
    let rows = server.admin_query_strings("SELECT v FROM keep.t").await;
    assert_eq!(rows, vec![vec![Some("still here".into())]]);

    // A clean stop and restart keeps it too.
    server.stop().await;
    server.restart().await;
    assert_eq!(server.admin_query_strings("SELECT COUNT(*) FROM keep.t").await, vec![vec![Some("1".into())]]);
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
