//! Shared by `tests/rotator_*.rs`: the real `rotator` binary behind the Lambda Runtime API
//! emulator, moto for Secrets Manager, and the four steps driven the way Secrets Manager drives
//! them.
//!
//! moto's RotateSecret does not run rotation functions: [`Harness::start_rotation`] sets up what
//! the service does before calling one (`dbcreds_testenv::moto_rotation`: a version with the
//! token and AWSPENDING, no value, rotation on), and the tests invoke the four steps with that
//! token. Nothing here relies on moto's PutSecretValue overwrite quirk: no test writes the same
//! token twice.
#![allow(dead_code)] // each test file uses its own subset

use aws_sdk_secretsmanager::Client;
use dbcreds_core::{ErrorClass, SecretDocument, SecretString};
use dbcreds_db::{ConnectSpec, DbError, Identity, TrustStore};
use dbcreds_testenv::{Invocation, LambdaFunction, Moto, Outcome, moto_rotation};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const BINARY: &str = "rotator";
/// Lambda's default rotation function timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

pub struct Harness {
    pub moto: Moto,
    pub sm: Client,
    pub trust: Arc<TrustStore>,
    ca_path: String,
}

/// A version id as Secrets Manager makes them (a random UUID).
pub fn new_token() -> String {
    moto_rotation::new_token()
}

/// `(stages, value)` of every version of a secret.
pub type SecretSnapshot = BTreeMap<String, (Vec<String>, Option<String>)>;

impl Harness {
    pub async fn new(ca_pem: &[u8], ca_path: &Path) -> Harness {
        let moto = Moto::start().await;
        let sm = Client::new(&moto.sdk_config().await);
        let trust = Arc::new(TrustStore::from_pem(ca_pem).expect("the test CA"));
        Harness { moto, sm, trust, ca_path: ca_path.display().to_string() }
    }

