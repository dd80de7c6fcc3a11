//! `dbcreds provision --file users.yaml`: the provisioner's lifecycle from the CLI, against a real
//! PostgreSQL server (an RDS-shaped master, not a superuser) and a real MariaDB, with moto.
//!
//! `--dry-run` must print the SQL the run would make, passwords redacted, and the secret writes,
//! and change nothing (checked in the catalogs and in Secrets Manager); the run must then do what
//! the dry run said; a second run changes nothing; drift is reconciled; `--previous` drops the
//! users a list no longer has; `--delete` drops the listed users and keeps the database.

mod cli_support;

use cli_support::Cli;
use dbcreds_testenv::{MariaDb, Postgres, ServerOptions, moto_rotation, rds_master};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn password() -> String {
    format!("Pw{}!#%^&*()-_=+", moto_rotation::new_token().replace('-', ""))
}

fn write_spec(dir: &Path, name: &str, master_arn: &str, users: Value) -> PathBuf {
    let path = dir.join(name);
    // YAML, as an operator writes it (JSON inside YAML flow style for the user entries).
    let mut yaml = format!("MasterSecretArn: {master_arn}\nDatabaseName: appdb\nUsers:\n");
    for user in users.as_array().unwrap() {
        yaml.push_str(&format!("  - {user}\n"));
    }
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Every statement of a dry-run report, in order.
fn statements(report: &Value) -> Vec<String> {
    report["planned"].as_array().unwrap().iter().flat_map(|w| w["statements"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned())).collect()
}

fn assert_no_secret(run: &cli_support::Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "a password in the output of dbcreds {:?}", run.args);
    }
    assert!(!run.stdout.contains("SCRAM-SHA-256$"), "a password verifier in the output: {}", run.stdout);
}

async fn roles(db: &Postgres) -> Vec<String> {
    db.admin_query_strings("SELECT rolname FROM pg_roles WHERE rolname LIKE 'app_%' ORDER BY 1").await.into_iter().map(|r| r[0].clone().unwrap()).collect()
}

async fn database_exists(db: &Postgres) -> bool {
    !db.admin_query_strings("SELECT 1 FROM pg_database WHERE datname = 'appdb'").await.is_empty()
}

