//! The responder against a real HTTP server on loopback that records every PUT: one answer per
//! invocation on every path (success, error, panic, deadline, malformed request), the empty
//! Content-Type, the 4096-byte limit, and retries.

use async_trait::async_trait;
use dbcreds_core::ErrorClass;
use dbcreds_custom_resource::{Context, CustomResource, Failure, MAX_BODY_BYTES, Request, ResponseSender, RetryPolicy, Success, answer};
use dbcreds_runtime::Budget;
use serde_json::{Map, Value, json};
use dbcreds_custom_resource::recorder::{RecordedRequest, ResponseRecorder};
use std::time::Duration;

async fn recorder(script: Vec<u16>) -> ResponseRecorder {
    ResponseRecorder::start(script).await.expect("a loopback port")
}

/// The one request of an invocation.
fn only(server: &ResponseRecorder) -> RecordedRequest {
    let all = server.requests();
    assert_eq!(all.len(), 1, "exactly one response per invocation, got {all:?}");
    all.into_iter().next().unwrap()
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
    let server = recorder(vec![]).await;
    let answered = answer(&event(&server.url("r"), "Create"), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    assert!(answered.delivery.is_ok());
    let put = only(&server);
    assert_eq!(put.method, "PUT");
    assert!(put.target.starts_with("/cloudformation-custom-resource-response/r?X-Amz-Algorithm="), "{}", put.target);
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
    let server = recorder(vec![]).await;
    let reason = "Users[1].Privileges: unknown preset \"admin\"; use readonly, readwrite, owner";
    answer(&event(&server.url("r"), "Create"), budget(), &sender(), &Scripted(Behaviour::Fail(reason.into()))).await.unwrap();
    let body = only(&server).json();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["Reason"], reason);
    assert_eq!(body["PhysicalResourceId"], "chosen-by-the-handler");
}

#[tokio::test]
async fn a_long_reason_fits_in_4096_bytes_and_is_kept() {
    let server = recorder(vec![]).await;
    let reason = format!("DatabaseName: {}", "\"quoted\" and é ".repeat(1000));
    answer(&event(&server.url("r"), "Update"), budget(), &sender(), &Scripted(Behaviour::Fail(reason))).await.unwrap();
    let put = only(&server);
    assert!(put.body.len() <= MAX_BODY_BYTES, "{} bytes", put.body.len());
    let body = put.json();
    assert!(body["Reason"].as_str().unwrap().starts_with("DatabaseName: \"quoted\""), "{body}");
}

#[tokio::test]
async fn a_panic_is_one_failed_naming_the_step() {
    let server = recorder(vec![]).await;
    let answered = answer(&event(&server.url("r"), "Create"), budget(), &sender(), &Scripted(Behaviour::Panic)).await.unwrap();
    assert!(answered.delivery.is_ok());
    let body = only(&server).json();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("creating users") && reason.contains("index out of bounds"), "{reason}");
    assert_eq!(body["PhysicalResourceId"], "chosen-by-the-handler");
}

#[tokio::test]
async fn a_hung_handler_is_answered_failed_before_the_deadline() {
    let server = recorder(vec![]).await;
    // Two seconds in all, one and a half kept back to answer: the handler gets half a second.
    let budget = Budget::from_remaining(Duration::from_secs(2), Duration::from_millis(1500));
    let answered = answer(&event(&server.url("r"), "Delete"), budget, &sender(), &Scripted(Behaviour::Hang)).await.unwrap();
    assert!(answered.delivery.is_ok());
    assert!(tokio::time::Instant::now() < budget.hard_deadline(), "answered before Lambda's deadline");
    let body = only(&server).json();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().starts_with("timed out while creating users"), "{body}");
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_body() {
    let server = recorder(vec![503, 500]).await;
    let answered = answer(&event(&server.url("r"), "Create"), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    let delivery = answered.delivery.unwrap();
    assert_eq!(delivery.attempts, 3);
    let puts = server.requests();
    assert_eq!(puts.len(), 3);
    assert!(puts.iter().all(|p| p.body == puts[0].body));
}

#[tokio::test]
async fn a_refused_url_is_not_retried() {
    let server = recorder(vec![403]).await;
    let answered = answer(&event(&server.url("r"), "Create"), budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    let err = answered.delivery.unwrap_err();
    assert_eq!(err.attempts, 1);
    assert!(err.last_error.contains("403"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_malformed_request_with_a_url_is_answered_failed_once() {
    let server = recorder(vec![]).await;
    let mut bad = event(&server.url("r"), "Update");
    bad.as_object_mut().unwrap().remove("PhysicalResourceId");
    let answered = answer(&bad, budget(), &sender(), &Scripted(Behaviour::Succeed)).await.unwrap();
    assert!(answered.delivery.is_ok());
    let body = only(&server).json();
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
