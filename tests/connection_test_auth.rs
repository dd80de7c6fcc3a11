//! IAM mode through the `connection-test` binary against moto's STS: the role is assumed (with
//! an external id), the token is signed with the assumed credentials and presented over
//! verified TLS to real servers, and an STS refusal is classified.
//!
//! A local server cannot know a token signed with moto's random credentials at the current
//! time, so here the login is refused, and that refusal is what is checked: every phase before
//! it passed, the class and hint are IAM's, and nothing secret leaked. That the token is
//! accepted when the server knows it is proven with a frozen clock in
//! `connection_test_iam_token.rs`.
//!
//! moto does not evaluate trust policies or external ids (any role can be assumed). What it can
//! enforce is the *caller's* IAM policy: with its IAM enforcement on, a caller without
//! `sts:AssumeRole` gets a real `AccessDenied` from STS, the same answer a trust-policy refusal
//! gets, and that is the denial tested here.

mod connection_test_support;

use connection_test_support::*;
use dbcreds_testenv::moto_iam::{iam, set_iam_enforcement, user_with_key};
use dbcreds_testenv::{MariaDb, Moto, Postgres, ServerOptions};
use serde_json::json;
use std::path::Path;

const ROLE: &str = "arn:aws:iam::123456789012:role/db-connect";
const EXTERNAL_ID: &str = "app-account-444455556666";

fn iam_env(moto: &Moto, engine: &str, port: u16, ca: &Path) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.extend(pairs(&[
        ("RDS_PROXY_APPLICATION_ENDPOINT", "localhost"),
        ("DB_PORT", &port.to_string()),
        ("DB_ENGINE", engine),
        ("DB_USERNAME", "app_iam"),
        ("DATABASE_ACCOUNT_IAM_ROLE", ROLE),
        ("EXTERNAL_ID", EXTERNAL_ID),
        ("ROLE_SESSION_NAME", "connection-test"),
        ("DB_CA_BUNDLE", &ca.display().to_string()),
    ]));
    env
}

#[tokio::test]
async fn iam_mode_assumes_the_role_signs_and_presents_the_token_over_verified_tls() {
    let (mariadb, postgres, moto) = tokio::join!(MariaDb::start(ServerOptions::new().require_tls(true)), Postgres::start(ServerOptions::new().require_tls(true)), Moto::start());
    // The users exist; their passwords are not the token (no local server can know it).
    mariadb.admin_exec("CREATE USER 'app_iam'@'%' IDENTIFIED BY 'not-a-token'").await;
    postgres.admin_exec("CREATE ROLE app_iam LOGIN PASSWORD 'not-a-token'").await;
    for (engine, port, ca) in [("mysql", mariadb.port(), mariadb.ca_pem_path()), ("postgres", postgres.port(), postgres.ca_pem_path())] {
        let mut function = start(iam_env(&moto, engine, port, ca)).await;
        let (response, logs) = invoke(&mut function, json!({})).await;
        expect_failure(&response, "authentication", "authentication", 401);
        expect_phases(&response, &[("assume_role", "ok"), ("token", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "ok"), ("authentication", "failed")]);
        let d = &response["diagnostics"];
        assert_eq!(d["assumed_role_arn"], "arn:aws:sts::123456789012:assumed-role/db-connect/connection-test", "{engine}");
        assert_eq!(d["external_id_sent"], true);
        assert_eq!(d["token_region"], moto.region());
        assert_eq!(d["auth_mode"], "iam");
        assert_eq!(d["tls"]["certificate_verified"], true);
        let hint = failure_hint(&response);
        assert!(hint.contains("rds-db:connect") && hint.contains("IAM-enabled"), "{engine}: the IAM hint: {hint}");
        expect_absent(&response, &logs, &[EXTERNAL_ID, "not-a-token"]);
        // The role was assumed by STS, as moto recorded it.
        assert!(moto.log().contains("AssumeRole") || logs.contains("AssumeRole"), "STS AssumeRole was called");
    }
}

#[tokio::test]
async fn a_denied_assume_role_is_assume_role_denied_and_nothing_else_is_tried() {
    let moto = Moto::start().await;
    let (denied_key, denied_secret) = user_with_key(&moto, "app-function-denied").await;
    let (allowed_key, allowed_secret) = user_with_key(&moto, "app-function-allowed").await;
    let policy = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE }] }).to_string();
    iam(&moto, &[("Action", "PutUserPolicy"), ("UserName", "app-function-allowed"), ("PolicyName", "assume-db-connect"), ("PolicyDocument", &policy)]).await;
    set_iam_enforcement(&moto, true).await;

    let env_as = |key: &str, secret: &str| {
        let mut env = iam_env(&moto, "postgres", refused_port(), Path::new(""));
        env.retain(|(name, _)| name != "AWS_ACCESS_KEY_ID" && name != "AWS_SECRET_ACCESS_KEY");
        env.extend(pairs(&[("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", secret)]));
        env
    };

    let mut denied = start(env_as(&denied_key, &denied_secret)).await;
    let (response, logs) = invoke(&mut denied, json!({})).await;
    expect_failure(&response, "assume_role", "assume_role_denied", 403);
    expect_phases(&response, &[("assume_role", "failed")]);
    let message = failure_message(&response);
    assert!(message.contains(ROLE) && message.contains("AccessDenied"), "{message}");
    assert!(failure_hint(&response).contains("trust policy"), "{}", pretty(&response));
    assert!(response["diagnostics"].get("assumed_role_arn").is_none());
    expect_absent(&response, &logs, &[&denied_secret, EXTERNAL_ID]);

    // The control: the same request, signed by a caller that may assume the role, passes STS
    // (and then stops at the refused port), so the denial above was STS's answer to the policy.
    let mut allowed = start(env_as(&allowed_key, &allowed_secret)).await;
    let (response, logs) = invoke(&mut allowed, json!({})).await;
    expect_failure(&response, "tcp", "connection_refused", 502);
    assert_eq!(response["diagnostics"]["assumed_role_arn"], "arn:aws:sts::123456789012:assumed-role/db-connect/connection-test");
    expect_absent(&response, &logs, &[&allowed_secret]);
}
