//! Reading accounts and their privileges from the server's structured catalog.
//!
//! Sources, chosen so that every flavour answers the same questions the same way:
//! - `mysql.user`: hosts, authentication plugin, TLS requirement, resource limits, and on MariaDB
//!   the default role (roles themselves are excluded with `is_role`);
//! - information_schema `USER_PRIVILEGES`, `SCHEMA_PRIVILEGES`, `TABLE_PRIVILEGES`,
//!   `COLUMN_PRIVILEGES`: one row per privilege with `IS_GRANTABLE`, `ALL` already expanded;
//! - `mysql.global_grants` (MySQL 8+ dynamic privileges), `mysql.procs_priv` (routines),
//!   `mysql.proxies_priv`, and the role tables (`mysql.role_edges`/`mysql.default_roles` on MySQL,
//!   `mysql.roles_mapping` on MariaDB).
//!
//! Every read takes all accounts of interest at once (one query per source, not per host or per
//! object). information_schema compares `GRANTEE` case-insensitively, so rows are matched back to
//! accounts exactly here, in Rust.

use crate::error::DbError;
use crate::mysql::flavor::RoleModel;
use crate::mysql::grants::{AccountGrants, AccountSettings, ObjectKey, ResourceLimits, RoleRef, RoutineKind, SslType, TlsRequirement};
use crate::mysql::session::MySqlSession;
use dbcreds_core::ErrorClass;
use mysql_async::Value;
use std::collections::{BTreeMap, HashMap};

/// `(user, host)`.
pub type AccountId = (String, String);

/// What to read besides object privileges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Object privileges only (for `apply_privileges`).
    Privileges,
    /// Everything a mirror copies: also roles and proxy rights.
    Everything,
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

fn yes(value: &str) -> bool {
    matches!(value.trim().to_ascii_uppercase().as_str(), "YES" | "Y" | "1")
}

fn number<T: std::str::FromStr + Default>(value: &str) -> T {
    value.trim().parse().unwrap_or_default()
}

impl MySqlSession {
    /// The accounts (one per host) of `users`, with their settings; roles excluded.
    pub(crate) async fn accounts(&mut self, users: &[&str]) -> Result<BTreeMap<AccountId, AccountSettings>, DbError> {
        let mariadb_roles = self.dialect.caps.roles == RoleModel::MariaDb;
        let mut columns = String::from(
            "User, Host, plugin, ssl_type, ssl_cipher, x509_issuer, x509_subject, max_questions, max_updates, max_connections, max_user_connections",
        );
        if mariadb_roles {
            columns.push_str(", default_role");
        }
        if self.dialect.caps.max_statement_time {
            columns.push_str(", max_statement_time");
        }
        if self.dialect.caps.partial_revokes {
            columns.push_str(", User_attributes->>'$.Restrictions'");
        }
        let filter = if mariadb_roles { " AND is_role = 'N'" } else { "" };
        let sql = format!("SELECT {columns} FROM mysql.user WHERE User IN ({}){filter}", placeholders(users.len()));
        let params = users.iter().map(|u| Value::from(*u)).collect();
        let rows = self.rows(&sql, params, "reading accounts from mysql.user").await?;
        let mut accounts = BTreeMap::new();
        for row in rows {
            let user = text(&row, 0);
            if !users.contains(&user.as_str()) {
                continue;
            }
            let plugin = Some(text(&row, 2)).filter(|p| !p.is_empty());
            let tls = TlsRequirement { ssl_type: SslType::parse(&text(&row, 3)), cipher: text(&row, 4), issuer: text(&row, 5), subject: text(&row, 6) };
            let mut next = 11;
            let mut default_roles = std::collections::BTreeSet::new();
            if mariadb_roles {
                let role = text(&row, next);
                if !role.is_empty() {
                    default_roles.insert(RoleRef { name: role, host: None });
                }
                next += 1;
            }
            let max_statement_time = self.dialect.caps.max_statement_time.then(|| text(&row, next));
            if self.dialect.caps.max_statement_time {
                next += 1;
            }
            let restrictions = if self.dialect.caps.partial_revokes {
                Some(text(&row, next)).filter(|r| !matches!(r.trim(), "" | "null" | "[]"))
            } else {
                None
            };
            let limits = ResourceLimits {
                max_queries_per_hour: number(&text(&row, 7)),
                max_updates_per_hour: number(&text(&row, 8)),
                max_connections_per_hour: number(&text(&row, 9)),
                max_user_connections: number(&text(&row, 10)),
                max_statement_time,
            };
            accounts.insert((user, text(&row, 1)), AccountSettings { plugin, tls, limits, default_roles, restrictions });
        }
        if self.dialect.caps.roles == RoleModel::MySql && !accounts.is_empty() {
            let sql = format!("SELECT USER, HOST, DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER IN ({})", placeholders(users.len()));
            let params = users.iter().map(|u| Value::from(*u)).collect();
            for row in self.rows(&sql, params, "reading default roles").await? {
                if let Some(settings) = accounts.get_mut(&(text(&row, 0), text(&row, 1))) {
                    settings.default_roles.insert(RoleRef { name: text(&row, 2), host: Some(text(&row, 3)) });
                }
            }
        }
        Ok(accounts)
    }

