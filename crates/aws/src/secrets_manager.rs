//! [`SecretStore`] over the Secrets Manager SDK, with a cache of version values.
//!
//! Secret versions are immutable: once a VersionId exists, its value never changes. So a value
//! read by VersionId, returned with its VersionId when read by stage, or written by us, is kept
//! by (secret ARN, VersionId) for the life of the warm process and never fetched again. Stages
//! do move, so a read by stage resolves through the last DescribeSecret of this store view (and
//! only while that describe is fresh, see [`SecretsManagerStore::with_snapshot_max_age`]); without
//! one it asks the service. A rotation step (describe, then read AWSCURRENT and AWSPENDING) thus
//! costs one call instead of three once the versions are known.
//!
//! The `stages` of a read served from the cache are those of the view's describe when it has
//! one, else the stages the process last saw: decide on stages with `describe`, as the rotation
//! steps do.
//!
//! A secret the process only reads (the master of alternating users) can also be read by stage
//! from memory for a while ([`SecretStore::remembered_value`]): the caller bounds the age and
//! reads again when the database refuses the remembered value.
//!
//! Calls are counted per API in atomic counters ([`SecretsManagerStore::calls`]) so tests can
//! assert how many calls a step makes.

use crate::clients::{AwsClients, CallTimeouts};
use crate::error::{AwsError, CallContext, from_sdk_error};
use crate::secret_store::{SecretMetadata, SecretStore, SecretVersion, VersionSelector};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_smithy_types::date_time::Format;
use dbcreds_core::{ErrorClass, SecretString};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many version values the process keeps. A rotation touches two or three versions of one
/// secret; a provisioner a few secrets. Old entries go first.
pub const VERSION_CACHE_CAPACITY: usize = 256;

/// How long a DescribeSecret answers "which version has this stage". A step reads its versions
/// right after describing; anything older may predate another writer's stage move.
pub const DEFAULT_SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(10);

/// Calls made to Secrets Manager, per API, since the store was built (shared by its views).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub describe_secret: u64,
    pub get_secret_value: u64,
    pub put_secret_value: u64,
    pub update_secret_version_stage: u64,
    /// Reads served from the version cache (no call made).
    pub cache_hits: u64,
}

impl CallCounts {
    /// API calls made (cache hits are not calls).
    pub fn total(&self) -> u64 {
        self.describe_secret + self.get_secret_value + self.put_secret_value + self.update_secret_version_stage
    }

    /// The calls made between `earlier` and `self`.
    pub fn since(&self, earlier: &CallCounts) -> CallCounts {
        CallCounts {
            describe_secret: self.describe_secret - earlier.describe_secret,
            get_secret_value: self.get_secret_value - earlier.get_secret_value,
            put_secret_value: self.put_secret_value - earlier.put_secret_value,
            update_secret_version_stage: self.update_secret_version_stage - earlier.update_secret_version_stage,
            cache_hits: self.cache_hits - earlier.cache_hits,
        }
    }
}

#[derive(Default)]
struct Counters {
    describe_secret: AtomicU64,
    get_secret_value: AtomicU64,
    put_secret_value: AtomicU64,
    update_secret_version_stage: AtomicU64,
    cache_hits: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CallCounts {
        CallCounts {
            describe_secret: self.describe_secret.load(Ordering::Relaxed),
            get_secret_value: self.get_secret_value.load(Ordering::Relaxed),
            put_secret_value: self.put_secret_value.load(Ordering::Relaxed),
            update_secret_version_stage: self.update_secret_version_stage.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }
}

/// One immutable version's value, and the stages it had when last seen.
struct CachedVersion {
    value: SecretString,
    stages: Vec<String>,
}

/// (secret ARN, VersionId) -> value, bounded, oldest out first. Values are `SecretString`s:
/// zeroised when evicted or when the process ends.
#[derive(Default)]
struct VersionCache {
    entries: HashMap<(String, String), CachedVersion>,
    order: VecDeque<(String, String)>,
}

impl VersionCache {
    fn get(&self, arn: &str, version_id: &str) -> Option<&CachedVersion> {
        // A tuple of owned Strings as the key keeps the map simple; the lookup allocates two
        // short strings, which is nothing next to a network call.
        self.entries.get(&(arn.to_owned(), version_id.to_owned()))
    }

