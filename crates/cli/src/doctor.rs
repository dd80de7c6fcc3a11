//! `dbcreds doctor <secret-id>`: what state a secret's rotation is in, and the exact command
//! that fixes each problem found. Read-only: it describes and reads the secret, logs in with each
//! labelled version's credentials, and (alternating users, or with `--master-secret`) asks the
//! database as the master whether the users exist and what they hold. It changes nothing.
//!
//! [`facts`] gathers, [`diagnosis`] decides (pure, unit-tested), [`render`] writes the text.

mod diagnosis;
mod facts;
mod render;

use crate::GlobalArgs;
use crate::exit::{CliError, Status};
use crate::output::Report;
use crate::strategy::StrategyArg;
use crate::toolkit::Toolkit;
use diagnosis::{Finding, Verdict};
use facts::Facts;
use serde::Serialize;

#[derive(clap::Args, Debug)]
#[command(
    about = "Diagnose a secret's rotation and print the exact command that fixes each problem (read-only)",
    long_about = "Diagnose a secret's rotation, read-only, and print the exact command that fixes each problem.\n\n\
                  It reports the rotation configuration (enabled, function, schedule, last and next rotation); every \
                  version with its labels, including a stuck AWSPENDING, versions without a label, and a pending version \
                  with no value; for each labelled version whether its credentials log in and over which TLS, or which \
                  layer refused them; for alternating users the master secret and both users; and whether the database \
                  user's password matches AWSCURRENT. It ends with a verdict and, for each problem, the command that fixes \
                  it (dbcreds rotate --resume, dbcreds reset-password, aws secretsmanager update-secret-version-stage, ...), \
                  in the order to run them.\n\n\
                  Nothing is changed: the doctor only describes, reads and logs in. Exit code 0 when healthy, 3 when it \
                  found problems."
)]
pub struct Args {
    /// The secret's ARN or name
    pub secret_id: String,
    /// The rotation strategy (default: ROTATION_STRATEGY, else alternating-users when AWSCURRENT names a master secret)
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// A master secret to inspect the database with (default: AWSCURRENT's masterarn, for alternating users)
    #[arg(long, value_name = "SECRET_ID")]
    pub master_secret: Option<String>,
}

#[derive(Serialize)]
struct DoctorReport<'a> {
    #[serde(flatten)]
    facts: &'a Facts,
    verdict: &'a Verdict,
    findings: &'a [Finding],
}

pub async fn run(args: Args, global: &GlobalArgs) -> Result<Report, CliError> {
    let env_strategy = crate::strategy::from_environment()?;
    let kit = Toolkit::load(global).await?;
    let facts = facts::gather(&kit, &args.secret_id, |current| crate::strategy::choose(args.strategy, env_strategy, current), args.master_secret.as_deref()).await?;
    let (findings, verdict) = diagnosis::diagnose(&facts, global);
    let text = render::text(&facts, &findings, &verdict);
    let status = if verdict.healthy { Status::Ok } else { Status::Problems };
    Ok(Report::new(status, &DoctorReport { facts: &facts, verdict: &verdict, findings: &findings }, text))
}
