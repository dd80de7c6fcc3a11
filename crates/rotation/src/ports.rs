//! What the state machine needs from a database and from RDS, as small traits.
//!
//! The steps speak in secret documents ("log in with these credentials", "with this master,
//! make the clone a copy of the current user"), never in connections or SQL, so each step can be
//! unit-tested with an in-memory fake. [`LiveDatabases`] implements the port over the db seam
//! (`dbcreds_db::connect`), and `RdsEndpoints` implements [`EndpointLookup`].

use async_trait::async_trait;
use dbcreds_aws::{AwsError, DatabaseEndpoint, RdsEndpoints, SecretMetadata};
use dbcreds_core::{EngineFamily, ErrorClass, SecretDocument, SecretString};
use dbcreds_db::{ConnectSpec, DbError, GrantChange, Identity, TrustStore};
use std::sync::Arc;
use tokio::time::Instant;

#[async_trait]
pub trait Databases: Send + Sync {
    /// Logs in with the document's credentials and asks the server who we are.
    async fn check_login(&self, login: &SecretDocument, deadline: Instant) -> Result<Identity, DbError>;

    /// Logs in with `login` and changes that user's own password (single-user setSecret).
    async fn set_own_password(&self, login: &SecretDocument, new_password: &SecretString, deadline: Instant) -> Result<(), DbError>;

    /// Logs in with the master document, then waits for `proceed`, and only when it says `true`
    /// makes `target` a faithful copy of `source` with `password` (alternating-users setSecret).
    /// The gate lets the master's login run at the same time as the checks that decide whether
    /// the master may act (the confused-deputy guard), without acting before they pass. Returns
    /// what changed, or `None` when told not to proceed (nothing was changed).
    async fn mirror_user(&self, master: &SecretDocument, source: &str, target: &str, password: &SecretString, deadline: Instant, proceed: Proceed) -> Result<Option<Vec<GrantChange>>, DbError>;
}

/// The go-ahead [`Databases::mirror_user`] waits for after its login. A sender dropped without
/// an answer means no.
pub type Proceed = tokio::sync::oneshot::Receiver<bool>;

/// A gate that is already open, for a mirror whose checks have passed.
pub fn proceed_now() -> Proceed {
    let (go, proceed) = tokio::sync::oneshot::channel();
    let _ = go.send(true);
    proceed
}

#[async_trait]
pub trait EndpointLookup: Send + Sync {
    /// The database behind an RDS-managed master secret, from its `aws:rds:primary...arn` tag.
    async fn endpoint_for_secret(&self, metadata: &SecretMetadata) -> Result<DatabaseEndpoint, AwsError>;
}

#[async_trait]
impl EndpointLookup for RdsEndpoints {
    async fn endpoint_for_secret(&self, metadata: &SecretMetadata) -> Result<DatabaseEndpoint, AwsError> {
        RdsEndpoints::endpoint_for_secret(self, metadata).await
    }
}

/// Whether the server's idea of who we are is the user the document names. MySQL reports
/// `CURRENT_USER()` as `user@host`; this guards against an anonymous account (`''@'localhost'`)
/// silently taking the login, whose password we would then change. PostgreSQL reports
/// `session_user` (the login role, even for a clone that acts as its base user).
pub fn identity_is(identity: &Identity, family: EngineFamily, username: &str) -> bool {
    match family {
        EngineFamily::MySql => identity.current_user.rsplit_once('@').is_some_and(|(user, _host)| user == username),
        EngineFamily::Postgres => identity.current_user == username,
    }
}

/// The port over the real database seam. One `TrustStore`, built once per cold start.
pub struct LiveDatabases {
    trust: Arc<TrustStore>,
}

impl LiveDatabases {
    pub fn new(trust: Arc<TrustStore>) -> Self {
        Self { trust }
    }

    fn spec(&self, document: &SecretDocument, deadline: Instant) -> Result<ConnectSpec, DbError> {
        ConnectSpec::from_document(document, Arc::clone(&self.trust), deadline)
    }
}

/// Runs `work` with the deadline, as a `Deadline` error when it does not finish in time.
async fn by<T>(deadline: Instant, what: &str, work: impl std::future::Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| DbError::new(ErrorClass::Deadline, format!("{what} did not finish before the invocation's deadline; the step is safe to retry")))?
}

#[async_trait]
impl Databases for LiveDatabases {
    async fn check_login(&self, login: &SecretDocument, deadline: Instant) -> Result<Identity, DbError> {
        dbcreds_db::check_login(&self.spec(login, deadline)?).await
    }

    async fn set_own_password(&self, login: &SecretDocument, new_password: &SecretString, deadline: Instant) -> Result<(), DbError> {
        let spec = self.spec(login, deadline)?;
        let mut session = dbcreds_db::connect(&spec).await?;
        let identity = by(deadline, "asking the server who we are", session.identity()).await?;
        if !identity_is(&identity, spec.family, &spec.username) {
            session.close().await;
            return Err(DbError::new(
                ErrorClass::Authentication,
                format!(
                    "logging in as {} the server says we are {}: another account (an anonymous user?) took the login; its password is left alone",
                    dbcreds_core::sanitize::for_log(&spec.username),
                    dbcreds_core::sanitize::for_log(&identity.current_user)
                ),
            ));
        }
        by(deadline, "changing the password", session.set_own_password(new_password)).await?;
        session.close().await;
        Ok(())
    }

    async fn mirror_user(&self, master: &SecretDocument, source: &str, target: &str, password: &SecretString, deadline: Instant, proceed: Proceed) -> Result<Option<Vec<GrantChange>>, DbError> {
        let spec = self.spec(master, deadline)?;
        let mut session = dbcreds_db::connect(&spec).await?;
        if !by(deadline, "waiting for the checks before mirroring", async { Ok(proceed.await.unwrap_or(false)) }).await? {
            session.close().await;
            return Ok(None);
        }
        let changes = by(deadline, "mirroring the user", session.mirror_user(source, target, password)).await?;
        session.close().await;
        Ok(Some(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str) -> Identity {
        Identity { current_user: user.into(), server_version: "x".into() }
    }

    #[test]
    fn identity_checks_follow_each_engine() {
        assert!(identity_is(&id("app@%"), EngineFamily::MySql, "app"));
        assert!(identity_is(&id("app_clone@10.0.0.%"), EngineFamily::MySql, "app_clone"));
        assert!(!identity_is(&id("@localhost"), EngineFamily::MySql, "app"));
        assert!(!identity_is(&id("app"), EngineFamily::MySql, "app"));
        assert!(identity_is(&id("app"), EngineFamily::Postgres, "app"));
        assert!(!identity_is(&id("app"), EngineFamily::Postgres, "app_clone"));
        assert!(!identity_is(&id("postgres"), EngineFamily::Postgres, "app"));
    }
}
