//! TLS downgrades (issue 7), through every function's real binary: a server that offers no TLS,
//! a certificate for another name, and a certificate from a CA the function does not trust make
//! the rotator (both strategies, setSecret and testSecret), the provisioner (a Create) and the
//! connection test (secret mode) refuse, with the TLS error class, before anything is logged in;
//! only a secret that says `"ssl": false` gets plaintext, and then it works.
//!
//! The proof is the server's own log (`dbcreds_testenv::session_log`: PostgreSQL's
//! log_connections + log_statement with the session id, MariaDB's general log with each
//! connection's transport), not the client's word: a refused function left no login and no
//! statement on the server, every session that ran password DDL over verified TLS came in over
//! TLS, and with `"ssl": false` the same log shows the plaintext sessions it allowed (so the log
//! can tell the two apart).
//!
//! The servers offer TLS without requiring it (testenv's default), so a function that fell back
//! to plaintext would be let in: only the function's own refusal keeps the password off the wire.
//! (The IAM mode of the connection test has the same three cases in `connection_test_tls.rs`.)

mod provisioner_support;

use dbcreds_testenv::session_log::{ServerSession, Transport};
use dbcreds_testenv::{Invocation, LambdaFunction, MariaDb, Moto, Outcome, Postgres, ServerOptions, TlsMode, moto_rotation, rds_master};
use provisioner_support::{Harness, Server, password_user, properties, unique};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
const USER: &str = "tls_app";

/// How a server fails verify-full.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    /// The server speaks plaintext only.
    NoTls,
    /// A certificate from the trusted CA, for `wrong.example` only.
    WrongName,
    /// A good certificate, from a CA the function does not trust.
    UntrustedCa,
}

impl Flaw {
    fn class(self) -> &'static str {
        match self {
            Flaw::NoTls => "tls_unavailable",
            Flaw::WrongName | Flaw::UntrustedCa => "tls_verification",
        }
    }
}

/// A server logging every session. PostgreSQL gets an RDS-shaped master unless testenv cannot
/// log in to make one (a certificate for another name): nobody logs in there anyway.
async fn start_server(engine: &str, tls: TlsMode) -> Server {
    let options = ServerOptions::new().tls(tls).log_sessions(true);
    match engine {
        "mariadb" => Server::MariaDb(MariaDb::start(options).await),
        _ => {
            let server = Postgres::start(options).await;
            let master_password = match tls {
                TlsMode::WrongName => "no-login-ever-reaches-this-server".to_owned(),
                _ => rds_master::create_postgres_master(&server).await,
            };
            Server::Postgres { server, master_password }
        }
    }
}

fn sessions(server: &Server) -> Vec<ServerSession> {
    match server {
        Server::MariaDb(db) => db.sessions(),
        Server::Postgres { server, .. } => server.sessions(),
    }
}

/// The sessions of `after` that are new since `before`, or ran more statements since.
fn new_activity(before: &[ServerSession], after: Vec<ServerSession>) -> Vec<ServerSession> {
    let seen: BTreeMap<&str, usize> = before.iter().map(|s| (s.id.as_str(), s.statements.len())).collect();
    after.into_iter().filter(|s| seen.get(s.id.as_str()).is_none_or(|count| s.statements.len() > *count)).collect()
}

/// The application user, made by the master as on RDS (where testenv can log in).
async fn create_user(server: &Server, password: &str) {
    match server {
        // root is the master, and testenv's admin connection also works without TLS.
        Server::MariaDb(db) => db.admin_exec(&format!("CREATE USER '{USER}'@'%' IDENTIFIED BY '{password}'")).await,
        // testenv's login as the master, which also works without TLS.
        Server::Postgres { server: db, master_password } => {
            db.query_as(rds_master::POSTGRES_MASTER, master_password, "postgres", &format!("CREATE ROLE {USER} LOGIN PASSWORD '{password}'")).await.unwrap_or_else(|err| panic!("creating {USER}: {err}"));
        }
    }
}

/// The four functions, trusting the CA at `ca_path`.
struct Functions {
    single: LambdaFunction,
    alternating: LambdaFunction,
    provisioner: LambdaFunction,
    connection_test: LambdaFunction,
}

impl Functions {
    async fn start(moto: &Moto, ca_path: &Path) -> Functions {
        let env = |extra: &[(&str, &str)]| {
            let mut env = moto.env();
            env.push(("DB_CA_BUNDLE".into(), ca_path.display().to_string()));
            env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            env
        };
        Functions {
            single: LambdaFunction::start("rotator", env(&[("ROTATION_STRATEGY", "single-user")])).await,
            alternating: LambdaFunction::start("rotator", env(&[("ROTATION_STRATEGY", "alternating-users")])).await,
            provisioner: LambdaFunction::start("provisioner", env(&[])).await,
            connection_test: LambdaFunction::start("connection-test", env(&[("AUTH_MODE", "secret")])).await,
        }
    }
}

