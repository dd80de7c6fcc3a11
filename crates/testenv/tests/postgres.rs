//! The throwaway PostgreSQL server: verified TLS works, the wrong CA and the wrong name are
//! refused, plaintext is refused when TLS is required, and data survives kill -9 + restart.

use dbcreds_testenv::{Postgres, ServerOptions, TlsMode};
use std::time::Instant;

#[tokio::test]
async fn admin_connects_over_verified_tls() {
    let started = Instant::now();
    let server = Postgres::start(ServerOptions::default()).await;
    eprintln!("PostgreSQL ready in {:?}: {:?}", started.elapsed(), server.start_timings());
    assert_eq!(server.host(), "localhost");
    assert_eq!(server.admin_user(), "postgres");

    let rows = server.admin_query_strings("SELECT current_user, ssl, current_setting('password_encryption') FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await;
    assert_eq!(rows, vec![vec![Some("postgres".into()), Some("t".into()), Some("scram-sha-256".into())]]);
    let listen = server.admin_query_strings("SHOW listen_addresses").await;
    assert_eq!(listen, vec![vec![Some("127.0.0.1".into())]]);
    // The superuser's password is stored as a SCRAM verifier.
    let verifier = server.admin_query_strings("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'").await;
    assert!(verifier[0][0].as_deref().is_some_and(|v| v.starts_with("SCRAM-SHA-256$")), "not a SCRAM verifier");
}

#[tokio::test]
async fn the_admin_password_is_required_over_tcp() {
    let server = Postgres::start(ServerOptions::default()).await;
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(server.port()).user("postgres").password("not-the-password").dbname("postgres");
    let error = config.connect(tokio_postgres::NoTls).await.err().expect("a wrong password must be refused");
    let error = dbcreds_testenv::tls_client::error_chain(&error);
    assert!(error.contains("password authentication failed"), "unexpected error: {error}");
}

#[tokio::test]
async fn query_as_logs_in_as_another_role_over_verified_tls() {
    let server = Postgres::start(ServerOptions::default()).await;
    server.admin_exec("CREATE ROLE app LOGIN PASSWORD 'app-password'").await;
    let rows = server.query_as("app", "app-password", "postgres", "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await.expect("app logs in");
    assert_eq!(rows, vec![vec![Some("app".into()), Some("t".into())]]);
    let refused = server.query_as("app", "wrong-password", "postgres", "SELECT 1").await.expect_err("a wrong password is refused");
    assert!(refused.contains("password authentication failed"), "unexpected error: {refused}");
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let server = Postgres::start(ServerOptions::default()).await;
    let error = server.query_as_admin_trusting(Some(server.unrelated_ca_pem()), "postgres", "SELECT 1").await.expect_err("the unrelated CA must not verify the server");
    assert!(error.contains("UnknownIssuer"), "unexpected error: {error}");
}

#[tokio::test]
async fn the_wrong_name_certificate_fails_hostname_verification() {
    let server = Postgres::start(ServerOptions::new().tls(TlsMode::WrongName)).await;
    let error = server.try_admin_query_strings("SELECT 1").await.expect_err("a certificate for wrong.example must not verify as localhost");
    assert!(error.contains("not valid for name"), "unexpected error: {error}");
}

#[tokio::test]
async fn require_tls_refuses_plaintext_and_accepts_tls() {
    let server = Postgres::start(ServerOptions::new().require_tls(true)).await;
    let error = server.query_as_admin_trusting(None, "postgres", "SELECT 1").await.expect_err("plaintext must be refused");
    assert!(error.contains("no pg_hba.conf entry") && error.contains("no encryption"), "unexpected error: {error}");
    assert_eq!(server.admin_query_strings("SELECT 1").await, vec![vec![Some("1".into())]]);
}

#[tokio::test]
async fn without_require_tls_plaintext_is_allowed() {
    // The default: the server would accept plaintext, so a client that refuses it proves itself.
    let server = Postgres::start(ServerOptions::default()).await;
    let rows = server.query_as_admin_trusting(None, "postgres", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await.expect("plaintext login");
    assert_eq!(rows, vec![vec![Some("f".into())]]);
}

#[tokio::test]
async fn tls_off_serves_plaintext_only() {
    let server = Postgres::start(ServerOptions::new().tls(TlsMode::Off)).await;
    assert_eq!(server.admin_query_strings("SHOW ssl").await, vec![vec![Some("off".into())]]);
    let error = server.query_as_admin_trusting(Some(server.ca_pem()), "postgres", "SELECT 1").await.expect_err("no TLS to negotiate");
    assert!(error.contains("TLS") || error.contains("SSL"), "unexpected error: {error}");
}

#[tokio::test]
async fn data_survives_kill_and_restart() {
    let mut server = Postgres::start(ServerOptions::default()).await;
    let port = server.port();
    server.admin_exec("CREATE TABLE keep (v text); INSERT INTO keep VALUES ('still here')").await;
    let pid = server.pid().expect("running");
    server.kill();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "postmaster {pid} still alive after kill");
    assert!(server.try_admin_query_strings("SELECT 1").await.is_err(), "a killed server answered");

    let restarted = Instant::now();
    server.restart().await;
    eprintln!("PostgreSQL restarted after kill -9 in {:?}", restarted.elapsed());
    assert_eq!(server.port(), port);
    assert_eq!(server.admin_query_strings("SELECT v FROM keep").await, vec![vec![Some("still here".into())]]);

    server.stop().await;
    server.restart().await;
    assert_eq!(server.admin_query_strings("SELECT count(*) FROM keep").await, vec![vec![Some("1".into())]]);
}
