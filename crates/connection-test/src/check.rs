//! The check itself: the phases in order, each timed and each with a deadline inside the
//! invocation's remaining time, stopping at the first failure with everything learnt so far.
//!
//! No Lambda type appears here, so `dbcreds check` (issue 9) can run the same phases from a
//! command line with a [`Budget`] of its own.

use crate::cloud::{Cloud, SignWith};
use crate::config::{AuthMode, Config, ENGINE, USERNAME};
use crate::probe;
use crate::report::{Diagnostics, Failure, Phase, PhaseStatus};
use dbcreds_core::{EngineFamily, ErrorClass, SecretDocument, TlsPolicy};
use dbcreds_db::{Credential, DbError, TrustStore};
use dbcreds_runtime::Budget;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The longest each phase may take; every phase also ends by the invocation's work deadline.
pub mod caps {
    use std::time::Duration;
    pub const ASSUME_ROLE: Duration = Duration::from_secs(10);
    pub const TOKEN: Duration = Duration::from_secs(5);
    pub const READ_SECRET: Duration = Duration::from_secs(10);
    pub const DNS: Duration = Duration::from_secs(5);
    pub const TCP: Duration = Duration::from_secs(5);
    pub const TLS: Duration = Duration::from_secs(5);
    pub const AUTHENTICATION: Duration = Duration::from_secs(10);
    pub const QUERY: Duration = Duration::from_secs(10);
}

/// What a check needs beyond its configuration, built once per cold start.
#[derive(Clone)]
pub struct Toolkit {
    pub cloud: Arc<dyn Cloud>,
    /// The cold start's trust store (system roots + `DB_CA_BUNDLE`), or why it could not be
    /// built, reported by every invocation that does not bring its own `DB_CA_BUNDLE`.
    pub trust: Result<Arc<TrustStore>, DbError>,
}

/// Where to connect and as whom, once the credential is known.
#[derive(Clone, Debug)]
pub struct Target {
    pub family: EngineFamily,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub database: Option<String>,
    pub tls: TlsPolicy,
}

/// Runs every phase the configuration calls for and returns what was found.
pub async fn run(config: &Config, toolkit: &Toolkit, budget: &Budget) -> Diagnostics {
    let started = Instant::now();
    let mut diagnostics = Diagnostics { auth_mode: Some(config.mode.as_str().to_owned()), ..Default::default() };
    if let Err(failure) = run_phases(config, toolkit, budget, &mut diagnostics).await {
        log_failure(&failure, &diagnostics);
        diagnostics.failure = Some(failure);
    }
    diagnostics.total_ms = crate::report::millis(started.elapsed());
    diagnostics
}

async fn run_phases(config: &Config, toolkit: &Toolkit, budget: &Budget, d: &mut Diagnostics) -> Result<(), Failure> {
    let trust = probe::trust_for_invocation(&toolkit.trust, config.ca_bundle.as_deref(), config.ca_bundle_from_event).inspect_err(|_| {
        d.record(Phase::Configuration, PhaseStatus::Failed, None, None);
    })?;
    let (target, credential) = match config.mode {
        AuthMode::Iam => iam_credential(config, toolkit.cloud.as_ref(), budget, d).await?,
        AuthMode::Secret => secret_credential(config, toolkit.cloud.as_ref(), budget, d).await?,
    };
    connect_and_query(&target, credential, &trust, config.test_query.as_deref(), budget, d).await
}

