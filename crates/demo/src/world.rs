//! The demo's world: a throwaway MariaDB and PostgreSQL with TLS from a CA generated on the spot,
//! moto for Secrets Manager, STS and RDS, and the Lambda functions run from target/debug behind
//! the Lambda Runtime API emulator, their JSON logs collected under target/demo/.

use crate::secrets::Secrets;
use dbcreds_core::{SecretDocument, SecretString};
use dbcreds_db::TrustStore;
use dbcreds_testenv::{Invocation, LambdaFunction, MariaDb, Moto, Postgres, ServerOptions, StartTimings, rds_master};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One of the two database servers, with its RDS-shaped master login.
pub struct Database {
    server: Server,
    master_user: String,
    master_password: SecretString,
}

enum Server {
    MariaDb(MariaDb),
    Postgres(Postgres),
}

impl Database {
    /// MariaDB: `root`@`%`, every privilege and GRANT OPTION, as an RDS MySQL master.
    async fn mariadb() -> Database {
        let server = MariaDb::start(ServerOptions::new().require_tls(true)).await;
        let (master_user, master_password) = (server.admin_user().to_owned(), SecretString::from(server.admin_password()));
        Database { server: Server::MariaDb(server), master_user, master_password }
    }

    /// PostgreSQL: `master` with LOGIN CREATEDB CREATEROLE, not a superuser, as on RDS.
    async fn postgres() -> Database {
        let server = Postgres::start(ServerOptions::new().require_tls(true)).await;
        let password = SecretString::new(rds_master::create_postgres_master(&server).await);
        Database { server: Server::Postgres(server), master_user: rds_master::POSTGRES_MASTER.to_owned(), master_password: password }
    }

    /// For people: "MariaDB", "PostgreSQL".
    pub fn name(&self) -> &'static str {
        match self.server {
            Server::MariaDb(_) => "MariaDB",
            Server::Postgres(_) => "PostgreSQL",
        }
    }

    /// The `engine` of its secrets.
    pub fn engine(&self) -> &'static str {
        match self.server {
            Server::MariaDb(_) => "mariadb",
            Server::Postgres(_) => "postgres",
        }
    }

    pub fn column(&self) -> crate::narrator::Column {
        match self.server {
            Server::MariaDb(_) => crate::narrator::Column::MariaDb,
            Server::Postgres(_) => crate::narrator::Column::Postgres,
        }
    }

    pub fn host(&self) -> &str {
        match &self.server {
            Server::MariaDb(db) => db.host(),
            Server::Postgres(db) => db.host(),
        }
    }

    pub fn port(&self) -> u16 {
        match &self.server {
            Server::MariaDb(db) => db.port(),
            Server::Postgres(db) => db.port(),
        }
    }

    pub fn ca_pem(&self) -> &[u8] {
        match &self.server {
            Server::MariaDb(db) => db.ca_pem(),
            Server::Postgres(db) => db.ca_pem(),
        }
    }

    /// The demo CA, as the functions' `DB_CA_BUNDLE`.
    pub fn ca_pem_path(&self) -> &Path {
        match &self.server {
            Server::MariaDb(db) => db.ca_pem_path(),
            Server::Postgres(db) => db.ca_pem_path(),
        }
    }

    /// A CA the server's certificate does not chain to.
    pub fn unrelated_ca_pem_path(&self) -> &Path {
        match &self.server {
            Server::MariaDb(db) => db.unrelated_ca_pem_path(),
            Server::Postgres(db) => db.unrelated_ca_pem_path(),
        }
    }

    pub fn start_timings(&self) -> StartTimings {
        match &self.server {
            Server::MariaDb(db) => db.start_timings(),
            Server::Postgres(db) => db.start_timings(),
        }
    }

    pub fn master_password(&self) -> &SecretString {
        &self.master_password
    }

    /// The master secret in AWS's full RDS JSON.
    pub fn master_document(&self) -> Result<SecretDocument, String> {
        let document = rds_master::master_secret_document(self.engine(), self.host(), self.port(), &self.master_user, self.master_password.expose());
        let Value::Object(fields) = document else { unreachable!("the master secret document is an object") };
        SecretDocument::from_map(fields).map_err(|err| format!("the master secret document: {err}"))
    }

    /// The server's version, as the admin sees it.
    pub async fn version(&self) -> String {
        let rows = match &self.server {
            Server::MariaDb(db) => db.try_admin_query_strings("SELECT VERSION()").await,
            Server::Postgres(db) => db.try_admin_query_strings("SHOW server_version").await,
        };
        match rows {
            Ok(rows) => rows.first().and_then(|row| row.first().cloned().flatten()).unwrap_or_default(),
            Err(problem) => format!("unknown ({problem})"),
        }
    }
}

