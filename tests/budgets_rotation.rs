//! The rotation's call and connection budgets (issue 8, BENCHMARKS.md), kept in CI: the `rotator`
//! binary behind the Lambda Runtime API emulator, moto behind the AWS call counter and each
//! database server behind a connection-counting proxy (the benchmark's own fixture,
//! `dbcreds_bench::fixture`), so what is counted is what went over the wire, not what the code
//! under test says it did.
//!
//! Every step's Secrets Manager calls are checked per API, in the first rotation of a process
//! (empty version cache) and in the next one (warm), and every step's new database connections
//! against the logins it must prove. A count that grows is a regression; a count that shrinks
//! means the budget below (and BENCHMARKS.md) should be lowered to keep it.

use dbcreds_bench::fixture::{Aws, Binaries, Database, EngineKind, unique};
use dbcreds_bench::rotation::{self, RotationRun, STEPS, Strategy};
use serde_json::json;

type Budget = [(&'static str, &'static [(&'static str, u64)]); 4];

/// Secrets Manager calls per step. Every step describes the secret once (the rotation
/// contract's preamble); createSecret reads AWSCURRENT (served by the version cache once the
/// process wrote it, in the previous rotation's createSecret), probes the token's AWSPENDING
/// value (which the cache cannot answer: another process may have written it) and writes it;
/// setSecret and testSecret read AWSCURRENT and AWSPENDING from the cache; alternating users
/// read the master secret in a process's first rotation and reuse it while warm
/// (`MASTER_SECRET_CACHE_SECONDS`, 5 minutes by default); finishSecret moves AWSCURRENT and
/// then removes AWSPENDING.
fn calls_budget(strategy: Strategy, fresh_process: bool) -> Budget {
    let create: &'static [(&'static str, u64)] =
        if fresh_process { &[("DescribeSecret", 1), ("GetSecretValue", 2), ("PutSecretValue", 1)] } else { &[("DescribeSecret", 1), ("GetSecretValue", 1), ("PutSecretValue", 1)] };
    let set: &'static [(&'static str, u64)] = match strategy {
        Strategy::SingleUser => &[("DescribeSecret", 1)],
        Strategy::AlternatingUsers if fresh_process => &[("DescribeSecret", 1), ("GetSecretValue", 1)],
        Strategy::AlternatingUsers => &[("DescribeSecret", 1)],
    };
    [("createSecret", create), ("setSecret", set), ("testSecret", &[("DescribeSecret", 1)]), ("finishSecret", &[("DescribeSecret", 1), ("UpdateSecretVersionStage", 2)])]
}

