//! Every failure path through the real `provisioner` binary: each sends exactly one FAILED with a
//! Reason that says what to fix, and leaves nothing that a retry or CloudFormation's rollback
//! (a Delete after a failed Create, an Update back to the old properties after a failed Update)
//! cannot clean up. The rollbacks are run here and must succeed.

mod provisioner_support;

use dbcreds_testenv::rds_master::create_managed_instance;
use provisioner_support::*;
use serde_json::{Value, json};
use std::time::Duration;

/// A `Create` that must fail before changing anything, and its rollback `Delete`.
async fn fails_before_any_change(harness: &Harness, function: &mut dbcreds_testenv::LambdaFunction, server: &Server, props: &Value, words: &[&str]) -> String {
    let failed = harness.send(function, "Create", props, None, None).await;
    failed.expect_failed(words);
    assert!(failed.reason().contains("nothing was changed"), "{}", failed.reason());
    let id = failed.physical_id();
    assert!(id.contains("-not-created-"), "a Create that changed nothing answers a not-created id: {id}");
    assert!(!server.database_exists("appdb").await, "nothing was created");
    assert!(!server.user_exists("DBUserA").await);
    let rollback = harness.send(function, "Delete", props, None, Some(&id)).await;
    rollback.expect_success();
    failed.reason().to_owned()
}

#[tokio::test]
async fn bad_properties_fail_naming_the_property_and_change_nothing() {
    let server = Server::mariadb().await;
    let (harness, mut function, master_arn) = setup(&server).await;
    let (a_arn, _) = harness.user_secret("DBUserA").await;
    let good = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readwrite"))]);
    let versions = harness.version_count(&a_arn).await;

    let cases: Vec<(Value, &[&str])> = vec![
        (properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("admin"))]), &["Users[0].Privileges", "admin", "readonly, readwrite, owner"]),
        (properties(&master_arn, "appdb", vec![password_user(&a_arn, json!(["SELECT", "SUPER"]))]), &["Users[0].Privileges[1]", "SUPER"]),
        (with(good.clone(), &[("DatabseName", json!("typo"))]), &["DatabseName", "is not a property"]),
        (with(good.clone(), &[("Port", json!("33o6"))]), &["Port", "not a whole number"]),
        (with(good.clone(), &[("Engine", json!("oracle"))]), &["Engine", "unknown engine"]),
        (with(good.clone(), &[("Engine", json!("postgres"))]), &["Engine", "master secret says mariadb"]),
        (with(good.clone(), &[("DatabaseName", json!("app;db"))]), &["DatabaseName", "semicolon"]),
        (with(good.clone(), &[("Users", json!("DBUserA"))]), &["Users", "must be a list"]),
        (properties(&master_arn, "appdb", vec![json!({"SecretArn": a_arn, "Privileges": "readonly", "Authentication": "kerberos"})]), &["Users[0].Authentication"]),
        (properties(&master_arn, "appdb", vec![iam_user("app'iam", json!("readonly"))]), &["Users[0].Username", "single quote"]),
        (properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readonly")), password_user(&a_arn, json!("readwrite"))]), &["Users[1].SecretArn", "repeats Users[0]"]),
        (properties(&master_arn, "appdb", vec![iam_user(server.master_username(), json!("readonly"))]), &["Users[0].Username", "is the master user"]),
    ];
    for (props, words) in cases {
        fails_before_any_change(&harness, &mut function, &server, &props, words).await;
    }
    assert_eq!(harness.version_count(&a_arn).await, versions, "no secret was written");
}

