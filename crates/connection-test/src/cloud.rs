//! The three things the check asks of AWS, as one small port.
//!
//! The implementation ([`crate::aws::SdkCloud`]) delegates to the shared AWS adapters in
//! `dbcreds-aws` (STS assume-role, the IAM token generator, the Secrets Manager store); this
//! trait only narrows them to what the phases use, so the phase logic can be unit-tested with a
//! fake and reused by the CLI.

use crate::config::RoleToAssume;
use async_trait::async_trait;
use dbcreds_aws::AwsError;
pub use dbcreds_aws::sts::AssumedCredentials;
use dbcreds_core::SecretString;
use tokio::time::Instant;

/// Whose credentials sign the IAM token.
#[derive(Clone, Debug)]
pub enum SignWith {
    /// The function's own (its execution role).
    Own,
    /// An assumed role's temporary credentials (their secret parts are `SecretString`s).
    Assumed(AssumedCredentials),
}

/// An RDS IAM authentication token and the region it was signed for.
#[derive(Clone, Debug)]
pub struct IamToken {
    pub value: SecretString,
    pub region: String,
}

#[async_trait]
pub trait Cloud: Send + Sync {
    /// STS AssumeRole with the external id and session name. A refusal has class
    /// `AssumeRoleDenied`. The credentials are the shared STS adapter's type.
    async fn assume_role(&self, role: &RoleToAssume, deadline: Instant) -> Result<AssumedCredentials, AwsError>;

    /// Signs a token for `host:port` and `user` in the function's region.
    async fn iam_token(&self, sign_with: &SignWith, host: &str, port: u16, user: &str) -> Result<IamToken, AwsError>;

    /// The secret's AWSCURRENT value.
    async fn read_secret(&self, secret_id: &str, deadline: Instant) -> Result<SecretString, AwsError>;
}
