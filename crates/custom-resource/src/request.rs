//! The request CloudFormation sends: the envelope (who asks, where to answer) and the resource's
//! properties, kept as JSON for the resource's own reader ([`crate::properties`]).
//!
//! Parsing is lenient where it can afford to be and strict where it must: without a usable
//! `ResponseURL` nobody can be answered, so that is the only hard requirement; the ids that are
//! echoed back are taken as they come (a missing one is answered as an empty string, which
//! CloudFormation rejects loudly rather than the stack hanging silently).

use dbcreds_core::InputError;
use dbcreds_core::sanitize::for_log;
use serde_json::{Map, Value};
use std::fmt;

/// The operation CloudFormation asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

impl RequestType {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Create => "Create",
            RequestType::Update => "Update",
            RequestType::Delete => "Delete",
        }
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The presigned S3 URL to answer at. It is a bearer capability (anyone holding it can answer
/// for the resource), so `Debug` and `Display` show only the scheme, host and path, never the
/// query string that carries the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseUrl(String);

impl ResponseUrl {
    pub fn parse(value: &str) -> Result<Self, InputError> {
        let uri: http::Uri = value.parse().map_err(|_| InputError::invalid("ResponseURL", "is not a URL", "CloudFormation sends a presigned https URL"))?;
        match uri.scheme_str() {
            Some("https" | "http") => {}
            _ => return Err(InputError::invalid("ResponseURL", "is not an http(s) URL", "CloudFormation sends a presigned https URL")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(InputError::invalid("ResponseURL", "has no host", "CloudFormation sends a presigned https URL"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The whole URL, signature included. Only the HTTP client reads it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Scheme, host and path, for logs.
    pub fn redacted(&self) -> String {
        match self.0.parse::<http::Uri>() {
            Ok(uri) => format!("{}://{}{}", uri.scheme_str().unwrap_or("?"), uri.authority().map_or("?", |a| a.as_str()), uri.path()),
            Err(_) => "<unparseable>".into(),
        }
    }
}

impl fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseUrl({})", self.redacted())
    }
}

impl fmt::Display for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// One custom-resource request.
#[derive(Clone, Debug)]
pub struct Request {
    pub request_type: RequestType,
    pub response_url: ResponseUrl,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub resource_type: String,
    /// Present on Update and Delete.
    pub physical_resource_id: Option<String>,
    pub resource_properties: Map<String, Value>,
    /// Present on Update.
    pub old_resource_properties: Option<Map<String, Value>>,
}

/// Why an event could not be read as a request. `response_url` is set when the event named one,
/// so the caller can still answer FAILED.
#[derive(Debug)]
pub struct EnvelopeError {
    pub error: InputError,
    pub response_url: Option<ResponseUrl>,
    /// The ids that could be read, to echo back in the FAILED answer.
    pub partial: Option<Box<Request>>,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the event is not a CloudFormation custom-resource request: {}", self.error)
    }
}

impl std::error::Error for EnvelopeError {}

/// Keys the properties always carry that are CloudFormation's, not the resource's.
pub const SERVICE_KEYS: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

impl Request {
    /// Reads the envelope. An event without a usable `ResponseURL` cannot be answered at all;
    /// any other defect is reported with the URL so the caller answers FAILED.
    pub fn from_event(event: &Value) -> Result<Self, EnvelopeError> {
        let Some(object) = event.as_object() else {
            let error = InputError::invalid("event", "is not a JSON object", "invoke the function from a CloudFormation custom resource");
            return Err(EnvelopeError { error, response_url: None, partial: None });
        };
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        let response_url = match text("ResponseURL") {
            None => {
                let error = InputError::missing("ResponseURL", "invoke the function from a CloudFormation custom resource (ServiceToken)");
                return Err(EnvelopeError { error, response_url: None, partial: None });
            }
            Some(url) => match ResponseUrl::parse(&url) {
                Ok(url) => url,
                Err(error) => return Err(EnvelopeError { error, response_url: None, partial: None }),
            },
        };
        let properties = |key: &str| -> Result<Option<Map<String, Value>>, InputError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(map)) => Ok(Some(map.clone())),
                Some(_) => Err(InputError::invalid(key, "is not a JSON object", "CloudFormation sends the properties as an object")),
            }
        };
        let request_type = match text("RequestType").as_deref() {
            Some("Create") => Ok(RequestType::Create),
            Some("Update") => Ok(RequestType::Update),
            Some("Delete") => Ok(RequestType::Delete),
            Some(other) => Err(InputError::invalid("RequestType", format!("{} is not Create, Update or Delete", for_log(other)), "CloudFormation sends Create, Update or Delete")),
            None => Err(InputError::missing("RequestType", "CloudFormation sends Create, Update or Delete")),
        };
        let mut request = Request {
            request_type: RequestType::Create,
            response_url: response_url.clone(),
            stack_id: text("StackId").unwrap_or_default(),
            request_id: text("RequestId").unwrap_or_default(),
            logical_resource_id: text("LogicalResourceId").unwrap_or_default(),
            resource_type: text("ResourceType").unwrap_or_default(),
            physical_resource_id: text("PhysicalResourceId").filter(|id| !id.is_empty()),
            resource_properties: Map::new(),
            old_resource_properties: None,
        };
        let fail = |error: InputError, partial: &Request| EnvelopeError { error, response_url: Some(response_url.clone()), partial: Some(Box::new(partial.clone())) };
        request.request_type = request_type.map_err(|e| fail(e, &request))?;
        for key in ["StackId", "RequestId", "LogicalResourceId"] {
            if text(key).is_none_or(|v| v.is_empty()) {
                return Err(fail(InputError::missing(key, "CloudFormation always sends it"), &request));
            }
        }
        request.resource_properties = properties("ResourceProperties").map_err(|e| fail(e, &request))?.unwrap_or_default();
        request.old_resource_properties = properties("OldResourceProperties").map_err(|e| fail(e, &request))?;
        if request.request_type != RequestType::Create && request.physical_resource_id.is_none() {
            return Err(fail(InputError::missing("PhysicalResourceId", "CloudFormation sends it with Update and Delete"), &request));
        }
        Ok(request)
    }

    /// True for an Update whose properties did not change, apart from CloudFormation's own keys
    /// (a new `ServiceToken` means a new function, not a new resource).
    pub fn is_noop_update(&self) -> bool {
        self.request_type == RequestType::Update
            && self.old_resource_properties.as_ref().is_some_and(|old| without_service_keys(old) == without_service_keys(&self.resource_properties))
    }
}