    /// The privileges (and with `Scope::Everything`, roles and proxy rights) of each account.
    /// Every requested account gets an entry, empty if it holds nothing.
    pub(crate) async fn grants_of(&mut self, accounts: &[AccountId], scope: Scope) -> Result<BTreeMap<AccountId, AccountGrants>, DbError> {
        let mut out: BTreeMap<AccountId, AccountGrants> = accounts.iter().map(|a| (a.clone(), AccountGrants::default())).collect();
        if accounts.is_empty() {
            return Ok(out);
        }
        // information_schema names grantees `'user'@'host'`, verbatim.
        let grantees: HashMap<String, AccountId> = accounts.iter().map(|(u, h)| (format!("'{u}'@'{h}'"), (u.clone(), h.clone()))).collect();
        let grantee_params = || grantees.keys().map(|g| Value::from(g.as_str())).collect::<Vec<_>>();
        let in_grantees = placeholders(grantees.len());
        let mut users: Vec<&str> = accounts.iter().map(|(u, _)| u.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let user_params = || users.iter().map(|u| Value::from(*u)).collect::<Vec<_>>();
        let in_users = placeholders(users.len());

        let sql = format!("SELECT GRANTEE, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE IN ({in_grantees})");
        for row in self.rows(&sql, grantee_params(), "reading global privileges").await? {
            if let Some(grants) = grantees.get(&text(&row, 0)).and_then(|id| out.get_mut(id)) {
                grants.add(ObjectKey::Global, &text(&row, 1), None, yes(&text(&row, 2)));
            }
        }
        if self.dialect.caps.global_grants_table {
            let sql = format!("SELECT USER, HOST, PRIV, WITH_GRANT_OPTION FROM mysql.global_grants WHERE USER IN ({in_users})");
            for row in self.rows(&sql, user_params(), "reading dynamic privileges").await? {
                if let Some(grants) = out.get_mut(&(text(&row, 0), text(&row, 1))) {
                    grants.add(ObjectKey::Global, &text(&row, 2), None, yes(&text(&row, 3)));
                }
            }
        }
        let sql = format!("SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE IN ({in_grantees})");
        for row in self.rows(&sql, grantee_params(), "reading database privileges").await? {
            if let Some(grants) = grantees.get(&text(&row, 0)).and_then(|id| out.get_mut(id)) {
                grants.add(ObjectKey::Database(text(&row, 1)), &text(&row, 2), None, yes(&text(&row, 3)));
            }
        }
        let sql = format!(
            "SELECT GRANTEE, TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE IN ({in_grantees})"
        );
        for row in self.rows(&sql, grantee_params(), "reading table privileges").await? {
            if let Some(grants) = grantees.get(&text(&row, 0)).and_then(|id| out.get_mut(id)) {
                let object = ObjectKey::Table { database: text(&row, 1), table: text(&row, 2) };
                grants.add(object, &text(&row, 3), None, yes(&text(&row, 4)));
            }
        }
        let sql = format!(
            "SELECT GRANTEE, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.COLUMN_PRIVILEGES WHERE GRANTEE IN ({in_grantees})"
        );
        for row in self.rows(&sql, grantee_params(), "reading column privileges").await? {
            if let Some(grants) = grantees.get(&text(&row, 0)).and_then(|id| out.get_mut(id)) {
                let object = ObjectKey::Table { database: text(&row, 1), table: text(&row, 2) };
                grants.add(object, &text(&row, 4), Some(&text(&row, 3)), yes(&text(&row, 5)));
            }
        }
        let sql = format!("SELECT User, Host, Db, Routine_name, Routine_type, Proc_priv FROM mysql.procs_priv WHERE User IN ({in_users})");
        for row in self.rows(&sql, user_params(), "reading routine privileges").await? {
            let Some(grants) = out.get_mut(&(text(&row, 0), text(&row, 1))) else { continue };
            let Some(kind) = RoutineKind::parse(&text(&row, 4)) else {
                return Err(DbError::new(ErrorClass::Internal, format!("unknown routine type {}", dbcreds_core::sanitize::for_log(&text(&row, 4)))));
            };
            let object = ObjectKey::Routine { kind, database: text(&row, 2), name: text(&row, 3) };
            let privileges = text(&row, 5);
            let grant_option = privileges.split(',').any(|p| p.trim().eq_ignore_ascii_case("Grant"));
            for privilege in privileges.split(',').map(str::trim).filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("Grant")) {
                grants.add(object.clone(), privilege, None, grant_option);
            }
            if grant_option {
                grants.add(object, "USAGE", None, true);
            }
        }
        if scope == Scope::Privileges {
            return Ok(out);
        }
        let sql = format!("SELECT User, Host, Proxied_user, Proxied_host, With_grant FROM mysql.proxies_priv WHERE User IN ({in_users})");
        for row in self.rows(&sql, user_params(), "reading proxy privileges").await? {
            if let Some(grants) = out.get_mut(&(text(&row, 0), text(&row, 1))) {
                grants.proxies.insert((text(&row, 2), text(&row, 3)), yes(&text(&row, 4)));
            }
        }
        match self.dialect.caps.roles {
            RoleModel::None => {}
            RoleModel::MySql => {
                let sql = format!("SELECT TO_USER, TO_HOST, FROM_USER, FROM_HOST, WITH_ADMIN_OPTION FROM mysql.role_edges WHERE TO_USER IN ({in_users})");
                for row in self.rows(&sql, user_params(), "reading role grants").await? {
                    if let Some(grants) = out.get_mut(&(text(&row, 0), text(&row, 1))) {
                        grants.roles.insert(RoleRef { name: text(&row, 2), host: Some(text(&row, 3)) }, yes(&text(&row, 4)));
                    }
                }
            }
            RoleModel::MariaDb => {
                let sql = format!("SELECT User, Host, Role, Admin_option FROM mysql.roles_mapping WHERE User IN ({in_users})");
                for row in self.rows(&sql, user_params(), "reading role grants").await? {
                    if let Some(grants) = out.get_mut(&(text(&row, 0), text(&row, 1))) {
                        grants.roles.insert(RoleRef { name: text(&row, 2), host: None }, yes(&text(&row, 3)));
                    }
                }
            }
        }
        Ok(out)
    }
}
