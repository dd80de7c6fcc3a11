//! `dbcreds check`: the connection test's phases run here (assume role, IAM token or the
//! secret, DNS, TCP, TLS, authentication, query), with the function's own code
//! (`connection_test::handle`): the same configuration names, the same validation, the same
//! diagnosis, and with `--json` the very response the function returns.
//!
//! Every option is a flag and, under the function's name for it, an environment variable (a
//! flag wins), so a shell that exports the function's configuration runs the same check.

use crate::GlobalArgs;
use crate::exit::{CliError, Status};
use crate::output::Report;
use connection_test::aws::{SdkCloud, UnavailableCloud};
use connection_test::check::Toolkit as CheckToolkit;
use connection_test::cloud::Cloud;
use connection_test::config;
use dbcreds_aws::AwsClients;
use dbcreds_db::TrustStore;
use dbcreds_runtime::Budget;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// The whole check's budget; each phase has its own cap inside it (the function's).
const BUDGET: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
#[command(
    about = "Test a database connection from here, phase by phase, as the connection-test function does",
    long_about = "Test a database connection from here, phase by phase, with the connection-test function's own code: \
                  in IAM mode assume a role (optional), sign an IAM token and log in with it; in secret mode read a \
                  secret's AWSCURRENT and log in with its credentials. Then DNS, TCP, TLS (verify-full), authentication \
                  and a query, each timed. When a phase fails it says which layer failed and what to check.\n\n\
                  Every option is also read from the environment variable the function uses (shown as [env: ...]); a \
                  flag wins. --json prints the function's own response. Exit code 0 when the connection works, 1 when \
                  a phase fails, 2 for a bad option.\n\n\
                  Examples:\n  dbcreds check --secret-id prod/app\n  dbcreds check --auth-mode iam --host proxy.proxy-xxxx.eu-west-1.rds.amazonaws.com --port 5432 --username app_iam \\\n    --role-arn arn:aws:iam::111122223333:role/db-connect --external-id example"
)]
pub struct Args {
    /// `iam` (sign an IAM token) or `secret` (use a secret's credentials); default: secret when a secret is given, else iam
    #[arg(long, env = config::AUTH_MODE, value_name = "MODE")]
    pub auth_mode: Option<String>,
    /// Secret mode: the secret whose AWSCURRENT credentials to test (ARN or name)
    #[arg(long, env = config::SECRET_ARN, value_name = "SECRET_ID")]
    pub secret_id: Option<String>,
    /// The database or RDS Proxy endpoint (IAM mode: required; secret mode: overrides the secret's host)
    #[arg(long, env = config::HOST, value_name = "HOST")]
    pub host: Option<String>,
    /// The port (default: the secret's, else the engine's)
    #[arg(long, env = config::PORT)]
    pub port: Option<String>,
    /// The database user (IAM mode: required)
    #[arg(long, env = config::USERNAME, value_name = "USER")]
    pub username: Option<String>,
    /// The database to connect to
    #[arg(long, env = config::DBNAME, value_name = "DATABASE")]
    pub dbname: Option<String>,
    /// mysql, mariadb, postgres, ... (IAM mode: default postgres; secret mode: must agree with the secret)
    #[arg(long, env = config::ENGINE)]
    pub engine: Option<String>,
    /// IAM mode: a role to assume first (cross-account), else this environment's credentials sign the token
    #[arg(long, env = config::ROLE_ARN, value_name = "ROLE_ARN")]
    pub role_arn: Option<String>,
    /// IAM mode: the external id the role's trust policy requires
    #[arg(long, env = config::EXTERNAL_ID)]
    pub external_id: Option<String>,
    /// IAM mode: the assumed role's session name
    #[arg(long, env = config::ROLE_SESSION_NAME, value_name = "NAME")]
    pub role_session_name: Option<String>,
    /// A read-only query to run after logging in (default: the identity query alone)
    #[arg(long, env = config::TEST_QUERY, value_name = "SQL")]
    pub test_query: Option<String>,
}

/// Which flag sets which configuration name, for error messages.
const FLAGS: [(&str, &str); 12] = [
    (config::AUTH_MODE, "--auth-mode"),
    (config::SECRET_ARN, "--secret-id"),
    (config::HOST, "--host"),
    (config::PORT, "--port"),
    (config::USERNAME, "--username"),
    (config::DBNAME, "--dbname"),
    (config::ENGINE, "--engine"),
    (config::ROLE_ARN, "--role-arn"),
    (config::EXTERNAL_ID, "--external-id"),
    (config::ROLE_SESSION_NAME, "--role-session-name"),
    (config::TEST_QUERY, "--test-query"),
    (config::CA_BUNDLE, "--ca-bundle"),
];

impl Args {
    /// The configuration as the function would read it from its environment.
    fn value(&self, name: &str, global: &GlobalArgs) -> Option<String> {
        match name {
            config::AUTH_MODE => self.auth_mode.clone(),
            config::SECRET_ARN => self.secret_id.clone(),
            config::HOST => self.host.clone(),
            config::PORT => self.port.clone(),
            config::USERNAME => self.username.clone(),
            config::DBNAME => self.dbname.clone(),
            config::ENGINE => self.engine.clone(),
            config::ROLE_ARN => self.role_arn.clone(),
            config::EXTERNAL_ID => self.external_id.clone(),
            config::ROLE_SESSION_NAME => self.role_session_name.clone(),
            config::TEST_QUERY => self.test_query.clone(),
            config::CA_BUNDLE => global.ca_bundle.as_ref().map(|p| p.display().to_string()),
            _ => None,
        }
    }
}

