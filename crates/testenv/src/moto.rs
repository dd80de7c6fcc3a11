//! moto in server mode: Secrets Manager, STS and RDS on a loopback port, one per test.
//!
//! moto comes from the repo-local virtualenv that `scripts/setup` creates (`<workspace>/.venv`,
//! pinned in `scripts/requirements-test.txt`), never from whatever Python the machine has.

use crate::scratch::scratch_dir;
use crate::net::{PORT_ATTEMPTS, free_loopback_port};
use crate::paths::workspace_root;
use crate::server_process::{ServerProcess, StartFailure};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

pub const REGION: &str = "us-east-1";
/// moto accepts any credentials; these are the values its documentation uses.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";
/// moto's default account id.
pub const ACCOUNT_ID: &str = "123456789012";

/// Importing moto's server takes a couple of seconds on a cold page cache.
const READY_LIMIT: Duration = Duration::from_secs(60);

pub struct Moto {
    /// Holds the log.
    dir: TempDir,
    port: u16,
    process: ServerProcess,
}

impl Moto {
    /// Starts moto and waits until it answers HTTP. Panics with what to do if moto is missing.
    pub async fn start() -> Moto {
        let executable = moto_server_path();
        let dir = scratch_dir("moto");
        let log_path = dir.path().join("moto.log");
        let mut last_problem = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_loopback_port();
            let mut command = Command::new(&executable);
            command.arg("-H").arg("127.0.0.1").arg("-p").arg(port.to_string()).current_dir(dir.path());
            let description = format!("{command:?}");
            let log_before = std::fs::metadata(&log_path).map(|m| m.len() as usize).unwrap_or(0);
            let mut process = ServerProcess::spawn(command, &log_path).unwrap_or_else(|err| panic!("cannot run {}: {err}", executable.display()));
            match process.wait_until_ready(READY_LIMIT, || answers_http(port)).await {
                Ok(_) => return Moto { dir, port, process },
                Err(not_ready) => {
                    let tail = process.log_tail(30);
                    process.kill();
                    let log = std::fs::read(&log_path).unwrap_or_default();
                    let failure = StartFailure {
                        message: format!("moto_server {not_ready}\ncommand: {description}\n{tail}{}", not_ready.hint()),
                        port_taken: String::from_utf8_lossy(log.get(log_before..).unwrap_or_default()).contains("Address already in use"),
                    };
                    if !failure.port_taken {
                        panic!("moto did not start: {}", failure.message);
                    }
                    last_problem = failure.message;
                }
            }
        }
        panic!("moto did not start: every port tried was taken: {last_problem}");
    }

    /// `http://127.0.0.1:<port>`: the endpoint for every AWS service moto emulates.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn region(&self) -> &str {
        REGION
    }

    /// The account id moto puts in every ARN.
    pub fn account_id(&self) -> &str {
        ACCOUNT_ID
    }

    /// The environment that points an AWS SDK (a Lambda binary, a CLI) at this moto and nowhere
    /// else: no instance metadata look-ups, no profile or credentials files of the developer.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
    }

    /// An SDK configuration for this moto, for tests that seed or inspect secrets.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "dbcreds-testenv"))
            .load()
            .await
    }

    /// moto's own log (one line per request).
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }
}

impl Drop for Moto {
    /// Every secret and session credential this moto held goes to the log-leak audit's records
    /// (see [`crate::leak_audit`]) before moto stops.
    fn drop(&mut self) {
        crate::leak_audit::register_moto_secrets(self.port);
    }
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto").field("endpoint", &self.endpoint()).finish_non_exhaustive()
    }
}

fn moto_server_path() -> PathBuf {
    let root = workspace_root();
    let executable = root.join(".venv/bin/moto_server");
    if !crate::executables::is_executable(&executable) {
        panic!("moto not installed ({} is missing): run scripts/setup", executable.display());
    }
    executable
}

/// moto answers its own API once the server is up.
async fn answers_http(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return false };
    let request = format!("GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut status_line = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut status_line)).await {
        Ok(Ok(_)) => status_line.starts_with(b"HTTP/1.1 200") || status_line.starts_with(b"HTTP/1.0 200"),
        _ => false,
    }
}
