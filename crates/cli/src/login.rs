//! Logging in with a secret document's credentials and saying what happened: who the server says
//! we are, over which TLS, or which layer failed and what to check. Used by `doctor` for every
//! labelled version, and by `rotate` and `reset-password` to prove the result.

use crate::toolkit::{LOGIN_TIME, deadline_in};
use dbcreds_core::{ErrorClass, SecretDocument, TlsPolicy};
use dbcreds_db::{AdminSession, ConnectSpec, DbError, TrustStore};
use dbcreds_rotation::ports::identity_is;
use serde::Serialize;
use std::sync::Arc;

/// A failure, classified, with what to check. Never a secret: the messages come from the db and
/// aws layers, which never carry one.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FailureReport {
    pub class: ErrorClass,
    pub message: String,
    pub hint: String,
}

impl FailureReport {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), hint: class.hint().to_owned() }
    }
}

impl From<&DbError> for FailureReport {
    fn from(err: &DbError) -> Self {
        Self::new(err.class, err.message.clone())
    }
}

/// What one login attempt showed.
#[derive(Clone, Debug, Serialize)]
pub struct LoginReport {
    pub logs_in: bool,
    /// The login as the server reports it (MySQL `CURRENT_USER()`, PostgreSQL `session_user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_user: Option<String>,
    /// `TLSv1.3`, ...; `None` for plaintext (only when the secret says `"ssl": false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    pub certificate_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReport>,
}

impl LoginReport {
    fn failed(failure: FailureReport) -> Self {
        Self { logs_in: false, as_user: None, tls: None, certificate_verified: false, server_version: None, failure: Some(failure) }
    }

    /// The server refused the credentials (as opposed to not being reachable).
    pub fn refused(&self) -> bool {
        self.failure.as_ref().is_some_and(|f| f.class == ErrorClass::Authentication)
    }

    /// One line for people: `logs in as app@% over TLSv1.3 (certificate verified)`.
    pub fn describe(&self) -> String {
        if let Some(failure) = &self.failure {
            return format!("does not log in: {} [{}]", failure.message, failure.class);
        }
        let transport = match (&self.tls, self.certificate_verified) {
            (Some(version), true) => format!("over {version} (certificate verified)"),
            (Some(version), false) => format!("over {version}"),
            (None, _) => "in plaintext (the secret says \"ssl\": false)".to_owned(),
        };
        format!("logs in as {} {transport}", self.as_user.as_deref().unwrap_or("?"))
    }
}

/// Logs in with the document, asks the server who we are, and closes.
pub async fn try_login(document: &SecretDocument, trust: &Arc<TrustStore>) -> LoginReport {
    let label = format!("logging in as {}", document.username().unwrap_or("?"));
    crate::progress::during(&label, login(document, trust)).await
}

async fn login(document: &SecretDocument, trust: &Arc<TrustStore>) -> LoginReport {
    let spec = match ConnectSpec::from_document(document, Arc::clone(trust), deadline_in(LOGIN_TIME)) {
        Ok(spec) => spec,
        Err(err) => return LoginReport::failed(FailureReport::from(&err)),
    };
    let mut session = match dbcreds_db::connect(&spec).await {
        Ok(session) => session,
        Err(err) => return LoginReport::failed(FailureReport::from(&err)),
    };
    let transport = session.transport().clone();
    let identity = tokio::time::timeout_at(spec.deadline, session.identity()).await;
    session.close().await;
    let identity = match identity {
        Ok(Ok(identity)) => identity,
        Ok(Err(err)) => return LoginReport::failed(FailureReport::from(&err)),
        Err(_) => return LoginReport::failed(FailureReport::new(ErrorClass::Deadline, "the identity query did not finish in time")),
    };
    let mut report = LoginReport {
        logs_in: true,
        as_user: Some(identity.current_user.clone()),
        tls: transport.tls_version.clone(),
        certificate_verified: transport.certificate_verified,
        server_version: Some(identity.server_version.clone()),
        failure: None,
    };
    if !identity_is(&identity, spec.family, &spec.username) {
        report.logs_in = false;
        report.failure = Some(FailureReport::new(
            ErrorClass::Authentication,
            format!("the server took the login as {} instead of {} (an anonymous account?)", dbcreds_core::sanitize::for_log(&identity.current_user), dbcreds_core::sanitize::for_log(&spec.username)),
        ));
    }
    report
}

/// A master session for user administration.
pub async fn open_admin(master: &SecretDocument, trust: &Arc<TrustStore>) -> Result<Box<dyn AdminSession>, DbError> {
    let spec = ConnectSpec::from_document(master, Arc::clone(trust), deadline_in(LOGIN_TIME))?;
    let label = format!("logging in as the master user {}", spec.username);
    crate::progress::during(&label, dbcreds_db::connect(&spec)).await
}

/// A document's connection fields, for reports: never the password, never unknown keys' values.
#[derive(Clone, Debug, Serialize, Default)]
pub struct DocumentSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    pub tls: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masterarn: Option<String>,
}

impl DocumentSummary {
    pub fn of(document: &SecretDocument) -> Self {
        let engine = document.engine_opt();
        Self {
            engine: engine.map(|e| e.as_str().to_owned()),
            host: document.host_opt().map(str::to_owned),
            port: engine.and_then(|e| document.port(e.family()).ok()),
            username: document.username().ok().map(str::to_owned),
            dbname: document.dbname().map(str::to_owned),
            tls: match document.tls_policy() {
                Ok(TlsPolicy::VerifyFull) => "verify-full",
                Ok(TlsPolicy::Disabled) => "off (\"ssl\": false)",
                Err(_) => "invalid ssl field",
            },
            masterarn: document.masterarn().map(str::to_owned),
        }
    }

    /// `app@db.example.com:5432/appdb (postgres)`.
    pub fn describe(&self) -> String {
        let user = self.username.as_deref().unwrap_or("?");
        let host = self.host.as_deref().unwrap_or("?");
        let port = self.port.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
        let db = self.dbname.as_deref().map(|d| format!("/{d}")).unwrap_or_default();
        format!("{user}@{host}:{port}{db} ({})", self.engine.as_deref().unwrap_or("no engine"))
    }
}
