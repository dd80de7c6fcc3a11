//! A throwaway PostgreSQL server: the machine's `postgres`, a private copy of a template data
//! directory, TLS from the test PKI, SCRAM passwords, 127.0.0.1 and a free port only.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI), initdb and the server run
//! as the `postgres` system user (switched with `CommandExt::uid/gid`, so the spawned pid is the
//! postmaster itself) and the server's files are handed to that user.

use crate::scratch::scratch_dir;
use crate::executables::{find_on_path, is_executable};
use crate::net::{PORT_ATTEMPTS, free_loopback_port};
use crate::options::{ServerOptions, TlsMode};
use crate::pki::{Pki, ServerTlsFiles};
use crate::server_process::{ServerProcess, StartFailure, StartTimings, run_as, run_to_completion};
use crate::system_user::{SystemUser, effective_uid, running_as_root};
use crate::template::{LAYOUT_REVISION, copy_tree, template_data_dir, version_key};
use crate::tls_client::{self, error_chain};
use crate::{Rows, random};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_postgres::SimpleQueryMessage;

pub const ADMIN_USER: &str = "postgres";
pub const ADMIN_DATABASE: &str = "postgres";

const READY_LIMIT: Duration = Duration::from_secs(60);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// The installed PostgreSQL programs.
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
}

pub struct Postgres {
    /// Everything of this server: data/, the socket, pg_hba.conf, TLS files, the log.
    dir: TempDir,
    port: u16,
    options: ServerOptions,
    admin_password: String,
    tls_files: ServerTlsFiles,
    postgres: PathBuf,
    /// The account the server runs as when the tests run as root.
    server_user: Option<SystemUser>,
    process: Option<ServerProcess>,
    start_timings: StartTimings,
}

impl Postgres {
    /// Starts a server and waits until it accepts connections. Panics, saying what to fix, if it
    /// cannot.
    pub async fn start(options: ServerOptions) -> Postgres {
        options.validate();
        let binaries = find_binaries();
        let server_user = server_user();
        let started = Instant::now();
        let dir = scratch_dir("postgres");
        let data_dir = dir.path().join("data");
        {
            let (initdb, postgres, user, data_dir) = (binaries.initdb.clone(), binaries.postgres.clone(), server_user.clone(), data_dir.clone());
            tokio::task::spawn_blocking(move || {
                let template = postgres_template(&initdb, &postgres, user.as_ref());
                copy_tree(&template, &data_dir).unwrap_or_else(|problem| panic!("cannot copy the PostgreSQL template: {problem}"));
            })
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
        }
        let tls_files = Pki::shared().write_server_files(dir.path(), options.tls, server_user.as_ref()).expect("write PostgreSQL TLS files");
        let mut server = Postgres { dir, port: 0, options, admin_password: random::alphanumeric(24), tls_files, postgres: binaries.postgres, server_user, process: None, start_timings: StartTimings::default() };
        server.write_hba_file();
        if let Some(user) = &server.server_user {
            user.chown(server.dir.path()).expect("hand the PostgreSQL directory to the postgres user");
        }
        let prepared = started.elapsed();
        server.first_start().await;
        server.start_timings = StartTimings::since(started, prepared);
        server
    }

    pub fn host(&self) -> &str {
        crate::pki::SERVER_NAME
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    pub fn admin_user(&self) -> &str {
        ADMIN_USER
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    pub fn admin_database(&self) -> &str {
        ADMIN_DATABASE
    }

    /// The test CA, which the server's certificate chains to (also when TLS is off).
    pub fn ca_pem(&self) -> &[u8] {
        Pki::shared().ca_pem().as_bytes()
    }

    pub fn ca_pem_path(&self) -> &Path {
        &self.tls_files.ca
    }

    /// A CA the server's certificate does *not* chain to.
    pub fn unrelated_ca_pem(&self) -> &[u8] {
        Pki::shared().unrelated_ca_pem().as_bytes()
    }

    pub fn unrelated_ca_pem_path(&self) -> &Path {
        &self.tls_files.unrelated_ca
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's own log (every start appends to it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the time of `start` went.
    pub fn start_timings(&self) -> StartTimings {
        self.start_timings
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }

    /// SIGKILL to the postmaster and all its backends at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// A fast shutdown (SIGINT: disconnect clients, checkpoint, exit), waiting for the exit.
    /// SIGTERM would be a "smart" shutdown that waits for every client to leave.
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.shut_down(libc::SIGINT, SHUTDOWN_GRACE).await;
        }
    }

    /// Stops the server if it runs, starts it again on the same data directory and port, and
    /// waits until it accepts connections (after crash recovery, if it was killed).
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(failure) = self.spawn_and_wait().await {
            panic!("PostgreSQL did not restart on port {}: {}", self.port, failure.message);
        }
    }

