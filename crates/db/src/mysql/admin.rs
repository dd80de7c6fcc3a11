//! The seam's traits ([`Session`], [`UserAdmin`], [`GrantAdmin`]) for the MySQL family.
//!
//! Each method validates the names it is given, reads what it needs from the catalog, builds
//! its statements with the pure builders in `sql.rs`/`grants.rs`, and runs them within the
//! session's deadline.

use crate::error::DbError;
use crate::mysql::catalog::{AccountId, Scope};
use crate::mysql::grant_text::redact_authentication;
use crate::mysql::grants::{AccountGrants, ObjectKey, Planned, plan_default_roles, plan_grants};
use crate::mysql::session::MySqlSession;
use crate::mysql::sql::{Account, AccountAuth, Statement, database_grant_pattern, is_privilege_name, validate_database, validate_user};
use crate::privileges::{GrantChange, PrivilegePreset, PrivilegeSpec, allowed_privilege_names};
use crate::server::{Flavor, ServerInfo, Transport};
use crate::session::{GrantAdmin, Identity, NewUserAuth, Session, UserAdmin};
use async_trait::async_trait;
use dbcreds_core::{EngineFamily, ErrorClass, SecretString};
use std::collections::BTreeSet;

/// The host new users get: any. (The clone gets the source's hosts instead.)
pub const DEFAULT_HOST: &str = "%";

/// The database-level privileges of a preset (see `privileges.rs`). `Owner` is every
/// database-level privilege the server has, without GRANT OPTION.
pub fn preset_privileges(preset: PrivilegePreset, server: &ServerInfo) -> Vec<String> {
    let names: Vec<&str> = match preset {
        PrivilegePreset::ReadOnly => vec!["SELECT", "SHOW VIEW"],
        PrivilegePreset::ReadWrite => {
            vec!["SELECT", "SHOW VIEW", "INSERT", "UPDATE", "DELETE", "EXECUTE", "CREATE TEMPORARY TABLES", "LOCK TABLES"]
        }
        PrivilegePreset::Owner => {
            let mut all = allowed_privilege_names(EngineFamily::MySql).to_vec();
            if server.flavor == Flavor::MariaDb && server.at_least(10, 3, 4) {
                all.push("DELETE HISTORY");
            }
            if server.flavor == Flavor::MariaDb && server.at_least(11, 3, 2) {
                all.push("SHOW CREATE ROUTINE");
            }
            all
        }
    };
    names.into_iter().map(str::to_owned).collect()
}

impl MySqlSession {
    /// The hosts `user` has an account at, sorted.
    async fn hosts(&mut self, user: &str) -> Result<Vec<String>, DbError> {
        Ok(self.accounts(&[user]).await?.into_keys().map(|(_, host)| host).collect())
    }

    /// What `apply_privileges` would run: the grants and revokes that give `user` exactly `spec`
    /// on `database`, planned against the catalog. `user_is_new`: the user does not exist yet (a
    /// dry run that plans its creation), so it would be at the default host holding nothing.
    pub(crate) async fn privilege_plan(&mut self, user: &str, database: &str, spec: &PrivilegeSpec, user_is_new: bool) -> Result<Vec<Planned>, DbError> {
        validate_user("user", user)?;
        validate_database("database", database)?;
        let wanted: Vec<String> = match spec {
            PrivilegeSpec::Preset(preset) => preset_privileges(*preset, &self.server),
            PrivilegeSpec::List(names) => {
                let allowed = allowed_privilege_names(EngineFamily::MySql);
                for (i, name) in names.iter().enumerate() {
                    if !allowed.contains(&name.as_str()) || !is_privilege_name(name) {
                        return Err(DbError::new(
                            ErrorClass::Input,
                            format!("Privileges[{i}]: {} is not a database privilege MySQL allows here", dbcreds_core::sanitize::for_log(name)),
                        ));
                    }
                }
                names.clone()
            }
        };
        let hosts = if user_is_new { vec![DEFAULT_HOST.to_owned()] } else { self.hosts(user).await? };
        if hosts.is_empty() {
            return Err(DbError::new(ErrorClass::Sql, format!("granting privileges to {}: the user does not exist", statement_subject(user))));
        }
        let pattern = database_grant_pattern(database, self.dialect.literal_db_grants);
        let ids: Vec<AccountId> = hosts.iter().map(|h| (user.to_owned(), h.clone())).collect();
        let current = if user_is_new { Default::default() } else { self.grants_of(&ids, Scope::Privileges).await? };
        let mut want = AccountGrants::default();
        for privilege in &wanted {
            want.add(ObjectKey::Database(pattern.clone()), privilege, None, false);
        }
        let mut plan = Vec::new();
        for id in &ids {
            let have = current.get(id).map(|g| g.within_database(database, &pattern)).unwrap_or_default();
            let account = Account { user, host: &id.1 };
            let planned = plan_grants(&self.dialect, account, &want, &have)?;
            plan.extend(planned.grants);
            plan.extend(planned.revokes);
        }
        Ok(plan)
    }

