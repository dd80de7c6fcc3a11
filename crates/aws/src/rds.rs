//! Finding the database behind an RDS-managed master secret.
//!
//! When RDS manages the master password (`ManageMasterUserPassword`), the secret holds only
//! `username` and `password`. RDS tags it with the owning instance's or cluster's ARN
//! (`aws:rds:primarydbinstancearn` / `aws:rds:primarydbclusterarn`); DescribeDBInstances or
//! DescribeDBClusters then gives the endpoint, port and engine.

use crate::clients::{AwsClients, CallTimeouts};
use crate::error::{AwsError, CallContext, from_sdk_error};
use crate::secret_store::SecretMetadata;
use dbcreds_core::{Engine, ErrorClass};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The tag RDS puts on the master secret of a DB instance. AWS writes it in lower case; moto
/// writes `aws:rds:primaryDBInstanceArn`; tag keys are compared ignoring ASCII case.
pub const TAG_PRIMARY_DB_INSTANCE_ARN: &str = "aws:rds:primarydbinstancearn";
/// The tag RDS puts on the master secret of a DB cluster (Aurora, Multi-AZ DB cluster).
pub const TAG_PRIMARY_DB_CLUSTER_ARN: &str = "aws:rds:primarydbclusterarn";

/// Where to connect, as RDS describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseEndpoint {
    /// The instance endpoint, or the cluster's writer endpoint.
    pub host: String,
    pub port: u16,
    /// `None` when RDS reports an engine dbcreds does not drive (Oracle, SQL Server, Db2);
    /// `engine_name` says which.
    pub engine: Option<Engine>,
    /// The engine as RDS names it (`aurora-postgresql`, `oracle-ee`).
    pub engine_name: String,
    /// The DB instance or cluster ARN the endpoint was read from.
    pub resource_arn: String,
}

/// The RDS resource an RDS-managed secret belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RdsOwner {
    Instance(String),
    Cluster(String),
}

impl RdsOwner {
    /// Reads the owner from the secret's tags. `None` when the secret is not RDS-managed.
    pub fn from_tags(metadata: &SecretMetadata) -> Option<RdsOwner> {
        let tag = |key: &str| metadata.tags.iter().find(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_empty()).map(|(_, v)| v.clone());
        tag(TAG_PRIMARY_DB_CLUSTER_ARN).map(RdsOwner::Cluster).or_else(|| tag(TAG_PRIMARY_DB_INSTANCE_ARN).map(RdsOwner::Instance))
    }

    pub fn arn(&self) -> &str {
        match self {
            RdsOwner::Instance(arn) | RdsOwner::Cluster(arn) => arn,
        }
    }
}

/// Calls DescribeDBInstances and DescribeDBClusters.
#[derive(Clone, Debug)]
pub struct RdsEndpoints {
    client: aws_sdk_rds::Client,
    timeouts: CallTimeouts,
    deadline: Option<Instant>,
    calls: Arc<AtomicU64>,
}

impl RdsEndpoints {
    pub fn new(clients: &AwsClients) -> Self {
        Self::from_client(clients.rds.clone(), clients.timeouts)
    }

    pub fn from_client(client: aws_sdk_rds::Client, timeouts: CallTimeouts) -> Self {
        Self { client, timeouts, deadline: None, calls: Arc::default() }
    }

    pub fn with_deadline(&self, deadline: impl Into<Instant>) -> Self {
        Self { deadline: Some(deadline.into()), ..self.clone() }
    }

    /// RDS calls made by this object and its views.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The endpoint of the instance or cluster whose master secret this is.
    pub async fn endpoint_for_secret(&self, metadata: &SecretMetadata) -> Result<DatabaseEndpoint, AwsError> {
        match RdsOwner::from_tags(metadata) {
            Some(RdsOwner::Cluster(arn)) => self.cluster_endpoint(&arn).await,
            Some(RdsOwner::Instance(arn)) => self.instance_endpoint(&arn).await,
            None => Err(AwsError::new(
                ErrorClass::Input,
                None,
                format!(
                    "secret {}: has neither the {TAG_PRIMARY_DB_INSTANCE_ARN} nor the {TAG_PRIMARY_DB_CLUSTER_ARN} tag, so it is not an RDS-managed master secret; put engine, host and port in the secret",
                    dbcreds_core::sanitize::for_log(&metadata.arn)
                ),
            )),
        }
    }

    fn overrides(&self, operation: &str, arn_or_id: &str) -> Result<aws_sdk_rds::config::Builder, AwsError> {
        let mut builder = aws_sdk_rds::config::Builder::default().timeout_config(self.timeouts.until(self.deadline, operation)?);
        // An ARN names its region; describe it there (a secret replicated to another region
        // still points at the primary database).
        if let Some(region) = arn_region(arn_or_id) {
            builder = builder.region(aws_config::Region::new(region.to_owned()));
        }
        Ok(builder)
    }

