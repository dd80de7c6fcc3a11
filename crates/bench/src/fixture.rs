//! The world a benchmark runs in: moto behind the AWS call counter, database servers behind
//! connection-counting TCP proxies, and the release binaries.
//!
//! The functions reach AWS and the databases only through the proxies, so every call and every
//! connection they make is counted outside them. The benchmark's own set-up (seeding secrets,
//! emulating RotateSecret, creating users and grants) goes to moto and the servers directly and
//! is never counted.

use aws_sdk_secretsmanager::Client;
use dbcreds_testenv::faults::{AwsCallCounter, AwsCalls, TcpFaultProxy};
use dbcreds_testenv::{LambdaFunction, MariaDb, Moto, Postgres, ServerOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// moto, the call counter in front of it, and a client for the benchmark's own set-up.
pub struct Aws {
    pub moto: Moto,
    pub counter: AwsCallCounter,
    pub sm: Client,
}

impl Aws {
    pub async fn start() -> Aws {
        let moto = Moto::start().await;
        let counter = AwsCallCounter::start(&moto.endpoint()).await;
        let sm = Client::new(&moto.sdk_config().await);
        Aws { moto, counter, sm }
    }

    /// What a function gets: moto's environment with every endpoint on the counter.
    pub fn function_env(&self) -> Vec<(String, String)> {
        self.counter.env(self.moto.env())
    }

    pub fn calls(&self) -> AwsCalls {
        self.counter.calls()
    }

    pub async fn create_secret(&self, document: &Value) -> String {
        let name = unique("bench");
        let out = self.sm.create_secret().name(name).secret_string(document.to_string()).send().await.expect("CreateSecret on moto");
        out.arn.expect("CreateSecret returns an ARN")
    }

    /// What RotateSecret does before it calls the function (testenv's emulation on moto).
    pub async fn start_rotation(&self, arn: &str, token: &str) {
        dbcreds_testenv::moto_rotation::start_rotation(&self.sm, arn, token).await.unwrap_or_else(|problem| panic!("starting a rotation on moto: {problem}"));
    }

    pub async fn current_value(&self, arn: &str) -> Value {
        let out = self.sm.get_secret_value().secret_id(arn).send().await.expect("GetSecretValue on moto");
        serde_json::from_str(&out.secret_string.expect("a SecretString")).expect("a JSON secret")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    MariaDb,
    Postgres,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::MariaDb, EngineKind::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::MariaDb => "mariadb",
            EngineKind::Postgres => "postgres",
        }
    }
}

enum Server {
    MariaDb(MariaDb),
    Postgres(Postgres),
}

/// A throwaway server (TLS verified, not required) with a counting proxy in front.
pub struct Database {
    server: Server,
    pub proxy: TcpFaultProxy,
    /// The application's database, created at start.
    pub dbname: &'static str,
}

pub const APP_DATABASE: &str = "appdb";

impl Database {
    pub async fn start(kind: EngineKind) -> Database {
        let server = match kind {
            EngineKind::MariaDb => Server::MariaDb(MariaDb::start(ServerOptions::new()).await),
            EngineKind::Postgres => Server::Postgres(Postgres::start(ServerOptions::new()).await),
        };
        let port = match &server {
            Server::MariaDb(db) => db.port(),
            Server::Postgres(db) => db.port(),
        };
        let proxy = TcpFaultProxy::start(port).await;
        let database = Database { server, proxy, dbname: APP_DATABASE };
        database.admin(&format!("CREATE DATABASE {APP_DATABASE}")).await;
        database
    }

    pub fn kind(&self) -> EngineKind {
        match self.server {
            Server::MariaDb(_) => EngineKind::MariaDb,
            Server::Postgres(_) => EngineKind::Postgres,
        }
    }

    pub fn ca_pem_path(&self) -> PathBuf {
        match &self.server {
            Server::MariaDb(db) => db.ca_pem_path().to_path_buf(),
            Server::Postgres(db) => db.ca_pem_path().to_path_buf(),
        }
    }

    /// Connections the functions opened through the proxy so far.
    pub fn connections(&self) -> u64 {
        self.proxy.connections()
    }

    /// SQL as the server's admin (several statements allowed), not through the proxy.
    pub async fn admin(&self, sql: &str) {
        match &self.server {
            Server::MariaDb(db) => db.admin_exec(sql).await,
            Server::Postgres(db) => db.admin_exec(sql).await,
        }
    }

    /// SQL as the admin in the application's database (PostgreSQL grants on its schema).
    pub async fn admin_in_app_database(&self, sql: &str) {
        match &self.server {
            Server::MariaDb(db) => db.admin_exec(&format!("USE {APP_DATABASE}; {sql}")).await,
            Server::Postgres(db) => {
                db.query_as_admin_in(APP_DATABASE, sql).await.unwrap_or_else(|err| panic!("admin SQL in {APP_DATABASE}: {err}"));
            }
        }
    }

    /// A login document as AWS's RDS secrets are shaped, pointing at the proxy.
    pub fn document(&self, username: &str, password: &str) -> Value {
        json!({"engine": self.kind().name(), "host": "localhost", "port": self.proxy.port(), "username": username, "password": password, "dbname": APP_DATABASE})
    }

    /// The admin as a master secret (MariaDB's root with every privilege; PostgreSQL's superuser).
    pub fn master_document(&self) -> Value {
        match &self.server {
            Server::MariaDb(db) => self.document(db.admin_user(), db.admin_password()),
            Server::Postgres(db) => self.document(db.admin_user(), db.admin_password()),
        }
    }

    /// A login user with a password, able to connect to the application's database.
    pub async fn create_login(&self, username: &str, password: &str) {
        match self.kind() {
            EngineKind::MariaDb => self.admin(&format!("CREATE USER '{username}'@'%' IDENTIFIED BY '{password}'; GRANT SELECT ON {APP_DATABASE}.* TO '{username}'@'%'")).await,
            EngineKind::Postgres => {
                self.admin(&format!("CREATE ROLE {username} LOGIN PASSWORD '{password}'; GRANT CONNECT ON DATABASE {APP_DATABASE} TO {username}")).await;
                self.admin_in_app_database(&format!("GRANT USAGE ON SCHEMA public TO {username}")).await;
            }
        }
    }
}

/// The directory of the release binaries and the functions started from it.
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn check(dir: &Path) -> Result<Binaries, String> {
        for name in FUNCTIONS {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(format!("{} is missing: build the release binaries first (scripts/bench does: cargo build --release -p rotator -p provisioner -p connection-test)", path.display()));
            }
        }
        Ok(Binaries { dir: dir.to_path_buf() })
    }

    pub async fn start(&self, name: &str, env: Vec<(String, String)>) -> LambdaFunction {
        LambdaFunction::start_binary(name, self.path(name), env).await
    }
}

pub const FUNCTIONS: [&str; 3] = ["rotator", "provisioner", "connection-test"];

/// A name unique in this process.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