/// IAM mode: assume the role (when configured), then sign a token for the endpoint.
async fn iam_credential(config: &Config, cloud: &dyn Cloud, budget: &Budget, d: &mut Diagnostics) -> Result<(Target, Credential), Failure> {
    let family = config.engine.unwrap_or(crate::config::DEFAULT_IAM_ENGINE);
    let required = |value: &Option<String>, field: &str| {
        value.clone().ok_or_else(|| Failure::new(Phase::Configuration, ErrorClass::Input, format!("{field}: is missing; IAM mode needs it")))
    };
    let target = Target {
        family,
        host: required(&config.host, crate::config::HOST)?,
        port: config.port.unwrap_or_else(|| family.default_port()),
        username: required(&config.username, USERNAME)?,
        database: config.database.clone(),
        // The token is a credential: it only ever travels over verified TLS.
        tls: TlsPolicy::VerifyFull,
    };
    describe_target(&target, d);

    let sign_with = match &config.role {
        Some(role) => {
            d.external_id_sent = Some(role.external_id.is_some());
            let assumed = timed(d, Phase::AssumeRole, budget, caps::ASSUME_ROLE, |deadline| async move {
                let assumed = within(deadline, Phase::AssumeRole, cloud.assume_role(role, deadline)).await?.map_err(|err| {
                    let failure = Failure::new(Phase::AssumeRole, err.class, format!("assuming {}: {err}", role.arn));
                    if err.class == ErrorClass::AssumeRoleDenied { failure } else { failure.with_hint(format!("{} (STS)", ErrorClass::Aws.hint())) }
                })?;
                let detail = format!("assumed {}", assumed.assumed_role_arn);
                Ok((assumed, Some(detail)))
            })
            .await?;
            d.assumed_role_arn = Some(assumed.assumed_role_arn.clone());
            SignWith::Assumed(assumed)
        }
        None => {
            d.skipped(Phase::AssumeRole, "DATABASE_ACCOUNT_IAM_ROLE is not set: the function's own credentials sign the token");
            SignWith::Own
        }
    };

    let token = timed(d, Phase::Token, budget, caps::TOKEN, |deadline| {
        let target = &target;
        let sign_with = &sign_with;
        async move {
            let token = within(deadline, Phase::Token, cloud.iam_token(sign_with, &target.host, target.port, &target.username))
                .await?
                .map_err(|err| Failure::new(Phase::Token, err.class, format!("generating the IAM token: {err}")).with_hint("the token is signed locally: check the function has credentials (its role, or the assumed role) and AWS_REGION is set"))?;
            let detail = format!("signed for {}:{} as {} in {}", target.host, target.port, target.username, token.region);
            Ok((token, Some(detail)))
        }
    })
    .await?;
    d.token_region = Some(token.region.clone());
    Ok((target, Credential::IamToken(token.value)))
}

/// Secret mode: read the secret, and let the configuration override its endpoint.
async fn secret_credential(config: &Config, cloud: &dyn Cloud, budget: &Budget, d: &mut Diagnostics) -> Result<(Target, Credential), Failure> {
    let secret_id = config
        .secret_id
        .clone()
        .ok_or_else(|| Failure::new(Phase::Configuration, ErrorClass::Input, format!("{}: is missing; secret mode needs it", crate::config::SECRET_ARN)))?;
    d.secret_arn = Some(secret_id.clone());
    let login = timed(d, Phase::ReadSecret, budget, caps::READ_SECRET, |deadline| {
        let secret_id = &secret_id;
        async move {
            let text = within(deadline, Phase::ReadSecret, cloud.read_secret(secret_id, deadline)).await?.map_err(|err| {
                let failure = Failure::new(Phase::ReadSecret, err.class, format!("reading {secret_id}: {err}"));
                if err.is_not_found() {
                    // The adapter calls a missing stage a state problem (right for a rotation);
                    // here it means the configuration names a secret that is not there.
                    Failure::new(Phase::ReadSecret, ErrorClass::Input, failure.message)
                        .with_hint("DB_SECRET_ARN names no secret with an AWSCURRENT version: check the ARN, that the secret lives in this function's region (AWS_REGION) or is named by full ARN, and that it was not deleted")
                } else if err.class == ErrorClass::Aws {
                    failure.with_hint("check the secret exists, that the function's role may secretsmanager:GetSecretValue on it (and kms:Decrypt on its key), and its route to Secrets Manager (VPC endpoint or NAT)")
                } else {
                    failure
                }
            })?;
            let document = SecretDocument::parse(text).map_err(secret_input_failure)?;
            document.require_connection_fields().map_err(secret_input_failure)?;
            let login = target_from_secret(config, &document)?;
            Ok((login, Some("read AWSCURRENT".to_owned())))
        }
    })
    .await?;
    let (target, credential) = login;
    describe_target(&target, d);
    Ok((target, credential))
}

