//! A master login shaped like an RDS master user, and its secret in AWS's JSON.
//!
//! - MariaDB: the server's admin, `root`@`%` with every privilege and GRANT OPTION, is already
//!   what an RDS MySQL master is.
//! - PostgreSQL: an RDS master is *not* a superuser. [`create_postgres_master`] makes one as RDS
//!   does: `master` with LOGIN CREATEDB CREATEROLE, administering `rds_iam` (which it creates,
//!   as RDS has it), so the provisioner and the rotator are exercised with the privileges they
//!   get in AWS rather than a superuser's.

use crate::Postgres;
use serde_json::{Value, json};

/// The PostgreSQL master's name.
pub const POSTGRES_MASTER: &str = "master";
/// The role RDS grants to IAM-authenticated PostgreSQL users.
pub const RDS_IAM_ROLE: &str = "rds_iam";

/// Creates `rds_iam` and the RDS-style master with a generated password (letters and digits),
/// and returns the password.
pub async fn create_postgres_master(server: &Postgres) -> String {
    let password = crate::random::alphanumeric(32);
    server
        .admin_exec(&format!(
            "CREATE ROLE {RDS_IAM_ROLE}; CREATE ROLE {POSTGRES_MASTER} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'; GRANT {RDS_IAM_ROLE} TO {POSTGRES_MASTER} WITH ADMIN OPTION"
        ))
        .await;
    password
}

/// The master secret in AWS's full JSON form (`engine`, `host`, `port`, `username`, `password`,
/// and `dbname` for PostgreSQL engines), as RDS documents it.
pub fn master_secret_document(engine: &str, host: &str, port: u16, username: &str, password: &str) -> Value {
    let mut document = json!({"engine": engine, "host": host, "port": port, "username": username, "password": password});
    if engine.contains("postgres") {
        document["dbname"] = json!(crate::postgres::ADMIN_DATABASE);
    }
    document
}
