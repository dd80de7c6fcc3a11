//! What the throwaway MariaDB and PostgreSQL servers share: a private directory holding a copy
//! of the engine's data directory template and the TLS files, a loopback port, the admin
//! account, and the life cycle (start with port retries, kill, stop, restart, drop). The engines
//! ([`crate::MariaDb`], [`crate::Postgres`]) supply only what differs: command line, readiness
//! probe, first-start set-up and driver.

use crate::Rows;
use crate::net::{PORT_ATTEMPTS, free_loopback_port};
use crate::options::{ServerOptions, TlsMode};
use crate::pki::{Pki, ServerTlsFiles};
use crate::random;
use crate::scratch::scratch_dir;
use crate::server_process::{ServerProcess, StartFailure, StartTimings};
use crate::system_user::SystemUser;
use crate::template::copy_tree;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a start or restart (including crash recovery) may take before the test fails.
const READY_LIMIT: Duration = Duration::from_secs(60);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The limit for one admin or `query_as` connection and its statements.
pub(crate) const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// The engine-specific half of a server. Implemented by `MariaDbEngine` and `PostgresEngine`.
#[allow(async_fn_in_trait)]
pub trait Engine: Clone + Send + 'static {
    /// For messages: "MariaDB".
    const NAME: &'static str;
    /// The server program, for messages: "mariadbd".
    const PROGRAM: &'static str;
    /// Names the temporary directory and the log file.
    const SHORT_NAME: &'static str;
    const ADMIN_USER: &'static str;
    /// The signal that asks for a prompt, clean shutdown.
    const SHUTDOWN_SIGNAL: libc::c_int;

    /// The template data directory (built once per machine). Blocking: runs on a blocking thread.
    fn template_data_dir(&self) -> PathBuf;
    /// The account the server runs as, if not the tests' own; it must own the server's files.
    fn server_user(&self) -> Option<&SystemUser>;
    /// Files the first start needs (PostgreSQL: pg_hba.conf; MariaDB: the init file).
    fn prepare(&self, server: &DatabaseServer<Self>);
    fn command(&self, server: &DatabaseServer<Self>, first_start: bool) -> Command;
    /// Whether the server accepts connections now.
    async fn is_ready(&self, server: &DatabaseServer<Self>) -> bool;
    /// Whether this start attempt's log says another process had the port.
    fn port_was_taken(log: &str) -> bool;
    /// Work once the first start is ready (PostgreSQL sets the admin password).
    async fn after_first_start(&self, server: &DatabaseServer<Self>) -> Result<(), String>;
    /// Logs in with the driver (TLS trusting only `ca_pem`, or plaintext with `None`) and runs
    /// SQL, returning the rows as text.
    async fn query(&self, server: &DatabaseServer<Self>, ca_pem: Option<&[u8]>, login: Login<'_>, sql: &str) -> Result<Rows, String>;
}

/// Who logs in, and where.
#[derive(Clone, Copy, Debug)]
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
    /// `None`: the engine's default (PostgreSQL: `postgres`; MariaDB: none selected).
    pub database: Option<&'a str>,
}

pub struct DatabaseServer<E: Engine> {
    engine: E,
    /// Everything of this server: data/, the socket, TLS files, the log. Removed on drop.
    dir: TempDir,
    port: u16,
    options: ServerOptions,
    admin_password: String,
    tls_files: ServerTlsFiles,
    process: Option<ServerProcess>,
    start_timings: StartTimings,
}

impl<E: Engine> DatabaseServer<E> {
    /// Copies the template, writes the TLS files, starts the server on a free port (another,
    /// if the port was taken in between) and waits until it accepts connections.
    pub(crate) async fn start_engine(engine: E, options: ServerOptions) -> Self {
        options.validate();
        let started = Instant::now();
        let dir = scratch_dir(E::SHORT_NAME);
        {
            let (engine, data_dir) = (engine.clone(), dir.path().join("data"));
            tokio::task::spawn_blocking(move || {
                let template = engine.template_data_dir();
                copy_tree(&template, &data_dir).unwrap_or_else(|problem| panic!("cannot copy the {} template: {problem}", E::NAME));
            })
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
        }
        let tls_files = Pki::shared().write_server_files(dir.path(), options.tls, engine.server_user()).unwrap_or_else(|err| panic!("cannot write the {} TLS files: {err}", E::NAME));
        let mut server = DatabaseServer { engine, dir, port: 0, options, admin_password: random::alphanumeric(24), tls_files, process: None, start_timings: StartTimings::default() };
        crate::leak_audit::register_secret(&format!("{} admin password", E::NAME), &server.admin_password);
        server.engine.prepare(&server);
        if let Some(user) = server.engine.server_user() {
            user.chown(server.dir.path()).unwrap_or_else(|err| panic!("cannot hand {} to {}: {err}", server.dir.path().display(), user.name));
        }
        let prepared = started.elapsed();
        server.first_start().await;
        server.start_timings = StartTimings::since(started, prepared);
        server
    }

