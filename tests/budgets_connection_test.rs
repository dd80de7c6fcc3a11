//! The connection test's call and connection budgets (issue 8, BENCHMARKS.md), kept in CI: the
//! `connection-test` binary behind the Lambda Runtime API emulator, moto behind the AWS call
//! counter and each database server behind a connection-counting proxy (the benchmark's own
//! fixture), so what is counted is what went over the wire.
//!
//! A check proves one login, so it may open one database connection: the driver's. The
//! layer-by-layer probe opens a second one only when the login fails below the server's answer
//! or is slow (tests/connection_test_network.rs and connection_test_tls.rs cover those).

use dbcreds_bench::fixture::{Aws, Binaries, Database, EngineKind, unique};
use dbcreds_bench::scenarios::{connection_test_env, login_secret};
use serde_json::json;
use std::time::Duration;

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