    async fn apply(&mut self, plan: Vec<Planned>, what: &str) -> Result<Vec<GrantChange>, DbError> {
        let applied = self.run_plan(&plan, what).await?;
        Ok(plan.into_iter().zip(applied).filter(|(_, applied)| *applied).map(|(p, _)| p.change).collect())
    }
}

#[async_trait]
impl Session for MySqlSession {
    fn server(&self) -> &ServerInfo {
        &self.server
    }

    fn transport(&self) -> &Transport {
        &self.transport
    }

    async fn identity(&mut self) -> Result<Identity, DbError> {
        let sets = self.query_sets("SELECT CURRENT_USER(), VERSION()", "asking the server who we are").await?;
        let row = sets.into_iter().next().and_then(|rows| rows.into_iter().next()).unwrap_or_default();
        let mut cells = row.into_iter();
        Ok(Identity {
            current_user: cells.next().flatten().unwrap_or_default(),
            server_version: cells.next().flatten().unwrap_or_default(),
        })
    }

    /// The query runs as one prepared statement (so it cannot be several statements) inside a
    /// read-only transaction of a read-only session (so it cannot write, even through DDL's
    /// implicit commit), and the transaction is rolled back.
    async fn query_read_only(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        if sql.trim().is_empty() {
            return Err(DbError::new(ErrorClass::Input, "TEST_QUERY: is empty; give a query such as SELECT 1"));
        }
        self.run(&Statement::plain("SET SESSION TRANSACTION READ ONLY"), "making the session read-only").await?;
        self.run(&Statement::plain("START TRANSACTION READ ONLY"), "starting a read-only transaction").await?;
        let result = self.rows(sql, Vec::new(), "running the test query").await;
        // Leave the session as we found it (when it still works).
        let rolled_back = self.run(&Statement::plain("ROLLBACK"), "rolling back the test query").await;
        let restored = self.run(&Statement::plain("SET SESSION TRANSACTION READ WRITE"), "restoring read-write").await;
        match result {
            Err(err) if err.message.contains("ERROR 1792 ") => Err(DbError::new(
                ErrorClass::Input,
                "TEST_QUERY: tried to change data; it runs in a read-only transaction, give a read-only query".to_owned(),
            )),
            Err(err) if err.message.contains("ERROR 1295 ") => Err(DbError::new(
                ErrorClass::Input,
                "TEST_QUERY: cannot run as a single prepared statement; give one SELECT (or SHOW) statement".to_owned(),
            )),
            Err(err) => Err(err),
            Ok(rows) => {
                rolled_back?;
                restored?;
                Ok(rows)
            }
        }
    }

    async fn set_own_password(&mut self, new_password: &SecretString) -> Result<(), DbError> {
        let statement = self.dialect.set_own_password(new_password)?;
        self.run(&statement, "changing our own password").await
    }

    async fn close(self: Box<Self>) {
        (*self).shut_down().await;
    }
}

