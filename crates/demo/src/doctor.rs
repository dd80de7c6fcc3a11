//! Part 5: `dbcreds doctor` diagnosing and fixing a stuck rotation, once. A rotation of the
//! MariaDB DBUserA secret is started as RotateSecret starts one and then abandoned before
//! createSecret (a function that failed or was never reached): AWSPENDING is stuck on a version
//! with no value. The doctor (the real `dbcreds` binary from target/debug) names the problem and
//! the command that fixes it; the demo runs that command as printed, and the doctor then reports
//! the secret healthy. The README's operators section shows this run.

use crate::narrator::Narrator;
use crate::world::{Database, World};
use dbcreds_testenv::moto_rotation;
use std::process::Command;

pub const PROOF: &str = "doctor: stuck AWSPENDING diagnosed, its fix run, then healthy";

pub async fn stuck_rotation(world: &World, database: &Database, arn: &str, out: &mut Narrator) -> bool {
    let result = diagnose_and_fix(world, database, arn, out).await;
    out.proof(database.column(), PROOF, result)
}

async fn diagnose_and_fix(world: &World, database: &Database, arn: &str, out: &mut Narrator) -> Result<String, String> {
    let token = moto_rotation::new_token();
    moto_rotation::start_rotation(world.secrets.client(), arn, &token).await?;
    out.detail(format!("staged: RotateSecret made version {token} AWSPENDING, and no function ever ran createSecret"));

    let (code, report) = dbcreds(world, database, &format!("dbcreds doctor {arn}"))?;
    out.block(4, &report);
    if code != 3 {
        return Err(format!("doctor exited {code}, not 3 (problems found)"));
    }
    let fix = report
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("fix:"))
        .map(str::trim)
        .ok_or("the doctor suggested no fix")?
        .to_owned();
    if !fix.starts_with(&format!("dbcreds rotate {arn} --resume {token}")) {
        return Err(format!("the doctor suggested {fix}, not the resume of version {token}"));
    }
    out.detail("running the suggested fix as printed:");
    let (code, ran) = dbcreds(world, database, &fix)?;
    out.block(4, &ran);
    if code != 0 {
        return Err(format!("the fix exited {code}"));
    }
    let (code, after) = dbcreds(world, database, &format!("dbcreds doctor {arn}"))?;
    let verdict = after.lines().find(|l| l.starts_with("verdict:")).unwrap_or("no verdict").to_owned();
    out.detail(format!("dbcreds doctor again: {verdict}"));
    if code != 0 {
        out.block(4, &after);
        return Err(format!("the doctor exited {code} after the fix"));
    }
    Ok(format!("resumed version {}", crate::secrets::short_version(&token)))
}

/// Runs a `dbcreds ...` command line (as the doctor prints it) with the demo's environment:
/// moto as every AWS endpoint, the demo CA as DB_CA_BUNDLE, target/debug first on PATH.
fn dbcreds(world: &World, database: &Database, command: &str) -> Result<(i32, String), String> {
    let bin = dbcreds_testenv::paths::profile_dir();
    let mut env = world.moto.env();
    env.push(("DB_CA_BUNDLE".into(), database.ca_pem_path().display().to_string()));
    env.push(("PATH".into(), format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())));
    let out = Command::new("sh").arg("-c").arg(command).env_clear().envs(env).output().map_err(|err| format!("cannot run {command}: {err}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.code().unwrap_or(-1), text.trim_end().to_owned()))
}
