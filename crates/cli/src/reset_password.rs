//! `dbcreds reset-password`: makes the database accept the secret's AWSCURRENT credentials again,
//! with the master login, after someone changed the user's password behind the secret's back or
//! dropped the user (an alternating-users clone).
//!
//! The secret stays the source of truth, as in the provisioner: the password moves to the
//! database, never the other way. The master is the one `masterarn` names (or `--master-secret`),
//! read and checked by the rotator's own `resolve_master`, so the same masters are accepted. A
//! user that exists gets its password set (`UserAdmin::set_password`); a missing user whose
//! alternate exists (alternating users) is re-created as a copy of it (`GrantAdmin::mirror_user`,
//! what the rotator's setSecret runs). The AWSCURRENT login is proven at the end.

use crate::GlobalArgs;
use crate::exit::{CliError, Status};
use crate::login::{open_admin, try_login};
use crate::output::Report;
use crate::toolkit::{LOGIN_TIME, Toolkit, deadline_in};
use dbcreds_aws::{AWSCURRENT, SecretStore, VersionSelector};
use dbcreds_core::secret_document::MASTERARN;
use dbcreds_core::{ErrorClass, SecretDocument};
use dbcreds_db::DbError;
use dbcreds_rotation::master::{MasterRead, resolve_master};
use dbcreds_rotation::steps::alternate_username;
use serde::Serialize;
use serde_json::Value;

#[derive(clap::Args, Debug)]
#[command(
    about = "Set the database user's password back to the secret's AWSCURRENT one, with the master login",
    long_about = "Set the database user's password back to the secret's AWSCURRENT password, with the master \
                  login, and prove the AWSCURRENT credentials log in. For when the password was changed behind the \
                  secret's back, or (alternating users) the current user was dropped: it is re-created as a copy of \
                  its alternate. The secret is not changed.\n\n\
                  The master is the secret named by masterarn in the secret (alternating users), or --master-secret."
)]
pub struct Args {
    /// The secret's ARN or name
    pub secret_id: String,
    /// The master user's secret (default: AWSCURRENT's masterarn)
    #[arg(long, value_name = "SECRET_ID")]
    pub master_secret: Option<String>,
}

#[derive(Serialize)]
struct ResetReport {
    secret_arn: String,
    version: String,
    user: String,
    master_user: String,
    /// `password_set`, or `recreated_from:<alternate>`.
    action: String,
    login: crate::login::LoginReport,
}

pub async fn run(args: Args, global: &GlobalArgs) -> Result<Report, CliError> {
    let toolkit = Toolkit::load(global).await?;
    let deadline = deadline_in(LOGIN_TIME * 3).into_std();
    let store = toolkit.store.with_deadline(deadline);
    let rds = toolkit.rds.with_deadline(deadline);
    let current = crate::progress::during("reading AWSCURRENT", store.get_value(&args.secret_id, VersionSelector::stage(AWSCURRENT))).await?;
    let mut document = SecretDocument::parse(current.value).map_err(|e| CliError::from(e.within("AWSCURRENT.")))?;
    document.require_connection_fields().map_err(|e| CliError::from(e.within("AWSCURRENT.")))?;
    let engine = document.engine()?;
    if let Some(master) = &args.master_secret {
        document.set_field(MASTERARN, Value::String(master.clone()));
    }
    if document.masterarn().is_none() {
        return Err(CliError::input(format!("--master-secret: is missing; the secret {} names no master secret (masterarn)", current.arn)).with_hint("pass --master-secret with the master user's secret"));
    }
    let master = crate::progress::during("reading the master secret", resolve_master(&store, Some(&rds), &document, engine, MasterRead::Fresh, &|_| Ok(()))).await?.document;

    let user = document.username()?.to_owned();
    let password = document.password()?.clone();
    let mut session = open_admin(&master, &toolkit.trust).await.map_err(|e| CliError::from(e).context("logging in with the master secret"))?;
    let outcome = async {
        if session.user_exists(&user).await? {
            session.set_password(&user, &password).await?;
            return Ok("password_set".to_owned());
        }
        let alternate = alternate_username(&user);
        if session.user_exists(&alternate).await? {
            session.mirror_user(&alternate, &user, &password).await?;
            return Ok(format!("recreated_from:{alternate}"));
        }
        Err(DbError::new(ErrorClass::State, format!("neither {user} nor {alternate} exists in the database; provision the user again (dbcreds provision)")))
    }
    .await;
    session.close().await;
    let action = outcome.map_err(|e| CliError::from(e).context(&format!("resetting the password of {user}")))?;

    // Only the AWSCURRENT document is used for the proof: the masterarn override above is not.
    if args.master_secret.is_some() {
        document = SecretDocument::parse(store.get_value(&current.arn, VersionSelector::Id(current.version_id.clone())).await?.value)?;
    }
    let login = try_login(&document, &toolkit.trust).await;
    let logs_in = login.logs_in;
    let report = ResetReport { secret_arn: current.arn, version: current.version_id, user: user.clone(), master_user: master.username()?.to_owned(), action: action.clone(), login };
    let text = format!(
        "secret      {}\nuser        {user} ({})\nmaster      {}\nAWSCURRENT  {} {}\n",
        report.secret_arn,
        action.replace('_', " "),
        report.master_user,
        report.version,
        report.login.describe(),
    );
    Ok(Report::new(if logs_in { Status::Ok } else { Status::Failed }, &report, text))
}
