//! The Secrets Manager port: the four things a rotation or a provisioning needs from it.
//!
//! The rotation state machine and the provisioner depend on this trait, not on the SDK, so they
//! can be unit-tested with an in-memory store; the SDK implementation is proven against moto.

use crate::error::AwsError;
use async_trait::async_trait;
use dbcreds_core::SecretString;
use std::collections::BTreeMap;
use std::time::Duration;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// DescribeSecret, reduced to what we use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretMetadata {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    pub rotation_lambda_arn: Option<String>,
    /// `ScheduleExpression` or `AutomaticallyAfterDays`, as text, for the doctor.
    pub rotation_schedule: Option<String>,
    pub last_rotated: Option<String>,
    pub next_rotation: Option<String>,
    /// VersionId -> stages, as DescribeSecret's `VersionIdsToStages` lists them. AWS lists only
    /// versions that carry at least one stage (a version without one is deprecated and may be
    /// deleted); moto also lists them with an empty list. Treat absent and empty alike.
    pub versions: BTreeMap<String, Vec<String>>,
    pub tags: BTreeMap<String, String>,
    pub kms_key_id: Option<String>,
}

impl SecretMetadata {
    pub fn stages_of(&self, version_id: &str) -> Option<&[String]> {
        self.versions.get(version_id).map(Vec::as_slice)
    }

    /// The version that holds `stage`, if any.
    pub fn version_with_stage(&self, stage: &str) -> Option<&str> {
        self.versions.iter().find(|(_, stages)| stages.iter().any(|s| s == stage)).map(|(id, _)| id.as_str())
    }

    pub fn has_stage(&self, version_id: &str, stage: &str) -> bool {
        self.stages_of(version_id).is_some_and(|stages| stages.iter().any(|s| s == stage))
    }
}

/// Which version to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSelector {
    Stage(String),
    Id(String),
    /// The version must have this id *and* this stage (GetSecretValue with both).
    IdAndStage(String, String),
}

impl VersionSelector {
    pub fn stage(stage: &str) -> Self {
        Self::Stage(stage.to_owned())
    }
}

/// One version's value. `Debug` is redacted through `SecretString`.
#[derive(Clone, Debug)]
pub struct SecretVersion {
    pub arn: String,
    pub version_id: String,
    pub stages: Vec<String>,
    pub value: SecretString,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn describe(&self, secret_id: &str) -> Result<SecretMetadata, AwsError>;

    /// GetSecretValue. A version without a value, or not found, is an `AwsError` whose
    /// `is_not_found()` is true.
    async fn get_value(&self, secret_id: &str, selector: VersionSelector) -> Result<SecretVersion, AwsError>;

    /// The value of `stage` as this process read it at most `max_age` ago, if it still holds it,
    /// without a call: for a secret this process does not rotate (the master of alternating
    /// users), where a stale answer is detected by the database refusing it and the caller then
    /// reads again with [`SecretStore::get_value`]. Stores without such a memory answer `None`.
    fn remembered_value(&self, secret_id: &str, stage: &str, max_age: Duration) -> Option<SecretVersion> {
        let _ = (secret_id, stage, max_age);
        None
    }

    /// PutSecretValue with `ClientRequestToken = version_id` and the given stages. Passes
    /// `RotationToken` when the rotation event carried one (required when rotating through an
    /// assumed role or across accounts).
    async fn put_value(&self, secret_id: &str, version_id: &str, value: &SecretString, stages: &[&str], rotation_token: Option<&str>) -> Result<(), AwsError>;

    /// UpdateSecretVersionStage: moves `stage` to `move_to` (removing it from `remove_from`),
    /// or only removes it when `move_to` is None.
    async fn update_stage(&self, secret_id: &str, stage: &str, move_to: Option<&str>, remove_from: Option<&str>) -> Result<(), AwsError>;
}
