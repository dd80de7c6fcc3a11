//! Four-step rotations through the release `rotator`, as Secrets Manager drives them: RotateSecret
//! (emulated on moto), then createSecret, setSecret, testSecret, finishSecret, each an invocation
//! of the same warm process.

use crate::fixture::{Aws, Binaries, Database, unique};
use dbcreds_testenv::moto_rotation::new_token;
use dbcreds_testenv::LambdaFunction;
use dbcreds_testenv::faults::AwsCalls;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// Lambda's default timeout for rotation functions.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    SingleUser,
    AlternatingUsers,
}

impl Strategy {
    pub const ALL: [Strategy; 2] = [Strategy::SingleUser, Strategy::AlternatingUsers];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
        }
    }
}

/// One step as the outside world saw it.
#[derive(Clone, Debug)]
pub struct StepRun {
    /// Event delivered to answer posted (the function's own time, no emulator overhead).
    pub duration: Duration,
    /// Secrets Manager calls counted at the proxy.
    pub calls: AwsCalls,
    /// Time the step spent in AWS calls, measured at the call counter (moto and the counter's
    /// own hop): the part of `duration` that is not the function's.
    pub in_aws_calls: Duration,
    /// New TCP connections to the database counted at the proxy.
    pub connections: u64,
    pub logs: String,
}

#[derive(Clone, Debug)]
pub struct RotationRun {
    pub steps: Vec<StepRun>,
    /// First invoke called to last answer received, as Secrets Manager would wait.
    pub wall: Duration,
}

impl RotationRun {
    /// The four steps' own durations added up.
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(|s| s.duration).sum()
    }

    /// The four steps' time in AWS calls added up.
    pub fn in_aws_calls(&self) -> Duration {
        self.steps.iter().map(|s| s.in_aws_calls).sum()
    }

    pub fn secrets_manager_calls(&self) -> u64 {
        self.steps.iter().map(|s| s.calls.of_service("secretsmanager").total()).sum()
    }

    pub fn connections(&self) -> u64 {
        self.steps.iter().map(|s| s.connections).sum()
    }

    pub fn step(&self, name: &str) -> &StepRun {
        &self.steps[STEPS.iter().position(|s| *s == name).expect("a step name")]
    }
}

/// A secret ready to rotate: its user exists with the secret's password; for alternating users,
/// `masterarn` names the server admin's secret.
pub struct RotatedSecret {
    pub arn: String,
    pub username: String,
}

pub async fn rotated_secret(aws: &Aws, db: &Database, strategy: Strategy) -> RotatedSecret {
    let username = unique("app");
    let password = format!("Initial-pw-{}", unique(""));
    db.create_login(&username, &password).await;
    let mut document = db.document(&username, &password);
    if strategy == Strategy::AlternatingUsers {
        let master_arn = aws.create_secret(&db.master_document()).await;
        document["masterarn"] = json!(master_arn);
    }
    RotatedSecret { arn: aws.create_secret(&document).await, username }
}

pub fn function_env(aws: &Aws, db: &Database, strategy: Strategy) -> Vec<(String, String)> {
    let mut env = aws.function_env();
    env.push(("DB_CA_BUNDLE".into(), db.ca_pem_path().display().to_string()));
    env.push(("ROTATION_STRATEGY".into(), strategy.name().into()));
    env
}

pub async fn start_function(bins: &Binaries, aws: &Aws, db: &Database, strategy: Strategy) -> LambdaFunction {
    bins.start("rotator", function_env(aws, db, strategy)).await
}

pub fn event(step: &str, arn: &str, token: &str) -> Value {
    json!({"Step": step, "SecretId": arn, "ClientRequestToken": token})
}

/// One whole rotation. Panics, with the function's logs, if a step fails: a benchmark of a
/// failing rotation would measure the wrong thing.
pub async fn rotate(aws: &Aws, db: &Database, function: &mut LambdaFunction, arn: &str) -> RotationRun {
    let token = new_token();
    aws.start_rotation(arn, &token).await;
    let started = Instant::now();
    let mut steps = Vec::new();
    for step in STEPS {
        let (calls_before, busy_before, connections_before) = (aws.calls(), aws.counter.time_in_calls(), db.connections());
        let invocation = function.invoke(event(step, arn, &token), TIMEOUT).await;
        let (calls, connections) = (aws.calls().since(&calls_before), db.connections() - connections_before);
        let in_aws_calls = aws.counter.time_in_calls().saturating_sub(busy_before);
        let duration = invocation.timings.duration.unwrap_or_default();
        let logs = invocation.logs.clone();
        invocation.expect_ok();
        steps.push(StepRun { duration, calls, in_aws_calls, connections, logs });
    }
    RotationRun { steps, wall: started.elapsed() }
}

/// The number of changes a setSecret log line reports (`mirrored (N changes)`), for the grant
/// curve. The function's own word, used only to label the figure.
pub fn mirrored_changes(logs: &str) -> Option<u64> {
    crate::process::log_events(logs).into_iter().find_map(|event| {
        let detail = event.fields.get("detail")?.as_str()?;
        let inside = detail.strip_prefix("mirrored (")?;
        inside.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirrored_change_count_is_read_from_the_step_line() {
        let logs = r#"{"timestamp":"2026-01-01T00:00:00.1Z","message":"rotation step succeeded","detail":"mirrored (1000 changes)"}"#;
        assert_eq!(mirrored_changes(logs), Some(1000));
        assert_eq!(mirrored_changes(r#"{"timestamp":"2026-01-01T00:00:00.1Z","detail":"tested"}"#), None);
    }
}
