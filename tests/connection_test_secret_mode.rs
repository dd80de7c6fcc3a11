//! Secret mode through the `connection-test` binary, against real TLS MariaDB and PostgreSQL
//! and moto's Secrets Manager: the AWS sample's success body with full diagnostics on both
//! engines, `TEST_QUERY`, a wrong password, a write attempt, plaintext only when the secret says
//! `"ssl": false`, and a secret that does not exist.

mod connection_test_support;

use connection_test_support::*;
use dbcreds_testenv::{MariaDb, Moto, Postgres, ServerOptions, TlsMode};
use serde_json::{Value, json};
use std::path::Path;

const PASSWORD: &str = "Secret-Mode-Password-4711";

fn function_env(moto: &Moto, secret_arn: &str, ca_bundle: &Path) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.extend(pairs(&[("DB_SECRET_ARN", secret_arn), ("DB_CA_BUNDLE", &ca_bundle.display().to_string())]));
    env
}

fn secret(engine: &str, port: u16, password: &str) -> Value {
    let mut document = json!({ "engine": engine, "host": "localhost", "port": port, "username": "app", "password": password });
    if engine == "postgres" {
        document["dbname"] = json!("postgres");
    }
    document
}

const ALL_OK: &[(&str, &str)] = &[("read_secret", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "ok"), ("authentication", "ok"), ("query", "ok")];

fn expect_diagnostics(response: &Value, engine: &str, port: u16, secret_arn: &str, current_user: &str, server: &str) {
    let d = &response["diagnostics"];
    assert_eq!(d["engine"], engine);
    assert_eq!(d["endpoint"], format!("localhost:{port}"));
    assert_eq!(d["user"], "app");
    assert_eq!(d["auth_mode"], "secret");
    assert_eq!(d["secret_arn"], secret_arn);
    assert_eq!(d["current_user"], current_user);
    assert!(d["server_version"].as_str().is_some_and(|v| v.contains(server)), "{}", pretty(response));
    assert!(matches!(d["tls"]["version"].as_str(), Some("TLSv1.3" | "TLSv1.2")), "{}", pretty(response));
    assert_eq!(d["tls"]["certificate_verified"], true);
    assert_eq!(d["addresses"], json!(["127.0.0.1"]));
    assert!(d.get("assumed_role_arn").is_none());
    assert_eq!(d["connected_address"], format!("127.0.0.1:{port}"), "{}", pretty(response));
    for phase in d["phases"].as_array().unwrap() {
        if matches!(phase["phase"].as_str(), Some("tcp" | "tls")) {
            // Proven by the login's own connection (no probe on a success): no time of their
            // own, and the report says where it went.
            assert!(phase.get("ms").is_none(), "TCP and TLS are timed inside the login: {phase}");
            assert!(phase["detail"].as_str().is_some_and(|detail| detail.contains("in the authentication phase")), "{phase}");
        } else {
            assert!(phase["ms"].is_u64(), "every other phase that ran is timed: {phase}");
        }
    }
}

#[tokio::test]
async fn postgres_success_has_the_sample_body_and_every_diagnostic() {
    let (server, moto) = tokio::join!(Postgres::start(ServerOptions::new().require_tls(true)), Moto::start());
    server.admin_exec(&format!("CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'")).await;
    let arn = put_secret(&moto, "app/postgres", &secret("postgres", server.port(), PASSWORD)).await;
    let mut function = start(function_env(&moto, &arn, server.ca_pem_path())).await;

    let (response, logs) = invoke(&mut function, json!({})).await;
    expect_success(&response);
    expect_phases(&response, ALL_OK);
    expect_diagnostics(&response, "postgres", server.port(), &arn, "app", "PostgreSQL");
    assert_eq!(response["diagnostics"]["database"], "postgres");
    assert_eq!(response["diagnostics"]["query"], "default");
    expect_absent(&response, &logs, &[PASSWORD]);
    assert!(logs.contains("database connection was successful"), "{logs}");

    let (response, logs) = invoke(&mut function, json!({ "TEST_QUERY": "SELECT 1 UNION ALL SELECT 2" })).await;
    expect_success(&response);
    assert_eq!(response["diagnostics"]["query"], "TEST_QUERY");
    assert_eq!(response["diagnostics"]["query_rows"], 2);
    expect_absent(&response, &logs, &[PASSWORD]);
}

#[tokio::test]
async fn mariadb_success_has_the_sample_body_and_every_diagnostic() {
    let (server, moto) = tokio::join!(MariaDb::start(ServerOptions::new().require_tls(true)), Moto::start());
    server.admin_exec(&format!("CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'")).await;
    let arn = put_secret(&moto, "app/mariadb", &secret("mariadb", server.port(), PASSWORD)).await;
    let mut function = start(function_env(&moto, &arn, server.ca_pem_path())).await;

    let (response, logs) = invoke(&mut function, json!({})).await;
    expect_success(&response);
    expect_phases(&response, ALL_OK);
    expect_diagnostics(&response, "mysql", server.port(), &arn, "app@%", "MariaDB");
    expect_absent(&response, &logs, &[PASSWORD]);

    let (response, _) = invoke(&mut function, json!({ "TEST_QUERY": "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3" })).await;
    expect_success(&response);
    assert_eq!(response["diagnostics"]["query_rows"], 3);
}

