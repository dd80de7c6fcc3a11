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

/// A database instance created in moto's RDS with `ManageMasterUserPassword`, as RDS makes one:
/// the instance, and a master secret (`{username, password}` only) tagged with its owner.
pub struct ManagedInstance {
    pub instance_arn: String,
    pub secret_arn: String,
    /// The endpoint RDS reports (moto's made-up name).
    pub host: String,
    pub port: u16,
}

/// Creates `id` in moto's RDS with an RDS-managed master secret. `port` is the engine's default
/// when `None`.
pub async fn create_managed_instance(rds: &aws_sdk_rds::Client, id: &str, engine: &str, master_username: &str, port: Option<u16>) -> ManagedInstance {
    let instance = rds
        .create_db_instance()
        .db_instance_identifier(id)
        .engine(engine)
        .set_port(port.map(i32::from))
        .db_instance_class("db.t4g.micro")
        .allocated_storage(20)
        .master_username(master_username)
        .manage_master_user_password(true)
        .send()
        .await
        .expect("CreateDBInstance on moto")
        .db_instance
        .expect("moto returns the instance");
    let endpoint = instance.endpoint.expect("moto reports an endpoint");
    ManagedInstance {
        instance_arn: instance.db_instance_arn.expect("an instance ARN"),
        secret_arn: instance.master_user_secret.and_then(|s| s.secret_arn).expect("moto creates the master secret"),
        host: endpoint.address.expect("an endpoint address"),
        port: endpoint.port.and_then(|p| u16::try_from(p).ok()).expect("an endpoint port"),
    }
}