fn without_service_keys(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter().filter(|(k, _)| !SERVICE_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str) -> Value {
        json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:provisioner",
            "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/arn%3A/x?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA",
            "StackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/s/1",
            "RequestId": "r-1",
            "LogicalResourceId": "DatabaseUsers",
            "ResourceType": "Custom::DatabaseUsers",
            "PhysicalResourceId": "p-1",
            "ResourceProperties": {"ServiceToken": "arn:x", "DatabaseName": "appdb"},
            "OldResourceProperties": {"ServiceToken": "arn:y", "DatabaseName": "appdb"}
        })
    }

    #[test]
    fn reads_the_envelope() {
        let request = Request::from_event(&event("Update")).unwrap();
        assert_eq!(request.request_type, RequestType::Update);
        assert_eq!(request.physical_resource_id.as_deref(), Some("p-1"));
        assert_eq!(request.resource_properties["DatabaseName"], "appdb");
        assert!(request.is_noop_update(), "only the ServiceToken changed");
    }

    #[test]
    fn the_signature_never_shows() {
        let request = Request::from_event(&event("Create")).unwrap();
        let debug = format!("{request:?}");
        assert!(!debug.contains("X-Amz-Signature"), "{debug}");
        assert!(!debug.contains("abcdef"), "{debug}");
        assert!(debug.contains("cloudformation-custom-resource-response-euwest1.s3.amazonaws.com"), "{debug}");
    }

    #[test]
    fn a_changed_property_is_not_a_noop() {
        let mut e = event("Update");
        e["ResourceProperties"]["DatabaseName"] = json!("other");
        assert!(!Request::from_event(&e).unwrap().is_noop_update());
        assert!(!Request::from_event(&event("Delete")).unwrap().is_noop_update());
    }

    #[test]
    fn defects_are_named_and_keep_the_url_when_there_is_one() {
        let mut e = event("Upsert");
        let err = Request::from_event(&e).unwrap_err();
        assert_eq!(err.error.field, "RequestType");
        assert!(err.response_url.is_some());
        assert_eq!(err.partial.unwrap().request_id, "r-1");

        e["RequestType"] = json!("Delete");
        e.as_object_mut().unwrap().remove("PhysicalResourceId");
        assert_eq!(Request::from_event(&e).unwrap_err().error.field, "PhysicalResourceId");

        e.as_object_mut().unwrap().remove("ResponseURL");
        let err = Request::from_event(&e).unwrap_err();
        assert_eq!(err.error.field, "ResponseURL");
        assert!(err.response_url.is_none());

        assert_eq!(Request::from_event(&json!([1])).unwrap_err().error.field, "event");
        let mut e = event("Create");
        e["ResponseURL"] = json!("ftp://x/y");
        assert_eq!(Request::from_event(&e).unwrap_err().error.field, "ResponseURL");
        let mut e = event("Create");
        e["ResourceProperties"] = json!("nope");
        assert_eq!(Request::from_event(&e).unwrap_err().error.field, "ResourceProperties");
    }
}
