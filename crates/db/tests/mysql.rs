//! The MySQL-family adapter against a real MariaDB 10.11, over verified TLS.
//!
//! Every test starts its own throwaway server (dbcreds-testenv), so tests never share state and
//! nextest can run them in parallel. Servers present a certificate from a CA generated at test
//! time; clients trust only that CA (`TrustStore::from_pem`). Administrative checks go through
//! the server's own admin login, independent of the code under test.


/// The test harness: a throwaway MariaDB from dbcreds-testenv, and ways to log in to it.
mod common;

mod support {
    pub use super::common::{closed_port, printable_ascii, trust, verify_full_spec};
    use dbcreds_core::EngineFamily;
    use dbcreds_db::mysql::errors::{Phase, classify};
    use dbcreds_db::{AdminSession, ConnectSpec, DbError};
    pub use dbcreds_testenv::TlsMode;
    pub use dbcreds_testenv::ServerOptions;
    use dbcreds_testenv::MariaDb;
    use mysql_async::prelude::Queryable;

    /// A loopback listener that completes TCP handshakes (the kernel does) and never sends a
    /// byte: as close to a silent server as a test can get without a firewall.
    pub struct SilentListener(std::net::TcpListener);

    impl SilentListener {
        pub fn bind() -> Self {
            Self(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        }

        pub fn port(&self) -> u16 {
            self.0.local_addr().unwrap().port()
        }
    }

    pub struct Server {
        inner: MariaDb,
    }




    impl Server {
        pub async fn start(tls: TlsMode) -> Server {
            Self::start_with(ServerOptions::new().tls(tls)).await
        }

        pub async fn start_with(options: ServerOptions) -> Server {
            Server { inner: MariaDb::start(options).await }
        }

        pub fn admin_user(&self) -> &str {
            self.inner.admin_user()
        }

        pub fn admin_password(&self) -> &str {
            self.inner.admin_password()
        }

        pub fn unrelated_ca_pem(&self) -> &[u8] {
            self.inner.unrelated_ca_pem()
        }

        /// Verify-full TLS trusting only the test CA, 20 seconds to finish.
        pub fn spec(&self, user: &str, password: &str) -> ConnectSpec {
            verify_full_spec(EngineFamily::MySql, self.inner.host(), self.inner.port(), self.inner.ca_pem(), user, password)
        }

        pub async fn connect_as(&self, user: &str, password: &str) -> Result<Box<dyn AdminSession>, DbError> {
            dbcreds_db::mysql::connect(&self.spec(user, password)).await
        }

        pub async fn connect_as_in(&self, user: &str, password: &str, database: &str) -> Result<Box<dyn AdminSession>, DbError> {
            let mut spec = self.spec(user, password);
            spec.database = Some(database.to_owned());
            dbcreds_db::mysql::connect(&spec).await
        }

        pub async fn admin_session(&self) -> Result<Box<dyn AdminSession>, DbError> {
            self.connect_as(self.admin_user(), self.admin_password()).await
        }

        /// SQL as the server's admin, through the driver directly (not the code under test);
        /// rows as text, NULL as "NULL".
        pub async fn admin(&self, sql: &str) -> Vec<Vec<String>> {
            self.inner.admin_query_strings(sql).await.into_iter().map(|row| row.into_iter().map(|v| v.unwrap_or_else(|| "NULL".into())).collect()).collect()
        }

        /// Runs one statement as `user` over verified TLS with the driver directly (read-write,
        /// unlike `query_read_only`), classifying a refusal the way the adapter does.
        pub async fn user_exec(&self, user: &str, password: &str, sql: &str) -> Result<(), DbError> {
            dbcreds_db::tls::install_crypto_provider();
            let ssl = mysql_async::SslOpts::default().with_root_certs(vec![self.inner.ca_pem().to_vec().into()]).with_disable_built_in_roots(true);
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(self.inner.host())
                .tcp_port(self.inner.port())
                .user(Some(user))
                .pass(Some(password))
                .prefer_socket(false)
                .ssl_opts(ssl);
            let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| classify(&e, Phase::Connect { host: "localhost", port: 0 }))?;
            let outcome = conn.query_drop(sql).await.map_err(|e| classify(&e, Phase::Statement { what: "test statement", secret: false }));
            let _ = conn.disconnect().await;
            outcome
        }

        pub async fn kill(&mut self) {
            self.inner.kill();
        }
    }
}