pub async fn run(args: Args, global: &GlobalArgs) -> Result<Report, CliError> {
    let toolkit = toolkit(global).await;
    let budget = Budget::from_remaining(BUDGET, Duration::ZERO);
    let lookup = |name: &str| args.value(name, global);
    let response = crate::progress::during("checking the connection", connection_test::handle(&Value::Null, lookup, &toolkit, &budget)).await;
    let status_code = response["statusCode"].as_u64().unwrap_or(500);
    let status = if status_code == 200 { Status::Ok } else { Status::Failed };
    if status_code == 400 && response["diagnostics"]["failure"]["phase"] == "configuration" {
        // Bad options: a usage error, with the flag named beside the function's variable.
        let failure = &response["diagnostics"]["failure"];
        let message = with_flag_names(failure["message"].as_str().unwrap_or_default());
        return Err(CliError::input(message).with_hint(with_flag_names(failure["hint"].as_str().unwrap_or_default())));
    }
    Ok(Report::new(status, &response, text(&response)))
}

/// The function's cold start, once: the AWS clients (or why they could not be built, reported
/// by the phase that needs them) and the trust store.
async fn toolkit(global: &GlobalArgs) -> CheckToolkit {
    let cloud: Arc<dyn Cloud> = match AwsClients::from_env_with(global.region.as_deref(), global.profile.as_deref()).await {
        Ok(clients) => Arc::new(SdkCloud::new(clients)),
        Err(err) => Arc::new(UnavailableCloud(err)),
    };
    let bundle = global.ca_bundle.as_ref().map(|p| p.display().to_string());
    let trust = TrustStore::load(|name| if name == dbcreds_db::tls::CA_BUNDLE_ENV { bundle.clone() } else { dbcreds_runtime::env_lookup(name) }).map(Arc::new);
    CheckToolkit { cloud, trust }
}

/// `DB_PORT: ...` becomes `DB_PORT (--port): ...`.
fn with_flag_names(text: &str) -> String {
    let mut out = text.to_owned();
    for (name, flag) in FLAGS {
        if out.contains(name) && !out.contains(&format!("{name} ({flag})")) {
            out = out.replacen(name, &format!("{name} ({flag})"), 1);
        }
    }
    out
}

/// The response for people: what was tested, each phase, and the verdict.
fn text(response: &Value) -> String {
    let d = &response["diagnostics"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = String::new();
    let mode = s(&d["auth_mode"]);
    let target = match (d["user"].as_str(), d["endpoint"].as_str()) {
        (Some(user), Some(endpoint)) => {
            let database = d["database"].as_str().map(|db| format!("/{db}")).unwrap_or_default();
            format!("{} {user}@{endpoint}{database}", s(&d["engine"]))
        }
        _ => "(the target was not resolved)".to_owned(),
    };
    let _ = writeln!(out, "connection check: {mode} mode, {target}");
    if let Some(secret) = d["secret_arn"].as_str() {
        let _ = writeln!(out, "  secret          {secret}");
    }
    if let Some(role) = d["assumed_role_arn"].as_str() {
        let _ = writeln!(out, "  assumed role    {role}");
    }
    for phase in d["phases"].as_array().into_iter().flatten() {
        let ms = phase["ms"].as_u64().map(|ms| format!("{ms} ms")).unwrap_or_default();
        let _ = writeln!(out, "  {:<15} {:<8} {:>7}  {}", s(&phase["phase"]), s(&phase["status"]), ms, s(&phase["detail"]));
    }
    if let Some(tls) = d["tls"].as_object() {
        let version = tls.get("version").and_then(Value::as_str).unwrap_or("none (plaintext)");
        let verified = if tls.get("certificate_verified").and_then(Value::as_bool) == Some(true) { "certificate verified" } else { "certificate NOT verified" };
        let _ = writeln!(out, "  tls             {version}, {verified}");
    }
    if let Some(user) = d["current_user"].as_str() {
        let _ = writeln!(out, "  logged in as    {user} ({})", s(&d["server_version"]));
    }
    match d["failure"].as_object() {
        None => {
            let _ = writeln!(out, "{}", s(&response["body"]));
        }
        Some(failure) => {
            let field = |k: &str| failure.get(k).and_then(Value::as_str).unwrap_or_default();
            let _ = writeln!(out, "FAILED in phase {} [{}]: {}", field("phase"), field("class"), field("message"));
            let _ = writeln!(out, "  what to check: {}", field("hint"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_names_get_their_flags() {
        assert_eq!(with_flag_names("DB_PORT: \"x\" is not a port; use 1-65535"), "DB_PORT (--port): \"x\" is not a port; use 1-65535");
        assert_eq!(with_flag_names("DB_SECRET_ARN: is missing"), "DB_SECRET_ARN (--secret-id): is missing");
    }
}