#[tokio::test]
async fn postgres_dry_run_then_provision_reconcile_drop_and_delete() {
    let db = Postgres::start(ServerOptions::new().require_tls(true)).await;
    let master_password = rds_master::create_postgres_master(&db).await;
    let cli = Cli::start(Some(db.ca_pem_path())).await;
    let master_arn = cli.create_secret("prov-master", &rds_master::master_secret_document("postgres", db.host(), db.port(), rds_master::POSTGRES_MASTER, &master_password)).await;
    let (pw_a, pw_b) = (password(), password());
    let a = cli.create_secret("prov-a", &json!({"username": "app_a", "password": pw_a})).await;
    let b = cli.create_secret("prov-b", &json!({"username": "app_b", "password": pw_b})).await;
    let dir = tempfile::tempdir().unwrap();
    let both = write_spec(dir.path(), "users.yaml", &master_arn, json!([
        {"SecretArn": a, "Privileges": "readwrite"},
        {"SecretArn": b, "Privileges": "readonly", "RotationStrategy": "alternating-users"},
    ]));
    let both = both.to_str().unwrap();
    let versions_before = (cli.stages(&a).await, cli.stages(&b).await);

    // The dry run: the SQL and the secret writes, and nothing changed.
    let text = cli.run(&["provision", "--file", both, "--dry-run"]).await;
    text.expect(0);
    assert_no_secret(&text, &[&pw_a, &pw_b, &master_password]);
    assert!(text.stdout.contains("dry run, nothing was changed") && text.stdout.contains("'<redacted>'"), "{}", text.stdout);
    let dry = cli.run(&["--json", "provision", "--file", both, "--dry-run"]).await;
    dry.expect(0);
    assert_no_secret(&dry, &[&pw_a, &pw_b, &master_password]);
    let report = dry.json();
    let sql = statements(&report);
    assert_eq!(sql[0], "CREATE DATABASE \"appdb\"", "{sql:#?}");
    assert!(sql.contains(&"CREATE ROLE \"app_a\" LOGIN PASSWORD '<redacted>'".to_owned()), "{sql:#?}");
    assert!(sql.contains(&"CREATE ROLE \"app_b\" LOGIN PASSWORD '<redacted>'".to_owned()), "{sql:#?}");
    assert!(sql.contains(&"GRANT USAGE ON SCHEMA \"public\" TO \"app_a\"".to_owned()), "{sql:#?}");
    assert!(sql.iter().any(|s| s.contains("GRANT DELETE, INSERT, SELECT, UPDATE ON TABLES TO \"app_a\"")), "readwrite for app_a: {sql:#?}");
    assert!(sql.iter().any(|s| s.starts_with("GRANT") && s.contains("\"app_b\"")), "grants for app_b: {sql:#?}");
    assert!(!sql.iter().any(|s| s.contains("\"app_b\"") && s.contains("INSERT")), "app_b is read-only: {sql:#?}");
    let writes = report["secret_writes"].as_array().unwrap();
    assert_eq!(writes.iter().map(|w| (w["secret"].as_str().unwrap(), w["stages"][0].as_str().unwrap())).collect::<Vec<_>>(), [(a.as_str(), "AWSCURRENT"), (b.as_str(), "AWSCURRENT")]);
    assert!(!database_exists(&db).await, "the dry run created the database");
    assert!(roles(&db).await.is_empty(), "the dry run created users");
    assert_eq!((cli.stages(&a).await, cli.stages(&b).await), versions_before, "the dry run wrote a secret");

    // The run does what the dry run said.
    let run = cli.run(&["--json", "provision", "--file", both]).await;
    run.expect(0);
    assert_no_secret(&run, &[&pw_a, &pw_b, &master_password]);
    let done = run.json();
    assert_eq!(done["attributes"]["Usernames"], "app_a,app_b");
    assert_eq!(done["attributes"]["DatabaseName"], "appdb");
    assert!(database_exists(&db).await);
    assert_eq!(roles(&db).await, ["app_a", "app_b"]);
    let (_, completed_b) = cli.current(&b).await;
    assert_eq!(completed_b["masterarn"], master_arn.as_str(), "the alternating user's secret names the master");
    for arn in [&a, &b] {
        cli.run(&["check", "--secret-id", arn]).await.expect(0);
    }

    // Again: nothing to do, nothing written.
    let again = cli.run(&["--json", "provision", "--file", both, "--dry-run"]).await;
    again.expect(0);
    let again = again.json();
    assert!(statements(&again).is_empty(), "{again}");
    assert!(again["secret_writes"].as_array().unwrap().is_empty(), "{again}");
    let versions = (cli.stages(&a).await, cli.stages(&b).await);
    cli.run(&["provision", "--file", both]).await.expect(0);
    assert_eq!((cli.stages(&a).await, cli.stages(&b).await), versions, "a second run writes no secret");

    // Drift: app_b was given more than readonly (by the master, as on RDS, where nobody is a
    // superuser); the dry run shows the revoke, the run makes it.
    db.query_as(rds_master::POSTGRES_MASTER, &master_password, "appdb", "CREATE TABLE orders (id int); GRANT INSERT ON orders TO app_b").await.unwrap();
    let drift = cli.run(&["--json", "provision", "--file", both, "--dry-run"]).await;
    drift.expect(0);
    let sql = statements(&drift.json());
    assert!(sql.iter().any(|s| s.starts_with("REVOKE") && s.contains("INSERT") && s.contains("\"app_b\"")), "{sql:#?}");
    cli.run(&["provision", "--file", both]).await.expect(0);
    let leftover = db.query_as_admin_in("appdb", "SELECT has_table_privilege('app_b', 'orders', 'INSERT')::text").await.unwrap();
    assert_eq!(leftover[0][0].as_deref(), Some("false"));

    // --previous: the new list has only app_a, so app_b goes.
    let only_a = write_spec(dir.path(), "only-a.yaml", &master_arn, json!([{"SecretArn": a, "Privileges": "readwrite"}]));
    let only_a = only_a.to_str().unwrap();
    let plan = cli.run(&["--json", "provision", "--file", only_a, "--previous", both, "--dry-run"]).await;
    plan.expect(0);
    let sql = statements(&plan.json());
    assert!(sql.iter().any(|s| s.starts_with("DROP ROLE") && s.contains("\"app_b\"")), "{sql:#?}");
    assert_eq!(roles(&db).await, ["app_a", "app_b"], "a dry run drops nothing");
    cli.run(&["provision", "--file", only_a, "--previous", both]).await.expect(0);
    assert_eq!(roles(&db).await, ["app_a"]);

    // --delete: the listed users go, the database and its data stay.
    let plan = cli.run(&["--json", "provision", "--file", only_a, "--delete", "--dry-run"]).await;
    plan.expect(0);
    assert!(statements(&plan.json()).iter().any(|s| s.starts_with("DROP ROLE") && s.contains("\"app_a\"")));
    assert_eq!(roles(&db).await, ["app_a"]);
    cli.run(&["provision", "--file", only_a, "--delete"]).await.expect(0);
    assert!(roles(&db).await.is_empty());
    assert!(database_exists(&db).await, "the database is never dropped");
    assert_eq!(db.query_as_admin_in("appdb", "SELECT count(*)::text FROM orders").await.unwrap()[0][0].as_deref(), Some("0"));
}