    /// Runs SQL (several statements allowed) as the superuser over verified TLS, in the
    /// `postgres` database. Panics on error.
    pub async fn admin_exec(&self, sql: &str) {
        if let Err(problem) = self.try_admin_exec(sql).await {
            panic!("PostgreSQL admin_exec failed: {problem}");
        }
    }

    pub async fn try_admin_exec(&self, sql: &str) -> Result<(), String> {
        self.try_admin_query_strings(sql).await.map(|_| ())
    }

    /// Runs SQL as the superuser and returns every row as text (`None` for NULL). Panics on error.
    pub async fn admin_query_strings(&self, sql: &str) -> Rows {
        self.try_admin_query_strings(sql).await.unwrap_or_else(|problem| panic!("PostgreSQL admin query failed: {problem}"))
    }

    pub async fn try_admin_query_strings(&self, sql: &str) -> Result<Rows, String> {
        self.query_as_admin_in(ADMIN_DATABASE, sql).await
    }

    /// As `try_admin_query_strings`, in another database.
    pub async fn query_as_admin_in(&self, database: &str, sql: &str) -> Result<Rows, String> {
        let ca = (self.options.tls != TlsMode::Off).then(|| self.ca_pem());
        self.query_as_admin_trusting(ca, database, sql).await
    }

    /// Runs SQL as the superuser over TLS trusting only `ca_pem` (or plaintext with `None`): the
    /// way to prove that the wrong CA or a plaintext client is refused.
    pub async fn query_as_admin_trusting(&self, ca_pem: Option<&[u8]>, database: &str, sql: &str) -> Result<Rows, String> {
        self.query_as_trusting(ca_pem, ADMIN_USER, &self.admin_password, database, sql).await
    }

    /// Logs in as `user` with the driver directly (verify-full with the test CA; plaintext when
    /// the server has TLS off) and runs SQL: an independent check of what the code under test
    /// did to an account.
    pub async fn query_as(&self, user: &str, password: &str, database: &str, sql: &str) -> Result<Rows, String> {
        let ca = (self.options.tls != TlsMode::Off).then(|| self.ca_pem());
        self.query_as_trusting(ca, user, password, database, sql).await
    }

    async fn query_as_trusting(&self, ca_pem: Option<&[u8]>, user: &str, password: &str, database: &str, sql: &str) -> Result<Rows, String> {
        let mut config = tokio_postgres::Config::new();
        config.host(self.host()).port(self.port).user(user).password(password).dbname(database).connect_timeout(CONNECT_LIMIT);
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
        tokio::time::timeout(CONNECT_LIMIT, work).await.map_err(|_| format!("no answer from PostgreSQL on port {} within {CONNECT_LIMIT:?}", self.port))?
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The first start also sets the superuser's password (SCRAM, per `password_encryption`);
    /// a port taken by another process between choice and bind is retried with a new port.
    async fn first_start(&mut self) {
        let mut last_problem = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_loopback_port();
            match self.spawn_and_wait().await {
                Ok(()) => {
                    let sql = format!("ALTER ROLE {ADMIN_USER} PASSWORD '{}'", self.admin_password);
                    if let Err(problem) = self.socket_exec(&sql).await {
                        panic!("PostgreSQL started but setting the superuser password failed: {problem}");
                    }
                    return;
                }
                Err(failure) if failure.port_taken => last_problem = failure.message,
                Err(failure) => panic!("PostgreSQL did not start: {}", failure.message),
            }
        }
        panic!("PostgreSQL did not start: every port tried was taken: {last_problem}");
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        let command = self.server_command();
        let description = format!("{command:?}");
        let log_before = self.log().len();
        let mut process = ServerProcess::spawn(command, &self.log_path())
            .map_err(|err| StartFailure { message: format!("cannot run {}: {err}", self.postgres.display()), port_taken: false })?;
        let (socket_dir, port) = (self.dir.path().to_path_buf(), self.port);
        let outcome = process.wait_until_ready(READY_LIMIT, || socket_accepts_login(socket_dir.clone(), port)).await;
        match outcome {
            Ok(_) => {
                self.process = Some(process);
                Ok(())
            }
            Err(not_ready) => {
                let tail = process.log_tail(30);
                process.kill();
                let port_taken = self.log().get(log_before..).unwrap_or_default().contains("Address already in use");
                Err(StartFailure { message: format!("postgres {not_ready}\ncommand: {description}\n{tail}{}", not_ready.hint()), port_taken })
            }
        }
    }

