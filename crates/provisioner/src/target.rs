//! Where the users go and how to log in there: the master secret, the properties that override
//! it, and (for an RDS-managed secret, which holds only username and password) RDS itself.
//!
//! Precedence, field by field: the property (`Engine`, `Host`, `Port`), then the master secret
//! (`engine`, `host`, `port`), then the RDS instance or cluster named by the secret's
//! `aws:rds:primarydbinstancearn` / `aws:rds:primarydbclusterarn` tag, then (port only) the
//! engine's default. An `Engine` property that contradicts the secret's engine family is an error,
//! not a silent choice.

use crate::error::{ProvisionError, Result};
use crate::identity::DatabaseIdentity;
use crate::spec::{self, ResourceSpec};
use dbcreds_aws::{AWSCURRENT, SecretStore, VersionSelector};
use dbcreds_core::secret_document::{ENGINE, HOST, PORT};
use dbcreds_core::{Engine, EngineFamily, ErrorClass, IdentifierKind, InputError, SecretDocument, validate_identifier};
use dbcreds_db::{ConnectSpec, TrustStore};
use dbcreds_rotation::EndpointLookup;
use serde_json::Value;
use std::sync::Arc;
use tokio::time::Instant;

/// The database the users live in, and the master login for it.
#[derive(Clone, Debug)]
pub struct Target {
    pub identity: DatabaseIdentity,
    /// The engine as it goes into the users' secrets (`mysql`, `aurora-postgresql`, ...).
    pub engine: Engine,
    /// The master secret as read, completed in memory with engine, host and port. Never written.
    pub master: SecretDocument,
    pub master_username: String,
    /// As the properties name it: what `masterarn` points at.
    pub master_secret_arn: String,
}

impl Target {
    pub fn family(&self) -> EngineFamily {
        self.identity.family
    }

    pub fn database(&self) -> &str {
        &self.identity.database
    }

    /// The master login. MySQL logs in without a default schema (the database may not exist
    /// yet); PostgreSQL logs in to the master secret's `dbname`, or `postgres`.
    pub fn master_connect_spec(&self, trust: Arc<TrustStore>, deadline: Instant) -> Result<ConnectSpec> {
        let mut spec = ConnectSpec::from_document(&self.master, trust, deadline).map_err(|e| ProvisionError::from(e).context("the master secret"))?;
        if self.family() == EngineFamily::MySql {
            spec.database = None;
        }
        Ok(spec)
    }
}

/// Reads the master secret and works out the target. Reads only: nothing is changed.
pub async fn resolve(spec: &ResourceSpec, store: &dyn SecretStore, rds: &dyn EndpointLookup) -> Result<Target> {
    let arn = &spec.master_secret_arn;
    let version = store
        .get_value(arn, VersionSelector::stage(AWSCURRENT))
        .await
        .map_err(|e| ProvisionError::from(e).context(&format!("reading the master secret ({})", spec::MASTER_SECRET_ARN)))?;
    let mut master = SecretDocument::parse(version.value).map_err(|e| e.within(&format!("{} secret: ", spec::MASTER_SECRET_ARN)))?;
    let master_username = master.username().map_err(|e| e.within(&format!("{} secret: ", spec::MASTER_SECRET_ARN)))?.to_owned();
    master.password().map_err(|e| e.within(&format!("{} secret: ", spec::MASTER_SECRET_ARN)))?;

    let secret_engine = master.engine_opt();
    if let (Some(asked), Some(stored)) = (spec.engine, secret_engine)
        && asked.family() != stored.family()
    {
            return Err(InputError::invalid(
                spec::ENGINE,
                format!("is {asked}, but the master secret says {stored}"),
                "set Engine to the database's engine, or remove it to use the secret's",
            )
            .into());
    }
    let mut engine = spec.engine.or(secret_engine);
    let mut host = spec.host.clone().or_else(|| master.host_opt().map(str::to_owned));
    let mut port = spec.port.or(master.port_opt().ok().flatten());

    if engine.is_none() || host.is_none() {
        // An RDS-managed master secret: find the database from the secret's RDS tag.
        let metadata = store.describe(arn).await.map_err(|e| ProvisionError::from(e).context(&format!("describing the master secret ({})", spec::MASTER_SECRET_ARN)))?;
        let endpoint = rds.endpoint_for_secret(&metadata).await.map_err(|e| {
            let missing = if host.is_none() { spec::HOST } else { spec::ENGINE };
            ProvisionError::from(e).context(&format!("{missing}: not in the properties nor in the master secret, and looking it up in RDS failed"))
        })?;
        let found = endpoint.engine.ok_or_else(|| {
            ProvisionError::new(ErrorClass::Input, format!("{}: RDS reports engine {}, which dbcreds does not manage", spec::ENGINE, dbcreds_core::sanitize::for_log(&endpoint.engine_name)))
        })?;
        if let Some(asked) = engine
            && asked.family() != found.family()
        {
            return Err(InputError::invalid(spec::ENGINE, format!("is {asked}, but RDS says the database is {found}"), "set Engine to the database's engine, or remove it").into());
        }
        engine = engine.or(Some(found));
        host = host.or(Some(endpoint.host));
        port = port.or(Some(endpoint.port));
    }
    let engine = engine.expect("set above");
    let host = host.expect("set above");
    let family = engine.family();
    let port = port.unwrap_or_else(|| family.default_port());
    validate_identifier(spec::DATABASE_NAME, &spec.database_name, family, IdentifierKind::Database, None)?;

    master.set_field(ENGINE, Value::String(engine.as_str().into()));
    master.set_field(HOST, Value::String(host.clone()));
    master.set_field(PORT, Value::from(port));
    Ok(Target {
        identity: DatabaseIdentity::new(family, &host, port, &spec.database_name),
        engine,
        master,
        master_username,
        master_secret_arn: arn.clone(),
    })
}
