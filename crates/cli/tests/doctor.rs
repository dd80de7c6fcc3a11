//! `dbcreds doctor` against a real TLS MariaDB and moto, through the real binary: each broken
//! state is staged for real (a stuck AWSPENDING, a password changed behind the secret's back, a
//! dropped alternating clone, a rotation never turned on), the verdict and the suggested command
//! are checked, the suggested command is run as printed (`sh -c`, with this build's `dbcreds`
//! first on PATH), and the doctor must then report the secret healthy. `--json` and the text
//! say the same; exit codes are checked; every output is recorded for the suite's leak audit and
//! searched here for the passwords the test knows.

use aws_sdk_secretsmanager::Client;
use dbcreds_testenv::{MariaDb, Moto, ServerOptions, leak_audit, moto_rotation, rds_master};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const APP_PASSWORD: &str = "app-pass-Q3v9s7LmW2xZ";

struct World {
    db: MariaDb,
    moto: Moto,
    sm: Client,
    /// Passwords that must never appear in any output.
    secrets: Vec<String>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl World {
    async fn start() -> World {
        let db = MariaDb::start(ServerOptions::new().require_tls(true)).await;
        let moto = Moto::start().await;
        let sm = Client::new(&moto.sdk_config().await);
        let secrets = vec![APP_PASSWORD.to_owned(), db.admin_password().to_owned()];
        for secret in &secrets {
            leak_audit::register_secret("dbcreds cli test password", secret);
        }
        World { db, moto, sm, secrets }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        env.push(("DB_CA_BUNDLE".into(), self.db.ca_pem_path().display().to_string()));
        let bin = Path::new(env!("CARGO_BIN_EXE_dbcreds")).parent().unwrap().display().to_string();
        env.push(("PATH".into(), format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())));
        env
    }

    fn record(&self, what: &str, run: &Run) {
        leak_audit::record_output(&format!("dbcreds {what} stdout"), &run.stdout);
        leak_audit::record_output(&format!("dbcreds {what} stderr"), &run.stderr);
        for secret in &self.secrets {
            assert!(!run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()), "a password is in the output of {what}");
        }
    }

    fn dbcreds(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_dbcreds")).args(args).env_clear().envs(self.env()).output().expect("run dbcreds");
        let run = Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() };
        self.record(&args.join(" "), &run);
        run
    }

    /// Runs a suggested command as the operator would paste it.
    fn paste(&self, command: &str) -> Run {
        let out = Command::new("sh").arg("-c").arg(command).env_clear().envs(self.env()).output().expect("run sh");
        let run = Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() };
        self.record(command, &run);
        run
    }

    /// `doctor --json` and `doctor` (text) of the secret: the report, after checking both agree.
    fn doctor(&self, arn: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--json", "doctor", arn];
        args.extend(extra);
        let run = self.dbcreds(&args);
        let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("doctor --json is not JSON ({err}): {}\n{}", run.stdout, run.stderr));
        assert_eq!(report["exit_code"], run.code, "{report:#}");
        let text = self.dbcreds(&args[1..]);
        assert_eq!(text.code, run.code, "text and JSON exit alike");
        assert!(text.stdout.contains(&format!("verdict: {}", report["verdict"]["summary"].as_str().unwrap())), "{}", text.stdout);
        for finding in report["findings"].as_array().unwrap() {
            assert!(text.stdout.contains(finding["code"].as_str().unwrap()), "{}", text.stdout);
            for fix in finding["fixes"].as_array().into_iter().flatten() {
                assert!(text.stdout.contains(fix["command"].as_str().unwrap()), "the text shows the same fix: {}", text.stdout);
            }
        }
        (run.code, report)
    }

    fn document(&self, user: &str, password: &str, masterarn: Option<&str>) -> Value {
        let mut doc = json!({"engine": "mariadb", "host": self.db.host(), "port": self.db.port(), "username": user, "password": password});
        if let Some(arn) = masterarn {
            doc["masterarn"] = json!(arn);
        }
        doc
    }

    async fn create_secret(&self, name: &str, document: &Value) -> String {
        self.sm.create_secret().name(name).secret_string(document.to_string()).send().await.expect("CreateSecret").arn.expect("an ARN")
    }

    async fn master_secret(&self) -> String {
        let doc = rds_master::master_secret_document("mariadb", self.db.host(), self.db.port(), self.db.admin_user(), self.db.admin_password());
        self.create_secret("master", &doc).await
    }

    async fn app_user(&self) {
        self.db.admin_exec(&format!("CREATE USER 'app'@'%' IDENTIFIED BY '{APP_PASSWORD}'")).await;
        self.db.admin_exec("GRANT SELECT ON mysql.db TO 'app'@'%'").await;
    }

    /// Rotation on, as RotateSecret turns it on, without a rotation in progress (the service's
    /// stub version is left without a stage, as a finished or abandoned rotation leaves one).
    async fn enable_rotation(&self, arn: &str) {
        let token = moto_rotation::new_token();
        moto_rotation::start_rotation(&self.sm, arn, &token).await.unwrap_or_else(|p| panic!("{p}"));
        self.sm.update_secret_version_stage().secret_id(arn).version_stage("AWSPENDING").remove_from_version_id(&token).send().await.expect("remove AWSPENDING");
    }
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "problem").map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