    fn insert(&mut self, arn: &str, version_id: &str, value: SecretString, stages: Vec<String>) {
        let key = (arn.to_owned(), version_id.to_owned());
        if let Some(existing) = self.entries.get_mut(&key) {
            existing.stages = stages;
            return;
        }
        while self.entries.len() >= VERSION_CACHE_CAPACITY {
            let Some(oldest) = self.order.pop_front() else { break };
            self.entries.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.entries.insert(key, CachedVersion { value, stages });
    }

    /// A describe tells the current stages of every version: keep the cached ones in step.
    fn restage(&mut self, metadata: &SecretMetadata) {
        for ((arn, version_id), cached) in self.entries.iter_mut() {
            if arn == &metadata.arn {
                cached.stages = metadata.versions.get(version_id).cloned().unwrap_or_default();
            }
        }
    }
}

/// What the whole process shares: the cache, where each stage read by stage was found, and the
/// counters.
#[derive(Default)]
struct Shared {
    cache: Mutex<VersionCache>,
    /// (secret id as asked, stage) -> where that stage was found, for
    /// [`SecretStore::remembered_value`].
    stage_reads: Mutex<HashMap<(String, String), StageRead>>,
    counters: Counters,
}

/// A read by stage: when, and the version it found.
struct StageRead {
    when: Instant,
    arn: String,
    version_id: String,
}

/// The last DescribeSecret of each secret seen by one view.
#[derive(Default)]
struct Snapshots {
    /// ARN -> (when, metadata).
    by_arn: HashMap<String, (Instant, Arc<SecretMetadata>)>,
    /// The secret ids callers used (names, partial ARNs) -> ARN.
    aliases: HashMap<String, String>,
}

impl Snapshots {
    fn arn_of(&self, secret_id: &str) -> Option<&str> {
        if let Some((arn, _)) = self.by_arn.get_key_value(secret_id) {
            return Some(arn);
        }
        self.aliases.get(secret_id).map(String::as_str)
    }

    fn fresh(&self, secret_id: &str, max_age: Duration) -> Option<Arc<SecretMetadata>> {
        let arn = self.arn_of(secret_id)?;
        let (taken, metadata) = self.by_arn.get(arn)?;
        (taken.elapsed() <= max_age).then(|| Arc::clone(metadata))
    }

    fn forget(&mut self, secret_id: &str) {
        if let Some(arn) = self.arn_of(secret_id).map(str::to_owned) {
            self.by_arn.remove(&arn);
        }
    }
}

/// Secrets Manager through the SDK. Build one per cold start with [`SecretsManagerStore::new`];
/// per invocation take a view with [`SecretsManagerStore::with_deadline`], which shares the
/// version cache and counters but starts with no DescribeSecret snapshot and bounds every call
/// by the invocation's deadline.
pub struct SecretsManagerStore {
    client: Client,
    timeouts: CallTimeouts,
    deadline: Option<Instant>,
    snapshot_max_age: Duration,
    shared: Arc<Shared>,
    snapshots: Mutex<Snapshots>,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerStore").field("deadline", &self.deadline).field("calls", &self.calls()).finish_non_exhaustive()
    }
}

impl SecretsManagerStore {
    pub fn new(clients: &AwsClients) -> Self {
        Self::from_client(clients.secrets.clone(), clients.timeouts)
    }

    pub fn from_client(client: Client, timeouts: CallTimeouts) -> Self {
        Self {
            client,
            timeouts,
            deadline: None,
            snapshot_max_age: DEFAULT_SNAPSHOT_MAX_AGE,
            shared: Arc::default(),
            snapshots: Mutex::default(),
        }
    }

    /// A view for one invocation: same client, cache and counters; calls end by `deadline`; no
    /// DescribeSecret snapshot carried over from an earlier invocation.
    pub fn with_deadline(&self, deadline: impl Into<Instant>) -> Self {
        Self {
            client: self.client.clone(),
            timeouts: self.timeouts,
            deadline: Some(deadline.into()),
            snapshot_max_age: self.snapshot_max_age,
            shared: Arc::clone(&self.shared),
            snapshots: Mutex::default(),
        }
    }

