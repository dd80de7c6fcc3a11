//! `SecretsManagerStore` against moto (server mode): the port's four operations, the version
//! cache measured with the call counters, and error classification.

mod common;

use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use common::{clients, create_secret, moto, unique, version_token};
use dbcreds_aws::clients::CallTimeouts;
use dbcreds_aws::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsClients, SecretStore, SecretsManagerStore, VersionSelector};
use dbcreds_core::{ErrorClass, SecretString};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Snapshots that never expire during a test, so no assertion depends on how fast moto is.
fn store(clients: &AwsClients) -> SecretsManagerStore {
    SecretsManagerStore::new(clients).with_snapshot_max_age(Duration::from_secs(3600))
}

fn stages(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn has_stage(metadata: &dbcreds_aws::SecretMetadata, version: &str, stage: &str) -> bool {
    metadata.has_stage(version, stage)
}

#[tokio::test]
async fn describe_reports_versions_stages_rotation_tags_and_key() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let name = unique("describe");
    let v1 = version_token("v1");
    let created = clients
        .secrets
        .create_secret()
        .name(&name)
        .secret_string(r#"{"username":"app","password":"one"}"#)
        .client_request_token(&v1)
        .kms_key_id("alias/dbcreds-test")
        .tags(aws_sdk_secretsmanager::types::Tag::builder().key("team").value("payments").build())
        .tags(aws_sdk_secretsmanager::types::Tag::builder().key("aws:rds:primaryDBInstanceArn").value("arn:aws:rds:us-east-1:123456789012:db:x").build())
        .send()
        .await
        .unwrap();
    let arn = created.arn.unwrap();
    // Rotation on, every 30 days. moto has no rotation function to run; without one it labels
    // a copy of the value as the new AWSCURRENT, which gives the secret a second version.
    let v2 = version_token("v2");
    clients
        .secrets
        .rotate_secret()
        .secret_id(&arn)
        .client_request_token(&v2)
        .rotation_rules(aws_sdk_secretsmanager::types::RotationRulesType::builder().automatically_after_days(30).build())
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    let store = store(&clients);
    let v3 = version_token("v3");
    store.put_value(&name, &v3, &SecretString::from("pending"), &[AWSPENDING], None).await.unwrap();

    let metadata = store.describe(&name).await.unwrap();
    assert_eq!(metadata.arn, arn);
    assert_eq!(metadata.name, name);
    assert!(metadata.rotation_enabled);
    assert_eq!(metadata.rotation_schedule.as_deref(), Some("every 30 days"));
    assert!(metadata.last_rotated.as_deref().is_some_and(|d| d.ends_with('Z') && d.len() >= 20), "{:?}", metadata.last_rotated);
    assert!(metadata.next_rotation.is_some());
    assert_eq!(metadata.kms_key_id.as_deref(), Some("alias/dbcreds-test"));
    assert_eq!(metadata.tags.get("team").map(String::as_str), Some("payments"));
    assert_eq!(metadata.tags.len(), 2, "{:?}", metadata.tags);

    // Every version the service lists, with its stages, exactly as DescribeSecret says.
    let raw = clients.secrets.describe_secret().secret_id(&arn).send().await.unwrap();
    let expected: BTreeMap<String, Vec<String>> = raw.version_ids_to_stages.unwrap().into_iter().collect();
    assert_eq!(metadata.versions, expected);
    assert!(has_stage(&metadata, &v2, AWSCURRENT), "{:?}", metadata.versions);
    assert!(has_stage(&metadata, &v1, AWSPREVIOUS), "{:?}", metadata.versions);
    assert_eq!(metadata.stages_of(&v3), Some(&stages(&[AWSPENDING])[..]));
    assert_eq!(metadata.version_with_stage(AWSPENDING), Some(v3.as_str()));
    assert_eq!(metadata.versions.values().filter(|s| s.iter().any(|s| s == AWSCURRENT)).count(), 1);
}

#[tokio::test]
async fn reads_by_stage_and_by_id_and_the_cache_spares_calls() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let name = unique("reads");
    let (arn, v1) = create_secret(&clients, &name, "one", &[]).await;
    let v2 = version_token("v2");
    clients.secrets.put_secret_value().secret_id(&arn).client_request_token(&v2).secret_string("two").version_stages(AWSPENDING).send().await.unwrap();

    let store = store(&clients);
    let start = store.calls();

    // By stage: one call, and the answer carries its VersionId.
    let current = store.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await.unwrap();
    assert_eq!((current.arn.as_str(), current.version_id.as_str(), current.value.expose()), (arn.as_str(), v1.as_str(), "one"));
    assert!(current.stages.iter().any(|s| s == AWSCURRENT));
    assert_eq!(store.calls().since(&start).get_secret_value, 1);

    // The same version by id: from the cache, no second call.
    let again = store.get_value(&arn, VersionSelector::Id(v1.clone())).await.unwrap();
    assert_eq!(again.value.expose(), "one");
    let used = store.calls().since(&start);
    assert_eq!((used.get_secret_value, used.cache_hits), (1, 1));

    // Id and stage without a describe: the stage cannot be vouched for, so the service is asked.
    let pending = store.get_value(&arn, VersionSelector::IdAndStage(v2.clone(), AWSPENDING.into())).await.unwrap();
    assert_eq!(pending.value.expose(), "two");
    assert_eq!(store.calls().since(&start).get_secret_value, 2);

    // After a describe, reads by stage resolve through it: a whole step's reads cost one call.
    store.describe(&arn).await.unwrap();
    let current = store.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await.unwrap();
    let pending = store.get_value(&arn, VersionSelector::stage(AWSPENDING)).await.unwrap();
    let both = store.get_value(&arn, VersionSelector::IdAndStage(v2.clone(), AWSPENDING.into())).await.unwrap();
    assert_eq!((current.version_id.as_str(), current.value.expose()), (v1.as_str(), "one"));
    assert_eq!((pending.version_id.as_str(), pending.value.expose()), (v2.as_str(), "two"));
    assert_eq!(both.stages, stages(&[AWSPENDING]));
    let used = store.calls().since(&start);
    assert_eq!((used.describe_secret, used.get_secret_value, used.cache_hits), (1, 2, 4), "{used:?}");

    // A new invocation's view shares the cache but not the describe: a read by id is free, a
    // read by stage asks again (the stage may have moved since).
    let view = store.with_deadline(Instant::now() + Duration::from_secs(60)).with_snapshot_max_age(Duration::from_secs(3600));
    assert_eq!(view.get_value(&arn, VersionSelector::Id(v2.clone())).await.unwrap().value.expose(), "two");
    assert_eq!(store.calls().since(&start).get_secret_value, 2);
    assert_eq!(view.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await.unwrap().version_id, v1);
    assert_eq!(store.calls().since(&start).get_secret_value, 3);

    // By name works too (a name is resolved by the service, never by the cache alone).
    let by_name = view.get_value(&name, VersionSelector::Id(v1.clone())).await.unwrap();
    assert_eq!((by_name.arn.as_str(), by_name.value.expose()), (arn.as_str(), "one"));
    assert_eq!(store.cached_versions(), 2);
}