/// A problem with the secret's content, its key named as `secret.<key>` (or `secret` for the
/// whole document).
fn secret_input_failure(err: dbcreds_core::InputError) -> Failure {
    let err = if err.field == "secret" { err } else { err.within("secret.") };
    let hint = format!("fix the secret: {}", err.fix);
    Failure::new(Phase::ReadSecret, ErrorClass::Input, err.to_string()).with_hint(hint)
}

/// The secret's login, with the configured endpoint winning over the secret's. The user name
/// and engine belong to the password, so a configured one that disagrees is an error rather
/// than an override.
pub fn target_from_secret(config: &Config, document: &SecretDocument) -> Result<(Target, Credential), Failure> {
    let input = secret_input_failure;
    let family = document.engine().map_err(input)?.family();
    if let Some(configured) = config.engine.filter(|configured| *configured != family) {
        return Err(Failure::new(Phase::ReadSecret, ErrorClass::Input, format!("{ENGINE} is {configured} but the secret's engine is {family}"))
            .with_hint(format!("unset {ENGINE} in secret mode, or point DB_SECRET_ARN at a {configured} secret")));
    }
    let username = document.username().map_err(input)?.to_owned();
    if let Some(configured) = config.username.as_ref().filter(|configured| **configured != username) {
        return Err(Failure::new(
            Phase::ReadSecret,
            ErrorClass::Input,
            format!("{USERNAME} is {} but the secret is for {}", dbcreds_core::sanitize::for_log(configured), dbcreds_core::sanitize::for_log(&username)),
        )
        .with_hint(format!("unset {USERNAME} in secret mode, or point DB_SECRET_ARN at that user's secret")));
    }
    let target = Target {
        family,
        host: match &config.host {
            Some(host) => host.clone(),
            None => document.host().map_err(input)?.to_owned(),
        },
        port: match config.port {
            Some(port) => port,
            None => document.port(family).map_err(input)?,
        },
        username,
        database: config.database.clone().or_else(|| document.dbname().map(str::to_owned)),
        tls: document.tls_policy().map_err(input)?,
    };
    Ok((target, Credential::Password(document.password().map_err(input)?.clone())))
}

fn describe_target(target: &Target, d: &mut Diagnostics) {
    d.engine = Some(target.family.as_str().to_owned());
    d.endpoint = Some(endpoint(&target.host, target.port));
    d.user = Some(target.username.clone());
    d.database = target.database.clone();
}

fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// DNS, then TCP, TLS and the login on one connection (`login`), then the query, given the
/// credential. Public so a caller holding a credential already (the `dbcreds check` CLI, a test
/// with a fixed token) runs exactly the phases the function runs.
pub async fn connect_and_query(target: &Target, credential: Credential, trust: &Arc<TrustStore>, test_query: Option<&str>, budget: &Budget, d: &mut Diagnostics) -> Result<(), Failure> {
    describe_target(target, d);
    let addresses = timed(d, Phase::Dns, budget, caps::DNS, |deadline| async move {
        let addresses = probe::resolve(&target.host, target.port, deadline).await?;
        let detail = addresses.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
        Ok((addresses, Some(detail)))
    })
    .await?;
    d.addresses = addresses.iter().map(|a| a.ip().to_string()).collect();

    let mut session = crate::login::login(target, credential, trust, &addresses, budget, d).await?;

    let outcome = timed(d, Phase::Query, budget, caps::QUERY, |deadline| {
        let session = &mut session;
        async move {
            let identity = within(deadline, Phase::Query, session.identity()).await?.map_err(query_failure)?;
            let rows = match test_query {
                Some(sql) => Some(within(deadline, Phase::Query, session.query_read_only(sql)).await?.map_err(query_failure)?.len()),
                None => None,
            };
            let detail = match rows {
                Some(rows) => format!("identity and TEST_QUERY ({rows} rows)"),
                None => "identity".to_owned(),
            };
            Ok(((identity, rows), Some(detail)))
        }
    })
    .await;
    session.close().await;
    let (identity, rows) = outcome?;
    d.current_user = Some(identity.current_user);
    d.server_version = Some(identity.server_version);
    d.query = Some(if test_query.is_some() { "TEST_QUERY".to_owned() } else { "default".to_owned() });
    d.query_rows = rows;
    Ok(())
}