    /// How long a DescribeSecret may resolve stage reads (default
    /// [`DEFAULT_SNAPSHOT_MAX_AGE`]). `Duration::ZERO` disables stage resolution: every read by
    /// stage asks the service (reads by VersionId are still cached).
    pub fn with_snapshot_max_age(mut self, max_age: Duration) -> Self {
        self.snapshot_max_age = max_age;
        self
    }

    /// Calls made so far by this store and all its views.
    pub fn calls(&self) -> CallCounts {
        self.shared.counters.snapshot()
    }

    /// How many version values are cached.
    pub fn cached_versions(&self) -> usize {
        self.shared.cache.lock().expect("cache lock").entries.len()
    }

    fn context<'a>(&self, operation: &'static str, subject: &'a str, not_found: ErrorClass, iam_action: &'static str) -> CallContext<'a> {
        CallContext { operation, subject, not_found, denied: ErrorClass::Aws, denied_hint: iam_action, deadline: self.deadline }
    }

    fn override_config(&self, operation: &str) -> Result<aws_sdk_secretsmanager::config::Builder, AwsError> {
        Ok(aws_sdk_secretsmanager::config::Builder::default().timeout_config(self.timeouts.until(self.deadline, operation)?))
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, Snapshots> {
        self.snapshots.lock().expect("snapshot lock")
    }

    /// The ARN a secret id stands for, when known without a call: a full ARN is itself; a name
    /// is known through this view's snapshot.
    fn known_arn(&self, secret_id: &str) -> Option<String> {
        if is_full_secret_arn(secret_id) {
            return Some(secret_id.to_owned());
        }
        let snapshots = self.snapshots();
        snapshots.fresh(secret_id, self.snapshot_max_age).map(|metadata| metadata.arn.clone())
    }

    /// Serves a read from the cache when the answer is certain without asking the service.
    fn cached_read(&self, secret_id: &str, selector: &VersionSelector) -> Option<SecretVersion> {
        let snapshot = self.snapshots().fresh(secret_id, self.snapshot_max_age);
        let arn = match &snapshot {
            Some(metadata) => metadata.arn.clone(),
            None => self.known_arn(secret_id)?,
        };
        let version_id = match selector {
            VersionSelector::Id(id) => id.as_str(),
            // A stage moves: only a fresh describe says where it is now.
            VersionSelector::Stage(stage) => snapshot.as_ref()?.version_with_stage(stage)?,
            VersionSelector::IdAndStage(id, stage) => {
                if !snapshot.as_ref()?.has_stage(id, stage) {
                    return None;
                }
                id.as_str()
            }
        };
        let cache = self.shared.cache.lock().expect("cache lock");
        let cached = cache.get(&arn, version_id)?;
        let stages = match &snapshot {
            Some(metadata) => metadata.stages_of(version_id).map(<[String]>::to_vec).unwrap_or_default(),
            None => cached.stages.clone(),
        };
        Counters::bump(&self.shared.counters.cache_hits);
        Some(SecretVersion { arn, version_id: version_id.to_owned(), stages, value: cached.value.clone() })
    }
}

/// One version as ListSecretVersionIds reports it: also the versions without a stage, which
/// DescribeSecret leaves out (AWS deprecates them and may delete them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedVersion {
    pub version_id: String,
    pub stages: Vec<String>,
    pub created: Option<String>,
    pub last_accessed: Option<String>,
}

impl SecretsManagerStore {
    /// Every version of the secret, deprecated ones (no stage) included, for diagnostics (the
    /// operator CLI's doctor). Not part of the [`SecretStore`] port: no rotation or provisioning
    /// step needs it.
    pub async fn list_versions(&self, secret_id: &str) -> Result<Vec<ListedVersion>, AwsError> {
        let call = self.context("ListSecretVersionIds", secret_id, ErrorClass::Input, "the IAM policy must allow secretsmanager:ListSecretVersionIds on the secret");
        let mut versions = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let overrides = self.override_config(call.operation)?;
            let output = self
                .client
                .list_secret_version_ids()
                .secret_id(secret_id)
                .include_deprecated(true)
                .set_next_token(next_token.take())
                .customize()
                .config_override(overrides)
                .send()
                .await
                .map_err(|err| from_sdk_error(&call, &err))?;
            for entry in output.versions.unwrap_or_default() {
                let Some(version_id) = entry.version_id else { continue };
                versions.push(ListedVersion {
                    version_id,
                    stages: entry.version_stages.unwrap_or_default(),
                    created: format_date(entry.created_date.as_ref()),
                    last_accessed: format_date(entry.last_accessed_date.as_ref()),
                });
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(versions),
            }
        }
    }
}

