//! What an account holds, as data, and the statements that turn one holding into another.
//!
//! The adapter reads privileges from the server's structured catalog (information_schema
//! privilege tables, `mysql.procs_priv`, `mysql.proxies_priv`, the role tables and `mysql.user`)
//! into [`AccountGrants`] and [`AccountSettings`], never by splitting `SHOW GRANTS` text.
//! information_schema lists every privilege on its own row (`ALL PRIVILEGES` comes back expanded
//! for the server's version), which makes a set difference exact: [`plan_grants`] issues a
//! GRANT for what is missing and a REVOKE for what is extra, object by object, so the cost is
//! proportional to what changed and an account in use never loses a privilege it keeps.

use crate::error::DbError;
use crate::mysql::sql::{Account, Dialect, PrivilegeItem, Statement};
use crate::privileges::GrantChange;
use dbcreds_core::ErrorClass;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoutineKind {
    Procedure,
    Function,
    /// MariaDB `sql_mode=ORACLE` packages.
    Package,
    PackageBody,
}

impl RoutineKind {
    pub fn keyword(self) -> &'static str {
        match self {
            RoutineKind::Procedure => "PROCEDURE",
            RoutineKind::Function => "FUNCTION",
            RoutineKind::Package => "PACKAGE",
            RoutineKind::PackageBody => "PACKAGE BODY",
        }
    }

    /// `mysql.procs_priv.Routine_type`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PROCEDURE" => Some(RoutineKind::Procedure),
            "FUNCTION" => Some(RoutineKind::Function),
            "PACKAGE" => Some(RoutineKind::Package),
            "PACKAGE BODY" => Some(RoutineKind::PackageBody),
            _ => None,
        }
    }
}

/// What a privilege is granted on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKey {
    /// `*.*`
    Global,
    /// `db.*`, the name exactly as stored (a LIKE pattern: `app\_db` and `app_db` differ).
    Database(String),
    Table { database: String, table: String },
    Routine { kind: RoutineKind, database: String, name: String },
}

impl ObjectKey {
    /// The database this object lives in (`None` for global grants). For database-level grants
    /// this is the stored pattern.
    pub fn database(&self) -> Option<&str> {
        match self {
            ObjectKey::Global => None,
            ObjectKey::Database(db) | ObjectKey::Table { database: db, .. } | ObjectKey::Routine { database: db, .. } => Some(db),
        }
    }
}

/// The privileges held on one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectPrivileges {
    /// Object-level privilege names, upper case (`SELECT`, `CREATE TEMPORARY TABLES`).
    pub privileges: BTreeSet<String>,
    /// Column privileges (tables only): privilege name to the columns it covers.
    pub columns: BTreeMap<String, BTreeSet<String>>,
    /// `WITH GRANT OPTION` on this object.
    pub grant_option: bool,
}

impl ObjectPrivileges {
    pub fn is_empty(&self) -> bool {
        self.privileges.is_empty() && self.columns.values().all(BTreeSet::is_empty) && !self.grant_option
    }
}

/// A role: `'name'@'host'` on MySQL, a host-less name on MariaDB.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleRef {
    pub name: String,
    pub host: Option<String>,
}

/// The privileges, roles and proxy rights of one account (`user@host`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountGrants {
    pub objects: BTreeMap<ObjectKey, ObjectPrivileges>,
    /// Granted roles, with whether the admin option comes with them.
    pub roles: BTreeMap<RoleRef, bool>,
    /// Proxied accounts `(user, host)`, with whether the grant option comes with them.
    pub proxies: BTreeMap<(String, String), bool>,
}

impl AccountGrants {
    /// Adds one privilege row read from the catalog.
    pub fn add(&mut self, object: ObjectKey, privilege: &str, column: Option<&str>, grantable: bool) {
        let entry = self.objects.entry(object).or_default();
        let privilege = privilege.trim().to_ascii_uppercase();
        // USAGE means "no privilege": it only carries the grant option.
        if privilege != "USAGE" && !privilege.is_empty() {
            match column {
                Some(column) => {
                    entry.columns.entry(privilege).or_default().insert(column.to_owned());
                }
                None => {
                    entry.privileges.insert(privilege);
                }
            }
        }
        entry.grant_option |= grantable;
    }

