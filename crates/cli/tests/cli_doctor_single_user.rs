//! `dbcreds doctor`, `rotate` and `reset-password` on a single-user secret, against a real
//! PostgreSQL server (verify-full TLS, an RDS-shaped master that is not a superuser) and moto.
//!
//! Each broken state is staged for real: a rotation stuck in AWSPENDING with no value (the
//! function never ran), one stuck after setSecret (the database already has the new password), a
//! password changed behind the secret's back, and a rotation disabled by CancelRotateSecret
//! mid-rotation. For each, the doctor's verdict and fix are checked, the fix is run exactly as
//! printed, and the doctor must then report the secret healthy.

mod cli_support;

use cli_support::{Cli, Run, findings, fix_commands, problems};
use dbcreds_testenv::{Postgres, ServerOptions, moto_rotation, rds_master};
use serde_json::{Value, json};

struct World {
    db: Postgres,
    cli: Cli,
    /// The master secret (RDS JSON), for `--master-secret`.
    master_arn: String,
    /// The application's secret (user `app` on `appdb`).
    arn: String,
}

fn password() -> String {
    moto_rotation::new_token().replace('-', "")
}

async fn world(name: &str) -> World {
    let db = Postgres::start(ServerOptions::new().require_tls(true)).await;
    let master_password = rds_master::create_postgres_master(&db).await;
    let cli = Cli::start(Some(db.ca_pem_path())).await;
    let master = rds_master::master_secret_document("postgres", db.host(), db.port(), rds_master::POSTGRES_MASTER, &master_password);
    let master_arn = cli.create_secret(&format!("{name}-master"), &master).await;
    let app_password = password();
    db.admin_exec("CREATE DATABASE appdb").await;
    db.admin_exec(&format!("CREATE ROLE app LOGIN PASSWORD '{app_password}'; GRANT CONNECT ON DATABASE appdb TO app")).await;
    let document = json!({"engine": "postgres", "host": db.host(), "port": db.port().to_string(), "username": "app", "password": app_password, "dbname": "appdb"});
    let arn = cli.create_secret(name, &document).await;
    World { db, cli, master_arn, arn }
}

async fn doctor(w: &World, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["doctor", w.arn.as_str()];
    args.extend(extra);
    let text = w.cli.run(&args).await;
    let mut json_args = vec!["--json"];
    json_args.extend(&args);
    let json = w.cli.run(&json_args).await;
    let report = json.json();
    // Text and JSON are the same report: same exit code, same verdict, every finding and fix.
    assert_eq!(text.code, json.code, "text and --json exit alike");
    assert_eq!(report["exit_code"], json.code);
    assert!(text.stdout.contains(&format!("verdict: {}", report["verdict"]["summary"].as_str().unwrap())), "{}", text.stdout);
    for finding in report["findings"].as_array().unwrap() {
        assert!(text.stdout.contains(finding["message"].as_str().unwrap()), "the text shows {finding}:\n{}", text.stdout);
        for fix in finding["fixes"].as_array().into_iter().flatten() {
            assert!(text.stdout.contains(fix["command"].as_str().unwrap()), "the text shows {fix}");
        }
    }
    for version in report["versions"].as_array().unwrap() {
        assert!(text.stdout.contains(version["version_id"].as_str().unwrap()));
    }
    (text, report)
}

fn version<'a>(report: &'a Value, stage: &str) -> &'a Value {
    report["versions"].as_array().unwrap().iter().find(|v| v["stages"].as_array().unwrap().iter().any(|s| s == stage)).unwrap_or_else(|| panic!("no {stage} version in {report}"))
}

async fn assert_healthy(w: &World, extra: &[&str], what: &str) -> Value {
    let (text, report) = doctor(w, extra).await;
    assert_eq!(text.code, 0, "{what}: the doctor must find the secret healthy:\n{}", text.stdout);
    assert_eq!(report["verdict"]["healthy"], true, "{what}");
    assert_eq!(version(&report, "AWSCURRENT")["login"]["logs_in"], true, "{what}");
    assert!(w.cli.stages(&w.arn).await.values().all(|s| !s.iter().any(|x| x == "AWSPENDING")), "{what}: nothing pending");
    report
}

