//! In-memory fakes of the ports, for unit tests of the state machine only. The real adapters are
//! proven against MariaDB, PostgreSQL and moto in the end-to-end tests.

use crate::ports::{Databases, EndpointLookup};
use async_trait::async_trait;
use dbcreds_aws::{AWSCURRENT, AWSPREVIOUS, AwsError, DatabaseEndpoint, SecretMetadata, SecretStore, SecretVersion, VersionSelector};
use dbcreds_core::{Engine, ErrorClass, SecretDocument, SecretString};
use dbcreds_db::{DbError, GrantChange, Identity};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use tokio::time::Instant;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeVersion {
    pub value: Option<String>,
    pub stages: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct FakeSecret {
    pub arn: String,
    pub rotation_enabled: bool,
    pub versions: BTreeMap<String, FakeVersion>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    pub describe: u32,
    pub get: u32,
    pub put: u32,
    pub update: u32,
}

impl Calls {
    pub fn total(&self) -> u32 {
        self.describe + self.get + self.put + self.update
    }
}

/// Which call fails next, and whether it fails *after* taking effect (a crash after the
/// service applied it, or a lost response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Put { after: bool },
    UpdateStage { stage: &'static str, after: bool },
}

#[derive(Default)]
pub struct FakeStore {
    pub secrets: Mutex<HashMap<String, FakeSecret>>,
    pub calls: Mutex<Calls>,
    pub fault: Mutex<Option<Fault>>,
}

fn not_found(what: &str) -> AwsError {
    AwsError::new(ErrorClass::State, Some("ResourceNotFoundException".into()), format!("{what}: not found"))
}

fn transient(what: &str) -> AwsError {
    AwsError::new(ErrorClass::Aws, Some("InternalServiceError".into()), format!("{what}: the service failed"))
}

impl FakeStore {
    pub fn add(&self, name: &str, secret: FakeSecret) {
        self.secrets.lock().unwrap().insert(name.to_owned(), secret);
    }

    pub fn secret(&self, id: &str) -> FakeSecret {
        self.find(id).expect("secret")
    }

    fn find(&self, id: &str) -> Option<FakeSecret> {
        let secrets = self.secrets.lock().unwrap();
        secrets.get(id).cloned().or_else(|| secrets.values().find(|s| s.arn == id).cloned())
    }

    fn with_secret<T>(&self, id: &str, f: impl FnOnce(&mut FakeSecret) -> Result<T, AwsError>) -> Result<T, AwsError> {
        let mut secrets = self.secrets.lock().unwrap();
        let key = if secrets.contains_key(id) { id.to_owned() } else { secrets.iter().find(|(_, s)| s.arn == id).map(|(k, _)| k.clone()).ok_or_else(|| not_found(id))? };
        f(secrets.get_mut(&key).unwrap())
    }

    pub fn calls(&self) -> Calls {
        *self.calls.lock().unwrap()
    }

    pub fn fail_next(&self, fault: Fault) {
        *self.fault.lock().unwrap() = Some(fault);
    }

    fn take_fault(&self, matches: impl Fn(Fault) -> bool) -> Option<Fault> {
        let mut fault = self.fault.lock().unwrap();
        match *fault {
            Some(f) if matches(f) => fault.take(),
            _ => None,
        }
    }

    /// The stages of a version, for assertions.
    pub fn stages(&self, id: &str, version: &str) -> Vec<String> {
        self.secret(id).versions.get(version).map(|v| v.stages.clone()).unwrap_or_default()
    }

    pub fn value(&self, id: &str, version: &str) -> Option<String> {
        self.secret(id).versions.get(version).and_then(|v| v.value.clone())
    }
}

#[async_trait]
impl SecretStore for FakeStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretMetadata, AwsError> {
        self.calls.lock().unwrap().describe += 1;
        let secret = self.find(secret_id).ok_or_else(|| AwsError::new(ErrorClass::Input, Some("ResourceNotFoundException".into()), "DescribeSecret: not found"))?;
        Ok(SecretMetadata {
            arn: secret.arn.clone(),
            name: secret_id.to_owned(),
            rotation_enabled: secret.rotation_enabled,
            versions: secret.versions.iter().map(|(id, v)| (id.clone(), v.stages.clone())).collect(),
            tags: secret.tags.clone(),
            ..SecretMetadata::default()
        })
    }

    async fn get_value(&self, secret_id: &str, selector: VersionSelector) -> Result<SecretVersion, AwsError> {
        self.calls.lock().unwrap().get += 1;
        let secret = self.find(secret_id).ok_or_else(|| not_found(secret_id))?;
        let found = secret.versions.iter().find(|(id, v)| match &selector {
            VersionSelector::Stage(stage) => v.stages.contains(stage),
            VersionSelector::Id(want) => *id == want,
            VersionSelector::IdAndStage(want, stage) => *id == want && v.stages.contains(stage),
        });
        let (id, version) = found.ok_or_else(|| not_found("GetSecretValue"))?;
        let value = version.value.clone().ok_or_else(|| not_found("GetSecretValue: no value"))?;
        Ok(SecretVersion { arn: secret.arn.clone(), version_id: id.clone(), stages: version.stages.clone(), value: SecretString::new(value) })
    }

    /// Like AWS: the same token with another value is refused (ResourceExistsException); a stage
    /// moves from whichever version had it.
    async fn put_value(&self, secret_id: &str, version_id: &str, value: &SecretString, stages: &[&str], _rotation_token: Option<&str>) -> Result<(), AwsError> {
        self.calls.lock().unwrap().put += 1;
        let fault = self.take_fault(|f| matches!(f, Fault::Put { .. }));
        if fault == Some(Fault::Put { after: false }) {
            return Err(transient("PutSecretValue"));
        }
        self.with_secret(secret_id, |secret| {
            if let Some(existing) = secret.versions.get(version_id).and_then(|v| v.value.as_ref())
                && existing != value.expose()
            {
                return Err(AwsError::new(ErrorClass::State, Some("ResourceExistsException".into()), "PutSecretValue: a version with this token has another value"));
            }
            for version in secret.versions.values_mut() {
                version.stages.retain(|s| !stages.contains(&s.as_str()));
            }
            let version = secret.versions.entry(version_id.to_owned()).or_default();
            version.value = Some(value.expose().to_owned());
            for stage in stages {
                version.stages.push((*stage).to_owned());
            }
            Ok(())
        })?;
        if fault.is_some() {
            return Err(transient("PutSecretValue (response lost)"));
        }
        Ok(())
    }

    async fn update_stage(&self, secret_id: &str, stage: &str, move_to: Option<&str>, remove_from: Option<&str>) -> Result<(), AwsError> {
        self.calls.lock().unwrap().update += 1;
        let fault = self.take_fault(|f| matches!(f, Fault::UpdateStage { stage: s, .. } if s == stage));
        if let Some(Fault::UpdateStage { after: false, .. }) = fault {
            return Err(transient("UpdateSecretVersionStage"));
        }
        self.with_secret(secret_id, |secret| {
            if let Some(from) = remove_from {
                let version = secret.versions.get_mut(from).ok_or_else(|| AwsError::new(ErrorClass::Input, Some("InvalidParameterException".into()), "not a valid version"))?;
                if !version.stages.iter().any(|s| s == stage) {
                    return Err(AwsError::new(ErrorClass::Input, Some("InvalidParameterException".into()), "the stage is not on that version"));
                }
                version.stages.retain(|s| s != stage);
            }
            if let Some(to) = move_to {
                if stage == AWSCURRENT {
                    for version in secret.versions.values_mut() {
                        version.stages.retain(|s| s != AWSPREVIOUS);
                    }
                    if let Some(from) = remove_from {
                        secret.versions.get_mut(from).unwrap().stages.push(AWSPREVIOUS.to_owned());
                    }
                }
                let version = secret.versions.get_mut(to).ok_or_else(|| AwsError::new(ErrorClass::Input, Some("InvalidParameterException".into()), "not a valid version"))?;
                if !version.stages.iter().any(|s| s == stage) {
                    version.stages.push(stage.to_owned());
                }
            }
            Ok(())
        })?;
        if fault.is_some() {
            return Err(transient("UpdateSecretVersionStage (response lost)"));
        }
        Ok(())
    }
}

