//! `dbcreds rotate`: the four rotation steps run here, with the same code as the `rotator`
//! function (`dbcreds_rotation::Rotator`), showing each step's outcome.
//!
//! Why not call RotateSecret: on AWS, RotateSecret invokes the secret's rotation function, so the
//! steps would run in Lambda, not here, and an operator rotating from a laptop (because the
//! function is broken, unreachable or not deployed yet) would learn nothing. So a new rotation is
//! started as RotateSecret starts one (`Rotator::start`: rotation must be on, no other rotation
//! in progress, a fresh random ClientRequestToken, then the function's own createSecret creates
//! the AWSPENDING version), and setSecret, testSecret and finishSecret follow as invocations
//! would. The secret's rotation function is not invoked and its schedule is not changed.
//! `--resume <token>` runs the four steps again for a rotation that was interrupted (here or in
//! Lambda): every step converges, so the ones already done are no-ops.

use crate::GlobalArgs;
use crate::exit::{CliError, Status};
use crate::output::Report;
use crate::strategy::StrategyArg;
use crate::toolkit::{STEP_TIME, Toolkit, deadline_in};
use dbcreds_aws::{AWSCURRENT, AWSPENDING, SecretStore, VersionSelector};
use dbcreds_core::SecretDocument;
use dbcreds_core::sanitize::for_log;
use dbcreds_rotation::config::ROTATION_STRATEGY;
use dbcreds_rotation::{LiveDatabases, RotationConfig, Rotator, Step, StepReport};
use serde::Serialize;
use serde_json::json;
use std::fmt::Write as _;

#[derive(clap::Args, Debug)]
#[command(
    about = "Rotate a secret here, with the rotator's own four steps, showing each step's outcome",
    long_about = "Rotate a secret from wherever you stand: the four steps (createSecret, setSecret, testSecret, \
                  finishSecret) run here, with the same code as the dbcreds rotator function, and each step's outcome \
                  is shown.\n\n\
                  A new rotation is started the way Secrets Manager's RotateSecret starts one (rotation must be enabled \
                  on the secret, no other rotation may be in progress, a fresh random ClientRequestToken), but \
                  RotateSecret itself is not called: on AWS it would invoke the secret's rotation function and the \
                  steps would run in Lambda instead of here. The function is not invoked and the schedule is not \
                  changed.\n\n\
                  --resume TOKEN finishes an interrupted rotation (here or in Lambda): the four steps run again with \
                  that version id, and the ones already done are no-ops. `dbcreds doctor` prints the command.\n\n\
                  The password policy comes from the rotator's variables (PASSWORD_LENGTH, EXCLUDE_CHARACTERS, \
                  EXCLUDE_PUNCTUATION, ...); the database servers' CA from --ca-bundle / DB_CA_BUNDLE. Exit code 0 when \
                  rotated, 1 when a step failed (the report says how to resume)."
)]
pub struct Args {
    /// The secret's ARN or name
    pub secret_id: String,
    /// The rotation strategy (default: ROTATION_STRATEGY, else alternating-users when AWSCURRENT names a master secret)
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Finish the interrupted rotation whose AWSPENDING version has this id (the ClientRequestToken)
    #[arg(long, value_name = "TOKEN")]
    pub resume: Option<String>,
}

#[derive(Serialize)]
struct StepLine {
    step: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    detail: String,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'static str>,
}

#[derive(Serialize)]
struct RotateReport {
    secret_arn: String,
    strategy: &'static str,
    strategy_chosen_because: &'static str,
    version: String,
    resumed: bool,
    steps: Vec<StepLine>,
    rotated: bool,
    /// The command to run next when a step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> Result<Report, CliError> {
    let env_strategy = crate::strategy::from_environment()?;
    let toolkit = Toolkit::load(global).await?;
    let store = toolkit.store.with_deadline(deadline_in(STEP_TIME).into_std());
    let metadata = crate::progress::during("describing the secret", store.describe(&args.secret_id)).await?;
    let arn = metadata.arn.clone();
    let chosen = match (args.strategy, env_strategy) {
        (None, None) => {
            let current = crate::progress::during("reading AWSCURRENT", store.get_value(&arn, VersionSelector::stage(AWSCURRENT))).await?;
            let document = SecretDocument::parse(current.value).map_err(|e| CliError::from(e.within("AWSCURRENT.")))?;
            crate::strategy::choose(None, None, Some(&document))
        }
        (flag, env) => crate::strategy::choose(flag, env, None),
    };
    let config = RotationConfig::from_lookup(|name| if name == ROTATION_STRATEGY { Some(chosen.strategy.as_str().to_owned()) } else { dbcreds_runtime::env_lookup(name) })?;