#[tokio::test]
async fn unreadable_secrets_fail_naming_them_and_change_nothing() {
    let server = Server::mariadb().await;
    let (harness, mut function, master_arn) = setup(&server).await;
    let (a_arn, _) = harness.user_secret("DBUserA").await;

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:does-not-exist-AbCdEf";
    let props = properties(missing, "appdb", vec![password_user(&a_arn, json!("readwrite"))]);
    fails_before_any_change(&harness, &mut function, &server, &props, &["reading the master secret (MasterSecretArn)", "ResourceNotFoundException"]).await;

    let no_password = harness.create_secret(&json!({"engine": "mariadb", "host": server.host(), "port": server.port(), "username": "root"})).await;
    let props = properties(&no_password, "appdb", vec![password_user(&a_arn, json!("readwrite"))]);
    fails_before_any_change(&harness, &mut function, &server, &props, &["MasterSecretArn secret: password: is missing"]).await;

    let not_json = harness.create_secret(&json!("just text")).await;
    let props = properties(&master_arn, "appdb", vec![password_user(&not_json, json!("readwrite"))]);
    fails_before_any_change(&harness, &mut function, &server, &props, &["Users[0].SecretArn secret: secret: is a string, not a JSON object"]).await;

    let user_without_password = harness.create_secret(&json!({"username": "DBUserA"})).await;
    let props = properties(&master_arn, "appdb", vec![password_user(&user_without_password, json!("readwrite"))]);
    fails_before_any_change(&harness, &mut function, &server, &props, &["Users[0].SecretArn secret: password: is missing"]).await;

    let wrong_master_password = harness.create_secret(&with(server.master_document(), &[("password", json!("not-the-password"))])).await;
    let props = properties(&wrong_master_password, "appdb", vec![password_user(&a_arn, json!("readwrite"))]);
    fails_before_any_change(&harness, &mut function, &server, &props, &["connecting to mysql database appdb", "as the master user", "authentication"]).await;
}

#[tokio::test]
async fn a_database_that_is_down_fails_create_and_delete_and_a_retry_recovers() {
    let mut server = Server::postgres().await;
    let (harness, mut function, master_arn) = setup(&server).await;
    let (a_arn, a_pw) = harness.user_secret("DBUserA").await;
    let props = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readwrite"))]);
    // A shorter function timeout than the template's keeps the connection retries short.
    let timeout = Duration::from_secs(20);

    server.stop().await;
    let (event, url) = harness.event("Create", &props, None, None);
    let failed = harness.deliver(&mut function, event, &url, timeout).await;
    failed.expect_failed(&["connecting to postgres database appdb", "nothing listens there", "nothing was changed"]);
    let id = failed.physical_id();
    assert!(id.contains("-not-created-"), "{id}");
    // The rollback Delete needs no database: nothing was created.
    harness.send(&mut function, "Delete", &props, None, Some(&id)).await.expect_success();
    server.restart().await;
    assert!(!server.database_exists("appdb").await && !server.user_exists("DBUserA").await);

    // A created resource whose database is down cannot be deleted: FAILED says so, and the
    // retry once it is back drops the user.
    let created = harness.send(&mut function, "Create", &props, None, None).await;
    created.expect_success();
    let id = created.physical_id();
    server.stop().await;
    let (event, url) = harness.event("Delete", &props, None, Some(&id));
    harness.deliver(&mut function, event, &url, timeout).await.expect_failed(&["dropping the users", "nothing listens there"]);
    server.restart().await;
    assert!(server.user_exists("DBUserA").await, "a failed Delete changed nothing");
    server.allowed("DBUserA", &a_pw, "appdb", "SELECT 1").await;
    harness.send(&mut function, "Delete", &props, None, Some(&id)).await.expect_success();
    assert!(!server.user_exists("DBUserA").await);
}

#[tokio::test]
async fn a_create_that_fails_half_way_is_cleaned_up_by_the_rollback_delete() {
    let server = Server::mariadb().await;
    let (harness, mut function, master_arn) = setup(&server).await;
    let (a_arn, a_pw) = harness.user_secret("DBUserA").await;
    // DBUserA is created first; the IAM user then fails: MariaDB has no AWSAuthenticationPlugin.
    let props = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readwrite")), iam_user("app_iam", json!("readonly"))]);

    let failed = harness.send(&mut function, "Create", &props, None, None).await;
    failed.expect_failed(&["Users[1]: creating user", "\"app_iam\"", "AWSAuthenticationPlugin", "removed by the rollback"]);
    let id = failed.physical_id();
    assert!(id.ends_with(";incomplete"), "a Create that changed things answers an incomplete id: {id}");
    assert!(server.user_exists("DBUserA").await, "the first user was created before the failure");

    let rollback = harness.send(&mut function, "Delete", &props, None, Some(&id)).await;
    rollback.expect_success();
    assert!(!server.user_exists("DBUserA").await, "the rollback Delete drops what the failed Create created");
    server.login_refused("DBUserA", &a_pw, "appdb").await;
    assert!(server.database_exists("appdb").await, "the database is never dropped");
    // CloudFormation may deliver the rollback twice.
    harness.send(&mut function, "Delete", &props, None, Some(&id)).await.expect_success();
}