#[async_trait]
impl UserAdmin for MySqlSession {
    async fn create_database_if_missing(&mut self, database: &str) -> Result<bool, DbError> {
        validate_database("database", database)?;
        // The affected-row count of CREATE DATABASE IF NOT EXISTS differs between MySQL (1 even
        // when it exists) and MariaDB (0), so ask first.
        let existing = self
            .rows("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", vec![database.into()], "looking for the database")
            .await?;
        if existing.iter().any(|row| row.first().cloned().flatten().as_deref() == Some(database)) {
            return Ok(false);
        }
        let statement = self.dialect.create_database(database);
        self.run(&statement, "creating the database").await?;
        Ok(true)
    }

    async fn user_exists(&mut self, user: &str) -> Result<bool, DbError> {
        validate_user("user", user)?;
        Ok(!self.hosts(user).await?.is_empty())
    }

    async fn create_user(&mut self, user: &str, auth: NewUserAuth<'_>) -> Result<bool, DbError> {
        validate_user("user", user)?;
        if !self.hosts(user).await?.is_empty() {
            return Ok(false);
        }
        let account = Account { user, host: DEFAULT_HOST };
        let auth = match auth {
            NewUserAuth::Password(password) => AccountAuth::Password { password, plugin: None },
            NewUserAuth::Iam => AccountAuth::Iam,
        };
        let statement = self.dialect.create_user(account, auth, None, None, true)?;
        self.run(&statement, &format!("creating user {}", statement_subject(user))).await?;
        if matches!(auth, AccountAuth::Iam) && !self.dialect.caps.alter_user {
            // Servers without CREATE USER ... REQUIRE take it on GRANT.
            let tls = crate::mysql::grants::TlsRequirement { ssl_type: crate::mysql::grants::SslType::Any, ..Default::default() };
            let statement = self.dialect.alter_tls_and_limits(account, &tls, &Default::default())?;
            self.run(&statement, "requiring TLS for the IAM user").await?;
        }
        Ok(true)
    }

    async fn set_password(&mut self, user: &str, password: &SecretString) -> Result<(), DbError> {
        validate_user("user", user)?;
        let accounts = self.accounts(&[user]).await?;
        if accounts.is_empty() {
            return Err(DbError::new(ErrorClass::Sql, format!("setting the password of {}: the user does not exist", statement_subject(user))));
        }
        for ((_, host), settings) in &accounts {
            let statement = self.dialect.set_password(Account { user, host }, password, settings.plugin.as_deref())?;
            self.run(&statement, &format!("setting the password of {}", statement_subject(user))).await?;
        }
        Ok(())
    }

    async fn drop_user(&mut self, user: &str) -> Result<bool, DbError> {
        validate_user("user", user)?;
        let hosts = self.hosts(user).await?;
        for host in &hosts {
            let statement = self.dialect.drop_user(Account { user, host })?;
            self.run(&statement, &format!("dropping {}", statement.redacted())).await?;
        }
        Ok(!hosts.is_empty())
    }
}

fn statement_subject(user: &str) -> String {
    format!("user {}", dbcreds_core::sanitize::for_log(user))
}

#[async_trait]
impl GrantAdmin for MySqlSession {
    async fn read_grants(&mut self, user: &str) -> Result<Vec<String>, DbError> {
        validate_user("user", user)?;
        let mut lines = Vec::new();
        for host in self.hosts(user).await? {
            let account = self.dialect.account(Account { user, host: &host })?;
            let sets = self.query_sets(&format!("SHOW GRANTS FOR {account}"), "reading grants").await?;
            for row in sets.into_iter().flatten() {
                if let Some(Some(line)) = row.into_iter().next() {
                    lines.push(redact_authentication(&line, self.dialect.mode));
                }
            }
        }
        lines.sort();
        Ok(lines)
    }

    async fn apply_privileges(&mut self, user: &str, database: &str, spec: &PrivilegeSpec) -> Result<Vec<GrantChange>, DbError> {
        let plan = self.privilege_plan(user, database, spec, false).await?;
        self.apply(plan, "applying privileges").await
    }

