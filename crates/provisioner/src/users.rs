//! The users a resource lists, resolved: their names (from their secrets for password users),
//! their privileges for the engine family, and their completed secrets.
//!
//! A password user's secret is the one model of the secret (`SecretDocument`): the provisioner
//! reads it, adds the connection fields the rotator and the application need (`engine`, `host`,
//! `port`, `dbname`, and `masterarn` for alternating users), keeps everything else (the
//! password above all) exactly as it was, and writes it back as AWSCURRENT only if it changed.

use crate::error::{ProvisionError, Result};
use crate::spec::{self, Authentication, RotationStrategy, UserSource, UserSpec};
use crate::target::Target;
use dbcreds_aws::{AWSCURRENT, AWSPENDING, SecretStore, VersionSelector};
use dbcreds_core::secret_document::{DBNAME, ENGINE, HOST, MASTERARN, PORT};
use dbcreds_core::{ErrorClass, IdentifierKind, InputError, SecretDocument, validate_identifier};
use dbcreds_db::PrivilegeSpec;
use dbcreds_rotation::steps::{CLONE_SUFFIX, alternate_username};
use serde_json::Value;

/// One entry of `Users`, resolved against the target.
#[derive(Clone, Debug)]
pub struct ResolvedUser {
    pub spec: UserSpec,
    /// The name in the secret now (for alternating users, `app` or `app_clone`), or the IAM name.
    pub username: String,
    pub privileges: PrivilegeSpec,
    pub secret: Option<UserSecret>,
}

#[derive(Clone, Debug)]
pub struct UserSecret {
    /// The ARN the properties name.
    pub arn: String,
    /// AWSCURRENT, as read.
    pub document: SecretDocument,
}

impl ResolvedUser {
    pub fn authentication(&self) -> Authentication {
        self.spec.authentication()
    }

    /// The name the resource reports: for alternating users the base name (`app`, never
    /// `app_clone`), which stays the same across rotations.
    pub fn base_name(&self) -> String {
        match self.spec.strategy {
            RotationStrategy::AlternatingUsers => match self.username.strip_suffix(CLONE_SUFFIX) {
                Some(base) if !base.is_empty() => base.to_owned(),
                _ => self.username.clone(),
            },
            RotationStrategy::SingleUser => self.username.clone(),
        }
    }

    /// Every database user this entry stands for: the user and, for alternating users, the
    /// clone the rotator creates. Both get the privileges; Delete drops both.
    pub fn names(&self) -> Vec<String> {
        match self.spec.strategy {
            RotationStrategy::AlternatingUsers => {
                let base = self.base_name();
                let clone = alternate_username(&base);
                vec![base, clone]
            }
            RotationStrategy::SingleUser => vec![self.username.clone()],
        }
    }
}

/// How strict resolution is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Create or Update: every secret must be readable and complete enough to log in, and no
    /// rotation may be in progress (writing AWSCURRENT under a rotation would break it).
    Provision,
    /// Delete, old properties, no-op updates: only the names are needed; a secret that no longer
    /// exists is skipped with a log line (its user cannot be named).
    Inspect,
}