    /// Only the grants that live in `database`: database-level rows whose stored name is the
    /// exact-match `pattern` or the bare name (a wildcard pattern that also covers it), and
    /// table, column and routine grants inside it.
    pub fn within_database(&self, database: &str, pattern: &str) -> AccountGrants {
        let objects = self
            .objects
            .iter()
            .filter(|(key, _)| match key {
                ObjectKey::Global => false,
                ObjectKey::Database(stored) => stored == pattern || stored == database,
                ObjectKey::Table { database: db, .. } | ObjectKey::Routine { database: db, .. } => db == database,
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        AccountGrants { objects, ..Default::default() }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslType {
    #[default]
    None,
    /// `REQUIRE SSL`
    Any,
    X509,
    /// `REQUIRE ISSUER/SUBJECT/CIPHER ...`
    Specified,
}

impl SslType {
    /// `mysql.user.ssl_type`: '', 'ANY', 'X509', 'SPECIFIED'.
    pub fn parse(text: &str) -> Self {
        match text.trim().to_ascii_uppercase().as_str() {
            "ANY" => SslType::Any,
            "X509" => SslType::X509,
            "SPECIFIED" => SslType::Specified,
            _ => SslType::None,
        }
    }
}

/// An account's TLS requirement (`REQUIRE ...`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsRequirement {
    pub ssl_type: SslType,
    pub cipher: String,
    pub issuer: String,
    pub subject: String,
}

/// An account's resource limits (`WITH MAX_...`); zero means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    pub max_queries_per_hour: u64,
    pub max_updates_per_hour: u64,
    pub max_connections_per_hour: u64,
    /// Signed: MariaDB stores -1 for "no connections at all".
    pub max_user_connections: i64,
    /// MariaDB only, seconds as the server prints them (`0.000000`).
    pub max_statement_time: Option<String>,
}

/// Account-level settings that are not privileges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountSettings {
    pub plugin: Option<String>,
    pub tls: TlsRequirement,
    pub limits: ResourceLimits,
    pub default_roles: BTreeSet<RoleRef>,
    /// MySQL 8 partial revokes (`User_attributes->>'$.Restrictions'`, JSON), when any.
    pub restrictions: Option<String>,
}

/// The statements of a grant sync: grants run before revokes.
#[derive(Debug, Default)]
pub struct Plan {
    pub grants: Vec<Planned>,
    pub revokes: Vec<Planned>,
}

impl Plan {
    pub fn into_statements(self) -> Vec<Planned> {
        let mut all = self.grants;
        all.extend(self.revokes);
        all
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.revokes.is_empty()
    }
}

/// One statement to run and what it changes, for the caller's report.
#[derive(Debug)]
pub struct Planned {
    pub statement: Statement,
    pub change: GrantChange,
    /// A GRANT on a table or routine, which the server refuses if the object was dropped
    /// (its old grants survive it); the executor may skip it then.
    pub on_existing_object: bool,
}

impl Planned {
    fn granted(statement: Statement) -> Self {
        let change = GrantChange::Granted(statement.redacted().to_owned());
        Self { statement, change, on_existing_object: false }
    }

    fn granted_on(statement: Statement, object: &ObjectKey) -> Self {
        let on_existing_object = matches!(object, ObjectKey::Table { .. } | ObjectKey::Routine { .. });
        Self { on_existing_object, ..Self::granted(statement) }
    }

    fn revoked(statement: Statement) -> Self {
        let change = GrantChange::Revoked(statement.redacted().to_owned());
        Self { statement, change, on_existing_object: false }
    }