#[tokio::test]
async fn a_wrong_password_is_authentication_after_the_network_and_tls_passed() {
    let (mariadb, postgres, moto) = tokio::join!(MariaDb::start(ServerOptions::new()), Postgres::start(ServerOptions::new()), Moto::start());
    mariadb.admin_exec(&format!("CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'")).await;
    postgres.admin_exec(&format!("CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'")).await;
    let wrong = "Not-The-Password-0815";
    for (engine, port, ca) in [("mariadb", mariadb.port(), mariadb.ca_pem_path()), ("postgres", postgres.port(), postgres.ca_pem_path())] {
        let arn = put_secret(&moto, &format!("wrong/{engine}"), &secret(engine, port, wrong)).await;
        let mut function = start(function_env(&moto, &arn, ca)).await;
        let (response, logs) = invoke(&mut function, json!({})).await;
        expect_failure(&response, "authentication", "authentication", 401);
        expect_phases(&response, &[("read_secret", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "ok"), ("authentication", "failed")]);
        assert!(failure_hint(&response).contains("AWSCURRENT"), "{engine}: the secret-mode hint: {}", pretty(&response));
        assert_eq!(response["diagnostics"]["tls"]["certificate_verified"], true, "{engine}");
        expect_absent(&response, &logs, &[wrong, PASSWORD]);
    }
}

#[tokio::test]
async fn a_test_query_cannot_change_data() {
    let (mariadb, postgres, moto) = tokio::join!(MariaDb::start(ServerOptions::new()), Postgres::start(ServerOptions::new()), Moto::start());
    mariadb.admin_exec(&format!("CREATE DATABASE appdb; CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON appdb.* TO 'app'@'%'")).await;
    postgres.admin_exec(&format!("CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'; GRANT CREATE ON SCHEMA public TO app")).await;
    let cases = [
        ("mariadb", mariadb.port(), mariadb.ca_pem_path(), "appdb", "CREATE TABLE appdb.written (i INT)"),
        ("postgres", postgres.port(), postgres.ca_pem_path(), "postgres", "CREATE TABLE written (i INT)"),
    ];
    for (engine, port, ca, dbname, write) in cases {
        let mut document = secret(engine, port, PASSWORD);
        document["dbname"] = json!(dbname);
        let arn = put_secret(&moto, &format!("write/{engine}"), &document).await;
        let mut function = start(function_env(&moto, &arn, ca)).await;
        let (response, _) = invoke(&mut function, json!({ "TEST_QUERY": write })).await;
        let class = response["diagnostics"]["failure"]["class"].as_str().unwrap_or_default().to_owned();
        assert!(["input", "sql", "permission"].contains(&class.as_str()), "{engine}: {}", pretty(&response));
        assert_eq!(response["diagnostics"]["failure"]["phase"], "query", "{engine}");
        expect_phases(&response, &[("read_secret", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "ok"), ("authentication", "ok"), ("query", "failed")]);
    }
    let tables = mariadb.admin_query_strings("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'written'").await;
    assert_eq!(tables[0][0].as_deref(), Some("0"), "MariaDB: the TEST_QUERY changed data");
    let tables = postgres.admin_query_strings("SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = 'written'").await;
    assert_eq!(tables[0][0].as_deref(), Some("0"), "PostgreSQL: the TEST_QUERY changed data");
}

#[tokio::test]
async fn plaintext_only_when_the_secret_says_ssl_false() {
    let (server, moto) = tokio::join!(Postgres::start(ServerOptions::new().tls(TlsMode::Off)), Moto::start());
    server.admin_exec(&format!("CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'")).await;

    let arn = put_secret(&moto, "tls-default", &secret("postgres", server.port(), PASSWORD)).await;
    let mut function = start(function_env(&moto, &arn, server.ca_pem_path())).await;
    let (response, _) = invoke(&mut function, json!({})).await;
    expect_failure(&response, "tls", "tls_unavailable", 502);

    let mut plaintext = secret("postgres", server.port(), PASSWORD);
    plaintext["ssl"] = json!(false);
    let arn = put_secret(&moto, "tls-off", &plaintext).await;
    let mut function = start(function_env(&moto, &arn, server.ca_pem_path())).await;
    let (response, logs) = invoke(&mut function, json!({})).await;
    expect_success(&response);
    expect_phases(&response, &[("read_secret", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "skipped"), ("authentication", "ok"), ("query", "ok")]);
    assert_eq!(response["diagnostics"]["tls"]["certificate_verified"], false, "plaintext is reported as such");
    assert!(response["diagnostics"]["tls"].get("version").is_none());
    expect_absent(&response, &logs, &[PASSWORD]);
}

#[tokio::test]
async fn a_missing_secret_is_named() {
    let moto = Moto::start().await;
    let arn = format!("arn:aws:secretsmanager:{}:123456789012:secret:does-not-exist-AbCdEf", moto.region());
    let mut function = start(function_env(&moto, &arn, Path::new(""))).await;
    let (response, _) = invoke(&mut function, json!({})).await;
    expect_failure(&response, "read_secret", "input", 400);
    assert!(failure_message(&response).contains("does-not-exist"), "{}", pretty(&response));
    assert!(failure_hint(&response).contains("DB_SECRET_ARN"), "{}", pretty(&response));
    expect_phases(&response, &[("read_secret", "failed")]);
}
