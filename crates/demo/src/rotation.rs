//! Part 3: one rotation per engine and strategy through the real `rotator`, the four steps
//! invoked as Secrets Manager invokes them, with what each step did and, at the end, the proof:
//! the new AWSCURRENT logs in; for single user the old password is refused, for alternating
//! users the previous user keeps working.

use crate::login::{proves_login, proves_refused};
use crate::narrator::Narrator;
use crate::secrets::{describe, short_version};
use crate::world::{Database, World};
use dbcreds_testenv::{Outcome, moto_rotation};
use serde_json::{Value, json};
use std::time::Duration;

/// Lambda's default timeout for a rotation function.
const TIMEOUT: Duration = Duration::from_secs(30);
const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    SingleUser,
    AlternatingUsers,
}

impl Strategy {
    fn as_str(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
        }
    }
}

/// Rotates the secret `arn` once with `ROTATION_STRATEGY=strategy`, narrating, and records the
/// proofs. Returns whether the rotation went through.
pub async fn rotate(world: &World, database: &Database, strategy: Strategy, arn: &str, out: &mut Narrator) -> bool {
    let result = rotate_and_prove(world, database, strategy, arn, out).await;
    out.proof(database.column(), proof_label(strategy), result)
}

/// The summary's row for a rotation with `strategy`.
pub fn proof_label(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::SingleUser => "single-user rotation: new password in, old refused",
        Strategy::AlternatingUsers => "alternating rotation: other user in, previous still in",
    }
}

async fn rotate_and_prove(world: &World, database: &Database, strategy: Strategy, arn: &str, out: &mut Narrator) -> Result<String, String> {
    let (old_version, old) = world.secrets.current(arn).await?;
    let user = old.username().map_err(|err| err.to_string())?.to_owned();
    out.heading(format!("{} · {} · secret of {user}", database.name(), strategy.as_str()));
    out.detail(format!("AWSCURRENT {}  {}", short_version(&old_version), describe(&old)));

    let token = moto_rotation::new_token();
    moto_rotation::start_rotation(world.secrets.client(), arn, &token).await?;
    out.detail(format!("RotateSecret     version {} is AWSPENDING, no value yet; rotation enabled (moto, set up as the service does)", short_version(&token)));

    let mut function = world.function("rotator", database, &[("ROTATION_STRATEGY", strategy.as_str())]).await;
    for step in STEPS {
        let invocation = function.invoke(json!({"Step": step, "SecretId": arn, "ClientRequestToken": token}), TIMEOUT).await;
        let line = outcome_line(&invocation.logs);
        let took = invocation.timings.duration.map_or("?".into(), |d| format!("{} ms", d.as_millis()));
        let calls = line.as_ref().and_then(|l| l["secrets_manager_calls"].as_u64()).map_or(String::new(), |n| format!(", {n} Secrets Manager call{}", if n == 1 { "" } else { "s" }));
        match invocation.outcome {
            Outcome::Ok(response) => {
                let detail = line.as_ref().and_then(|l| l["detail"].as_str().or(l["outcome"].as_str()).map(str::to_owned)).unwrap_or_else(|| response["outcome"].as_str().unwrap_or_default().to_owned());
                out.detail(format!("{step:<16} {detail} ({took}{calls})"));
            }
            Outcome::Err { error_type, error_message } => {
                out.detail(format!("{step:<16} FAILED {error_type}: {error_message} ({took})"));
                return Err(format!("{step} failed ({error_type}); the rotator's logs: {}", world.logs.path("rotator").display()));
            }
            Outcome::Timeout => return Err(format!("{step} timed out after {TIMEOUT:?}")),
        }
        after_step(world, step, arn, &token, &old_version, out).await?;
    }

    let (new_version, new) = world.secrets.current(arn).await?;
    if new_version != token {
        return Err(format!("AWSCURRENT is {}, not the rotation's version {}", short_version(&new_version), short_version(&token)));
    }
    let new_user = new.username().map_err(|err| err.to_string())?.to_owned();
    let new_in = proves_login(&new, &world.trust).await.map_err(|problem| format!("the new AWSCURRENT: {problem}"))?;
    out.detail(format!("new AWSCURRENT logs in   {new_in}"));
    match strategy {
        Strategy::SingleUser => {
            if new_user != user {
                return Err(format!("single user rotated {user} into {new_user}"));
            }
            let refused = proves_refused(&old, &world.trust).await.map_err(|problem| format!("the old password: {problem}"))?;
            out.detail(format!("old password is refused  {refused}"));
            Ok(format!("{user}'s new password in, the old one refused"))
        }
        Strategy::AlternatingUsers => {
            if new_user == user {
                return Err(format!("alternating users kept {user} instead of switching"));
            }
            let previous_in = proves_login(&old, &world.trust).await.map_err(|problem| format!("the previous user (now AWSPREVIOUS): {problem}"))?;
            out.detail(format!("AWSPREVIOUS still logs in  {previous_in}"));
            Ok(format!("{new_user} in, {user} still in"))
        }
    }
}

/// What each step left behind, read back from Secrets Manager (and the database after setSecret).
async fn after_step(world: &World, step: &str, arn: &str, token: &str, old_version: &str, out: &mut Narrator) -> Result<(), String> {
    match step {
        "createSecret" => {
            let (_, pending) = world.secrets.read(arn, Some(token)).await?;
            out.detail(format!("                 AWSPENDING now holds {}", describe(&pending)));
        }
        "setSecret" => {
            let (_, pending) = world.secrets.read(arn, Some(token)).await?;
            let evidence = proves_login(&pending, &world.trust).await.map_err(|problem| format!("after setSecret the pending credentials must log in: {problem}"))?;
            out.detail(format!("                 the database accepts the pending credentials: {evidence}"));
        }
        "finishSecret" => {
            let stages = world.secrets.stages(arn).await?;
            let label = |version: &str| stages.get(version).map(|s| s.join("+")).unwrap_or_else(|| "-".into());
            let pending_left = stages.values().any(|s| s.iter().any(|x| x == "AWSPENDING"));
            out.detail(format!(
                "                 {} is {}, {} is {}, {}",
                short_version(token),
                label(token),
                short_version(old_version),
                label(old_version),
                if pending_left { "AWSPENDING is still set" } else { "no AWSPENDING left" }
            ));
            if pending_left || label(token) != "AWSCURRENT" || label(old_version) != "AWSPREVIOUS" {
                return Err("finishSecret must leave the new version AWSCURRENT, the old one AWSPREVIOUS and no AWSPENDING".into());
            }
        }
        _ => {}
    }
    Ok(())
}

/// The step's outcome line in the rotator's JSON log ("rotation step succeeded" / "... failed").
fn outcome_line(logs: &str) -> Option<Value> {
    logs.lines()
        .filter(|line| line.starts_with('{'))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"].as_str().is_some_and(|m| m.starts_with("rotation step")))
}
