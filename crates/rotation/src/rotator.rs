//! The entry point of a step: parse the event, run the preamble, dispatch to the step, and
//! describe the outcome in one report (logged as one JSON line by [`StepReport::log`]).
//!
//! The preamble runs on every step, as in AWS's functions, with one DescribeSecret:
//! 1. rotation must be enabled on the secret;
//! 2. the token must be a version of the secret with a stage;
//! 3. a token that is already AWSCURRENT makes the step a success (finishSecret also removes an
//!    AWSPENDING left on it);
//! 4. a token that is not AWSPENDING is refused, naming the version that *is* pending when there
//!    is one (another rotation's), which is never touched.
//!
//! The whole step runs under the invocation's work deadline (the Lambda deadline minus a reserve
//! kept for reporting): when it passes, the step stops where it is and fails as `deadline`, which
//! is retryable. Every step converges when run again, so nothing is left that a retry can't finish.

use crate::config::{RotationConfig, Strategy};
use crate::error::RotationError;
use crate::event::{RotationEvent, Step};
use crate::ports::{Databases, EndpointLookup};
use crate::steps;
use dbcreds_aws::{AWSCURRENT, AWSPENDING, SecretMetadata, SecretStore};
use dbcreds_core::ErrorClass;
use dbcreds_core::sanitize::{field as clean, for_log};
use serde_json::Value;
use std::fmt;
use tokio::time::Instant;

/// Everything a step needs, for one invocation. Built per invocation by the binary (with the
/// store and RDS views bound to the invocation's deadline) or by a test (with fakes).
pub struct Rotator<'a> {
    pub store: &'a dyn SecretStore,
    pub databases: &'a dyn Databases,
    /// RDS, to find the host of an RDS-managed master secret. `None` where none is available.
    pub endpoints: Option<&'a dyn EndpointLookup>,
    pub config: &'a RotationConfig,
}

/// What a successful step did, for the log line and the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The token's version is already AWSCURRENT: nothing to do.
    AlreadyCurrent,
    /// finishSecret found the token AWSCURRENT with AWSPENDING still on it, and removed it.
    PendingCleared,
    /// createSecret stored a new AWSPENDING value.
    Created,
    /// createSecret found a value under the token already and kept it.
    AlreadyCreated,
    /// setSecret (single user): the pending credentials already logged in.
    AlreadySet,
    /// setSecret (single user): the password was changed by logging in with this stage.
    PasswordChanged { with: &'static str },
    /// setSecret (alternating users): the pending user was made a copy of the current one.
    Mirrored { changes: usize, pending_already_logged_in: bool },
    /// testSecret: the pending credentials logged in.
    Tested,
    /// finishSecret: AWSCURRENT moved to the token and AWSPENDING removed.
    Finished,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::AlreadyCurrent => "already_current",
            Outcome::PendingCleared => "pending_cleared",
            Outcome::Created => "created",
            Outcome::AlreadyCreated => "already_created",
            Outcome::AlreadySet => "already_set",
            Outcome::PasswordChanged { .. } => "password_changed",
            Outcome::Mirrored { .. } => "mirrored",
            Outcome::Tested => "tested",
            Outcome::Finished => "finished",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::PasswordChanged { with } => write!(f, "password_changed (logged in with {with})"),
            Outcome::Mirrored { changes, pending_already_logged_in } => {
                write!(f, "mirrored ({changes} changes{})", if *pending_already_logged_in { ", the pending password was already set" } else { "" })
            }
            other => f.write_str(other.as_str()),
        }
    }
}

/// What the log line says about a step. Every text in it is sanitised against log injection.
#[derive(Clone, Debug, Default)]
pub struct StepInfo {
    pub step: Option<Step>,
    /// The secret's ARN once described, else the SecretId as sent (sanitised).
    pub secret_arn: Option<String>,
    /// The ClientRequestToken (sanitised).
    pub version: Option<String>,
    pub engine: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug)]
pub struct StepReport {
    pub info: StepInfo,
    pub strategy: Strategy,
    pub duration_ms: u64,
    pub result: Result<Outcome, RotationError>,
}

