//! The users the provisioner makes can be rotated by the `rotator` without manual steps: a
//! single-user and an alternating-users rotation through the real `rotator` binary right after
//! Create, on MariaDB and PostgreSQL; then an Update of the privileges reaches the clone the
//! rotator made (it is the current user now), and Delete drops the user and its clone.

mod provisioner_support;
mod rotator_support;

use provisioner_support::{Harness, Server, alternating_user, password_user, properties};
use serde_json::json;

#[tokio::test]
async fn provisioned_users_rotate_on_mariadb() {
    rotate_after_provisioning(Server::mariadb().await).await;
}

#[tokio::test]
async fn provisioned_users_rotate_on_postgres() {
    rotate_after_provisioning(Server::postgres().await).await;
}

async fn rotate_after_provisioning(server: Server) {
    let rotation = rotator_support::Harness::new(server.ca_pem(), &server.ca_pem_path()).await;
    let harness = Harness::sharing(&rotation.moto).await;
    let mut provisioner = harness.function(&server).await;
    let master_arn = harness.create_secret(&server.master_document()).await;
    let (a_arn, a_pw) = harness.user_secret("DBUserA").await;
    let (b_arn, b_pw) = harness.user_secret("DBUserB").await;
    let props = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readwrite")), alternating_user(&b_arn, json!("readonly"))]);
    let id = harness.send(&mut provisioner, "Create", &props, None, None).await.expect_success().physical_id();
    server.as_master("appdb", "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO items VALUES (1, 'one')").await;

    // Single user: the rotator changes DBUserA's password with the secret the provisioner completed.
    let mut single = rotation.function("single-user", &[]).await;
    rotator_support::rotate(&rotation, &mut single, &a_arn).await;
    let a_doc = harness.current(&a_arn).await;
    let a_new = a_doc["password"].as_str().expect("a password").to_owned();
    assert_ne!(a_new, a_pw, "rotated");
    assert_eq!(a_doc["dbname"], "appdb");
    server.allowed("DBUserA", &a_new, "appdb", "INSERT INTO items VALUES (2, 'two')").await;
    server.login_refused("DBUserA", &a_pw, "appdb").await;

    // Alternating users: the rotator logs in with the masterarn the provisioner wrote, creates
    // DBUserB_clone with DBUserB's privileges, and the secret now names the clone.
    let mut alternating = rotation.function("alternating-users", &[]).await;
    rotator_support::rotate(&rotation, &mut alternating, &b_arn).await;
    let b_doc = harness.current(&b_arn).await;
    assert_eq!(b_doc["username"], "DBUserB_clone");
    let clone_pw = b_doc["password"].as_str().expect("a password").to_owned();
    server.allowed("DBUserB_clone", &clone_pw, "appdb", "SELECT name FROM items").await;
    server.denied("DBUserB_clone", &clone_pw, "appdb", "INSERT INTO items VALUES (3, 'three')").await;
    server.allowed("DBUserB", &b_pw, "appdb", "SELECT name FROM items").await;

    // An Update while a rotation of one of the secrets is under way would break it: refused,
    // nothing changed; once the rotation has finished, the same Update goes through.
    let props2 = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readwrite")), alternating_user(&b_arn, json!(["SELECT", "INSERT"]))]);
    let token = rotator_support::new_token();
    rotation.start_rotation(&a_arn, &token).await;
    let refused = harness.send(&mut provisioner, "Update", &props2, Some(&props), Some(&id)).await;
    refused.expect_failed(&["Users[0].SecretArn", "rotation of this secret is in progress", "nothing was changed"]);
    assert_eq!(refused.physical_id(), id);
    server.denied("DBUserB_clone", &clone_pw, "appdb", "INSERT INTO items VALUES (3, 'three')").await;
    for step in rotator_support::STEPS {
        rotator_support::ok(&mut single, step, &a_arn, &token).await;
    }
    let a_new = harness.current(&a_arn).await["password"].as_str().expect("a password").to_owned();

    // An Update of B's privileges reaches both users of the pair; the attributes keep the base name.
    let updated = harness.send(&mut provisioner, "Update", &props2, Some(&props), Some(&id)).await;
    updated.expect_success();
    assert_eq!(updated.data("Username1"), "DBUserB");
    server.allowed("DBUserB_clone", &clone_pw, "appdb", "INSERT INTO items VALUES (3, 'three')").await;
    server.allowed("DBUserB", &b_pw, "appdb", "INSERT INTO items VALUES (4, 'four')").await;
    assert_eq!(harness.current(&a_arn).await["password"], a_new.as_str(), "the rotated password is kept");
    server.allowed("DBUserA", &a_new, "appdb", "SELECT name FROM items").await;

    // A second alternating rotation goes back to DBUserB, with the new privileges mirrored.
    rotator_support::rotate(&rotation, &mut alternating, &b_arn).await;
    let b_doc = harness.current(&b_arn).await;
    assert_eq!(b_doc["username"], "DBUserB");
    let b_new = b_doc["password"].as_str().expect("a password").to_owned();
    server.allowed("DBUserB", &b_new, "appdb", "INSERT INTO items VALUES (5, 'five')").await;

    // Delete drops the user, its clone, and the single user.
    harness.send(&mut provisioner, "Delete", &props2, None, Some(&id)).await.expect_success();
    for user in ["DBUserA", "DBUserB", "DBUserB_clone"] {
        assert!(!server.user_exists(user).await, "{user} is dropped");
    }
    assert!(server.database_exists("appdb").await);
}