/// Everything the demo runs against.
pub struct World {
    pub databases: Vec<Database>,
    pub moto: Moto,
    pub secrets: Secrets,
    /// The demo CA (the servers' certificates chain to it), for the demo's own logins.
    pub trust: Arc<TrustStore>,
    pub logs: FunctionLogs,
}

impl World {
    pub async fn start(log_dir: PathBuf) -> Result<World, String> {
        let (mariadb, postgres, moto) = tokio::join!(Database::mariadb(), Database::postgres(), Moto::start());
        let trust = Arc::new(TrustStore::from_pem(mariadb.ca_pem()).map_err(|err| format!("the demo CA: {err}"))?);
        let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await));
        for database in [&mariadb, &postgres] {
            secrets.remember(database.master_password());
        }
        Ok(World { databases: vec![mariadb, postgres], moto, secrets, trust, logs: FunctionLogs::new(log_dir)? })
    }

    /// A function from target/debug with moto as every AWS endpoint, the database's CA as
    /// `DB_CA_BUNDLE`, and `extra` on top.
    pub async fn function(&self, binary: &str, database: &Database, extra: &[(&str, &str)]) -> Function<'_> {
        let mut env = self.moto.env();
        env.push(("DB_CA_BUNDLE".into(), database.ca_pem_path().display().to_string()));
        env.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        Function { inner: LambdaFunction::start(binary, env).await, logs: &self.logs }
    }
}

/// A Lambda function whose whole log goes to target/demo/<name>.log when the demo is done with it.
pub struct Function<'a> {
    inner: LambdaFunction,
    logs: &'a FunctionLogs,
}

impl Function<'_> {
    pub async fn invoke(&mut self, event: Value, timeout: Duration) -> Invocation {
        let invocation = self.inner.invoke(event, timeout).await;
        self.logs.remember_output(self.inner.name(), &format!("{:?}", invocation.outcome));
        invocation
    }
}

impl Drop for Function<'_> {
    fn drop(&mut self) {
        self.logs.append(self.inner.name(), &self.inner.logs());
    }
}

/// target/demo/: one JSON-lines file per function, appended to by every instance of it; and
/// every answer of a function, for the leak check.
pub struct FunctionLogs {
    dir: PathBuf,
    /// (function, answer)
    outputs: std::sync::Mutex<Vec<(String, String)>>,
}

/// Something a function produced: (where, which function, the text).
pub struct Output {
    pub origin: String,
    pub function: &'static str,
    pub text: String,
}

impl FunctionLogs {
    /// Empties the files a previous run left.
    fn new(dir: PathBuf) -> Result<FunctionLogs, String> {
        std::fs::create_dir_all(&dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        for name in crate::FUNCTIONS {
            let path = dir.join(format!("{name}.log"));
            std::fs::write(&path, b"").map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        }
        Ok(FunctionLogs { dir, outputs: Default::default() })
    }

    /// The directory, relative to the current one when it is inside it (`target/demo`).
    pub fn dir(&self) -> PathBuf {
        let here = std::env::current_dir().unwrap_or_default();
        self.dir.strip_prefix(&here).map(Path::to_path_buf).unwrap_or_else(|_| self.dir.clone())
    }

    /// A function's log file, for people (relative, as `dir`).
    pub fn path(&self, function: &str) -> PathBuf {
        self.dir().join(format!("{function}.log"))
    }

    fn file(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.log"))
    }

    fn append(&self, function: &str, text: &str) {
        let path = self.file(function);
        let written = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(err) = written {
            eprintln!("demo: cannot write {}: {err}", path.display());
        }
    }

    /// Something a function answered (a response, an error, a PUT body).
    pub fn remember_output(&self, function: &str, text: &str) {
        self.outputs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((function.to_owned(), text.to_owned()));
    }

    /// Every answer, then every log file's contents.
    pub fn everything(&self) -> Vec<Output> {
        let mut all = Vec::new();
        for name in crate::FUNCTIONS {
            for (function, text) in self.outputs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
                if function == name {
                    all.push(Output { origin: format!("an answer of {name}"), function: name, text: text.clone() });
                }
            }
            all.push(Output { origin: self.path(name).display().to_string(), function: name, text: std::fs::read_to_string(self.file(name)).unwrap_or_default() });
        }
        all
    }
}