    fn context<'a>(&self, operation: &'static str, subject: &'a str, iam_action: &'static str) -> CallContext<'a> {
        CallContext { operation, subject, not_found: ErrorClass::Input, denied: ErrorClass::Aws, denied_hint: iam_action, deadline: self.deadline }
    }

    /// DescribeDBInstances by identifier or ARN.
    pub async fn instance_endpoint(&self, arn_or_id: &str) -> Result<DatabaseEndpoint, AwsError> {
        let call = self.context("DescribeDBInstances", arn_or_id, "the function's IAM policy must allow rds:DescribeDBInstances on the instance");
        let overrides = self.overrides(call.operation, arn_or_id)?;
        let started = Instant::now();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let output = self
            .client
            .describe_db_instances()
            .db_instance_identifier(arn_or_id)
            .customize()
            .config_override(overrides)
            .send()
            .await
            .map_err(|err| not_found_hint(from_sdk_error(&call, &err)))?;
        let instance = output.db_instances.unwrap_or_default().into_iter().next().ok_or_else(|| not_found(&call))?;
        let what = format!("DB instance {}", dbcreds_core::sanitize::for_log(arn_or_id));
        let Some(endpoint) = instance.endpoint else {
            return Err(no_endpoint_yet(&what, instance.db_instance_status.as_deref()));
        };
        let host = endpoint.address.filter(|a| !a.is_empty()).ok_or_else(|| no_endpoint_yet(&what, instance.db_instance_status.as_deref()))?;
        let port = endpoint.port.or(instance.db_instance_port).and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
        let port = port.ok_or_else(|| AwsError::new(ErrorClass::State, None, format!("{what}: RDS reports no port")))?;
        let engine_name = instance.engine.unwrap_or_default();
        tracing::debug!(api = "DescribeDBInstances", host = %host, port, engine = %engine_name, duration_ms = started.elapsed().as_millis() as u64, "rds call");
        Ok(DatabaseEndpoint {
            host,
            port,
            engine: Engine::parse("engine", &engine_name).ok(),
            engine_name,
            resource_arn: instance.db_instance_arn.unwrap_or_else(|| arn_or_id.to_owned()),
        })
    }

    /// DescribeDBClusters by identifier or ARN: the writer (cluster) endpoint.
    pub async fn cluster_endpoint(&self, arn_or_id: &str) -> Result<DatabaseEndpoint, AwsError> {
        let call = self.context("DescribeDBClusters", arn_or_id, "the function's IAM policy must allow rds:DescribeDBClusters on the cluster");
        let overrides = self.overrides(call.operation, arn_or_id)?;
        let started = Instant::now();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let output = self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(arn_or_id)
            .customize()
            .config_override(overrides)
            .send()
            .await
            .map_err(|err| not_found_hint(from_sdk_error(&call, &err)))?;
        let cluster = output.db_clusters.unwrap_or_default().into_iter().next().ok_or_else(|| not_found(&call))?;
        let what = format!("DB cluster {}", dbcreds_core::sanitize::for_log(arn_or_id));
        let host = cluster.endpoint.filter(|e| !e.is_empty()).ok_or_else(|| no_endpoint_yet(&what, cluster.status.as_deref()))?;
        let port = cluster.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
        let port = port.ok_or_else(|| AwsError::new(ErrorClass::State, None, format!("{what}: RDS reports no port")))?;
        let engine_name = cluster.engine.unwrap_or_default();
        tracing::debug!(api = "DescribeDBClusters", host = %host, port, engine = %engine_name, duration_ms = started.elapsed().as_millis() as u64, "rds call");
        Ok(DatabaseEndpoint {
            host,
            port,
            engine: Engine::parse("engine", &engine_name).ok(),
            engine_name,
            resource_arn: cluster.db_cluster_arn.unwrap_or_else(|| arn_or_id.to_owned()),
        })
    }
}

/// The region field of an ARN (`arn:aws:rds:eu-west-1:...`), when it is one.
fn arn_region(value: &str) -> Option<&str> {
    let mut parts = value.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    let region = parts.nth(2)?;
    crate::clients::validate_region("region", region).ok().map(|()| region)
}

const NOT_FOUND_HINT: &str = "check the secret's RDS tag or identifier (RDS cannot describe a database in another account: assume a role there)";

fn not_found(call: &CallContext<'_>) -> AwsError {
    AwsError::new(ErrorClass::Input, None, format!("{} {}: not found; {NOT_FOUND_HINT}", call.operation, dbcreds_core::sanitize::for_log(call.subject)))
}

fn not_found_hint(mut err: AwsError) -> AwsError {
    if err.is_code("DBInstanceNotFound") || err.is_code("DBInstanceNotFoundFault") || err.is_code("DBClusterNotFoundFault") {
        err.message.push_str("; ");
        err.message.push_str(NOT_FOUND_HINT);
    }
    err
}

fn no_endpoint_yet(what: &str, status: Option<&str>) -> AwsError {
    AwsError::new(ErrorClass::State, None, format!("{what} has no endpoint yet (status {}); retry when it is available", status.unwrap_or("unknown")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tagged(tags: &[(&str, &str)]) -> SecretMetadata {
        SecretMetadata { tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(), ..SecretMetadata::default() }
    }

    #[test]
    fn owner_tags_are_read_in_any_case() {
        let instance = "arn:aws:rds:eu-west-1:111122223333:db:prod";
        let cluster = "arn:aws:rds:eu-west-1:111122223333:cluster:prod";
        assert_eq!(RdsOwner::from_tags(&tagged(&[(TAG_PRIMARY_DB_INSTANCE_ARN, instance)])), Some(RdsOwner::Instance(instance.into())));
        assert_eq!(RdsOwner::from_tags(&tagged(&[("aws:rds:primaryDBClusterArn", cluster)])), Some(RdsOwner::Cluster(cluster.into())));
        assert_eq!(RdsOwner::from_tags(&tagged(&[("team", "x")])), None);
        assert_eq!(RdsOwner::from_tags(&tagged(&[(TAG_PRIMARY_DB_INSTANCE_ARN, "")])), None);
    }

    #[test]
    fn arns_name_their_region() {
        assert_eq!(arn_region("arn:aws:rds:eu-west-1:111122223333:db:prod"), Some("eu-west-1"));
        assert_eq!(arn_region("prod"), None);
        assert_eq!(arn_region("arn:aws:rds::111122223333:db:prod"), None);
    }
}
