//! What the check found, and the response the operator reads.
//!
//! The success response is AWS's sample, byte for byte in its three keys, plus `diagnostics`:
//! `{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":"Database connection
//! was successful!","diagnostics":{...}}`. A failure keeps the shape with a non-200 status, a
//! one-line body, and `diagnostics.failure` (phase, class, message, hint) beside everything
//! learnt before the failing phase.
//!
//! Nothing here can hold a secret: the types carry names, addresses, versions and timings only,
//! and the messages come from `DbError`/`AwsError`/`InputError`, which never carry one.

use dbcreds_core::ErrorClass;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

pub const SUCCESS_BODY: &str = "Database connection was successful!";

/// The steps of a check, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading and validating the environment and the event.
    Configuration,
    AssumeRole,
    Token,
    ReadSecret,
    Dns,
    /// TCP connect. Proven by the login's own connection; timed apart only when the probe ran
    /// (a login that failed below the server's answer, or was slow: see `login`).
    Tcp,
    /// The protocol's TLS negotiation and the verified TLS handshake, reported like [`Phase::Tcp`].
    Tls,
    /// The driver's connection and login: its time includes TCP and TLS when they were not
    /// probed apart.
    Authentication,
    Query,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Configuration => "configuration",
            Phase::AssumeRole => "assume_role",
            Phase::Token => "token",
            Phase::ReadSecret => "read_secret",
            Phase::Dns => "dns",
            Phase::Tcp => "tcp",
            Phase::Tls => "tls",
            Phase::Authentication => "authentication",
            Phase::Query => "query",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    Ok,
    Failed,
    Skipped,
}

/// One phase's outcome and time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    pub status: PhaseStatus,
    /// Milliseconds; absent for a skipped phase, and for TCP and TLS proven inside the
    /// authentication phase's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// What the phase found or why it was skipped, in a few words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Why the check failed, and what to look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub phase: Phase,
    pub class: ErrorClass,
    pub message: String,
    pub hint: String,
}

impl Failure {
    /// A failure with the class's generic hint.
    pub fn new(phase: Phase, class: ErrorClass, message: impl Into<String>) -> Self {
        Self { phase, class, message: message.into(), hint: class.hint().to_owned() }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

/// TLS as the probe saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsReport {
    /// `TLSv1.3`, `TLSv1.2`; absent when plaintext was allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// True only when the chain and the host name were verified against the trust store.
    pub certificate_verified: bool,
    /// Where the trusted roots came from (`system (146)`, `DB_CA_BUNDLE /opt/ca.pem (108)`).
    pub trust_store: Vec<String>,
}

/// Everything the check learnt. Fields are filled as phases succeed, so a failure report still
/// shows what worked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    /// The assumed role's ARN as STS returned it (`arn:aws:sts::...:assumed-role/...`). Never
    /// the credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumed_role_arn: Option<String>,
    /// Whether an external id was sent (its value is not repeated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id_sent: Option<bool>,
    /// The region the IAM token was signed for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_region: Option<String>,
    /// What DNS returned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The address the connection reached (known when DNS gave one address, or the probe ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_user: Option<String>,
    /// `default` (the identity query) or `TEST_QUERY`, with the number of rows it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_rows: Option<usize>,
    pub phases: Vec<PhaseRecord>,
    pub total_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl Diagnostics {
    pub fn record(&mut self, phase: Phase, status: PhaseStatus, elapsed: Option<Duration>, detail: Option<String>) {
        self.phases.push(PhaseRecord { phase, status, ms: elapsed.map(millis), detail });
    }

    pub fn skipped(&mut self, phase: Phase, why: impl Into<String>) {
        self.record(phase, PhaseStatus::Skipped, None, Some(why.into()));
    }

    pub fn phase(&self, phase: Phase) -> Option<&PhaseRecord> {
        self.phases.iter().find(|record| record.phase == phase)
    }

    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// The HTTP-style status, documented for operators: 200 success; 400 bad configuration;
    /// 401 the database refused the login; 403 STS refused the role or the user lacks a
    /// privilege; 504 something timed out; 500 a bug; 502 any other failure of a dependency
    /// (DNS, refused port, TLS, AWS API, SQL).
    pub fn status_code(&self) -> u16 {
        match self.failure.as_ref().map(|f| f.class) {
            None => 200,
            Some(ErrorClass::Input) => 400,
            Some(ErrorClass::Authentication) => 401,
            Some(ErrorClass::AssumeRoleDenied | ErrorClass::Permission) => 403,
            Some(ErrorClass::TcpTimeout | ErrorClass::Deadline) => 504,
            Some(ErrorClass::Internal) => 500,
            Some(_) => 502,
        }
    }

    /// The function's result, in the shape of AWS's sample.
    pub fn to_response(&self) -> Value {
        let body = match &self.failure {
            None => SUCCESS_BODY.to_owned(),
            Some(failure) => format!("Database connection failed in phase {}: {}", failure.phase, failure.class),
        };
        json!({
            "statusCode": self.status_code(),
            "headers": { "Content-Type": "application/json" },
            "body": body,
            "diagnostics": self,
        })
    }
}

pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_keeps_the_aws_sample_shape() {
        let mut diagnostics = Diagnostics::default();
        diagnostics.record(Phase::Dns, PhaseStatus::Ok, Some(Duration::from_millis(3)), None);
        let response = diagnostics.to_response();
        assert_eq!(response["statusCode"], 200);
        assert_eq!(response["headers"], json!({ "Content-Type": "application/json" }));
        assert_eq!(response["body"], SUCCESS_BODY);
        assert_eq!(response["diagnostics"]["phases"][0], json!({ "phase": "dns", "status": "ok", "ms": 3 }));
        let keys: Vec<&String> = response.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["statusCode", "headers", "body", "diagnostics"]);
    }

    #[test]
    fn failures_name_the_phase_and_class_and_map_to_a_status() {
        let cases = [
            (ErrorClass::Input, 400),
            (ErrorClass::Authentication, 401),
            (ErrorClass::AssumeRoleDenied, 403),
            (ErrorClass::TcpTimeout, 504),
            (ErrorClass::Dns, 502),
            (ErrorClass::TlsVerification, 502),
            (ErrorClass::ConnectionRefused, 502),
            (ErrorClass::Internal, 500),
        ];
        for (class, status) in cases {
            let diagnostics = Diagnostics { failure: Some(Failure::new(Phase::Tcp, class, "m")), ..Default::default() };
            let response = diagnostics.to_response();
            assert_eq!(response["statusCode"], status, "{class}");
            assert_eq!(response["body"], format!("Database connection failed in phase tcp: {class}"));
            assert_eq!(response["diagnostics"]["failure"]["class"], class.as_str());
            assert_eq!(response["diagnostics"]["failure"]["hint"], class.hint());
        }
    }
}
