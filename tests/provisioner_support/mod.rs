//! Shared by `tests/provisioner_*.rs`: the real `provisioner` binary behind the Lambda Runtime API
//! emulator, moto for Secrets Manager, a real database server with verified TLS, and the
//! `ResponseURL` served by a loopback recorder, driven the way CloudFormation drives a custom
//! resource.
//!
//! Every invocation goes through [`Harness::send`], which checks the protocol on every path:
//! exactly one PUT to that request's URL, an empty Content-Type, a body of at most 4096 bytes,
//! the ids echoed back, a Reason on FAILED, and no secret anywhere in the body or the logs.
#![allow(dead_code)] // each test file uses its own subset

use aws_sdk_secretsmanager::Client;
use dbcreds_custom_resource::recorder::{RecordedRequest, ResponseRecorder};
use dbcreds_testenv::{Invocation, LambdaFunction, MariaDb, Moto, Postgres, ServerOptions, rds_master};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const BINARY: &str = "provisioner";
/// The template's function timeout.
pub const TIMEOUT: Duration = Duration::from_secs(120);
pub const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/dbcreds-e2e/6c3b1a20-0000-11ef-8000-0a1b2c3d4e5f";
pub const LOGICAL_ID: &str = "DatabaseUsers";

// ---------------------------------------------------------------------------------------------
// The database server

/// A MariaDB or PostgreSQL server, with a master login shaped like RDS's.
pub enum Server {
    /// The master is `root`@`%` with every privilege and GRANT OPTION (as an RDS MySQL master).
    MariaDb(MariaDb),
    /// The master is `master`: LOGIN CREATEDB CREATEROLE, not a superuser (as an RDS PostgreSQL
    /// master), administering `rds_iam` (which the test creates, as RDS has it).
    Postgres { server: Postgres, master_password: String },
}

/// The error of a statement, with the server's code: `1142`, `42501`, ...
#[derive(Debug)]
pub struct SqlError {
    pub code: String,
    pub message: String,
}

pub const MASTER_PG: &str = rds_master::POSTGRES_MASTER;

impl Server {
    pub async fn mariadb() -> Server {
        Server::MariaDb(MariaDb::start(ServerOptions::new()).await)
    }