fn query_failure(err: DbError) -> Failure {
    let failure = Failure::new(Phase::Query, err.class, err.message);
    if err.class == ErrorClass::Sql {
        failure.with_hint("the login worked but the query failed: check TEST_QUERY is valid read-only SQL for this engine (the session is read-only) and the user may read what it selects")
    } else {
        failure
    }
}

/// Runs one phase with its deadline (the cap, within the invocation's work deadline), records
/// its outcome and time, and logs it. The phase's future returns its value and a short detail.
pub(crate) async fn timed<T, F, Fut>(d: &mut Diagnostics, phase: Phase, budget: &Budget, cap: Duration, work: F) -> Result<T, Failure>
where
    F: FnOnce(Instant) -> Fut,
    Fut: Future<Output = Result<(T, Option<String>), Failure>>,
{
    if budget.is_spent() {
        let failure = Failure::new(phase, ErrorClass::Deadline, format!("no time was left in the invocation to start the {phase} phase"));
        failed(d, phase, Some(Duration::ZERO));
        return Err(failure);
    }
    let deadline = budget.deadline_for(cap);
    let started = Instant::now();
    let result = work(deadline).await;
    let elapsed = started.elapsed();
    match result {
        Ok((value, detail)) => {
            passed(d, phase, Some(elapsed), detail);
            Ok(value)
        }
        Err(mut failure) => {
            // The failure belongs to the phase that ran, whichever layer built it.
            failure.phase = phase;
            failed(d, phase, Some(elapsed));
            Err(failure)
        }
    }
}

/// Records and logs a phase that passed. `elapsed` is absent for a phase proven inside another
/// one's time (TCP and TLS on the login's own connection).
pub(crate) fn passed(d: &mut Diagnostics, phase: Phase, elapsed: Option<Duration>, detail: Option<String>) {
    tracing::info!(
        step = phase.as_str(),
        duration_ms = elapsed.map(crate::report::millis),
        engine = d.engine.as_deref().unwrap_or(""),
        endpoint = d.endpoint.as_deref().unwrap_or(""),
        secret_arn = d.secret_arn.as_deref(),
        detail = detail.as_deref().unwrap_or(""),
        "phase passed"
    );
    d.record(phase, PhaseStatus::Ok, elapsed, detail);
}

/// Records a phase that failed; the failure itself is logged once, by [`run`].
pub(crate) fn failed(d: &mut Diagnostics, phase: Phase, elapsed: Option<Duration>) {
    d.record(phase, PhaseStatus::Failed, elapsed, None);
}

/// Awaits `work` until `deadline`; running out is a failure of `phase`.
async fn within<T>(deadline: Instant, phase: Phase, work: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::time::timeout_at(deadline, work).await.map_err(|_| {
        let class = match phase {
            Phase::AssumeRole | Phase::ReadSecret | Phase::Token => ErrorClass::Aws,
            _ => ErrorClass::Deadline,
        };
        let failure = Failure::new(phase, class, format!("the {phase} phase did not finish before its deadline"));
        match phase {
            Phase::AssumeRole | Phase::ReadSecret => failure.with_hint("the AWS API did not answer in time: check the function's route to the service endpoint (a VPC endpoint for STS or Secrets Manager, or a NAT gateway)"),
            _ => failure,
        }
    })
}

