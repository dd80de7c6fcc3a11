//! Part 4: the `connection-test` function as an operator uses it. Secret mode against both
//! servers (the AWS sample's success body plus the diagnostics); one deliberate failure (an
//! event that points `DB_CA_BUNDLE` at an unrelated CA) to show the classified diagnosis and
//! its hint; and IAM mode as far as a local setup goes: the role is assumed on moto's STS and
//! the token is signed and presented over verified TLS, which no local server can accept.

use crate::narrator::Narrator;
use crate::world::{Database, Function, World};
use dbcreds_testenv::Outcome;
use serde_json::{Value, json};
use std::time::Duration;

/// Enough for every phase's own deadline (docs/connection-test.md).
const TIMEOUT: Duration = Duration::from_secs(30);
const SUCCESS_BODY: &str = "Database connection was successful!";
const DEMO_ROLE: &str = "arn:aws:iam::123456789012:role/dbcreds-demo-db-connect";

/// The summary's rows.
pub const SECRET_MODE_PROOF: &str = "connection-test secret mode: success body, all phases ok";
pub const WRONG_CA_PROOF: &str = "connection-test, wrong CA: tls / tls_verification + hint";
pub const IAM_MODE_PROOF: &str = "connection-test IAM mode: role, token, TLS ok; login refused";

/// Secret mode with the secret at `secret_arn`, then (when `wrong_ca` is set) the same function
/// with an event that trusts only an unrelated CA.
pub async fn secret_mode(world: &World, database: &Database, user: &str, secret_arn: &str, wrong_ca: bool, out: &mut Narrator) {
    let column = database.column();
    out.heading(format!("{} · secret mode · DB_SECRET_ARN = the secret of {user} (after its rotation)", database.name()));
    let mut function = world.function("connection-test", database, &[("DB_SECRET_ARN", secret_arn)]).await;
    out.detail("event {}");
    let proof = match invoke(&mut function, json!({})).await {
        Ok(response) => {
            show(&response, out);
            expect_success(&response, user)
        }
        Err(problem) => Err(problem),
    };
    out.proof(column, SECRET_MODE_PROOF, proof);

    if wrong_ca {
        out.heading(format!("{} · secret mode · a deliberate failure: the event trusts an unrelated CA", database.name()));
        let event = json!({"DB_CA_BUNDLE": database.unrelated_ca_pem_path().display().to_string()});
        out.detail(format!("event {event}"));
        let proof = match invoke(&mut function, event).await {
            Ok(response) => {
                show(&response, out);
                expect_failure(&response, "tls", "tls_verification", &[("read_secret", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "failed")])
            }
            Err(problem) => Err(problem),
        };
        out.proof(column, WRONG_CA_PROOF, proof);
    }
}

/// IAM mode against `database` as `user`: assume a role on moto's STS, sign the token, present
/// it over verified TLS. The server refuses it (it has no idea of IAM), and the function says so.
pub async fn iam_mode(world: &World, database: &Database, user: &str, out: &mut Narrator) {
    let column = database.column();
    out.heading(format!("{} · IAM mode, as far as a local setup goes", database.name()));
    let port = database.port().to_string();
    let settings = [
        ("AUTH_MODE", "iam"),
        ("RDS_PROXY_APPLICATION_ENDPOINT", database.host()),
        ("DB_PORT", port.as_str()),
        ("DB_ENGINE", database.engine()),
        ("DB_USERNAME", user),
        ("DBNAME", crate::provision::DATABASE),
        ("DATABASE_ACCOUNT_IAM_ROLE", DEMO_ROLE),
        ("ROLE_SESSION_NAME", "dbcreds-demo"),
    ];
    for (name, value) in &settings {
        out.detail(format!("{name}={value}"));
    }
    let mut function = world.function("connection-test", database, &settings).await;
    let proof = match invoke(&mut function, json!({})).await {
        Ok(response) => {
            show(&response, out);
            expect_failure(&response, "authentication", "authentication", &[("assume_role", "ok"), ("token", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "ok"), ("authentication", "failed")]).and_then(|evidence| {
                match response["diagnostics"]["assumed_role_arn"].as_str() {
                    Some(role) => Ok(format!("{evidence}; assumed {role}")),
                    None => Err("no assumed role ARN in the diagnostics".into()),
                }
            })
        }
        Err(problem) => Err(problem),
    };
    out.detail("a local server cannot validate an RDS IAM token, so the login is refused: everything before it is real");
    out.proof(column, IAM_MODE_PROOF, proof);
}