/// The problem's only fix, which must be exact (no placeholder).
fn the_fix(report: &Value, code: &str) -> String {
    let finding = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == code).unwrap_or_else(|| panic!("no {code}: {report:#}"));
    let fixes = finding["fixes"].as_array().expect("fixes");
    assert_eq!(fixes.len(), 1, "{finding:#}");
    assert_eq!(fixes[0]["exact"], true, "{finding:#}");
    fixes[0]["command"].as_str().unwrap().to_owned()
}

fn assert_healthy(world: &World, arn: &str, extra: &[&str]) {
    let (code, report) = world.doctor(arn, extra);
    assert_eq!(code, 0, "healthy after the fix: {report:#}");
    assert_eq!(report["verdict"]["healthy"], true, "{report:#}");
    assert_eq!(report["database_matches_current"], true, "{report:#}");
}

#[tokio::test]
async fn a_stuck_pending_is_diagnosed_and_the_suggested_resume_finishes_it() {
    let world = World::start().await;
    world.app_user().await;
    let arn = world.create_secret("app", &world.document("app", APP_PASSWORD, None)).await;
    let token = moto_rotation::new_token();
    // RotateSecret made the version, and the function never ran (or died before createSecret).
    moto_rotation::start_rotation(&world.sm, &arn, &token).await.unwrap_or_else(|p| panic!("{p}"));

    let (code, report) = world.doctor(&arn, &[]);
    assert_eq!(code, 3, "problems found: {report:#}");
    assert_eq!(codes(&report), ["stuck_pending"], "{report:#}");
    let pending = report["versions"].as_array().unwrap().iter().find(|v| v["version_id"] == token.as_str()).expect("the pending version is listed");
    assert_eq!(pending["value"]["state"], "missing", "a pending version with no value: {pending:#}");
    let current = report["versions"].as_array().unwrap().iter().find(|v| v["stages"] == json!(["AWSCURRENT"])).expect("AWSCURRENT");
    assert_eq!(current["login"]["logs_in"], true);
    assert_eq!(current["login"]["certificate_verified"], true);
    assert!(current["login"]["tls"].as_str().unwrap().starts_with("TLSv1."), "{current:#}");
    let fix = the_fix(&report, "stuck_pending");
    assert!(fix.starts_with(&format!("dbcreds rotate {arn} --resume {token}")), "{fix}");

    // A new rotation is refused while this one is pending, and says how to finish it.
    let refused = world.dbcreds(&["rotate", &arn]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stdout.contains("isn't complete") && refused.stdout.contains(&format!("--resume {token}")), "{}", refused.stdout);

    let ran = world.paste(&fix);
    assert_eq!(ran.code, 0, "the fix runs: {}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains(&format!("rotated: version {token} is AWSCURRENT")), "{}", ran.stdout);
    assert_healthy(&world, &arn, &[]);
}

#[tokio::test]
async fn a_password_changed_behind_the_secrets_back_is_reset_with_the_master() {
    let world = World::start().await;
    world.app_user().await;
    let master = world.master_secret().await;
    let arn = world.create_secret("app", &world.document("app", APP_PASSWORD, None)).await;
    world.enable_rotation(&arn).await;
    assert_healthy(&world, &arn, &[]);

    let behind = "changed-behind-the-back-8Kq2";
    leak_audit::register_secret("dbcreds cli test password", behind);
    world.db.admin_exec(&format!("ALTER USER 'app'@'%' IDENTIFIED BY '{behind}'")).await;
    let (code, report) = world.doctor(&arn, &["--master-secret", &master]);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(codes(&report), ["current_refused"], "{report:#}");
    assert_eq!(report["database_matches_current"], false);
    let fix = the_fix(&report, "current_refused");
    assert!(fix.starts_with(&format!("dbcreds reset-password {arn} --master-secret {master}")), "{fix}");

    let ran = world.paste(&fix);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(!ran.stdout.contains(behind));
    assert_healthy(&world, &arn, &["--master-secret", &master]);
}

#[tokio::test]
async fn a_dropped_alternating_user_is_recreated_from_its_alternate() {
    let world = World::start().await;
    world.app_user().await;
    let master = world.master_secret().await;
    let arn = world.create_secret("app", &world.document("app", APP_PASSWORD, Some(&master))).await;
    world.enable_rotation(&arn).await;
    let rotated = world.dbcreds(&["--json", "rotate", &arn]);
    assert_eq!(rotated.code, 0, "{}{}", rotated.stdout, rotated.stderr);
    let rotated: Value = serde_json::from_str(&rotated.stdout).unwrap();
    assert_eq!(rotated["strategy"], "alternating-users", "masterarn chooses alternating users: {rotated:#}");
    assert_eq!(rotated["steps"].as_array().unwrap().len(), 4);
    let (_, report) = world.doctor(&arn, &[]);
    assert_eq!(report["verdict"]["healthy"], true, "after one rotation: {report:#}");
    let users: Vec<(String, bool)> = report["users"].as_array().unwrap().iter().map(|u| (u["username"].as_str().unwrap().to_owned(), u["exists"] == true)).collect();
    assert_eq!(users, [("app_clone".to_owned(), true), ("app".to_owned(), true)], "both users and the master's view of them: {report:#}");

    world.db.admin_exec("DROP USER 'app_clone'@'%'").await;
    let (code, report) = world.doctor(&arn, &[]);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(codes(&report), ["current_user_missing"], "{report:#}");
    let fix = the_fix(&report, "current_user_missing");
    assert!(fix.starts_with(&format!("dbcreds reset-password {arn}")), "{fix}");

    let ran = world.paste(&fix);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("recreated from:app"), "{}", ran.stdout);
    assert_healthy(&world, &arn, &[]);
}

