//! `dbcreds doctor`, `rotate` and `reset-password` on an alternating-users secret, against a real
//! MariaDB server (TLS required) and moto: the doctor reads the master secret the secret names
//! and reports both users; a clone dropped behind the rotation's back is staged for real, the
//! doctor's fix is run as printed, and the secret is healthy again and keeps rotating.

mod cli_support;

use cli_support::{Cli, fix_commands, problems};
use dbcreds_testenv::{MariaDb, ServerOptions, leak_audit, moto_rotation, rds_master};
use serde_json::{Value, json};

fn users(report: &Value) -> Vec<(String, bool, usize)> {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap().to_owned(), u["exists"].as_bool().unwrap_or(false), u["privileges"].as_array().map_or(0, Vec::len)))
        .collect()
}

#[tokio::test]
async fn the_doctor_sees_both_users_and_a_dropped_clone_is_recreated_from_its_alternate() {
    let db = MariaDb::start(ServerOptions::new().require_tls(true)).await;
    let cli = Cli::start(Some(db.ca_pem_path())).await;
    let master = rds_master::master_secret_document("mariadb", db.host(), db.port(), db.admin_user(), db.admin_password());
    let master_arn = cli.create_secret("alt-master", &master).await;
    let password = moto_rotation::new_token().replace('-', "");
    db.admin_exec("CREATE DATABASE appdb").await;
    db.admin_exec(&format!("CREATE USER 'app'@'%' IDENTIFIED BY '{password}' REQUIRE SSL")).await;
    db.admin_exec("GRANT SELECT, INSERT, UPDATE ON appdb.* TO 'app'@'%'").await;
    let document = json!({"engine": "mariadb", "host": db.host(), "port": db.port(), "username": "app", "password": password, "dbname": "appdb", "masterarn": master_arn});
    let arn = cli.create_secret("alt-app", &document).await;

    cli.first_rotation(&arn, "alternating-users").await;
    let (_, current) = cli.current(&arn).await;
    assert_eq!(current["username"], "app_clone");

    let healthy = cli.run(&["--json", "doctor", &arn]).await;
    healthy.expect(0);
    let report = healthy.json();
    assert_eq!(report["strategy"], "alternating-users", "chosen from masterarn");
    assert_eq!(report["master"]["secret_id"], master_arn.as_str());
    assert_eq!(report["master"]["login"]["logs_in"], true);
    let both = users(&report);
    assert_eq!(both.iter().map(|(u, e, _)| (u.as_str(), *e)).collect::<Vec<_>>(), [("app_clone", true), ("app", true)]);
    assert_eq!(both[0].2, both[1].2, "the clone holds what the user holds: {both:?}");
    assert!(both[0].2 >= 2, "USAGE and the appdb grant: {both:?}");
    let previous = report["versions"].as_array().unwrap().iter().find(|v| v["stages"][0] == "AWSPREVIOUS").unwrap();
    assert_eq!(previous["login"]["logs_in"], true, "the previous user keeps working with alternating users");

    // Someone drops the user AWSCURRENT names.
    db.admin_exec("DROP USER 'app_clone'@'%'").await;
    let broken = cli.run(&["doctor", &arn]).await;
    broken.expect(3);
    let broken_json = cli.run(&["--json", "doctor", &arn]).await;
    broken_json.expect(3);
    let report = broken_json.json();
    assert_eq!(problems(&report), ["current_user_missing"]);
    assert_eq!(users(&report)[0], ("app_clone".to_owned(), false, 0));
    assert!(broken.stdout.contains("does not exist in the database"), "{}", broken.stdout);
    let fixes = fix_commands(&report);
    assert_eq!(fixes, [format!("dbcreds reset-password {arn}")]);

    let fixed = cli.run(&["--json", "reset-password", &arn]).await;
    fixed.expect(0);
    let fixed = fixed.json();
    assert_eq!(fixed["action"], "recreated_from:app");
    assert_eq!(fixed["login"]["logs_in"], true);
    assert!(fixed["login"]["tls"].as_str().unwrap().starts_with("TLSv1."));

    let report = cli.run(&["--json", "doctor", &arn]).await;
    report.expect(0);
    let both = users(&report.json());
    assert_eq!(both[0].2, both[1].2, "the recreated clone holds what the user holds: {both:?}");

    // And the secret keeps rotating: back to app.
    cli.run(&["rotate", &arn]).await.expect(0);
    assert_eq!(cli.current(&arn).await.1["username"], "app");
    cli.run(&["doctor", &arn]).await.expect(0);
    leak_audit::register_secret("the master password", db.admin_password());
}
