//! An HTTP proxy in front of moto that counts every AWS API call and injects the failures AWS
//! services really produce: throttling, 5xx, hung calls, and answers lost after the call was
//! applied.
//!
//! Point a function at it with [`HttpFaultProxy::redirect_env`] (it rewrites `AWS_ENDPOINT_URL*`
//! in an environment such as [`crate::Moto::env`]). Every request is relayed to moto unchanged
//! unless an armed rule picks it.
//!
//! **Call counting** ([`HttpFaultProxy::calls`]): the proxy relays through an
//! [`AwsCallCounter`], so calls are counted exactly as issue 8's benchmarks count them
//! (`secretsmanager.GetSecretValue`, `sts.AssumeRole`; SDK retries are separate calls). A call
//! answered by an injected fault without reaching moto is not in that count; it is in
//! [`HttpFaultProxy::injected`]. Rules name actions the same way.
//!
//! **Faults** ([`HttpRule`], armed with [`HttpFaultProxy::arm`]): the n-th call (1-based, counted
//! since arming) matching an action, and the `times - 1` matching calls after it, get:
//! - [`HttpFault::Throttle`]: 400 `ThrottlingException` (query protocols: `Throttling`), not relayed;
//! - [`HttpFault::ServerError`]: a 5xx (`InternalServiceError` / `ServiceUnavailable`), not relayed;
//! - [`HttpFault::FailAfterForward`]: relayed (so applied), then the answer is replaced by a 5xx;
//! - [`HttpFault::Hang`]: not relayed, never answered: the client's own timeout ends it;
//! - [`HttpFault::HangAfterForward`]: relayed (applied), never answered;
//! - [`HttpFault::Reset`]: not relayed; the connection is closed without an answer;
//! - [`HttpFault::Delay`]: relayed after a pause;
//! - [`HttpFault::Reject`]: not relayed; the service's error of that status and code (say 400
//!   `AccessDeniedException` or `DecryptionFailure`), as a permanent refusal rather than a
//!   transient one.
//!
//! **AWS's PutSecretValue semantics** ([`HttpFaultProxy::aws_put_semantics`]): moto silently
//! overwrites a version when PutSecretValue repeats its ClientRequestToken, where AWS answers the
//! identical request with success and a different value with `ResourceExistsException`. With the
//! option on, the proxy checks the version first (one GetSecretValue to moto, serialised with
//! other puts) and answers as AWS does, so races between concurrent deliveries play out as they
//! would against the service.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use super::aws_calls::{AwsCallCounter, AwsCalls, action_of};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};

/// A hung call is let go after this long even if the client is still waiting, so that nothing
/// outlives a test by much.
const HANG_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFault {
    Throttle,
    ServerError(u16),
    FailAfterForward(u16),
    Hang,
    HangAfterForward,
    Reset,
    Delay(Duration),
    /// A permanent error of the service: the status and the error code.
    Reject(u16, &'static str),
}

impl HttpFault {
    /// A short name for figures.
    pub fn kind(&self) -> &'static str {
        match self {
            HttpFault::Throttle => "aws_throttle",
            HttpFault::ServerError(_) => "aws_5xx",
            HttpFault::FailAfterForward(_) => "aws_5xx_after_applied",
            HttpFault::Hang => "aws_hang",
            HttpFault::HangAfterForward => "aws_hang_after_applied",
            HttpFault::Reset => "aws_reset",
            HttpFault::Delay(_) => "aws_delay",
            HttpFault::Reject(..) => "aws_reject",
        }
    }
}

/// Which calls a fault hits: the `nth` call of `action` (`None`: of any action) since arming, and
/// the `times - 1` matching calls after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRule {
    pub action: Option<String>,
    pub nth: u64,
    pub times: u64,
    pub fault: HttpFault,
}

impl HttpRule {
    pub fn new(action: Option<&str>, nth: u64, times: u64, fault: HttpFault) -> HttpRule {
        HttpRule { action: action.map(str::to_owned), nth, times, fault }
    }
}

struct ArmedRule {
    rule: HttpRule,
    seen: u64,
}