impl StepReport {
    /// One JSON line for the step's outcome (with `dbcreds_runtime::init_logging`).
    /// `secrets_manager_calls` is the number of API calls the step made, when the caller counts.
    pub fn log(&self, secrets_manager_calls: Option<u64>) {
        let step = self.info.step.map_or("-", Step::as_str);
        let secret_arn = self.info.secret_arn.as_deref().unwrap_or("");
        let version = self.info.version.as_deref().unwrap_or("");
        let engine = self.info.engine.as_deref().unwrap_or("");
        let host = self.info.host.as_deref().unwrap_or("");
        let strategy = self.strategy.as_str();
        let calls = secrets_manager_calls.map(|c| c as i64).unwrap_or(-1);
        match &self.result {
            Ok(outcome) => tracing::info!(
                step, secret_arn, version, engine, host, strategy, duration_ms = self.duration_ms, outcome = outcome.as_str(),
                detail = %outcome, secrets_manager_calls = calls, "rotation step succeeded"
            ),
            Err(err) => tracing::error!(
                step, secret_arn, version, engine, host, strategy, duration_ms = self.duration_ms, error_class = err.class.as_str(),
                retryable = err.is_retryable(), error = %err.message, hint = err.class.hint(), secrets_manager_calls = calls, "rotation step failed"
            ),
        }
    }
}

/// The invocation's state shared by the steps.
pub(crate) struct Invocation<'a> {
    pub rotator: &'a Rotator<'a>,
    pub event: &'a RotationEvent,
    pub metadata: SecretMetadata,
    pub deadline: Instant,
}

impl Invocation<'_> {
    pub fn arn(&self) -> &str {
        &self.metadata.arn
    }

    pub fn token(&self) -> &str {
        &self.event.client_request_token
    }

    pub fn config(&self) -> &RotationConfig {
        self.rotator.config
    }

    /// Refuses to start `what` when the work deadline has passed: better a clean, retryable
    /// failure now than Lambda killing the process in the middle of it.
    pub fn check_time(&self, what: &str) -> Result<(), RotationError> {
        if Instant::now() >= self.deadline {
            return Err(RotationError::new(ErrorClass::Deadline, format!("no time left to start {what}; nothing was left half-done and the step is safe to retry")));
        }
        Ok(())
    }
}

/// How the preamble leaves the step.
enum Preamble {
    /// The token is AWSPENDING: run the step.
    Pending,
    /// The token is already AWSCURRENT; `also_pending` when AWSPENDING is still on it.
    AlreadyCurrent { also_pending: bool },
}

impl<'a> Rotator<'a> {
    /// Runs one step for a raw event and reports what happened. Never panics on input.
    pub async fn run(&self, payload: &Value, deadline: Instant) -> StepReport {
        let started = std::time::Instant::now();
        let mut info = StepInfo {
            step: payload.get("Step").and_then(Value::as_str).and_then(|s| Step::parse(s).ok()),
            secret_arn: payload.get("SecretId").and_then(Value::as_str).map(clean),
            version: payload.get("ClientRequestToken").and_then(Value::as_str).map(clean),
            ..StepInfo::default()
        };
        let result = match RotationEvent::from_json(payload) {
            Err(err) => Err(RotationError::from(err).context("the rotation event was refused (nothing was called or changed)")),
            Ok(event) => match tokio::time::timeout_at(deadline, self.run_event(&event, deadline, &mut info)).await {
                Ok(result) => result,
                Err(_) => Err(RotationError::new(
                    ErrorClass::Deadline,
                    format!("{} stopped at the invocation's deadline; every step converges when run again, so the retry finishes it", event.step),
                )),
            },
        };
        StepReport { info, strategy: self.config.strategy, duration_ms: started.elapsed().as_millis() as u64, result }
    }

    async fn run_event(&self, event: &RotationEvent, deadline: Instant, info: &mut StepInfo) -> Result<Outcome, RotationError> {
        if Instant::now() >= deadline {
            return Err(RotationError::new(ErrorClass::Deadline, format!("no time left to start {}; nothing was called and the step is safe to retry", event.step)));
        }
        let metadata = self.store.describe(&event.secret_id).await.map_err(|e| RotationError::from(e).context("describing the secret"))?;
        info.secret_arn = Some(clean(&metadata.arn));
        let invocation = Invocation { rotator: self, event, metadata, deadline };
        match preamble(&invocation)? {
            Preamble::AlreadyCurrent { also_pending } if event.step == Step::FinishSecret && also_pending => {
                steps::clear_pending(&invocation).await?;
                Ok(Outcome::PendingCleared)
            }
            Preamble::AlreadyCurrent { .. } => Ok(Outcome::AlreadyCurrent),
            Preamble::Pending => match event.step {
                Step::CreateSecret => steps::create_secret(&invocation, info).await,
                Step::SetSecret => steps::set_secret(&invocation, info).await,
                Step::TestSecret => steps::test_secret(&invocation, info).await,
                Step::FinishSecret => steps::finish_secret(&invocation, info).await,
            },
        }
    }
}

