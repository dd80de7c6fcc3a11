//! The PostgreSQL adapter against a real PostgreSQL (the machine's, 15 here), over verified TLS.
//!
//! Every test starts its own throwaway server (dbcreds-testenv) so tests share no state and
//! nextest runs them in parallel. Clients trust only the CA generated at test time
//! (`TrustStore::from_pem`). Checks of what the server holds go through the server's own admin
//! login or a plain driver connection, independent of the code under test.

mod common;

mod support {
    pub use super::common::{closed_port, printable_ascii, trust, verify_full_spec};
    use dbcreds_core::EngineFamily;
    use dbcreds_db::{AdminSession, ConnectSpec, DbError};
    pub use dbcreds_testenv::TlsMode;
    use dbcreds_testenv::{Postgres, ServerOptions};

    pub struct Server {
        pub inner: Postgres,
    }

    impl Server {
        pub async fn start(tls: TlsMode) -> Server {
            Server { inner: Postgres::start(ServerOptions::new().tls(tls)).await }
        }

        /// Verify-full TLS trusting only the test CA, 20 seconds to finish.
        pub fn spec(&self, user: &str, password: &str) -> ConnectSpec {
            verify_full_spec(EngineFamily::Postgres, self.inner.host(), self.inner.port(), self.inner.ca_pem(), user, password)
        }

        pub async fn connect_as(&self, user: &str, password: &str) -> Result<Box<dyn AdminSession>, DbError> {
            dbcreds_db::connect(&self.spec(user, password)).await
        }

        /// The superuser, through the adapter.
        pub async fn admin_session(&self) -> Box<dyn AdminSession> {
            self.connect_as(self.inner.admin_user(), self.inner.admin_password()).await.expect("the superuser logs in over verified TLS")
        }

        /// A master login like RDS's: CREATEROLE and CREATEDB, not a superuser.
        pub async fn rds_like_master(&self) -> Box<dyn AdminSession> {
            self.admin(&format!("CREATE ROLE master LOGIN CREATEROLE CREATEDB PASSWORD '{MASTER_PASSWORD}'")).await;
            self.connect_as("master", MASTER_PASSWORD).await.expect("the RDS-like master logs in")
        }

        /// SQL as the server's superuser, through testenv (not the code under test); NULL as "NULL".
        pub async fn admin(&self, sql: &str) -> Vec<Vec<String>> {
            self.admin_in("postgres", sql).await
        }

        pub async fn admin_in(&self, database: &str, sql: &str) -> Vec<Vec<String>> {
            self.inner
                .query_as_admin_in(database, sql)
                .await
                .unwrap_or_else(|e| panic!("admin SQL failed: {e}\n{sql}"))
                .into_iter()
                .map(|row| row.into_iter().map(|v| v.unwrap_or_else(|| "NULL".into())).collect())
                .collect()
        }

        pub async fn admin_value(&self, sql: &str) -> String {
            self.admin(sql).await.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or_else(|| panic!("no row: {sql}"))
        }

        /// Logs in as `user` with the driver directly (verify-full) and runs `sql` read-write.
        /// Returns the rows as text, or the SQLSTATE of the refusal.
        pub async fn user_query(&self, user: &str, password: &str, database: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
            let mut config = tokio_postgres::Config::new();
            config
                .host(self.inner.host())
                .port(self.inner.port())
                .user(user)
                .password(password)
                .dbname(database)
                .ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*trust(self.inner.ca_pem()).client_config()).clone());
            let (client, connection) = config.connect(tls).await.map_err(|e| e.as_db_error().map(|d| d.code().code().to_owned()).unwrap_or_else(|| e.to_string()))?;
            tokio::spawn(connection);
            let messages = client.simple_query(sql).await.map_err(|e| e.as_db_error().map(|d| d.code().code().to_owned()).unwrap_or_else(|| e.to_string()))?;
            Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
                    _ => None,
                })
                .collect())
        }

        /// Turns on `log_statement = all`, so the server log shows every statement it receives.
        pub async fn log_all_statements(&self) {
            self.admin("ALTER SYSTEM SET log_statement = 'all'").await;
            self.admin("SELECT pg_reload_conf()").await;
            // The reload is asynchronous: wait until a new session sees it.
            for _ in 0..50 {
                if self.admin_value("SHOW log_statement").await == "all" {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("log_statement did not become 'all'");
        }
    }

    pub const MASTER_PASSWORD: &str = "master-Pa55word";
}

use dbcreds_core::{ErrorClass, SecretString, TlsPolicy};
use dbcreds_db::postgres::scram::ScramVerifier;
use dbcreds_db::{AdminSession, Credential, Flavor, GrantChange, NewUserAuth, PrivilegePreset, PrivilegeSpec};
use std::time::Duration;
use support::{Server, TlsMode, closed_port, printable_ascii, trust};
use tokio::time::Instant;

