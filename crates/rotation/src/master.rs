//! The master login of an alternating-users secret (`masterarn`), read and checked against the
//! rotated secret. Shared by the rotator's setSecret and by the operator CLI (`dbcreds doctor`
//! and `dbcreds reset-password`), so all three accept and refuse exactly the same masters.

use crate::error::RotationError;
use crate::ports::EndpointLookup;
use crate::steps::{alternate_username, same_host};
use dbcreds_aws::{AWSCURRENT, SecretStore, VersionSelector};
use dbcreds_core::sanitize::for_log;
use dbcreds_core::secret_document::{DBNAME, ENGINE, HOST, PORT};
use dbcreds_core::{Engine, InputError, SecretDocument};
use serde_json::Value;
use std::time::Duration;

/// How to read the master secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterRead {
    /// Ask Secrets Manager.
    Fresh,
    /// Reuse the AWSCURRENT this process read at most this long ago, if it still holds it (the
    /// warm rotator). The caller reads [`MasterRead::Fresh`] when the database refuses it.
    Recent(Duration),
}

/// The master login, and whether it came from the process's memory (so may be out of date).
#[derive(Debug)]
pub struct Master {
    pub document: SecretDocument,
    pub remembered: bool,
}

/// Reads the master secret `current.masterarn` names (AWSCURRENT) and makes it a login for the
/// same database as `current`:
/// - an RDS-managed master secret (only username and password) gets its host, port and engine
///   from RDS through its `aws:rds:primarydbinstancearn` / `primarydbclusterarn` tag;
/// - PostgreSQL: it logs in to the application's database (`dbname`), where its objects live;
/// - it must be for the same database (same engine family, host and port, or the RDS instance
///   or cluster the secret names) and must not be the rotated user or its clone.
///
/// `before_call` runs before each call (the rotator refuses to start one past its deadline).
/// Every check runs on a remembered master too ([`MasterRead::Recent`]): only the read is saved.
pub async fn resolve_master(
    store: &dyn SecretStore,
    endpoints: Option<&dyn EndpointLookup>,
    current: &SecretDocument,
    engine: Engine,
    read: MasterRead,
    before_call: &(dyn Fn(&str) -> Result<(), RotationError> + Sync),
) -> Result<Master, RotationError> {
    const LABEL: &str = "master secret";
    let master_arn = current.masterarn().ok_or_else(|| InputError::missing("AWSCURRENT.masterarn", "name the master secret"))?;
    let within = |e: InputError| RotationError::from(e.within(&format!("{LABEL}.")));
    before_call("reading the master secret")?;
    let remembered = match read {
        MasterRead::Fresh => None,
        MasterRead::Recent(max_age) => store.remembered_value(master_arn, AWSCURRENT, max_age),
    };
    let from_memory = remembered.is_some();
    let version = match remembered {
        Some(version) => version,
        None => store
            .get_value(master_arn, VersionSelector::stage(AWSCURRENT))
            .await
            .map_err(|e| RotationError::from(e).context(&format!("reading the master secret {} named by masterarn", for_log(master_arn))))?,
    };
    let mut master = SecretDocument::parse(version.value).map_err(within)?;
    master.username().map_err(within)?;
    master.password().map_err(within)?;

    // The RDS resource the master was found through, to accept the rotated secret's identifiers.
    let mut rds_resource: Option<String> = None;
    if master.host_opt().is_none() {
        // An RDS-managed master secret: only username and password; RDS knows the rest.
        let Some(endpoints) = endpoints else {
            return Err(InputError::missing(format!("{LABEL}.host"), "put engine, host and port in the master secret").into());
        };
        before_call("finding the master's database through RDS")?;
        let metadata = store.describe(master_arn).await.map_err(|e| RotationError::from(e).context("describing the master secret"))?;
        let endpoint = endpoints.endpoint_for_secret(&metadata).await.map_err(|e| RotationError::from(e).context("finding the master secret's database through RDS"))?;
        let rds_engine = endpoint.engine.ok_or_else(|| {
            InputError::invalid(format!("{LABEL}.engine"), format!("RDS reports the engine {}, which dbcreds does not rotate", for_log(&endpoint.engine_name)), "use a MySQL or PostgreSQL database")
        })?;
        master.set_field(HOST, Value::String(endpoint.host.clone()));
        if master.port_opt().map_err(within)?.is_none() {
            master.set_field(PORT, Value::from(endpoint.port));
        }
        if master.engine_opt().is_none() {
            master.set_field(ENGINE, Value::String(rds_engine.as_str().to_owned()));
        }
        rds_resource = Some(endpoint.resource_arn);
    }
    if master.field(ENGINE).is_none() {
        master.set_field(ENGINE, Value::String(engine.as_str().to_owned()));
    }
    // PostgreSQL: log in to the application's database, where its objects live.
    if master.dbname().is_none()
        && let Some(dbname) = current.dbname()
    {
        master.set_field(DBNAME, Value::String(dbname.to_owned()));
    }
    master.require_connection_fields().map_err(within)?;
    let master_engine = master.engine().map_err(within)?;
    if master_engine.family() != engine.family() {
        return Err(InputError::invalid(format!("{LABEL}.engine"), format!("is {master_engine}, but the rotated secret's is {engine}"), "point masterarn at the master secret of the same database").into());
    }
    let family = engine.family();
    let same_database = (same_host(master.host()?, current.host()?) && master.port(family)? == current.port(family)?)
        || rds_resource.as_deref().is_some_and(|arn| names_resource(current, arn));
    if !same_database {
        return Err(InputError::invalid(
            format!("{LABEL}.host"),
            format!("{}:{} is not the rotated secret's database {}:{}", for_log(master.host()?), master.port(family)?, for_log(current.host()?), current.port(family)?),
            "point masterarn at the master secret of the database the user lives in",
        )
        .into());
    }
    let master_user = master.username()?;
    let rotated = current.username()?;
    if master_user == rotated || master_user == alternate_username(rotated) {
        return Err(InputError::invalid(
            "AWSCURRENT.username",
            format!("{} is the master user (or its clone); alternating users would copy the master's privileges", for_log(rotated)),
            "rotate the master with single-user rotation (or let RDS manage it)",
        )
        .into());
    }
    Ok(Master { document: master, remembered: from_memory })
}

/// Whether the rotated secret's `dbInstanceIdentifier` or `dbClusterIdentifier` names the RDS
/// resource (`arn:aws:rds:<region>:<account>:db:<id>` or `...:cluster:<id>`).
fn names_resource(current: &SecretDocument, resource_arn: &str) -> bool {
    let mut parts = resource_arn.rsplitn(3, ':');
    let (Some(id), Some(kind)) = (parts.next(), parts.next()) else { return false };
    match kind {
        "db" => current.db_instance_identifier().is_some_and(|x| x.eq_ignore_ascii_case(id)),
        "cluster" => current.db_cluster_identifier().is_some_and(|x| x.eq_ignore_ascii_case(id)),
        _ => false,
    }
}
