//! A throwaway MariaDB server: the machine's `mariadbd`, a private copy of a template data
//! directory, TLS from the test PKI, 127.0.0.1 and a free port only, no system configuration.

use crate::scratch::scratch_dir;
use crate::executables::find_on_path;
use crate::net::{PORT_ATTEMPTS, free_loopback_port};
use crate::options::{ServerOptions, TlsMode};
use crate::pki::{Pki, ServerTlsFiles};
use crate::server_process::{ServerProcess, StartFailure, StartTimings, run_to_completion};
use crate::system_user::{effective_uid, running_as_root};
use crate::template::{LAYOUT_REVISION, copy_tree, template_data_dir, version_key};
use crate::tls_client::{self, error_chain};
use crate::{Rows, random};
use mysql_async::prelude::Queryable;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const ADMIN_USER: &str = "root";

/// How long a start or restart (including InnoDB crash recovery) may take before the test fails.
const READY_LIMIT: Duration = Duration::from_secs(60);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// Storage sizes shared by `mariadb-install-db` and every server start (InnoDB refuses a data
/// file path that differs from the one it was created with). Small on purpose: the defaults
/// (a 96 MiB redo log, a system tablespace that grows 64 MiB at a time) make every copy of the
/// template ~80 MiB instead of ~20.
const STORAGE_OPTIONS: &[&str] = &[
    "--innodb-log-file-size=4M",
    "--innodb-buffer-pool-size=16M",
    "--innodb-data-file-path=ibdata1:4M:autoextend",
    "--innodb-autoextend-increment=1",
];

pub struct MariaDb {
    /// Everything of this server: data/, the socket, TLS files, the log. Removed on drop.
    dir: TempDir,
    port: u16,
    options: ServerOptions,
    admin_password: String,
    tls_files: ServerTlsFiles,
    mariadbd: PathBuf,
    process: Option<ServerProcess>,
    start_timings: StartTimings,
}