    fn server_command(&self) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(&self.postgres);
        command.arg("-D").arg(dir.join("data"));
        let mut settings: Vec<(&str, String)> = vec![
            ("listen_addresses", "127.0.0.1".into()),
            ("port", self.port.to_string()),
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
        match (&self.tls_files.cert, &self.tls_files.key) {
            (Some(cert), Some(key)) => {
                settings.push(("ssl", "on".into()));
                settings.push(("ssl_cert_file", cert.display().to_string()));
                settings.push(("ssl_key_file", key.display().to_string()));
            }
            _ => settings.push(("ssl", "off".into())),
        }
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        if let Some(user) = &self.server_user {
            run_as(&mut command, user);
        }
        command.current_dir(dir);
        command
    }

    /// Password logins over TCP from 127.0.0.1 only, SCRAM only; `hostssl` only when TLS is
    /// required. The superuser may log in without a password over the unix socket, which sits in
    /// this server's private directory: that is how start-up sets the generated password.
    fn write_hba_file(&self) {
        let mut lines = vec!["# TYPE  DATABASE  USER  ADDRESS  METHOD".to_string(), format!("local all {ADMIN_USER} trust"), "local all all scram-sha-256".to_string()];
        if self.options.tls != TlsMode::Off {
            lines.push("hostssl all all 127.0.0.1/32 scram-sha-256".to_string());
        }
        if !self.options.require_tls {
            lines.push("host all all 127.0.0.1/32 scram-sha-256".to_string());
        }
        let path = self.dir.path().join("pg_hba.conf");
        std::fs::write(&path, lines.join("\n") + "\n").expect("write pg_hba.conf");
        if let Some(user) = &self.server_user {
            user.chown(&path).expect("hand pg_hba.conf to the postgres user");
        }
    }

    async fn socket_exec(&self, sql: &str) -> Result<(), String> {
        let client = socket_client(self.dir.path().to_path_buf(), self.port).await.map_err(|err| error_chain(&err))?;
        client.batch_execute(sql).await.map_err(|err| error_chain(&err))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("port", &self.port).field("dir", &self.dir.path()).field("options", &self.options).finish_non_exhaustive()
    }
}

/// `initdb` and `postgres` from `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin,
/// else PATH.
fn find_binaries() -> Binaries {
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
            return Binaries { initdb, postgres };
        }
    }
    match (find_on_path("initdb"), find_on_path("postgres")) {
        (Some(initdb), Some(postgres)) => Binaries { initdb, postgres },
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

/// Ready means: the superuser can log in over the private socket (refused while the server is
/// still starting up or recovering).
async fn socket_accepts_login(socket_dir: PathBuf, port: u16) -> bool {
    socket_client(socket_dir, port).await.is_ok()
}

async fn socket_client(socket_dir: PathBuf, port: u16) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config.host_path(socket_dir).port(port).user(ADMIN_USER).dbname(ADMIN_DATABASE).connect_timeout(Duration::from_secs(2));
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