    pub async fn postgres() -> Server {
        let server = Postgres::start(ServerOptions::new()).await;
        let master_password = rds_master::create_postgres_master(&server).await;
        Server::Postgres { server, master_password }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Server::MariaDb(_) => "mariadb",
            Server::Postgres { .. } => "postgres",
        }
    }

    pub fn host(&self) -> &str {
        match self {
            Server::MariaDb(db) => db.host(),
            Server::Postgres { server, .. } => server.host(),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Server::MariaDb(db) => db.port(),
            Server::Postgres { server, .. } => server.port(),
        }
    }

    pub fn ca_pem(&self) -> &[u8] {
        match self {
            Server::MariaDb(db) => db.ca_pem(),
            Server::Postgres { server, .. } => server.ca_pem(),
        }
    }

    pub fn ca_pem_path(&self) -> PathBuf {
        match self {
            Server::MariaDb(db) => db.ca_pem_path().to_path_buf(),
            Server::Postgres { server, .. } => server.ca_pem_path().to_path_buf(),
        }
    }

    pub fn master_username(&self) -> &str {
        match self {
            Server::MariaDb(db) => db.admin_user(),
            Server::Postgres { .. } => MASTER_PG,
        }
    }

    pub fn master_password(&self) -> &str {
        match self {
            Server::MariaDb(db) => db.admin_password(),
            Server::Postgres { master_password, .. } => master_password,
        }
    }

    /// The master secret in AWS's full JSON form.
    pub fn master_document(&self) -> Value {
        rds_master::master_secret_document(self.engine(), self.host(), self.port(), self.master_username(), self.master_password())
    }

    /// The master secret as RDS manages it: only username and password.
    pub fn managed_master_document(&self) -> Value {
        json!({"username": self.master_username(), "password": self.master_password()})
    }

    /// Runs SQL as the master in `database` (PostgreSQL: as the non-superuser master, so the
    /// objects are owned as the application's DDL would own them).
    pub async fn as_master(&self, database: &str, sql: &str) {
        if let Err(err) = self.run_as(self.master_username(), self.master_password(), database, sql).await {
            panic!("as master in {database}: {sql}: {err:?}");
        }
    }

    /// Runs SQL as the admin (root / postgres superuser) and returns the rows as text.
    pub async fn admin_rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Server::MariaDb(db) => db.admin_query_strings(sql).await,
            Server::Postgres { server, .. } => server.admin_query_strings(sql).await,
        }
    }

    /// As the admin in another database (PostgreSQL; MariaDB qualifies names instead).
    pub async fn admin_rows_in(&self, database: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Server::MariaDb(db) => db.admin_query_strings(&format!("USE `{database}`; {sql}")).await,
            Server::Postgres { server, .. } => server.query_as_admin_in(database, sql).await.unwrap_or_else(|err| panic!("admin query in {database}: {err}")),
        }
    }

    pub async fn user_exists(&self, user: &str) -> bool {
        let sql = match self {
            Server::MariaDb(_) => format!("SELECT COUNT(*) FROM mysql.user WHERE User = '{user}'"),
            Server::Postgres { .. } => format!("SELECT COUNT(*) FROM pg_roles WHERE rolname = '{user}'"),
        };
        self.admin_rows(&sql).await[0][0].as_deref() != Some("0")
    }

    pub async fn database_exists(&self, database: &str) -> bool {
        let sql = match self {
            Server::MariaDb(_) => format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{database}'"),
            Server::Postgres { .. } => format!("SELECT COUNT(*) FROM pg_database WHERE datname = '{database}'"),
        };
        self.admin_rows(&sql).await[0][0].as_deref() != Some("0")
    }

    /// Logs in as `user` to `database` over verified TLS and runs `sql` (several statements
    /// allowed). The error carries the server's code.
    pub async fn run_as(&self, user: &str, password: &str, database: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        match self {
            Server::MariaDb(db) => mysql_as(db, user, password, database, sql).await,
            Server::Postgres { server, .. } => postgres_as(server, user, password, database, sql).await,
        }
    }

    /// The statement must succeed.
    pub async fn allowed(&self, user: &str, password: &str, database: &str, sql: &str) {
        if let Err(err) = self.run_as(user, password, database, sql).await {
            panic!("{user} must be allowed to run `{sql}` in {database}, got {err:?}");
        }
    }

    /// The statement must be refused for lack of privilege (not fail for another reason).
    pub async fn denied(&self, user: &str, password: &str, database: &str, sql: &str) {
        match self.run_as(user, password, database, sql).await {
            Ok(_) => panic!("{user} must be refused `{sql}` in {database}, but it ran"),
            Err(err) => {
                let expected: &[&str] = match self {
                    // 1142 table command denied, 1044 database access denied, 1227 needs a privilege
                    Server::MariaDb(_) => &["1142", "1044", "1227", "1045"],
                    // insufficient_privilege
                    Server::Postgres { .. } => &["42501"],
                };
                assert!(expected.contains(&err.code.as_str()), "{user} running `{sql}` in {database} must fail for lack of privilege, got {err:?}");
            }
        }
    }

    /// The login itself must be refused (the user is gone or the password is wrong).
    pub async fn login_refused(&self, user: &str, password: &str, database: &str) {
        match self.run_as(user, password, database, "SELECT 1").await {
            Ok(_) => panic!("{user} must not log in to {database}"),
            Err(err) => {
                let expected: &[&str] = match self {
                    Server::MariaDb(_) => &["1045", "1044"],
                    // invalid_password, invalid_authorization_specification, insufficient_privilege (no CONNECT)
                    Server::Postgres { .. } => &["28P01", "28000", "42501"],
                };
                assert!(expected.contains(&err.code.as_str()), "{user} logging in to {database} must be refused, got {err:?}");
            }
        }
    }

    pub async fn stop(&mut self) {
        match self {
            Server::MariaDb(db) => db.stop().await,
            Server::Postgres { server, .. } => server.stop().await,
        }
    }

    pub async fn restart(&mut self) {
        match self {
            Server::MariaDb(db) => db.restart().await,
            Server::Postgres { server, .. } => server.restart().await,
        }
    }
}

