//! The responder against a real HTTP server on loopback that records every PUT: one answer per
//! invocation on every path (success, error, panic, deadline, malformed request), the empty
//! Content-Type, the 4096-byte limit, and retries.

use async_trait::async_trait;
use dbcreds_core::ErrorClass;
use dbcreds_custom_resource::{Context, CustomResource, Failure, MAX_BODY_BYTES, Request, ResponseSender, RetryPolicy, Success, answer};
use dbcreds_runtime::Budget;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One recorded request.
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    /// Lower-cased header names with their values, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A minimal HTTP/1.1 server: records each request, answers with the next scripted status
/// (200 once the script is used up), and closes the connection.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    async fn start(script: Vec<u16>) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let log = log.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break pos;
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let method = first.next().unwrap_or_default().to_owned();
                    let path = first.next().unwrap_or_default().to_owned();
                    let headers: Vec<(String, String)> =
                        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
                    let length: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                    let mut body = buffer[head_end + 4..].to_vec();
                    while body.len() < length {
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    log.lock().unwrap().push(Recorded { method, path, headers, body });
                    let status = script.lock().unwrap().next().unwrap_or(200);
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Recorder { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/bucket/response?X-Amz-Signature=s3cr3t", self.port)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn only(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(all.len(), 1, "exactly one response per invocation, got {all:?}");
        all.into_iter().next().unwrap()
    }
}

fn event(url: &str, kind: &str) -> Value {
    let mut event = json!({
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/demo/1",
        "RequestId": "req-1",
        "LogicalResourceId": "DatabaseUsers",
        "ResourceType": "Custom::DatabaseUsers",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:p"}
    });
    if kind != "Create" {
        event["PhysicalResourceId"] = json!("existing-id");
    }
    event
}

fn sender() -> ResponseSender {
    let fast = RetryPolicy { attempts: 4, first_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(40), attempt_timeout: Duration::from_secs(5) };
    ResponseSender::from_system_roots().expect("system roots").with_retry(fast)
}

fn budget() -> Budget {
    Budget::from_remaining(Duration::from_secs(30), Duration::from_secs(5))
}

enum Behaviour {
    Succeed,
    Fail(String),
    Panic,
    Hang,
}

struct Scripted(Behaviour);

#[async_trait]
impl CustomResource for Scripted {
    async fn handle(&self, request: &Request, context: &Context) -> Result<Success, Failure> {
        context.set_step("creating users");
        context.set_failure_physical_id("chosen-by-the-handler");
        match &self.0 {
            Behaviour::Succeed => {
                let mut data = Map::new();
                data.insert("DatabaseName".into(), json!("appdb"));
                Ok(Success { physical_resource_id: format!("pid-{}", request.logical_resource_id), data, no_echo: true })
            }
            Behaviour::Fail(reason) => Err(Failure::new(ErrorClass::Input, reason.clone())),
            Behaviour::Panic => panic!("index out of bounds"),
            Behaviour::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
        }
    }
}

#[tokio::test]
async fn success_is_one_put_with_an_empty_content_type() {
    let server = Recorder::start(vec![]).await;
    let answered = answer(&event(&server.url(), "Create"), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    assert!(answered.delivery.is_ok());
    let put = server.only();
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path, "/bucket/response?X-Amz-Signature=s3cr3t");
    assert_eq!(put.header("content-type"), Some(""), "{:?}", put.headers);
    assert_eq!(put.header("content-length").map(|v| v.parse::<usize>().unwrap()), Some(put.body.len()));
    let body = put.json();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "pid-DatabaseUsers");
    assert_eq!(body["StackId"], "arn:aws:cloudformation:eu-west-1:111122223333:stack/demo/1");
    assert_eq!(body["RequestId"], "req-1");
    assert_eq!(body["LogicalResourceId"], "DatabaseUsers");
    assert_eq!(body["NoEcho"], true);
    assert_eq!(body["Data"]["DatabaseName"], "appdb");
}