/// One fake server: users and passwords, who is master, what was mirrored.
#[derive(Clone, Debug, Default)]
pub struct FakeServer {
    pub users: HashMap<String, String>,
    /// target -> source, for each mirror that ran.
    pub mirrors: Vec<(String, String)>,
    /// Users whose grants were mirrored completely (a fault can interrupt after the password).
    pub grants_in_step: Vec<String>,
}

#[derive(Default)]
pub struct FakeDatabases {
    /// "host:port" -> server.
    pub servers: Mutex<HashMap<String, FakeServer>>,
    /// The next mirror sets the password and then fails (a crash before the grants).
    pub interrupt_next_mirror: Mutex<bool>,
    /// Every login attempt: (user, succeeded).
    pub logins: Mutex<Vec<(String, bool)>>,
    /// When set, logins to this host fail with this class (TLS, network).
    pub broken: Mutex<Option<ErrorClass>>,
    /// Users whose password is accepted but who may not use the database (MySQL 1044).
    pub no_access: Mutex<Vec<String>>,
}

fn endpoint(document: &SecretDocument) -> String {
    let engine = document.engine().unwrap_or(Engine::MySql);
    format!("{}:{}", document.host().unwrap_or("").to_ascii_lowercase(), document.port(engine.family()).unwrap_or(0))
}