/// Reads each user's secret and checks the names and privileges for the target's engine family.
/// With [`Purpose::Inspect`], an entry whose name is unusable (and so can never have been
/// created) is skipped with a log line; an unreadable secret is still an error, since skipping it
/// would leave its user behind without a word.
pub async fn resolve(users: &[UserSpec], target: &Target, store: &dyn SecretStore, purpose: Purpose) -> Result<Vec<ResolvedUser>> {
    let mut out: Vec<ResolvedUser> = Vec::with_capacity(users.len());
    for user in users {
        match resolve_one(user, target, store, purpose, &out).await {
            Ok(Some(resolved)) => out.push(resolved),
            Ok(None) => {}
            Err(err) if purpose == Purpose::Inspect && err.class == ErrorClass::Input => {
                tracing::warn!(step = "resolve", user = %user.path(), error = %err, "entry skipped: no user can have been created from it");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

async fn resolve_one(user: &UserSpec, target: &Target, store: &dyn SecretStore, purpose: Purpose, earlier: &[ResolvedUser]) -> Result<Option<ResolvedUser>> {
    let family = target.family();
    let path = user.path();
    let privileges = match &user.privileges {
        Ok(preset) => PrivilegeSpec::parse(&format!("{path}{}", spec::PRIVILEGES), family, Ok(preset)),
        Err(list) => PrivilegeSpec::parse(&format!("{path}{}", spec::PRIVILEGES), family, Err(list)),
    };
    let privileges = match (privileges, purpose) {
        (Ok(p), _) => p,
        (Err(e), Purpose::Provision) => return Err(e.into()),
        // Releasing a user needs no valid privilege set.
        (Err(_), Purpose::Inspect) => PrivilegeSpec::List(Vec::new()),
    };
    let (username, secret) = match &user.source {
        UserSource::Iam(name) => (name.clone(), None),
        UserSource::Secret(arn) => match read_user_secret(user, arn, store, purpose).await? {
            Some(secret) => {
                let name = secret.document.username().map_err(|e| e.within(&format!("{path}{} secret: ", spec::SECRET_ARN)))?.to_owned();
                (name, Some(secret))
            }
            None => return Ok(None),
        },
    };
    let name_field = match user.source {
        UserSource::Iam(_) => format!("{path}{}", spec::USERNAME),
        UserSource::Secret(_) => format!("{path}{} secret: username", spec::SECRET_ARN),
    };
    validate_identifier(&name_field, &username, family, IdentifierKind::User, None)?;
    let resolved = ResolvedUser { spec: user.clone(), username, privileges, secret };
    if purpose == Purpose::Provision && user.strategy == RotationStrategy::AlternatingUsers {
        for name in resolved.names() {
            validate_identifier(&format!("{path}{}", spec::ROTATION_STRATEGY), &name, family, IdentifierKind::User, None).map_err(|e| {
                InputError::invalid(e.field, format!("alternating users need the clone {}: {}", dbcreds_core::sanitize::for_log(&name), e.problem), "shorten the user name or use single-user rotation")
            })?;
        }
    }
    for name in resolved.names() {
        if name == target.master_username {
            return Err(InputError::invalid(
                name_field.clone(),
                format!("{} is the master user", dbcreds_core::sanitize::for_log(&name)),
                "list application users only; the provisioner never manages the master user",
            )
            .into());
        }
        if let Some(other) = earlier.iter().find(|other| other.names().contains(&name)) {
            return Err(InputError::invalid(
                name_field.clone(),
                format!("user {} is also Users[{}]", dbcreds_core::sanitize::for_log(&name), other.spec.index),
                "list each database user once",
            )
            .into());
        }
    }
    Ok(Some(resolved))
}

async fn read_user_secret(user: &UserSpec, arn: &str, store: &dyn SecretStore, purpose: Purpose) -> Result<Option<UserSecret>> {
    let path = user.path();
    let reading = format!("reading the secret of {path}{} ", spec::SECRET_ARN);
    if purpose == Purpose::Provision {
        let metadata = store.describe(arn).await.map_err(|e| ProvisionError::from(e).context(reading.trim_end()))?;
        let current = metadata.version_with_stage(AWSCURRENT);
        if let Some(pending) = metadata.version_with_stage(AWSPENDING).filter(|p| Some(*p) != current) {
            return Err(ProvisionError::new(
                ErrorClass::State,
                format!("{path}{}: a rotation of this secret is in progress (AWSPENDING is on version {pending}); retry when it has finished", spec::SECRET_ARN),
            ));
        }
    }
    let version = match store.get_value(arn, VersionSelector::stage(AWSCURRENT)).await {
        Ok(version) => version,
        Err(err) if purpose == Purpose::Inspect && err.is_not_found() => {
            tracing::warn!(step = "resolve", secret_arn = %dbcreds_core::sanitize::field(arn), user = %path, "the user's secret no longer exists, so its user cannot be named; skipped");
            return Ok(None);
        }
        Err(err) => return Err(ProvisionError::from(err).context(reading.trim_end())),
    };
    let document = SecretDocument::parse(version.value).map_err(|e| e.within(&format!("{path}{} secret: ", spec::SECRET_ARN)))?;
    if purpose == Purpose::Provision {
        let password = document.password().map_err(|e| e.within(&format!("{path}{} secret: ", spec::SECRET_ARN)))?;
        if password.is_empty() {
            return Err(InputError::invalid(format!("{path}{} secret: password", spec::SECRET_ARN), "is empty", "store the user's password, e.g. with GenerateSecretString").into());
        }
    }
    Ok(Some(UserSecret { arn: arn.to_owned(), document }))
}

/// The user's secret with the connection fields the target needs. Fields already right are
/// left exactly as written (`"port": "5432"` stays a string; `aurora-postgresql` stays, since it
/// is the same family); the password and unknown keys are never touched.
pub fn completed_document(current: &SecretDocument, target: &Target, strategy: RotationStrategy) -> SecretDocument {
    let mut document = current.clone();
    if current.engine_opt().map(|e| e.family()) != Some(target.family()) {
        document.set_field(ENGINE, Value::String(target.engine.as_str().into()));
    }
    if current.host_opt().map(str::to_ascii_lowercase).as_deref() != Some(target.identity.host.as_str()) {
        document.set_field(HOST, Value::String(target.identity.host.clone()));
    }
    if current.port_opt().ok().flatten() != Some(target.identity.port) {
        document.set_field(PORT, Value::from(target.identity.port));
    }
    if current.dbname() != Some(target.database()) {
        document.set_field(DBNAME, Value::String(target.database().into()));
    }
    if strategy == RotationStrategy::AlternatingUsers && current.masterarn() != Some(target.master_secret_arn.as_str()) {
        document.set_field(MASTERARN, Value::String(target.master_secret_arn.clone()));
    }
    document
}

/// A ClientRequestToken for the write: the same for a duplicate delivery of the same request (so
/// it writes the same version), different for another request. UUID-shaped, 36 characters.
pub fn version_token(request_id: &str, secret_arn: &str) -> String {
    use dbcreds_custom_resource::response::fnv1a;
    let high = fnv1a(format!("dbcreds-provisioner\n{request_id}\n{secret_arn}").as_bytes());
    let low = fnv1a(format!("{secret_arn}\n{request_id}\ndbcreds-provisioner").as_bytes());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8000 | ((low >> 48) & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DatabaseIdentity;
    use dbcreds_core::{Engine, EngineFamily, SecretString};

    fn target() -> Target {
        let master = SecretDocument::parse(SecretString::from(r#"{"username":"admin","password":"m"}"#)).unwrap();
        Target {
            identity: DatabaseIdentity::new(EngineFamily::Postgres, "db.example.com", 5432, "appdb"),
            engine: Engine::Postgres,
            master,
            master_username: "admin".into(),
            master_secret_arn: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:master-AbCdEf".into(),
        }
    }

    fn doc(text: &str) -> SecretDocument {
        SecretDocument::parse(SecretString::from(text)).unwrap()
    }

    #[test]
    fn completion_adds_the_connection_fields_and_keeps_the_password() {
        let current = doc(r#"{"username":"DBUserA","password":"p@ss word\"","team":"x"}"#);
        let done = completed_document(&current, &target(), RotationStrategy::SingleUser);
        let json: Value = serde_json::from_str(done.to_json().expose()).unwrap();
        assert_eq!(json["password"], "p@ss word\"");
        assert_eq!(json["engine"], "postgres");
        assert_eq!(json["host"], "db.example.com");
        assert_eq!(json["port"], 5432);
        assert_eq!(json["dbname"], "appdb");
        assert_eq!(json["team"], "x");
        assert!(json.get("masterarn").is_none());
        let alternating = completed_document(&current, &target(), RotationStrategy::AlternatingUsers);
        assert_eq!(alternating.masterarn(), Some("arn:aws:secretsmanager:eu-west-1:111122223333:secret:master-AbCdEf"));
    }

    #[test]
    fn a_complete_secret_is_left_exactly_as_written() {
        let current = doc(r#"{"engine":"aurora-postgresql","host":"DB.example.com","port":"5432","username":"u","password":"p","dbname":"appdb"}"#);
        let done = completed_document(&current, &target(), RotationStrategy::SingleUser);
        assert_eq!(done.to_json(), current.to_json());
    }

    #[test]
    fn tokens_are_stable_per_request_and_uuid_shaped() {
        let a = version_token("req-1", "arn:a");
        assert_eq!(a, version_token("req-1", "arn:a"));
        assert_ne!(a, version_token("req-2", "arn:a"));
        assert_ne!(a, version_token("req-1", "arn:b"));
        assert_eq!(a.len(), 36);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn alternating_users_stand_for_the_pair() {
        let spec = UserSpec {
            index: 0,
            source: UserSource::Secret("arn".into()),
            privileges: Ok("readonly".into()),
            strategy: RotationStrategy::AlternatingUsers,
        };
        let user = ResolvedUser { spec: spec.clone(), username: "app_clone".into(), privileges: PrivilegeSpec::List(vec![]), secret: None };
        assert_eq!(user.base_name(), "app");
        assert_eq!(user.names(), ["app", "app_clone"]);
        let single = ResolvedUser { spec: UserSpec { strategy: RotationStrategy::SingleUser, ..spec }, ..user };
        assert_eq!(single.names(), ["app_clone"]);
    }
}