/// Runs every fix the doctor printed for its problems, in order, each of which must succeed.
async fn run_fixes(w: &World, report: &Value) {
    for command in fix_commands(report) {
        if let Some(run) = w.cli.run_fix(&command).await {
            run.expect(0);
        }
    }
}

#[tokio::test]
async fn a_healthy_secret_is_reported_with_its_versions_logins_and_tls() {
    let w = world("healthy").await;
    w.cli.first_rotation(&w.arn, "single-user").await;
    // A new rotation started here (no RotateSecret): the four steps, each shown.
    let run = w.cli.run(&["rotate", &w.arn]).await;
    run.expect(0);
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        assert!(run.stdout.contains(step), "{}", run.stdout);
    }
    let rotated = w.cli.run(&["--json", "rotate", &w.arn]).await;
    rotated.expect(0);
    let rotated = rotated.json();
    assert_eq!(rotated["rotated"], true);
    assert_eq!(rotated["steps"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap()).collect::<Vec<_>>(), ["created", "password_changed", "tested", "finished"]);
    let token = rotated["version"].as_str().unwrap();
    assert_eq!(w.cli.current(&w.arn).await.0, token, "the rotation's version is AWSCURRENT");

    let report = assert_healthy(&w, &[], "after three rotations").await;
    assert_eq!(report["rotation"]["enabled"], true);
    assert_eq!(report["strategy"], "single-user");
    let current = version(&report, "AWSCURRENT");
    assert_eq!(current["version_id"], token);
    assert_eq!(current["login"]["as_user"], "app");
    assert!(current["login"]["tls"].as_str().unwrap().starts_with("TLSv1."), "{current}");
    assert_eq!(current["login"]["certificate_verified"], true);
    assert_eq!(current["document"]["username"], "app");
    assert!(current["document"].get("password").is_none(), "no password in a report: {current}");
    // AWSPREVIOUS is refused, as it should be after a single-user rotation: a note, not a problem.
    assert_eq!(version(&report, "AWSPREVIOUS")["login"]["failure"]["class"], "authentication");
    assert_eq!(findings(&report, "previous_refused")[0]["severity"], "note");
    // The first version and the first rotation's have no stage left: listed, noted, not read.
    let unlabelled: Vec<&Value> = report["versions"].as_array().unwrap().iter().filter(|v| v["stages"].as_array().unwrap().is_empty()).collect();
    assert_eq!(unlabelled.len(), 2, "{report}");
    assert!(unlabelled.iter().all(|v| v["value"]["state"] == "not_read"));
    // In the order an operator reads them.
    let order: Vec<&str> = report["versions"].as_array().unwrap().iter().map(|v| v["stages"].get(0).and_then(Value::as_str).unwrap_or("-")).collect();
    assert_eq!(order, ["AWSCURRENT", "AWSPREVIOUS", "-", "-"]);
    assert_eq!(findings(&report, "unlabelled_versions").len(), 1);
}

#[tokio::test]
async fn a_pending_version_without_a_value_is_stuck_and_resume_finishes_it() {
    let w = world("stuck-empty").await;
    w.cli.first_rotation(&w.arn, "single-user").await;
    let (old_version, _) = w.cli.current(&w.arn).await;
    // RotateSecret ran; the function never did.
    let token = moto_rotation::new_token();
    w.cli.start_rotation(&w.arn, &token).await;

    let (text, report) = doctor(&w, &[]).await;
    text.expect(3);
    assert_eq!(problems(&report), ["stuck_pending"]);
    assert_eq!(version(&report, "AWSPENDING")["value"]["state"], "missing");
    let stuck = &findings(&report, "stuck_pending")[0];
    assert!(stuck["message"].as_str().unwrap().contains("no value"), "{stuck}");
    assert_eq!(fix_commands(&report), [format!("dbcreds rotate {} --resume {token}", w.arn)]);

    // What the service refuses, the CLI refuses too, and says how to get on.
    let refused = w.cli.run(&["--json", "rotate", &w.arn]).await;
    refused.expect(1);
    let refused = refused.json();
    assert!(refused["steps"][0]["detail"].as_str().unwrap().contains("isn't complete"), "{refused}");
    assert_eq!(refused["next"], format!("dbcreds rotate {} --resume {token}", w.arn));

    run_fixes(&w, &report).await;
    let report = assert_healthy(&w, &[], "after --resume").await;
    assert_eq!(version(&report, "AWSCURRENT")["version_id"], token.as_str());
    assert_eq!(version(&report, "AWSPREVIOUS")["version_id"], old_version.as_str());
}

