//! The responder that always answers, exactly once.
//!
//! [`answer`] reads the envelope, runs the resource's handler, and sends one response:
//! - the handler's SUCCESS or FAILED;
//! - FAILED when the handler panics (caught with `catch_unwind`; the release profile keeps
//!   `panic = "unwind"` for this);
//! - FAILED when the invocation's work deadline comes ([`Budget::deadline`], which keeps a reserve
//!   before Lambda's own deadline): a handler still running a moment after it is abandoned, and
//!   the reserve is spent answering;
//! - FAILED when the event is malformed but names a ResponseURL.
//!
//! Only an event without a usable ResponseURL goes unanswered: there is nobody to answer.

use crate::request::{EnvelopeError, Request, RequestType};
use crate::response::{Response, Status, fnv1a};
use crate::transport::{Delivery, DeliveryError, ResponseSender};
use async_trait::async_trait;
use dbcreds_core::ErrorClass;
use dbcreds_core::sanitize::for_log;
use dbcreds_runtime::Budget;
use futures_util::FutureExt;
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Kept back from Lambda's deadline when sending: the process must still be alive to log the
/// outcome after the last attempt.
const SEND_MARGIN: Duration = Duration::from_millis(300);

/// What a handler returns on success.
#[derive(Clone, Debug, PartialEq)]
pub struct Success {
    pub physical_resource_id: String,
    pub data: Map<String, Value>,
    pub no_echo: bool,
}

/// What a handler returns on failure. `reason` is what the stack events show: say what failed
/// and what to fix, and never include a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    pub reason: String,
}

impl Failure {
    pub fn new(class: ErrorClass, reason: impl Into<String>) -> Self {
        Self { class, reason: reason.into() }
    }
}

impl From<dbcreds_core::InputError> for Failure {
    fn from(err: dbcreds_core::InputError) -> Self {
        Failure::new(ErrorClass::Input, format!("{err}; nothing was changed"))
    }
}

/// What a handler can tell the responder while it works.
pub struct Context {
    budget: Budget,
    state: Mutex<ContextState>,
}

struct ContextState {
    failure_physical_id: String,
    step: &'static str,
}

