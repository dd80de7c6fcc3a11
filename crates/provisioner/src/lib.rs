//! The provisioner: a CloudFormation custom resource (`Custom::DatabaseUsers`) that creates an
//! application's database users with least-privilege grants and completes their secrets.
//!
//! - [`spec`]: the properties, checked before anything is touched.
//! - [`target`]: the database and the master login (master secret, properties, RDS tags).
//! - [`users`]: the listed users resolved (names from their secrets) and their completed secrets.
//! - [`identity`]: the database identity and the physical ids that name it.
//! - [`lifecycle`]: Create, Update and Delete, and the ownership model that makes Delete safe.
//!
//! The CloudFormation protocol (always answering, 4096-byte bodies, retries) is
//! `dbcreds-custom-resource`'s; the database work goes through the `dbcreds-db` seam and the
//! secrets through the `dbcreds-aws` `SecretStore` port. No SQL here.

pub mod error;
pub mod identity;
pub mod lifecycle;
pub mod spec;
pub mod target;
pub mod users;

use async_trait::async_trait;
use dbcreds_aws::{AwsClients, RdsEndpoints, SecretsManagerStore};
use dbcreds_core::ErrorClass;
use dbcreds_custom_resource::{Context, CustomResource, Failure, Request, RequestType, Success, is_not_created_physical_id};
use dbcreds_db::TrustStore;
use std::sync::Arc;

/// What a cold start builds once: the AWS adapters and the trust store.
pub struct Toolkit {
    pub store: SecretsManagerStore,
    pub rds: RdsEndpoints,
    pub trust: Arc<TrustStore>,
}

/// The custom resource. A cold start that could not build its toolkit (no region, an unreadable
/// `DB_CA_BUNDLE`) still answers every request, with FAILED saying why.
pub struct Provisioner {
    toolkit: Result<Toolkit, String>,
}

impl Provisioner {
    pub fn new(toolkit: Result<Toolkit, String>) -> Self {
        Self { toolkit }
    }

    /// From the standard environment: `AWS_REGION`, `AWS_ENDPOINT_URL*`, the credentials chain,
    /// `SECRETS_MANAGER_ENDPOINT`, and `DB_CA_BUNDLE` for the database servers' CA.
    pub async fn from_env() -> Self {
        let clients = AwsClients::from_env().await;
        let trust = TrustStore::load(dbcreds_runtime::env_lookup);
        let toolkit = match (clients, trust) {
            (Ok(clients), Ok(trust)) => Ok(Toolkit { store: SecretsManagerStore::new(&clients), rds: RdsEndpoints::new(&clients), trust: Arc::new(trust) }),
            (Err(err), _) => Err(format!("the AWS clients could not be built: {err}")),
            (_, Err(err)) => Err(format!("the database trust store could not be built: {err}")),
        };
        match &toolkit {
            Ok(toolkit) => tracing::info!(step = "init", trust = ?toolkit.trust.sources(), "provisioner ready"),
            Err(err) => tracing::error!(step = "init", error = %err, "provisioner cannot work; every request will be answered FAILED"),
        }
        Self::new(toolkit)
    }
}

#[async_trait]
impl CustomResource for Provisioner {
    async fn handle(&self, request: &Request, context: &Context) -> Result<Success, Failure> {
        if request.request_type == RequestType::Delete && request.physical_resource_id.as_deref().is_some_and(is_not_created_physical_id) {
            let id = request.physical_resource_id.clone().unwrap_or_default();
            tracing::info!(step = "delete", "the Create under this id failed before changing anything: nothing to delete");
            return Ok(Success { physical_resource_id: id, data: Default::default(), no_echo: false });
        }
        let toolkit = self.toolkit.as_ref().map_err(|err| Failure::new(ErrorClass::Input, format!("{err}; fix the function's configuration; nothing was changed")))?;
        let deadline = context.budget().deadline().into_std();
        let store = toolkit.store.with_deadline(deadline);
        let rds = toolkit.rds.with_deadline(deadline);
        let env = lifecycle::Env { store: &store, rds: &rds, trust: Arc::clone(&toolkit.trust), dry_run: None };
        match request.request_type {
            RequestType::Create => lifecycle::create(request, &env, context).await,
            RequestType::Update => lifecycle::update(request, &env, context).await,
            RequestType::Delete => lifecycle::delete(request, &env, context).await,
        }
    }
}