async fn mysql_as(db: &MariaDb, user: &str, password: &str, database: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, SqlError> {
    use mysql_async::prelude::Queryable;
    dbcreds_testenv::tls_client::install_crypto_provider();
    let ssl = mysql_async::SslOpts::default().with_root_certs(vec![db.ca_pem().to_vec().into()]).with_disable_built_in_roots(true);
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(db.host())
        .tcp_port(db.port())
        .user(Some(user))
        .pass(Some(password))
        .db_name(Some(database))
        .prefer_socket(false)
        .ssl_opts(Some(ssl));
    let failed = |err: mysql_async::Error| match &err {
        mysql_async::Error::Server(server) => SqlError { code: server.code.to_string(), message: server.message.clone() },
        other => SqlError { code: "client".into(), message: other.to_string() },
    };
    let mut conn = mysql_async::Conn::new(opts).await.map_err(failed)?;
    let mut rows = Vec::new();
    let mut result = conn.query_iter(sql).await.map_err(failed)?;
    while !result.is_empty() {
        let set: Vec<mysql_async::Row> = result.collect().await.map_err(failed)?;
        rows.extend(set.into_iter().map(|row| row.unwrap().into_iter().map(|v| match v {
            mysql_async::Value::NULL => None,
            mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            other => Some(other.as_sql(true)),
        }).collect::<Vec<_>>()));
    }
    drop(result);
    let _ = conn.disconnect().await;
    Ok(rows)
}

async fn postgres_as(server: &Postgres, user: &str, password: &str, database: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, SqlError> {
    let tls = dbcreds_testenv::tls_client::trusting(server.ca_pem()).expect("the test CA");
    let mut config = tokio_postgres::Config::new();
    config
        .host(server.host())
        .port(server.port())
        .user(user)
        .password(password)
        .dbname(database)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(Duration::from_secs(10));
    let failed = |err: tokio_postgres::Error| SqlError { code: err.code().map(|c| c.code().to_owned()).unwrap_or_else(|| "client".into()), message: dbcreds_testenv::tls_client::error_chain(&err) };
    let (client, connection) = config.connect(tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone())).await.map_err(failed)?;
    let driver = tokio::spawn(connection);
    let messages = client.simple_query(sql).await.map_err(failed);
    drop(client);
    let _ = driver.await;
    let rows = messages?
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect();
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// moto, the function and the protocol

pub struct Harness {
    /// The moto this harness started (None when it shares another's).
    moto: Option<Moto>,
    moto_env: Vec<(String, String)>,
    pub sdk_config: aws_config::SdkConfig,
    pub sm: Client,
    pub recorder: ResponseRecorder,
    /// Every secret value written in this test (passwords above all): none may appear in a
    /// response body or a log line.
    secrets_to_hide: std::sync::Mutex<Vec<String>>,
}

/// What one invocation answered.
#[derive(Debug)]
pub struct Answer {
    /// The response body CloudFormation received.
    pub body: Value,
    pub put: RecordedRequest,
    pub invocation: Invocation,
}

impl Answer {
    pub fn status(&self) -> &str {
        self.body["Status"].as_str().unwrap_or_default()
    }

    pub fn physical_id(&self) -> String {
        self.body["PhysicalResourceId"].as_str().unwrap_or_default().to_owned()
    }

    pub fn reason(&self) -> &str {
        self.body["Reason"].as_str().unwrap_or_default()
    }

    pub fn data(&self, key: &str) -> &str {
        self.body["Data"][key].as_str().unwrap_or_default()
    }

    pub fn expect_success(&self) -> &Self {
        assert_eq!(self.status(), "SUCCESS", "reason: {}\nlogs:\n{}", self.reason(), self.invocation.logs);
        self
    }

    /// FAILED with a reason that contains every one of `words`.
    pub fn expect_failed(&self, words: &[&str]) -> &Self {
        assert_eq!(self.status(), "FAILED", "body: {}\nlogs:\n{}", self.body, self.invocation.logs);
        for word in words {
            assert!(self.reason().contains(word), "the reason must mention {word:?}: {}", self.reason());
        }
        self
    }
}

/// A name unique in this process (secrets, request ids).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}-{:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Harness {
    pub async fn new() -> Harness {
        let moto = Moto::start().await;
        let mut harness = Harness::sharing(&moto).await;
        harness.moto = Some(moto);
        harness
    }

    /// A harness on a moto someone else owns (the rotator's harness, in the rotation tests).
    pub async fn sharing(moto: &Moto) -> Harness {
        let sdk_config = moto.sdk_config().await;
        let sm = Client::new(&sdk_config);
        let recorder = ResponseRecorder::start(Vec::new()).await.expect("a loopback port for the ResponseURL");
        Harness { moto: None, moto_env: moto.env(), sdk_config, sm, recorder, secrets_to_hide: Default::default() }
    }

    /// A `provisioner` function: moto as every AWS endpoint, the server's CA as `DB_CA_BUNDLE`.
    pub async fn function(&self, server: &Server) -> LambdaFunction {
        self.function_from(server, dbcreds_testenv::binary_path(BINARY)).await
    }

    /// As `function`, from another build of the binary (a release build, for timings).
    pub async fn function_from(&self, server: &Server, binary: PathBuf) -> LambdaFunction {
        let mut env = self.moto_env.clone();
        env.push(("DB_CA_BUNDLE".into(), server.ca_pem_path().display().to_string()));
        LambdaFunction::start_binary(BINARY, binary, env).await
    }

    pub fn hide(&self, value: &str) {
        self.secrets_to_hide.lock().unwrap().push(value.to_owned());
    }

    pub async fn create_secret(&self, document: &Value) -> String {
        self.create_secret_tagged(document, &[]).await
    }

    pub async fn create_secret_tagged(&self, document: &Value, tags: &[(&str, &str)]) -> String {
        if let Some(password) = document["password"].as_str() {
            self.hide(password);
        }
        let tags: Vec<_> = tags.iter().map(|(k, v)| aws_sdk_secretsmanager::types::Tag::builder().key(*k).value(*v).build()).collect();
        let out = self.sm.create_secret().name(unique("secret")).secret_string(document.to_string()).set_tags(Some(tags)).send().await.expect("CreateSecret");
        out.arn.expect("an ARN")
    }

    /// A user's secret as `GenerateSecretString` makes it: username and a password with
    /// punctuation (the characters AWS's MySQL and PostgreSQL defaults allow).
    pub async fn user_secret(&self, username: &str) -> (String, String) {
        let password = format!("Pw{}!#$%^&*()-_=+[]{{}}<>.,;~", unique("x").replace('-', ""));
        let arn = self.create_secret(&json!({"username": username, "password": password})).await;
        (arn, password)
    }

    /// AWSCURRENT of a secret, parsed.
    pub async fn current(&self, arn: &str) -> Value {
        let out = self.sm.get_secret_value().secret_id(arn).send().await.expect("GetSecretValue");
        serde_json::from_str(&out.secret_string.expect("a string")).expect("JSON")
    }

    pub async fn version_count(&self, arn: &str) -> usize {
        let out = self.sm.describe_secret().secret_id(arn).send().await.expect("DescribeSecret");
        out.version_ids_to_stages.unwrap_or_default().len()
    }

    /// A CloudFormation request. `physical_id` for Update and Delete, `old` for Update.
    pub fn event(&self, kind: &str, properties: &Value, old: Option<&Value>, physical_id: Option<&str>) -> (Value, String) {
        let name = unique("response");
        let mut properties = properties.clone();
        properties["ServiceToken"] = json!("arn:aws:lambda:us-east-1:123456789012:function:provisioner");
        let mut event = json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provisioner",
            "ResponseURL": self.recorder.url(&name),
            "StackId": STACK_ID,
            "RequestId": unique("request"),
            "LogicalResourceId": LOGICAL_ID,
            "ResourceType": "Custom::DatabaseUsers",
            "ResourceProperties": properties,
        });
        if let Some(old) = old {
            let mut old = old.clone();
            old["ServiceToken"] = json!("arn:aws:lambda:us-east-1:123456789012:function:provisioner");
            event["OldResourceProperties"] = old;
        }
        if let Some(id) = physical_id {
            event["PhysicalResourceId"] = json!(id);
        }
        (event, name)
    }

    /// Delivers a request and checks the protocol on the answer.
    pub async fn send(&self, function: &mut LambdaFunction, kind: &str, properties: &Value, old: Option<&Value>, physical_id: Option<&str>) -> Answer {
        let (event, name) = self.event(kind, properties, old, physical_id);
        self.deliver(function, event, &name, TIMEOUT).await
    }

    /// Delivers an event as is (a duplicate, a malformed one) with the function's `timeout`.
    pub async fn deliver(&self, function: &mut LambdaFunction, event: Value, name: &str, timeout: Duration) -> Answer {
        let before = self.recorder.requests_for(name).len();
        let invocation = function.invoke(event.clone(), timeout).await;
        let puts = self.recorder.requests_for(name).split_off(before);
        assert_eq!(puts.len(), 1, "exactly one response per invocation, got {}: {puts:?}\noutcome: {:?}\nlogs:\n{}", puts.len(), invocation.outcome, invocation.logs);
        let put = puts.into_iter().next().unwrap();
        assert_eq!(put.method, "PUT");
        assert_eq!(put.header("content-type"), Some(""), "the Content-Type must be empty: {:?}", put.headers);
        assert!(put.body.len() <= 4096, "the body is {} bytes", put.body.len());
        let body = put.json();
        assert_eq!(body["StackId"], event["StackId"]);
        assert_eq!(body["RequestId"], event["RequestId"]);
        assert_eq!(body["LogicalResourceId"], event["LogicalResourceId"]);
        let id = body["PhysicalResourceId"].as_str().unwrap_or_default();
        assert!(!id.is_empty() && id.len() <= 1024, "a physical id is required: {body}");
        if body["Status"] == "FAILED" {
            assert!(!body["Reason"].as_str().unwrap_or_default().is_empty(), "FAILED needs a Reason: {body}");
        }
        if let Some(previous) = event["PhysicalResourceId"].as_str()
            && event["RequestType"] == "Delete"
        {
            assert_eq!(id, previous, "a Delete answers the id it was given");
        }
        let text = String::from_utf8_lossy(&put.body).into_owned();
        for secret in self.secrets_to_hide.lock().unwrap().iter() {
            assert!(!text.contains(secret.as_str()), "a secret leaked into the response: {text}");
            assert!(!invocation.logs.contains(secret.as_str()), "a secret leaked into the logs:\n{}", invocation.logs);
        }
        Answer { body, put, invocation }
    }
}

