//! CloudFormation's whole lifecycle of a `Custom::DatabaseUsers` resource through the real
//! `provisioner` binary, against real MariaDB and PostgreSQL with verified TLS and moto:
//! Create (and its duplicate delivery), Update in place (privileges changed both ways, a user
//! added, a user removed), Update with replacement (a new database: new physical id, shared users
//! moved), the Delete of the old id after the replacement, and the final Delete (twice).
//!
//! After each step, what each user may do is checked with real statements, allowed and refused.

mod provisioner_support;

use provisioner_support::*;
use serde_json::json;

/// The application's schema, created by the master as the application's migrations would.
const SCHEMA: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO items VALUES (1, 'one')";

#[tokio::test]
async fn the_whole_lifecycle_on_mariadb() {
    lifecycle(Server::mariadb().await).await;
}

#[tokio::test]
async fn the_whole_lifecycle_on_postgres() {
    lifecycle(Server::postgres().await).await;
}

fn admin_database(server: &Server) -> &'static str {
    match server {
        Server::MariaDb(_) => "mysql",
        Server::Postgres { .. } => "postgres",
    }
}

async fn lifecycle(server: Server) {
    let harness = Harness::new().await;
    let mut function = harness.function(&server).await;
    let pg = matches!(server, Server::Postgres { .. });
    let family = if pg { "postgres" } else { "mysql" };

    // A database nobody gave the users anything on: they must never reach it.
    server.as_master(admin_database(&server), "CREATE DATABASE otherdb").await;
    server.as_master("otherdb", "CREATE TABLE private (id INT); INSERT INTO private VALUES (7)").await;

    let master_arn = harness.create_secret(&server.master_document()).await;
    let (a_arn, a_pw) = harness.user_secret("DBUserA").await;
    let (b_arn, b_pw) = harness.user_secret("DBUserB").await;
    let mut users = vec![password_user(&a_arn, json!("readwrite")), alternating_user(&b_arn, json!("readonly"))];
    if pg {
        // MariaDB has no AWSAuthenticationPlugin; IAM users on MySQL are covered by the failure tests.
        users.push(iam_user("app_iam", json!("readonly")));
    }
    let props = properties(&master_arn, "appdb", users);

    // ---- Create ------------------------------------------------------------------------------
    assert!(!server.database_exists("appdb").await);
    let (create_event, create_url) = harness.event("Create", &props, None, None);
    let created = harness.deliver(&mut function, create_event.clone(), &create_url, TIMEOUT).await;
    created.expect_success();
    let id = created.physical_id();
    assert!(id.starts_with(&format!("dbcreds:{family}://localhost:{}/appdb#", server.port())), "{id}");
    assert_eq!(created.data("DatabaseName"), "appdb");
    assert_eq!(created.data("Username0"), "DBUserA");
    assert_eq!(created.data("Username1"), "DBUserB");
    assert_eq!(created.data("Port"), server.port().to_string());
    assert!(created.data("Usernames").starts_with("DBUserA,DBUserB"));
    assert!(server.database_exists("appdb").await);

    let a_doc = harness.current(&a_arn).await;
    assert_eq!(a_doc["engine"], server.engine());
    assert_eq!(a_doc["host"], "localhost");
    assert_eq!(a_doc["port"], server.port());
    assert_eq!(a_doc["dbname"], "appdb");
    assert_eq!(a_doc["username"], "DBUserA");
    assert_eq!(a_doc["password"], a_pw.as_str(), "the password already in the secret is kept");
    assert!(a_doc.get("masterarn").is_none(), "single-user secrets get no masterarn");
    let b_doc = harness.current(&b_arn).await;
    assert_eq!(b_doc["masterarn"], master_arn.as_str(), "alternating users need the master secret");
    assert_eq!(b_doc["password"], b_pw.as_str());

    server.as_master("appdb", SCHEMA).await;
    check_readwrite(&server, "DBUserA", &a_pw, "appdb", 10).await;
    check_readonly(&server, "DBUserB", &b_pw, "appdb").await;
    for (user, pw) in [("DBUserA", &a_pw), ("DBUserB", &b_pw)] {
        server.denied(user, pw, "otherdb", "SELECT * FROM private").await;
    }
    if pg {
        let member = server.admin_rows("SELECT COUNT(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = 'app_iam' AND g.rolname = 'rds_iam'").await;
        assert_eq!(member[0][0].as_deref(), Some("1"), "the IAM user is a member of rds_iam");
        let rights = server.admin_rows_in("appdb", "SELECT has_table_privilege('app_iam', 'public.items', 'SELECT')::text, has_table_privilege('app_iam', 'public.items', 'INSERT')::text").await;
        assert_eq!(rights[0], [Some("true".to_string()), Some("false".to_string())], "the IAM user reads and does not write");
    }

    // ---- The same Create delivered again: harmless, same answer, nothing rewritten -----------
    let versions = harness.version_count(&a_arn).await;
    let again = harness.deliver(&mut function, create_event, &create_url, TIMEOUT).await;
    again.expect_success();
    assert_eq!(again.physical_id(), id);
    assert_eq!(harness.version_count(&a_arn).await, versions, "a complete secret is left as is");
    check_readwrite(&server, "DBUserA", &a_pw, "appdb", 20).await;

    // ---- Update in place: revoke (A), grant (B), add C ---------------------------------------
    let (c_arn, c_pw) = harness.user_secret("DBUserC").await;
    let mut users2 = vec![password_user(&a_arn, json!("readonly")), alternating_user(&b_arn, json!(["SELECT", "INSERT"])), password_user(&c_arn, json!("readwrite"))];
    if pg {
        users2.push(iam_user("app_iam", json!("readonly")));
    }
    let props2 = properties(&master_arn, "appdb", users2);
    let updated = harness.send(&mut function, "Update", &props2, Some(&props), Some(&id)).await;
    updated.expect_success();
    assert_eq!(updated.physical_id(), id, "an in-place update keeps the physical id");
    assert_eq!(updated.data("Username2"), "DBUserC");
    check_readonly(&server, "DBUserA", &a_pw, "appdb").await;
    server.allowed("DBUserB", &b_pw, "appdb", "INSERT INTO items VALUES (30, 'b')").await;
    server.denied("DBUserB", &b_pw, "appdb", "UPDATE items SET name = 'x' WHERE id = 30").await;
    server.denied("DBUserB", &b_pw, "appdb", "DELETE FROM items WHERE id = 30").await;
    check_readwrite(&server, "DBUserC", &c_pw, "appdb", 40).await;
    assert_eq!(harness.current(&c_arn).await["dbname"], "appdb");

    // ---- Update in place: remove C -----------------------------------------------------------
    let mut users3 = vec![password_user(&a_arn, json!("readonly")), alternating_user(&b_arn, json!(["SELECT", "INSERT"]))];
    if pg {
        users3.push(iam_user("app_iam", json!("readonly")));
    }
    let props3 = properties(&master_arn, "appdb", users3);
    let removed = harness.send(&mut function, "Update", &props3, Some(&props2), Some(&id)).await;
    removed.expect_success();
    assert_eq!(removed.physical_id(), id);
    assert!(!server.user_exists("DBUserC").await, "a user removed from the list is dropped");
    server.login_refused("DBUserC", &c_pw, "appdb").await;
    assert!(server.user_exists("DBUserA").await && server.user_exists("DBUserB").await);

    // ---- An Update where only CloudFormation's keys changed: nothing to do, same answer -------
    let mut same = props3.clone();
    same["ServiceTimeout"] = json!("900");
    let noop = harness.send(&mut function, "Update", &same, Some(&props3), Some(&id)).await;
    noop.expect_success();
    assert_eq!(noop.physical_id(), id);
    assert_eq!(noop.data("Username0"), "DBUserA", "the attributes are answered again");
    assert!(noop.invocation.logs.contains("no property changed") && !noop.invocation.logs.contains("connected as the master user"), "{}", noop.invocation.logs);

    // ---- Update with replacement: another database --------------------------------------------
    let props4 = with(props3.clone(), &[("DatabaseName", json!("appdb2"))]);
    let replaced = harness.send(&mut function, "Update", &props4, Some(&props3), Some(&id)).await;
    replaced.expect_success();
    let id2 = replaced.physical_id();
    assert_ne!(id2, id, "a new database is a replacement: a new physical id");
    assert!(id2.contains("/appdb2#"), "{id2}");
    assert_eq!(replaced.data("DatabaseName"), "appdb2");
    assert_eq!(harness.current(&a_arn).await["dbname"], "appdb2");
    assert_eq!(harness.current(&a_arn).await["password"], a_pw.as_str());
    server.as_master("appdb2", "CREATE TABLE items2 (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO items2 VALUES (1, 'one')").await;
    server.allowed("DBUserA", &a_pw, "appdb2", "SELECT name FROM items2").await;
    server.denied("DBUserA", &a_pw, "appdb2", "INSERT INTO items2 VALUES (2, 'two')").await;
    server.allowed("DBUserB", &b_pw, "appdb2", "INSERT INTO items2 VALUES (3, 'three')").await;
    // The shared users were moved: nothing left on the old database.
    server.denied("DBUserA", &a_pw, "appdb", "SELECT name FROM items").await;
    server.denied("DBUserB", &b_pw, "appdb", "SELECT name FROM items").await;

    // ---- CloudFormation deletes the old id: the moved users stay ------------------------------
    let old_deleted = harness.send(&mut function, "Delete", &props3, None, Some(&id)).await;
    old_deleted.expect_success();
    assert!(server.user_exists("DBUserA").await && server.user_exists("DBUserB").await, "users moved to the new database survive the old one's Delete");
    server.allowed("DBUserA", &a_pw, "appdb2", "SELECT name FROM items2").await;
    assert!(server.database_exists("appdb").await, "the database is never dropped");
    let kept = server_rows_as_master(&server, "appdb", "SELECT COUNT(*) FROM items").await;
    assert_ne!(kept, "0", "nor its data");
    if pg {
        assert!(server.user_exists("app_iam").await);
    }

    // ---- The stack is deleted ----------------------------------------------------------------
    let deleted = harness.send(&mut function, "Delete", &props4, None, Some(&id2)).await;
    deleted.expect_success();
    for user in ["DBUserA", "DBUserB", "app_iam"] {
        assert!(!server.user_exists(user).await, "{user} is dropped");
    }
    server.login_refused("DBUserA", &a_pw, "appdb2").await;
    assert!(server.database_exists("appdb2").await, "the database is never dropped");
    assert_eq!(server_rows_as_master(&server, "appdb2", "SELECT COUNT(*) FROM items2").await, "2", "nor its data");

    // ---- A duplicate Delete, for users already gone ------------------------------------------
    harness.send(&mut function, "Delete", &props4, None, Some(&id2)).await.expect_success();
}

