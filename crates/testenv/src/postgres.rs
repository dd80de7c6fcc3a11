//! A throwaway PostgreSQL server: the machine's `postgres`, a private copy of a template data
//! directory, TLS from the test PKI, SCRAM passwords, 127.0.0.1 and a free port only.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI), initdb and the server run
//! as the `postgres` system user (switched with `CommandExt::uid/gid`, so the spawned pid is the
//! postmaster itself) and the server's files are handed to that user.

use crate::Rows;
use crate::database_server::{CONNECT_LIMIT, DatabaseServer, Engine, Login};
use crate::executables::{find_on_path, is_executable};
use crate::options::{ServerOptions, TlsMode};
use crate::scratch::scratch_dir;
use crate::server_process::{run_as, run_to_completion};
use crate::system_user::{SystemUser, effective_uid, running_as_root};
use crate::template::{LAYOUT_REVISION, template_data_dir, version_key};
use crate::tls_client::{self, error_chain};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;

/// A throwaway PostgreSQL server; see [`DatabaseServer`] for what every server offers.
pub type Postgres = DatabaseServer<PostgresEngine>;

pub const ADMIN_USER: &str = "postgres";
pub const ADMIN_DATABASE: &str = "postgres";

/// The installed PostgreSQL programs, and who runs them.
#[derive(Clone, Debug)]
pub struct PostgresEngine {
    initdb: PathBuf,
    postgres: PathBuf,
    /// The account the server runs as when the tests run as root.
    server_user: Option<SystemUser>,
}

impl Postgres {
    /// Starts a server and waits until it accepts connections. Panics, saying what to fix, if it
    /// cannot.
    pub async fn start(options: ServerOptions) -> Postgres {
        let (initdb, postgres) = find_binaries();
        DatabaseServer::start_engine(PostgresEngine { initdb, postgres, server_user: server_user() }, options).await
    }

    pub fn admin_database(&self) -> &str {
        ADMIN_DATABASE
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        self.dir()
    }

    /// As `try_admin_query_strings`, in another database.
    pub async fn query_as_admin_in(&self, database: &str, sql: &str) -> Result<Rows, String> {
        self.engine().query(self, self.test_ca(), self.admin_login(Some(database)), sql).await
    }

    /// Runs SQL as the superuser over TLS trusting only `ca_pem` (or plaintext with `None`): the
    /// way to prove that the wrong CA or a plaintext client is refused.
    pub async fn query_as_admin_trusting(&self, ca_pem: Option<&[u8]>, database: &str, sql: &str) -> Result<Rows, String> {
        self.engine().query(self, ca_pem, self.admin_login(Some(database)), sql).await
    }

    /// Logs in as `user` with the driver directly (verify-full with the test CA; plaintext when
    /// the server has TLS off) and runs SQL: an independent check of what the code under test
    /// did to an account.
    pub async fn query_as(&self, user: &str, password: &str, database: &str, sql: &str) -> Result<Rows, String> {
        self.engine().query(self, self.test_ca(), Login { user, password, database: Some(database) }, sql).await
    }
}

impl Engine for PostgresEngine {
    const NAME: &'static str = "PostgreSQL";
    const PROGRAM: &'static str = "postgres";
    const SHORT_NAME: &'static str = "postgres";
    const ADMIN_USER: &'static str = ADMIN_USER;
    /// SIGINT is the "fast" shutdown; SIGTERM would be "smart" and wait for every client to leave.
    const SHUTDOWN_SIGNAL: libc::c_int = libc::SIGINT;

    fn template_data_dir(&self) -> PathBuf {
        postgres_template(&self.initdb, &self.postgres, self.server_user.as_ref())
    }

    fn server_user(&self) -> Option<&SystemUser> {
        self.server_user.as_ref()
    }

