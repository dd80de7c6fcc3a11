//! An HTTP proxy in front of moto that counts every AWS call it forwards, per API action.
//!
//! Point a function's `AWS_ENDPOINT_URL` at [`AwsCallCounter::endpoint`] (or take
//! [`AwsCallCounter::env`]) and the counts say what the function asked for, independently of
//! any counter inside the code under test. A call is counted when it arrives, before it is
//! forwarded, so a retried call counts twice, as it costs twice.
//!
//! The action comes from `X-Amz-Target` (`secretsmanager.GetSecretValue`) for the JSON
//! protocols, or from the form body's `Action=` for the query protocols, prefixed with the
//! signing name of the request's SigV4 credential scope (`sts.AssumeRole`,
//! `rds.DescribeDBInstances`).
//!
//! [`AwsCallCounter::time_in_calls`] adds up how long the calls took, from the request's arrival
//! to the answer leaving the proxy (moto's time plus the proxy's), so a benchmark can tell the
//! share of a step spent waiting on the AWS side from the share that is the function's own.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::{JoinHandle, JoinSet};

/// Calls per action, keyed `<service>.<Action>` (`secretsmanager.DescribeSecret`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsCalls(BTreeMap<String, u64>);

impl AwsCalls {
    /// Calls of one action: `get("secretsmanager.GetSecretValue")`.
    pub fn get(&self, action: &str) -> u64 {
        self.0.get(action).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Only the calls to one service (`"secretsmanager"`).
    pub fn of_service(&self, service: &str) -> AwsCalls {
        let prefix = format!("{service}.");
        AwsCalls(self.0.iter().filter(|(action, _)| action.starts_with(&prefix)).map(|(a, n)| (a.clone(), *n)).collect())
    }

    /// The calls made after `earlier` was taken.
    pub fn since(&self, earlier: &AwsCalls) -> AwsCalls {
        AwsCalls(self.0.iter().map(|(action, n)| (action.clone(), n - earlier.get(action))).filter(|(_, n)| *n > 0).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(action, n)| (action.as_str(), *n))
    }
}

/// `DescribeSecret×4 GetSecretValue×1 ...` (actions without their service), for messages.
impl std::fmt::Display for AwsCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self.0.iter().map(|(action, n)| format!("{}×{n}", action.rsplit('.').next().unwrap_or(action))).collect();
        f.write_str(&parts.join(" "))
    }
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    counts: Mutex<BTreeMap<String, u64>>,
    /// Nanoseconds spent answering calls, summed.
    busy_nanos: AtomicU64,
}

pub struct AwsCallCounter {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl AwsCallCounter {
    /// Starts a proxy on 127.0.0.1:<free port> that forwards to `upstream` (`http://127.0.0.1:5000`,
    /// moto's [`crate::Moto::endpoint`]).
    pub async fn start(upstream: &str) -> AwsCallCounter {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind the AWS call counter on 127.0.0.1");
        let address = listener.local_addr().expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            counts: Mutex::new(BTreeMap::new()),
            busy_nanos: AtomicU64::new(0),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        AwsCallCounter { address, shared, server }
    }

    /// `http://127.0.0.1:<port>`: use it where moto's endpoint would go.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `env` (moto's, see [`crate::Moto::env`]) with every AWS endpoint variable pointed at this
    /// proxy instead.
    pub fn env(&self, env: Vec<(String, String)>) -> Vec<(String, String)> {
        env.into_iter().map(|(name, value)| if name.starts_with("AWS_ENDPOINT_URL") { (name, self.endpoint()) } else { (name, value) }).collect()
    }

    /// Everything counted so far.
    pub fn calls(&self) -> AwsCalls {
        AwsCalls(self.shared.counts.lock().expect("counts").clone())
    }

    /// How long the calls counted so far took, added up (arrival at the proxy to the answer
    /// leaving it: moto's time and the proxy's own hop).
    pub fn time_in_calls(&self) -> Duration {
        Duration::from_nanos(self.shared.busy_nanos.load(Ordering::SeqCst))
    }
}

impl Drop for AwsCallCounter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for AwsCallCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCallCounter").field("endpoint", &self.endpoint()).field("upstream", &self.shared.upstream).finish_non_exhaustive()
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| forward(shared.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn forward(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let response = relay(&shared, request).await;
    shared.busy_nanos.fetch_add(u64::try_from(arrived.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
    Ok(response)
}

async fn relay(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    let action = action_of(&parts, &body);
    *shared.counts.lock().expect("counts").entry(action).or_insert(0) += 1;

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = Request::builder().method(parts.method.clone()).uri(format!("{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let upstream = upstream.body(Full::new(body)).expect("a request rebuilt from a valid one");
    let response = match shared.client.request(upstream).await {
        Ok(response) => response,
        Err(err) => return bad_gateway(&format!("the AWS call counter could not reach {}: {err}", shared.upstream)),
    };
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return bad_gateway(&format!("{} broke off its answer: {err}", shared.upstream)),
    };
    Response::from_parts(parts, Full::new(body))
}

fn bad_gateway(message: &str) -> Response<Full<Bytes>> {
    Response::builder().status(StatusCode::BAD_GATEWAY).body(Full::new(Bytes::from(message.to_string()))).expect("valid response")
}

/// `secretsmanager.GetSecretValue`, `sts.AssumeRole`, or `other GET /path` for what is not an
/// AWS API call.
pub(super) fn action_of(parts: &http::request::Parts, body: &[u8]) -> String {
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.to_string();
    }
    let form_action = std::str::from_utf8(body).ok().and_then(|text| text.split('&').find_map(|pair| pair.strip_prefix("Action=")));
    match form_action {
        Some(action) => format!("{}.{action}", signing_service(parts).unwrap_or("unknown")),
        None => format!("other {} {}", parts.method, parts.uri.path()),
    }
}

/// The service of a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/20260101/us-east-1/sts/aws4_request`).
fn signing_service(parts: &http::request::Parts) -> Option<&str> {
    let authorization = parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scope = authorization.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = Request::builder().method("POST").uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn actions_come_from_the_target_header_or_the_query_form() {
        assert_eq!(action_of(&parts(&[("X-Amz-Target", "secretsmanager.DescribeSecret")]), b"{}"), "secretsmanager.DescribeSecret");
        let signed = parts(&[("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00")]);
        assert_eq!(action_of(&signed, b"Action=AssumeRole&Version=2011-06-15"), "sts.AssumeRole");
        assert_eq!(action_of(&parts(&[]), b"Version=1&Action=DescribeDBInstances"), "unknown.DescribeDBInstances");
        assert_eq!(action_of(&parts(&[]), b""), "other POST /");
    }

    #[test]
    fn counts_subtract_and_filter_by_service() {
        let earlier = AwsCalls(BTreeMap::from([("secretsmanager.DescribeSecret".into(), 2)]));
        let now = AwsCalls(BTreeMap::from([("secretsmanager.DescribeSecret".into(), 5), ("sts.AssumeRole".into(), 1)]));
        let since = now.since(&earlier);
        assert_eq!(since.get("secretsmanager.DescribeSecret"), 3);
        assert_eq!(since.total(), 4);
        assert_eq!(since.of_service("secretsmanager").total(), 3);
        assert_eq!(since.to_string(), "DescribeSecret×3 AssumeRole×1");
    }
}
