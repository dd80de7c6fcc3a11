//! Host names as every function accepts them: a DNS name or an IP address literal.
//!
//! The host is what the server's certificate must name and what an IAM token is signed for, so a
//! URL, a port, a path, white space or a control character in it is a mistake worth naming before
//! anything is called (and a newline in it could forge a log line).

use crate::error::InputError;
use crate::sanitize::for_log;
use std::net::IpAddr;

/// The longest DNS name (RFC 1035), without the trailing dot.
const MAX_NAME_LEN: usize = 253;
/// The longest label of a DNS name.
const MAX_LABEL_LEN: usize = 63;

/// Validates `value` as a host name or an IP literal (`[::1]` included); `field` names where it
/// came from, for the error.
pub fn validate_host(field: &str, value: &str) -> Result<(), InputError> {
    if value.chars().any(char::is_control) {
        return Err(InputError::invalid(field, "contains a control character", "remove it"));
    }
    if value.contains("://") {
        return Err(InputError::invalid(field, format!("{} is a URL", for_log(value)), "use the endpoint's host name only, without a scheme"));
    }
    if unbracketed(value).parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if value.contains(':') {
        return Err(InputError::invalid(field, format!("{} carries a port", for_log(value)), "put the host name here and the port in its own field"));
    }
    let valid_label = |label: &str| {
        !label.is_empty() && label.len() <= MAX_LABEL_LEN && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let name = value.strip_suffix('.').unwrap_or(value);
    if name.len() > MAX_NAME_LEN || !name.split('.').all(valid_label) {
        return Err(InputError::invalid(
            field,
            format!("{} is not a host name", for_log(value)),
            format!("use the endpoint's DNS name (letters, digits, '-' and dots, at most {MAX_NAME_LEN} characters) or an IP address"),
        ));
    }
    Ok(())
}

/// An IPv6 literal without its brackets (`[::1]` -> `::1`); anything else as it is.
pub fn unbracketed(value: &str) -> &str {
    value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_addresses_pass() {
        for host in ["db.example.com", "db.example.com.", "localhost", "127.0.0.1", "::1", "[::1]", "app.proxy-abc.eu-west-1.rds.amazonaws.com", "my_host"] {
            validate_host("host", host).unwrap_or_else(|e| panic!("{host}: {e}"));
        }
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        let long = "a".repeat(254);
        for host in ["https://db.example.com", "db.example.com:5432", "db example.com", "db..example.com", "db/x", "db\n{\"a\":1}", "d\u{0431}.example.com", "", long.as_str()] {
            let err = validate_host("secret.host", host).unwrap_err();
            assert_eq!(err.field, "secret.host", "{host:?}");
            assert!(!err.to_string().contains('\n'), "{host:?}: {err}");
        }
    }
}
