//! `dbcreds provision --file users.yaml`: the `Custom::DatabaseUsers` resource without
//! CloudFormation. The file holds the resource's properties (the same `Users` specification,
//! checked by the same `provisioner::spec`), and the provisioner's own lifecycle runs them:
//! - by default a Create, which is also the reconcile: the database if missing, each listed user
//!   created or adopted with exactly its privileges, each password user's secret completed and
//!   its login proven; running it again changes nothing;
//! - `--previous old.yaml`: an Update from the old properties, which also drops the users the
//!   old list had and the new one has not (or moves them, for a new database);
//! - `--delete`: a Delete: each listed user's privileges on the database are revoked and the
//!   users that held any are dropped. The database and its data are never dropped.
//!
//! `--dry-run` runs the same lifecycle against a master session that plans its writes
//! (`dbcreds_db::dry_run`) and a secret store that records them: it prints the SQL it would run,
//! passwords redacted, and the secret writes, and changes nothing.

use crate::GlobalArgs;
use crate::exit::{CliError, Status};
use crate::output::Report;
use crate::toolkit::Toolkit;
use async_trait::async_trait;
use dbcreds_aws::{AwsError, SecretMetadata, SecretStore, SecretVersion, VersionSelector};
use dbcreds_core::SecretString;
use dbcreds_custom_resource::{Context, Request, RequestType, ResponseUrl, Success};
use dbcreds_db::dry_run::{PlanLog, PlannedWrite};
use dbcreds_runtime::Budget;
use provisioner::lifecycle::{self, Env};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The whole run's budget (a custom resource has up to an hour; a few users take seconds).
const BUDGET: Duration = Duration::from_secs(300);

/// Stand-ins for what CloudFormation would send: nothing reads them but the lifecycle's ids.
const STACK_ID: &str = "dbcreds-cli";
const LOGICAL_ID: &str = "DatabaseUsers";