use dbcreds_core::{ErrorClass, SecretString, TlsPolicy};
use dbcreds_db::mysql::grant_text::replace_grantee;
use dbcreds_db::mysql::sql::SqlMode;
use dbcreds_db::{Credential, Flavor, GrantChange, NewUserAuth, PrivilegePreset, PrivilegeSpec};
use std::time::Duration;
use support::{Server, ServerOptions, TlsMode, printable_ascii};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_connects_over_verified_tls_and_detects_the_server() {
    let server = Server::start(TlsMode::Verified).await;
    let mut session = server.admin_session().await.expect("admin logs in over verified TLS");
    let info = session.server().clone();
    assert_eq!(info.flavor, Flavor::MariaDb, "{info:?}");
    assert!(info.at_least(10, 2, 0), "{info:?}");
    assert!(info.version_string.contains("MariaDB"), "{info:?}");
    let transport = session.transport().clone();
    assert!(transport.tls_version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")), "{transport:?}");
    assert!(transport.certificate_verified);
    let identity = session.identity().await.unwrap();
    assert_eq!(identity.current_user, format!("{}@%", server.admin_user()));
    assert_eq!(identity.server_version, info.version_string);
    // The session really is encrypted, as the server sees it.
    let cipher = session.query_read_only("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.unwrap();
    assert!(cipher[0][1].as_deref().is_some_and(|c| !c.is_empty()), "{cipher:?}");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_login_failures_are_classified_by_layer() {
    let server = Server::start(TlsMode::Verified).await;
    // Wrong password.
    let wrong = "not-the-password-x9";
    let err = server.connect_as(server.admin_user(), wrong).await.err().expect("wrong password refused");
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");
    assert!(!err.to_string().contains(wrong), "{err}");
    // Nothing listens on this port.
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.port = support::closed_port();
    let err = dbcreds_db::mysql::connect(&spec).await.err().expect("closed port refused");
    assert_eq!(err.class, ErrorClass::ConnectionRefused, "{err}");
    // The name does not resolve.
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.host = "no-such-host.invalid".into();
    let err = dbcreds_db::mysql::connect(&spec).await.err().expect("unresolvable host");
    assert_eq!(err.class, ErrorClass::Dns, "{err}");
    // The client trusts another CA.
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.trust = support::trust(server.unrelated_ca_pem());
    let err = dbcreds_db::mysql::connect(&spec).await.err().expect("untrusted CA refused");
    assert_eq!(err.class, ErrorClass::TlsVerification, "{err}");
    // The deadline has passed already.
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.deadline = Instant::now();
    let err = dbcreds_db::mysql::connect(&spec).await.err().expect("no time left");
    assert_eq!(err.class, ErrorClass::Deadline, "{err}");
    // An IAM token is never sent without TLS; refused before any connection is made.
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.tls = TlsPolicy::Disabled;
    spec.credential = Credential::IamToken(SecretString::from("token"));
    let err = dbcreds_db::mysql::connect(&spec).await.err().expect("IAM without TLS refused");
    assert_eq!(err.class, ErrorClass::Input, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_certificate_for_another_name_is_refused() {
    let server = Server::start(TlsMode::WrongName).await;
    let err = server.connect_as(server.admin_user(), server.admin_password()).await.err().expect("wrong name refused");
    assert_eq!(err.class, ErrorClass::TlsVerification, "{err}");
    assert!(err.message.contains("host name"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_server_without_tls_is_refused_unless_the_secret_allows_plaintext() {
    let server = Server::start(TlsMode::Off).await;
    let err = server.connect_as(server.admin_user(), server.admin_password()).await.err().expect("plaintext refused");
    assert_eq!(err.class, ErrorClass::TlsUnavailable, "{err}");
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.tls = TlsPolicy::Disabled;
    let mut session = dbcreds_db::mysql::connect(&spec).await.expect("plaintext when the secret says ssl: false");
    assert_eq!(session.transport().tls_version, None);
    assert!(!session.transport().certificate_verified);
    // Password DDL is allowed over plaintext only because the secret asked for it.
    session.create_user("plain_user", NewUserAuth::Password(&SecretString::from("pw-plain-1"))).await.unwrap();
    let mut spec = server.spec("plain_user", "pw-plain-1");
    spec.tls = TlsPolicy::Disabled;
    dbcreds_db::mysql::connect(&spec).await.expect("the user logs in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_plaintext_to_a_server_that_requires_tls_names_the_ssl_setting() {
    let server = Server::start_with(ServerOptions::new().require_tls(true)).await;
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.tls = TlsPolicy::Disabled;
    let err = dbcreds_db::mysql::connect(&spec).await.err().expect("the server insists on TLS");
    // MariaDB hides the reason behind ER_ACCESS_DENIED (MySQL says 3159, classed as input): the
    // message points at the secret's ssl setting.
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");
    assert!(err.message.contains("\"ssl\": false"), "{err}");
    // With the default policy the same login works.
    server.admin_session().await.expect("verified TLS is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_deadline_bounds_connects_and_statements() {
    let server = Server::start(TlsMode::Verified).await;
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.deadline = Instant::now() + Duration::from_millis(1500);
    let mut session = dbcreds_db::mysql::connect(&spec).await.unwrap();
    let started = Instant::now();
    let err = session.query_read_only("SELECT SLEEP(30)").await.err().expect("the statement outlives the deadline");
    assert_eq!(err.class, ErrorClass::Deadline, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // The session is retired rather than reused with a statement in flight.
    let err = session.identity().await.err().expect("retired");
    assert_eq!(err.class, ErrorClass::ConnectionLost, "{err}");
    // A peer that accepts TCP but never speaks: the connect gives up at the deadline.
    let silent = support::SilentListener::bind();
    let mut spec = server.spec(server.admin_user(), server.admin_password());
    spec.port = silent.port();
    spec.deadline = Instant::now() + Duration::from_millis(800);
    let started = Instant::now();
    let err = dbcreds_db::mysql::connect(&spec).await.err().expect("no greeting");
    assert_eq!(err.class, ErrorClass::TcpTimeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_lost_connection_is_classified() {
    let mut server = Server::start(TlsMode::Verified).await;
    let mut session = server.admin_session().await.unwrap();
    server.kill().await;
    let err = session.identity().await.err().expect("the server is gone");
    assert_eq!(err.class, ErrorClass::ConnectionLost, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_query_read_only_returns_text_and_cannot_write() {
    let server = Server::start(TlsMode::Verified).await;
    server.admin("CREATE DATABASE ro_db; CREATE TABLE ro_db.t (id INT, d DATE, n DECIMAL(5,2)); INSERT INTO ro_db.t VALUES (1, '2024-02-29', 1.50)").await;
    let mut session = server.admin_session().await.unwrap();
    let rows = session.query_read_only("SELECT id, d, n, NULL, 'x' FROM ro_db.t").await.unwrap();
    assert_eq!(rows, vec![vec![Some("1".into()), Some("2024-02-29".into()), Some("1.50".into()), None, Some("x".into())]]);
    for (sql, class) in [
        ("INSERT INTO ro_db.t VALUES (2, NULL, NULL)", ErrorClass::Input),
        ("CREATE TABLE ro_db.u (x INT)", ErrorClass::Input),
        ("DROP TABLE ro_db.t", ErrorClass::Input),
        ("CREATE USER sneaky", ErrorClass::Input),
        ("SELECT 1; DROP TABLE ro_db.t", ErrorClass::Sql),
        ("", ErrorClass::Input),
    ] {
        let err = session.query_read_only(sql).await.err().unwrap_or_else(|| panic!("{sql} was allowed"));
        assert_eq!(err.class, class, "{sql}: {err}");
    }
    // The session is still usable and still writable for admin work afterwards.
    assert!(session.create_database_if_missing("ro_db2").await.unwrap());
    assert_eq!(server.admin("SELECT COUNT(*) FROM ro_db.t").await, vec![vec!["1".to_string()]]);
    assert!(server.admin("SELECT COUNT(*) FROM mysql.user WHERE User = 'sneaky'").await == vec![vec!["0".to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_users_and_databases_lifecycle_is_idempotent() {
    let server = Server::start(TlsMode::Verified).await;
    let mut session = server.admin_session().await.unwrap();
    assert!(session.create_database_if_missing("life_db").await.unwrap());
    assert!(!session.create_database_if_missing("life_db").await.unwrap());
    assert!(!session.user_exists("life").await.unwrap());
    assert!(session.create_user("life", NewUserAuth::Password(&SecretString::from("first-pw-1"))).await.unwrap());
    assert!(session.user_exists("life").await.unwrap());
    assert_eq!(server.admin("SELECT Host FROM mysql.user WHERE User = 'life'").await, vec![vec!["%".to_string()]]);
    // Creating again leaves the user and its password alone.
    assert!(!session.create_user("life", NewUserAuth::Password(&SecretString::from("other-pw-2"))).await.unwrap());
    server.connect_as("life", "first-pw-1").await.expect("the first password still works");
    // A second host: set_password and drop_user cover every host.
    server.admin("CREATE USER 'life'@'10.9.%' IDENTIFIED BY 'x'").await;
    session.set_password("life", &SecretString::from("second-pw-3")).await.unwrap();
    let hashes = server.admin("SELECT DISTINCT authentication_string FROM mysql.user WHERE User = 'life'").await;
    assert_eq!(hashes.len(), 1, "both hosts got the same new password: {hashes:?}");
    server.connect_as("life", "second-pw-3").await.expect("the new password works");
    let err = server.connect_as("life", "first-pw-1").await.err().expect("the old one does not");
    assert_eq!(err.class, ErrorClass::Authentication);
    assert!(session.drop_user("life").await.unwrap());
    assert_eq!(server.admin("SELECT COUNT(*) FROM mysql.user WHERE User = 'life'").await, vec![vec!["0".to_string()]]);
    assert!(!session.drop_user("life").await.unwrap());
    let err = session.set_password("life", &SecretString::from("x")).await.err().expect("no such user");
    assert_eq!(err.class, ErrorClass::Sql);
    // IAM users need the RDS plugin, which a local MariaDB does not have: the server's refusal
    // proves the statement reached it as IAM DDL (the SQL itself is unit-tested).
    let err = session.create_user("iam_user", NewUserAuth::Iam).await.err().expect("no AWSAuthenticationPlugin here");
    assert!(err.message.contains("1524") || err.message.contains("AWSAuthenticationPlugin"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_every_printable_ascii_password_is_set_and_logs_in() {
    let server = Server::start(TlsMode::Verified).await;
    check_every_printable_password(&server, "ascii").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_every_printable_ascii_password_survives_no_backslash_escapes() {
    let server = Server::start(TlsMode::Verified).await;
    server.admin("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')").await;
    let session = server.admin_session().await.unwrap();
    drop(session);
    check_every_printable_password(&server, "nbe").await;
}

async fn check_every_printable_password(server: &Server, user: &str) {
    let all = printable_ascii();
    let mut admin = server.admin_session().await.unwrap();
    assert!(admin.create_user(user, NewUserAuth::Password(&SecretString::from(all.as_str()))).await.unwrap());
    server.connect_as(user, &all).await.expect("created with every printable character");
    let reversed: String = all.chars().rev().collect();
    admin.set_password(user, &SecretString::from(reversed.as_str())).await.unwrap();
    server.connect_as(user, &reversed).await.expect("set_password with every printable character");
    // The user changes its own password (single-user rotation).
    let mut own = server.connect_as(user, &reversed).await.unwrap();
    let shuffled: String = all.chars().skip(47).chain(all.chars().take(47)).collect::<String>() + "\\'\\\\''";
    own.set_own_password(&SecretString::from(shuffled.as_str())).await.unwrap();
    server.connect_as(user, &shuffled).await.expect("set_own_password with every printable character");
    assert!(server.connect_as(user, &reversed).await.is_err());
    // The clone gets the same treatment.
    admin.mirror_user(user, &format!("{user}_c"), &SecretString::from(all.as_str())).await.unwrap();
    server.connect_as(&format!("{user}_c"), &all).await.expect("mirror_user with every printable character");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_password_errors_never_echo_the_password() {
    let server = Server::start(TlsMode::Verified).await;
    server.admin("INSTALL SONAME 'simple_password_check'").await;
    let mut session = server.admin_session().await.unwrap();
    let weak = "weakpw'`\\";
    let err = session.create_user("weak", NewUserAuth::Password(&SecretString::from(weak))).await.err().expect("policy refuses it");
    assert!(!err.to_string().contains("weakpw"), "{err}");
    assert!(err.message.contains("1819"), "{err}");
    assert!(err.message.contains("password policy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_hostile_identifiers_never_reach_the_server() {
    let server = Server::start(TlsMode::Verified).await;
    server.admin("CREATE USER victim@'%' IDENTIFIED BY 'v'; CREATE DATABASE victim_db").await;
    let users_before = server.admin("SELECT User, Host FROM mysql.user ORDER BY User, Host").await;
    let dbs_before = server.admin("SHOW DATABASES").await;
    let mut session = server.admin_session().await.unwrap();
    let questions = |rows: Vec<Vec<Option<String>>>| -> u64 { rows[0][1].as_deref().unwrap().parse().unwrap() };
    // What one status read costs, in statements the server counts for this session.
    let q0 = questions(session.query_read_only("SHOW SESSION STATUS LIKE 'Questions'").await.unwrap());
    let q1 = questions(session.query_read_only("SHOW SESSION STATUS LIKE 'Questions'").await.unwrap());
    let one_read = q1 - q0;
    let too_long = "u".repeat(65);
    let hostile = ["a'; DROP USER root; --", "victim`; DROP DATABASE victim_db; --", "a\"b", "nul\0user", too_long.as_str(), "", "vïctim", "x y"];
    let pw = SecretString::from("pw");
    for name in hostile {
        let results = [
            session.create_user(name, NewUserAuth::Password(&pw)).await.err(),
            session.user_exists(name).await.err(),
            session.set_password(name, &pw).await.err(),
            session.drop_user(name).await.err(),
            session.read_grants(name).await.err(),
            session.apply_privileges(name, "victim_db", &PrivilegeSpec::Preset(PrivilegePreset::Owner)).await.err(),
            session.apply_privileges("victim", name, &PrivilegeSpec::Preset(PrivilegePreset::Owner)).await.err(),
            session.create_database_if_missing(name).await.err(),
            session.mirror_user(name, "victim", &pw).await.err(),
            session.mirror_user("victim", name, &pw).await.err(),
        ];
        for (i, err) in results.into_iter().enumerate() {
            let err = err.unwrap_or_else(|| panic!("operation {i} accepted {name:?}"));
            assert_eq!(err.class, ErrorClass::Input, "operation {i} with {name:?}: {err}");
        }
    }
    let q2 = questions(session.query_read_only("SHOW SESSION STATUS LIKE 'Questions'").await.unwrap());
    assert_eq!(q2 - q1, one_read, "no statement reached the server for a hostile name");
    assert_eq!(server.admin("SELECT User, Host FROM mysql.user ORDER BY User, Host").await, users_before);
    assert_eq!(server.admin("SHOW DATABASES").await, dbs_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_read_grants_are_sorted_and_never_show_the_password_hash() {
    let server = Server::start(TlsMode::Verified).await;
    server.admin("CREATE USER rg@'%' IDENTIFIED BY 'pw1'; CREATE USER rg@'10.1.%' IDENTIFIED BY 'pw2'; GRANT SELECT ON mysql.* TO rg@'%'").await;
    let hash = server.admin("SELECT authentication_string FROM mysql.user WHERE User = 'rg' AND Host = '%'").await[0][0].clone();
    assert!(hash.starts_with('*'), "{hash}");
    let mut session = server.admin_session().await.unwrap();
    let grants = session.read_grants("rg").await.unwrap();
    assert_eq!(grants.len(), 3, "{grants:?}");
    let mut sorted = grants.clone();
    sorted.sort();
    assert_eq!(grants, sorted);
    assert!(grants.iter().all(|g| !g.contains(&hash[1..])), "{grants:?}");
    assert!(grants.iter().any(|g| g.contains("'<redacted>'")), "{grants:?}");
    assert!(grants.iter().any(|g| g.contains("`10.1.%`")), "{grants:?}");
    assert!(session.read_grants("nobody").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_apply_privileges_presets_are_enforced_by_the_server() {
    let server = Server::start(TlsMode::Verified).await;
    server
        .admin(
            "CREATE DATABASE app_db; CREATE TABLE app_db.t (id INT); INSERT INTO app_db.t VALUES (1); \
             CREATE DATABASE appxdb; CREATE TABLE appxdb.t (id INT); \
             CREATE TABLE app_db.extra (id INT)",
        )
        .await;
    let mut admin = server.admin_session().await.unwrap();
    admin.create_user("appuser", NewUserAuth::Password(&SecretString::from("app-pw-1"))).await.unwrap();
    // Grants someone else made: a table grant, the grant option, and INSERT through the unescaped
    // pattern `app_db` (which also matches appXdb) inside app_db, plus a grant elsewhere that
    // apply_privileges must not touch.
    server
        .admin(
            "GRANT DELETE ON app_db.extra TO appuser@'%'; GRANT USAGE ON `app\\_db`.* TO appuser@'%' WITH GRANT OPTION; \
             GRANT INSERT ON `app_db`.* TO appuser@'%'; GRANT SELECT ON appxdb.* TO appuser@'%'",
        )
        .await;

    let changes = admin.apply_privileges("appuser", "app_db", &PrivilegeSpec::Preset(PrivilegePreset::ReadOnly)).await.unwrap();
    assert!(changes.iter().any(|c| matches!(c, GrantChange::Granted(s) if s.contains("SELECT"))), "{changes:?}");
    assert!(changes.iter().any(|c| matches!(c, GrantChange::Revoked(s) if s.contains("DELETE ON `app_db`.`extra`"))), "{changes:?}");
    assert!(changes.iter().any(|c| matches!(c, GrantChange::Revoked(s) if s.contains("GRANT OPTION"))), "{changes:?}");
    let mut user = server.connect_as_in("appuser", "app-pw-1", "app_db").await.unwrap();
    assert_eq!(user.query_read_only("SELECT COUNT(*) FROM app_db.t").await.unwrap(), vec![vec![Some("1".into())]]);
    assert_denied(server.user_exec("appuser", "app-pw-1", "INSERT INTO app_db.t VALUES (2)").await);
    assert_denied(server.user_exec("appuser", "app-pw-1", "DELETE FROM app_db.extra").await);
    // The wildcard-free grant on app_db does not spill to appxdb, and appxdb's own grant stays.
    assert!(server.user_exec("appuser", "app-pw-1", "SELECT * FROM appxdb.t").await.is_ok());
    assert_eq!(server.admin("SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = '''appuser''@''%''' AND TABLE_SCHEMA = 'appxdb'").await, vec![vec!["1".to_string()]]);

    // Idempotent: nothing to do the second time.
    assert_eq!(admin.apply_privileges("appuser", "app_db", &PrivilegeSpec::Preset(PrivilegePreset::ReadOnly)).await.unwrap(), vec![]);

    // Read-write: adds without revoking; DML works, DDL does not.
    let changes = admin.apply_privileges("appuser", "app_db", &PrivilegeSpec::Preset(PrivilegePreset::ReadWrite)).await.unwrap();
    assert!(changes.iter().all(|c| matches!(c, GrantChange::Granted(_))), "{changes:?}");
    server.user_exec("appuser", "app-pw-1", "INSERT INTO app_db.t VALUES (2)").await.expect("readwrite inserts");
    assert_denied(server.user_exec("appuser", "app-pw-1", "CREATE TABLE app_db.new_t (x INT)").await);

    // Owner: DDL too, but no GRANT OPTION.
    admin.apply_privileges("appuser", "app_db", &PrivilegeSpec::Preset(PrivilegePreset::Owner)).await.unwrap();
    server.user_exec("appuser", "app-pw-1", "CREATE TABLE app_db.new_t (x INT)").await.expect("owner creates tables");
    assert_denied(server.user_exec("appuser", "app-pw-1", "GRANT SELECT ON app_db.* TO victim").await);

    // Back to read-only: the extra privileges are revoked.
    let changes = admin.apply_privileges("appuser", "app_db", &PrivilegeSpec::Preset(PrivilegePreset::ReadOnly)).await.unwrap();
    assert!(changes.iter().all(|c| matches!(c, GrantChange::Revoked(_))), "{changes:?}");
    assert_denied(server.user_exec("appuser", "app-pw-1", "INSERT INTO app_db.t VALUES (3)").await);
    assert!(server.user_exec("appuser", "app-pw-1", "SELECT * FROM app_db.t").await.is_ok());

    // An explicit list.
    let list = PrivilegeSpec::List(vec!["SELECT".into(), "INSERT".into()]);
    admin.apply_privileges("appuser", "app_db", &list).await.unwrap();
    server.user_exec("appuser", "app-pw-1", "INSERT INTO app_db.t VALUES (4)").await.expect("listed INSERT");
    assert_denied(server.user_exec("appuser", "app-pw-1", "UPDATE app_db.t SET id = 5").await);
    let bad = PrivilegeSpec::List(vec!["SUPER".into()]);
    assert_eq!(admin.apply_privileges("appuser", "app_db", &bad).await.unwrap_err().class, ErrorClass::Input);
}

fn assert_denied(result: Result<(), dbcreds_db::DbError>) {
    let err = result.err().expect("the server should refuse this");
    assert_eq!(err.class, ErrorClass::Permission, "{err}");
}

/// `SHOW GRANTS` of `source`, rewritten to name `target`, must equal `target`'s (passwords redacted).
async fn assert_grants_mirrored(session: &mut Box<dyn dbcreds_db::AdminSession>, source: &str, target: &str) {
    let mut expected: Vec<String> = session
        .read_grants(source)
        .await
        .unwrap()
        .iter()
        .map(|line| replace_grantee(line, SqlMode::default(), source, target).unwrap_or_else(|| panic!("no grantee in {line}")))
        .collect();
    expected.sort();
    let actual = session.read_grants(target).await.unwrap();
    assert_eq!(actual, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_mirror_user_copies_hosts_grant_option_tls_limits_and_roles_and_mirrors_revocations() {
    let server = Server::start(TlsMode::Verified).await;
    server
        .admin(
            "CREATE DATABASE app_db; CREATE TABLE app_db.t (a INT, b INT); CREATE TABLE app_db.u (x INT); \
             CREATE PROCEDURE app_db.p() SELECT 1; \
             CREATE ROLE reader; GRANT SELECT ON app_db.u TO reader; \
             CREATE USER app@'%' IDENTIFIED BY 'src-pw' REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 1000 MAX_USER_CONNECTIONS 5; \
             CREATE USER app@'10.20.%' IDENTIFIED BY 'src-pw'; \
             GRANT SELECT, INSERT ON app_db.* TO app@'%' WITH GRANT OPTION; \
             GRANT UPDATE (a) ON app_db.t TO app@'%'; \
             GRANT EXECUTE ON PROCEDURE app_db.p TO app@'%'; \
             GRANT reader TO app@'%'; SET DEFAULT ROLE reader FOR app@'%'; \
             GRANT SELECT ON app_db.t TO app@'10.20.%'; \
             CREATE USER grantee_probe@'%' IDENTIFIED BY 'x'",
        )
        .await;
    let mut admin = server.admin_session().await.unwrap();
    let changes = admin.mirror_user("app", "app_clone", &SecretString::from("clone-pw-1")).await.unwrap();
    assert!(!changes.is_empty());
    // The clone exists at exactly the source's hosts, not at a hard-coded '%'.
    assert_eq!(
        server.admin("SELECT Host FROM mysql.user WHERE User = 'app_clone' ORDER BY Host").await,
        server.admin("SELECT Host FROM mysql.user WHERE User = 'app' ORDER BY Host").await
    );
    // TLS requirement, resource limits and default role per host.
    let settings = "SELECT Host, ssl_type, max_questions, max_user_connections, default_role FROM mysql.user WHERE User = ? ORDER BY Host";
    assert_eq!(server.admin(&settings.replace('?', "'app_clone'")).await, server.admin(&settings.replace('?', "'app'")).await);
    assert_eq!(server.admin("SELECT ssl_type FROM mysql.user WHERE User = 'app_clone' AND Host = '%'").await, vec![vec!["ANY".to_string()]]);
    // Every grant, WITH GRANT OPTION included, as the server prints them.
    assert_grants_mirrored(&mut admin, "app", "app_clone").await;
    // And they work: the clone logs in over TLS only, reads, uses its grant option and its role.
    server.connect_as("app_clone", "clone-pw-1").await.expect("the clone logs in");
    let mut plaintext = server.spec("app_clone", "clone-pw-1");
    plaintext.tls = TlsPolicy::Disabled;
    let err = dbcreds_db::mysql::connect(&plaintext).await.err().expect("REQUIRE SSL was copied");
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");
    server.user_exec("app_clone", "clone-pw-1", "GRANT SELECT ON app_db.* TO grantee_probe@'%'").await.expect("grant option copied");
    server.user_exec("app_clone", "clone-pw-1", "SELECT x FROM app_db.u").await.expect("default role copied");

    // Nothing changed: only the password is set again, no grant statement runs.
    let changes = admin.mirror_user("app", "app_clone", &SecretString::from("clone-pw-2")).await.unwrap();
    assert!(changes.iter().all(|c| matches!(c, GrantChange::Altered(s) if s.contains("IDENTIFIED BY '<redacted>'"))), "{changes:?}");
    assert_eq!(changes.len(), 2, "one password per host: {changes:?}");
    server.connect_as("app_clone", "clone-pw-2").await.expect("new password");
    assert_eq!(server.connect_as("app_clone", "clone-pw-1").await.err().map(|e| e.class), Some(ErrorClass::Authentication));

    // The source loses privileges, a role, a host, and its TLS requirement changes; it gains a table.
    server
        .admin(
            "REVOKE INSERT ON app_db.* FROM app@'%'; REVOKE reader FROM app@'%'; DROP USER app@'10.20.%'; \
             ALTER USER app@'%' REQUIRE X509; GRANT DELETE ON app_db.u TO app@'%'",
        )
        .await;
    let changes = admin.mirror_user("app", "app_clone", &SecretString::from("clone-pw-3")).await.unwrap();
    let revoked: Vec<&String> = changes.iter().filter_map(|c| if let GrantChange::Revoked(s) = c { Some(s) } else { None }).collect();
    let granted: Vec<&String> = changes.iter().filter_map(|c| if let GrantChange::Granted(s) = c { Some(s) } else { None }).collect();
    assert_eq!(granted.len(), 1, "{changes:?}");
    assert!(granted[0].contains("DELETE ON `app_db`.`u`"), "{changes:?}");
    assert!(revoked.iter().any(|s| s.contains("REVOKE INSERT ON `app_db`.*")), "{changes:?}");
    assert!(revoked.iter().any(|s| s.contains("REVOKE `reader`")), "{changes:?}");
    assert!(!revoked.iter().any(|s| s.contains("SELECT")), "kept privileges are not touched: {changes:?}");
    assert_eq!(server.admin("SELECT Host, ssl_type FROM mysql.user WHERE User = 'app_clone'").await, vec![vec!["%".to_string(), "X509".to_string()]]);
    assert_grants_mirrored(&mut admin, "app", "app_clone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_mirror_user_refuses_bad_requests() {
    let server = Server::start(TlsMode::Verified).await;
    let mut admin = server.admin_session().await.unwrap();
    let pw = SecretString::from("pw");
    let err = admin.mirror_user("ghost", "ghost_clone", &pw).await.err().expect("no source");
    assert_eq!(err.class, ErrorClass::Sql, "{err}");
    assert_eq!(server.admin("SELECT COUNT(*) FROM mysql.user WHERE User = 'ghost_clone'").await, vec![vec!["0".to_string()]]);
    let err = admin.mirror_user("same", "same", &pw).await.err().expect("same name");
    assert_eq!(err.class, ErrorClass::Input, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_mirror_user_survives_grants_left_behind_by_dropped_tables() {
    let server = Server::start(TlsMode::Verified).await;
    server
        .admin(
            "CREATE DATABASE app_db; CREATE TABLE app_db.kept (x INT); CREATE TABLE app_db.gone (x INT); \
             CREATE USER app@'%' IDENTIFIED BY 'src-pw'; \
             GRANT SELECT ON app_db.kept TO app@'%'; GRANT SELECT ON app_db.gone TO app@'%'; DROP TABLE app_db.gone",
        )
        .await;
    let mut admin = server.admin_session().await.unwrap();
    // The server refuses to grant on a table that no longer exists, so a faithful copy of this
    // grant is impossible; the mirror copies everything else instead of failing every rotation.
    admin.mirror_user("app", "app_clone", &SecretString::from("clone-pw-1")).await.unwrap();
    let grants = admin.read_grants("app_clone").await.unwrap();
    assert!(grants.iter().any(|g| g.contains("`app_db`.`kept`")), "{grants:?}");
    assert!(!grants.iter().any(|g| g.contains("`app_db`.`gone`")), "{grants:?}");
    let changes = admin.mirror_user("app", "app_clone", &SecretString::from("clone-pw-2")).await.unwrap();
    assert!(changes.iter().all(|c| matches!(c, GrantChange::Altered(_))), "{changes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_mirror_user_applies_many_grants_in_batches_and_only_the_difference() {
    let server = Server::start(TlsMode::Verified).await;
    let tables = 150;
    let mut setup = String::from("CREATE DATABASE big; CREATE USER app@'%' IDENTIFIED BY 'src-pw';");
    for i in 0..tables {
        setup.push_str(&format!("CREATE TABLE big.t{i} (x INT) ENGINE=Aria; GRANT SELECT ON big.t{i} TO app@'%';"));
    }
    server.admin(&setup).await;
    let mut admin = server.admin_session().await.unwrap();
    let changes = admin.mirror_user("app", "app_clone", &SecretString::from("clone-pw-1")).await.unwrap();
    assert_eq!(changes.iter().filter(|c| matches!(c, GrantChange::Granted(_))).count(), tables, "one GRANT per table");
    assert_grants_mirrored(&mut admin, "app", "app_clone").await;
    server.admin("REVOKE SELECT ON big.t7 FROM app@'%'; REVOKE SELECT ON big.t99 FROM app@'%'; GRANT INSERT ON big.t3 TO app@'%'").await;
    let changes = admin.mirror_user("app", "app_clone", &SecretString::from("clone-pw-2")).await.unwrap();
    let grants_and_revokes: Vec<&GrantChange> = changes.iter().filter(|c| !matches!(c, GrantChange::Altered(_))).collect();
    assert_eq!(grants_and_revokes.len(), 3, "{grants_and_revokes:?}");
    assert_grants_mirrored(&mut admin, "app", "app_clone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_mirror_user_names_the_grant_a_limited_master_cannot_give_and_a_retry_completes() {
    let server = Server::start(TlsMode::Verified).await;
    // A master like RDS's: powerful, but not everything. It cannot give SELECT on other_db.
    server
        .admin(
            "CREATE DATABASE app_db; CREATE DATABASE other_db; \
             CREATE TABLE app_db.t1 (x INT); CREATE TABLE app_db.t2 (x INT); CREATE TABLE other_db.t (x INT); \
             CREATE USER master@'%' IDENTIFIED BY 'master-pw'; \
             GRANT CREATE USER, RELOAD ON *.* TO master@'%'; GRANT SELECT ON mysql.* TO master@'%'; \
             GRANT ALL ON app_db.* TO master@'%' WITH GRANT OPTION; \
             CREATE USER app@'%' IDENTIFIED BY 'src-pw'; \
             GRANT SELECT ON app_db.t1 TO app@'%'; GRANT SELECT ON app_db.t2 TO app@'%'; GRANT SELECT ON other_db.t TO app@'%'",
        )
        .await;
    let mut master = server.connect_as("master", "master-pw").await.unwrap();
    // The failing GRANT is the third statement of one multi-statement round trip.
    let err = master.mirror_user("app", "app_clone", &SecretString::from("clone-pw-1")).await.err().expect("other_db is out of reach");
    assert_eq!(err.class, ErrorClass::Permission, "{err}");
    assert!(err.message.contains("`other_db`.`t`"), "the error names the statement: {err}");
    assert!(!err.message.contains("clone-pw-1"), "{err}");
    // What ran before the failure took effect; nothing after it did.
    let grants = server.admin("SHOW GRANTS FOR app_clone@'%'").await;
    assert!(grants.iter().any(|g| g[0].contains("`app_db`.`t2`")), "{grants:?}");
    assert!(!grants.iter().any(|g| g[0].contains("other_db")), "{grants:?}");
    // Once the master may give it, the same call completes, changing only what is missing.
    server.admin("GRANT SELECT ON other_db.* TO master@'%' WITH GRANT OPTION").await;
    let mut master = server.connect_as("master", "master-pw").await.unwrap();
    let changes = master.mirror_user("app", "app_clone", &SecretString::from("clone-pw-1")).await.unwrap();
    let granted: Vec<&GrantChange> = changes.iter().filter(|c| matches!(c, GrantChange::Granted(_))).collect();
    assert_eq!(granted.len(), 1, "{changes:?}");
    let mut admin = server.admin_session().await.unwrap();
    assert_grants_mirrored(&mut admin, "app", "app_clone").await;
    server.connect_as("app_clone", "clone-pw-1").await.expect("the clone logs in");
}