    async fn mirror_user(&mut self, source: &str, target: &str, password: &SecretString) -> Result<Vec<GrantChange>, DbError> {
        validate_user("source user", source)?;
        validate_user("target user", target)?;
        if source == target {
            return Err(DbError::new(ErrorClass::Input, "target user: is the source user; the clone needs its own name"));
        }
        self.require_transport_for_secret()?;
        let accounts = self.accounts(&[source, target]).await?;
        let source_accounts: Vec<(String, crate::mysql::grants::AccountSettings)> =
            accounts.iter().filter(|((u, _), _)| u == source).map(|((_, h), s)| (h.clone(), s.clone())).collect();
        if source_accounts.is_empty() {
            return Err(DbError::new(ErrorClass::Sql, format!("mirroring {}: the source user does not exist", statement_subject(source))));
        }
        // Partial revokes (MySQL 8 `REVOKE ... ON db.*` under partial_revokes) are not copied yet.
        // A clone without them would hold more than the source, so refuse before changing anything.
        if let Some(((user, host), _)) = accounts.iter().find(|(_, s)| s.restrictions.is_some()) {
            return Err(DbError::new(
                ErrorClass::Input,
                format!(
                    "mirroring {}: account {}@{} has partial revokes, which dbcreds does not copy; remove them (or the clone would hold more than the source)",
                    statement_subject(source),
                    dbcreds_core::sanitize::for_log(user),
                    dbcreds_core::sanitize::for_log(host)
                ),
            ));
        }
        let dialect = self.dialect;
        let mut changes = Vec::new();

        // 1. Accounts: the clone exists at exactly the source's hosts, with the source's plugin,
        //    TLS requirement and resource limits, and the new password.
        for (host, wanted) in &source_accounts {
            let account = Account { user: target, host };
            match accounts.get(&(target.to_owned(), host.clone())) {
                None => {
                    let auth = AccountAuth::Password { password, plugin: wanted.plugin.as_deref() };
                    let statement = dialect.create_user(account, auth, Some(&wanted.tls), Some(&wanted.limits), false)?;
                    self.run(&statement, &format!("creating the clone at host {}", dbcreds_core::sanitize::for_log(host))).await?;
                    changes.push(GrantChange::Altered(statement.redacted().to_owned()));
                    if !dialect.caps.alter_user {
                        let statement = dialect.alter_tls_and_limits(account, &wanted.tls, &wanted.limits)?;
                        self.run(&statement, "copying TLS requirement and resource limits").await?;
                    }
                }
                Some(have) => {
                    let statement = dialect.set_password(account, password, wanted.plugin.as_deref())?;
                    self.run(&statement, &format!("setting the clone's password at host {}", dbcreds_core::sanitize::for_log(host))).await?;
                    changes.push(GrantChange::Altered(statement.redacted().to_owned()));
                    if have.tls != wanted.tls || have.limits != wanted.limits {
                        let statement = dialect.alter_tls_and_limits(account, &wanted.tls, &wanted.limits)?;
                        self.run(&statement, "copying TLS requirement and resource limits").await?;
                        changes.push(GrantChange::Altered(statement.redacted().to_owned()));
                    }
                }
            }
        }
        let source_hosts: BTreeSet<&String> = source_accounts.iter().map(|(h, _)| h).collect();
        let extra_hosts: Vec<String> = accounts.keys().filter(|(u, h)| u == target && !source_hosts.contains(h)).map(|(_, h)| h.clone()).collect();

        // 2. Grants, roles and proxy rights, per host, as a difference.
        let mut ids: Vec<AccountId> = Vec::new();
        for (host, _) in &source_accounts {
            ids.push((source.to_owned(), host.clone()));
            ids.push((target.to_owned(), host.clone()));
        }
        let holdings = self.grants_of(&ids, Scope::Everything).await?;
        let empty = AccountGrants::default();
        let mut grants = Vec::new();
        let mut defaults = Vec::new();
        let mut revokes = Vec::new();
        for (host, wanted) in &source_accounts {
            let account = Account { user: target, host };
            let want = holdings.get(&(source.to_owned(), host.clone())).unwrap_or(&empty);
            let have = holdings.get(&(target.to_owned(), host.clone())).unwrap_or(&empty);
            let planned = plan_grants(&dialect, account, want, have)?;
            grants.extend(planned.grants);
            revokes.extend(planned.revokes);
            let have_defaults = accounts.get(&(target.to_owned(), host.clone())).map(|s| s.default_roles.clone()).unwrap_or_default();
            if wanted.default_roles != have_defaults {
                // MariaDB keeps a default role after the role is revoked; such a dangling default
                // cannot be set on the clone (the server refuses a role the account lacks), so
                // only the defaults the clone will hold are set.
                let settable: BTreeSet<_> = wanted.default_roles.iter().filter(|r| want.roles.contains_key(*r)).cloned().collect();
                if let Some(planned) = plan_default_roles(&dialect, account, &settable, &have_defaults)? {
                    defaults.push(planned);
                }
            }
        }
        // 3. Hosts the source no longer has: the clone goes too.
        for host in &extra_hosts {
            let statement = dialect.drop_user(Account { user: target, host })?;
            revokes.push(Planned::altered(statement));
        }
        grants.extend(defaults);
        grants.extend(revokes);
        changes.extend(self.apply(grants, "mirroring grants").await?);
        Ok(changes)
    }
}