    pub fn altered(statement: Statement) -> Self {
        let change = GrantChange::Altered(statement.redacted().to_owned());
        Self { statement, change, on_existing_object: false }
    }
}

/// The statements that make `account` hold exactly `want`, given it holds `have`.
///
/// Grants and revokes come apart so the caller can run every grant first (then default roles,
/// which may name a role just granted), then every revoke: an account in use never passes
/// through a state with less than what old and new have in common. Nothing is revoked and
/// re-granted wholesale.
pub fn plan_grants(dialect: &Dialect, account: Account<'_>, want: &AccountGrants, have: &AccountGrants) -> Result<Plan, DbError> {
    let mut grants = Vec::new();
    let mut revokes = Vec::new();
    let empty = ObjectPrivileges::default();
    let keys: BTreeSet<&ObjectKey> = want.objects.keys().chain(have.objects.keys()).collect();
    for key in keys {
        let w = want.objects.get(key).unwrap_or(&empty);
        let h = have.objects.get(key).unwrap_or(&empty);
        let to_grant = difference(w, h);
        let add_option = w.grant_option && !h.grant_option;
        if !to_grant.is_empty() || add_option {
            let items = if to_grant.is_empty() {
                // Only the grant option is missing: re-grant a privilege already held (or USAGE)
                // with it, which adds the option and nothing else.
                vec![PrivilegeItem::object(w.privileges.iter().next().cloned().unwrap_or_else(|| "USAGE".into()))]
            } else {
                to_grant
            };
            grants.push(Planned::granted_on(dialect.grant(key, &items, account, add_option)?, key));
        }
        let to_revoke = difference(h, w);
        if !to_revoke.is_empty() {
            revokes.push(Planned::revoked(dialect.revoke(key, &to_revoke, account)?));
        }
        if h.grant_option && !w.grant_option {
            revokes.push(Planned::revoked(dialect.revoke_grant_option(key, account)?));
        }
    }
    for (role, &admin) in &want.roles {
        match have.roles.get(role) {
            Some(&had_admin) if had_admin == admin => {}
            Some(&true) => {
                // The admin option must go but the role stays.
                if dialect.caps.roles == crate::mysql::flavor::RoleModel::MariaDb {
                    revokes.push(Planned::revoked(dialect.revoke_role_admin_option(role, account)?));
                } else {
                    revokes.push(Planned::revoked(dialect.revoke_role(role, account)?));
                    revokes.push(Planned::granted(dialect.grant_role(role, account, false)?));
                }
            }
            _ => grants.push(Planned::granted(dialect.grant_role(role, account, admin)?)),
        }
    }
    for role in have.roles.keys().filter(|r| !want.roles.contains_key(*r)) {
        revokes.push(Planned::revoked(dialect.revoke_role(role, account)?));
    }
    for ((user, host), &option) in &want.proxies {
        let proxied = Account { user, host };
        match have.proxies.get(&(user.clone(), host.clone())) {
            Some(&had) if had == option => {}
            Some(&true) => {
                revokes.push(Planned::revoked(dialect.revoke_proxy(proxied, account)?));
                revokes.push(Planned::granted(dialect.grant_proxy(proxied, account, false)?));
            }
            _ => grants.push(Planned::granted(dialect.grant_proxy(proxied, account, option)?)),
        }
    }
    for (user, host) in have.proxies.keys().filter(|k| !want.proxies.contains_key(*k)) {
        revokes.push(Planned::revoked(dialect.revoke_proxy(Account { user, host }, account)?));
    }
    Ok(Plan { grants, revokes })
}

/// `SET DEFAULT ROLE` when the default roles differ. Run after the roles are granted.
pub fn plan_default_roles(dialect: &Dialect, account: Account<'_>, want: &BTreeSet<RoleRef>, have: &BTreeSet<RoleRef>) -> Result<Option<Planned>, DbError> {
    if want == have {
        return Ok(None);
    }
    if dialect.caps.roles == crate::mysql::flavor::RoleModel::MariaDb && want.len() > 1 {
        return Err(DbError::new(ErrorClass::Internal, "MariaDB accounts have at most one default role"));
    }
    let roles: Vec<RoleRef> = want.iter().cloned().collect();
    Ok(Some(Planned::altered(dialect.set_default_roles(account, &roles)?)))
}

/// The privilege items in `a` and not in `b` (object privileges, then column privileges).
fn difference(a: &ObjectPrivileges, b: &ObjectPrivileges) -> Vec<PrivilegeItem> {
    let mut items: Vec<PrivilegeItem> = a.privileges.difference(&b.privileges).map(|p| PrivilegeItem::object(p.clone())).collect();
    for (privilege, columns) in &a.columns {
        let missing: Vec<String> = match b.columns.get(privilege) {
            Some(held) => columns.difference(held).cloned().collect(),
            None => columns.iter().cloned().collect(),
        };
        if !missing.is_empty() {
            items.push(PrivilegeItem { privilege: privilege.clone(), columns: missing });
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::flavor::Capabilities;
    use crate::mysql::sql::SqlMode;
    use crate::server::{Flavor, ServerInfo};

    fn dialect(flavor: Flavor, version: (u32, u32, u32)) -> Dialect {
        Dialect::new(Capabilities::of(&ServerInfo { flavor, version, version_string: String::new() }), SqlMode::default())
    }

    const CLONE: Account<'static> = Account { user: "app_clone", host: "%" };

    fn db(name: &str) -> ObjectKey {
        ObjectKey::Database(name.into())
    }

    fn table(t: &str) -> ObjectKey {
        ObjectKey::Table { database: "app".into(), table: t.into() }
    }

    fn sql(plan: &Plan) -> Vec<String> {
        plan.grants.iter().chain(&plan.revokes).map(|p| p.statement.sql().to_owned()).collect()
    }

    #[test]
    fn identical_holdings_need_nothing() {
        let mut g = AccountGrants::default();
        g.add(db("app"), "SELECT", None, true);
        g.add(table("t"), "UPDATE", Some("a"), false);
        g.roles.insert(RoleRef { name: "r".into(), host: None }, false);
        assert!(plan_grants(&dialect(Flavor::MariaDb, (10, 11, 0)), CLONE, &g, &g.clone()).unwrap().is_empty());
    }

    #[test]
    fn missing_privileges_are_granted_extra_ones_revoked_and_grants_come_first() {
        let mut want = AccountGrants::default();
        want.add(db("app"), "SELECT", None, false);
        want.add(db("app"), "INSERT", None, false);
        want.add(table("t"), "SELECT", Some("b"), false);
        want.add(table("t"), "UPDATE", Some("a"), false);
        let mut have = AccountGrants::default();
        have.add(db("app"), "SELECT", None, false);
        have.add(db("app"), "DELETE", None, false);
        have.add(table("t"), "UPDATE", Some("a"), false);
        have.add(table("t"), "UPDATE", Some("z"), false);
        have.add(table("old"), "DELETE", None, false);
        let plan = plan_grants(&dialect(Flavor::MySql, (8, 0, 39)), CLONE, &want, &have).unwrap();
        assert_eq!(
            sql(&plan),
            vec![
                "GRANT INSERT ON `app`.* TO 'app_clone'@'%'",
                "GRANT SELECT (`b`) ON `app`.`t` TO 'app_clone'@'%'",
                "REVOKE DELETE ON `app`.* FROM 'app_clone'@'%'",
                "REVOKE DELETE ON `app`.`old` FROM 'app_clone'@'%'",
                "REVOKE UPDATE (`z`) ON `app`.`t` FROM 'app_clone'@'%'",
            ]
        );
        assert!(matches!(plan.grants[0].change, GrantChange::Granted(_)));
        assert!(matches!(plan.revokes[2].change, GrantChange::Revoked(_)));
    }

    #[test]
    fn grant_option_is_added_and_removed_on_its_own() {
        let d = dialect(Flavor::MariaDb, (10, 11, 0));
        let mut want = AccountGrants::default();
        want.add(db("app"), "SELECT", None, true);
        let mut have = AccountGrants::default();
        have.add(db("app"), "SELECT", None, false);
        assert_eq!(sql(&plan_grants(&d, CLONE, &want, &have).unwrap()), vec!["GRANT SELECT ON `app`.* TO 'app_clone'@'%' WITH GRANT OPTION"]);
        assert_eq!(sql(&plan_grants(&d, CLONE, &have, &want).unwrap()), vec!["REVOKE GRANT OPTION ON `app`.* FROM 'app_clone'@'%'"]);
        // A global USAGE row carrying only the grant option.
        let mut want = AccountGrants::default();
        want.add(ObjectKey::Global, "USAGE", None, true);
        assert_eq!(sql(&plan_grants(&d, CLONE, &want, &AccountGrants::default()).unwrap()), vec!["GRANT USAGE ON *.* TO 'app_clone'@'%' WITH GRANT OPTION"]);
    }

    #[test]
    fn roles_and_proxies_are_diffed_too() {
        let d = dialect(Flavor::MariaDb, (10, 11, 0));
        let reader = RoleRef { name: "reader".into(), host: None };
        let writer = RoleRef { name: "writer".into(), host: None };
        let mut want = AccountGrants::default();
        want.roles.insert(reader.clone(), false);
        want.proxies.insert(("p".into(), "%".into()), false);
        let mut have = AccountGrants::default();
        have.roles.insert(reader.clone(), true);
        have.roles.insert(writer, false);
        assert_eq!(
            sql(&plan_grants(&d, CLONE, &want, &have).unwrap()),
            vec![
                "GRANT PROXY ON 'p'@'%' TO 'app_clone'@'%'",
                "REVOKE ADMIN OPTION FOR `reader` FROM 'app_clone'@'%'",
                "REVOKE `writer` FROM 'app_clone'@'%'",
            ]
        );
        let defaults: BTreeSet<RoleRef> = [reader].into_iter().collect();
        let planned = plan_default_roles(&d, CLONE, &defaults, &BTreeSet::new()).unwrap().unwrap();
        assert_eq!(planned.statement.sql(), "SET DEFAULT ROLE `reader` FOR 'app_clone'@'%'");
        assert!(plan_default_roles(&d, CLONE, &defaults, &defaults).unwrap().is_none());
    }

    #[test]
    fn cost_is_proportional_to_the_change() {
        let d = dialect(Flavor::MySql, (8, 0, 39));
        let mut have = AccountGrants::default();
        for i in 0..1000 {
            have.add(table(&format!("t{i}")), "SELECT", None, false);
        }
        let mut want = have.clone();
        want.add(table("t1000"), "SELECT", None, false);
        want.objects.remove(&table("t7"));
        let plan = plan_grants(&d, CLONE, &want, &have).unwrap();
        assert_eq!(sql(&plan), vec!["GRANT SELECT ON `app`.`t1000` TO 'app_clone'@'%'", "REVOKE SELECT ON `app`.`t7` FROM 'app_clone'@'%'"]);
    }

    #[test]
    fn within_database_keeps_only_that_database() {
        let mut g = AccountGrants::default();
        g.add(ObjectKey::Global, "PROCESS", None, false);
        g.add(db(r"app\_db"), "SELECT", None, false);
        g.add(db("app_db"), "INSERT", None, false);
        g.add(db("other"), "SELECT", None, false);
        g.add(ObjectKey::Table { database: "app_db".into(), table: "t".into() }, "DELETE", None, false);
        g.add(ObjectKey::Table { database: "other".into(), table: "t".into() }, "DELETE", None, false);
        let only = g.within_database("app_db", r"app\_db");
        let keys: Vec<&ObjectKey> = only.objects.keys().collect();
        assert_eq!(keys, vec![&db(r"app\_db"), &db("app_db"), &ObjectKey::Table { database: "app_db".into(), table: "t".into() }]);
    }
}