struct Shared {
    /// The call counter in front of moto: every relayed call goes through it.
    upstream: String,
    /// moto itself, for the proxy's own look-ups (which are not the function's calls).
    moto: String,
    client: Client<HttpConnector, Full<Bytes>>,
    rules: Mutex<Vec<ArmedRule>>,
    injected: Mutex<BTreeMap<&'static str, u64>>,
    aws_put_semantics: AtomicBool,
    /// Serialises PutSecretValue when AWS's semantics are emulated (check, then write).
    put_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    fn count_injected(&self, kind: &'static str) {
        *lock(&self.injected).entry(kind).or_default() += 1;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct HttpFaultProxy {
    port: u16,
    shared: Arc<Shared>,
    counter: AwsCallCounter,
    task: JoinHandle<()>,
}

impl HttpFaultProxy {
    /// Listens on 127.0.0.1:<free port> and relays to `moto` (`http://127.0.0.1:<moto port>`,
    /// [`crate::Moto::endpoint`]) through a call counter.
    pub async fn start(moto: &str) -> HttpFaultProxy {
        let counter = AwsCallCounter::start(moto).await;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the HTTP fault proxy on 127.0.0.1");
        let port = listener.local_addr().expect("a bound listener has an address").port();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            upstream: counter.endpoint(),
            moto: moto.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            rules: Mutex::new(Vec::new()),
            injected: Mutex::new(BTreeMap::new()),
            aws_put_semantics: AtomicBool::new(false),
            put_lock: tokio::sync::Mutex::new(()),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        HttpFaultProxy { port, shared, counter, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `env` with every `AWS_ENDPOINT_URL*` pointed at this proxy (added if absent).
    pub fn redirect_env(&self, env: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = env.into_iter().filter(|(name, _)| !name.starts_with("AWS_ENDPOINT_URL")).collect();
        env.push(("AWS_ENDPOINT_URL".to_owned(), self.endpoint()));
        env
    }

    /// Replaces the rules; matching calls are counted from here.
    pub fn arm(&self, rules: Vec<HttpRule>) {
        *lock(&self.shared.rules) = rules.into_iter().map(|rule| ArmedRule { rule, seen: 0 }).collect();
    }

    pub fn disarm(&self) {
        self.arm(Vec::new());
    }

    /// Answer repeated PutSecretValue tokens as AWS does (see the module documentation).
    pub fn aws_put_semantics(&self, on: bool) {
        self.shared.aws_put_semantics.store(on, Ordering::SeqCst);
    }

    /// The calls that reached moto, per action (`secretsmanager.PutSecretValue`).
    pub fn calls(&self) -> AwsCalls {
        self.counter.calls()
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.shared.injected).clone()
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection (hung ones too).
        self.task.abort();
    }
}

impl std::fmt::Debug for HttpFaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFaultProxy").field("port", &self.port).field("upstream", &self.shared.upstream).finish_non_exhaustive()
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(shared.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// The fault for this call, if an armed rule picks it.
fn pick_fault(shared: &Shared, action: &str) -> Option<HttpFault> {
    let mut rules = lock(&shared.rules);
    let mut chosen = None;
    for armed in rules.iter_mut() {
        if armed.rule.action.as_deref().is_some_and(|wanted| wanted != action) {
            continue;
        }
        armed.seen += 1;
        let window = armed.rule.nth..armed.rule.nth + armed.rule.times.max(1);
        if chosen.is_none() && window.contains(&armed.seen) {
            chosen = Some(armed.rule.fault);
        }
    }
    chosen
}

type ProxyResponse = Response<Full<Bytes>>;

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<ProxyResponse, ResetConnection> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    let action = action_of(&parts, &body);
    let json_protocol = parts.headers.contains_key("x-amz-target");
    let fault = pick_fault(&shared, &action);
    if let Some(fault) = fault {
        shared.count_injected(fault.kind());
    }
    let forward = || forward(&shared, &parts, body.clone(), &action);
    let response = match fault {
        None => forward().await,
        Some(HttpFault::Delay(pause)) => {
            tokio::time::sleep(pause).await;
            forward().await
        }
        Some(HttpFault::Throttle) => {
            let code = if json_protocol { "ThrottlingException" } else { "Throttling" };
            error_response(StatusCode::BAD_REQUEST, code, "Rate exceeded", json_protocol)
        }
        Some(HttpFault::ServerError(status)) => server_error(status, json_protocol),
        Some(HttpFault::Reject(status, code)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            error_response(status, code, "refused by the fault proxy", json_protocol)
        }
        Some(HttpFault::FailAfterForward(status)) => {
            let _applied = forward().await;
            server_error(status, json_protocol)
        }
        Some(HttpFault::Hang) => hang().await,
        Some(HttpFault::HangAfterForward) => {
            let _applied = forward().await;
            hang().await
        }
        // An error from the service makes hyper close the connection without writing an answer.
        Some(HttpFault::Reset) => return Err(ResetConnection),
    };
    Ok(response)
}

/// The service's error: hyper then drops the connection without writing a response, and the
/// client sees it closed mid-call, as when a load balancer drops it.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for ResetConnection {}

async fn hang() -> ProxyResponse {
    tokio::time::sleep(HANG_LIMIT).await;
    server_error(503, true)
}

fn server_error(status: u16, json_protocol: bool) -> ProxyResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match (status == StatusCode::SERVICE_UNAVAILABLE, json_protocol) {
        (true, _) => "ServiceUnavailable",
        (false, true) => "InternalServiceError",
        (false, false) => "InternalFailure",
    };
    error_response(status, code, "injected by the fault proxy", json_protocol)
}

fn error_response(status: StatusCode, code: &str, message: &str, json_protocol: bool) -> ProxyResponse {
    let request_id = crate::random::uuid_v4();
    let builder = Response::builder().status(status).header("x-amzn-requestid", &request_id);
    let response = if json_protocol {
        builder
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-errortype", code)
            .body(Full::new(Bytes::from(json!({"__type": code, "message": message}).to_string())))
    } else {
        let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
        builder.header("content-type", "text/xml").body(Full::new(Bytes::from(format!(
            "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ))))
    };
    response.expect("valid response")
}

async fn forward(shared: &Shared, parts: &http::request::Parts, body: Bytes, action: &str) -> ProxyResponse {
    if action == "secretsmanager.PutSecretValue" && shared.aws_put_semantics.load(Ordering::SeqCst) {
        let _serialised = shared.put_lock.lock().await;
        if let Some(answer) = repeated_put(shared, parts, &body).await {
            return answer;
        }
        return relay(shared, parts, body).await;
    }
    relay(shared, parts, body).await
}

/// AWS's answer to a PutSecretValue whose token already names a version with a value; `None`
/// when the version does not exist yet (the put goes through).
async fn repeated_put(shared: &Shared, parts: &http::request::Parts, body: &Bytes) -> Option<ProxyResponse> {
    let put: Value = serde_json::from_slice(body).ok()?;
    let token = put.get("ClientRequestToken")?.as_str()?;
    let secret_id = put.get("SecretId")?.as_str()?;
    let mut probe = parts.clone();
    probe.headers.insert("x-amz-target", HeaderValue::from_static("secretsmanager.GetSecretValue"));
    let probe_body = Bytes::from(json!({"SecretId": secret_id, "VersionId": token}).to_string());
    let existing = relay_to(shared, &shared.moto, &probe, probe_body).await;
    if existing.status() != StatusCode::OK {
        return None;
    }
    let existing: Value = serde_json::from_slice(&existing.into_body().collect().await.ok()?.to_bytes()).ok()?;
    let same = existing.get("SecretString") == put.get("SecretString") && existing.get("SecretBinary") == put.get("SecretBinary");
    shared.count_injected("aws_put_repeat_emulated");
    if same {
        let answer = json!({"ARN": existing["ARN"], "Name": existing["Name"], "VersionId": token, "VersionStages": existing["VersionStages"]});
        return Some(
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-requestid", crate::random::uuid_v4())
                .body(Full::new(Bytes::from(answer.to_string())))
                .expect("valid response"),
        );
    }
    Some(error_response(
        StatusCode::BAD_REQUEST,
        "ResourceExistsException",
        "You can't modify an existing version, you can only create a new version.",
        true,
    ))
}

async fn relay(shared: &Shared, parts: &http::request::Parts, body: Bytes) -> ProxyResponse {
    relay_to(shared, &shared.upstream, parts, body).await
}

async fn relay_to(shared: &Shared, upstream: &str, parts: &http::request::Parts, body: Bytes) -> ProxyResponse {
    let path = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let mut request = Request::builder().method(parts.method.clone()).uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            request = request.header(name, value);
        }
    }
    let request = request.body(Full::new(body)).expect("a valid relayed request");
    match shared.client.request(request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
            let mut answer = Response::builder().status(parts.status);
            for (name, value) in &parts.headers {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    answer = answer.header(name, value);
                }
            }
            answer.body(Full::new(body)).expect("a valid relayed response")
        }
        // moto is gone: what a client would see from a dead endpoint behind a load balancer.
        Err(_) => server_error(502, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_pick_their_window_of_matching_calls() {
        let shared = Shared {
            upstream: String::new(),
            moto: String::new(),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            rules: Mutex::new(Vec::new()),
            injected: Mutex::new(BTreeMap::new()),
            aws_put_semantics: AtomicBool::new(false),
            put_lock: tokio::sync::Mutex::new(()),
        };
        *lock(&shared.rules) = vec![
            ArmedRule { rule: HttpRule::new(Some("secretsmanager.PutSecretValue"), 2, 2, HttpFault::Throttle), seen: 0 },
            ArmedRule { rule: HttpRule::new(None, 3, 1, HttpFault::ServerError(500)), seen: 0 },
        ];
        let picks: Vec<Option<HttpFault>> = ["secretsmanager.PutSecretValue", "secretsmanager.DescribeSecret", "secretsmanager.PutSecretValue", "secretsmanager.PutSecretValue", "secretsmanager.PutSecretValue"].iter().map(|a| pick_fault(&shared, a)).collect();
        assert_eq!(picks, vec![None, None, Some(HttpFault::Throttle), Some(HttpFault::Throttle), None]);
    }
}
