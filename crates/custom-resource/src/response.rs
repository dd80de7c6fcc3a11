//! The response body, and the rule that bites: the whole body must fit in 4096 bytes.
//!
//! `Reason` is truncated to fit (with a marker), never dropped: a FAILED without a reason is
//! useless to the person reading the stack events. If the body is over the limit even with an
//! empty reason (a huge `Data`), `Data` is what goes, and the answer becomes FAILED saying so:
//! SUCCESS without the promised attributes would only move the failure to a later `Fn::GetAtt`.

use crate::request::Request;
use serde::Serialize;
use serde_json::{Map, Value};

/// CloudFormation's limit on the whole response body.
pub const MAX_BODY_BYTES: usize = 4096;
/// CloudFormation's limit on a physical resource id.
pub const MAX_PHYSICAL_ID_BYTES: usize = 1024;
/// Appended to a reason that had to be cut.
pub const TRUNCATION_MARKER: &str = " [truncated]";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
        }
    }
}

/// What is sent to the ResponseURL. Field order is the order CloudFormation documents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Response {
    #[serde(rename = "Status")]
    pub status: Status,
    #[serde(rename = "Reason", skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(rename = "PhysicalResourceId")]
    pub physical_resource_id: String,
    #[serde(rename = "StackId")]
    pub stack_id: String,
    #[serde(rename = "RequestId")]
    pub request_id: String,
    #[serde(rename = "LogicalResourceId")]
    pub logical_resource_id: String,
    #[serde(rename = "NoEcho", skip_serializing_if = "std::ops::Not::not")]
    pub no_echo: bool,
    #[serde(rename = "Data", skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

impl Response {
    pub fn success(request: &Request, physical_resource_id: String, data: Map<String, Value>, no_echo: bool) -> Self {
        Self::new(request, Status::Success, String::new(), physical_resource_id, data, no_echo)
    }

    pub fn failed(request: &Request, physical_resource_id: String, reason: String) -> Self {
        Self::new(request, Status::Failed, reason, physical_resource_id, Map::new(), false)
    }

    fn new(request: &Request, status: Status, reason: String, physical_resource_id: String, data: Map<String, Value>, no_echo: bool) -> Self {
        Self {
            status,
            reason,
            physical_resource_id: fit_physical_id(&physical_resource_id),
            stack_id: request.stack_id.clone(),
            request_id: request.request_id.clone(),
            logical_resource_id: request.logical_resource_id.clone(),
            no_echo,
            data,
        }
    }

    /// The JSON body, at most [`MAX_BODY_BYTES`], with `Reason` truncated to fit.
    pub fn to_body(&self) -> Vec<u8> {
        let mut response = self.clone();
        if response.status == Status::Failed && response.reason.is_empty() {
            response.reason = "failed without a reason (a bug: report it with the function's log)".into();
        }
        let full = to_vec(&response);
        if full.len() <= MAX_BODY_BYTES {
            return full;
        }
        let reason = std::mem::take(&mut response.reason);
        let base = to_vec(&response).len() + r#","Reason":"""#.len();
        if base + TRUNCATION_MARKER.len() + 64 > MAX_BODY_BYTES && !response.data.is_empty() {
            // Not even a short reason fits beside the data: drop the data and fail loudly.
            let data_bytes = to_vec(&Value::Object(std::mem::take(&mut response.data))).len();
            response.status = Status::Failed;
            response.no_echo = false;
            let note = format!(
                "the response Data ({data_bytes} bytes) does not fit CloudFormation's 4096-byte response limit; the resource's attributes were not returned. Original status {}: ",
                self.status.as_str()
            );
            response.reason = note + &reason;
            return response.to_body();
        }
        let room = MAX_BODY_BYTES.saturating_sub(base + TRUNCATION_MARKER.len());
        response.reason = truncate_json_string(&reason, room) + TRUNCATION_MARKER;
        to_vec(&response)
    }
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a response always serialises")
}

/// The longest prefix of `text` (on a character boundary) whose JSON-escaped form takes at most
/// `budget` bytes. Escapes count: a quote costs two bytes, a control character six.
pub fn truncate_json_string(text: &str, budget: usize) -> String {
    let mut used = 0;
    let mut end = 0;
    for (index, ch) in text.char_indices() {
        let cost = match ch {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if used + cost > budget {
            break;
        }
        used += cost;
        end = index + ch.len_utf8();
    }
    text[..end].to_owned()
}

/// A physical id within CloudFormation's 1 KB: kept as is when it fits, otherwise cut and given a
/// hash of the whole, so two long ids that share a prefix stay different. Never empty.
pub fn fit_physical_id(id: &str) -> String {
    if id.is_empty() {
        return "dbcreds-unnamed".into();
    }
    if id.len() <= MAX_PHYSICAL_ID_BYTES {
        return id.to_owned();
    }
    let suffix = format!("-{:016x}", fnv1a(id.as_bytes()));
    let mut cut = MAX_PHYSICAL_ID_BYTES - suffix.len();
    while !id.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &id[..cut])
}