#[tokio::test]
async fn an_error_is_one_failed_with_the_reason_and_the_handlers_id() {
    let server = Recorder::start(vec![]).await;
    let reason = "Users[1].Privileges: unknown preset \"admin\"; use readonly, readwrite, owner";
    answer(&event(&server.url(), "Create"), budget(), &sender(), &Scripted(Behaviour::Fail(reason.into()))).await.unwrap();
    let body = server.only().json();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["Reason"], reason);
    assert_eq!(body["PhysicalResourceId"], "chosen-by-the-handler");
}

#[tokio::test]
async fn a_long_reason_fits_in_4096_bytes_and_is_kept() {
    let server = Recorder::start(vec![]).await;
    let reason = format!("DatabaseName: {}", "\"quoted\" and é ".repeat(1000));
    answer(&event(&server.url(), "Update"), budget(), &sender(), &Scripted(Behaviour::Fail(reason))).await.unwrap();
    let put = server.only();
    assert!(put.body.len() <= MAX_BODY_BYTES, "{} bytes", put.body.len());
    let body = put.json();
    assert!(body["Reason"].as_str().unwrap().starts_with("DatabaseName: \"quoted\""), "{body}");
}

#[tokio::test]
async fn a_panic_is_one_failed_naming_the_step() {
    let server = Recorder::start(vec![]).await;
    let answered = answer(&event(&server.url(), "Create"), budget(), &sender(), &Scripted(Behaviour::Panic)).await.unwrap();
    assert!(answered.delivery.is_ok());
    let body = server.only().json();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("creating users") && reason.contains("index out of bounds"), "{reason}");
    assert_eq!(body["PhysicalResourceId"], "chosen-by-the-handler");
}

#[tokio::test]
async fn a_hung_handler_is_answered_failed_before_the_deadline() {
    let server = Recorder::start(vec![]).await;
    // Two seconds in all, one and a half kept back to answer: the handler gets half a second.
    let budget = Budget::from_remaining(Duration::from_secs(2), Duration::from_millis(1500));
    let answered = answer(&event(&server.url(), "Delete"), budget, &sender(), &Scripted(Behaviour::Hang)).await.unwrap();
    assert!(answered.delivery.is_ok());
    assert!(tokio::time::Instant::now() < budget.hard_deadline(), "answered before Lambda's deadline");
    let body = server.only().json();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().starts_with("timed out while creating users"), "{body}");
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_body() {
    let server = Recorder::start(vec![503, 500]).await;
    let answered = answer(&event(&server.url(), "Create"), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    let delivery = answered.delivery.unwrap();
    assert_eq!(delivery.attempts, 3);
    let puts = server.requests();
    assert_eq!(puts.len(), 3);
    assert!(puts.iter().all(|p| p.body == puts[0].body));
}

#[tokio::test]
async fn a_refused_url_is_not_retried() {
    let server = Recorder::start(vec![403]).await;
    let answered = answer(&event(&server.url(), "Create"), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    let err = answered.delivery.unwrap_err();
    assert_eq!(err.attempts, 1);
    assert!(err.last_error.contains("403"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_malformed_request_with_a_url_is_answered_failed_once() {
    let server = Recorder::start(vec![]).await;
    let mut bad = event(&server.url(), "Update");
    bad.as_object_mut().unwrap().remove("PhysicalResourceId");
    let answered = answer(&bad, budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    assert!(answered.delivery.is_ok());
    let body = server.only().json();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().starts_with("PhysicalResourceId: is missing"), "{body}");
    assert_eq!(body["RequestId"], "req-1");
}

#[tokio::test]
async fn an_event_without_a_url_cannot_be_answered() {
    let err = answer(&json!({"RequestType": "Create"}), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap_err();
    assert!(err.to_string().contains("ResponseURL"), "{err}");
}

#[tokio::test]
async fn plain_http_to_another_host_is_refused_without_sending() {
    let answered = answer(&event("http://s3.example.com/r?sig=1", "Create"), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    let err = answered.delivery.unwrap_err();
    assert_eq!(err.attempts, 0);
    assert!(err.last_error.contains("plain http"), "{err}");
}
