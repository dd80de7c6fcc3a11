//! What the doctor looks at, read-only: the rotation configuration (DescribeSecret), every
//! version with its stages (DescribeSecret, plus ListSecretVersionIds for the versions without a
//! stage), each labelled version's value and login, and with a master secret (alternating users'
//! `masterarn`, or `--master-secret`) whether the users exist and what they hold. Nothing is
//! written anywhere. No field can hold a secret: names, hosts, ids, stages, dates, TLS versions
//! and error messages, which never carry one.

use crate::exit::CliError;
use crate::login::{DocumentSummary, FailureReport, LoginReport, open_admin, try_login};
use crate::strategy::Chosen;
use crate::toolkit::Toolkit;
use dbcreds_aws::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretStore, VersionSelector};
use dbcreds_core::secret_document::MASTERARN;
use dbcreds_core::{ErrorClass, SecretDocument};
use dbcreds_rotation::Strategy;
use dbcreds_rotation::master::{MasterRead, resolve_master};
use dbcreds_rotation::steps::alternate_username;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// The roles of [`UserFacts`].
pub const CURRENT_USER: &str = "AWSCURRENT's user";
pub const ALTERNATE_USER: &str = "the alternate user";

/// The budget of the Secrets Manager and RDS calls of one run.
const AWS_TIME: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize)]
pub struct Facts {
    /// The secret as the suggested commands name it (its ARN).
    pub secret_id: String,
    pub arn: String,
    pub name: String,
    pub rotation: RotationFacts,
    pub strategy: &'static str,
    #[serde(skip)]
    pub strategy_kind: Strategy,
    pub strategy_chosen_because: &'static str,
    pub versions: Vec<VersionFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<MasterFacts>,
    pub users: Vec<UserFacts>,
    /// Whether the database accepts AWSCURRENT's password; `None` when it could not be told.
    pub database_matches_current: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_failure: Option<FailureReport>,
}

impl Facts {
    pub fn with_stage(&self, stage: &str) -> Option<&VersionFacts> {
        self.versions.iter().find(|v| v.has(stage))
    }

