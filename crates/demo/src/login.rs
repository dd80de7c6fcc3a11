//! Logging in with a secret document through the library, the same database seam the functions
//! use (`dbcreds_db::connect`): verify-full TLS against the trust store, then the server says who
//! we are.

use dbcreds_core::{ErrorClass, SecretDocument};
use dbcreds_db::{ConnectSpec, DbError, TrustStore};
use std::sync::Arc;
use std::time::Duration;

const LOGIN_LIMIT: Duration = Duration::from_secs(15);

/// What a successful login showed.
pub struct LoggedIn {
    /// MySQL `CURRENT_USER()`, PostgreSQL `session_user`.
    pub current_user: String,
    pub tls_version: Option<String>,
    pub certificate_verified: bool,
}

impl LoggedIn {
    /// "DBUserA@% over TLSv1.3, certificate verified".
    pub fn evidence(&self) -> String {
        match &self.tls_version {
            Some(version) => format!("{} over {version}, certificate {}", self.current_user, if self.certificate_verified { "verified" } else { "NOT verified" }),
            None => format!("{} over plaintext", self.current_user),
        }
    }
}

pub async fn login(document: &SecretDocument, trust: &Arc<TrustStore>) -> Result<LoggedIn, DbError> {
    let spec = ConnectSpec::from_document(document, Arc::clone(trust), tokio::time::Instant::now() + LOGIN_LIMIT)?;
    let mut session = dbcreds_db::connect(&spec).await?;
    let transport = session.transport().clone();
    let identity = tokio::time::timeout_at(spec.deadline, session.identity()).await.map_err(|_| DbError::new(ErrorClass::Deadline, "the identity query did not answer in time"))??;
    session.close().await;
    Ok(LoggedIn { current_user: identity.current_user, tls_version: transport.tls_version, certificate_verified: transport.certificate_verified })
}

/// The proof that a login works over verified TLS, as the user the document names.
pub async fn proves_login(document: &SecretDocument, trust: &Arc<TrustStore>) -> Result<String, String> {
    let user = document.username().map_err(|err| err.to_string())?.to_owned();
    let logged_in = login(document, trust).await.map_err(|err| format!("{user} could not log in: {err}"))?;
    if logged_in.tls_version.is_none() || !logged_in.certificate_verified {
        return Err(format!("{user} logged in without verified TLS: {}", logged_in.evidence()));
    }
    // MySQL reports user@host; PostgreSQL the role name.
    let reported = logged_in.current_user.split('@').next().unwrap_or_default();
    if reported != user {
        return Err(format!("logged in as {}, not {user}", logged_in.current_user));
    }
    Ok(logged_in.evidence())
}

/// The proof that the server refuses a login (an authentication failure, not a network or TLS
/// problem that would hide whether the password still works).
pub async fn proves_refused(document: &SecretDocument, trust: &Arc<TrustStore>) -> Result<String, String> {
    let user = document.username().map_err(|err| err.to_string())?.to_owned();
    match login(document, trust).await {
        Ok(logged_in) => Err(format!("{user} still logs in ({})", logged_in.evidence())),
        Err(err) if err.class == ErrorClass::Authentication => Ok(format!("{}: {}", err.class, err.message)),
        Err(err) => Err(format!("failed for another reason than authentication: {err}")),
    }
}