/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 chars>`. Only a complete
/// ARN identifies one secret for ever; a name can be deleted and created again.
fn is_full_secret_arn(secret_id: &str) -> bool {
    let mut parts = secret_id.splitn(7, ':');
    let (Some("arn"), Some(_partition), Some("secretsmanager"), Some(_region), Some(_account), Some("secret"), Some(name)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    name.rsplit_once('-').is_some_and(|(_, suffix)| suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn format_date(date: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    date.and_then(|d| d.fmt(Format::DateTime).ok())
}

fn missing_field(operation: &str, secret_id: &str, field: &str) -> AwsError {
    AwsError::new(ErrorClass::Internal, None, format!("{operation} {}: the response has no {field}", dbcreds_core::sanitize::for_log(secret_id)))
}

fn metadata_from(output: aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput, secret_id: &str) -> Result<SecretMetadata, AwsError> {
    let arn = output.arn.ok_or_else(|| missing_field("DescribeSecret", secret_id, "ARN"))?;
    let rotation_schedule = output.rotation_rules.as_ref().and_then(|rules| {
        let schedule = match (&rules.schedule_expression, rules.automatically_after_days) {
            (Some(expression), _) => expression.clone(),
            (None, Some(days)) => format!("every {days} days"),
            (None, None) => return None,
        };
        Some(match &rules.duration {
            Some(window) => format!("{schedule} (window {window})"),
            None => schedule,
        })
    });
    let versions: BTreeMap<String, Vec<String>> = output.version_ids_to_stages.unwrap_or_default().into_iter().collect();
    let tags: BTreeMap<String, String> =
        output.tags.unwrap_or_default().into_iter().filter_map(|tag| Some((tag.key?, tag.value.unwrap_or_default()))).collect();
    Ok(SecretMetadata {
        name: output.name.unwrap_or_default(),
        rotation_enabled: output.rotation_enabled.unwrap_or(false),
        rotation_lambda_arn: output.rotation_lambda_arn,
        rotation_schedule,
        last_rotated: format_date(output.last_rotated_date.as_ref()),
        next_rotation: format_date(output.next_rotation_date.as_ref()),
        versions,
        tags,
        kms_key_id: output.kms_key_id,
        arn,
    })
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretMetadata, AwsError> {
        let call = self.context("DescribeSecret", secret_id, ErrorClass::Input, "the function's IAM policy must allow secretsmanager:DescribeSecret on the secret");
        let overrides = self.override_config(call.operation)?;
        let started = Instant::now();
        Counters::bump(&self.shared.counters.describe_secret);
        let output = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .customize()
            .config_override(overrides)
            .send()
            .await
            .map_err(|err| from_sdk_error(&call, &err))?;
        let metadata = metadata_from(output, secret_id)?;
        tracing::debug!(api = "DescribeSecret", secret_arn = %metadata.arn, versions = metadata.versions.len(), duration_ms = started.elapsed().as_millis() as u64, "secrets manager call");

        self.shared.cache.lock().expect("cache lock").restage(&metadata);
        let mut snapshots = self.snapshots();
        if secret_id != metadata.arn {
            snapshots.aliases.insert(secret_id.to_owned(), metadata.arn.clone());
        }
        snapshots.by_arn.insert(metadata.arn.clone(), (Instant::now(), Arc::new(metadata.clone())));
        Ok(metadata)
    }

    async fn get_value(&self, secret_id: &str, selector: VersionSelector) -> Result<SecretVersion, AwsError> {
        if let Some(version) = self.cached_read(secret_id, &selector) {
            tracing::debug!(api = "GetSecretValue", secret_arn = %version.arn, version = %version.version_id, cached = true, "secrets manager read");
            return Ok(version);
        }
        let call = self.context(
            "GetSecretValue",
            secret_id,
            ErrorClass::State,
            "the function's IAM policy must allow secretsmanager:GetSecretValue on the secret, and kms:Decrypt on its key when that is a customer-managed key",
        );
        let overrides = self.override_config(call.operation)?;
        let (version_id, stage) = match &selector {
            VersionSelector::Stage(stage) => (None, Some(stage.clone())),
            VersionSelector::Id(id) => (Some(id.clone()), None),
            VersionSelector::IdAndStage(id, stage) => (Some(id.clone()), Some(stage.clone())),
        };
        let started = Instant::now();
        Counters::bump(&self.shared.counters.get_secret_value);
        let mut output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id)
            .set_version_stage(stage)
            .customize()
            .config_override(overrides)
            .send()
            .await
            .map_err(|err| from_sdk_error(&call, &err))?;

        let arn = output.arn.take().ok_or_else(|| missing_field("GetSecretValue", secret_id, "ARN"))?;
        let version_id = output.version_id.take().ok_or_else(|| missing_field("GetSecretValue", secret_id, "VersionId"))?;
        let stages = output.version_stages.take().unwrap_or_default();
        // Moved, not copied: the SDK's String becomes the SecretString that gets zeroised.
        let value = match output.secret_string.take() {
            Some(text) => SecretString::new(text),
            None if output.secret_binary.is_some() => {
                return Err(AwsError::new(
                    ErrorClass::Input,
                    None,
                    format!("GetSecretValue {}: version {version_id} holds SecretBinary; dbcreds needs a SecretString JSON document", dbcreds_core::sanitize::for_log(secret_id)),
                ));
            }
            None => {
                return Err(AwsError::new(
                    ErrorClass::State,
                    Some("ResourceNotFoundException".into()),
                    format!("GetSecretValue {}: version {version_id} has no value", dbcreds_core::sanitize::for_log(secret_id)),
                ));
            }
        };
        tracing::debug!(api = "GetSecretValue", secret_arn = %arn, version = %version_id, cached = false, duration_ms = started.elapsed().as_millis() as u64, "secrets manager call");

        self.shared.cache.lock().expect("cache lock").insert(&arn, &version_id, value.clone(), stages.clone());
        if let VersionSelector::Stage(stage) = &selector {
            let read = StageRead { when: Instant::now(), arn: arn.clone(), version_id: version_id.clone() };
            self.shared.stage_reads.lock().expect("stage reads lock").insert((secret_id.to_owned(), stage.clone()), read);
        }
        if secret_id != arn {
            self.snapshots().aliases.insert(secret_id.to_owned(), arn.clone());
        }
        Ok(SecretVersion { arn, version_id, stages, value })
    }

    fn remembered_value(&self, secret_id: &str, stage: &str, max_age: Duration) -> Option<SecretVersion> {
        let (arn, version_id) = {
            let reads = self.shared.stage_reads.lock().expect("stage reads lock");
            reads.get(&(secret_id.to_owned(), stage.to_owned())).filter(|read| read.when.elapsed() <= max_age).map(|read| (read.arn.clone(), read.version_id.clone()))?
        };
        let (value, stages) = self.shared.cache.lock().expect("cache lock").get(&arn, &version_id).map(|c| (c.value.clone(), c.stages.clone()))?;
        Counters::bump(&self.shared.counters.cache_hits);
        tracing::debug!(api = "GetSecretValue", secret_arn = %arn, version = %version_id, cached = true, max_age_s = max_age.as_secs(), "secrets manager read of a recent stage");
        Some(SecretVersion { arn, version_id, stages, value })
    }

    async fn put_value(&self, secret_id: &str, version_id: &str, value: &SecretString, stages: &[&str], rotation_token: Option<&str>) -> Result<(), AwsError> {
        let call = self.context(
            "PutSecretValue",
            secret_id,
            ErrorClass::Input,
            "the function's IAM policy must allow secretsmanager:PutSecretValue on the secret, and kms:GenerateDataKey on its key when that is a customer-managed key",
        );
        let overrides = self.override_config(call.operation)?;
        let started = Instant::now();
        Counters::bump(&self.shared.counters.put_secret_value);
        let output = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(version_id)
            // The SDK takes an owned String: this copy lives until the request is sent and is
            // not zeroised (the SDK offers no way around it).
            .secret_string(value.expose())
            .set_version_stages(Some(stages.iter().map(|s| (*s).to_owned()).collect()))
            .set_rotation_token(rotation_token.map(str::to_owned))
            .customize()
            .config_override(overrides)
            .send()
            .await
            .map_err(|err| from_sdk_error(&call, &err))?;
        tracing::debug!(api = "PutSecretValue", secret_arn = output.arn.as_deref().unwrap_or(secret_id), version = version_id, duration_ms = started.elapsed().as_millis() as u64, "secrets manager call");

        // The version now holds exactly this value (AWS refuses a different value under the same
        // token), so the next read of it needs no call.
        if let Some(arn) = output.arn.as_deref() {
            let stages = output.version_stages.clone().unwrap_or_else(|| stages.iter().map(|s| (*s).to_owned()).collect());
            self.shared.cache.lock().expect("cache lock").insert(arn, output.version_id.as_deref().unwrap_or(version_id), value.clone(), stages);
        }
        // Stages changed: the snapshot no longer tells where they are.
        self.snapshots().forget(secret_id);
        Ok(())
    }

    async fn update_stage(&self, secret_id: &str, stage: &str, move_to: Option<&str>, remove_from: Option<&str>) -> Result<(), AwsError> {
        let call = self.context("UpdateSecretVersionStage", secret_id, ErrorClass::State, "the function's IAM policy must allow secretsmanager:UpdateSecretVersionStage on the secret");
        let overrides = self.override_config(call.operation)?;
        let started = Instant::now();
        Counters::bump(&self.shared.counters.update_secret_version_stage);
        let result = self
            .client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(move_to.map(str::to_owned))
            .set_remove_from_version_id(remove_from.map(str::to_owned))
            .customize()
            .config_override(overrides)
            .send()
            .await;
        // Whatever the outcome, the stages may have moved.
        self.snapshots().forget(secret_id);
        let output = result.map_err(|err| from_sdk_error(&call, &err))?;
        tracing::debug!(
            api = "UpdateSecretVersionStage",
            secret_arn = output.arn.as_deref().unwrap_or(secret_id),
            stage,
            version = move_to.unwrap_or("-"),
            removed_from = remove_from.unwrap_or("-"),
            duration_ms = started.elapsed().as_millis() as u64,
            "secrets manager call"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_arns_key_the_cache_without_a_call() {
        assert!(is_full_secret_arn("arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/app-AbC123"));
        assert!(is_full_secret_arn("arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:a-b-c-xyz789"));
        assert!(!is_full_secret_arn("arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/app"));
        assert!(!is_full_secret_arn("prod/app-AbC123"));
        assert!(!is_full_secret_arn("arn:aws:rds:eu-west-1:111122223333:db:prod-AbC123"));
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest() {
        let mut cache = VersionCache::default();
        for i in 0..VERSION_CACHE_CAPACITY + 3 {
            cache.insert("arn", &format!("v{i}"), SecretString::from("x"), vec![]);
        }
        assert_eq!(cache.entries.len(), VERSION_CACHE_CAPACITY);
        assert!(cache.get("arn", "v0").is_none());
        assert!(cache.get("arn", &format!("v{}", VERSION_CACHE_CAPACITY + 2)).is_some());
    }

    #[test]
    fn a_describe_restages_cached_versions() {
        let mut cache = VersionCache::default();
        cache.insert("arn", "v1", SecretString::from("x"), vec!["AWSCURRENT".into()]);
        let metadata = SecretMetadata {
            arn: "arn".into(),
            versions: BTreeMap::from([("v1".into(), vec!["AWSPREVIOUS".into()]), ("v2".into(), vec!["AWSCURRENT".into()])]),
            ..SecretMetadata::default()
        };
        cache.restage(&metadata);
        assert_eq!(cache.get("arn", "v1").unwrap().stages, vec!["AWSPREVIOUS".to_owned()]);
    }
}
