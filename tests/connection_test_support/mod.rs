//! Shared by `tests/connection_test_*.rs`: running the `connection-test` binary, reading its
//! response, and making network failures happen for real on loopback.
#![allow(dead_code)] // each test file uses its own subset

use dbcreds_testenv::{LambdaFunction, Moto, Outcome};
use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

pub const BINARY: &str = "connection-test";

/// Long enough for every phase's own deadline, so a phase is never cut by the budget.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials that sign tokens locally (no network call) when no role is assumed and no moto
/// is needed: the tests of DNS, TCP and TLS failures run in IAM mode without a role.
pub fn offline_aws_env() -> Vec<(String, String)> {
    pairs(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAOFFLINEEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "offline-secret-access-key"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        // Nothing may be called: an AWS call would go here and fail loudly.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ])
}

pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub async fn start(env: Vec<(String, String)>) -> LambdaFunction {
    LambdaFunction::start(BINARY, env).await
}

/// Invokes and returns the response and the invocation's logs. The function must answer with a
/// result, never a Lambda error: `aws lambda invoke` has to show the diagnosis.
pub async fn invoke(function: &mut LambdaFunction, event: Value) -> (Value, String) {
    invoke_within(function, event, TIMEOUT).await
}

/// As [`invoke`], with the function's timeout set to `timeout`.
pub async fn invoke_within(function: &mut LambdaFunction, event: Value, timeout: Duration) -> (Value, String) {
    let invocation = function.invoke(event, timeout).await;
    let logs = invocation.logs.clone();
    let response = match invocation.outcome {
        Outcome::Ok(value) => value,
        other => panic!("the function must answer with a result, got {other:?}\nlogs:\n{logs}"),
    };
    assert_eq!(response["headers"]["Content-Type"], "application/json", "{response}");
    for line in logs.lines().filter(|line| line.starts_with('{')) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|err| panic!("a log line is not JSON ({err}): {line}"));
    }
    (response, logs)
}

/// `(phase, status)` of every phase reported, in order.
pub fn phases(response: &Value) -> Vec<(String, String)> {
    response["diagnostics"]["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases in {response}"))
        .iter()
        .map(|p| (p["phase"].as_str().unwrap().to_owned(), p["status"].as_str().unwrap().to_owned()))
        .collect()
}

pub fn expect_phases(response: &Value, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(phases(response), expected, "{}", pretty(response));
}

/// The failure's phase and class, the status, and the body naming both.
pub fn expect_failure(response: &Value, phase: &str, class: &str, status: u16) {
    let failure = &response["diagnostics"]["failure"];
    assert_eq!((failure["phase"].as_str(), failure["class"].as_str()), (Some(phase), Some(class)), "{}", pretty(response));
    assert_eq!(response["statusCode"], status, "{}", pretty(response));
    assert_eq!(response["body"], format!("Database connection failed in phase {phase}: {class}"));
    assert!(failure["hint"].as_str().is_some_and(|hint| hint.len() > 20), "a hint an operator can act on: {failure}");
}

pub fn failure_message(response: &Value) -> String {
    response["diagnostics"]["failure"]["message"].as_str().unwrap_or_default().to_owned()
}

pub fn failure_hint(response: &Value) -> String {
    response["diagnostics"]["failure"]["hint"].as_str().unwrap_or_default().to_owned()
}

pub fn expect_success(response: &Value) {
    assert_eq!(response["statusCode"], 200, "{}", pretty(response));
    assert_eq!(response["body"], "Database connection was successful!");
    assert!(response["diagnostics"].get("failure").is_none(), "{}", pretty(response));
    let keys: Vec<&String> = response.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["statusCode", "headers", "body", "diagnostics"], "the AWS sample's keys, then diagnostics");
}

/// None of `secrets` appears in the response or the logs.
pub fn expect_absent(response: &Value, logs: &str, secrets: &[&str]) {
    let text = response.to_string();
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "a secret leaked into the response");
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    // Any part of an IAM token would show these.
    for marker in ["X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential"] {
        assert!(!text.contains(marker) && !logs.contains(marker), "part of a token leaked ({marker})");
    }
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

/// A loopback port nobody listens on: the kernel answers a SYN with a reset.
pub fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A loopback port whose SYNs are dropped, so a TCP connect gets no answer at all, as behind a
/// security group that does not allow the port.
///
/// How: a listener with a backlog of 0 that never accepts. Linux queues one completed
/// connection; once the accept queue is full it *drops* further SYNs (the `ListenOverflows`
/// counter of /proc/net/netstat), and the client retransmits until it gives up. The queue is
/// filled here, and proven full by a connect that gets no answer, before the port is returned.
/// Everything stays on 127.0.0.1. Keep the returned value alive while the port is in use.
pub struct SynDroppingPort {
    pub port: u16,
    _listener: tokio::net::TcpListener,
    _queued: Vec<TcpStream>,
}

pub async fn syn_dropping_port() -> SynDroppingPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(stream) => queued.push(stream),
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut || err.kind() == std::io::ErrorKind::WouldBlock => {
                return SynDroppingPort { port: address.port(), _listener: listener, _queued: queued };
            }
            Err(err) => panic!("filling the accept queue of {address}: {err}"),
        }
    }
    panic!("the accept queue of {address} never filled: this kernel does not drop SYNs on a full backlog");
}

/// A loopback listener that accepts TCP connections and never says anything: the database
/// handshake stalls after TCP succeeds (a port served by something that is not the database,
/// or packets lost after the handshake). Stops when dropped.
pub struct SilentListener {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SilentListener { port, stop }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The Linux counter of SYNs dropped because an accept queue was full (system-wide).
pub fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if names.starts_with("TcpExt:") {
            let index = names.split_whitespace().position(|name| name == "ListenOverflows")?;
            return values.split_whitespace().nth(index)?.parse().ok();
        }
    }
    None
}

/// Stores a secret in moto and returns its ARN.
pub async fn put_secret(moto: &Moto, name: &str, value: &Value) -> String {
    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let created = client.create_secret().name(name).secret_string(value.to_string()).send().await.expect("create the secret in moto");
    created.arn().expect("moto returns the ARN").to_owned()
}
