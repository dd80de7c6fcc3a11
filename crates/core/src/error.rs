//! The error vocabulary shared by every function: what failed, and what to check.
//!
//! AWS's rotation functions collapse every failure into "could not connect". An operator needs
//! to know which layer failed, so every error that crosses a seam carries an [`ErrorClass`], and
//! each class has a hint written for the person on call.

use std::fmt;

/// Which layer failed. The names are stable: they appear in logs (`error_class`) and in the
/// connection test's response, and operators build alarms on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Bad input: an event, a property, a secret field or an identifier. Nothing was changed.
    Input,
    /// The host name does not resolve.
    Dns,
    /// TCP connect timed out: the packets are dropped (security group, NACL, route).
    TcpTimeout,
    /// The host answered with a reset: nothing listens on that port.
    ConnectionRefused,
    /// The server's certificate did not verify (untrusted CA, wrong name, expired).
    TlsVerification,
    /// TLS was required but the server does not offer it.
    TlsUnavailable,
    /// The server refused the credentials.
    Authentication,
    /// Logged in, but not allowed to do what was asked.
    Permission,
    /// The server rejected a statement for another reason.
    Sql,
    /// The connection broke mid-conversation.
    ConnectionLost,
    /// An AWS API call failed (Secrets Manager, STS, RDS).
    Aws,
    /// STS refused to let us assume the role.
    AssumeRoleDenied,
    /// Not enough of the invocation's time budget was left to finish safely.
    Deadline,
    /// The state of the secret does not allow the step (for example another rotation's version).
    State,
    /// A bug or an unexpected condition.
    Internal,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Input => "input",
            ErrorClass::Dns => "dns",
            ErrorClass::TcpTimeout => "tcp_timeout",
            ErrorClass::ConnectionRefused => "connection_refused",
            ErrorClass::TlsVerification => "tls_verification",
            ErrorClass::TlsUnavailable => "tls_unavailable",
            ErrorClass::Authentication => "authentication",
            ErrorClass::Permission => "permission",
            ErrorClass::Sql => "sql",
            ErrorClass::ConnectionLost => "connection_lost",
            ErrorClass::Aws => "aws",
            ErrorClass::AssumeRoleDenied => "assume_role_denied",
            ErrorClass::Deadline => "deadline",
            ErrorClass::State => "state",
            ErrorClass::Internal => "internal",
        }
    }

    /// What an operator should check first. Written for the person reading the alarm.
    pub fn hint(self) -> &'static str {
        match self {
            ErrorClass::Input => "fix the named field; nothing was changed",
            ErrorClass::Dns => "check the host name, the VPC's DNS resolution settings, and for a cross-account proxy endpoint that it is shared to this account",
            ErrorClass::TcpTimeout => "packets are dropped: check the database security group allows the function's security group on the database port, the NACLs, and the route tables",
            ErrorClass::ConnectionRefused => "nothing listens there: check the port, and that the database or proxy is available",
            ErrorClass::TlsVerification => "the server certificate did not verify: connect with the endpoint name the certificate carries (not an IP or a CNAME), and for a CA other than the system roots and the built-in RDS CAs set DB_CA_BUNDLE to a PEM bundle holding it",
            ErrorClass::TlsUnavailable => "the server does not offer TLS: enable TLS on the server; only a secret with \"ssl\": false allows plaintext",
            ErrorClass::Authentication => "the server refused the credentials: check the user exists and the password or token is current; for IAM, check the rds-db:connect ARN (DbiResourceId or prx- id and user name), that the user is IAM-enabled, and that the token's host, port and region match",
            ErrorClass::Permission => "the user lacks a privilege: check its grants",
            ErrorClass::Sql => "the server rejected a statement: read the message",
            ErrorClass::ConnectionLost => "the connection broke: check the server's health and network stability; the step is safe to retry",
            ErrorClass::Aws => "an AWS call failed: check the function's IAM policy, its route to the service endpoint (VPC endpoint or NAT), and throttling",
            ErrorClass::AssumeRoleDenied => "STS refused the role: check the role's trust policy names this function's role ARN and that EXTERNAL_ID matches",
            ErrorClass::Deadline => "the invocation ran out of time: raise the function timeout or check what is slow; the step is safe to retry",
            ErrorClass::State => "the secret's version stages do not allow this step: run `dbcreds doctor <secret>`",
            ErrorClass::Internal => "unexpected: report it with the log line",
        }
    }

    /// Whether retrying the same call later may succeed without anyone changing anything.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorClass::TcpTimeout
                | ErrorClass::ConnectionRefused
                | ErrorClass::ConnectionLost
                | ErrorClass::Aws
                | ErrorClass::Deadline
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bad input. It always names the field, says what is wrong, and says what to do about it.
/// It never carries the offending value when that value could be a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}; {fix}")]
pub struct InputError {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl InputError {
    pub fn missing(field: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.into(), problem: "is missing".into(), fix: fix.into() }
    }

    pub fn invalid(field: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into(), fix: fix.into() }
    }

    /// Prefixes the field with where it sits, e.g. `Users[1].` or `secret `.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}{}", self.field);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_name_field_problem_and_fix() {
        let err = InputError::missing("host", "add the database endpoint").within("secret.");
        assert_eq!(err.to_string(), "secret.host: is missing; add the database endpoint");
    }

    #[test]
    fn every_class_has_a_stable_name_and_a_hint() {
        for class in [ErrorClass::Dns, ErrorClass::TcpTimeout, ErrorClass::TlsVerification, ErrorClass::Authentication] {
            assert!(!class.hint().is_empty());
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
    }
}