fn log_failure(failure: &Failure, d: &Diagnostics) {
    let elapsed = d.phase(failure.phase).and_then(|record| record.ms).unwrap_or(0);
    tracing::warn!(
        step = failure.phase.as_str(),
        error_class = failure.class.as_str(),
        duration_ms = elapsed,
        engine = d.engine.as_deref().unwrap_or(""),
        endpoint = d.endpoint.as_deref().unwrap_or(""),
        secret_arn = d.secret_arn.as_deref(),
        error = failure.message.as_str(),
        hint = failure.hint.as_str(),
        "connection test failed"
    );
}

#[cfg(test)]
mod tests {
    //! The phase logic with a fake cloud. The network parts these touch are local and
    //! deterministic (an unresolvable `.invalid` name, a port nobody listens on); the proof
    //! against real servers and moto is in the workspace's `tests/connection_test_*.rs`.
    use super::*;
    use crate::cloud::{AssumedCredentials, IamToken};
    use crate::config::RoleToAssume;
    use dbcreds_aws::AwsError;
    use dbcreds_core::SecretString;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    const TOKEN: &str = "db.example.com:5432/?Action=connect&DBUser=app&X-Amz-Signature=TOKEN-SHOULD-NEVER-SHOW";
    const PASSWORD: &str = "hunter2-PASSWORD-SHOULD-NEVER-SHOW";
    const SESSION_SECRET: &str = "SESSION-SECRET-SHOULD-NEVER-SHOW";