    /// Always `localhost`: the name in the server certificate (which also holds 127.0.0.1).
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
        E::ADMIN_USER
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
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

    /// The server's private directory (data/, socket, TLS files, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn tls_files(&self) -> &ServerTlsFiles {
        &self.tls_files
    }

    /// The server's own log (every start appends to it).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path()).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
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

    /// SIGKILL to the server and its children at once, as in a crash. `restart` brings it back.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// A clean, prompt shutdown (MariaDB: SIGTERM; PostgreSQL: SIGINT, the "fast" mode that
    /// does not wait for clients to leave), waiting for the exit.
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.shut_down(E::SHUTDOWN_SIGNAL, SHUTDOWN_GRACE).await;
        }
    }

    /// Stops the server if it runs, starts it again on the same data directory and port, and
    /// waits until it accepts connections (after crash recovery, if it was killed).
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(failure) = self.spawn_and_wait(false).await {
            panic!("{} did not restart on port {}: {}", E::NAME, self.port, failure.message);
        }
    }

    /// Runs SQL (several statements allowed) as the admin over verified TLS (plaintext when the
    /// server has TLS off). Panics on error.
    pub async fn admin_exec(&self, sql: &str) {
        if let Err(problem) = self.try_admin_exec(sql).await {
            panic!("{} admin_exec failed: {problem}", E::NAME);
        }
    }

    pub async fn try_admin_exec(&self, sql: &str) -> Result<(), String> {
        self.try_admin_query_strings(sql).await.map(|_| ())
    }

    /// Runs SQL as the admin and returns every row as text (`None` for NULL). Panics on error.
    pub async fn admin_query_strings(&self, sql: &str) -> Rows {
        self.try_admin_query_strings(sql).await.unwrap_or_else(|problem| panic!("{} admin query failed: {problem}", E::NAME))
    }

    pub async fn try_admin_query_strings(&self, sql: &str) -> Result<Rows, String> {
        self.engine.query(self, self.test_ca(), self.admin_login(None), sql).await
    }

    /// The test CA for a client, or `None` (plaintext) when the server has TLS off.
    pub(crate) fn test_ca(&self) -> Option<&[u8]> {
        (self.options.tls != TlsMode::Off).then(|| self.ca_pem())
    }

    pub(crate) fn admin_login<'a>(&'a self, database: Option<&'a str>) -> Login<'a> {
        Login { user: E::ADMIN_USER, password: &self.admin_password, database }
    }

    pub(crate) fn engine(&self) -> &E {
        &self.engine
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", E::SHORT_NAME))
    }

    async fn first_start(&mut self) {
        let mut last_problem = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_loopback_port();
            match self.spawn_and_wait(true).await {
                Ok(()) => {
                    if let Err(problem) = self.engine.after_first_start(self).await {
                        panic!("{} started but its set-up failed: {problem}", E::NAME);
                    }
                    return;
                }
                Err(failure) if failure.port_taken => last_problem = failure.message,
                Err(failure) => panic!("{} did not start: {}", E::NAME, failure.message),
            }
        }
        panic!("{} did not start: every port tried was taken: {last_problem}", E::NAME);
    }

    async fn spawn_and_wait(&mut self, first_start: bool) -> Result<(), StartFailure> {
        let mut command = self.engine.command(self, first_start);
        command.current_dir(self.dir.path());
        let description = format!("{command:?}");
        let log_before = self.log().len();
        let mut process = ServerProcess::spawn(command, &self.log_path())
            .map_err(|err| StartFailure { message: format!("cannot run {}: {err}", E::PROGRAM), port_taken: false })?;
        let outcome = process.wait_until_ready(READY_LIMIT, || self.engine.is_ready(self)).await;
        match outcome {
            Ok(_) => {
                self.process = Some(process);
                Ok(())
            }
            Err(not_ready) => {
                let tail = process.log_tail(30);
                process.kill();
                let port_taken = E::port_was_taken(self.log().get(log_before..).unwrap_or_default());
                Err(StartFailure { message: format!("{} {not_ready}\ncommand: {description}\n{tail}{}", E::PROGRAM, not_ready.hint()), port_taken })
            }
        }
    }
}

impl<E: Engine> Drop for DatabaseServer<E> {
    fn drop(&mut self) {
        self.kill();
    }
}

impl<E: Engine> std::fmt::Debug for DatabaseServer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(E::NAME).field("port", &self.port).field("dir", &self.dir.path()).field("options", &self.options).finish_non_exhaustive()
    }
}
