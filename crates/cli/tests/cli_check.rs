//! `dbcreds check`: the connection test's phases run by the CLI against a real MariaDB (TLS
//! required) and moto, with options as flags or as the function's environment variables, and the
//! function's diagnosis: success, a certificate that does not verify, refused credentials, a name
//! that does not resolve (IAM mode), and a bad option (exit 2, the flag named).

mod cli_support;

use cli_support::Cli;
use dbcreds_testenv::{MariaDb, ServerOptions, moto_rotation};
use serde_json::{Value, json};

fn phases(response: &Value) -> Vec<(String, String)> {
    response["diagnostics"]["phases"].as_array().unwrap().iter().map(|p| (p["phase"].as_str().unwrap().to_owned(), p["status"].as_str().unwrap().to_owned())).collect()
}

#[tokio::test]
async fn check_runs_the_connection_tests_phases_from_flags_or_the_environment() {
    let db = MariaDb::start(ServerOptions::new().require_tls(true)).await;
    let cli = Cli::start(Some(db.ca_pem_path())).await;
    let password = moto_rotation::new_token().replace('-', "");
    db.admin_exec("CREATE DATABASE appdb").await;
    db.admin_exec(&format!("CREATE USER 'app'@'%' IDENTIFIED BY '{password}' REQUIRE SSL")).await;
    db.admin_exec("GRANT SELECT ON appdb.* TO 'app'@'%'").await;
    let document = json!({"engine": "mariadb", "host": db.host(), "port": db.port(), "username": "app", "password": password, "dbname": "appdb"});
    let arn = cli.create_secret("check-app", &document).await;

    // Success, from a flag.
    let text = cli.run(&["check", "--secret-id", &arn]).await;
    text.expect(0);
    assert!(text.stdout.contains("Database connection was successful!"), "{}", text.stdout);
    assert!(text.stdout.contains("certificate verified"), "{}", text.stdout);
    let from_flag = cli.run(&["--json", "check", "--secret-id", &arn, "--test-query", "SELECT 1"]).await;
    from_flag.expect(0);
    let from_flag = from_flag.json();
    assert_eq!(from_flag["statusCode"], 200, "the function's own response");
    assert_eq!(from_flag["body"], "Database connection was successful!");
    let expected: Vec<(String, String)> = ["read_secret", "dns", "tcp", "tls", "authentication", "query"].iter().map(|p| (p.to_string(), "ok".to_string())).collect();
    assert_eq!(phases(&from_flag), expected, "{from_flag}");
    assert_eq!(from_flag["diagnostics"]["tls"]["certificate_verified"], true);
    assert_eq!(from_flag["diagnostics"]["query_rows"], 1);

    // The same check from the function's environment variables.
    let from_env = cli.run_with(&["--json", "check"], &[("DB_SECRET_ARN", &arn), ("TEST_QUERY", "SELECT 1")]).await;
    from_env.expect(0);
    let from_env = from_env.json();
    assert_eq!(phases(&from_env), phases(&from_flag));
    assert_eq!(from_env["diagnostics"]["current_user"], from_flag["diagnostics"]["current_user"]);

    // A CA the server does not chain to: the TLS phase fails, with what to check.
    let wrong_ca = cli.run(&["--json", "--ca-bundle", &db.unrelated_ca_pem_path().display().to_string(), "check", "--secret-id", &arn]).await;
    wrong_ca.expect(1);
    let failure = &wrong_ca.json()["diagnostics"]["failure"];
    assert_eq!((failure["phase"].as_str(), failure["class"].as_str()), (Some("tls"), Some("tls_verification")), "{failure}");
    assert!(failure["hint"].as_str().unwrap().contains("DB_CA_BUNDLE"), "{failure}");
    let text = cli.run(&["--ca-bundle", &db.unrelated_ca_pem_path().display().to_string(), "check", "--secret-id", &arn]).await;
    text.expect(1);
    assert!(text.stdout.contains("FAILED in phase tls [tls_verification]"), "{}", text.stdout);

    // Refused credentials.
    let stale = json!({"engine": "mariadb", "host": db.host(), "port": db.port(), "username": "app", "password": "not-the-password-123", "dbname": "appdb"});
    let stale_arn = cli.create_secret("check-stale", &stale).await;
    let refused = cli.run(&["--json", "check", "--secret-id", &stale_arn]).await;
    refused.expect(1);
    let refused = refused.json();
    assert_eq!(refused["statusCode"], 401);
    assert_eq!(refused["diagnostics"]["failure"]["class"], "authentication");

    // IAM mode: the token is signed here; the name does not resolve.
    let iam = cli.run(&["--json", "check", "--auth-mode", "iam", "--host", "db.does-not-exist.invalid", "--username", "app_iam", "--engine", "mysql"]).await;
    iam.expect(1);
    let iam = iam.json();
    assert_eq!(iam["diagnostics"]["failure"]["phase"], "dns");
    assert_eq!(iam["diagnostics"]["token_region"], "us-east-1");
    assert!(phases(&iam).contains(&("token".to_owned(), "ok".to_owned())), "{iam}");

    // A bad option: exit 2, nothing tried, the flag named beside the function's variable.
    let bad = cli.run(&["check", "--secret-id", &arn, "--port", "not-a-port"]).await;
    bad.expect(2);
    assert!(bad.stderr.contains("DB_PORT (--port)"), "{}", bad.stderr);
    let bad = cli.run(&["--json", "check", "--auth-mode", "iam"]).await;
    bad.expect(2);
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("RDS_PROXY_APPLICATION_ENDPOINT (--host)"));
}
