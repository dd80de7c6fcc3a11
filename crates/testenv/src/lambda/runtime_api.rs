//! The Lambda Runtime API (2018-06-01) as one execution environment sees it, over HTTP/1 on
//! 127.0.0.1:<free port>:
//!
//! - `GET  /2018-06-01/runtime/invocation/next`: blocks until an event is queued, then returns it
//!   with the `Lambda-Runtime-*` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error`;
//! - `POST /2018-06-01/runtime/init/error`.
//!
//! Each execution environment (each process, each cold start) gets its own server, so nothing a
//! killed process left behind (a half-open `/next` poll) can steal the next process's event.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

const PREFIX: &str = "/2018-06-01/runtime/";

/// An event waiting for the function to ask for it.
pub struct PendingInvocation {
    pub request_id: String,
    pub body: Bytes,
    /// The function's budget, counted from the moment it receives the event (as Lambda does).
    pub timeout: Duration,
    pub function_arn: String,
    pub trace_id: String,
    /// Told when the function has received the event.
    pub delivered: oneshot::Sender<Instant>,
    /// Told the function's answer.
    pub reply: oneshot::Sender<RuntimeReply>,
}

/// What the function posted for an invocation, and when.
pub struct RuntimeReply {
    pub at: Instant,
    pub result: Result<Bytes, FunctionError>,
}

/// An error as the runtime reports it (`errorType`, `errorMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<PendingInvocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<RuntimeReply>>>,
    first_poll: OnceLock<Instant>,
    init_error: watch::Sender<Option<FunctionError>>,
}

pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<PendingInvocation>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the Lambda Runtime API emulator on 127.0.0.1");
        let address = listener.local_addr().expect("a bound listener has an address");
        let (events, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
            init_error: watch::Sender::new(None),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        RuntimeApi { address, shared, events, server }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn queue(&self, invocation: PendingInvocation) {
        // The receiver lives as long as `self`, so this cannot fail.
        let _ = self.events.send(invocation);
    }

    /// When the function first asked for an event: the end of its init phase.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.first_poll.get().copied()
    }

    pub fn init_errors(&self) -> watch::Receiver<Option<FunctionError>> {
        self.shared.init_error.subscribe()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every open connection.
        self.server.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(shared.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
        // Reap finished connections so the set does not grow over a long benchmark.
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let Some(route) = path.strip_prefix(PREFIX) else { return Ok(not_found(&path)) };
    let response = match (request.method(), route) {
        (&Method::GET, "invocation/next") => next_invocation(&shared).await,
        (&Method::POST, "init/error") => {
            let error = function_error(request).await;
            shared.init_error.send_replace(Some(error));
            accepted()
        }
        (&Method::POST, route) if route.starts_with("invocation/") => {
            let rest = &route["invocation/".len()..];
            if let Some(request_id) = rest.strip_suffix("/response") {
                let request_id = request_id.to_string();
                let body = request.into_body().collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
                complete(&shared, &request_id, Ok(body))
            } else if let Some(request_id) = rest.strip_suffix("/error") {
                let request_id = request_id.to_string();
                let error = function_error(request).await;
                complete(&shared, &request_id, Err(error))
            } else {
                not_found(&path)
            }
        }
        _ => not_found(&path),
    };
    Ok(response)
}

async fn next_invocation(shared: &Shared) -> Response<Full<Bytes>> {
    shared.first_poll.get_or_init(Instant::now);
    let Some(invocation) = shared.events.lock().await.recv().await else {
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"errorType":"ServiceException","errorMessage":"the execution environment is shutting down"}"#);
    };
    let deadline = SystemTime::now() + invocation.timeout;
    let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    shared.in_flight.lock().expect("in-flight map").insert(invocation.request_id.clone(), invocation.reply);
    let _ = invocation.delivered.send(Instant::now());
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", &invocation.request_id)
        .header("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string())
        .header("Lambda-Runtime-Invoked-Function-Arn", &invocation.function_arn)
        .header("Lambda-Runtime-Trace-Id", &invocation.trace_id)
        .body(Full::new(invocation.body))
        .expect("valid response")
}

fn complete(shared: &Shared, request_id: &str, result: Result<Bytes, FunctionError>) -> Response<Full<Bytes>> {
    let waiting = shared.in_flight.lock().expect("in-flight map").remove(request_id);
    match waiting {
        Some(reply) => {
            let _ = reply.send(RuntimeReply { at: Instant::now(), result });
            accepted()
        }
        // What Lambda answers for an unknown or already answered request id.
        None => json_response(StatusCode::BAD_REQUEST, r#"{"errorType":"InvalidRequestID","errorMessage":"Invalid request ID"}"#),
    }
}

/// Reads an error posted by the runtime: a JSON body with `errorType`/`errorMessage`, the type
/// also in the `Lambda-Runtime-Function-Error-Type` header. A body that is not that shape is kept
/// verbatim as the message, so nothing the function said is lost.
async fn function_error(request: Request<Incoming>) -> FunctionError {
    let header_type = request.headers().get("Lambda-Runtime-Function-Error-Type").and_then(|value| value.to_str().ok()).map(str::to_string);
    let body = request.into_body().collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |name: &str| parsed.as_ref().and_then(|value| value.get(name)).and_then(|value| value.as_str()).map(str::to_string);
    FunctionError {
        error_type: field("errorType").or(header_type).unwrap_or_else(|| "Unknown".to_string()),
        error_message: field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
    }
}

fn accepted() -> Response<Full<Bytes>> {
    json_response(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

fn not_found(path: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"errorType": "NotFound", "errorMessage": format!("no such Runtime API route: {path}")}).to_string();
    json_response(StatusCode::NOT_FOUND, &body)
}

fn json_response(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder().status(status).header("Content-Type", "application/json").body(Full::new(Bytes::from(body.to_string()))).expect("valid response")
}
