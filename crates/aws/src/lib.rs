//! AWS adapters: the ports the functions program against, and their SDK implementations.
//!
//! - [`secret_store::SecretStore`]: the Secrets Manager port (describe, read a version, write a
//!   pending version, move a stage). [`secrets_manager::SecretsManagerStore`] implements it over
//!   the SDK with a cache of version values: secret versions are immutable, so a warm function
//!   never fetches the same VersionId twice. Build it once per cold start; per invocation use
//!   `store.with_deadline(budget.deadline())`, a view that shares the cache and bounds every call
//!   by the deadline.
//! - Errors: every failure is an [`AwsError`] with the service's code and an `ErrorClass`
//!   (not found, access denied with the IAM action to allow, throttling, no route to the
//!   endpoint, deadline).
//! - [`sts`]: assume a role (with an external id) for cross-account access.
//! - [`rds`]: find a database endpoint from an RDS-managed master secret's tags.
//! - [`iam_token`]: RDS IAM authentication tokens.
//! - [`clients::AwsClients`]: every SDK client, built once per cold start from the standard
//!   environment (`AWS_REGION`, `AWS_ENDPOINT_URL*`, the credentials chain, and AWS's
//!   `SECRETS_MANAGER_ENDPOINT`).

pub mod clients;
pub mod error;
pub mod iam_token;
pub mod rds;
pub mod secret_store;
pub mod secrets_manager;
pub mod sts;

pub use clients::{AwsClients, CallTimeouts};
pub use error::AwsError;
pub use iam_token::IamTokenRequest;
pub use rds::{DatabaseEndpoint, RdsEndpoints, RdsOwner};
pub use secrets_manager::{CallCounts, ListedVersion, SecretsManagerStore};
pub use sts::{AssumedCredentials, RoleAssumer};
pub use secret_store::{SecretMetadata, SecretStore, SecretVersion, VersionSelector, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