#[tokio::test]
async fn our_own_stage_moves_are_never_answered_from_a_stale_describe() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let name = unique("stale");
    let (arn, v1) = create_secret(&clients, &name, "one", &[]).await;
    let store = store(&clients);
    let v2 = version_token("v2");
    store.put_value(&arn, &v2, &SecretString::from("two"), &[AWSPENDING], None).await.unwrap();
    store.describe(&arn).await.unwrap();
    assert_eq!(store.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await.unwrap().version_id, v1);

    store.update_stage(&arn, AWSCURRENT, Some(&v2), Some(&v1)).await.unwrap();
    let current = store.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await.unwrap();
    assert_eq!((current.version_id.as_str(), current.value.expose()), (v2.as_str(), "two"));
}

/// Records the non-secret fields of PutSecretValue requests as they go on the wire.
#[derive(Debug, Default, Clone)]
struct PutRecorder(Arc<Mutex<Vec<serde_json::Value>>>);

impl Intercept for PutRecorder {
    fn name(&self) -> &'static str {
        "PutRecorder"
    }

    fn read_before_transmit(&self, context: &BeforeTransmitInterceptorContextRef<'_>, _: &RuntimeComponents, _: &mut ConfigBag) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let request = context.request();
        let is_put = request.headers().get("x-amz-target").is_some_and(|t| t.ends_with("PutSecretValue"));
        if let (true, Some(body)) = (is_put, request.body().bytes()) {
            let mut json: serde_json::Value = serde_json::from_slice(body)?;
            json.as_object_mut().unwrap().remove("SecretString");
            self.0.lock().unwrap().push(json);
        }
        Ok(())
    }
}

