//! Turning driver and server errors into classified, password-free [`DbError`]s.
//!
//! The class says which layer failed (DNS, TCP, TLS, authentication, privilege, SQL, a broken
//! connection) so the on-call reads the right hint. Messages are built from the server's error
//! code and text, never from the statement; for a statement that carried a password even the
//! server's text is left out (a syntax error echoes the statement), and only the code and a
//! fixed description remain.

use crate::error::DbError;
use dbcreds_core::ErrorClass;
use dbcreds_core::sanitize::field as clean;
use mysql_async::{DriverError, Error, IoError};
use std::io;

/// Where the error happened, which changes what a code means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase<'a> {
    /// Opening the session: `host:port` for the message.
    Connect { host: &'a str, port: u16 },
    /// Running a statement. `secret` is true when the statement carried a password, in which case
    /// the server's message is not repeated. `what` says what we were doing.
    Statement { what: &'a str, secret: bool },
}

pub fn classify(err: &Error, phase: Phase<'_>) -> DbError {
    let context = match phase {
        Phase::Connect { host, port } => format!("connecting to {}:{port}", clean(host)),
        Phase::Statement { what, .. } => what.to_owned(),
    };
    match err {
        Error::Server(server) => {
            let class = server_class(server.code, matches!(phase, Phase::Connect { .. }));
            let secret = matches!(phase, Phase::Statement { secret: true, .. });
            let detail = if secret {
                format!("ERROR {} ({}){}", server.code, clean(&server.state), known_description(server.code).map(|d| format!(": {d}")).unwrap_or_default())
            } else {
                format!("ERROR {} ({}): {}", server.code, clean(&server.state), clean(&server.message))
            };
            DbError::new(class, format!("{context}: {detail}"))
        }
        Error::Io(IoError::Io(io_err)) => classify_io(io_err, &context),
        Error::Io(IoError::Tls(tls)) => classify_tls_error(tls, &context),
        Error::Driver(driver) => classify_driver(driver, &context),
        Error::Url(_) => DbError::new(ErrorClass::Input, format!("{context}: invalid connection options")),
        Error::Other(other) => DbError::new(ErrorClass::Internal, format!("{context}: {}", clean(&other.to_string()))),
    }
}

/// The class of a server error code. `at_connect` distinguishes a login refusal (1045 while
/// authenticating) from a privilege refusal (1045 for a statement).
pub fn server_class(code: u16, at_connect: bool) -> ErrorClass {
    match code {
        // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR (auth_socket), password expired
        // (ER_MUST_CHANGE_PASSWORD_LOGIN), ER_NOT_SUPPORTED_AUTH_MODE, host not allowed, host
        // blocked, account locked (MySQL 3118, MariaDB 4151).
        1045 | 1698 | 1862 | 1251 | 1130 | 1129 | 3118 | 4151 if at_connect => ErrorClass::Authentication,
        // ER_MUST_CHANGE_PASSWORD: logged in with an expired password; only SET PASSWORD works.
        1820 => ErrorClass::Authentication,
        // ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR (statement), table/column/procedure
        // access denied, ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_CANT_CREATE_USER_WITH_GRANT,
        // ER_PASSWORD_NOT_ALLOWED, ER_BINLOG_CREATE_ROUTINE_NEED_SUPER, --read-only (1290, 1836),
        // ER_TABLEACCESS_DENIED for roles, MySQL 8 ER_SPECIFIC_ACCESS_DENIED for dynamic privileges.
        1044 | 1045 | 1142 | 1143 | 1227 | 1370 | 1410 | 1211 | 1419 | 1290 | 1836 | 3530 => ErrorClass::Permission,
        // ER_SERVER_SHUTDOWN, query interrupted, MariaDB ER_CONNECTION_KILLED, MySQL session killed.
        1053 | 1317 | 1927 | 3169 => ErrorClass::ConnectionLost,
        // ER_SECURE_TRANSPORT_REQUIRED (MySQL 3159, MariaDB 4036): plaintext asked, server
        // insists on TLS. The fix is in the secret (`ssl`), so it is input.
        3159 | 4036 => ErrorClass::Input,
        _ => ErrorClass::Sql,
    }
}

/// Fixed descriptions for codes a password statement commonly meets; used in place of the
/// server's text, which could quote the statement.
fn known_description(code: u16) -> Option<&'static str> {
    Some(match code {
        1819 => "the password does not satisfy the server's password policy (validate_password); adjust PASSWORD_LENGTH or EXCLUDE_* settings",
        1396 => "the user does not exist (or already exists)",
        1064 => "syntax error in the password statement",
        1044 | 1045 | 1227 => "the session lacks the privilege to change this password",
        1290 | 1836 => "the server is read-only (a replica or an Aurora reader endpoint?)",
        3638 | 3892 => "the server requires the current password (password_require_current)",
        _ => return None,
    })
}