    let databases = LiveDatabases::new(toolkit.trust.clone());
    let (version, resumed) = match &args.resume {
        Some(token) => (token.clone(), true),
        None => (crate::uuid::new_v4()?, false),
    };
    let mut report = RotateReport {
        secret_arn: arn.clone(),
        strategy: chosen.strategy.as_str(),
        strategy_chosen_because: chosen.because,
        version: version.clone(),
        resumed,
        steps: Vec::new(),
        rotated: false,
        next: None,
    };
    for step in Step::ALL {
        let deadline = deadline_in(STEP_TIME);
        let store = toolkit.store.with_deadline(deadline.into_std());
        let rds = toolkit.rds.with_deadline(deadline.into_std());
        let rotator = Rotator { store: &store, databases: &databases, endpoints: Some(&rds), config: &config };
        let label = format!("{step} of {}", for_log(&arn));
        let step_report = if step == Step::CreateSecret && !resumed {
            crate::progress::during(&label, rotator.start(&arn, &version, deadline)).await
        } else {
            let payload = json!({"Step": step.as_str(), "SecretId": arn, "ClientRequestToken": version});
            crate::progress::during(&label, rotator.run(&payload, deadline)).await
        };
        step_report.log(None);
        let failed = step_report.result.is_err();
        report.steps.push(line(step, &step_report));
        if failed {
            report.next = Some(next_command(global, &args, &arn, &version, &metadata, step));
            break;
        }
    }
    report.rotated = report.steps.len() == Step::ALL.len() && report.steps.iter().all(|s| s.ok);
    let status = if report.rotated { Status::Ok } else { Status::Failed };
    let text = render(&report);
    Ok(Report::new(status, &report, text))
}

fn line(step: Step, report: &StepReport) -> StepLine {
    match &report.result {
        Ok(outcome) => StepLine { step: step.as_str(), ok: true, outcome: Some(outcome.as_str()), detail: outcome.to_string(), duration_ms: report.duration_ms, error_class: None, hint: None },
        Err(err) => StepLine {
            step: step.as_str(),
            ok: false,
            outcome: None,
            detail: err.message.clone(),
            duration_ms: report.duration_ms,
            error_class: Some(err.class.as_str()),
            hint: Some(err.class.hint()),
        },
    }
}

/// What to run after a failed step: resume this rotation once the cause is fixed; when a new
/// rotation could not start because another one is pending, resume that one; else the doctor.
fn next_command(global: &GlobalArgs, args: &Args, arn: &str, version: &str, metadata: &dbcreds_aws::SecretMetadata, step: Step) -> String {
    let pending_elsewhere = metadata.versions.iter().find(|(id, stages)| stages.iter().any(|s| s == AWSPENDING) && !stages.iter().any(|s| s == AWSCURRENT) && id.as_str() != version);
    let started = args.resume.is_some() || step != Step::CreateSecret;
    match (started, pending_elsewhere) {
        (false, Some((pending, _))) => crate::shell::dbcreds(global, &["rotate", arn, "--resume", pending]),
        (false, None) => crate::shell::dbcreds(global, &["doctor", arn]),
        (true, _) => crate::shell::dbcreds(global, &["rotate", arn, "--resume", version]),
    }
}

fn render(report: &RotateReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "secret    {}", report.secret_arn);
    let _ = writeln!(out, "strategy  {} ({})", report.strategy, report.strategy_chosen_because);
    let how = if report.resumed { "resumed" } else { "new, started here as RotateSecret would start it" };
    let _ = writeln!(out, "version   {} ({how})", report.version);
    for step in &report.steps {
        if step.ok {
            let _ = writeln!(out, "  {:<13} ok      {} ({} ms)", step.step, step.detail, step.duration_ms);
        } else {
            let _ = writeln!(out, "  {:<13} FAILED  {} [{}] ({} ms)", step.step, step.detail, step.error_class.unwrap_or(""), step.duration_ms);
            if let Some(hint) = step.hint {
                let _ = writeln!(out, "  {:<13}         what to check: {hint}", "");
            }
        }
    }
    if report.rotated {
        let _ = writeln!(out, "rotated: version {} is AWSCURRENT", report.version);
    } else {
        let _ = writeln!(out, "not rotated");
        if let Some(next) = &report.next {
            let _ = writeln!(out, "next: {next}");
        }
    }
    out
}
