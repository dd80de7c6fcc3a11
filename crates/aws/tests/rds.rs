//! Finding the database of an RDS-managed master secret, against moto's RDS: moto creates the
//! master secret with its owner tag when a database is created with ManageMasterUserPassword,
//! as RDS does.

mod common;

use common::{clients, create_secret, moto, unique};
use dbcreds_aws::{RdsEndpoints, RdsOwner, SecretStore, SecretsManagerStore};
use dbcreds_core::{Engine, ErrorClass};
use dbcreds_testenv::rds_master::create_managed_instance;

#[tokio::test]
async fn an_instance_secret_leads_to_the_instance_endpoint() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let id = unique("pg");
    let created = create_managed_instance(&clients.rds, &id, "postgres", "postgres", None).await;
    let (secret_arn, instance_arn) = (created.secret_arn, created.instance_arn);

    let metadata = SecretsManagerStore::new(&clients).describe(&secret_arn).await.unwrap();
    assert_eq!(RdsOwner::from_tags(&metadata), Some(RdsOwner::Instance(instance_arn.clone())));

    let rds = RdsEndpoints::new(&clients);
    let endpoint = rds.endpoint_for_secret(&metadata).await.unwrap();
    let described = clients.rds.describe_db_instances().db_instance_identifier(&id).send().await.unwrap();
    let expected = described.db_instances.unwrap().remove(0).endpoint.unwrap();
    assert_eq!(endpoint.host, expected.address.unwrap());
    assert_eq!(i32::from(endpoint.port), expected.port.unwrap());
    assert_eq!(endpoint.port, 5432);
    assert_eq!(endpoint.engine, Some(Engine::Postgres));
    assert_eq!(endpoint.engine_name, "postgres");
    assert_eq!(endpoint.resource_arn, instance_arn);
    assert_eq!(rds.calls(), 1);
}

#[tokio::test]
async fn a_cluster_secret_leads_to_the_writer_endpoint() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let id = unique("aurora");
    let created = clients
        .rds
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-mysql")
        .master_username("admin")
        .manage_master_user_password(true)
        .send()
        .await
        .unwrap()
        .db_cluster
        .unwrap();
    let secret_arn = created.master_user_secret.and_then(|s| s.secret_arn).expect("moto creates the master secret");
    let cluster_arn = created.db_cluster_arn.unwrap();

    let metadata = SecretsManagerStore::new(&clients).describe(&secret_arn).await.unwrap();
    assert_eq!(RdsOwner::from_tags(&metadata), Some(RdsOwner::Cluster(cluster_arn.clone())));

    let endpoint = RdsEndpoints::new(&clients).endpoint_for_secret(&metadata).await.unwrap();
    let described = clients.rds.describe_db_clusters().db_cluster_identifier(&id).send().await.unwrap().db_clusters.unwrap().remove(0);
    assert_eq!(Some(endpoint.host.clone()), described.endpoint);
    assert_ne!(Some(endpoint.host.clone()), described.reader_endpoint, "the writer, not the reader");
    assert_eq!(endpoint.port, 3306);
    assert_eq!(endpoint.engine, Some(Engine::AuroraMySql));
    assert_eq!(endpoint.resource_arn, cluster_arn);
}

#[tokio::test]
async fn secrets_without_a_live_owner_are_input_errors() {
    let moto = moto().await;
    let clients = clients(&moto).await;
    let store = SecretsManagerStore::new(&clients);
    let rds = RdsEndpoints::new(&clients);

    let (plain, _) = create_secret(&clients, &unique("plain"), r#"{"username":"u","password":"p"}"#, &[("team", "x")]).await;
    let err = rds.endpoint_for_secret(&store.describe(&plain).await.unwrap()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Input, "{err}");
    assert!(err.message.contains("aws:rds:primarydbinstancearn") && err.message.contains("aws:rds:primarydbclusterarn"), "{err}");
    assert_eq!(rds.calls(), 0);

    let gone = format!("arn:aws:rds:us-east-1:123456789012:db:{}", unique("gone"));
    let (orphan, _) = create_secret(&clients, &unique("orphan"), r#"{"username":"u","password":"p"}"#, &[("aws:rds:primarydbinstancearn", &gone)]).await;
    let err = rds.endpoint_for_secret(&store.describe(&orphan).await.unwrap()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Input, "{err}");
    assert!(err.code.as_deref().is_some_and(|c| c.starts_with("DBInstanceNotFound")), "{err:?}");
    assert!(err.message.contains("DescribeDBInstances") && err.message.contains(&gone), "{err}");
}