/// FNV-1a, 64 bits: a stable, dependency-free hash for ids (not for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;
    use serde_json::json;

    fn request() -> Request {
        Request::from_event(&json!({
            "RequestType": "Create",
            "ResponseURL": "https://example.com/r?sig=1",
            "StackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/demo/6c3b1a20-0000-11ef-8000-0a1b2c3d4e5f",
            "RequestId": "5f8d2a3e-8c1b-4c41-9d2e-7a0f1b2c3d4e",
            "LogicalResourceId": "DatabaseUsers",
            "ResourceType": "Custom::DatabaseUsers",
            "ResourceProperties": {}
        }))
        .unwrap()
    }

    fn parse(body: &[u8]) -> Value {
        serde_json::from_slice(body).expect("the body is JSON")
    }

    #[test]
    fn a_short_response_is_sent_whole_in_documented_order() {
        let mut data = Map::new();
        data.insert("DatabaseName".into(), json!("appdb"));
        let body = Response::success(&request(), "pid".into(), data, true).to_body();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(r#"{"Status":"SUCCESS","PhysicalResourceId":"pid","StackId":"#), "{text}");
        assert!(text.ends_with(r#""NoEcho":true,"Data":{"DatabaseName":"appdb"}}"#), "{text}");
    }

    #[test]
    fn a_long_reason_is_truncated_to_fit_and_kept() {
        for filler in ["x", "\"", "é", "\u{1}", "🦀"] {
            let reason = format!("Users[0].Privileges: {}", filler.repeat(10_000));
            let body = Response::failed(&request(), "pid".into(), reason.clone()).to_body();
            assert!(body.len() <= MAX_BODY_BYTES, "{filler:?}: {} bytes", body.len());
            assert!(body.len() > MAX_BODY_BYTES - 16, "{filler:?}: the room is used, {} bytes", body.len());
            let value = parse(&body);
            let kept = value["Reason"].as_str().unwrap();
            assert!(kept.starts_with("Users[0].Privileges: "), "{filler:?}");
            assert!(kept.ends_with(TRUNCATION_MARKER), "{filler:?}");
            assert!(reason.starts_with(kept.trim_end_matches(TRUNCATION_MARKER)));
            assert_eq!(value["Status"], "FAILED");
            assert_eq!(value["RequestId"], "5f8d2a3e-8c1b-4c41-9d2e-7a0f1b2c3d4e");
        }
    }

    #[test]
    fn a_reason_that_fits_exactly_is_not_cut() {
        let probe = Response::failed(&request(), "pid".into(), String::new());
        let base = serde_json::to_vec(&Response { reason: "x".into(), ..probe.clone() }).unwrap().len() - 1;
        let reason = "y".repeat(MAX_BODY_BYTES - base);
        let body = Response { reason: reason.clone(), ..probe }.to_body();
        assert_eq!(body.len(), MAX_BODY_BYTES);
        assert_eq!(parse(&body)["Reason"], reason);
    }

    #[test]
    fn data_too_large_for_the_limit_becomes_a_failure_that_says_so() {
        let mut data = Map::new();
        data.insert("Blob".into(), json!("z".repeat(5000)));
        let body = Response::success(&request(), "pid".into(), data, true).to_body();
        assert!(body.len() <= MAX_BODY_BYTES);
        let value = parse(&body);
        assert_eq!(value["Status"], "FAILED");
        assert!(value.get("Data").is_none());
        assert!(value["Reason"].as_str().unwrap().contains("4096-byte"), "{value}");
    }

    #[test]
    fn a_failure_always_has_a_reason() {
        let value = parse(&Response::failed(&request(), "pid".into(), String::new()).to_body());
        assert!(!value["Reason"].as_str().unwrap().is_empty());
    }

    #[test]
    fn physical_ids_fit_and_stay_distinct() {
        let a = fit_physical_id(&format!("{}a", "p".repeat(2000)));
        let b = fit_physical_id(&format!("{}b", "p".repeat(2000)));
        assert!(a.len() <= MAX_PHYSICAL_ID_BYTES && b.len() <= MAX_PHYSICAL_ID_BYTES);
        assert_ne!(a, b);
        assert_eq!(fit_physical_id("short"), "short");
        assert!(!fit_physical_id("").is_empty());
        let multibyte = fit_physical_id(&"é".repeat(1000));
        assert!(multibyte.len() <= MAX_PHYSICAL_ID_BYTES);
    }
}
