//! The connection test's call and connection budgets (issue 8, BENCHMARKS.md), kept in CI: the
//! `connection-test` binary behind the Lambda Runtime API emulator, moto behind the AWS call
//! counter and each database server behind a connection-counting proxy (the benchmark's own
//! fixture), so what is counted is what went over the wire.
//!
//! A check proves one login, so it may open one database connection: the driver's. The
//! layer-by-layer probe opens a second one only when the login fails below the server's answer
//! (tests/connection_test_network.rs and connection_test_tls.rs) or is slow: the proxy holds or
//! drops the login's first bytes here, and the probe's connection passes untouched.

use dbcreds_bench::fixture::{Aws, Binaries, Database, EngineKind, unique};
use dbcreds_bench::scenarios::{connection_test_env, login_secret};
use dbcreds_testenv::faults::{TcpFault, TcpRule};
use serde_json::{Value, json};
use std::time::Duration;

fn phases(response: &Value) -> Vec<(String, String, Option<u64>)> {
    let phases = response["diagnostics"]["phases"].as_array().expect("phases");
    phases.iter().map(|p| (p["phase"].as_str().unwrap_or("?").to_owned(), p["status"].as_str().unwrap_or("?").to_owned(), p["ms"].as_u64())).collect()
}

fn phase<'a>(phases: &'a [(String, String, Option<u64>)], name: &str) -> &'a (String, String, Option<u64>) {
    phases.iter().find(|(phase, ..)| phase == name).unwrap_or_else(|| panic!("no {name} phase in {phases:?}"))
}

async fn a_check_opens_one_connection_per_login(engine: EngineKind) {
    let bins = Binaries { dir: dbcreds_testenv::paths::profile_dir() };
    let aws = Aws::start().await;
    let db = Database::start(engine).await;
    let secret_arn = login_secret(&aws, &db).await;
    let mut function = bins.start("connection-test", connection_test_env(&aws, &db, &secret_arn)).await;
    for invocation in ["cold", "warm"] {
        let (calls_before, connections_before) = (aws.calls(), db.connections());
        let response = function.invoke(json!({}), Duration::from_secs(30)).await.expect_ok();
        assert_eq!(response["statusCode"], 200, "{} {invocation}: {response}", engine.name());
        let opened = db.connections() - connections_before;
        assert_eq!(opened, 1, "{} {invocation}: a successful check opened {opened} database connections; one login, one connection: {response}", engine.name());
        let calls = aws.calls().since(&calls_before).of_service("secretsmanager");
        assert!(calls.total() == 1 && calls.get("secretsmanager.GetSecretValue") == 1, "{} {invocation}: Secrets Manager calls {calls}, budget GetSecretValue×1", engine.name());
    }
    function.kill().await;

    // The server refusing the login answered over verified TLS: nothing below it to probe.
    let username = unique("ct");
    db.create_login(&username, &format!("Right-pw-{}", unique(""))).await;
    let wrong = aws.create_secret(&db.document(&username, &format!("Wrong-pw-{}", unique("")))).await;
    let mut function = bins.start("connection-test", connection_test_env(&aws, &db, &wrong)).await;
    let connections_before = db.connections();
    let response = function.invoke(json!({}), Duration::from_secs(30)).await.expect_ok();
    assert_eq!(response["statusCode"], 401, "{}: {response}", engine.name());
    let opened = db.connections() - connections_before;
    assert_eq!(opened, 1, "{}: a refused login opened {opened} database connections, budget 1 (no probe): {response}", engine.name());
    function.kill().await;
}

#[tokio::test]
async fn mariadb_checks_open_one_connection_per_login() {
    a_check_opens_one_connection_per_login(EngineKind::MariaDb).await;
}

#[tokio::test]
async fn postgres_checks_open_one_connection_per_login() {
    a_check_opens_one_connection_per_login(EngineKind::Postgres).await;
}