impl MariaDb {
    /// Starts a server and waits until it accepts connections. Panics, saying what to fix, if it
    /// cannot.
    pub async fn start(options: ServerOptions) -> MariaDb {
        options.validate();
        let mariadbd = find_on_path("mariadbd").unwrap_or_else(|| panic!("mariadbd not found (looked on PATH and in /usr/sbin): run scripts/setup to install MariaDB"));
        let install_db = find_on_path("mariadb-install-db").unwrap_or_else(|| panic!("mariadb-install-db not found: run scripts/setup to install MariaDB"));
        let started = Instant::now();
        let dir = scratch_dir("mariadb");
        {
            let (mariadbd, data_dir) = (mariadbd.clone(), dir.path().join("data"));
            tokio::task::spawn_blocking(move || {
                let template = mariadb_template(&mariadbd, &install_db);
                copy_tree(&template, &data_dir).unwrap_or_else(|problem| panic!("cannot copy the MariaDB template: {problem}"));
            })
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
        }
        let tls_files = Pki::shared().write_server_files(dir.path(), options.tls, None).expect("write MariaDB TLS files");
        let prepared = started.elapsed();
        let mut server = MariaDb { dir, port: 0, options, admin_password: random::alphanumeric(24), tls_files, mariadbd, process: None, start_timings: StartTimings::default() };
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

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
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

    /// SIGKILL: the server dies mid-whatever, as in a crash. `restart` brings it back.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// A clean shutdown (SIGTERM), waiting for the server to exit.
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.shut_down(libc::SIGTERM, SHUTDOWN_GRACE).await;
        }
    }

    /// Stops the server if it runs, starts it again on the same data directory and port, and
    /// waits until it accepts connections (after crash recovery, if it was killed).
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(failure) = self.spawn_and_wait(None).await {
            panic!("MariaDB did not restart on port {}: {}", self.port, failure.message);
        }
    }

    /// Runs SQL (several statements allowed) as the admin over verified TLS. Panics on error.
    pub async fn admin_exec(&self, sql: &str) {
        if let Err(problem) = self.try_admin_exec(sql).await {
            panic!("MariaDB admin_exec failed: {problem}");
        }
    }

    pub async fn try_admin_exec(&self, sql: &str) -> Result<(), String> {
        self.try_admin_query_strings(sql).await.map(|_| ())
    }

    /// Runs SQL as the admin and returns every row as text (`None` for NULL). Panics on error.
    pub async fn admin_query_strings(&self, sql: &str) -> Rows {
        self.try_admin_query_strings(sql).await.unwrap_or_else(|problem| panic!("MariaDB admin query failed: {problem}"))
    }

    pub async fn try_admin_query_strings(&self, sql: &str) -> Result<Rows, String> {
        let ca = (self.options.tls != TlsMode::Off).then(|| self.ca_pem());
        self.query_as_admin_trusting(ca, sql).await
    }

    /// Runs SQL as the admin over TLS trusting only `ca_pem` (or plaintext with `None`): the
    /// way to prove that the wrong CA or a plaintext client is refused.
    pub async fn query_as_admin_trusting(&self, ca_pem: Option<&[u8]>, sql: &str) -> Result<Rows, String> {
        self.query_as_trusting(ca_pem, ADMIN_USER, &self.admin_password, sql).await
    }

    /// Logs in as `user` with the driver directly (verify-full with the test CA; plaintext when
    /// the server has TLS off) and runs SQL: an independent check of what the code under test
    /// did to an account.
    pub async fn query_as(&self, user: &str, password: &str, sql: &str) -> Result<Rows, String> {
        let ca = (self.options.tls != TlsMode::Off).then(|| self.ca_pem());
        self.query_as_trusting(ca, user, password, sql).await
    }

    async fn query_as_trusting(&self, ca_pem: Option<&[u8]>, user: &str, password: &str, sql: &str) -> Result<Rows, String> {
        tls_client::install_crypto_provider();
        let ssl = ca_pem.map(|pem| mysql_async::SslOpts::default().with_root_certs(vec![pem.to_vec().into()]).with_disable_built_in_roots(true));
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host())
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            // By default the driver switches to the unix socket when it talks to localhost,
            // which would bypass TLS entirely.
            .prefer_socket(false)
            .ssl_opts(ssl);
        let work = async {
            let mut conn = mysql_async::Conn::new(opts).await.map_err(|err| error_chain(&err))?;
            let rows = collect_text_rows(&mut conn, sql).await;
            let _ = conn.disconnect().await;
            rows
        };
        tokio::time::timeout(CONNECT_LIMIT, work).await.map_err(|_| format!("no answer from MariaDB on port {} within {CONNECT_LIMIT:?}", self.port))?
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }

    /// The first start also runs the init file that sets the admin password; a port taken by
    /// another process between choice and bind is retried with a new port.
    async fn first_start(&mut self) {
        let init_file = self.write_init_file();
        let mut last_problem = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_loopback_port();
            match self.spawn_and_wait(Some(&init_file)).await {
                Ok(()) => {
                    let _ = std::fs::remove_file(&init_file);
                    return;
                }
                Err(failure) if failure.port_taken => last_problem = failure.message,
                Err(failure) => panic!("MariaDB did not start: {}", failure.message),
            }
        }
        panic!("MariaDB did not start: every port tried was taken: {last_problem}");
    }

    async fn spawn_and_wait(&mut self, init_file: Option<&Path>) -> Result<(), StartFailure> {
        let command = self.server_command(init_file);
        let description = format!("{command:?}");
        let log_before = self.log().len();
        let mut process = ServerProcess::spawn(command, &self.log_path())
            .map_err(|err| StartFailure { message: format!("cannot run {}: {err}", self.mariadbd.display()), port_taken: false })?;
        let port = self.port;
        let outcome = process.wait_until_ready(READY_LIMIT, || handshake_received(port)).await;
        match outcome {
            Ok(_) => {
                self.process = Some(process);
                Ok(())
            }
            Err(not_ready) => {
                let tail = process.log_tail(30);
                process.kill();
                let port_taken = port_was_taken(self.log().get(log_before..).unwrap_or_default());
                Err(StartFailure { message: format!("mariadbd {not_ready}\ncommand: {description}\n{tail}{}", not_ready.hint()), port_taken })
            }
        }
    }

    fn server_command(&self, init_file: Option<&Path>) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(&self.mariadbd);
        // --no-defaults must come first: no /etc/mysql, no ~/.my.cnf.
        command.arg("--no-defaults");
        command
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            // Accounts are matched by IP; no DNS look-ups on connect.
            .arg("--skip-name-resolve")
            .arg("--performance-schema=OFF")
            .arg("--character-set-server=utf8mb4")
            // Durability against a killed *process* only (the OS keeps what was written), which is
            // what kill/restart tests exercise; no fsync per commit, no doublewrite.
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--innodb-doublewrite=0")
            .arg("--innodb-temp-data-file-path=ibtmp1:1M:autoextend")
            .args(STORAGE_OPTIONS);
        if let (Some(cert), Some(key)) = (&self.tls_files.cert, &self.tls_files.key) {
            command
                .arg(format!("--ssl-ca={}", self.tls_files.ca.display()))
                .arg(format!("--ssl-cert={}", cert.display()))
                .arg(format!("--ssl-key={}", key.display()));
        }
        command.arg(format!("--require-secure-transport={}", if self.options.require_tls { "ON" } else { "OFF" }));
        if running_as_root() {
            command.arg("--user=root");
        }
        if let Some(init_file) = init_file {
            command.arg(format!("--init-file={}", init_file.display()));
        }
        command.current_dir(dir);
        command
    }

    /// The accounts of a fresh server: `mariadb-install-db` leaves anonymous users (which shadow
    /// `'u'@'%'` logins from 127.0.0.1) and root rows for 127.0.0.1, ::1 and the host name with no
    /// password; all go. The admin is `root`@`%` (TCP, like an RDS master user) and
    /// `root`@`localhost` (socket), both with the generated password.
    fn write_init_file(&self) -> PathBuf {
        let password = &self.admin_password;
        let sql = [
            "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');".to_string(),
            "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';".to_string(),
            "FLUSH PRIVILEGES;".to_string(),
            format!("CREATE USER 'root'@'%' IDENTIFIED BY '{password}';"),
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;".to_string(),
            format!("ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';"),
        ]
        .join("\n");
        let path = self.dir.path().join("init.sql");
        std::fs::write(&path, sql + "\n").expect("write the MariaDB init file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("restrict the MariaDB init file");
        path
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDb").field("port", &self.port).field("dir", &self.dir.path()).field("options", &self.options).finish_non_exhaustive()
    }
}