/// A secret's versions: id -> (stages, value).
async fn versions(harness: &Harness, arn: &str) -> BTreeMap<String, (Vec<String>, Option<String>)> {
    let stages = moto_rotation::version_stages(&harness.sm, arn).await.unwrap_or_else(|p| panic!("{p}"));
    let mut out = BTreeMap::new();
    for (version, stages) in stages {
        let value = harness.sm.get_secret_value().secret_id(arn).version_id(&version).send().await.ok().and_then(|v| v.secret_string);
        out.insert(version, (stages, value));
    }
    out
}

async fn step(function: &mut LambdaFunction, step: &str, arn: &str, token: &str) -> Invocation {
    function.invoke(json!({"Step": step, "SecretId": arn, "ClientRequestToken": token}), TIMEOUT).await
}

/// The user's secret (with the master for alternating users), `ssl` as given.
fn user_document(server: &Server, password: &str, master_arn: &str, ssl: Option<bool>) -> Value {
    let mut document = json!({"engine": server.engine(), "host": server.host(), "port": server.port(), "username": USER, "password": password, "masterarn": master_arn});
    if let Some(ssl) = ssl {
        document["ssl"] = json!(ssl);
    }
    document
}

fn master_document(server: &Server, ssl: Option<bool>) -> Value {
    let mut document = server.master_document();
    if let Some(ssl) = ssl {
        document["ssl"] = json!(ssl);
    }
    document
}

// ---------------------------------------------------------------------------------------------

/// Every function refuses `server` (flawed as `flaw`) when trusting `ca_path`, naming the TLS
/// problem, changing no secret, and the server saw no login and no statement.
async fn every_function_refuses(moto: &Moto, harness: &Harness, server: &Server, flaw: Flaw, ca_path: &Path) {
    let what = format!("{} with {flaw:?}", server.engine());
    let class = flaw.class();
    let mut functions = Functions::start(moto, ca_path).await;
    let master_arn = harness.create_secret(&master_document(server, None)).await;
    let password = format!("Tls-App-{}-Pw!", unique("x").replace('-', ""));
    let document = user_document(server, &password, &master_arn, None);
    let before = sessions(server);

    for (function, strategy) in [(&mut functions.single, "single-user"), (&mut functions.alternating, "alternating-users")] {
        let arn = harness.create_secret(&document).await;
        let token = moto_rotation::new_token();
        moto_rotation::start_rotation(&harness.sm, &arn, &token).await.unwrap_or_else(|p| panic!("{p}"));
        step(function, "createSecret", &arn, &token).await.expect_ok();
        let unchanged = versions(harness, &arn).await;
        for name in ["setSecret", "testSecret"] {
            let invocation = step(function, name, &arn, &token).await;
            match &invocation.outcome {
                Outcome::Err { error_type, error_message } => {
                    assert_eq!(error_type, &format!("dbcreds.{class}"), "{what}, rotator {strategy} {name}: {error_message}");
                    if flaw == Flaw::NoTls {
                        assert!(error_message.contains("ssl"), "{what}, rotator {strategy} {name}: the error says how to allow plaintext: {error_message}");
                    }
                }
                other => panic!("{what}, rotator {strategy} {name}: must refuse, got {other:?}\n{}", invocation.logs),
            }
        }
        assert_eq!(versions(harness, &arn).await, unchanged, "{what}, rotator {strategy}: the secret changed");
    }

    let (user_secret, _) = harness.user_secret("tls_new_user").await;
    let (event, name) = harness.event("Create", &properties(&master_arn, "tlsdb", vec![password_user(&user_secret, json!("readonly"))]), None, None);
    let answer = harness.deliver(&mut functions.provisioner, event, &name, TIMEOUT).await;
    answer.expect_failed(&[]);
    let reason = answer.reason().to_lowercase();
    assert!(reason.contains("tls") || reason.contains("certificate"), "{what}, provisioner: the reason names the TLS problem: {reason}");

    let arn = harness.create_secret(&document).await;
    let response = functions.connection_test.invoke(json!({"DB_SECRET_ARN": arn}), TIMEOUT).await.expect_ok();
    let failure = &response["diagnostics"]["failure"];
    assert_eq!((failure["phase"].as_str(), failure["class"].as_str()), (Some("tls"), Some(class)), "{what}, connection test: {response}");

    // The server's view: connections may have arrived (and been dropped at the TLS step), but
    // none logged in and none ran a statement.
    for session in new_activity(&before, sessions(server)) {
        assert!(session.user.is_none() && session.statements.is_empty(), "{what}: a refused function reached the server: {session:?}");
    }
}