#[tokio::test]
async fn mariadb_dry_run_and_bad_specifications() {
    let db = MariaDb::start(ServerOptions::new().require_tls(true)).await;
    let cli = Cli::start(Some(db.ca_pem_path())).await;
    let master_arn = cli.create_secret("prov-my-master", &rds_master::master_secret_document("mariadb", db.host(), db.port(), db.admin_user(), db.admin_password())).await;
    dbcreds_testenv::leak_audit::register_secret("the MariaDB master password", db.admin_password());
    let pw = password();
    let a = cli.create_secret("prov-my-a", &json!({"username": "app_a", "password": pw})).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "users.yaml", &master_arn, json!([{"SecretArn": a, "Privileges": "readonly"}, {"Username": "app_iam", "Authentication": "iam", "Privileges": ["SELECT"]}]));
    let spec = spec.to_str().unwrap();

    let dry = cli.run(&["--json", "provision", "--file", spec, "--dry-run"]).await;
    dry.expect(0);
    assert_no_secret(&dry, &[&pw, db.admin_password()]);
    let sql = statements(&dry.json());
    assert_eq!(
        sql,
        [
            "CREATE DATABASE IF NOT EXISTS `appdb`",
            "CREATE USER IF NOT EXISTS 'app_a'@'%' IDENTIFIED BY '<redacted>'",
            "GRANT SELECT, SHOW VIEW ON `appdb`.* TO 'app_a'@'%'",
            "CREATE USER IF NOT EXISTS 'app_iam'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL",
            "GRANT SELECT ON `appdb`.* TO 'app_iam'@'%'",
        ]
    );
    assert!(db.admin_query_strings("SELECT User FROM mysql.user WHERE User LIKE 'app%'").await.is_empty(), "the dry run created users");
    assert!(db.admin_query_strings("SHOW DATABASES LIKE 'appdb'").await.is_empty(), "the dry run created the database");

    // Bad specifications: exit 2, the property named, nothing touched.
    let bad = write_spec(dir.path(), "bad.yaml", &master_arn, json!([{"SecretArn": a, "Privileges": "superuser"}]));
    let run = cli.run(&["provision", "--file", bad.to_str().unwrap()]).await;
    run.expect(2);
    assert!(run.stderr.contains("Users[0].Privileges"), "{}", run.stderr);
    std::fs::write(dir.path().join("broken.yaml"), "Users: [unclosed\n").unwrap();
    let run = cli.run(&["--json", "provision", "--file", dir.path().join("broken.yaml").to_str().unwrap()]).await;
    run.expect(2);
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("not valid YAML or JSON at line"), "{}", run.stdout);
    cli.run(&["provision", "--file", "/nonexistent/users.yaml"]).await.expect(2);
    assert!(db.admin_query_strings("SELECT User FROM mysql.user WHERE User LIKE 'app%'").await.is_empty());
}