#[tokio::test]
async fn failed_updates_keep_the_id_and_their_rollback_restores_the_resource() {
    let server = Server::mariadb().await;
    let (harness, mut function, master_arn) = setup(&server).await;
    let (a_arn, a_pw) = harness.user_secret("DBUserA").await;
    let props = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readwrite"))]);
    let id = harness.send(&mut function, "Create", &props, None, None).await.expect_success().physical_id();
    server.as_master("appdb", "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO items VALUES (1, 'one')").await;

    // A bad property: FAILED, the same id, nothing changed.
    let bad = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("superuser"))]);
    let failed = harness.send(&mut function, "Update", &bad, Some(&props), Some(&id)).await;
    failed.expect_failed(&["Users[0].Privileges", "nothing was changed"]);
    assert_eq!(failed.physical_id(), id, "a failed Update keeps the id, or CloudFormation would take it as a replacement");
    harness.send(&mut function, "Update", &props, Some(&bad), Some(&id)).await.expect_success();
    server.allowed("DBUserA", &a_pw, "appdb", "INSERT INTO items VALUES (2, 'two')").await;

    // Half-way in place: A is made read-only, then the new IAM user fails.
    let half = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readonly")), iam_user("app_iam", json!("readonly"))]);
    let failed = harness.send(&mut function, "Update", &half, Some(&props), Some(&id)).await;
    failed.expect_failed(&["AWSAuthenticationPlugin"]);
    assert_eq!(failed.physical_id(), id);
    server.denied("DBUserA", &a_pw, "appdb", "INSERT INTO items VALUES (3, 'three')").await;
    let rollback = harness.send(&mut function, "Update", &props, Some(&half), Some(&id)).await;
    rollback.expect_success();
    assert_eq!(rollback.physical_id(), id);
    server.allowed("DBUserA", &a_pw, "appdb", "INSERT INTO items VALUES (3, 'three')").await;

    // Half-way through a replacement: A gets privileges on appdb2, then the IAM user fails. The
    // rollback Update (back to appdb, with the failed properties as the old ones) takes A off
    // appdb2 again.
    let moved = properties(&master_arn, "appdb2", vec![password_user(&a_arn, json!("readwrite")), iam_user("app_iam", json!("readonly"))]);
    let failed = harness.send(&mut function, "Update", &moved, Some(&props), Some(&id)).await;
    failed.expect_failed(&["AWSAuthenticationPlugin"]);
    assert_eq!(failed.physical_id(), id, "a failed replacement answers the old id");
    server.as_master("appdb2", "CREATE TABLE t2 (id INT)").await;
    server.allowed("DBUserA", &a_pw, "appdb2", "INSERT INTO t2 VALUES (1)").await;
    let rollback = harness.send(&mut function, "Update", &props, Some(&moved), Some(&id)).await;
    rollback.expect_success();
    assert_eq!(rollback.physical_id(), id);
    server.denied("DBUserA", &a_pw, "appdb2", "SELECT * FROM t2").await;
    server.allowed("DBUserA", &a_pw, "appdb", "INSERT INTO items VALUES (4, 'four')").await;
    assert_eq!(harness.current(&a_arn).await["dbname"], "appdb", "the secret points at the database it is for again");
}

#[tokio::test]
async fn a_stuck_database_is_answered_failed_before_lambda_stops_the_function() {
    let server = Server::mariadb().await;
    let harness = Harness::new().await;
    let mut function = harness.function(&server).await;
    // Accepts TCP connections (the kernel completes the handshake) and never says a word.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    let master_arn = harness.create_secret(&with(server.master_document(), &[("host", json!("127.0.0.1")), ("port", json!(port))])).await;
    let (a_arn, _) = harness.user_secret("DBUserA").await;
    let props = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readwrite"))]);

    // 9 s of function time, 6 of them kept to answer: the work stops after about 3.
    let (event, url) = harness.event("Create", &props, None, None);
    let answer = harness.deliver(&mut function, event, &url, Duration::from_secs(9)).await;
    assert!(matches!(answer.invocation.outcome, dbcreds_testenv::Outcome::Ok(_)), "answered before the timeout: {:?}", answer.invocation.outcome);
    // The connection gives up at the work deadline and says so; the responder's own timer (for a
    // handler that ignores its deadline) is tested in the custom-resource crate.
    answer.expect_failed(&["connecting to mysql database appdb", "as the master user", "did not finish before the deadline", "nothing was changed"]);
    assert!(answer.physical_id().contains("-not-created-"));
    drop(black_hole);
}