#[tokio::test]
async fn a_rotation_never_turned_on_is_diagnosed_with_rotate_secret() {
    let world = World::start().await;
    world.app_user().await;
    let arn = world.create_secret("app", &world.document("app", APP_PASSWORD, None)).await;

    let (code, report) = world.doctor(&arn, &[]);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(codes(&report), ["rotation_disabled"], "{report:#}");
    assert_eq!(report["rotation"]["enabled"], false);
    let finding = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == "rotation_disabled").unwrap();
    let fix = &finding["fixes"][0];
    assert_eq!(
        fix["command"],
        format!("aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn <rotation function ARN> --rotation-rules '{{\"AutomaticallyAfterDays\":30}}'"),
    );
    assert_eq!(fix["exact"], false, "no function is configured, so its ARN is a placeholder");
    // `dbcreds rotate` refuses too, as the rotator does.
    let refused = world.dbcreds(&["rotate", &arn]);
    assert_eq!(refused.code, 1);
    assert!(refused.stdout.contains("not enabled for rotation"), "{}", refused.stdout);

    // On AWS the fix is RotateSecret, which turns rotation on and invokes the function. moto
    // cannot invoke a function (DEVELOPERS.md), so the test does what the service does:
    // RotateSecret's own part (testenv's moto_rotation), then the function's four steps, here
    // through `dbcreds rotate --resume` (the rotator's code).
    let token = moto_rotation::new_token();
    moto_rotation::start_rotation(&world.sm, &arn, &token).await.unwrap_or_else(|p| panic!("{p}"));
    let ran = world.dbcreds(&["rotate", &arn, "--resume", &token]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_healthy(&world, &arn, &[]);
}

#[tokio::test]
async fn usage_errors_exit_2_and_every_subcommand_has_help() {
    let world = World::start().await;
    let run = world.dbcreds(&["doctor"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = world.dbcreds(&["rotate", "x", "--strategy", "round-robin"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for sub in ["doctor", "rotate", "reset-password", "token", "check", "provision", "completions"] {
        let run = world.dbcreds(&[sub, "--help"]);
        assert_eq!(run.code, 0, "{sub} --help");
        assert!(run.stdout.contains("Usage: dbcreds"), "{sub}: {}", run.stdout);
    }
    let run = world.dbcreds(&["--help"]);
    assert!(run.stdout.contains("Exit codes:"), "{}", run.stdout);
    let run = world.dbcreds(&["completions", "bash"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("reset-password") && run.stdout.contains("--resume"), "the completion script knows every subcommand and flag");
    let missing = world.dbcreds(&["--json", "doctor", "no-such-secret"]);
    let report: Value = serde_json::from_str(&missing.stdout).expect("errors are JSON too");
    assert_eq!(report["status"], "error");
    assert_ne!(missing.code, 0);
}
