//! Reading configuration the way AWS's rotation functions do, from any key-value source.
//!
//! Functions take a lookup closure instead of reading `std::env` directly, so the parsing rules
//! are unit-testable and one binary can layer an event's overrides over its environment.

use crate::error::InputError;

/// The variables OpenSSL and rustls-native-certs read for the system's CA certificates.
pub const SYSTEM_CERT_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Whether `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (and not empty) according to `is_set`: the
/// operator chose where the system's roots are, so every TLS client reads them from there (the
/// SDK's and the database trust store alike).
pub fn names_system_certificates(is_set: impl Fn(&str) -> bool) -> bool {
    SYSTEM_CERT_VARIABLES.iter().any(|name| is_set(name))
}

/// [`names_system_certificates`] on the process environment.
pub fn environment_names_system_certificates() -> bool {
    names_system_certificates(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// AWS's functions treat `true`, `1`, `y` and `yes` (any case) as true and anything else as
/// false. We keep that for compatibility, but an unrecognised word is an error rather than a
/// silent `false`, because `EXCLUDE_NUMBERS=ture` should not quietly mean "include numbers".
pub fn parse_bool(field: &str, value: &str) -> Result<bool, InputError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "y" | "yes" => Ok(true),
        "false" | "0" | "n" | "no" | "" => Ok(false),
        _ => Err(InputError::invalid(
            field,
            format!("{} is not a boolean", crate::sanitize::for_log(value)),
            "use true or false",
        )),
    }
}

pub fn parse_u32(field: &str, value: &str, min: u32, max: u32) -> Result<u32, InputError> {
    let parsed: u32 = value.trim().parse().map_err(|_| {
        InputError::invalid(field, format!("{} is not a whole number", crate::sanitize::for_log(value)), format!("use a number from {min} to {max}"))
    })?;
    if !(min..=max).contains(&parsed) {
        return Err(InputError::invalid(field, format!("{parsed} is out of range"), format!("use a number from {min} to {max}")));
    }
    Ok(parsed)
}

/// A port, from a number or a string of digits, in 1..=65535.
pub fn parse_port(field: &str, value: &str) -> Result<u16, InputError> {
    parse_u32(field, value, 1, 65_535).map(|port| port as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_aws_and_reject_typos() {
        for yes in ["true", "TRUE", "1", "y", "Yes"] {
            assert!(parse_bool("X", yes).unwrap(), "{yes}");
        }
        for no in ["false", "0", "no", "N", ""] {
            assert!(!parse_bool("X", no).unwrap(), "{no}");
        }
        assert!(parse_bool("EXCLUDE_NUMBERS", "ture").unwrap_err().to_string().contains("EXCLUDE_NUMBERS"));
    }

    #[test]
    fn ports_are_range_checked() {
        assert_eq!(parse_port("port", "5432").unwrap(), 5432);
        assert!(parse_port("port", "0").is_err());
        assert!(parse_port("port", "65536").is_err());
        assert!(parse_port("port", "-1").is_err());
        assert!(parse_port("port", "54a").is_err());
    }
}
