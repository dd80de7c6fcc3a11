//! What the subcommands share, built once per run: the AWS clients from the standard environment
//! (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL*`, the credentials chain, and AWS's
//! `SECRETS_MANAGER_ENDPOINT`, with `--region` and `--profile` on top), the Secrets Manager store
//! and RDS adapters over them, and the database trust store (system roots, the RDS CAs, and
//! `--ca-bundle` / `DB_CA_BUNDLE`). Building makes no network call.

use crate::GlobalArgs;
use crate::exit::CliError;
use dbcreds_aws::{AwsClients, RdsEndpoints, SecretsManagerStore};
use dbcreds_db::TrustStore;
use dbcreds_db::tls::CA_BUNDLE_ENV;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long one database login (DNS, TCP, TLS, authentication, the identity query) may take.
pub const LOGIN_TIME: Duration = Duration::from_secs(20);
/// How long one rotation step may take: a rotation function's usual timeout.
pub const STEP_TIME: Duration = Duration::from_secs(60);

pub fn deadline_in(time: Duration) -> Instant {
    Instant::now() + time
}

pub struct Toolkit {
    pub store: SecretsManagerStore,
    pub rds: RdsEndpoints,
    pub trust: Arc<TrustStore>,
}

impl Toolkit {
    pub async fn load(global: &GlobalArgs) -> Result<Self, CliError> {
        let clients = aws_clients(global, None).await?;
        let trust = trust_store(global)?;
        Ok(Self { store: SecretsManagerStore::new(&clients), rds: RdsEndpoints::new(&clients), trust })
    }
}

/// The AWS clients; `fallback_region` is used when neither `--region` nor the environment names one.
pub async fn aws_clients(global: &GlobalArgs, fallback_region: Option<&str>) -> Result<AwsClients, CliError> {
    let region = global.region.as_deref().or_else(|| fallback_region.filter(|_| !region_in_environment()));
    AwsClients::from_env_with(region, global.profile.as_deref())
        .await
        .map_err(|err| CliError::from(err).context("building the AWS clients").with_hint("set AWS_REGION (or pass --region) and credentials (AWS_PROFILE, --profile, or the AWS_ACCESS_KEY_ID family)"))
}

fn region_in_environment() -> bool {
    ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

/// System roots, the RDS CAs, and the bundle named by `--ca-bundle` (or `DB_CA_BUNDLE`).
pub fn trust_store(global: &GlobalArgs) -> Result<Arc<TrustStore>, CliError> {
    let bundle = global.ca_bundle.as_ref().map(|path| path.display().to_string());
    let trust = TrustStore::load(|name| if name == CA_BUNDLE_ENV { bundle.clone() } else { dbcreds_runtime::env_lookup(name) })
        .map_err(|err| CliError::from(err).context("loading the trusted certificate authorities"))?;
    tracing::info!(trust = ?trust.sources(), "trust store loaded");
    Ok(Arc::new(trust))
}