impl FakeDatabases {
    pub fn add_server(&self, host_port: &str, users: &[(&str, &str)]) {
        let server = FakeServer { users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(), ..FakeServer::default() };
        self.servers.lock().unwrap().insert(host_port.to_owned(), server);
    }

    pub fn server(&self, host_port: &str) -> FakeServer {
        self.servers.lock().unwrap().get(host_port).cloned().unwrap_or_default()
    }

    pub fn password_of(&self, host_port: &str, user: &str) -> Option<String> {
        self.server(host_port).users.get(user).cloned()
    }

    fn login(&self, document: &SecretDocument) -> Result<(String, String), DbError> {
        if let Some(class) = *self.broken.lock().unwrap() {
            return Err(DbError::new(class, "the fake network is broken"));
        }
        document.require_connection_fields()?;
        let key = endpoint(document);
        let user = document.username()?.to_owned();
        let servers = self.servers.lock().unwrap();
        let server = servers.get(&key).ok_or_else(|| DbError::new(ErrorClass::ConnectionRefused, format!("nothing listens at {key}")))?;
        let ok = server.users.get(&user).is_some_and(|p| p == document.password().unwrap().expose());
        self.logins.lock().unwrap().push((user.clone(), ok));
        if ok && self.no_access.lock().unwrap().contains(&user) {
            return Err(DbError::new(ErrorClass::Permission, format!("{user} may not use the database")));
        }
        if ok { Ok((key, user)) } else { Err(DbError::new(ErrorClass::Authentication, format!("access denied for {user}"))) }
    }
}

#[async_trait]
impl Databases for FakeDatabases {
    async fn check_login(&self, login: &SecretDocument, _deadline: Instant) -> Result<Identity, DbError> {
        let (_, user) = self.login(login)?;
        let engine = login.engine().unwrap();
        let current_user = match engine.family() {
            dbcreds_core::EngineFamily::MySql => format!("{user}@%"),
            dbcreds_core::EngineFamily::Postgres => user,
        };
        Ok(Identity { current_user, server_version: "fake".into() })
    }

    async fn set_own_password(&self, login: &SecretDocument, new_password: &SecretString, _deadline: Instant) -> Result<(), DbError> {
        let (key, user) = self.login(login)?;
        self.servers.lock().unwrap().get_mut(&key).unwrap().users.insert(user, new_password.expose().to_owned());
        Ok(())
    }

    async fn mirror_user(&self, master: &SecretDocument, source: &str, target: &str, password: &SecretString, _deadline: Instant, proceed: crate::ports::Proceed) -> Result<Option<Vec<GrantChange>>, DbError> {
        let (key, _) = self.login(master)?;
        if !proceed.await.unwrap_or(false) {
            return Ok(None);
        }
        let mut servers = self.servers.lock().unwrap();
        let server = servers.get_mut(&key).unwrap();
        if !server.users.contains_key(source) {
            return Err(DbError::new(ErrorClass::Sql, "the source user does not exist"));
        }
        server.users.insert(target.to_owned(), password.expose().to_owned());
        self.no_access.lock().unwrap().retain(|u| u != target);
        server.mirrors.push((target.to_owned(), source.to_owned()));
        if std::mem::take(&mut *self.interrupt_next_mirror.lock().unwrap()) {
            server.grants_in_step.retain(|u| u != target);
            return Err(DbError::new(ErrorClass::ConnectionLost, "the connection broke while mirroring grants"));
        }
        if !server.grants_in_step.iter().any(|u| u == target) {
            server.grants_in_step.push(target.to_owned());
        }
        Ok(Some(vec![GrantChange::Altered(format!("{target} mirrors {source}"))]))
    }
}

#[derive(Default)]
pub struct FakeRds {
    pub endpoints: HashMap<String, DatabaseEndpoint>,
}

#[async_trait]
impl EndpointLookup for FakeRds {
    async fn endpoint_for_secret(&self, metadata: &SecretMetadata) -> Result<DatabaseEndpoint, AwsError> {
        let owner = dbcreds_aws::RdsOwner::from_tags(metadata).ok_or_else(|| AwsError::new(ErrorClass::Input, None, "no RDS tag"))?;
        self.endpoints.get(owner.arn()).cloned().ok_or_else(|| AwsError::new(ErrorClass::Input, None, "no such RDS resource"))
    }
}
