//! The Secrets Manager rotation event: `{"Step", "SecretId", "ClientRequestToken", "RotationToken"}`.
//!
//! Our own type because `aws_lambda_events`' event drops `RotationToken`, which PutSecretValue
//! needs when the function rotates through an assumed role or across accounts. Parsing is by
//! hand from a `serde_json::Value` so that every problem names the field at fault; nothing is
//! called and nothing changes before the whole event is valid.

use dbcreds_core::sanitize::for_log;
use dbcreds_core::{InputError, SecretString};
use serde_json::Value;
use std::fmt;

/// The four rotation steps, in the order Secrets Manager calls them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::CreateSecret, Step::SetSecret, Step::TestSecret, Step::FinishSecret];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }

    /// Exact names only, as Secrets Manager sends them: an unknown step is refused rather than
    /// guessed ("Invalid step parameter" in AWS's functions).
    pub fn parse(value: &str) -> Result<Step, InputError> {
        Step::ALL.into_iter().find(|step| step.as_str() == value).ok_or_else(|| {
            InputError::invalid("Step", format!("unknown step {}", for_log(value)), "use createSecret, setSecret, testSecret or finishSecret")
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest SecretId Secrets Manager accepts (an ARN or a name).
pub const MAX_SECRET_ID_LEN: usize = 2048;
/// ClientRequestToken: 32 to 64 characters (Secrets Manager's limits; the service sends a UUID).
pub const MIN_TOKEN_LEN: usize = 32;
pub const MAX_TOKEN_LEN: usize = 64;

#[derive(Clone, Debug)]
pub struct RotationEvent {
    pub step: Step,
    /// The secret's ARN or name, as the service sent it.
    pub secret_id: String,
    /// The VersionId of the version being rotated in.
    pub client_request_token: String,
    /// Passed to PutSecretValue when present. Redacted in `Debug`: it authorises a write.
    pub rotation_token: Option<SecretString>,
}

impl RotationEvent {
    /// Parses and validates the event. Unknown extra keys are ignored (the service may add some).
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        let Value::Object(fields) = value else {
            return Err(InputError::invalid("event", "is not a JSON object", "send {\"Step\", \"SecretId\", \"ClientRequestToken\"} as Secrets Manager does"));
        };
        let text = |key: &str| -> Result<&str, InputError> {
            match fields.get(key) {
                None | Some(Value::Null) => Err(InputError::missing(key, format!("the rotation event must carry {key}"))),
                Some(Value::String(s)) => Ok(s.as_str()),
                Some(_) => Err(InputError::invalid(key, "must be a string", format!("send {key} as a JSON string"))),
            }
        };
        let step = Step::parse(text("Step")?)?;

        let secret_id = text("SecretId")?;
        if secret_id.trim().is_empty() {
            return Err(InputError::invalid("SecretId", "is empty", "send the secret's ARN"));
        }
        if secret_id.len() > MAX_SECRET_ID_LEN {
            return Err(InputError::invalid("SecretId", format!("is {} characters, over {MAX_SECRET_ID_LEN}", secret_id.len()), "send the secret's ARN"));
        }
        if secret_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(InputError::invalid("SecretId", format!("{} contains white space or control characters", for_log(secret_id)), "send the secret's ARN"));
        }

        let token = text("ClientRequestToken")?;
        let token_ok = (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic());
        if !token_ok {
            return Err(InputError::invalid(
                "ClientRequestToken",
                format!("{} is not a version id ({MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} printable ASCII characters)", for_log(token)),
                "send the VersionId of the AWSPENDING version (Secrets Manager sends a UUID)",
            ));
        }

        let rotation_token = match fields.get("RotationToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) if s.len() <= 4096 && !s.chars().any(char::is_control) => Some(SecretString::from(s.as_str())),
            Some(Value::String(_)) => {
                return Err(InputError::invalid("RotationToken", "is over 4096 characters or holds control characters", "send the RotationToken Secrets Manager gave"));
            }
            Some(_) => return Err(InputError::invalid("RotationToken", "must be a string", "send RotationToken as a JSON string, or leave it out")),
        };

        Ok(Self { step, secret_id: secret_id.to_owned(), client_request_token: token.to_owned(), rotation_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "a0b1c2d3-e4f5-4a6b-8c7d-0123456789ab";

    #[test]
    fn a_service_event_parses_with_its_rotation_token() {
        let event = RotationEvent::from_json(&json!({
            "Step": "setSecret", "SecretId": "arn:aws:secretsmanager:eu-west-1:1:secret:app-AbCdEf",
            "ClientRequestToken": TOKEN, "RotationToken": "rt-123"
        }))
        .unwrap();
        assert_eq!(event.step, Step::SetSecret);
        assert_eq!(event.rotation_token.as_ref().unwrap().expose(), "rt-123");
        assert!(!format!("{event:?}").contains("rt-123"));
        let without = RotationEvent::from_json(&json!({"Step": "finishSecret", "SecretId": "app", "ClientRequestToken": TOKEN})).unwrap();
        assert!(without.rotation_token.is_none());
    }

    #[test]
    fn every_malformed_field_is_named() {
        let cases = [
            (json!([]), "event"),
            (json!({"SecretId": "s", "ClientRequestToken": TOKEN}), "Step"),
            (json!({"Step": "rotateSecret", "SecretId": "s", "ClientRequestToken": TOKEN}), "Step"),
            (json!({"Step": "createsecret", "SecretId": "s", "ClientRequestToken": TOKEN}), "Step"),
            (json!({"Step": 1, "SecretId": "s", "ClientRequestToken": TOKEN}), "Step"),
            (json!({"Step": "createSecret", "ClientRequestToken": TOKEN}), "SecretId"),
            (json!({"Step": "createSecret", "SecretId": "", "ClientRequestToken": TOKEN}), "SecretId"),
            (json!({"Step": "createSecret", "SecretId": "a\nb", "ClientRequestToken": TOKEN}), "SecretId"),
            (json!({"Step": "createSecret", "SecretId": "s"}), "ClientRequestToken"),
            (json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "short"}), "ClientRequestToken"),
            (json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": format!("{TOKEN} x")}), "ClientRequestToken"),
            (json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": TOKEN, "RotationToken": 5}), "RotationToken"),
        ];
        for (event, field) in cases {
            let err = RotationEvent::from_json(&event).unwrap_err();
            assert_eq!(err.field, field, "{event}: {err}");
        }
    }

    #[test]
    fn the_sample_events_parse() {
        let samples = [
            (include_str!("../../../events/rotator/createSecret.json"), Step::CreateSecret),
            (include_str!("../../../events/rotator/setSecret.json"), Step::SetSecret),
            (include_str!("../../../events/rotator/testSecret.json"), Step::TestSecret),
            (include_str!("../../../events/rotator/finishSecret.json"), Step::FinishSecret),
            (include_str!("../../../events/rotator/createSecret-cross-account.json"), Step::CreateSecret),
        ];
        for (text, step) in samples {
            let event = RotationEvent::from_json(&serde_json::from_str(text).unwrap()).unwrap();
            assert_eq!(event.step, step);
        }
    }

    #[test]
    fn a_hostile_step_is_sanitised_in_the_error() {
        let err = RotationEvent::from_json(&json!({"Step": "x\n{\"level\":\"INFO\"}", "SecretId": "s", "ClientRequestToken": TOKEN})).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
