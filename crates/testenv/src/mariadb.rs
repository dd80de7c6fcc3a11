//! A throwaway MariaDB server: the machine's `mariadbd`, a private copy of a template data
//! directory, TLS from the test PKI, 127.0.0.1 and a free port only, no system configuration.

use crate::Rows;
use crate::database_server::{CONNECT_LIMIT, DatabaseServer, Engine, Login};
use crate::executables::find_on_path;
use crate::options::ServerOptions;
use crate::scratch::scratch_dir;
use crate::server_process::run_to_completion;
use crate::system_user::{SystemUser, effective_uid, running_as_root};
use crate::template::{LAYOUT_REVISION, template_data_dir, version_key};
use crate::tls_client::{self, error_chain};
use mysql_async::prelude::Queryable;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A throwaway MariaDB server; see [`DatabaseServer`] for what every server offers.
pub type MariaDb = DatabaseServer<MariaDbEngine>;

pub const ADMIN_USER: &str = "root";
const INIT_FILE: &str = "init.sql";

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

/// The installed MariaDB programs.
#[derive(Clone, Debug)]
pub struct MariaDbEngine {
    mariadbd: PathBuf,
    install_db: PathBuf,
}

impl MariaDb {
    /// Starts a server and waits until it accepts connections. Panics, saying what to fix, if it
    /// cannot.
    pub async fn start(options: ServerOptions) -> MariaDb {
        let mariadbd = find_on_path("mariadbd").unwrap_or_else(|| panic!("mariadbd not found (looked on PATH and in /usr/sbin): run scripts/setup to install MariaDB"));
        let install_db = find_on_path("mariadb-install-db").unwrap_or_else(|| panic!("mariadb-install-db not found: run scripts/setup to install MariaDB"));
        DatabaseServer::start_engine(MariaDbEngine { mariadbd, install_db }, options).await
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir().join("mariadbd.sock")
    }

    /// Runs SQL as the admin over TLS trusting only `ca_pem` (or plaintext with `None`): the
    /// way to prove that the wrong CA or a plaintext client is refused.
    pub async fn query_as_admin_trusting(&self, ca_pem: Option<&[u8]>, sql: &str) -> Result<Rows, String> {
        self.engine().query(self, ca_pem, self.admin_login(None), sql).await
    }

    /// Logs in as `user` with the driver directly (verify-full with the test CA; plaintext when
    /// the server has TLS off) and runs SQL: an independent check of what the code under test
    /// did to an account.
    pub async fn query_as(&self, user: &str, password: &str, sql: &str) -> Result<Rows, String> {
        self.engine().query(self, self.test_ca(), Login { user, password, database: None }, sql).await
    }
}

impl Engine for MariaDbEngine {
    const NAME: &'static str = "MariaDB";
    const PROGRAM: &'static str = "mariadbd";
    const SHORT_NAME: &'static str = "mariadb";
    const ADMIN_USER: &'static str = ADMIN_USER;
    const SHUTDOWN_SIGNAL: libc::c_int = libc::SIGTERM;

    fn template_data_dir(&self) -> PathBuf {
        mariadb_template(&self.mariadbd, &self.install_db)
    }

    fn server_user(&self) -> Option<&SystemUser> {
        None
    }

    /// The accounts of a fresh server, set by an init file on the first start:
    /// `mariadb-install-db` leaves anonymous users (which shadow `'u'@'%'` logins from 127.0.0.1)
    /// and root rows for 127.0.0.1, ::1 and the host name with no password; all go. The admin is
    /// `root`@`%` (TCP, like an RDS master user) and `root`@`localhost` (socket), both with the
    /// generated password.
    fn prepare(&self, server: &MariaDb) {
        let password = server.admin_password();
        let sql = [
            "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');".to_string(),
            "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';".to_string(),
            "FLUSH PRIVILEGES;".to_string(),
            format!("CREATE USER 'root'@'%' IDENTIFIED BY '{password}';"),
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;".to_string(),
            format!("ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';"),
        ]
        .join("\n");
        let path = server.dir().join(INIT_FILE);
        std::fs::write(&path, sql + "\n").expect("write the MariaDB init file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("restrict the MariaDB init file");
    }

    fn command(&self, server: &MariaDb, first_start: bool) -> Command {
        let dir = server.dir();
        let mut command = Command::new(&self.mariadbd);
        // --no-defaults must come first: no /etc/mysql, no ~/.my.cnf.
        command.arg("--no-defaults");
        command
            .arg(format!("--datadir={}", server.data_dir().display()))
            .arg(format!("--socket={}", server.socket_path().display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg(format!("--port={}", server.port()))
            .arg("--bind-address=127.0.0.1")
            // Accounts are matched by IP; no DNS look-ups on connect.
            .arg("--skip-name-resolve")
            .arg("--performance-schema=OFF")
            .arg("--character-set-server=utf8mb4")
            // Durability against a killed *process* only (a commit reaches the OS, which keeps
            // it), which is what kill/restart tests exercise; no fsync per commit, no doublewrite.
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--innodb-doublewrite=0")
            .arg("--innodb-temp-data-file-path=ibtmp1:1M:autoextend")
            .args(STORAGE_OPTIONS);
        let tls = server.tls_files();
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            command
                .arg(format!("--ssl-ca={}", tls.ca.display()))
                .arg(format!("--ssl-cert={}", cert.display()))
                .arg(format!("--ssl-key={}", key.display()));
        }
        command.arg(format!("--require-secure-transport={}", if server.options().require_tls { "ON" } else { "OFF" }));
        if server.options().log_sessions {
            // Every connection (with its transport) and statement: `crate::session_log`.
            command.arg("--general-log=ON").arg(format!("--general-log-file={}", server.general_log_path().display()));
        }
        if running_as_root() {
            command.arg("--user=root");
        }
        if first_start {
            command.arg(format!("--init-file={}", dir.join(INIT_FILE).display()));
        }
        command
    }

    async fn is_ready(&self, server: &MariaDb) -> bool {
        handshake_received(server.port()).await
    }

    fn port_was_taken(log: &str) -> bool {
        log.contains("Address already in use") || log.contains("Do you already have another server running")
    }

    /// The init file holds the admin password; it has done its work.
    async fn after_first_start(&self, server: &MariaDb) -> Result<(), String> {
        std::fs::remove_file(server.dir().join(INIT_FILE)).map_err(|err| format!("cannot remove the init file: {err}"))
    }

    async fn query(&self, server: &MariaDb, ca_pem: Option<&[u8]>, login: Login<'_>, sql: &str) -> Result<Rows, String> {
        tls_client::install_crypto_provider();
        let ssl = ca_pem.map(|pem| mysql_async::SslOpts::default().with_root_certs(vec![pem.to_vec().into()]).with_disable_built_in_roots(true));
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(server.host())
            .tcp_port(server.port())
            .user(Some(login.user))
            .pass(Some(login.password))
            .db_name(login.database)
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
        tokio::time::timeout(CONNECT_LIMIT, work).await.map_err(|_| format!("no answer from MariaDB on port {} within {CONNECT_LIMIT:?}", server.port()))?
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