/// The dry run's plans: the statements the methods above would run, built by the same code from
/// the same catalog reads, never executed.
#[async_trait]
impl crate::dry_run::PlanWrites for MySqlSession {
    async fn plan_create_database(&mut self, database: &str) -> Result<Vec<String>, DbError> {
        validate_database("database", database)?;
        let existing = self
            .rows("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", vec![database.into()], "looking for the database")
            .await?;
        if existing.iter().any(|row| row.first().cloned().flatten().as_deref() == Some(database)) {
            return Ok(Vec::new());
        }
        Ok(vec![self.dialect.create_database(database).redacted().to_owned()])
    }

    async fn plan_create_user(&mut self, user: &str, auth: NewUserAuth<'_>) -> Result<Vec<String>, DbError> {
        validate_user("user", user)?;
        if !self.hosts(user).await?.is_empty() {
            return Ok(Vec::new());
        }
        let account = Account { user, host: DEFAULT_HOST };
        let auth = match auth {
            NewUserAuth::Password(password) => AccountAuth::Password { password, plugin: None },
            NewUserAuth::Iam => AccountAuth::Iam,
        };
        let mut statements = vec![self.dialect.create_user(account, auth, None, None, true)?.redacted().to_owned()];
        if matches!(auth, AccountAuth::Iam) && !self.dialect.caps.alter_user {
            let tls = crate::mysql::grants::TlsRequirement { ssl_type: crate::mysql::grants::SslType::Any, ..Default::default() };
            statements.push(self.dialect.alter_tls_and_limits(account, &tls, &Default::default())?.redacted().to_owned());
        }
        Ok(statements)
    }

    async fn plan_set_password(&mut self, user: &str, password: &SecretString, user_is_new: bool) -> Result<Vec<String>, DbError> {
        validate_user("user", user)?;
        if user_is_new {
            return Ok(vec![self.dialect.set_password(Account { user, host: DEFAULT_HOST }, password, None)?.redacted().to_owned()]);
        }
        let accounts = self.accounts(&[user]).await?;
        accounts.iter().map(|((_, host), settings)| Ok(self.dialect.set_password(Account { user, host }, password, settings.plugin.as_deref())?.redacted().to_owned())).collect()
    }

    async fn plan_privileges(&mut self, user: &str, database: &str, spec: &PrivilegeSpec, user_is_new: bool, _database_is_new: bool) -> Result<(Vec<String>, Vec<GrantChange>), DbError> {
        let plan = self.privilege_plan(user, database, spec, user_is_new).await?;
        Ok(plan.into_iter().map(|p| (p.statement.redacted().to_owned(), p.change)).unzip())
    }

    async fn plan_drop_user(&mut self, user: &str) -> Result<Vec<String>, DbError> {
        validate_user("user", user)?;
        let hosts = self.hosts(user).await?;
        hosts.iter().map(|host| Ok(self.dialect.drop_user(Account { user, host })?.redacted().to_owned())).collect()
    }
}
