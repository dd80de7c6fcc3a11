//! The capabilities a database offers dbcreds, one small trait each.
//!
//! Every method validates the identifiers it receives (`dbcreds_core::validate_identifier`)
//! before building SQL, quotes them by the engine's rules anyway, and never splices a password
//! unescaped into SQL. Every method is idempotent where the name says so ("if missing", "drop"
//! of an absent user), because each step that calls them may be retried.

use crate::error::DbError;
use crate::privileges::{GrantChange, PrivilegeSpec};
use crate::server::{ServerInfo, Transport};
use async_trait::async_trait;
use dbcreds_core::SecretString;

/// Who the session is logged in as, as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// MySQL `CURRENT_USER()` (`user@host`), PostgreSQL `session_user`: the login, which is
    /// what a rotation checks. (PostgreSQL's `current_user` is the role a session acts as; the
    /// alternating-users clone acts as its base user through `ALTER ROLE ... SET role`.)
    pub current_user: String,
    pub server_version: String,
}

/// How a new user authenticates.
#[derive(Debug, Clone, Copy)]
pub enum NewUserAuth<'a> {
    Password(&'a SecretString),
    /// RDS IAM authentication: MySQL `IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'`,
    /// PostgreSQL `GRANT rds_iam`.
    Iam,
}

/// A live, authenticated connection.
#[async_trait]
pub trait Session: Send {
    fn server(&self) -> &ServerInfo;
    fn transport(&self) -> &Transport;

    /// The logged-in user and the server version, from the server itself.
    async fn identity(&mut self) -> Result<Identity, DbError>;

    /// Runs an operator-supplied read-only query and returns the rows as text.
    /// The session is put in read-only mode first, so a TEST_QUERY cannot change data.
    async fn query_read_only(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError>;

    /// Changes the logged-in user's own password (single-user rotation).
    async fn set_own_password(&mut self, new_password: &SecretString) -> Result<(), DbError>;

    /// Closes the connection politely. Dropping a session also closes it.
    async fn close(self: Box<Self>);
}

/// User management, run with a master login.
#[async_trait]
pub trait UserAdmin: Send {
    /// Creates the database if it is missing; returns true if it created it.
    async fn create_database_if_missing(&mut self, database: &str) -> Result<bool, DbError>;

    async fn user_exists(&mut self, user: &str) -> Result<bool, DbError>;

    /// Creates the user if missing. An existing user is left as is (its password is *not*
    /// changed: call [`UserAdmin::set_password`]); returns true if it created it.
    async fn create_user(&mut self, user: &str, auth: NewUserAuth<'_>) -> Result<bool, DbError>;

    /// Sets another user's password (on MySQL, on every host the user has).
    async fn set_password(&mut self, user: &str, password: &SecretString) -> Result<(), DbError>;

    /// Drops the user if present; returns true if it dropped it. Never drops data: on
    /// PostgreSQL, objects the user owns are reassigned to the session user first.
    async fn drop_user(&mut self, user: &str) -> Result<bool, DbError>;
}

/// Privileges, run with a master login.
#[async_trait]
pub trait GrantAdmin: Send {
    /// The user's privileges as the server renders them, sorted, one entry each (MySQL: the
    /// GRANT statements; PostgreSQL: role memberships and role attributes). For diagnostics,
    /// tests and the doctor.
    async fn read_grants(&mut self, user: &str) -> Result<Vec<String>, DbError>;

    /// Gives `user` exactly `spec` on `database` and nothing else there: grants what is
    /// missing, revokes what is extra. Returns what changed (empty when already right).
    async fn apply_privileges(&mut self, user: &str, database: &str, spec: &PrivilegeSpec) -> Result<Vec<GrantChange>, DbError>;

    /// Makes `target` a faithful copy of `source` with `password`: creates it if missing (on
    /// MySQL at every host `source` has), sets its password, and makes its grants (MySQL: with
    /// GRANT OPTION, TLS requirements, resource limits, default roles) or its memberships and
    /// role attributes (PostgreSQL) match `source`'s, revoking what `source` no longer has.
    /// Costs in proportion to what changed. Returns what changed.
    async fn mirror_user(&mut self, source: &str, target: &str, password: &SecretString) -> Result<Vec<GrantChange>, DbError>;
}

/// What a master login can do: everything above.
pub trait AdminSession: Session + UserAdmin + GrantAdmin {}

impl<T: Session + UserAdmin + GrantAdmin> AdminSession for T {}