    /// pg_hba.conf: password logins over TCP from 127.0.0.1 only, SCRAM only; `hostssl` only when
    /// TLS is required. The superuser may log in without a password over the unix socket, which
    /// sits in this server's private directory: that is how the first start sets the generated
    /// password.
    fn prepare(&self, server: &Postgres) {
        let mut lines = vec!["# TYPE  DATABASE  USER  ADDRESS  METHOD".to_string(), format!("local all {ADMIN_USER} trust"), "local all all scram-sha-256".to_string()];
        if server.options().tls != TlsMode::Off {
            lines.push("hostssl all all 127.0.0.1/32 scram-sha-256".to_string());
        }
        if !server.options().require_tls {
            lines.push("host all all 127.0.0.1/32 scram-sha-256".to_string());
        }
        let path = server.dir().join("pg_hba.conf");
        std::fs::write(&path, lines.join("\n") + "\n").expect("write pg_hba.conf");
        if let Some(user) = &self.server_user {
            user.chown(&path).expect("hand pg_hba.conf to the postgres user");
        }
    }

    fn command(&self, server: &Postgres, _first_start: bool) -> Command {
        let dir = server.dir();
        let mut command = Command::new(&self.postgres);
        command.arg("-D").arg(server.data_dir());
        let mut settings: Vec<(&str, String)> = vec![
            ("listen_addresses", "127.0.0.1".into()),
            ("port", server.port().to_string()),
            ("unix_socket_directories", dir.display().to_string()),
            ("unix_socket_permissions", "0700".into()),
            ("hba_file", dir.join("pg_hba.conf").display().to_string()),
            ("password_encryption", "scram-sha-256".into()),
            // Durability against a killed *process* only, which is what kill/restart tests
            // exercise: a commit still writes its WAL to the OS before it returns
            // (synchronous_commit stays on), the OS keeps it, nothing waits for the disk.
            ("fsync", "off".into()),
            ("full_page_writes", "off".into()),
            ("shared_buffers", "16MB".into()),
            ("max_connections", "50".into()),
            ("wal_level", "minimal".into()),
            ("max_wal_senders", "0".into()),
            ("logging_collector", "off".into()),
        ];
        let tls = server.tls_files();
        match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                settings.push(("ssl", "on".into()));
                settings.push(("ssl_cert_file", cert.display().to_string()));
                settings.push(("ssl_key_file", key.display().to_string()));
            }
            _ => settings.push(("ssl", "off".into())),
        }
        if server.options().log_sessions {
            // Every connection (with its TLS state) and statement, each line prefixed with the
            // session's id: `crate::session_log` reads them back.
            settings.push(("log_connections", "on".into()));
            settings.push(("log_statement", "all".into()));
            settings.push(("log_line_prefix", format!("{}%c ", crate::session_log::POSTGRES_PREFIX)));
        }
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        if let Some(user) = &self.server_user {
            run_as(&mut command, user);
        }
        command
    }

    /// Ready means: the superuser can log in over the private socket (refused while the server
    /// is still starting up or recovering).
    async fn is_ready(&self, server: &Postgres) -> bool {
        socket_client(server).await.is_ok()
    }

    fn port_was_taken(log: &str) -> bool {
        log.contains("Address already in use")
    }

    /// Sets the superuser's generated password (stored as SCRAM, per `password_encryption`).
    async fn after_first_start(&self, server: &Postgres) -> Result<(), String> {
        let client = socket_client(server).await.map_err(|err| error_chain(&err))?;
        let sql = format!("ALTER ROLE {ADMIN_USER} PASSWORD '{}'", server.admin_password());
        client.batch_execute(&sql).await.map_err(|err| error_chain(&err))
    }

    async fn query(&self, server: &Postgres, ca_pem: Option<&[u8]>, login: Login<'_>, sql: &str) -> Result<Rows, String> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(server.host())
            .port(server.port())
            .user(login.user)
            .password(login.password)
            .dbname(login.database.unwrap_or(ADMIN_DATABASE))
            .connect_timeout(CONNECT_LIMIT);
        let work = async {
            let client = match ca_pem {
                Some(pem) => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Require);
                    let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*tls_client::trusting(pem)?).clone());
                    let (client, connection) = config.connect(tls).await.map_err(|err| error_chain(&err))?;
                    tokio::spawn(connection);
                    client
                }
                None => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|err| error_chain(&err))?;
                    tokio::spawn(connection);
                    client
                }
            };
            let messages = client.simple_query(sql).await.map_err(|err| error_chain(&err))?;
            Ok(text_rows(messages))
        };
        tokio::time::timeout(CONNECT_LIMIT, work).await.map_err(|_| format!("no answer from PostgreSQL on port {} within {CONNECT_LIMIT:?}", server.port()))?
    }
}

