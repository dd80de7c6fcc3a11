//! Opening a session: one entry point for every engine, with a deadline.

use crate::error::DbError;
use crate::session::AdminSession;
use crate::tls::TrustStore;
use dbcreds_core::{EngineFamily, ErrorClass, SecretDocument, SecretString, TlsPolicy};
use std::sync::Arc;
use tokio::time::Instant;

/// What the client presents to log in.
#[derive(Clone, Debug)]
pub enum Credential {
    Password(SecretString),
    /// An RDS IAM authentication token. MySQL sends it with the `mysql_clear_password` plugin,
    /// which the adapter allows only over verified TLS; PostgreSQL answers the password request.
    IamToken(SecretString),
}

impl Credential {
    pub fn secret(&self) -> &SecretString {
        match self {
            Credential::Password(s) | Credential::IamToken(s) => s,
        }
    }
}

/// Everything needed to open one session.
#[derive(Clone, Debug)]
pub struct ConnectSpec {
    pub family: EngineFamily,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub credential: Credential,
    /// MySQL: the default schema (optional). PostgreSQL: the database (default `postgres`).
    pub database: Option<String>,
    pub tls: TlsPolicy,
    pub trust: Arc<TrustStore>,
    /// The whole connect (DNS, TCP, TLS, authentication) must finish by then.
    pub deadline: Instant,
}

impl ConnectSpec {
    /// The login a secret document describes. The document must have engine, host, username
    /// and password (checked, with the missing key named).
    pub fn from_document(document: &SecretDocument, trust: Arc<TrustStore>, deadline: Instant) -> Result<Self, DbError> {
        document.require_connection_fields()?;
        let family = document.engine()?.family();
        Ok(Self {
            family,
            host: document.host()?.to_owned(),
            port: document.port(family)?,
            username: document.username()?.to_owned(),
            credential: Credential::Password(document.password()?.clone()),
            database: document.dbname().map(str::to_owned),
            tls: document.tls_policy()?,
            trust,
            deadline,
        })
    }
}

/// Opens a session with the adapter for `spec.family`.
pub async fn connect(spec: &ConnectSpec) -> Result<Box<dyn AdminSession>, DbError> {
    if Instant::now() >= spec.deadline {
        return Err(DbError::new(ErrorClass::Deadline, format!("no time left to connect to {}:{}", spec.host, spec.port)));
    }
    let connecting = async {
        match spec.family {
            EngineFamily::MySql => crate::mysql::connect(spec).await,
            EngineFamily::Postgres => crate::postgres::connect(spec).await,
        }
    };
    match tokio::time::timeout_at(spec.deadline, connecting).await {
        Ok(result) => result,
        // The adapters classify their own timeouts (a TCP connect that hangs is `TcpTimeout`);
        // reaching this arm means the whole budget went, so say that rather than guess a layer.
        Err(_) => Err(DbError::new(ErrorClass::Deadline, format!("connecting to {}:{} did not finish before the deadline", spec.host, spec.port))),
    }
}

/// Proves the credentials log in: connects, asks the server who we are, and closes.
pub async fn check_login(spec: &ConnectSpec) -> Result<crate::session::Identity, DbError> {
    let mut session = connect(spec).await?;
    let identity = tokio::time::timeout_at(spec.deadline, session.identity())
        .await
        .map_err(|_| DbError::new(ErrorClass::Deadline, "the login check query did not finish before the deadline"))??;
    session.close().await;
    Ok(identity)
}