#[tokio::test]
async fn malformed_requests_and_unparseable_deletes_are_still_answered() {
    let server = Server::mariadb().await;
    let harness = Harness::new().await;
    let mut function = harness.function(&server).await;

    // A Delete without its PhysicalResourceId: FAILED naming it.
    let (mut event, url) = harness.event("Delete", &json!({}), None, None);
    event.as_object_mut().unwrap().remove("PhysicalResourceId");
    let answer = harness.deliver(&mut function, event, &url, TIMEOUT).await;
    answer.expect_failed(&["PhysicalResourceId: is missing"]);

    // A Delete whose properties do not parse: nothing can have been created with them.
    let id = format!("dbcreds:mysql://localhost:{}/appdb#00000000", server.port());
    let answer = harness.send(&mut function, "Delete", &json!({"DatabaseName": 5, "Surprise": true}), None, Some(&id)).await;
    answer.expect_success();
    assert!(answer.invocation.logs.contains("the properties do not parse"), "{}", answer.invocation.logs);

    // A request type CloudFormation never sends.
    let (mut event, url) = harness.event("Create", &json!({}), None, None);
    event["RequestType"] = json!("Upsert");
    harness.deliver(&mut function, event, &url, TIMEOUT).await.expect_failed(&["RequestType", "Upsert"]);
}

#[tokio::test]
async fn an_rds_managed_master_secret_is_completed_from_its_rds_tag() {
    let server = Server::postgres().await;
    let harness = Harness::new().await;
    let mut function = harness.function(&server).await;
    let clients = dbcreds_aws::AwsClients::from_sdk_config(harness.sdk_config.clone(), None).expect("clients for moto");

    // RDS makes the master secret ({username, password} and the owner tag) with the instance.
    let instance = create_managed_instance(&clients.rds, &unique("pg"), "postgres", server.master_username(), Some(server.port())).await;
    let master_arn = instance.secret_arn;
    // RDS would have set this password on the database; here the database already has one.
    harness.hide(server.master_password());
    harness.sm.put_secret_value().secret_id(&master_arn).secret_string(server.managed_master_document().to_string()).send().await.expect("PutSecretValue");
    let (a_arn, a_pw) = harness.user_secret("DBUserA").await;

    // Engine and port come from RDS through the tag. The endpoint RDS reports is moto's made-up
    // name, so Host is given, as the template does with !GetAtt Database.Endpoint.Address.
    let props = json!({"MasterSecretArn": master_arn, "Host": server.host(), "DatabaseName": "appdb", "Users": [password_user(&a_arn, json!("readwrite"))]});
    let created = harness.send(&mut function, "Create", &props, None, None).await;
    created.expect_success();
    assert_eq!(created.data("Engine"), "postgres");
    assert_eq!(created.data("Port"), server.port().to_string());
    let doc = harness.current(&a_arn).await;
    assert_eq!((doc["engine"].as_str(), doc["port"].as_u64()), (Some("postgres"), Some(u64::from(server.port()))));
    server.allowed("DBUserA", &a_pw, "appdb", "CREATE TEMPORARY TABLE scratch (id INT)").await;

    // Without Host, the host is RDS's endpoint, which here does not resolve: the reason names it.
    let endpoint = instance.host;
    let props = json!({"MasterSecretArn": master_arn, "DatabaseName": "appdb", "Users": [password_user(&a_arn, json!("readwrite"))]});
    let failed = harness.send(&mut function, "Create", &props, None, None).await;
    failed.expect_failed(&[endpoint.as_str()]);

    harness.send(&mut function, "Delete", &with(props, &[("Host", json!(server.host()))]), None, Some(&created.physical_id())).await.expect_success();
    assert!(!server.user_exists("DBUserA").await);
}
