//! [`Cloud`] over the shared AWS adapters of `dbcreds-aws`: `RoleAssumer` for STS,
//! `iam_token::generate` for the token, `SecretsManagerStore` for the secret.

use crate::check::Toolkit;
use crate::cloud::{AssumedCredentials, Cloud, IamToken, SignWith};
use crate::config::RoleToAssume;
use async_trait::async_trait;
use dbcreds_aws::iam_token::{self, IamTokenRequest};
use dbcreds_aws::sts::MIN_SESSION_DURATION;
use dbcreds_aws::{AWSCURRENT, AwsClients, AwsError, RoleAssumer, SecretStore, SecretsManagerStore, VersionSelector};
use dbcreds_core::SecretString;
use dbcreds_db::TrustStore;
use std::sync::Arc;
use tokio::time::Instant;

pub struct SdkCloud {
    clients: AwsClients,
    roles: RoleAssumer,
    secrets: SecretsManagerStore,
}

impl SdkCloud {
    pub fn new(clients: AwsClients) -> Self {
        Self { roles: RoleAssumer::new(&clients), secrets: SecretsManagerStore::new(&clients), clients }
    }
}

#[async_trait]
impl Cloud for SdkCloud {
    async fn assume_role(&self, role: &RoleToAssume, deadline: Instant) -> Result<AssumedCredentials, AwsError> {
        // The shortest session STS allows: the token is signed at once and lives 15 minutes anyway.
        self.roles.with_deadline(deadline).assume_role(&role.arn, &role.session_name, role.external_id.as_deref(), MIN_SESSION_DURATION).await
    }

    async fn iam_token(&self, sign_with: &SignWith, host: &str, port: u16, user: &str) -> Result<IamToken, AwsError> {
        let assumed = match sign_with {
            SignWith::Own => None,
            SignWith::Assumed(credentials) => Some(self.clients.for_assumed_role(credentials, None)?),
        };
        let clients = assumed.as_ref().unwrap_or(&self.clients);
        let request = IamTokenRequest { host, port, username: user, region: None };
        let value = iam_token::generate(&clients.config, &request).await?;
        Ok(IamToken { value, region: clients.region().to_owned() })
    }

    async fn read_secret(&self, secret_id: &str, deadline: Instant) -> Result<SecretString, AwsError> {
        let version = self.secrets.with_deadline(deadline).get_value(secret_id, VersionSelector::stage(AWSCURRENT)).await?;
        Ok(version.value)
    }
}

/// A cloud that could not be built (no region, a bad endpoint variable): every call reports
/// why, so the invocation answers with a diagnosis instead of the function failing to start.
pub struct UnavailableCloud(pub AwsError);

#[async_trait]
impl Cloud for UnavailableCloud {
    async fn assume_role(&self, _: &RoleToAssume, _: Instant) -> Result<AssumedCredentials, AwsError> {
        Err(self.0.clone())
    }

    async fn iam_token(&self, _: &SignWith, _: &str, _: u16, _: &str) -> Result<IamToken, AwsError> {
        Err(self.0.clone())
    }

    async fn read_secret(&self, _: &str, _: Instant) -> Result<SecretString, AwsError> {
        Err(self.0.clone())
    }
}

/// The cold start: AWS clients from the standard environment and the trust store from
/// `DB_CA_BUNDLE`. Neither failure stops the function: each invocation reports it.
pub async fn toolkit_from_env() -> Toolkit {
    let cloud: Arc<dyn Cloud> = match AwsClients::from_env().await {
        Ok(clients) => Arc::new(SdkCloud::new(clients)),
        Err(err) => {
            tracing::error!(error_class = err.class.as_str(), error = %err, "AWS clients could not be built");
            Arc::new(UnavailableCloud(err))
        }
    };
    let trust = TrustStore::load(dbcreds_runtime::env_lookup).map(Arc::new);
    if let Err(err) = &trust {
        tracing::error!(error_class = err.class.as_str(), error = %err.message, "the trust store could not be built");
    }
    Toolkit { cloud, trust }
}