#[derive(clap::Args, Debug)]
#[command(
    about = "Create or reconcile (or --delete) database users from a Users specification file, as the provisioner does",
    long_about = "Apply a Custom::DatabaseUsers specification without CloudFormation: the file (YAML or JSON) holds the \
                  resource's properties, exactly as in a template (MasterSecretArn, DatabaseName, Users, and optionally \
                  Engine, Host, Port), and the provisioner's own code applies them.\n\n\
                  Without --delete it creates or reconciles: the database if missing, each listed user created or adopted \
                  with exactly its privileges, each password user's secret completed and its login proven. It is safe to \
                  run again. With --previous OLD_FILE it also drops the users the old list had and the new one has not. \
                  With --delete it revokes each listed user's privileges on the database and drops the users that held \
                  any; the database and its data are never dropped.\n\n\
                  --dry-run prints the SQL it would run (passwords redacted) and the secret writes, and changes nothing.\n\n\
                  Example users.yaml:\n  MasterSecretArn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-1234\n  DatabaseName: appdb\n  Users:\n    - SecretArn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-a\n      Privileges: readwrite\n    - SecretArn: arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-b\n      Privileges: readonly\n      RotationStrategy: alternating-users\n    - Username: app_iam\n      Authentication: iam\n      Privileges: readonly"
)]
pub struct Args {
    /// The Users specification: the resource's properties, in YAML or JSON
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,
    /// Drop the listed users instead (their privileges on the database are revoked first; data is kept)
    #[arg(long, conflicts_with = "previous")]
    pub delete: bool,
    /// The specification applied before, to drop the users it lists and FILE does not
    #[arg(long, value_name = "OLD_FILE")]
    pub previous: Option<PathBuf>,
    /// Print the SQL (passwords redacted) and the secret writes it would make, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Serialize)]
struct SecretWrite {
    secret: String,
    operation: &'static str,
    version: String,
    stages: Vec<String>,
}

#[derive(Serialize)]
struct ProvisionReport {
    action: &'static str,
    dry_run: bool,
    /// The resource's attributes, as `Fn::GetAtt` would read them.
    attributes: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    planned: Option<Vec<PlannedWrite>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_writes: Option<Vec<SecretWrite>>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> Result<Report, CliError> {
    let properties = read_properties(&args.file)?;
    let previous = args.previous.as_deref().map(read_properties).transpose()?;
    // Checked before anything is touched, with the property named.
    provisioner::spec::ResourceSpec::parse(&properties).map_err(|e| CliError::from(e).context(&args.file.display().to_string()))?;
    let (request_type, action) = match (&previous, args.delete) {
        (_, true) => (RequestType::Delete, "delete"),
        (Some(_), false) => (RequestType::Update, "update"),
        (None, false) => (RequestType::Create, "create"),
    };
    let request = Request {
        request_type,
        response_url: ResponseUrl::parse("https://dbcreds-cli.invalid/").map_err(CliError::from)?,
        stack_id: STACK_ID.into(),
        request_id: crate::uuid::new_v4()?,
        logical_resource_id: LOGICAL_ID.into(),
        resource_type: "Custom::DatabaseUsers".into(),
        // An id the provisioner did not issue: Update and Delete then go by the properties.
        physical_resource_id: (request_type != RequestType::Create).then(|| STACK_ID.to_owned()),
        resource_properties: properties,
        old_resource_properties: previous,
    };

    let toolkit = Toolkit::load(global).await?;
    let budget = Budget::from_remaining(BUDGET, Duration::ZERO);
    let context = Context::new(budget, STACK_ID.into());
    let plan: Option<PlanLog> = args.dry_run.then(PlanLog::default);
    let recorder = RecordingStore { inner: &toolkit.store, writes: Mutex::default() };
    let store: &dyn SecretStore = if args.dry_run { &recorder } else { &toolkit.store };
    let env = Env { store, rds: &toolkit.rds, trust: Arc::clone(&toolkit.trust), dry_run: plan.clone() };
    let label = if args.dry_run { "planning" } else { "provisioning" };
    let outcome = crate::progress::during(label, async {
        match request_type {
            RequestType::Create => lifecycle::create(&request, &env, &context).await,
            RequestType::Update => lifecycle::update(&request, &env, &context).await,
            RequestType::Delete => lifecycle::delete(&request, &env, &context).await,
        }
    })
    .await;
    let success: Success = outcome.map_err(|failure| CliError::new(failure.class, failure.reason).context(&format!("{action} ({})", context.step())))?;
    let planned = plan.map(|log| std::mem::take(&mut *log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
    let secret_writes = args.dry_run.then(|| std::mem::take(&mut *recorder.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
    let report = ProvisionReport { action, dry_run: args.dry_run, attributes: success.data, planned, secret_writes };
    let text = render(&report);
    Ok(Report::new(Status::Ok, &report, text))
}

/// The file's properties: a YAML (or JSON) mapping. Problems name the file.
fn read_properties(path: &Path) -> Result<Map<String, Value>, CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| CliError::input(format!("{shown}: cannot read it ({err})")).with_hint("pass the path of a YAML or JSON file of the resource's properties"))?;
    let value: Value = serde_norway::from_str(&text).map_err(|err| {
        // The parser's message gives the position and what was expected, never a long excerpt.
        let location = err.location().map(|l| format!(" at line {} column {}", l.line(), l.column())).unwrap_or_default();
        CliError::input(format!("{shown}: not valid YAML or JSON{location}")).with_hint("write the resource's properties as a mapping: MasterSecretArn, DatabaseName, Users, ...")
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(CliError::input(format!("{shown}: is {}, not a mapping of properties", dbcreds_core::tls_policy::json_type(&other)))
            .with_hint("write the resource's properties as a mapping: MasterSecretArn, DatabaseName, Users, ...")),
    }
}

/// For a dry run: reads go to Secrets Manager, writes are recorded (never their values).
struct RecordingStore<'a> {
    inner: &'a dyn SecretStore,
    writes: Mutex<Vec<SecretWrite>>,
}

impl RecordingStore<'_> {
    fn record(&self, write: SecretWrite) {
        self.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(write);
    }
}

#[async_trait]
impl SecretStore for RecordingStore<'_> {
    async fn describe(&self, secret_id: &str) -> Result<SecretMetadata, AwsError> {
        self.inner.describe(secret_id).await
    }

    async fn get_value(&self, secret_id: &str, selector: VersionSelector) -> Result<SecretVersion, AwsError> {
        self.inner.get_value(secret_id, selector).await
    }

    async fn put_value(&self, secret_id: &str, version_id: &str, _value: &SecretString, stages: &[&str], _rotation_token: Option<&str>) -> Result<(), AwsError> {
        self.record(SecretWrite { secret: secret_id.to_owned(), operation: "PutSecretValue", version: version_id.to_owned(), stages: stages.iter().map(|s| (*s).to_owned()).collect() });
        Ok(())
    }

    async fn update_stage(&self, secret_id: &str, stage: &str, move_to: Option<&str>, _remove_from: Option<&str>) -> Result<(), AwsError> {
        self.record(SecretWrite { secret: secret_id.to_owned(), operation: "UpdateSecretVersionStage", version: move_to.unwrap_or_default().to_owned(), stages: vec![stage.to_owned()] });
        Ok(())
    }
}

fn render(report: &ProvisionReport) -> String {
    let mut out = String::new();
    let a = |k: &str| report.attributes.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let done = match (report.action, report.dry_run) {
        (_, true) => "dry run, nothing was changed:",
        ("delete", false) => "deleted:",
        ("update", false) => "reconciled:",
        _ => "provisioned:",
    };
    if report.action == "delete" {
        let _ = writeln!(out, "{done} the listed users' privileges on the database revoked, and the users that held any dropped");
    } else {
        let _ = writeln!(out, "{done} {} database {} on {}:{}, users {}", a("Engine"), a("DatabaseName"), a("Host"), a("Port"), a("Usernames"));
    }
    if let Some(planned) = &report.planned {
        let _ = writeln!(out, "\nSQL it would run (passwords redacted):");
        for write in planned {
            if write.statements.is_empty() {
                let _ = writeln!(out, "  -- {}: already as wanted", write.what);
                continue;
            }
            let _ = writeln!(out, "  -- {}", write.what);
            for statement in &write.statements {
                let _ = writeln!(out, "  {statement};");
            }
        }
    }
    if let Some(writes) = &report.secret_writes {
        let _ = writeln!(out, "\nsecret writes it would make (values not shown):");
        if writes.is_empty() {
            let _ = writeln!(out, "  none: every secret is already complete");
        }
        for write in writes {
            let _ = writeln!(out, "  {} {} version {} [{}]", write.operation, write.secret, write.version, write.stages.join(","));
        }
    }
    out
}
