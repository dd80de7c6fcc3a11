//! Dry runs: what a caller of the seam (the provisioner's lifecycle) would do to a database, as
//! the SQL it would run, without changing anything.
//!
//! Each adapter implements [`PlanWrites`] with the code its [`UserAdmin`] and [`GrantAdmin`]
//! methods use (the same catalog reads, the same SQL builders), stopping short of executing.
//! [`DryRun`] is an [`AdminSession`] over such a session: reads go to the server, writes are
//! planned and recorded (passwords redacted, as `Statement::redacted` renders them), and what the
//! recorded writes would have created (a user, a database) is remembered, so later steps plan
//! against the state the earlier ones would have left: a user created in the dry run exists for
//! `user_exists` and holds nothing for `apply_privileges`.

use crate::connect::ConnectSpec;
use crate::error::DbError;
use crate::privileges::{GrantChange, PrivilegeSpec};
use crate::server::{ServerInfo, Transport};
use crate::session::{AdminSession, GrantAdmin, Identity, NewUserAuth, Session, UserAdmin};
use async_trait::async_trait;
use dbcreds_core::{EngineFamily, ErrorClass, SecretString};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The statements a write would run, planned from the server's current state. Each is rendered
/// with every secret literal redacted.
#[async_trait]
pub trait PlanWrites: Send {
    /// `CREATE DATABASE`, or nothing when it exists.
    async fn plan_create_database(&mut self, database: &str) -> Result<Vec<String>, DbError>;
    /// The user's creation, or nothing when it exists.
    async fn plan_create_user(&mut self, user: &str, auth: NewUserAuth<'_>) -> Result<Vec<String>, DbError>;
    /// Setting another user's password. `user_is_new`: it is created earlier in the same run.
    async fn plan_set_password(&mut self, user: &str, password: &SecretString, user_is_new: bool) -> Result<Vec<String>, DbError>;
    /// The grants and revokes `apply_privileges` would run, and the changes it would report.
    /// `user_is_new` / `database_is_new`: created earlier in the same run, so they hold nothing.
    async fn plan_privileges(&mut self, user: &str, database: &str, spec: &PrivilegeSpec, user_is_new: bool, database_is_new: bool) -> Result<(Vec<String>, Vec<GrantChange>), DbError>;
    /// What `drop_user` would run, or nothing when the user does not exist.
    async fn plan_drop_user(&mut self, user: &str) -> Result<Vec<String>, DbError>;
}

/// A session that can both run and plan.
pub trait PlanningSession: AdminSession + PlanWrites {}

impl<T: AdminSession + PlanWrites> PlanningSession for T {}

/// Opens a session with the adapter for `spec.family`, able to plan.
pub async fn connect(spec: &ConnectSpec) -> Result<Box<dyn PlanningSession>, DbError> {
    let connecting = async {
        match spec.family {
            EngineFamily::MySql => Ok(Box::new(crate::mysql::MySqlSession::open(spec).await?) as Box<dyn PlanningSession>),
            EngineFamily::Postgres => Ok(Box::new(crate::postgres::PgSession::open(spec).await?) as Box<dyn PlanningSession>),
        }
    };
    match tokio::time::timeout_at(spec.deadline, connecting).await {
        Ok(result) => result,
        Err(_) => Err(DbError::new(ErrorClass::Deadline, format!("connecting to {}:{} did not finish before the deadline", spec.host, spec.port))),
    }
}

/// One write a dry run would have made.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlannedWrite {
    /// What it is for: `create user app`, `privileges of app on appdb`.
    pub what: String,
    /// The SQL, secrets redacted. Empty when nothing would be run (already as wanted).
    pub statements: Vec<String>,
}

/// Where a dry run records, shared with whoever reads the plan afterwards.
pub type PlanLog = Arc<Mutex<Vec<PlannedWrite>>>;

/// An [`AdminSession`] that plans its writes instead of making them (see the module docs).
pub struct DryRun {
    inner: Box<dyn PlanningSession>,
    log: PlanLog,
    new_users: BTreeSet<String>,
    new_databases: BTreeSet<String>,
    dropped_users: BTreeSet<String>,
}