async fn dbcreds_sessions(server: &Server) -> usize {
    server.admin_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbcreds'").await.parse().unwrap()
}

async fn wait_for_sessions(server: &Server, expected: usize) {
    for _ in 0..50 {
        if dbcreds_sessions(server).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {expected} dbcreds sessions, found {}", dbcreds_sessions(server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connects_over_verified_tls_detects_the_server_and_ends_its_connection() {
    let server = Server::start(TlsMode::Verified).await;
    let mut session = server.admin_session().await;
    let info = session.server().clone();
    assert_eq!(info.flavor, Flavor::Postgres, "{info:?}");
    assert!(info.at_least(11, 0, 0), "{info:?}");
    let version_num: u32 = server.admin_value("SHOW server_version_num").await.parse().unwrap();
    assert_eq!(info.version.0, version_num / 10_000, "{info:?}");
    assert!(info.version_string.starts_with("PostgreSQL"), "{info:?}");

    // The TLS version read off the handshake is the one the server negotiated for our backend.
    let transport = session.transport().clone();
    assert!(transport.certificate_verified);
    let server_side = server.admin_value("SELECT version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'dbcreds'").await;
    assert_eq!(transport.tls_version.as_deref(), Some(server_side.as_str()));

    let identity = session.identity().await.unwrap();
    assert_eq!(identity.current_user, "postgres");
    assert!(identity.server_version.starts_with("PostgreSQL"), "{identity:?}");

    // Dropping a session ends its connection; so does close().
    assert_eq!(dbcreds_sessions(&server).await, 1);
    drop(session);
    wait_for_sessions(&server, 0).await;
    let session = server.admin_session().await;
    assert_eq!(dbcreds_sessions(&server).await, 1);
    session.close().await;
    wait_for_sessions(&server, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_certificate_for_another_name_or_from_another_ca_is_refused() {
    let server = Server::start(TlsMode::WrongName).await;
    let err = server.connect_as(server.inner.admin_user(), server.inner.admin_password()).await.err().expect("a wrong-name certificate is refused");
    assert_eq!(err.class, ErrorClass::TlsVerification, "{err}");

    let good = Server::start(TlsMode::Verified).await;
    let mut spec = good.spec(good.inner.admin_user(), good.inner.admin_password());
    spec.trust = trust(good.inner.unrelated_ca_pem());
    let err = dbcreds_db::connect(&spec).await.err().expect("an untrusted CA is refused");
    assert_eq!(err.class, ErrorClass::TlsVerification, "{err}");
    assert!(!err.message.contains(good.inner.admin_password()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_without_tls_is_refused_unless_the_policy_is_disabled() {
    let server = Server::start(TlsMode::Off).await;
    let err = server.connect_as(server.inner.admin_user(), server.inner.admin_password()).await.err().expect("plaintext is refused");
    assert_eq!(err.class, ErrorClass::TlsUnavailable, "{err}");

    let mut spec = server.spec(server.inner.admin_user(), server.inner.admin_password());
    spec.tls = TlsPolicy::Disabled;
    let mut session = dbcreds_db::connect(&spec).await.expect("plaintext when the secret says ssl: false");
    assert_eq!(session.transport().tls_version, None);
    assert!(!session.transport().certificate_verified);
    assert_eq!(session.identity().await.unwrap().current_user, "postgres");

    // An IAM token is never sent in the clear: refused before any connection is made.
    spec.credential = Credential::IamToken("token".into());
    spec.port = closed_port();
    let err = dbcreds_db::connect(&spec).await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Input, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_login_failures_are_classified_by_layer_and_never_echo_the_password() {
    let server = Server::start(TlsMode::Verified).await;
    let wrong = "Wr0ng-password-that-must-not-leak";
    let err = server.connect_as(server.inner.admin_user(), wrong).await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");
    assert!(err.message.contains("28P01"), "{err}");
    assert!(!err.to_string().contains(wrong), "{err}");
    let err = server.connect_as("nobody_here", wrong).await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");

    let mut spec = server.spec("postgres", wrong);
    spec.port = closed_port();
    spec.host = "127.0.0.1".into();
    assert_eq!(dbcreds_db::connect(&spec).await.err().unwrap().class, ErrorClass::ConnectionRefused);

    let mut spec = server.spec("postgres", wrong);
    spec.host = "no-such-host.invalid".into();
    assert_eq!(dbcreds_db::connect(&spec).await.err().unwrap().class, ErrorClass::Dns);

    // A loopback listener whose accept queue is full drops new SYNs: a TCP connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(address)).await {
            fillers.push(stream);
        }
    }
    let mut spec = server.spec("postgres", wrong);
    spec.host = "127.0.0.1".into();
    spec.port = address.port();
    spec.deadline = Instant::now() + Duration::from_millis(1500);
    let err = dbcreds_db::connect(&spec).await.err().unwrap();
    assert_eq!(err.class, ErrorClass::TcpTimeout, "{err}");
    drop(fillers);
    drop(listener);

    // A server that accepts TCP and then says nothing: the deadline, named as such.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let mut spec = server.spec("postgres", wrong);
    spec.host = "127.0.0.1".into();
    spec.port = port;
    spec.deadline = Instant::now() + Duration::from_millis(800);
    let started = Instant::now();
    let err = dbcreds_db::connect(&spec).await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Deadline, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statements_are_bounded_by_the_deadline_and_a_lost_connection_is_classified() {
    let mut server = Server::start(TlsMode::Verified).await;
    let mut spec = server.spec(server.inner.admin_user(), server.inner.admin_password());
    spec.deadline = Instant::now() + Duration::from_secs(3);
    let mut session = dbcreds_db::connect(&spec).await.unwrap();
    let err = session.query_read_only("SELECT pg_sleep(30)").await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Deadline, "{err}");
    // The session is closed after a deadline, and the server cancels the statement itself.
    assert_eq!(session.identity().await.err().unwrap().class, ErrorClass::ConnectionLost);
    for _ in 0..50 {
        if server.admin_value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'").await == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.admin_value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'").await, "0");

    let mut session = server.admin_session().await;
    server.inner.kill();
    let err = session.identity().await.err().unwrap();
    assert_eq!(err.class, ErrorClass::ConnectionLost, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_query_read_only_returns_text_and_cannot_write() {
    let server = Server::start(TlsMode::Verified).await;
    server.admin("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t VALUES (1, 'one')").await;
    let mut session = server.admin_session().await;
    let rows = session
        .query_read_only("SELECT 42, true, NULL::int, 1.50::numeric, '{\"a\": 1}'::jsonb, '2024-01-02'::date, ARRAY[1,2], note FROM t")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![Some("42".into()), Some("t".into()), None, Some("1.50".into()), Some("{\"a\": 1}".into()), Some("2024-01-02".into()), Some("{1,2}".into()), Some("one".into())]]
    );
    let err = session.query_read_only("INSERT INTO t VALUES (2, 'two')").await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Sql, "{err}");
    assert!(err.message.contains("25006"), "{err}");
    // Two statements could COMMIT the read-only transaction and write after it: refused.
    let err = session.query_read_only("COMMIT; DELETE FROM t").await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Input, "{err}");
    assert!(session.query_read_only("   ").await.is_err());
    assert_eq!(server.admin_value("SELECT count(*) FROM t").await, "1");
    // The session is still usable, outside any transaction.
    assert_eq!(session.query_read_only("SELECT count(*) FROM t").await.unwrap(), vec![vec![Some("1".into())]]);
    assert_eq!(session.query_read_only("SELECT 1 -- a trailing comment").await.unwrap(), vec![vec![Some("1".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_users_and_databases_lifecycle_is_idempotent_and_drops_no_data() {
    let server = Server::start(TlsMode::Verified).await;
    let mut session = server.admin_session().await;
    assert!(session.create_database_if_missing("appdb").await.unwrap());
    assert!(!session.create_database_if_missing("appdb").await.unwrap());
    assert!(!session.user_exists("app").await.unwrap());
    let password = SecretString::from("first-Pa55");
    assert!(session.create_user("app", NewUserAuth::Password(&password)).await.unwrap());
    assert!(!session.create_user("app", NewUserAuth::Password(&SecretString::from("other"))).await.unwrap());
    assert!(session.user_exists("app").await.unwrap());
    // The existing user kept its password.
    server.user_query("app", "first-Pa55", "postgres", "SELECT 1").await.unwrap();

    // The user owns data in two databases; dropping it keeps the data.
    server.admin("GRANT CREATE ON SCHEMA public TO app").await;
    server.admin_in("appdb", "GRANT CREATE ON SCHEMA public TO app").await;
    server.user_query("app", "first-Pa55", "postgres", "CREATE TABLE kept_here AS SELECT 1 AS x").await.unwrap();
    server.user_query("app", "first-Pa55", "appdb", "CREATE TABLE kept_there AS SELECT 2 AS x").await.unwrap();
    assert!(session.drop_user("app").await.unwrap());
    assert!(!session.user_exists("app").await.unwrap());
    assert!(!session.drop_user("app").await.unwrap());
    assert_eq!(server.admin_value("SELECT tableowner FROM pg_tables WHERE tablename = 'kept_here'").await, "postgres");
    assert_eq!(server.admin_in("appdb", "SELECT tableowner || ':' || (SELECT x FROM kept_there) FROM pg_tables WHERE tablename = 'kept_there'").await[0][0], "postgres:2");
}

/// Two provisioners racing: each create is done once, the other call reports "already there".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_creates_are_tolerated() {
    let server = Server::start(TlsMode::Verified).await;
    let (mut a, mut b) = (server.admin_session().await, server.admin_session().await);
    let (x, y) = tokio::join!(a.create_database_if_missing("racy"), b.create_database_if_missing("racy"));
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|created| **created).count(), 1);
    let pw = SecretString::from("Pa55");
    let (x, y) = tokio::join!(a.create_user("racer", NewUserAuth::Password(&pw)), b.create_user("racer", NewUserAuth::Password(&pw)));
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|created| **created).count(), 1);
    let (x, y) = tokio::join!(a.drop_user("racer"), b.drop_user("racer"));
    assert!(x.is_ok() && y.is_ok(), "{x:?} {y:?}");
    assert!(!a.user_exists("racer").await.unwrap());
}

/// Failing password statements say what failed, never with the password or its verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_password_errors_never_echo_the_password_or_the_verifier() {
    let server = Server::start(TlsMode::Verified).await;
    let mut admin = server.admin_session().await;
    let secret = "Very-Secret-Pa55word";
    let pw = SecretString::from(secret);
    let err = admin.set_password("ghost", &pw).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Sql, "{err}");
    assert!(err.message.contains("ghost") && !err.message.contains(secret) && !err.message.contains("SCRAM"), "{err}");
    // A login without CREATEROLE: permission, named as such.
    admin.create_user("plain", NewUserAuth::Password(&SecretString::from("plain-Pa55"))).await.unwrap();
    let mut plain = server.connect_as("plain", "plain-Pa55").await.unwrap();
    let err = plain.create_user("newbie", NewUserAuth::Password(&pw)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permission, "{err}");
    assert!(!err.message.contains(secret) && !err.message.contains("SCRAM"), "{err}");
    let err = plain.set_password("postgres", &pw).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permission, "{err}");
    assert!(!format!("{err:?}").contains("SCRAM"), "{err:?}");
    // Passwords PostgreSQL clients cannot use are refused before anything is sent.
    for bad in [String::new(), "a\0b".to_string(), "x".repeat(1025)] {
        let err = admin.set_password("plain", &SecretString::from(bad)).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Input, "{err}");
    }
    server.user_query("plain", "plain-Pa55", "postgres", "SELECT 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rds_like_master_drops_users_it_does_not_own_objects_of() {
    let server = Server::start(TlsMode::Verified).await;
    let mut master = server.rds_like_master().await;
    assert!(master.create_database_if_missing("appdb").await.unwrap());
    assert!(master.create_user("app", NewUserAuth::Password(&SecretString::from("Pa55-app"))).await.unwrap());
    server.admin_in("appdb", "GRANT CREATE ON SCHEMA public TO app").await;
    server.user_query("app", "Pa55-app", "appdb", "CREATE TABLE owned AS SELECT 7 AS x").await.unwrap();
    assert!(master.drop_user("app").await.unwrap());
    assert_eq!(server.admin_in("appdb", "SELECT tableowner FROM pg_tables WHERE tablename = 'owned'").await[0][0], "master");
    // The borrowed membership went with the role.
    assert_eq!(server.admin_value("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = 'master'").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_iam_users_and_tokens() {
    let server = Server::start(TlsMode::Verified).await;
    let mut session = server.admin_session().await;
    let err = session.create_user("app_iam", NewUserAuth::Iam).await.expect_err("no rds_iam role outside RDS");
    assert_eq!(err.class, ErrorClass::Input, "{err}");
    assert!(!session.user_exists("app_iam").await.unwrap());
    // Stand-in for RDS's role.
    server.admin("CREATE ROLE rds_iam").await;
    assert!(session.create_user("app_iam", NewUserAuth::Iam).await.unwrap());
    assert!(!session.create_user("app_iam", NewUserAuth::Iam).await.unwrap());
    let row = server
        .admin("SELECT a.rolcanlogin, a.rolpassword IS NULL, pg_has_role('app_iam', 'rds_iam', 'MEMBER') FROM pg_authid a WHERE rolname = 'app_iam'")
        .await;
    assert_eq!(row, vec![vec!["t".to_string(), "t".into(), "t".into()]]);

    // A token answers the server's password request (here a SCRAM exchange), over TLS only.
    let token = "prx-token.example:5432/?Action=connect&DBUser=app_tok&X-Amz-Signature=abc123";
    assert!(session.create_user("app_tok", NewUserAuth::Password(&SecretString::from(token))).await.unwrap());
    let mut spec = server.spec("app_tok", "unused");
    spec.credential = Credential::IamToken(token.into());
    let mut tok = dbcreds_db::connect(&spec).await.expect("the token logs in");
    assert_eq!(tok.identity().await.unwrap().current_user, "app_tok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hostile_identifiers_never_reach_the_server() {
    let server = Server::start(TlsMode::Verified).await;
    server.log_all_statements().await;
    let snapshot = "SELECT string_agg(rolname, ',' ORDER BY rolname) || '|' || (SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database) FROM pg_roles";
    let mut session = server.admin_session().await;
    session.create_user("app", NewUserAuth::Password(&SecretString::from("Pa55"))).await.unwrap();
    let before = server.admin_value(snapshot).await;
    let log_before = server.inner.log().len();
    let long = "a".repeat(64);
    let hostile = ["a'; DROP USER root; --", "a`b", "a\"b", "a\0b", long.as_str(), "", "app; DROP ROLE app", "ünïcode"];
    let pw = SecretString::from("x");
    for name in hostile {
        let errors = [
            session.create_database_if_missing(name).await.err(),
            session.user_exists(name).await.err(),
            session.create_user(name, NewUserAuth::Password(&pw)).await.err(),
            session.set_password(name, &pw).await.err(),
            session.drop_user(name).await.err(),
            session.read_grants(name).await.err(),
            session.apply_privileges(name, "postgres", &PrivilegeSpec::Preset(PrivilegePreset::ReadOnly)).await.err(),
            session.apply_privileges("app", name, &PrivilegeSpec::Preset(PrivilegePreset::ReadOnly)).await.err(),
            session.mirror_user("app", name, &pw).await.err(),
            session.mirror_user(name, "app", &pw).await.err(),
        ];
        for (i, err) in errors.into_iter().enumerate() {
            let err = err.unwrap_or_else(|| panic!("operation {i} accepted {name:?}"));
            assert_eq!(err.class, ErrorClass::Input, "operation {i} with {name:?}: {err}");
        }
    }
    assert_eq!(server.admin_value(snapshot).await, before, "no role or database changed");
    let log = server.inner.log();
    let new_log = &log[log_before..];
    assert!(!new_log.contains("DROP USER root") && !new_log.contains("DROP ROLE app") && !new_log.contains("a`b"), "{new_log}");
    assert!(session.user_exists("app").await.unwrap());
}

/// Sets `password` in every way the adapter can and proves each one logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_printable_ascii_password_is_set_as_a_verifier_and_logs_in() {
    let server = Server::start(TlsMode::Verified).await;
    server.log_all_statements().await;
    let mut session = server.admin_session().await;
    let all = printable_ascii();
    let reversed: String = all.chars().rev().collect();
    let rotated: String = all.chars().skip(40).chain(all.chars().take(40)).collect();

    assert!(session.create_user("app", NewUserAuth::Password(&SecretString::from(all.as_str()))).await.unwrap());
    let mut app = server.connect_as("app", &all).await.expect("created with every printable character, it logs in");
    assert_eq!(app.identity().await.unwrap().current_user, "app");

    session.set_password("app", &SecretString::from(reversed.as_str())).await.unwrap();
    let mut app = server.connect_as("app", &reversed).await.expect("set_password works");

    // Single-user rotation: the user changes its own password.
    app.set_own_password(&SecretString::from(rotated.as_str())).await.unwrap();
    server.connect_as("app", &rotated).await.expect("set_own_password works");
    let err = server.connect_as("app", &reversed).await.err().unwrap();
    assert_eq!(err.class, ErrorClass::Authentication);
    // libpq-compatible: a plain driver login works too.
    server.user_query("app", &rotated, "postgres", "SELECT 1").await.unwrap();

    // The server holds a SCRAM verifier, and no plaintext reached its log.
    let stored = server.admin_value("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").await;
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    let log = server.inner.log();
    assert!(log.contains("ALTER ROLE"), "log_statement=all is on");
    for password in [&all, &reversed, &rotated] {
        // The distinctive middle of each password (the whole string would also match).
        assert!(!log.contains(&password[20..60]), "a plaintext password reached the server log");
    }
}

/// The verifier we compute equals what PostgreSQL itself computes for the same password and
/// salt, including SASLprep of non-ASCII passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_client_side_verifiers_match_the_servers_own() {
    let server = Server::start(TlsMode::Verified).await;
    let cases = ["pencil", "päßwörd", "ｆｕｌｌｗｉｄｔｈ", "a\u{00A0}b", "x\u{00AD}y", "\u{0627}\u{0644}\u{0633}", "I\u{2163}", "a\u{E000}", "it's \\ \"q\""];
    for (i, password) in cases.iter().enumerate() {
        let role = format!("v{i}");
        let literal = password.replace('\'', "''");
        let escaped = if literal.contains('\\') { format!("E'{}'", literal.replace('\\', "\\\\")) } else { format!("'{literal}'") };
        server.admin(&format!("CREATE ROLE {role} LOGIN PASSWORD {escaped}")).await;
        let stored = server.admin_value(&format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")).await;
        let (iterations, salt) = ScramVerifier::parse_salt(&stored).expect("the server stores SCRAM");
        let ours = ScramVerifier::with_salt(password.as_bytes(), &salt, iterations).unwrap();
        assert_eq!(ours.as_secret().expose(), stored, "{password:?}");
        // And the adapter's own verifier for it logs in.
        let mut session = server.admin_session().await;
        session.set_password(&role, &SecretString::from(*password)).await.unwrap();
        server.connect_as(&role, password).await.unwrap_or_else(|e| panic!("{password:?}: {e}"));
    }
}

fn granted(changes: &[GrantChange], text: &str) -> bool {
    changes.iter().any(|c| matches!(c, GrantChange::Granted(s) if s.contains(text)))
}

fn revoked(changes: &[GrantChange], text: &str) -> bool {
    changes.iter().any(|c| matches!(c, GrantChange::Revoked(s) if s.contains(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_apply_privileges_presets_are_enforced_by_the_server() {
    let server = Server::start(TlsMode::Verified).await;
    // As on RDS: a master that is not a superuser, connected to another database than the one
    // it provisions (so the adapter opens a second connection for the table grants).
    let mut master = server.rds_like_master().await;
    assert!(master.create_database_if_missing("appdb").await.unwrap());
    for user in ["reader", "writer", "owner"] {
        master.create_user(user, NewUserAuth::Password(&SecretString::from(format!("{user}-Pa55")))).await.unwrap();
    }
    let as_master = |sql: &str| format!("SET ROLE master; {sql}");
    server.admin_in("appdb", &as_master("CREATE TABLE t1 (id serial PRIMARY KEY, v text); INSERT INTO t1 (v) VALUES ('a')")).await;

    let readonly = PrivilegeSpec::Preset(PrivilegePreset::ReadOnly);
    let readwrite = PrivilegeSpec::Preset(PrivilegePreset::ReadWrite);
    let owner = PrivilegeSpec::Preset(PrivilegePreset::Owner);
    let changes = master.apply_privileges("owner", "appdb", &owner).await.unwrap();
    assert!(granted(&changes, "CREATE, USAGE ON SCHEMA \"public\""), "{changes:?}");
    let changes = master.apply_privileges("reader", "appdb", &readonly).await.unwrap();
    assert!(granted(&changes, "SELECT ON TABLE \"public\".\"t1\""), "{changes:?}");
    assert!(granted(&changes, "ON FUTURE TABLES OF \"master\""), "{changes:?}");
    assert!(granted(&changes, "ON FUTURE TABLES OF \"owner\""), "{changes:?}");
    master.apply_privileges("writer", "appdb", &readwrite).await.unwrap();
    // Exactly the spec: a second call changes nothing.
    assert_eq!(master.apply_privileges("reader", "appdb", &readonly).await.unwrap(), vec![]);
    assert_eq!(master.apply_privileges("writer", "appdb", &readwrite).await.unwrap(), vec![]);

    let q = |user: &'static str, sql: &'static str| {
        let server = &server;
        async move { server.user_query(user, &format!("{user}-Pa55"), "appdb", sql).await }
    };
    // readonly: reads, cannot write or create.
    assert_eq!(q("reader", "SELECT v FROM t1").await.unwrap(), vec![vec![Some("a".into())]]);
    assert_eq!(q("reader", "INSERT INTO t1 (v) VALUES ('x')").await.unwrap_err(), "42501");
    assert_eq!(q("reader", "CREATE TABLE r (x int)").await.unwrap_err(), "42501");
    // readwrite: writes (the serial's sequence included), no TRUNCATE, no DDL.
    q("writer", "INSERT INTO t1 (v) VALUES ('b'); UPDATE t1 SET v = 'c' WHERE v = 'b'; DELETE FROM t1 WHERE v = 'c'").await.unwrap();
    assert_eq!(q("writer", "TRUNCATE t1").await.unwrap_err(), "42501");
    assert_eq!(q("writer", "CREATE TABLE w (x int)").await.unwrap_err(), "42501");
    // owner: DDL and everything on existing tables.
    q("owner", "CREATE TABLE owned (x int); INSERT INTO owned VALUES (1); CREATE SCHEMA owner_space").await.unwrap();
    q("owner", "INSERT INTO t1 (v) VALUES ('o')").await.unwrap();

    // Future tables, by the master or by the owner-preset user, are covered by default privileges.
    server.admin_in("appdb", &as_master("CREATE TABLE t2 (x int); INSERT INTO t2 VALUES (5)")).await;
    assert_eq!(q("reader", "SELECT x FROM t2").await.unwrap(), vec![vec![Some("5".into())]]);
    q("writer", "INSERT INTO t2 VALUES (6)").await.unwrap();
    q("owner", "CREATE TABLE later (x int); INSERT INTO later VALUES (8)").await.unwrap();
    assert_eq!(q("reader", "SELECT x FROM later").await.unwrap(), vec![vec![Some("8".into())]]);
    assert_eq!(q("reader", "DELETE FROM later").await.unwrap_err(), "42501");
    // The master borrowed the owner's authority only inside its transactions.
    assert_eq!(server.admin_value("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = 'master'").await, "0");

    // Narrowing a spec revokes what is now extra.
    let changes = master.apply_privileges("writer", "appdb", &readonly).await.unwrap();
    assert!(revoked(&changes, "INSERT") && revoked(&changes, "TEMPORARY ON DATABASE"), "{changes:?}");
    assert_eq!(q("writer", "INSERT INTO t1 (v) VALUES ('no')").await.unwrap_err(), "42501");
    server.admin_in("appdb", &as_master("CREATE TABLE t3 (x int)")).await;
    assert_eq!(q("writer", "INSERT INTO t3 VALUES (1)").await.unwrap_err(), "42501");
    q("writer", "SELECT * FROM t3").await.unwrap();

    // A list spec.
    let list = PrivilegeSpec::List(vec!["CONNECT".into(), "SELECT".into(), "INSERT".into()]);
    master.apply_privileges("writer", "appdb", &list).await.unwrap();
    q("writer", "INSERT INTO t3 VALUES (2)").await.unwrap();
    assert_eq!(q("writer", "DELETE FROM t3").await.unwrap_err(), "42501");
    assert!(master.apply_privileges("nobody", "appdb", &list).await.is_err());
}

/// The alternating-users clone, with an RDS-like (non-superuser) master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mirror_user_shares_objects_both_ways_and_follows_the_source() {
    let server = Server::start(TlsMode::Verified).await;
    let mut master = server.rds_like_master().await;
    master.create_user("app", NewUserAuth::Password(&SecretString::from("app-Pa55-0"))).await.unwrap();
    server
        .admin(
            "SET ROLE master; CREATE ROLE readers; CREATE ROLE writers; CREATE ROLE auditors; \
             GRANT readers TO app; GRANT writers TO app WITH ADMIN OPTION; \
             ALTER ROLE app CREATEDB CONNECTION LIMIT 20; \
             ALTER ROLE app SET search_path = \"$user\", public; ALTER ROLE app SET statement_timeout = '5s'; \
             RESET ROLE; GRANT CREATE ON SCHEMA public TO app",
        )
        .await;

    let pw1 = SecretString::from("clone-Pa55-1");
    let changes = master.mirror_user("app", "app_clone", &pw1).await.unwrap();
    assert!(granted(&changes, "MEMBER OF \"app\""), "{changes:?}");
    let base = master.read_grants("app").await.unwrap();
    let clone = master.read_grants("app_clone").await.unwrap();
    let without_link = |lines: &[String]| lines.iter().filter(|l| *l != "MEMBER OF \"app\"" && *l != "SET role=app").cloned().collect::<Vec<_>>();
    assert_eq!(without_link(&clone), base, "the clone's attributes, settings and memberships are the base's");
    assert!(clone.contains(&"MEMBER OF \"writers\" WITH ADMIN".to_string()), "{clone:?}");
    assert!(clone.contains(&"CREATEDB".to_string()) && clone.contains(&"CONNECTION LIMIT 20".to_string()), "{clone:?}");
    assert!(clone.contains(&"SET search_path=\"$user\", public".to_string()), "{clone:?}");

    // Objects created by either user are usable by both.
    let clone_q = |sql: &'static str| {
        let server = &server;
        async move { server.user_query("app_clone", "clone-Pa55-1", "postgres", sql).await }
    };
    assert_eq!(clone_q("SELECT current_user, session_user").await.unwrap(), vec![vec![Some("app".into()), Some("app_clone".into())]]);
    clone_q("CREATE TABLE by_clone (x int); INSERT INTO by_clone VALUES (1)").await.unwrap();
    server.user_query("app", "app-Pa55-0", "postgres", "INSERT INTO by_clone VALUES (2); CREATE TABLE by_base (y int); INSERT INTO by_base VALUES (3)").await.unwrap();
    assert_eq!(clone_q("SELECT sum(x)::text || '/' || (SELECT sum(y) FROM by_base) FROM by_clone").await.unwrap(), vec![vec![Some("3/3".into())]]);
    assert_eq!(server.admin_value("SELECT tableowner FROM pg_tables WHERE tablename = 'by_clone'").await, "app");

    // A revoked membership and a changed attribute are mirrored on the next call; nothing else.
    server.admin("SET ROLE master; REVOKE writers FROM app; GRANT auditors TO app; ALTER ROLE app NOCREATEDB").await;
    let pw2 = SecretString::from("clone-Pa55-2");
    let changes = master.mirror_user("app", "app_clone", &pw2).await.unwrap();
    assert!(revoked(&changes, "MEMBER OF \"writers\"") && granted(&changes, "MEMBER OF \"auditors\""), "{changes:?}");
    assert!(changes.contains(&GrantChange::Altered("NOCREATEDB".into())), "{changes:?}");
    assert_eq!(changes.len(), 4, "{changes:?}"); // + PASSWORD
    let clone = master.read_grants("app_clone").await.unwrap();
    assert_eq!(without_link(&clone), master.read_grants("app").await.unwrap());
    assert_eq!(server.user_query("app_clone", "clone-Pa55-1", "postgres", "SELECT 1").await.unwrap_err(), "28P01");
    server.user_query("app_clone", "clone-Pa55-2", "postgres", "SELECT 1").await.unwrap();
    assert_eq!(master.mirror_user("app", "app_clone", &pw2).await.unwrap(), vec![GrantChange::Altered("PASSWORD".into())]);

    // The other direction: the base gets the clone's memberships, without a cycle.
    server.admin("SET ROLE master; GRANT writers TO app_clone").await;
    let pw3 = SecretString::from("base-Pa55-3");
    let changes = master.mirror_user("app_clone", "app", &pw3).await.unwrap();
    assert!(granted(&changes, "MEMBER OF \"writers\""), "{changes:?}");
    assert_eq!(master.read_grants("app").await.unwrap(), without_link(&master.read_grants("app_clone").await.unwrap()));
    assert_eq!(server.admin_value("SELECT pg_has_role('app', 'app_clone', 'MEMBER')").await, "f");
    server.user_query("app", "base-Pa55-3", "postgres", "SELECT x FROM by_clone").await.unwrap();
    assert_eq!(server.admin_value("SELECT rolconfig::text FROM pg_roles WHERE rolname = 'app'").await, "{\"search_path=\\\"$user\\\", public\",statement_timeout=5s}");

    // A stray object the clone owns (made after SET ROLE NONE) comes home to the base.
    server.user_query("app_clone", "clone-Pa55-2", "postgres", "SET ROLE NONE; CREATE TABLE stray (z int); INSERT INTO stray VALUES (9)").await.unwrap();
    assert_eq!(server.admin_value("SELECT tableowner FROM pg_tables WHERE tablename = 'stray'").await, "app_clone");
    let changes = master.mirror_user("app", "app_clone", &SecretString::from("clone-Pa55-4")).await.unwrap();
    assert!(changes.contains(&GrantChange::Altered("REASSIGN OWNED BY \"app_clone\" TO \"app\"".into())), "{changes:?}");
    assert_eq!(server.admin_value("SELECT tableowner FROM pg_tables WHERE tablename = 'stray'").await, "app");
    server.user_query("app", "base-Pa55-3", "postgres", "SELECT z FROM stray").await.unwrap();
    // The master's borrowed memberships are gone.
    assert_eq!(server.admin_value("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = 'master'").await, "0");

    // The clone rotating its own password (single user) changes its own, not the base's.
    let mut clone_session = server.connect_as("app_clone", "clone-Pa55-4").await.unwrap();
    assert_eq!(clone_session.identity().await.unwrap().current_user, "app_clone");
    clone_session.set_own_password(&SecretString::from("clone-Pa55-5")).await.unwrap();
    server.user_query("app_clone", "clone-Pa55-5", "postgres", "SELECT 1").await.unwrap();
    server.user_query("app", "base-Pa55-3", "postgres", "SELECT 1").await.unwrap();

    // Bad requests change nothing.
    assert_eq!(master.mirror_user("app", "other", &pw1).await.unwrap_err().class, ErrorClass::Input);
    assert_eq!(master.mirror_user("ghost", "ghost_clone", &pw1).await.unwrap_err().class, ErrorClass::Input);
    assert!(!master.user_exists("ghost_clone").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_grants_shows_attributes_settings_and_memberships_sorted() {
    let server = Server::start(TlsMode::Verified).await;
    let mut session = server.admin_session().await;
    session.create_user("app", NewUserAuth::Password(&SecretString::from("Pa55"))).await.unwrap();
    server.admin("CREATE ROLE readers; GRANT readers TO app; ALTER ROLE app SET work_mem = '8MB'; ALTER ROLE app VALID UNTIL '2099-01-01 00:00:00+00'").await;
    let lines = session.read_grants("app").await.unwrap();
    for expected in ["LOGIN", "NOSUPERUSER", "INHERIT", "CONNECTION LIMIT -1", "MEMBER OF \"readers\"", "SET work_mem=8MB"] {
        assert!(lines.contains(&expected.to_string()), "{expected} in {lines:?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("VALID UNTIL '2099-01-01")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("SCRAM")), "{lines:?}");
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert_eq!(session.read_grants("ghost").await.unwrap_err().class, ErrorClass::Input);
}

#[allow(dead_code)]
fn assert_admin_session_is_object_safe(_: &dyn AdminSession) {}
