//! Whether a connection must use verified TLS. It is a policy, not a preference: there is no
//! "try TLS, fall back to plaintext" mode, because that is how AWS's functions end up sending
//! password DDL in the clear when a certificate does not verify.

use crate::error::InputError;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// TLS with the certificate chain verified and the host name checked (libpq's verify-full).
    #[default]
    VerifyFull,
    /// Plaintext. Only when the secret says `"ssl": false` (or the operator passes it explicitly).
    Disabled,
}

impl TlsPolicy {
    /// Reads the secret's `ssl` key: absent or true means verify-full; `false` (a JSON boolean
    /// or the strings "false", "0", "no", "n") means plaintext. Anything else is an error.
    pub fn from_ssl_field(field: &str, value: Option<&Value>) -> Result<Self, InputError> {
        let enabled = match value {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => crate::env::parse_bool(field, s)?,
            Some(other) => {
                return Err(InputError::invalid(
                    field,
                    format!("must be a boolean, found {}", json_type(other)),
                    "use true (the default, verified TLS) or false (plaintext)",
                ));
            }
        };
        Ok(if enabled { TlsPolicy::VerifyFull } else { TlsPolicy::Disabled })
    }

    pub fn is_tls(self) -> bool {
        self == TlsPolicy::VerifyFull
    }
}

/// How a JSON value's type reads in an error message ("a number", "an array").
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_an_explicit_false_disables_tls() {
        assert_eq!(TlsPolicy::from_ssl_field("ssl", None).unwrap(), TlsPolicy::VerifyFull);
        assert_eq!(TlsPolicy::from_ssl_field("ssl", Some(&json!(true))).unwrap(), TlsPolicy::VerifyFull);
        assert_eq!(TlsPolicy::from_ssl_field("ssl", Some(&json!("true"))).unwrap(), TlsPolicy::VerifyFull);
        assert_eq!(TlsPolicy::from_ssl_field("ssl", Some(&json!(false))).unwrap(), TlsPolicy::Disabled);
        assert_eq!(TlsPolicy::from_ssl_field("ssl", Some(&json!("false"))).unwrap(), TlsPolicy::Disabled);
        assert!(TlsPolicy::from_ssl_field("ssl", Some(&json!(1))).is_err());
        assert!(TlsPolicy::from_ssl_field("ssl", Some(&json!("maybe"))).is_err());
    }
}