    pub fn user(&self, role: &str) -> Option<&UserFacts> {
        self.users.iter().find(|u| u.role == role)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RotationFacts {
    pub enabled: bool,
    pub function_arn: Option<String>,
    pub schedule: Option<String>,
    pub last_rotated: Option<String>,
    pub next_rotation: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ValueState {
    /// A secret document with everything a login needs.
    Document,
    /// A value that is not a usable secret document.
    Invalid { problem: String },
    /// The version holds no value (RotateSecret made it; createSecret never stored one).
    Missing,
    Unreadable { failure: FailureReport },
    /// Not read: a version without a stage (deprecated, read by nothing).
    NotRead,
}

#[derive(Clone, Debug, Serialize)]
pub struct VersionFacts {
    pub version_id: String,
    pub stages: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub value: ValueState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginReport>,
}

impl VersionFacts {
    pub fn has(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s == stage)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct MasterFacts {
    pub secret_id: String,
    /// `masterarn` or `--master-secret`.
    pub source: &'static str,
    /// Why it cannot be used (unreadable, for another database, the rotated user itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserFacts {
    pub username: String,
    pub role: &'static str,
    /// Seen through the master login; `None` when there is none.
    pub exists: Option<bool>,
    /// As the server renders them (MySQL's GRANT statements, authentication redacted;
    /// PostgreSQL's memberships and attributes).
    pub privileges: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReport>,
}

pub async fn gather(kit: &Toolkit, secret_id: &str, choose: impl FnOnce(Option<&SecretDocument>) -> Chosen, master_secret: Option<&str>) -> Result<Facts, CliError> {
    let deadline = crate::toolkit::deadline_in(AWS_TIME).into_std();
    let store = kit.store.with_deadline(deadline);
    let rds = kit.rds.with_deadline(deadline);
    let metadata = crate::progress::during("describing the secret", store.describe(secret_id)).await?;
    let arn = metadata.arn.clone();

    let (listed, listing_failure) = match crate::progress::during("listing the versions", store.list_versions(&arn)).await {
        Ok(listed) => (listed, None),
        Err(err) => (Vec::new(), Some(FailureReport::new(err.class, err.to_string()))),
    };
    let mut ids: Vec<String> = metadata.versions.keys().cloned().collect();
    ids.extend(listed.iter().map(|v| v.version_id.clone()).filter(|id| !metadata.versions.contains_key(id)));

    let mut versions = Vec::new();
    let mut current_document = None;
    for id in ids {
        let stages = metadata.versions.get(&id).cloned().unwrap_or_default();
        let created = listed.iter().find(|v| v.version_id == id).and_then(|v| v.created.clone());
        let mut facts = VersionFacts { version_id: id.clone(), stages, created, value: ValueState::NotRead, document: None, login: None };
        if !facts.stages.is_empty() {
            let read = crate::progress::during("reading a version", store.get_value(&arn, VersionSelector::Id(id.clone()))).await;
            match read {
                Ok(version) => match SecretDocument::parse(version.value) {
                    Ok(document) => {
                        facts.document = Some(DocumentSummary::of(&document));
                        match document.require_connection_fields().and_then(|()| document.tls_policy().map(|_| ())) {
                            Ok(()) => {
                                facts.value = ValueState::Document;
                                facts.login = Some(try_login(&document, &kit.trust).await);
                            }
                            Err(err) => facts.value = ValueState::Invalid { problem: err.to_string() },
                        }
                        if facts.has(AWSCURRENT) {
                            current_document = Some(document);
                        }
                    }
                    Err(err) => facts.value = ValueState::Invalid { problem: err.to_string() },
                },
                Err(err) if err.is_not_found() => facts.value = ValueState::Missing,
                Err(err) => facts.value = ValueState::Unreadable { failure: FailureReport::new(err.class, err.to_string()) },
            }
        }
        versions.push(facts);
    }

    // In the order an operator reads them: AWSCURRENT, AWSPENDING, AWSPREVIOUS, other labels,
    // then the versions without a stage, newest first.
    let rank = |v: &VersionFacts| [AWSCURRENT, AWSPENDING, AWSPREVIOUS].iter().position(|s| v.has(s)).unwrap_or(if v.stages.is_empty() { 4 } else { 3 });
    versions.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| b.created.cmp(&a.created)).then_with(|| a.version_id.cmp(&b.version_id)));
    let chosen = choose(current_document.as_ref());
    let mut users = Vec::new();
    let mut master = None;
    if let Some(current) = &current_document
        && let Ok(username) = current.username()
    {
        users.push(UserFacts { username: username.to_owned(), role: CURRENT_USER, exists: None, privileges: Vec::new(), failure: None });
        if chosen.strategy == Strategy::AlternatingUsers {
            users.push(UserFacts { username: alternate_username(username), role: ALTERNATE_USER, exists: None, privileges: Vec::new(), failure: None });
        }
        let named = match master_secret {
            Some(id) => Some((id.to_owned(), "--master-secret")),
            None => current.masterarn().map(|arn| (arn.to_owned(), "masterarn")),
        };
        if let Some((master_id, source)) = named {
            master = Some(inspect_master(kit, &store, &rds, current, &master_id, source, &mut users).await);
        }
    }

    let database_matches_current = versions
        .iter()
        .find(|v| v.has(AWSCURRENT))
        .and_then(|v| v.login.as_ref())
        .and_then(|login| match &login.failure {
            None => Some(true),
            Some(failure) if failure.class == ErrorClass::Authentication => Some(false),
            Some(failure) if failure.class == ErrorClass::Permission => Some(true),
            Some(_) => None,
        });
    Ok(Facts {
        secret_id: arn.clone(),
        arn,
        name: metadata.name.clone(),
        rotation: RotationFacts {
            enabled: metadata.rotation_enabled,
            function_arn: metadata.rotation_lambda_arn.clone().filter(|f| !f.is_empty()),
            schedule: metadata.rotation_schedule.clone(),
            last_rotated: metadata.last_rotated.clone(),
            next_rotation: metadata.next_rotation.clone(),
        },
        strategy: chosen.strategy.as_str(),
        strategy_kind: chosen.strategy,
        strategy_chosen_because: chosen.because,
        versions,
        master,
        users,
        database_matches_current,
        listing_failure,
    })
}

/// The master, read and checked by the rotator's own `resolve_master`, its login, and through it
/// whether each user exists and what it holds.
async fn inspect_master(
    kit: &Toolkit,
    store: &dyn SecretStore,
    rds: &dbcreds_aws::RdsEndpoints,
    current: &SecretDocument,
    master_id: &str,
    source: &'static str,
    users: &mut [UserFacts],
) -> MasterFacts {
    let mut facts = MasterFacts { secret_id: master_id.to_owned(), source, failure: None, login: None };
    let mut named = current.clone();
    named.set_field(MASTERARN, Value::String(master_id.to_owned()));
    let engine = match current.engine() {
        Ok(engine) => engine,
        Err(err) => {
            facts.failure = Some(FailureReport::new(ErrorClass::Input, err.to_string()));
            return facts;
        }
    };
    let document = match crate::progress::during("reading the master secret", resolve_master(store, Some(rds), &named, engine, MasterRead::Fresh, &|_| Ok(()))).await {
        Ok(master) => master.document,
        Err(err) => {
            facts.failure = Some(FailureReport::new(err.class, err.message));
            return facts;
        }
    };
    let login = try_login(&document, &kit.trust).await;
    let logs_in = login.logs_in;
    facts.login = Some(login);
    if !logs_in {
        return facts;
    }
    let mut session = match open_admin(&document, &kit.trust).await {
        Ok(session) => session,
        Err(err) => {
            facts.failure = Some(FailureReport::from(&err));
            return facts;
        }
    };
    for user in users.iter_mut() {
        match session.user_exists(&user.username).await {
            Ok(true) => {
                user.exists = Some(true);
                match session.read_grants(&user.username).await {
                    Ok(grants) => user.privileges = grants,
                    Err(err) => user.failure = Some(FailureReport::from(&err)),
                }
            }
            Ok(false) => user.exists = Some(false),
            Err(err) => user.failure = Some(FailureReport::from(&err)),
        }
    }
    session.close().await;
    facts
}