    #[derive(Default)]
    struct FakeCloud {
        deny_role: bool,
        secret: Option<String>,
        calls: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Cloud for FakeCloud {
        async fn assume_role(&self, role: &RoleToAssume, _: Instant) -> Result<AssumedCredentials, AwsError> {
            self.calls.lock().unwrap().push(format!("assume_role {} {:?}", role.arn, role.external_id));
            if self.deny_role {
                return Err(AwsError::new(ErrorClass::AssumeRoleDenied, Some("AccessDenied".into()), "AssumeRole: access denied"));
            }
            Ok(AssumedCredentials {
                access_key_id: "ASIAFAKE".into(),
                secret_access_key: SecretString::from(SESSION_SECRET),
                session_token: SecretString::from(SESSION_SECRET),
                expiration: std::time::SystemTime::now(),
                assumed_role_arn: "arn:aws:sts::111122223333:assumed-role/db-connect/dbcreds-connection-test".into(),
            })
        }

        async fn iam_token(&self, sign_with: &SignWith, host: &str, port: u16, user: &str) -> Result<IamToken, AwsError> {
            let who = match sign_with {
                SignWith::Own => "own",
                SignWith::Assumed(_) => "assumed",
            };
            self.calls.lock().unwrap().push(format!("iam_token {who} {host}:{port} {user}"));
            Ok(IamToken { value: SecretString::from(TOKEN), region: "eu-west-1".into() })
        }

        async fn read_secret(&self, secret_id: &str, _: Instant) -> Result<SecretString, AwsError> {
            self.calls.lock().unwrap().push(format!("read_secret {secret_id}"));
            self.secret.clone().map(SecretString::from).ok_or_else(|| AwsError::new(ErrorClass::Input, Some("ResourceNotFoundException".into()), "GetSecretValue: not found"))
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    async fn run_with(cloud: FakeCloud, pairs: &[(&str, &str)], event: Value) -> (Value, Vec<String>) {
        let cloud = Arc::new(cloud);
        let trust = TrustStore::load(|_| None).map(Arc::new);
        let toolkit = Toolkit { cloud: cloud.clone(), trust };
        let budget = Budget::from_remaining(Duration::from_secs(20), Duration::from_millis(500));
        let response = crate::handle(&event, env(pairs), &toolkit, &budget).await;
        let text = response.to_string();
        for secret in [TOKEN, PASSWORD, SESSION_SECRET, "TOKEN-SHOULD-NEVER-SHOW"] {
            assert!(!text.contains(secret), "a secret leaked into the response: {text}");
        }
        let calls = cloud.calls.lock().unwrap().clone();
        (response, calls)
    }

    fn phases(response: &Value) -> Vec<(String, String)> {
        response["diagnostics"]["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["phase"].as_str().unwrap().to_owned(), p["status"].as_str().unwrap().to_owned()))
            .collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    const IAM: &[(&str, &str)] = &[
        ("RDS_PROXY_APPLICATION_ENDPOINT", "nonexistent.invalid"),
        ("DB_USERNAME", "app_iam"),
        ("DATABASE_ACCOUNT_IAM_ROLE", "arn:aws:iam::111122223333:role/db-connect"),
        ("EXTERNAL_ID", "ext-123"),
    ];

    #[tokio::test]
    async fn a_denied_role_stops_before_the_token_and_says_so() {
        let (response, calls) = run_with(FakeCloud { deny_role: true, ..Default::default() }, IAM, json!({})).await;
        assert_eq!(response["statusCode"], 403);
        assert_eq!(response["body"], "Database connection failed in phase assume_role: assume_role_denied");
        let failure = &response["diagnostics"]["failure"];
        assert_eq!(failure["phase"], "assume_role");
        assert_eq!(failure["class"], "assume_role_denied");
        assert!(failure["hint"].as_str().unwrap().contains("trust policy"), "{failure}");
        assert_eq!(phases(&response), owned(&[("assume_role", "failed")]));
        assert_eq!(response["diagnostics"]["endpoint"], "nonexistent.invalid:5432");
        assert_eq!(response["diagnostics"]["external_id_sent"], true);
        assert!(!response.to_string().contains("ext-123"), "the external id is not repeated");
        assert_eq!(calls, ["assume_role arn:aws:iam::111122223333:role/db-connect Some(\"ext-123\")"]);
    }

    #[tokio::test]
    async fn iam_mode_signs_with_the_assumed_role_then_reports_everything_up_to_dns() {
        let (response, calls) = run_with(FakeCloud::default(), IAM, json!({ "DB_PORT": 6432 })).await;
        assert_eq!(calls[1], "iam_token assumed nonexistent.invalid:6432 app_iam");
        assert_eq!(response["statusCode"], 502);
        assert_eq!(phases(&response), owned(&[("assume_role", "ok"), ("token", "ok"), ("dns", "failed")]));
        let d = &response["diagnostics"];
        assert_eq!(d["assumed_role_arn"], "arn:aws:sts::111122223333:assumed-role/db-connect/dbcreds-connection-test");
        assert_eq!(d["token_region"], "eu-west-1");
        assert_eq!(d["auth_mode"], "iam");
        assert_eq!(d["failure"]["class"], "dns");
    }

    #[tokio::test]
    async fn without_a_role_the_functions_own_credentials_sign() {
        let (response, calls) = run_with(FakeCloud::default(), IAM, json!({ "DATABASE_ACCOUNT_IAM_ROLE": "" })).await;
        assert_eq!(calls, ["iam_token own nonexistent.invalid:5432 app_iam"]);
        assert_eq!(phases(&response)[0], ("assume_role".to_owned(), "skipped".to_owned()));
        assert!(response["diagnostics"].get("assumed_role_arn").is_none());
    }

    /// A port on loopback that nothing listens on: bind, note the port, close.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn secret_mode_uses_the_secrets_login_with_configured_overrides() {
        let port = closed_port();
        let secret = json!({ "engine": "mariadb", "host": "nonexistent.invalid", "port": 1, "username": "app", "password": PASSWORD, "dbname": "appdb" });
        let cloud = FakeCloud { secret: Some(secret.to_string()), ..Default::default() };
        let pairs = [("DB_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf"), ("RDS_PROXY_APPLICATION_ENDPOINT", "127.0.0.1")];
        let (response, _) = run_with(cloud, &pairs, json!({ "DB_PORT": port })).await;
        let d = &response["diagnostics"];
        assert_eq!(d["auth_mode"], "secret");
        assert_eq!(d["engine"], "mysql");
        assert_eq!(d["endpoint"], format!("127.0.0.1:{port}"));
        assert_eq!(d["user"], "app");
        assert_eq!(d["database"], "appdb");
        assert_eq!(phases(&response), owned(&[("read_secret", "ok"), ("dns", "ok"), ("tcp", "failed")]));
        assert_eq!(d["failure"]["class"], "connection_refused");
        assert_eq!(response["statusCode"], 502);
    }

    #[tokio::test]
    async fn a_secret_that_disagrees_with_the_configuration_is_named() {
        let secret = json!({ "engine": "postgres", "host": "h", "username": "app", "password": PASSWORD });
        let arn = ("DB_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf");
        for (extra, field) in [(("DB_ENGINE", "mysql"), "DB_ENGINE"), (("DB_USERNAME", "other"), "DB_USERNAME")] {
            let cloud = FakeCloud { secret: Some(secret.to_string()), ..Default::default() };
            let (response, _) = run_with(cloud, &[arn, extra], json!({})).await;
            let failure = &response["diagnostics"]["failure"];
            assert_eq!(failure["phase"], "read_secret");
            assert_eq!(failure["class"], "input");
            assert!(failure["message"].as_str().unwrap().starts_with(field), "{failure}");
            assert_eq!(response["statusCode"], 400);
        }
        let cloud = FakeCloud { secret: Some(r#"{"engine":"postgres","host":"h","username":"app"}"#.into()), ..Default::default() };
        let (response, _) = run_with(cloud, &[arn], json!({})).await;
        assert!(response["diagnostics"]["failure"]["message"].as_str().unwrap().starts_with("secret.password"), "{response}");
        let cloud = FakeCloud { secret: Some(format!("not json {PASSWORD}")), ..Default::default() };
        let (response, _) = run_with(cloud, &[arn], json!({})).await;
        assert_eq!(response["diagnostics"]["failure"]["class"], "input");
        assert!(response["diagnostics"]["failure"]["message"].as_str().unwrap().starts_with("secret: is not valid JSON"), "{response}");
    }

    #[tokio::test]
    async fn bad_configuration_is_a_400_that_tries_nothing() {
        let (response, calls) = run_with(FakeCloud::default(), IAM, json!({ "DB_PORT": "70000" })).await;
        assert_eq!(response["statusCode"], 400);
        assert_eq!(response["diagnostics"]["failure"]["phase"], "configuration");
        assert!(response["diagnostics"]["failure"]["message"].as_str().unwrap().starts_with("DB_PORT"));
        assert!(calls.is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_event_ca_bundle_is_a_configuration_failure() {
        let (response, calls) = run_with(FakeCloud::default(), IAM, json!({ "DB_CA_BUNDLE": "/nonexistent/ca.pem" })).await;
        let failure = &response["diagnostics"]["failure"];
        assert_eq!(failure["phase"], "configuration");
        assert_eq!(failure["class"], "input");
        assert!(failure["message"].as_str().unwrap().contains("DB_CA_BUNDLE"), "{failure}");
        assert!(calls.is_empty());
    }

    #[test]
    fn plaintext_only_when_the_secret_says_so() {
        let config = Config::load(env(&[("DB_SECRET_ARN", "s-x")]), &json!({})).unwrap();
        let doc = |ssl: &str| SecretDocument::parse(SecretString::from(format!(r#"{{"engine":"postgres","host":"h","username":"u","password":"p"{ssl}}}"#))).unwrap();
        assert_eq!(target_from_secret(&config, &doc("")).unwrap().0.tls, TlsPolicy::VerifyFull);
        assert_eq!(target_from_secret(&config, &doc(r#","ssl":true"#)).unwrap().0.tls, TlsPolicy::VerifyFull);
        assert_eq!(target_from_secret(&config, &doc(r#","ssl":false"#)).unwrap().0.tls, TlsPolicy::Disabled);
    }
}
