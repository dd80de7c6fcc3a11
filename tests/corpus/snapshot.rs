//! What a refused input must not change: the database's users, password hashes and grants, and
//! every version of every secret (its stages and value).

use crate::provisioner_support::Server;
use aws_sdk_secretsmanager::Client;
use std::collections::{BTreeMap, BTreeSet};

/// Every account (with its authentication, the password hash), privilege, role membership and
/// database, one line each (`what: row as JSON`): one query, so that a snapshot after every case
/// stays cheap, and a difference reads as the rows gone and come.
pub type DatabaseSnapshot = BTreeSet<String>;

/// MariaDB: the accounts with their authentication, and every privilege as information_schema
/// shows it (global, database, table, column), roles and proxies.
const MARIADB: &str = "\
SELECT CONCAT('account: ', JSON_OBJECT('user', User, 'host', Host, 'priv', Priv)) FROM mysql.global_priv \
UNION ALL SELECT CONCAT('global grant: ', JSON_OBJECT('grantee', GRANTEE, 'privilege', PRIVILEGE_TYPE, 'grantable', IS_GRANTABLE)) FROM information_schema.USER_PRIVILEGES \
UNION ALL SELECT CONCAT('database grant: ', JSON_OBJECT('grantee', GRANTEE, 'schema', TABLE_SCHEMA, 'privilege', PRIVILEGE_TYPE, 'grantable', IS_GRANTABLE)) FROM information_schema.SCHEMA_PRIVILEGES \
UNION ALL SELECT CONCAT('table grant: ', JSON_OBJECT('grantee', GRANTEE, 'schema', TABLE_SCHEMA, 'table', TABLE_NAME, 'privilege', PRIVILEGE_TYPE, 'grantable', IS_GRANTABLE)) FROM information_schema.TABLE_PRIVILEGES \
UNION ALL SELECT CONCAT('column grant: ', JSON_OBJECT('grantee', GRANTEE, 'schema', TABLE_SCHEMA, 'table', TABLE_NAME, 'column', COLUMN_NAME, 'privilege', PRIVILEGE_TYPE)) FROM information_schema.COLUMN_PRIVILEGES \
UNION ALL SELECT CONCAT('role: ', JSON_OBJECT('user', User, 'host', Host, 'role', Role, 'admin', Admin_option)) FROM mysql.roles_mapping \
UNION ALL SELECT CONCAT('proxy: ', JSON_OBJECT('user', User, 'host', Host, 'proxied', CONCAT(Proxied_user, '@', Proxied_host), 'grant', With_grant)) FROM mysql.proxies_priv \
UNION ALL SELECT CONCAT('database: ', SCHEMA_NAME) FROM information_schema.SCHEMATA";

/// PostgreSQL: the roles with their attributes and password hash, memberships, and the ACLs of
/// databases and schemas, default privileges, per-role settings.
const POSTGRES: &str = "\
SELECT 'role: ' || row_to_json(r)::text FROM (SELECT rolname, rolpassword, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolconnlimit, rolvaliduntil, rolbypassrls FROM pg_authid) r \
UNION ALL SELECT 'membership: ' || row_to_json(m)::text FROM (SELECT roleid::regrole::text AS role, member::regrole::text AS member, admin_option FROM pg_auth_members) m \
UNION ALL SELECT 'database: ' || row_to_json(d)::text FROM (SELECT datname, datdba::regrole::text AS owner, datacl::text AS acl FROM pg_database) d \
UNION ALL SELECT 'schema: ' || row_to_json(n)::text FROM (SELECT nspname, nspowner::regrole::text AS owner, nspacl::text AS acl FROM pg_namespace) n \
UNION ALL SELECT 'default privileges: ' || row_to_json(a)::text FROM (SELECT defaclrole::regrole::text AS role, defaclnamespace::regnamespace::text AS schema, defaclobjtype::text AS kind, defaclacl::text AS acl FROM pg_default_acl) a \
UNION ALL SELECT 'role setting: ' || row_to_json(s)::text FROM (SELECT setdatabase, setrole::regrole::text AS role, setconfig::text AS config FROM pg_db_role_setting) s";

pub async fn database(server: &Server) -> DatabaseSnapshot {
    let sql = match server {
        Server::MariaDb(_) => MARIADB,
        Server::Postgres { .. } => POSTGRES,
    };
    server.admin_rows(sql).await.into_iter().map(|row| row.into_iter().next().flatten().unwrap_or_default()).collect()
}

/// Panics with the rows gone and the rows new (password hashes are not secrets).
pub fn assert_unchanged_database(before: &DatabaseSnapshot, after: &DatabaseSnapshot, what: &str) {
    let gone: Vec<_> = before.difference(after).collect();
    let new: Vec<_> = after.difference(before).collect();
    assert!(gone.is_empty() && new.is_empty(), "{what}: the database changed:\nrows gone: {gone:#?}\nrows new: {new:#?}");
}

/// Secret ARN -> version id -> (sorted stages, value).
pub type SecretsSnapshot = BTreeMap<String, BTreeMap<String, (Vec<String>, Option<String>)>>;

/// Every secret in this moto, with every version.
pub async fn all_secrets(sm: &Client) -> SecretsSnapshot {
    let mut arns = Vec::new();
    let mut pages = sm.list_secrets().include_planned_deletion(true).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.expect("ListSecrets");
        arns.extend(page.secret_list.unwrap_or_default().into_iter().filter_map(|s| s.arn));
    }
    secrets(sm, &arns).await
}

/// These secrets, with every version.
pub async fn secrets(sm: &Client, arns: &[String]) -> SecretsSnapshot {
    let mut snapshot = BTreeMap::new();
    for arn in arns {
        let described = sm.describe_secret().secret_id(arn).send().await.expect("DescribeSecret");
        let mut versions = BTreeMap::new();
        for (version, mut stages) in described.version_ids_to_stages.unwrap_or_default() {
            stages.sort();
            let value = sm.get_secret_value().secret_id(arn).version_id(&version).send().await.ok().and_then(|v| v.secret_string);
            versions.insert(version, (stages, value));
        }
        snapshot.insert(arn.clone(), versions);
    }
    snapshot
}

/// Panics naming what differs, never a secret value: a value is only reported as changed.
pub fn assert_unchanged_secrets(before: &SecretsSnapshot, after: &SecretsSnapshot, what: &str) {
    let mut differences = Vec::new();
    for (arn, versions) in before {
        let Some(now) = after.get(arn) else {
            differences.push(format!("{arn} disappeared"));
            continue;
        };
        for (version, (stages, value)) in versions {
            match now.get(version) {
                None => differences.push(format!("{arn}: version {version} disappeared")),
                Some((now_stages, now_value)) => {
                    if now_stages != stages {
                        differences.push(format!("{arn}: version {version} stages {stages:?} -> {now_stages:?}"));
                    }
                    if now_value != value {
                        differences.push(format!("{arn}: version {version}'s value changed"));
                    }
                }
            }
        }
        for (version, (stages, _)) in now.iter().filter(|(v, _)| !versions.contains_key(*v)) {
            differences.push(format!("{arn}: a new version {version} with stages {stages:?}"));
        }
    }
    for arn in after.keys().filter(|arn| !before.contains_key(*arn)) {
        differences.push(format!("a new secret {arn}"));
    }
    assert!(differences.is_empty(), "{what}: the secrets changed:\n{}", differences.join("\n"));
}