/// The response; the function must answer with a result, never a Lambda error.
async fn invoke(function: &mut Function<'_>, event: Value) -> Result<Value, String> {
    let invocation = function.invoke(event, TIMEOUT).await;
    match invocation.outcome {
        Outcome::Ok(response) => Ok(response),
        Outcome::Err { error_type, error_message } => Err(format!("the function failed instead of answering: {error_type}: {error_message}")),
        Outcome::Timeout => Err(format!("the function did not answer within {TIMEOUT:?}")),
    }
}

/// The response as an operator reads it.
fn show(response: &Value, out: &mut Narrator) {
    let d = &response["diagnostics"];
    let text = |value: &Value| value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
    out.detail(format!("statusCode {}  body {}", response["statusCode"], response["body"]));
    let mut who = format!("engine {}  endpoint {}  user {}  auth {}", text(&d["engine"]), text(&d["endpoint"]), text(&d["user"]), text(&d["auth_mode"]));
    if let Some(database) = d["database"].as_str() {
        who.push_str(&format!("  database {database}"));
    }
    out.detail(who);
    if let Some(role) = d["assumed_role_arn"].as_str() {
        out.detail(format!("assumed role {role}  token region {}", text(&d["token_region"])));
    }
    if d["tls"].is_object() {
        let trusted: Vec<String> = d["tls"]["trust_store"].as_array().map(|roots| roots.iter().map(text).collect()).unwrap_or_default();
        out.detail(format!(
            "TLS {}  certificate verified: {}  trusted roots: {}",
            text(&d["tls"]["version"]),
            text(&d["tls"]["certificate_verified"]),
            trusted.join(", ")
        ));
    }
    if let Some(user) = d["current_user"].as_str() {
        out.detail(format!("current user {user}  server {}", text(&d["server_version"])));
    }
    out.detail(format!("{:<16}{:<8}{:>6}  detail", "phase", "status", "ms"));
    for phase in d["phases"].as_array().into_iter().flatten() {
        out.detail(format!("{:<16}{:<8}{:>6}  {}", text(&phase["phase"]), text(&phase["status"]), phase["ms"].as_u64().map_or_else(|| "-".to_owned(), |ms| ms.to_string()), phase["detail"].as_str().unwrap_or_default()));
    }
    if let Some(total) = d["total_ms"].as_u64() {
        out.detail(format!("{:<24}{total:>6}", "total"));
    }
    let failure = &d["failure"];
    if failure.is_object() {
        out.detail(format!("failure  phase {}, class {}", text(&failure["phase"]), text(&failure["class"])));
        out.detail(format!("message  {}", text(&failure["message"])));
        out.detail(format!("hint     {}", text(&failure["hint"])));
    }
}

fn phases(response: &Value) -> Vec<(String, String)> {
    response["diagnostics"]["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["phase"].as_str().unwrap_or_default().to_owned(), p["status"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn expect_success(response: &Value, user: &str) -> Result<String, String> {
    let d = &response["diagnostics"];
    if response["statusCode"] != 200 || response["body"] != SUCCESS_BODY {
        return Err(format!("statusCode {} body {}", response["statusCode"], response["body"]));
    }
    let phases = phases(response);
    if phases.is_empty() || phases.iter().any(|(_, status)| status != "ok") {
        return Err(format!("phases {phases:?}"));
    }
    if d["tls"]["certificate_verified"] != true {
        return Err("the certificate was not verified".into());
    }
    let current = d["current_user"].as_str().unwrap_or_default();
    if current.split('@').next() != Some(user) {
        return Err(format!("logged in as {current}, not {user}"));
    }
    Ok(format!("{} as {current}, {} phases ok in {} ms", d["tls"]["version"].as_str().unwrap_or_default(), phases.len(), d["total_ms"]))
}

fn expect_failure(response: &Value, phase: &str, class: &str, expected_phases: &[(&str, &str)]) -> Result<String, String> {
    let failure = &response["diagnostics"]["failure"];
    if failure["phase"] != phase || failure["class"] != class {
        return Err(format!("expected phase {phase} class {class}, got phase {} class {}", failure["phase"], failure["class"]));
    }
    if response["statusCode"] == 200 {
        return Err("a failure answered statusCode 200".into());
    }
    if failure["hint"].as_str().is_none_or(|hint| hint.len() < 20) {
        return Err("no hint an operator can act on".into());
    }
    let got = phases(response);
    let expected: Vec<(String, String)> = expected_phases.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect();
    if got != expected {
        return Err(format!("phases {got:?}, expected {expected:?}"));
    }
    Ok(format!("statusCode {}, {phase} / {class}", response["statusCode"]))
}

/// Any part of an IAM token (a presigned URL) shows one of these; none may reach the
/// connection-test's answers or logs.
pub const TOKEN_MARKERS: [&str; 3] = ["X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential"];