/// Full rotations (both strategies), a provisioner Create and a connection test against
/// `server` with `ssl` in both secrets, trusting the server's CA. Returns the server's sessions
/// that ran password DDL meanwhile (checked not to be none).
async fn everything_works(moto: &Moto, harness: &Harness, server: &Server, ssl: Option<bool>) -> Vec<ServerSession> {
    let what = format!("{} with ssl {ssl:?}", server.engine());
    let mut functions = Functions::start(moto, &server.ca_pem_path()).await;
    let password = format!("Tls-App-{}-Pw!", unique("x").replace('-', ""));
    harness.hide(&password);
    create_user(server, &password).await;
    let master_arn = harness.create_secret(&master_document(server, ssl)).await;
    let arn = harness.create_secret(&user_document(server, &password, &master_arn, ssl)).await;
    let before = sessions(server);

    for (function, strategy) in [(&mut functions.single, "single-user"), (&mut functions.alternating, "alternating-users")] {
        let token = moto_rotation::new_token();
        moto_rotation::start_rotation(&harness.sm, &arn, &token).await.unwrap_or_else(|p| panic!("{p}"));
        for name in STEPS {
            let invocation = step(function, name, &arn, &token).await;
            assert!(matches!(invocation.outcome, Outcome::Ok(_)), "{what}, rotator {strategy} {name}: {:?}\n{}", invocation.outcome, invocation.logs);
        }
    }

    let (user_secret, _) = harness.user_secret("tls_new_user").await;
    if ssl == Some(false) {
        let mut document = harness.current(&user_secret).await;
        document["ssl"] = json!(false);
        harness.sm.put_secret_value().secret_id(&user_secret).secret_string(document.to_string()).send().await.expect("PutSecretValue");
    }
    let (event, name) = harness.event("Create", &properties(&master_arn, "tlsdb", vec![password_user(&user_secret, json!("readonly"))]), None, None);
    harness.deliver(&mut functions.provisioner, event, &name, TIMEOUT).await.expect_success();

    let response = functions.connection_test.invoke(json!({"DB_SECRET_ARN": arn}), TIMEOUT).await.expect_ok();
    assert_eq!(response["statusCode"], 200, "{what}, connection test: {response}");
    assert_eq!(response["diagnostics"]["tls"]["certificate_verified"], ssl != Some(false), "{what}, connection test: {response}");

    let ddl: Vec<ServerSession> = new_activity(&before, sessions(server)).into_iter().filter(|s| s.password_statements().next().is_some()).collect();
    // Single user: the user's own password; alternating: the clone's, made and set by the
    // master; the provisioner: the new user's.
    assert!(ddl.len() >= 3, "{what}: the server logged {} sessions with password DDL, expected one per function at least: {ddl:?}", ddl.len());
    ddl
}

async fn tls_downgrades_are_refused_and_plaintext_is_only_what_the_secret_allows(engine: &str) {
    let moto = Moto::start().await;
    let harness = Harness::sharing(&moto).await;
    let (plain, wrong_name, verified) = tokio::join!(start_server(engine, TlsMode::Off), start_server(engine, TlsMode::WrongName), start_server(engine, TlsMode::Verified));

    every_function_refuses(&moto, &harness, &plain, Flaw::NoTls, &plain.ca_pem_path()).await;
    every_function_refuses(&moto, &harness, &wrong_name, Flaw::WrongName, &wrong_name.ca_pem_path()).await;
    let unrelated_ca = match &verified {
        Server::MariaDb(db) => db.unrelated_ca_pem_path().to_path_buf(),
        Server::Postgres { server, .. } => server.unrelated_ca_pem_path().to_path_buf(),
    };
    every_function_refuses(&moto, &harness, &verified, Flaw::UntrustedCa, &unrelated_ca).await;

    // Verified TLS: every session that set a password came in over TLS, as the server saw it.
    for session in everything_works(&moto, &harness, &verified, None).await {
        assert_eq!(session.transport, Transport::Tls, "{engine}: password DDL outside TLS: {session:?}");
    }
    // "ssl": false, the operator's explicit choice: the same work in plaintext, and the server's
    // log shows it as plaintext (the log tells the two apart).
    for session in everything_works(&moto, &harness, &plain, Some(false)).await {
        assert_eq!(session.transport, Transport::Plaintext, "{engine}: {session:?}");
    }
}

#[tokio::test]
async fn mariadb_tls_downgrades_are_refused_by_every_function() {
    tls_downgrades_are_refused_and_plaintext_is_only_what_the_secret_allows("mariadb").await;
}

#[tokio::test]
async fn postgres_tls_downgrades_are_refused_by_every_function() {
    tls_downgrades_are_refused_and_plaintext_is_only_what_the_secret_allows("postgres").await;
}