/// Builds (once per machine) or finds the template data directory.
fn mariadb_template(mariadbd: &Path, install_db: &Path) -> PathBuf {
    let mut version = Command::new(mariadbd);
    version.arg("--version");
    let version = run_to_completion(version).unwrap_or_else(|problem| panic!("cannot ask mariadbd for its version: {problem}"));
    let key = format!("mariadb-{}-{LAYOUT_REVISION}-uid{}", version_key(&version), effective_uid());
    template_data_dir(&key, || {
        let scratch = scratch_dir("mariadb-template");
        let data = scratch.path().join("data");
        let mut command = Command::new(install_db);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            // root gets a password login (set per server), not only unix_socket authentication.
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args(STORAGE_OPTIONS)
            .current_dir(scratch.path());
        if running_as_root() {
            command.arg("--user=root");
        }
        run_to_completion(command)?;
        Ok((scratch, data))
    })
}

/// Whether the server sent its protocol greeting on TCP: it does so only once start-up,
/// including the init file, is complete.
async fn handshake_received(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return false };
    let mut header = [0u8; 5];
    match tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut header)).await {
        // 3 bytes length, 1 byte sequence, then protocol version 10 (an error packet starts 0xff).
        Ok(Ok(_)) => header[4] == 10,
        _ => false,
    }
}

async fn collect_text_rows(conn: &mut mysql_async::Conn, sql: &str) -> Result<Rows, String> {
    let mut result = conn.query_iter(sql).await.map_err(|err| error_chain(&err))?;
    let mut rows = Vec::new();
    // A multi-statement text query has one result set per statement.
    while !result.is_empty() {
        let set: Vec<mysql_async::Row> = result.collect().await.map_err(|err| error_chain(&err))?;
        rows.extend(set.into_iter().map(|row| row.unwrap().into_iter().map(value_as_text).collect()));
    }
    Ok(rows)
}

fn value_as_text(value: mysql_async::Value) -> Option<String> {
    use mysql_async::Value;
    match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(n) => Some(n.to_string()),
        Value::Double(n) => Some(n.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn port_was_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("Do you already have another server running")
}