/// `initdb` and `postgres` from `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin,
/// else PATH.
fn find_binaries() -> (PathBuf, PathBuf) {
    let mut candidates = Vec::new();
    if let Some(pg_config) = find_on_path("pg_config") {
        let mut command = Command::new(pg_config);
        command.arg("--bindir");
        if let Ok(bindir) = run_to_completion(command) {
            candidates.push(PathBuf::from(bindir.trim()));
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok().map(|version| (version, entry.path().join("bin"))))
        .collect();
    versioned.sort();
    candidates.extend(versioned.into_iter().rev().map(|(_, bin)| bin));
    for bin in candidates {
        let (initdb, postgres) = (bin.join("initdb"), bin.join("postgres"));
        if is_executable(&initdb) && is_executable(&postgres) {
            return (initdb, postgres);
        }
    }
    match (find_on_path("initdb"), find_on_path("postgres")) {
        (Some(initdb), Some(postgres)) => (initdb, postgres),
        _ => panic!("PostgreSQL server binaries (initdb, postgres) not found via pg_config --bindir, /usr/lib/postgresql/*/bin or PATH: run scripts/setup to install PostgreSQL"),
    }
}

/// The account the server must run as: `postgres` when the tests run as root, else the tests' own.
fn server_user() -> Option<SystemUser> {
    if !running_as_root() {
        return None;
    }
    Some(SystemUser::lookup("postgres").unwrap_or_else(|| {
        panic!("PostgreSQL refuses to run as root and this machine has no 'postgres' system user: run scripts/setup (the postgresql package creates it)")
    }))
}

/// Builds (once per machine) or finds the template data directory.
fn postgres_template(initdb: &Path, postgres: &Path, server_user: Option<&SystemUser>) -> PathBuf {
    let mut version = Command::new(postgres);
    version.arg("--version");
    let version = run_to_completion(version).unwrap_or_else(|problem| panic!("cannot ask postgres for its version: {problem}"));
    let runs_as = server_user.map_or_else(|| format!("uid{}", effective_uid()), |user| format!("as-{}", user.name));
    let key = format!("postgres-{}-{LAYOUT_REVISION}-{runs_as}", version_key(&version));
    template_data_dir(&key, || {
        // In the system temporary directory: the postgres user may not be able to reach the
        // checkout (a home directory is often 0700).
        let scratch = scratch_dir("postgres-template");
        if let Some(user) = server_user {
            user.chown(scratch.path()).map_err(|err| format!("cannot hand {} to {}: {err}", scratch.path().display(), user.name))?;
        }
        let data = scratch.path().join("data");
        let mut command = Command::new(initdb);
        command
            .arg("-D")
            .arg(&data)
            .arg("--no-sync")
            .arg("--encoding=UTF8")
            .arg("--no-locale")
            .arg(format!("--username={ADMIN_USER}"))
            // Replaced per server by our own pg_hba.conf; these only keep initdb quiet.
            .arg("--auth-local=trust")
            .arg("--auth-host=scram-sha-256")
            .current_dir(scratch.path());
        if let Some(user) = server_user {
            run_as(&mut command, user);
        }
        run_to_completion(command)?;
        Ok((scratch, data))
    })
}

async fn socket_client(server: &Postgres) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config.host_path(server.socket_dir()).port(server.port()).user(ADMIN_USER).dbname(ADMIN_DATABASE).connect_timeout(Duration::from_secs(2));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn text_rows(messages: Vec<SimpleQueryMessage>) -> Rows {
    messages
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect()
}