/// moto, the recorder, a `provisioner` function for `server`, and its master secret (full JSON).
pub async fn setup(server: &Server) -> (Harness, LambdaFunction, String) {
    let harness = Harness::new().await;
    let function = harness.function(server).await;
    let master_arn = harness.create_secret(&server.master_document()).await;
    (harness, function, master_arn)
}

/// The properties of a resource.
pub fn properties(master_arn: &str, database: &str, users: Vec<Value>) -> Value {
    json!({"MasterSecretArn": master_arn, "DatabaseName": database, "Users": users})
}

pub fn password_user(arn: &str, privileges: Value) -> Value {
    json!({"SecretArn": arn, "Privileges": privileges, "Authentication": "password"})
}

pub fn alternating_user(arn: &str, privileges: Value) -> Value {
    json!({"SecretArn": arn, "Privileges": privileges, "RotationStrategy": "alternating-users"})
}

pub fn iam_user(name: &str, privileges: Value) -> Value {
    json!({"Username": name, "Authentication": "iam", "Privileges": privileges})
}

/// Sets keys on a JSON object, for property variations.
pub fn with(mut value: Value, changes: &[(&str, Value)]) -> Value {
    let map: &mut Map<String, Value> = value.as_object_mut().expect("an object");
    for (key, change) in changes {
        map.insert((*key).to_owned(), change.clone());
    }
    value
}