    /// A `rotator` function with `ROTATION_STRATEGY`, the test CA as `DB_CA_BUNDLE`, moto as
    /// every AWS endpoint, and `extra` on top.
    pub async fn function(&self, strategy: &str, extra: &[(&str, &str)]) -> LambdaFunction {
        let mut env = self.moto.env();
        env.push(("DB_CA_BUNDLE".into(), self.ca_path.clone()));
        env.push(("ROTATION_STRATEGY".into(), strategy.into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        LambdaFunction::start(BINARY, env).await
    }

    pub async fn create_secret(&self, name: &str, document: &Value) -> String {
        let out = self.sm.create_secret().name(name).secret_string(document.to_string()).send().await.expect("CreateSecret");
        out.arn.expect("an ARN")
    }

    /// What RotateSecret does before it calls the function: turn rotation on, and add a version
    /// with the token and AWSPENDING and no value, the other stages untouched (moto needs help
    /// for that, and the result is checked: see `dbcreds_testenv::moto_rotation`).
    pub async fn start_rotation(&self, arn: &str, token: &str) {
        if let Err(problem) = moto_rotation::start_rotation(&self.sm, arn, token).await {
            panic!("{problem}");
        }
    }

    pub async fn stages(&self, arn: &str) -> BTreeMap<String, Vec<String>> {
        moto_rotation::version_stages(&self.sm, arn).await.unwrap_or_else(|problem| panic!("{problem}"))
    }

    pub async fn rotation_enabled(&self, arn: &str) -> bool {
        self.sm.describe_secret().secret_id(arn).send().await.expect("DescribeSecret").rotation_enabled.unwrap_or(false)
    }

    /// Every version with its stages and value.
    pub async fn snapshot(&self, arn: &str) -> SecretSnapshot {
        let mut out = BTreeMap::new();
        for (version, mut stages) in self.stages(arn).await {
            stages.sort();
            let value = self.sm.get_secret_value().secret_id(arn).version_id(&version).send().await.ok().and_then(|v| v.secret_string);
            out.insert(version, (stages, value));
        }
        out
    }

    pub async fn value(&self, arn: &str, version: &str) -> Value {
        let out = self.sm.get_secret_value().secret_id(arn).version_id(version).send().await.expect("GetSecretValue");
        serde_json::from_str(&out.secret_string.expect("a string")).expect("JSON")
    }

    pub async fn version_with(&self, arn: &str, stage: &str) -> Option<String> {
        self.stages(arn).await.into_iter().find(|(_, stages)| stages.iter().any(|s| s == stage)).map(|(id, _)| id)
    }

    /// `(version, document)` of AWSCURRENT.
    pub async fn current(&self, arn: &str) -> (String, Value) {
        let version = self.version_with(arn, "AWSCURRENT").await.expect("an AWSCURRENT version");
        let value = self.value(arn, &version).await;
        (version, value)
    }

    /// Logs in with a secret document, through the same database seam the function uses.
    pub async fn login(&self, document: &Value) -> Result<Identity, DbError> {
        let document = SecretDocument::parse(SecretString::from(document.to_string())).expect("a valid document");
        let spec = ConnectSpec::from_document(&document, Arc::clone(&self.trust), tokio::time::Instant::now() + Duration::from_secs(15))?;
        dbcreds_db::check_login(&spec).await
    }

    pub async fn assert_logs_in(&self, document: &Value, what: &str) {
        if let Err(err) = self.login(document).await {
            panic!("{what}: user {} must log in, got {err}", document["username"]);
        }
    }

    /// The server refused the credentials (not a network or TLS failure that would hide it).
    pub async fn assert_refused(&self, document: &Value, what: &str) {
        match self.login(document).await {
            Ok(identity) => panic!("{what}: user {} must no longer log in, but logged in as {}", document["username"], identity.current_user),
            Err(err) => assert_eq!(err.class, ErrorClass::Authentication, "{what}: {err}"),
        }
    }
}

pub fn event(step: &str, arn: &str, token: &str) -> Value {
    json!({"Step": step, "SecretId": arn, "ClientRequestToken": token})
}

pub async fn invoke(function: &mut LambdaFunction, step: &str, arn: &str, token: &str) -> Invocation {
    function.invoke(event(step, arn, token), TIMEOUT).await
}

/// Runs a step that must succeed; returns its `outcome` and the Secrets Manager calls it logged.
pub async fn ok(function: &mut LambdaFunction, step: &str, arn: &str, token: &str) -> (String, u64) {
    let invocation = invoke(function, step, arn, token).await;
    let calls = logged_calls(&invocation.logs);
    let response = invocation.expect_ok();
    assert_eq!(response["Step"], step, "{response}");
    (response["outcome"].as_str().expect("an outcome").to_owned(), calls)
}

/// Runs a step that must fail; returns `(errorType, errorMessage)`.
pub async fn fails(function: &mut LambdaFunction, step: &str, arn: &str, token: &str) -> (String, String) {
    let invocation = invoke(function, step, arn, token).await;
    let logs = invocation.logs.clone();
    match invocation.outcome {
        Outcome::Err { error_type, error_message } => {
            assert!(logs.contains("rotation step failed") || logs.contains("misconfigured"), "a failure must be logged:\n{logs}");
            (error_type, error_message)
        }
        other => panic!("{step} must fail, got {other:?}\nlogs:\n{logs}"),
    }
}

/// The `secrets_manager_calls` of the step's outcome line (one JSON line per step).
pub fn logged_calls(logs: &str) -> u64 {
    let lines: Vec<Value> = logs
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|err| panic!("a log line is not JSON ({err}): {line}")))
        .filter(|line| line["message"].as_str().is_some_and(|m| m.starts_with("rotation step")))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one outcome line per step:\n{logs}");
    let line = &lines[0];
    for field in ["step", "secret_arn", "version", "engine", "host", "duration_ms"] {
        assert!(line.get(field).is_some(), "the outcome line lacks {field}: {line}");
    }
    line["secrets_manager_calls"].as_u64().unwrap_or_else(|| panic!("no call count in {line}"))
}

/// A whole rotation as Secrets Manager runs it; returns the token and the Secrets Manager
/// calls the four steps made.
pub async fn rotate(harness: &Harness, function: &mut LambdaFunction, arn: &str) -> (String, u64) {
    let token = new_token();
    harness.start_rotation(arn, &token).await;
    let mut calls = 0;
    for step in STEPS {
        calls += ok(function, step, arn, &token).await.1;
    }
    (token, calls)
}

/// A rotation with every step invoked twice in a row, as a retrying service may: the second
/// call of each step must succeed and change nothing. Returns the token and the outcomes.
pub async fn rotate_repeating(harness: &Harness, function: &mut LambdaFunction, arn: &str) -> (String, Vec<(String, String)>) {
    let token = new_token();
    harness.start_rotation(arn, &token).await;
    let mut outcomes = Vec::new();
    for step in STEPS {
        let first = ok(function, step, arn, &token).await.0;
        let after_first = harness.snapshot(arn).await;
        let second = ok(function, step, arn, &token).await.0;
        assert_eq!(harness.snapshot(arn).await, after_first, "repeating {step} changed the secret");
        outcomes.push((first, second));
    }
    (token, outcomes)
}