/// New database connections per step: one per login the step must prove. Single user:
/// setSecret tries the pending password (refused) and, at the same time, logs in as the current
/// user to change it. Alternating users: setSecret tries the pending password, proves the
/// current one (the confused-deputy guard) and logs in as the master, all three at once.
/// testSecret logs in with the pending one.
fn connections_budget(strategy: Strategy) -> [(&'static str, u64); 4] {
    let set = match strategy {
        Strategy::SingleUser => 2,
        Strategy::AlternatingUsers => 3,
    };
    [("createSecret", 0), ("setSecret", set), ("testSecret", 1), ("finishSecret", 0)]
}

fn check(run: &RotationRun, strategy: Strategy, fresh_process: bool, what: &str) {
    let calls = calls_budget(strategy, fresh_process);
    let connections = connections_budget(strategy);
    let mut problems = Vec::new();
    for (index, step) in STEPS.iter().enumerate() {
        let made = run.steps[index].calls.of_service("secretsmanager");
        let (budget_step, budget) = calls[index];
        assert_eq!(budget_step, *step);
        let expected: u64 = budget.iter().map(|(_, n)| n).sum();
        let per_api_matches = budget.iter().all(|(api, n)| made.get(&format!("secretsmanager.{api}")) == *n);
        if !per_api_matches || made.total() != expected {
            let budget_text = budget.iter().map(|(api, n)| format!("{api}×{n}")).collect::<Vec<_>>().join(" ");
            problems.push(format!("{step}: Secrets Manager calls {made}, budget {budget_text}"));
        }
        let opened = run.steps[index].connections;
        let (_, allowed) = connections[index];
        if opened != allowed {
            problems.push(format!("{step}: {opened} new database connections, budget {allowed} (one per proven login)"));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: the rotation left its budget (a count that grew is a regression; one that shrank: lower the budget here and in BENCHMARKS.md):\n  {}",
        problems.join("\n  ")
    );
}

/// For each strategy: a fresh process, its first rotation, then a second one in the same warm
/// process, each checked step by step.
async fn rotations_keep_their_budgets(engine: EngineKind) {
    let bins = Binaries { dir: dbcreds_testenv::paths::profile_dir() };
    let aws = Aws::start().await;
    let db = Database::start(engine).await;
    for strategy in Strategy::ALL {
        let secret = rotation::rotated_secret(&aws, &db, strategy).await;
        let mut function = rotation::start_function(&bins, &aws, &db, strategy).await;
        let fresh = rotation::rotate(&aws, &db, &mut function, &secret.arn).await;
        check(&fresh, strategy, true, &format!("{} {}, first rotation of a process", engine.name(), strategy.name()));
        let warm = rotation::rotate(&aws, &db, &mut function, &secret.arn).await;
        check(&warm, strategy, false, &format!("{} {}, warm rotation", engine.name(), strategy.name()));
        function.kill().await;
    }
}

#[tokio::test]
async fn mariadb_rotations_keep_their_call_and_connection_budgets() {
    rotations_keep_their_budgets(EngineKind::MariaDb).await;
}

#[tokio::test]
async fn postgres_rotations_keep_their_call_and_connection_budgets() {
    rotations_keep_their_budgets(EngineKind::Postgres).await;
}

/// A warm function reuses the master secret it read; when the master is rotated behind its back
/// (a new AWSCURRENT and a new password in the database), the remembered password is refused and
/// setSecret reads the master again and finishes: one more read and one more connection, only
/// in that rotation.
async fn a_master_rotated_behind_a_warm_function_is_read_again(engine: EngineKind) {
    let bins = Binaries { dir: dbcreds_testenv::paths::profile_dir() };
    let aws = Aws::start().await;
    let db = Database::start(engine).await;
    let master_user = unique("master");
    let first_password = format!("Master-pw-{}", unique(""));
    match engine {
        EngineKind::MariaDb => db.admin(&format!("CREATE USER '{master_user}'@'%' IDENTIFIED BY '{first_password}'; GRANT ALL PRIVILEGES ON *.* TO '{master_user}'@'%' WITH GRANT OPTION")).await,
        EngineKind::Postgres => db.admin(&format!("CREATE ROLE {master_user} LOGIN SUPERUSER PASSWORD '{first_password}'")).await,
    }
    let master_arn = aws.create_secret(&db.document(&master_user, &first_password)).await;
    let app_user = unique("app");
    let app_password = format!("Initial-pw-{}", unique(""));
    db.create_login(&app_user, &app_password).await;
    let mut document = db.document(&app_user, &app_password);
    document["masterarn"] = json!(master_arn);
    let arn = aws.create_secret(&document).await;

    let mut function = rotation::start_function(&bins, &aws, &db, Strategy::AlternatingUsers).await;
    let first = rotation::rotate(&aws, &db, &mut function, &arn).await;
    check(&first, Strategy::AlternatingUsers, true, "first rotation");
    let warm = rotation::rotate(&aws, &db, &mut function, &arn).await;
    check(&warm, Strategy::AlternatingUsers, false, "warm rotation with the remembered master");

    let second_password = format!("Master-pw-{}", unique(""));
    match engine {
        EngineKind::MariaDb => db.admin(&format!("ALTER USER '{master_user}'@'%' IDENTIFIED BY '{second_password}'")).await,
        EngineKind::Postgres => db.admin(&format!("ALTER ROLE {master_user} PASSWORD '{second_password}'")).await,
    }
    aws.sm.put_secret_value().secret_id(&master_arn).secret_string(db.document(&master_user, &second_password).to_string()).send().await.expect("put the master's new AWSCURRENT");

    let after = rotation::rotate(&aws, &db, &mut function, &arn).await;
    let set = after.step("setSecret");
    let reads = set.calls.of_service("secretsmanager").get("secretsmanager.GetSecretValue");
    assert_eq!(reads, 1, "setSecret after the master changed: the master read again once, {}", set.calls);
    assert_eq!(set.connections, 4, "setSecret after the master changed: pending tried, current proven, the remembered master refused, the new one used");
    assert!(set.logs.contains("the remembered master secret was refused"), "setSecret says why it read the master again:\n{}", set.logs);
    let next = rotation::rotate(&aws, &db, &mut function, &arn).await;
    check(&next, Strategy::AlternatingUsers, false, "warm rotation with the master read again");

    // A master that is really wrong (its password changed in the database alone), read from
    // Secrets Manager by a new process: refused once, and not read again, since a second read
    // would return the same.
    let third_password = format!("Master-pw-{}", unique(""));
    match engine {
        EngineKind::MariaDb => db.admin(&format!("ALTER USER '{master_user}'@'%' IDENTIFIED BY '{third_password}'")).await,
        EngineKind::Postgres => db.admin(&format!("ALTER ROLE {master_user} PASSWORD '{third_password}'")).await,
    }
    function.kill().await;
    let token = dbcreds_testenv::moto_rotation::new_token();
    aws.start_rotation(&arn, &token).await;
    function.invoke(rotation::event("createSecret", &arn, &token), rotation::TIMEOUT).await.expect_ok();
    let (calls_before, connections_before) = (aws.calls(), db.connections());
    let (error_type, message) = function.invoke(rotation::event("setSecret", &arn, &token), rotation::TIMEOUT).await.expect_err();
    let (calls, connections) = (aws.calls().since(&calls_before).of_service("secretsmanager"), db.connections() - connections_before);
    assert_eq!(error_type, "dbcreds.authentication", "{message}");
    assert_eq!(calls.get("secretsmanager.GetSecretValue"), 1, "the master read once, from Secrets Manager: {calls}");
    assert_eq!(connections, 3, "pending tried, current proven, the master refused once: {message}");
    function.kill().await;
}

#[tokio::test]
async fn mariadb_a_master_rotated_behind_a_warm_function_is_read_again() {
    a_master_rotated_behind_a_warm_function_is_read_again(EngineKind::MariaDb).await;
}

#[tokio::test]
async fn postgres_a_master_rotated_behind_a_warm_function_is_read_again() {
    a_master_rotated_behind_a_warm_function_is_read_again(EngineKind::Postgres).await;
}