fn classify_io(err: &io::Error, context: &str) -> DbError {
    if let Some(tls) = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return classify_rustls(tls, context);
    }
    let class = match err.kind() {
        io::ErrorKind::ConnectionRefused => ErrorClass::ConnectionRefused,
        io::ErrorKind::TimedOut | io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => ErrorClass::TcpTimeout,
        io::ErrorKind::AddrNotAvailable => ErrorClass::Dns,
        _ => ErrorClass::ConnectionLost,
    };
    DbError::new(class, format!("{context}: {}", clean(&err.to_string())))
}

fn classify_tls_error(err: &mysql_async::TlsError, context: &str) -> DbError {
    match err {
        mysql_async::TlsError::Tls(tls) => classify_rustls(tls, context),
        mysql_async::TlsError::InvalidDnsName(_) => {
            DbError::new(ErrorClass::Input, format!("{context}: the host is not a valid DNS name or IP address for TLS verification"))
        }
        other => DbError::new(ErrorClass::Internal, format!("{context}: TLS configuration: {}", clean(&other.to_string()))),
    }
}

/// Certificate problems are `TlsVerification`; a handshake that cannot agree on a protocol
/// (a server offering only TLS 1.0/1.1, say) is `TlsUnavailable`: no acceptable TLS on offer.
pub fn classify_rustls(err: &rustls::Error, context: &str) -> DbError {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                C::UnknownIssuer => "is not signed by a trusted certificate authority".to_owned(),
                C::NotValidForName | C::NotValidForNameContext { .. } => "does not carry the host name we connected to".to_owned(),
                C::Expired | C::ExpiredContext { .. } => "has expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet (check the clock)".to_owned(),
                C::Revoked => "has been revoked".to_owned(),
                other => format!("did not verify ({other:?})"),
            };
            DbError::new(ErrorClass::TlsVerification, format!("{context}: the server certificate {why}"))
        }
        rustls::Error::InvalidCertRevocationList(_) | rustls::Error::NoCertificatesPresented => {
            DbError::new(ErrorClass::TlsVerification, format!("{context}: the server certificate did not verify: {err}"))
        }
        other => DbError::new(ErrorClass::TlsUnavailable, format!("{context}: the TLS handshake failed: {}", clean(&other.to_string()))),
    }
}