#[tokio::test]
async fn a_rotation_stopped_after_set_secret_locks_applications_out_until_resumed() {
    let w = world("stuck-set").await;
    w.cli.first_rotation(&w.arn, "single-user").await;
    let token = moto_rotation::new_token();
    w.cli.start_rotation(&w.arn, &token).await;
    // The function ran createSecret and setSecret, then died: the rotator's own code, here.
    let clients = dbcreds_aws::AwsClients::from_sdk_config(w.cli.moto.sdk_config().await, None).unwrap();
    let store = dbcreds_aws::SecretsManagerStore::new(&clients);
    let trust = std::sync::Arc::new(dbcreds_db::TrustStore::from_pem(w.db.ca_pem()).unwrap());
    let databases = dbcreds_rotation::LiveDatabases::new(trust);
    let config = dbcreds_rotation::RotationConfig::default();
    let rotator = dbcreds_rotation::Rotator { store: &store, databases: &databases, endpoints: None, config: &config };
    for step in ["createSecret", "setSecret"] {
        let event = json!({"Step": step, "SecretId": w.arn, "ClientRequestToken": token});
        let report = rotator.run(&event, tokio::time::Instant::now() + std::time::Duration::from_secs(30)).await;
        report.result.unwrap_or_else(|err| panic!("{step}: {err}"));
    }

    let (text, report) = doctor(&w, &[]).await;
    text.expect(3);
    // One problem, not two: AWSCURRENT is refused because of the stuck rotation, and finishing it fixes both.
    assert_eq!(problems(&report), ["stuck_pending"]);
    assert_eq!(version(&report, "AWSCURRENT")["login"]["failure"]["class"], "authentication");
    assert_eq!(version(&report, "AWSPENDING")["login"]["logs_in"], true);
    assert!(findings(&report, "stuck_pending")[0]["message"].as_str().unwrap().contains("setSecret ran but finishSecret did not"));
    assert_eq!(fix_commands(&report), [format!("dbcreds rotate {} --resume {token}", w.arn)]);
    run_fixes(&w, &report).await;
    assert_healthy(&w, &[], "after --resume").await;
}

#[tokio::test]
async fn a_password_changed_behind_the_secrets_back_is_reset_with_the_master() {
    let w = world("drifted").await;
    w.cli.first_rotation(&w.arn, "single-user").await;
    let intruder = password();
    w.db.admin_exec(&format!("ALTER ROLE app PASSWORD '{intruder}'")).await;
    dbcreds_testenv::leak_audit::register_secret("the password set behind the secret's back", &intruder);

    // Without a master secret the doctor says what is wrong, and what to fill in.
    let (text, report) = doctor(&w, &[]).await;
    text.expect(3);
    assert_eq!(problems(&report), ["current_refused"]);
    let fix = &findings(&report, "current_refused")[0]["fixes"][0];
    assert_eq!(fix["exact"], false);
    assert!(fix["command"].as_str().unwrap().contains("--master-secret <master secret ARN>"), "{fix}");

    // With it, the doctor also sees the user exists, and the fix is exact.
    let (text, report) = doctor(&w, &["--master-secret", &w.master_arn]).await;
    text.expect(3);
    assert_eq!(problems(&report), ["current_refused"]);
    assert_eq!(report["master"]["login"]["logs_in"], true);
    assert_eq!(report["users"][0]["exists"], true);
    assert!(findings(&report, "current_refused")[0]["message"].as_str().unwrap().contains("changed outside the rotation"));
    assert_eq!(fix_commands(&report), [format!("dbcreds reset-password {} --master-secret {}", w.arn, w.master_arn)]);
    run_fixes(&w, &report).await;
    assert_healthy(&w, &["--master-secret", &w.master_arn], "after reset-password").await;
    let refused = w.db.query_as("app", &intruder, "appdb", "SELECT 1").await;
    assert!(refused.is_err(), "the intruder's password no longer works");
}