impl Context {
    pub fn new(budget: Budget, failure_physical_id: String) -> Self {
        Self { budget, state: Mutex::new(ContextState { failure_physical_id, step: "starting" }) }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The physical id to answer with if the handler fails, panics or runs out of time from
    /// here on. A Create that has started changing things sets the id its Delete will need.
    pub fn set_failure_physical_id(&self, id: impl Into<String>) {
        self.lock().failure_physical_id = id.into();
    }

    pub fn failure_physical_id(&self) -> String {
        self.lock().failure_physical_id.clone()
    }

    /// Names what the handler is doing, for the reason of a timeout or a panic.
    pub fn set_step(&self, step: &'static str) {
        self.lock().step = step;
    }

    pub fn step(&self) -> &'static str {
        self.lock().step
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ContextState> {
        // A panic while holding this lock cannot leave it inconsistent: every field is replaced whole.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A custom resource: one handler for the three request types.
#[async_trait]
pub trait CustomResource: Send + Sync {
    async fn handle(&self, request: &Request, context: &Context) -> Result<Success, Failure>;
}

/// What happened to one invocation.
#[derive(Debug)]
pub struct Answered {
    pub response: Response,
    pub delivery: Result<Delivery, DeliveryError>,
}

/// An event that could not be answered at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unanswerable(pub EnvelopeError);

/// The physical id a failed request answers with when the handler has not chosen one: the
/// request's own on Update and Delete; on Create, an id that names the failed request, so the
/// rollback Delete can tell that nothing was created under it.
pub fn default_failure_physical_id(request: &Request) -> String {
    match &request.physical_resource_id {
        Some(id) => id.clone(),
        None => not_created_physical_id(request),
    }
}

/// `<LogicalResourceId>-not-created-<hash>`: deterministic per request, so a duplicate delivery
/// answers the same.
pub fn not_created_physical_id(request: &Request) -> String {
    let hash = fnv1a(format!("{}\n{}", request.stack_id, request.request_id).as_bytes());
    format!("{}-{NOT_CREATED_MARKER}-{hash:016x}", request.logical_resource_id)
}

/// Marks a physical id under which nothing was created.
pub const NOT_CREATED_MARKER: &str = "not-created";

pub fn is_not_created_physical_id(id: &str) -> bool {
    id.rsplit_once('-').is_some_and(|(head, hash)| hash.len() == 16 && head.ends_with(NOT_CREATED_MARKER))
}

/// Handles one invocation and answers it exactly once.
pub async fn answer(event: &Value, budget: Budget, sender: &ResponseSender, resource: &dyn CustomResource) -> Result<Answered, Unanswerable> {
    let started = Instant::now();
    let request = match Request::from_event(event) {
        Ok(request) => request,
        Err(err) => {
            let Some(partial) = err.partial.as_ref() else {
                tracing::error!(step = "request", error_class = "input", error = %err, "event has no usable ResponseURL; nobody can be answered");
                return Err(Unanswerable(err));
            };
            tracing::error!(step = "request", error_class = "input", error = %err, "malformed request; answering FAILED");
            let reason = format!("{}; the request was malformed and nothing was done", err.error);
            let response = Response::failed(partial, default_failure_physical_id(partial), reason);
            let delivery = deliver(sender, partial, &response, &budget).await;
            return Ok(Answered { response, delivery });
        }
    };
    let span = tracing::info_span!(
        "custom_resource",
        request_type = %request.request_type,
        logical_resource_id = %dbcreds_core::sanitize::field(&request.logical_resource_id),
        request_id = %dbcreds_core::sanitize::field(&request.request_id),
    );
    Ok(handle_request(request, budget, sender, resource, started).instrument(span).await)
}

async fn handle_request(request: Request, budget: Budget, sender: &ResponseSender, resource: &dyn CustomResource, started: Instant) -> Answered {
    tracing::info!(step = "request", physical_resource_id = request.physical_resource_id.as_deref().unwrap_or(""), "request received");

    let context = Context::new(budget, default_failure_physical_id(&request));
    let work = AssertUnwindSafe(resource.handle(&request, &context)).catch_unwind();
    let outcome = tokio::select! {
        outcome = work => match outcome {
            Ok(result) => Outcome::Finished(result),
            Err(panic) => Outcome::Panicked(panic_message(panic.as_ref())),
        },
        () = tokio::time::sleep_until(abandon_at(&budget)) => Outcome::TimedOut,
    };
    let response = match outcome {
        Outcome::Finished(Ok(success)) => Response::success(&request, success.physical_resource_id, success.data, success.no_echo),
        Outcome::Finished(Err(failure)) => {
            tracing::error!(step = context.step(), error_class = failure.class.as_str(), reason = %failure.reason, "request failed");
            Response::failed(&request, context.failure_physical_id(), failure.reason)
        }
        Outcome::Panicked(message) => {
            tracing::error!(step = context.step(), error_class = "internal", panic = %message, "handler panicked");
            let reason = format!("unexpected internal error while {}: {message}; this is a bug, report it with the function's log. The request is safe to retry", context.step());
            Response::failed(&request, context.failure_physical_id(), reason)
        }
        Outcome::TimedOut => {
            let left = budget.hard_deadline().saturating_duration_since(Instant::now());
            tracing::error!(step = context.step(), error_class = "deadline", left_ms = left.as_millis() as u64, "work deadline reached; answering FAILED before Lambda stops the function");
            let reason = format!(
                "timed out while {}: stopped {} s before the function's timeout to answer in time; raise the function's Timeout or check what is slow (database or AWS API reachability). The request is safe to retry",
                context.step(),
                left.as_secs()
            );
            Response::failed(&request, context.failure_physical_id(), reason)
        }
    };
    let delivery = deliver(sender, &request, &response, &budget).await;
    tracing::info!(
        step = "respond",
        status = response.status.as_str(),
        physical_resource_id = %response.physical_resource_id,
        delivered = delivery.is_ok(),
        duration_ms = started.elapsed().as_millis() as u64,
        "request answered"
    );
    if request.request_type == RequestType::Delete && response.status == Status::Failed {
        tracing::warn!(step = "respond", "a failed Delete leaves the stack in DELETE_FAILED; fix the cause and retry the delete, or retain the resource");
    }
    Answered { response, delivery }
}

/// When a handler that is still running is abandoned: a moment after the work deadline. A
/// handler bounds its own operations by the work deadline and reports their failure itself (a
/// clearer reason: what it was doing and why it stopped); this timer is for one that does not.
fn abandon_at(budget: &Budget) -> Instant {
    let reserve = budget.hard_deadline().saturating_duration_since(budget.deadline());
    budget.deadline() + ABANDON_GRACE.min(reserve / 4)
}

/// See [`abandon_at`].
const ABANDON_GRACE: Duration = Duration::from_millis(500);

enum Outcome {
    Finished(Result<Success, Failure>),
    Panicked(String),
    TimedOut,
}

async fn deliver(sender: &ResponseSender, request: &Request, response: &Response, budget: &Budget) -> Result<Delivery, DeliveryError> {
    let body = response.to_body();
    let until = budget.hard_deadline().checked_sub(SEND_MARGIN).unwrap_or_else(|| budget.hard_deadline());
    let result = sender.send(&request.response_url, body, until.max(Instant::now() + Duration::from_millis(200))).await;
    match &result {
        Ok(delivery) => tracing::info!(step = "respond", attempts = delivery.attempts, http_status = delivery.status, url = %request.response_url, "response delivered"),
        Err(err) => tracing::error!(step = "respond", error_class = "aws", attempts = err.attempts, error = %err, url = %request.response_url, "response NOT delivered: CloudFormation waits until the resource's ServiceTimeout"),
    }
    result
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    };
    for_log(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> Request {
        Request::from_event(&json!({
            "RequestType": "Create", "ResponseURL": "https://example.com/r", "StackId": "s", "RequestId": "r",
            "LogicalResourceId": "DatabaseUsers", "ResourceProperties": {}
        }))
        .unwrap()
    }

    #[test]
    fn not_created_ids_are_recognised_and_deterministic() {
        let id = not_created_physical_id(&request());
        assert!(id.starts_with("DatabaseUsers-not-created-"), "{id}");
        assert_eq!(id, not_created_physical_id(&request()));
        assert!(is_not_created_physical_id(&id));
        assert!(!is_not_created_physical_id("dbcreds:mysql:db:3306:appdb"));
        assert!(!is_not_created_physical_id("not-created"));
    }

    #[test]
    fn panic_messages_are_sanitised() {
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from("boom\n{\"forged\":1}"));
        let message = panic_message(payload.as_ref());
        assert!(!message.contains('\n'));
    }
}