#[tokio::test]
async fn put_value_writes_stages_and_sends_the_rotation_token() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let recorder = PutRecorder::default();
    let recorded = clients.secrets.config().to_builder().interceptor(recorder.clone()).build();
    let store = SecretsManagerStore::from_client(aws_sdk_secretsmanager::Client::from_conf(recorded), CallTimeouts::DEFAULT);

    let name = unique("put");
    let (arn, v1) = create_secret(&clients, &name, "one", &[]).await;
    let v2 = version_token("v2");
    let rotation_token = format!("{:0>40}", unique("rotation-token"));
    store.put_value(&arn, &v2, &SecretString::from(r#"{"password":"two"}"#), &[AWSPENDING], Some(&rotation_token)).await.unwrap();

    let sent = recorder.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["RotationToken"], rotation_token.as_str());
    assert_eq!(sent[0]["ClientRequestToken"], v2.as_str());
    assert_eq!(sent[0]["VersionStages"], serde_json::json!([AWSPENDING]));

    let metadata = store.describe(&arn).await.unwrap();
    assert!(metadata.has_stage(&v2, AWSPENDING) && !metadata.has_stage(&v2, AWSCURRENT), "{:?}", metadata.versions);
    assert!(metadata.has_stage(&v1, AWSCURRENT), "{:?}", metadata.versions);

    // The value reached Secrets Manager: a store with an empty cache reads it back.
    let fresh = SecretsManagerStore::new(&clients);
    let read = fresh.get_value(&arn, VersionSelector::IdAndStage(v2.clone(), AWSPENDING.into())).await.unwrap();
    assert_eq!(read.value.expose(), r#"{"password":"two"}"#);
    assert_eq!(fresh.calls().get_secret_value, 1);

    // Without a rotation token, none is sent.
    store.put_value(&arn, &version_token("v3"), &SecretString::from("three"), &[AWSPENDING], None).await.unwrap();
    let sent = recorder.0.lock().unwrap().clone();
    assert!(sent[1].get("RotationToken").is_none(), "{}", sent[1]);
    assert_eq!(store.calls().put_secret_value, 2);
}

#[tokio::test]
async fn moving_awscurrent_makes_awsprevious_follow() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let name = unique("stages");
    let (arn, v1) = create_secret(&clients, &name, "one", &[]).await;
    let store = SecretsManagerStore::new(&clients);
    let v2 = version_token("v2");
    store.put_value(&arn, &v2, &SecretString::from("two"), &[AWSPENDING], None).await.unwrap();

    store.update_stage(&arn, AWSCURRENT, Some(&v2), Some(&v1)).await.unwrap();
    let metadata = store.describe(&arn).await.unwrap();
    assert!(metadata.has_stage(&v2, AWSCURRENT), "{:?}", metadata.versions);
    assert!(metadata.has_stage(&v1, AWSPREVIOUS), "{:?}", metadata.versions);
    assert!(!metadata.has_stage(&v1, AWSCURRENT), "{:?}", metadata.versions);

    // finishSecret's last move: AWSPENDING removed, nothing moved to.
    store.update_stage(&arn, AWSPENDING, None, Some(&v2)).await.unwrap();
    let metadata = store.describe(&arn).await.unwrap();
    assert_eq!(metadata.stages_of(&v2), Some(&stages(&[AWSCURRENT])[..]));
    assert_eq!(metadata.version_with_stage(AWSPENDING), None);

    assert_eq!(store.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await.unwrap().value.expose(), "two");
    assert_eq!(store.get_value(&arn, VersionSelector::stage(AWSPREVIOUS)).await.unwrap().value.expose(), "one");
    assert_eq!(store.calls().update_secret_version_stage, 2);
}

#[tokio::test]
async fn not_found_is_input_for_a_secret_and_state_for_a_version() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let store = SecretsManagerStore::new(&clients);

    let missing = unique("missing");
    let err = store.describe(&missing).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Input, "{err}");
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.message.contains(&missing), "{err}");

    let (arn, _) = create_secret(&clients, &unique("nopending"), "one", &[]).await;
    let err = store.get_value(&arn, VersionSelector::stage(AWSPENDING)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::State, "{err}");
    assert!(err.is_not_found(), "{err:?}");
    assert!(!err.is_transient());

    let err = store.get_value(&arn, VersionSelector::Id(version_token("nope"))).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::State, "{err}");
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn access_denied_names_the_iam_action() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let name = unique("guarded");
    let (arn, _) = create_secret(&clients, &name, "s3cr3t-value", &[]).await;

    // A user allowed to describe the secret and nothing else.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}]}"#;
    let (_, as_user) = common::iam_user(&moto, policy).await;
    let store = SecretsManagerStore::new(&as_user);

    common::set_iam_enforcement(&moto, true).await;
    let described = store.describe(&arn).await;
    let read = store.get_value(&arn, VersionSelector::stage(AWSCURRENT)).await;
    common::set_iam_enforcement(&moto, false).await;

    assert_eq!(described.unwrap().name, name);
    let err = read.unwrap_err();
    assert_eq!(err.class, ErrorClass::Aws, "{err}");
    // AWS sends AccessDeniedException; moto's IAM refusal has an XML body the JSON protocol
    // cannot read, so the code comes from the HTTP 403 (error.rs). Either way it is named.
    assert!(err.is_access_denied(), "{err:?}");
    assert!(err.message.contains("access denied"), "{err}");
    assert!(err.message.contains("secretsmanager:GetSecretValue"), "{err}");
    assert!(!err.is_transient());
    assert!(!format!("{err} {err:?}").contains("s3cr3t-value"));
}