#[tokio::test]
async fn a_disabled_rotation_with_a_stuck_version_is_turned_back_on_in_order() {
    let w = world("disabled").await;
    let function = dbcreds_testenv::moto_lambda::register_rotation_function(&w.cli.moto, "dbcreds-rotator").await;
    // Rotation configured with the function, the first rotation run by it (played by the CLI:
    // moto's Lambda does nothing when invoked).
    let rotate = w.cli.sm.rotate_secret().secret_id(&w.arn).rotation_lambda_arn(&function).rotation_rules(aws_sdk_secretsmanager::types::RotationRulesType::builder().automatically_after_days(30).build());
    let first = rotate.send().await.expect("RotateSecret").version_id.expect("a version");
    w.cli.run(&["rotate", &w.arn, "--resume", &first]).await.expect(0);
    // A second rotation, cancelled mid-way: rotation off, AWSPENDING left behind.
    // (moto forgets the function when RotateSecret does not name it again, where AWS keeps it.)
    let second = w.cli.sm.rotate_secret().secret_id(&w.arn).rotation_lambda_arn(&function).send().await.expect("RotateSecret").version_id.expect("a version");
    w.cli.sm.cancel_rotate_secret().secret_id(&w.arn).send().await.expect("CancelRotateSecret");

    let (text, report) = doctor(&w, &[]).await;
    text.expect(3);
    assert_eq!(report["rotation"]["enabled"], false);
    assert_eq!(report["rotation"]["function_arn"], function.as_str());
    assert_eq!(problems(&report), ["stuck_pending", "rotation_disabled"]);
    assert_eq!(
        fix_commands(&report),
        [
            format!("aws secretsmanager update-secret-version-stage --secret-id {} --version-stage AWSPENDING --remove-from-version-id {second}", w.arn),
            format!("aws secretsmanager rotate-secret --secret-id {} --rotation-lambda-arn {function}", w.arn),
        ]
    );
    // Resuming is refused while rotation is off: the rotator's preamble says so.
    w.cli.run(&["rotate", &w.arn, "--resume", &second]).await.expect(1);
    run_fixes(&w, &report).await;

    // RotateSecret turned rotation on and invoked the function; moto's does nothing, which is
    // what a failed function leaves: the doctor sends us to finish the rotation.
    let (text, report) = doctor(&w, &[]).await;
    text.expect(3);
    assert_eq!(report["rotation"]["enabled"], true);
    assert_eq!(problems(&report), ["stuck_pending"]);
    run_fixes(&w, &report).await;
    assert_healthy(&w, &[], "rotation back on and rotated").await;
}

#[tokio::test]
async fn a_rotation_never_turned_on_is_sent_to_rotate_secret_with_the_function_to_fill_in() {
    let w = world("never-on").await;
    let (text, report) = doctor(&w, &[]).await;
    text.expect(3);
    assert_eq!(report["rotation"]["enabled"], false);
    assert_eq!(problems(&report), ["rotation_disabled"]);
    // The current credentials work: only the rotation is missing.
    assert_eq!(version(&report, "AWSCURRENT")["login"]["logs_in"], true);
    let fix = &findings(&report, "rotation_disabled")[0]["fixes"][0];
    assert_eq!(fix["exact"], false, "no function is configured: the operator names it");
    let command = fix["command"].as_str().unwrap();
    assert_eq!(command, format!("aws secretsmanager rotate-secret --secret-id {} --rotation-lambda-arn <rotation function ARN> --rotation-rules '{{\"AutomaticallyAfterDays\":30}}'", w.arn));

    // The operator fills in the rotator's ARN and runs it; the function then rotates (played
    // here by the command the doctor suggests next, as moto's Lambda runs nothing).
    let function = dbcreds_testenv::moto_lambda::register_rotation_function(&w.cli.moto, "dbcreds-rotator").await;
    w.cli.run_fix(&command.replace("<rotation function ARN>", &function)).await;
    let (text, report) = doctor(&w, &[]).await;
    text.expect(3);
    assert_eq!(report["rotation"]["function_arn"], function.as_str());
    assert_eq!(problems(&report), ["stuck_pending"]);
    run_fixes(&w, &report).await;
    assert_healthy(&w, &[], "rotation on and rotated").await;
}