impl Rotator<'_> {
    /// Starts a rotation for a caller that runs the four steps itself instead of Secrets Manager
    /// invoking a function (the operator CLI's `dbcreds rotate`), and runs its createSecret.
    ///
    /// RotateSecret, before it invokes the function, checks that no other rotation is in progress
    /// and creates the token's version with AWSPENDING and no value; the public API offers no way
    /// to create a version without a value. So this makes the same checks (rotation enabled, no
    /// version AWSPENDING other than AWSCURRENT, `token` not yet a version) and then runs the very
    /// createSecret a function runs, whose PutSecretValue creates the version with AWSPENDING.
    /// After it, the token is a pending version with a value: the remaining steps go through
    /// [`Rotator::run`] like any invocation, and a rotation interrupted anywhere is finished by
    /// running the steps again with the same token.
    pub async fn start(&self, secret_id: &str, token: &str, deadline: Instant) -> StepReport {
        let started = std::time::Instant::now();
        let payload = serde_json::json!({"Step": Step::CreateSecret.as_str(), "SecretId": secret_id, "ClientRequestToken": token});
        let mut info = StepInfo { step: Some(Step::CreateSecret), secret_arn: Some(clean(secret_id)), version: Some(clean(token)), ..StepInfo::default() };
        let result = match RotationEvent::from_json(&payload) {
            Err(err) => Err(RotationError::from(err).context("the rotation was not started (nothing was called or changed)")),
            Ok(event) => match tokio::time::timeout_at(deadline, self.start_event(&event, deadline, &mut info)).await {
                Ok(result) => result,
                Err(_) => Err(RotationError::new(ErrorClass::Deadline, "createSecret stopped at the deadline; run the steps again with the same token to finish it")),
            },
        };
        StepReport { info, strategy: self.config.strategy, duration_ms: started.elapsed().as_millis() as u64, result }
    }

    async fn start_event(&self, event: &RotationEvent, deadline: Instant, info: &mut StepInfo) -> Result<Outcome, RotationError> {
        let metadata = self.store.describe(&event.secret_id).await.map_err(|e| RotationError::from(e).context("describing the secret"))?;
        info.secret_arn = Some(clean(&metadata.arn));
        let secret = for_log(&metadata.arn);
        if !metadata.rotation_enabled {
            return Err(RotationError::state(format!(
                "secret {secret} is not enabled for rotation; turn rotation on (RotateSecret with the rotation function's ARN) before rotating it"
            )));
        }
        let in_progress = metadata.versions.iter().find(|(_, stages)| stages.iter().any(|s| s == AWSPENDING) && !stages.iter().any(|s| s == AWSCURRENT));
        if let Some((pending, _)) = in_progress {
            return Err(RotationError::state(format!(
                "a previous rotation of secret {secret} isn't complete: version {} is AWSPENDING; finish it by running its steps again with that token, or remove AWSPENDING from it to abandon it",
                for_log(pending)
            )));
        }
        if metadata.versions.contains_key(&event.client_request_token) {
            return Err(RotationError::input(format!("version {} already exists in secret {secret}; start a rotation with a new token", for_log(&event.client_request_token))));
        }
        let invocation = Invocation { rotator: self, event, metadata, deadline };
        steps::create_secret(&invocation, info).await
    }
}

/// The checks every step starts with (see the module documentation).
fn preamble(inv: &Invocation<'_>) -> Result<Preamble, RotationError> {
    let metadata = &inv.metadata;
    let secret = for_log(&metadata.arn);
    let token = for_log(inv.token());
    if !metadata.rotation_enabled {
        return Err(RotationError::state(format!(
            "secret {secret} is not enabled for rotation; turn rotation on (RotateSecret with this function's ARN) before invoking the function"
        )));
    }
    let stages = match metadata.stages_of(inv.token()) {
        None => return Err(RotationError::state(format!("version {token} is not a version of secret {secret} (it has no stage for rotation); invoke the function with the token of the AWSPENDING version"))),
        Some([]) => return Err(RotationError::state(format!("version {token} of secret {secret} has no stage for rotation; invoke the function with the token of the AWSPENDING version"))),
        Some(stages) => stages,
    };
    let has = |stage: &str| stages.iter().any(|s| s == stage);
    if has(AWSCURRENT) {
        return Ok(Preamble::AlreadyCurrent { also_pending: has(AWSPENDING) });
    }
    if !has(AWSPENDING) {
        let pending = match metadata.version_with_stage(AWSPENDING) {
            Some(other) => format!(
                "; version {} is AWSPENDING, from another rotation, and is left untouched: finish that rotation, or cancel it (aws secretsmanager cancel-rotate-secret) and start again",
                for_log(other)
            ),
            None => "; no version is AWSPENDING, so there is no rotation in progress".to_owned(),
        };
        return Err(RotationError::state(format!("version {token} of secret {secret} is not set as AWSPENDING{pending}")));
    }
    Ok(Preamble::Pending)
}