#[tokio::test]
async fn an_existing_user_is_adopted_with_its_secrets_password() {
    let server = Server::mariadb().await;
    let harness = Harness::new().await;
    let mut function = harness.function(&server).await;
    server.admin_rows("CREATE USER 'DBUserA'@'%' IDENTIFIED BY 'an-old-password'").await;
    let master_arn = harness.create_secret(&server.master_document()).await;
    let (a_arn, a_pw) = harness.user_secret("DBUserA").await;
    let props = properties(&master_arn, "appdb", vec![password_user(&a_arn, json!("readonly"))]);

    let created = harness.send(&mut function, "Create", &props, None, None).await;
    created.expect_success();
    assert!(created.invocation.logs.contains("setting it to the secret's"), "{}", created.invocation.logs);
    server.as_master("appdb", SCHEMA).await;
    check_readonly(&server, "DBUserA", &a_pw, "appdb").await;
    server.login_refused("DBUserA", "an-old-password", "appdb").await;
    // Listing a user makes it the resource's: Delete drops it.
    harness.send(&mut function, "Delete", &props, None, Some(&created.physical_id())).await.expect_success();
    assert!(!server.user_exists("DBUserA").await);
}

/// SELECT, INSERT, UPDATE and DELETE work; DDL and other databases are refused.
async fn check_readwrite(server: &Server, user: &str, password: &str, database: &str, id: u32) {
    server.allowed(user, password, database, "SELECT name FROM items").await;
    server.allowed(user, password, database, &format!("INSERT INTO items VALUES ({id}, 'w')")).await;
    server.allowed(user, password, database, &format!("UPDATE items SET name = 'u' WHERE id = {id}")).await;
    server.allowed(user, password, database, &format!("DELETE FROM items WHERE id = {id}")).await;
    server.denied(user, password, database, "CREATE TABLE rogue (id INT)").await;
    server.denied(user, password, database, "DROP TABLE items").await;
}

/// SELECT works; writes and DDL are refused.
async fn check_readonly(server: &Server, user: &str, password: &str, database: &str) {
    server.allowed(user, password, database, "SELECT name FROM items").await;
    server.denied(user, password, database, "INSERT INTO items VALUES (99, 'no')").await;
    server.denied(user, password, database, "UPDATE items SET name = 'no'").await;
    server.denied(user, password, database, "DELETE FROM items").await;
    server.denied(user, password, database, "CREATE TABLE rogue (id INT)").await;
}

async fn server_rows_as_master(server: &Server, database: &str, sql: &str) -> String {
    let rows = server.run_as(server.master_username(), server.master_password(), database, sql).await.expect("the master reads its data");
    rows.first().and_then(|row| row.first().cloned().flatten()).unwrap_or_default()
}