impl DryRun {
    pub fn new(inner: Box<dyn PlanningSession>, log: PlanLog) -> Self {
        Self { inner, log, new_users: BTreeSet::new(), new_databases: BTreeSet::new(), dropped_users: BTreeSet::new() }
    }

    fn record(&self, what: String, statements: Vec<String>) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(PlannedWrite { what, statements });
    }

    fn refused(what: &str) -> DbError {
        DbError::new(ErrorClass::Internal, format!("{what} is not planned by a dry run; nothing was changed"))
    }
}

#[async_trait]
impl Session for DryRun {
    fn server(&self) -> &ServerInfo {
        self.inner.server()
    }

    fn transport(&self) -> &Transport {
        self.inner.transport()
    }

    async fn identity(&mut self) -> Result<Identity, DbError> {
        self.inner.identity().await
    }

    async fn query_read_only(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        self.inner.query_read_only(sql).await
    }

    async fn set_own_password(&mut self, _new_password: &SecretString) -> Result<(), DbError> {
        Err(Self::refused("changing the session's own password"))
    }

    async fn close(self: Box<Self>) {
        self.inner.close().await;
    }
}

#[async_trait]
impl UserAdmin for DryRun {
    async fn create_database_if_missing(&mut self, database: &str) -> Result<bool, DbError> {
        let statements = self.inner.plan_create_database(database).await?;
        let created = !statements.is_empty();
        if created {
            self.new_databases.insert(database.to_owned());
        }
        self.record(format!("create database {database} if missing"), statements);
        Ok(created)
    }

    async fn user_exists(&mut self, user: &str) -> Result<bool, DbError> {
        if self.new_users.contains(user) {
            return Ok(true);
        }
        if self.dropped_users.contains(user) {
            return Ok(false);
        }
        self.inner.user_exists(user).await
    }

    async fn create_user(&mut self, user: &str, auth: NewUserAuth<'_>) -> Result<bool, DbError> {
        if self.user_exists(user).await? {
            self.record(format!("create user {user} if missing"), Vec::new());
            return Ok(false);
        }
        let statements = self.inner.plan_create_user(user, auth).await?;
        self.new_users.insert(user.to_owned());
        self.dropped_users.remove(user);
        self.record(format!("create user {user}"), statements);
        Ok(true)
    }

    async fn set_password(&mut self, user: &str, password: &SecretString) -> Result<(), DbError> {
        // A user this run creates gets its password with CREATE USER: setting it again changes nothing.
        if self.new_users.contains(user) {
            return Ok(());
        }
        let statements = self.inner.plan_set_password(user, password, false).await?;
        self.record(format!("set the password of {user}"), statements);
        Ok(())
    }

    async fn drop_user(&mut self, user: &str) -> Result<bool, DbError> {
        if !self.user_exists(user).await? {
            return Ok(false);
        }
        let statements = if self.new_users.remove(user) { Vec::new() } else { self.inner.plan_drop_user(user).await? };
        self.dropped_users.insert(user.to_owned());
        self.record(format!("drop user {user}"), statements);
        Ok(true)
    }
}

#[async_trait]
impl GrantAdmin for DryRun {
    async fn read_grants(&mut self, user: &str) -> Result<Vec<String>, DbError> {
        if self.new_users.contains(user) {
            return Ok(Vec::new());
        }
        self.inner.read_grants(user).await
    }

    async fn apply_privileges(&mut self, user: &str, database: &str, spec: &PrivilegeSpec) -> Result<Vec<GrantChange>, DbError> {
        let user_is_new = self.new_users.contains(user);
        let database_is_new = self.new_databases.contains(database);
        let (statements, changes) = self.inner.plan_privileges(user, database, spec, user_is_new, database_is_new).await?;
        self.record(format!("privileges of {user} on {database}"), statements);
        Ok(changes)
    }

    async fn mirror_user(&mut self, _source: &str, _target: &str, _password: &SecretString) -> Result<Vec<GrantChange>, DbError> {
        Err(Self::refused("mirroring a user"))
    }
}
