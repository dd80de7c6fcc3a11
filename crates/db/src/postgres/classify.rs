//! Turning driver and server errors into [`DbError`]s an operator can act on.
//!
//! Messages are built from the server's SQLSTATE, message and detail, or from the failing layer
//! (DNS, TCP, TLS), never from the statement: a statement may carry a SCRAM verifier, and the
//! driver's own errors never contain the password or token.

use crate::error::DbError;
use dbcreds_core::ErrorClass;
use std::error::Error as _;

/// The class of a server error, by SQLSTATE.
pub fn class_of_sqlstate(code: &str) -> ErrorClass {
    match code {
        // invalid_password, invalid_authorization_specification
        "28P01" | "28000" => ErrorClass::Authentication,
        // insufficient_privilege
        "42501" => ErrorClass::Permission,
        // admin/crash shutdown, cannot connect now, too many connections: the server is there
        // but cannot serve us right now.
        "57P01" | "57P02" | "57P03" | "53300" => ErrorClass::ConnectionLost,
        code if code.starts_with("08") => ErrorClass::ConnectionLost,
        _ => ErrorClass::Sql,
    }
}

/// Makes a server-supplied text safe and compact for a one-line message.
fn clean(text: &str) -> String {
    dbcreds_core::sanitize::field(&text.replace('\n', "; "))
}

/// Classifies an error from a session that is already connected. `what` says what we were doing.
pub fn classify(err: &tokio_postgres::Error, what: &str) -> DbError {
    if let Some(db) = err.as_db_error() {
        let mut message = format!("{what}: {} {}: {}", db.severity(), db.code().code(), clean(db.message()));
        if let Some(detail) = db.detail() {
            message.push_str(&format!(" ({})", clean(detail)));
        }
        if let Some(hint) = db.hint() {
            message.push_str(&format!(" hint: {}", clean(hint)));
        }
        // Our own budget, enforced by the server (the session's statement_timeout is the time
        // left at connect): the deadline, not a SQL problem.
        if db.code().code() == "57014" && db.message().contains("statement timeout") {
            return DbError::new(ErrorClass::Deadline, message);
        }
        return DbError::new(class_of_sqlstate(db.code().code()), message);
    }
    if err.is_closed() {
        return DbError::new(ErrorClass::ConnectionLost, format!("{what}: the server closed the connection"));
    }
    if let Some(io) = find_source::<std::io::Error>(err) {
        return DbError::new(ErrorClass::ConnectionLost, format!("{what}: {}", clean(&io.to_string())));
    }
    DbError::new(ErrorClass::Internal, format!("{what}: {}", clean(&err.to_string())))
}

/// Whether a classified server error carries one of `codes` as its SQLSTATE (`classify` writes
/// it as `<severity> <code>: ` in the message; `DbError` has no separate field for it).
pub fn has_sqlstate(err: &DbError, codes: &[&str]) -> bool {
    codes.iter().any(|code| err.message.contains(&format!(" {code}: ")))
}

/// Classifies an error from the TLS handshake and login, which `connect_raw` runs.
pub fn classify_connect(err: &tokio_postgres::Error, endpoint: &str) -> DbError {
    if err.as_db_error().is_some() {
        let classified = classify(err, &format!("logging in to {endpoint}"));
        return classified;
    }
    let text = err.to_string();
    if text.starts_with("error performing TLS handshake") {
        if err.source().is_some_and(|s| s.to_string() == "server does not support TLS") {
            return DbError::new(ErrorClass::TlsUnavailable, format!("{endpoint} does not offer TLS, and the connection requires verified TLS"));
        }
        if let Some(tls) = find_rustls_error(err) {
            return DbError::new(ErrorClass::TlsVerification, format!("TLS with {endpoint} failed: {}", clean(&tls.to_string())));
        }
        if let Some(io) = find_source::<std::io::Error>(err) {
            return DbError::new(ErrorClass::ConnectionLost, format!("the connection to {endpoint} broke during the TLS handshake: {}", clean(&io.to_string())));
        }
        return DbError::new(ErrorClass::TlsVerification, format!("TLS with {endpoint} failed: {}", clean(&text)));
    }
    if text.starts_with("authentication error") {
        // The driver's own authentication failures (a SASL exchange that does not verify, an
        // unsupported method). Never contains the password.
        return DbError::new(ErrorClass::Authentication, format!("logging in to {endpoint} failed: {}", clean(&text)));
    }
    classify(err, &format!("logging in to {endpoint}"))
}

fn find_source<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// rustls errors arrive wrapped in an `io::Error` by tokio-rustls.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(found) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Classifies a failed TCP connect.
pub fn classify_tcp(err: &std::io::Error, endpoint: &str) -> DbError {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::ConnectionRefused => DbError::new(ErrorClass::ConnectionRefused, format!("{endpoint} refused the connection")),
        ErrorKind::TimedOut => DbError::new(ErrorClass::TcpTimeout, format!("connecting to {endpoint} timed out")),
        _ => DbError::new(ErrorClass::TcpTimeout, format!("connecting to {endpoint} failed: {}", clean(&err.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_classes() {
        assert_eq!(class_of_sqlstate("28P01"), ErrorClass::Authentication);
        assert_eq!(class_of_sqlstate("28000"), ErrorClass::Authentication);
        assert_eq!(class_of_sqlstate("42501"), ErrorClass::Permission);
        assert_eq!(class_of_sqlstate("08006"), ErrorClass::ConnectionLost);
        assert_eq!(class_of_sqlstate("57P01"), ErrorClass::ConnectionLost);
        assert_eq!(class_of_sqlstate("42601"), ErrorClass::Sql);
        assert_eq!(class_of_sqlstate("2BP01"), ErrorClass::Sql);
    }

    #[test]
    fn tcp_errors_say_which_layer() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_tcp(&refused, "db:5432").class, ErrorClass::ConnectionRefused);
        let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(classify_tcp(&timeout, "db:5432").class, ErrorClass::TcpTimeout);
        let unreachable = std::io::Error::from(std::io::ErrorKind::HostUnreachable);
        assert_eq!(classify_tcp(&unreachable, "db:5432").class, ErrorClass::TcpTimeout);
    }

    #[test]
    fn sqlstates_are_found_in_classified_messages() {
        let err = DbError::new(ErrorClass::Sql, "creating database \"x\": ERROR 42P04: database \"x\" already exists");
        assert!(has_sqlstate(&err, &["23505", "42P04"]));
        assert!(!has_sqlstate(&err, &["42710"]));
    }

    #[test]
    fn server_text_cannot_forge_lines() {
        assert_eq!(clean("a\nb\x1b[2J"), "a; b?[2J");
    }
}