/// The login's connection held for 1.5 s at its first bytes: past the one second after which the
/// probe looks beside it. The probe finds TCP and TLS healthy (timed, on its own connection) and
/// the login is given the rest of its time: a success, with two connections.
async fn a_slow_login_is_probed_beside_and_still_succeeds(engine: EngineKind) {
    let bins = Binaries { dir: dbcreds_testenv::paths::profile_dir() };
    let aws = Aws::start().await;
    let db = Database::start(engine).await;
    let secret_arn = login_secret(&aws, &db).await;
    let mut function = bins.start("connection-test", connection_test_env(&aws, &db, &secret_arn)).await;
    let before = db.connections();
    db.proxy.arm(vec![TcpRule { connection: Some(1), client_chunk: 1, fault: TcpFault::Delay(Duration::from_millis(1500)) }]);
    let response = function.invoke(json!({}), Duration::from_secs(30)).await.expect_ok();
    db.proxy.disarm();
    assert_eq!(response["statusCode"], 200, "{}: {response}", engine.name());
    assert_eq!(db.connections() - before, 2, "{}: the slow login and the probe beside it: {response}", engine.name());
    let phases = phases(&response);
    for layer in ["tcp", "tls"] {
        let (_, status, ms) = phase(&phases, layer);
        assert!(status == "ok" && ms.is_some(), "{}: {layer} is the probe's, timed on its own: {phases:?}", engine.name());
    }
    let (_, status, ms) = phase(&phases, "authentication");
    assert!(status == "ok" && ms.is_some_and(|ms| ms >= 1500), "{}: the login waited out the delay: {phases:?}", engine.name());
    function.kill().await;
}

/// The login's connection goes silent at its first bytes. The probe finds TCP and TLS healthy,
/// so the failure is the login's, when the invocation's time runs out, with a hint that points at
/// the server's load rather than at security groups.
async fn a_stalled_login_behind_healthy_layers_is_named_the_logins(engine: EngineKind) {
    let bins = Binaries { dir: dbcreds_testenv::paths::profile_dir() };
    let aws = Aws::start().await;
    let db = Database::start(engine).await;
    let secret_arn = login_secret(&aws, &db).await;
    let mut function = bins.start("connection-test", connection_test_env(&aws, &db, &secret_arn)).await;
    db.proxy.arm(vec![TcpRule { connection: Some(1), client_chunk: 1, fault: TcpFault::Blackhole }]);
    let response = function.invoke(json!({}), Duration::from_secs(4)).await.expect_ok();
    db.proxy.disarm();
    let failure = &response["diagnostics"]["failure"];
    assert_eq!(failure["phase"], "authentication", "{}: {response}", engine.name());
    assert_eq!(response["statusCode"], 504, "{}: {response}", engine.name());
    let phases = phases(&response);
    for layer in ["tcp", "tls"] {
        assert_eq!(phase(&phases, layer).1, "ok", "{}: {phases:?}", engine.name());
    }
    assert!(failure["hint"].as_str().is_some_and(|hint| hint.contains("answered the probe") && hint.contains("max_connections")), "{}: {failure}", engine.name());
    function.kill().await;
}

#[tokio::test]
async fn mariadb_slow_login_is_probed_beside_and_still_succeeds() {
    a_slow_login_is_probed_beside_and_still_succeeds(EngineKind::MariaDb).await;
}

#[tokio::test]
async fn postgres_slow_login_is_probed_beside_and_still_succeeds() {
    a_slow_login_is_probed_beside_and_still_succeeds(EngineKind::Postgres).await;
}

#[tokio::test]
async fn mariadb_stalled_login_behind_healthy_layers_is_named_the_logins() {
    a_stalled_login_behind_healthy_layers_is_named_the_logins(EngineKind::MariaDb).await;
}

#[tokio::test]
async fn postgres_stalled_login_behind_healthy_layers_is_named_the_logins() {
    a_stalled_login_behind_healthy_layers_is_named_the_logins(EngineKind::Postgres).await;
}