fn classify_driver(err: &DriverError, context: &str) -> DbError {
    // Display only: some variants carry rows or packets in their fields, never printed.
    let (class, what) = match err {
        DriverError::NoClientSslFlagFromServer => (ErrorClass::TlsUnavailable, "the server does not offer TLS and the secret does not allow plaintext".to_owned()),
        DriverError::CleartextPluginDisabled => (
            ErrorClass::Authentication,
            "the server asked for the password in clear text (mysql_clear_password); dbcreds sends clear text only for IAM tokens over TLS".to_owned(),
        ),
        DriverError::MysqlOldPasswordDisabled => (ErrorClass::Authentication, "the account uses the insecure mysql_old_password plugin; reset its password".to_owned()),
        DriverError::UnknownAuthPlugin { name } => (ErrorClass::Authentication, format!("the server asked for an unsupported authentication plugin {}", clean(name))),
        DriverError::ConnectionClosed | DriverError::PacketOutOfOrder | DriverError::UnexpectedPacket { .. } | DriverError::PacketTooLarge => {
            (ErrorClass::ConnectionLost, err.to_string())
        }
        _ => (ErrorClass::Internal, err.to_string()),
    };
    DbError::new(class, format!("{context}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn server(code: u16, message: &str) -> Error {
        Error::Server(ServerError { code, message: message.into(), state: "HY000".into() })
    }

    const CONNECT: Phase<'static> = Phase::Connect { host: "db.example.com", port: 3306 };

    #[test]
    fn server_codes_map_to_layers() {
        assert_eq!(classify(&server(1045, "Access denied for user 'u'@'h' (using password: YES)"), CONNECT).class, ErrorClass::Authentication);
        assert_eq!(classify(&server(1045, "Access denied"), Phase::Statement { what: "x", secret: false }).class, ErrorClass::Permission);
        for code in [1044, 1142, 1143, 1227, 1370] {
            assert_eq!(server_class(code, false), ErrorClass::Permission, "{code}");
        }
        assert_eq!(server_class(1064, false), ErrorClass::Sql);
        assert_eq!(server_class(1927, false), ErrorClass::ConnectionLost);
        assert_eq!(server_class(3159, true), ErrorClass::Input);
    }

    #[test]
    fn password_statements_never_echo_the_server_text() {
        let err = server(1064, "You have an error in your SQL syntax near 'hunter2' at line 1");
        let db = classify(&err, Phase::Statement { what: "setting the password", secret: true });
        assert!(!db.message.contains("hunter2"), "{db}");
        assert!(db.message.contains("1064"), "{db}");
        let db = classify(&server(1819, "Your password does not satisfy the current policy requirements"), Phase::Statement { what: "p", secret: true });
        assert!(db.message.contains("password policy"), "{db}");
        // Other statements keep the server's text, cleaned of control characters.
        let db = classify(&server(1146, "Table 'x.y' doesn't exist\n{forged}"), Phase::Statement { what: "reading", secret: false });
        assert!(db.message.contains("doesn't exist") && !db.message.contains('\n'), "{db}");
    }

    #[test]
    fn io_errors_map_to_network_layers() {
        let refused = Error::Io(IoError::Io(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(classify(&refused, CONNECT).class, ErrorClass::ConnectionRefused);
        let timeout = Error::Io(IoError::Io(io::Error::from(io::ErrorKind::TimedOut)));
        assert_eq!(classify(&timeout, CONNECT).class, ErrorClass::TcpTimeout);
        let reset = Error::Io(IoError::Io(io::Error::from(io::ErrorKind::ConnectionReset)));
        assert_eq!(classify(&reset, CONNECT).class, ErrorClass::ConnectionLost);
        let no_tls = Error::Driver(DriverError::NoClientSslFlagFromServer);
        assert_eq!(classify(&no_tls, CONNECT).class, ErrorClass::TlsUnavailable);
    }

    #[test]
    fn certificate_failures_are_tls_verification_and_say_why() {
        let wrapped = |e: rustls::Error| Error::Io(IoError::Io(io::Error::new(io::ErrorKind::InvalidData, e)));
        let cases = [
            (rustls::CertificateError::UnknownIssuer, "trusted certificate authority"),
            (rustls::CertificateError::NotValidForName, "host name"),
            (rustls::CertificateError::Expired, "expired"),
        ];
        for (cert, words) in cases {
            let db = classify(&wrapped(rustls::Error::InvalidCertificate(cert)), CONNECT);
            assert_eq!(db.class, ErrorClass::TlsVerification);
            assert!(db.message.contains(words), "{db}");
        }
        let alert = wrapped(rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion));
        assert_eq!(classify(&alert, CONNECT).class, ErrorClass::TlsUnavailable);
    }
}