/// After a rotation: the token is AWSCURRENT, no version is AWSPENDING, the old current is
/// AWSPREVIOUS.
pub async fn assert_finished(harness: &Harness, arn: &str, token: &str, old_current: &str) {
    let stages = harness.stages(arn).await;
    assert_eq!(stages.get(token).map(Vec::as_slice), Some(&["AWSCURRENT".to_string()][..]), "{stages:?}");
    assert!(stages.values().all(|s| !s.iter().any(|x| x == "AWSPENDING")), "AWSPENDING left behind: {stages:?}");
    assert!(stages.get(old_current).is_some_and(|s| s.iter().any(|x| x == "AWSPREVIOUS")), "{stages:?}");
}

/// One single-user rotation, checked the same way for every engine: the token is AWSCURRENT and
/// nothing is left pending, the new password logs in and the old one is refused, the user and
/// unknown keys are kept, and the Secrets Manager calls stay within `budget`. With `repeat`,
/// every step runs twice in a row (as a retrying service may) with the expected outcomes.
/// Returns the new version and document.
pub async fn checked_single_user_rotation(harness: &Harness, function: &mut LambdaFunction, arn: &str, old: &(String, Value), repeat: bool, budget: u64, what: &str) -> (String, Value) {
    let token = if repeat {
        let (token, outcomes) = rotate_repeating(harness, function, arn).await;
        let expected = [("created", "already_created"), ("password_changed", "already_set"), ("tested", "tested"), ("finished", "already_current")];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(outcomes, expected, "{what}");
        token
    } else {
        let (token, calls) = rotate(harness, function, arn).await;
        assert!(calls <= budget, "{what}: {calls} Secrets Manager calls for a four-step rotation, over {budget}");
        token
    };
    assert_finished(harness, arn, &token, &old.0).await;
    let (_, current) = harness.current(arn).await;
    harness.assert_logs_in(&current, what).await;
    harness.assert_refused(&old.1, what).await;
    assert_eq!(current["username"], old.1["username"], "{what}");
    for (key, value) in old.1.as_object().unwrap() {
        if key != "password" {
            assert_eq!(&current[key], value, "{what}: {key} is kept as written");
        }
    }
    assert_eq!(current["password"].as_str().unwrap().len(), 32, "{what}");
    (token, current)
}

/// The Secrets Manager calls a single-user rotation may make: 4 DescribeSecret, 1 PutSecretValue,
/// 2 UpdateSecretVersionStage and the probe of the pending version; AWSCURRENT's value is read
/// once per process, then the version cache serves it as it serves every other read.
pub fn single_user_budget(first_rotation_of_the_secret: bool) -> u64 {
    if first_rotation_of_the_secret { 9 } else { 8 }
}

pub fn with_key(document: &Value, key: &str, value: Value) -> Value {
    let mut document = document.clone();
    document[key] = value;
    document
}

pub fn without_key(document: &Value, key: &str) -> Value {
    let mut document = document.clone();
    document.as_object_mut().unwrap().remove(key);
    document
}

/// A hostile or incomplete secret: createSecret fails as `input` naming `field`, no password
/// appears in the error, every other step fails too, and the secret is unchanged. The caller
/// checks the database.
pub async fn refused_at_create(harness: &Harness, function: &mut LambdaFunction, name: &str, document: &Value, field: &str) {
    let arn = harness.create_secret(&format!("hostile/{name}"), document).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    let before = harness.snapshot(&arn).await;
    let (error_type, message) = fails(function, "createSecret", &arn, &token).await;
    assert_eq!(error_type, "dbcreds.input", "{name}: {message}");
    assert!(message.contains(field), "{name}: the error must name {field}: {message}");
    if let Some(password) = document["password"].as_str() {
        assert!(!message.contains(password), "{name}: a password in an error: {message}");
    }
    for step in ["setSecret", "testSecret", "finishSecret"] {
        fails(function, step, &arn, &token).await;
    }
    assert_eq!(harness.snapshot(&arn).await, before, "{name}: the secret changed");
}
