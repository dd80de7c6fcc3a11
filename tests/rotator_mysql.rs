//! The `rotator` binary against a real MariaDB server with verified TLS and moto, for the
//! engine names `mysql`, `mariadb` and `aurora-mysql` (one wire protocol, one adapter), single
//! user and alternating users, driven step by step as Secrets Manager drives them.
//!
//! One server set (MariaDB + moto + functions) per test; each test covers several secrets.

mod rotator_support;

use dbcreds_testenv::{MariaDb, ServerOptions};
use rotator_support::*;
use serde_json::{Value, json};

const ENGINES: [&str; 3] = ["mysql", "mariadb", "aurora-mysql"];

async fn server() -> (MariaDb, Harness) {
    let db = MariaDb::start(ServerOptions::new()).await;
    db.admin_exec("CREATE DATABASE appdb").await;
    let harness = Harness::new(db.ca_pem(), db.ca_pem_path()).await;
    (db, harness)
}

fn document(db: &MariaDb, engine: &str, user: &str, password: &str) -> Value {
    json!({"engine": engine, "host": db.host(), "port": db.port(), "username": user, "password": password, "dbname": "appdb", "team": {"owner": "payments"}})
}

async fn create_user(db: &MariaDb, user: &str, password: &str) {
    db.admin_exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}' REQUIRE SSL")).await;
    db.admin_exec(&format!("GRANT SELECT, INSERT, UPDATE ON appdb.* TO '{user}'@'%'")).await;
}

/// Every account and its password hash: what must not change when a step refuses.
async fn accounts(db: &MariaDb) -> Vec<Vec<Option<String>>> {
    db.admin_query_strings("SELECT User, Host, authentication_string FROM mysql.user ORDER BY User, Host").await
}

/// `SHOW GRANTS` of `user`@`%`, with the user renamed to `as_user` and the password hash cut
/// out, so two users' grants can be compared.
async fn grants(db: &MariaDb, user: &str, as_user: &str) -> Vec<String> {
    let rows = db.admin_query_strings(&format!("SHOW GRANTS FOR '{user}'@'%'")).await;
    let mut lines: Vec<String> = rows
        .into_iter()
        .map(|row| {
            let mut line = row[0].clone().unwrap_or_default().replace(&format!("`{user}`@"), &format!("`{as_user}`@"));
            if let Some(start) = line.find(" IDENTIFIED BY PASSWORD '") {
                let rest = &line[start + " IDENTIFIED BY PASSWORD '".len()..];
                let end = rest.find('\'').expect("a closing quote");
                line = format!("{}{}", &line[..start], &rest[end + 1..]);
            }
            line
        })
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn single_user_rotations_for_every_mysql_engine_name() {
    let (db, harness) = server().await;
    let mut function = harness.function("single-user", &[]).await;
    for (i, engine) in ENGINES.iter().enumerate() {
        let user = format!("single{i}");
        create_user(&db, &user, "Initial-pw-1").await;
        let arn = harness.create_secret(&format!("app/{engine}/single"), &document(&db, engine, &user, "Initial-pw-1")).await;
        let mut old = harness.current(&arn).await;
        for n in 0..3 {
            let what = format!("{engine} rotation {n}");
            let (token, current) = checked_single_user_rotation(&harness, &mut function, &arn, &old, i == 0 && n == 0, single_user_budget(n == 0), &what).await;
            assert_eq!(current["port"], json!(db.port()), "{what}: the port keeps its JSON type");
            assert!(!current["password"].as_str().unwrap().contains(['/', '@', '"', '\'', '\\']), "{what}: AWS's MySQL exclusions");
            old = (token, current);
        }
    }
}

#[tokio::test]
async fn alternating_rotations_for_every_mysql_engine_name() {
    let (db, harness) = server().await;
    let master = json!({"engine": "mariadb", "host": db.host(), "port": db.port(), "username": db.admin_user(), "password": db.admin_password()});
    let master_arn = harness.create_secret("rds/master", &master).await;
    let mut function = harness.function("alternating-users", &[]).await;
    db.admin_exec("CREATE TABLE appdb.orders (id INT PRIMARY KEY)").await;
    for (i, engine) in ENGINES.iter().enumerate() {
        let base = format!("alt{i}");
        create_user(&db, &base, "Initial-pw-1").await;
        // A grant the reference drops (WITH GRANT OPTION) and a table-level one.
        db.admin_exec(&format!("GRANT SELECT ON appdb.orders TO '{base}'@'%' WITH GRANT OPTION")).await;
        let mut doc = document(&db, engine, &base, "Initial-pw-1");
        doc["masterarn"] = json!(master_arn);
        let arn = harness.create_secret(&format!("app/{engine}/alternating"), &doc).await;
        let rotations = if i == 0 { 4 } else { 2 };
        let (mut old_version, mut old) = harness.current(&arn).await;
        for n in 0..rotations {
            let what = format!("{engine} rotation {n}");
            if i == 0 && n == 2 {
                // Revoked from the user the application uses now: the next pending user loses it too.
                db.admin_exec(&format!("REVOKE UPDATE ON appdb.* FROM '{}'@'%'", old["username"].as_str().unwrap())).await;
            }
            let (token, calls) = rotate(&harness, &mut function, &arn).await;
            // One more read than single user: the master secret.
            assert!(n == 0 || calls <= 9, "{what}: {calls} Secrets Manager calls");
            assert_finished(&harness, &arn, &token, &old_version).await;
            let (_, current) = harness.current(&arn).await;
            let expected_user = if n % 2 == 0 { format!("{base}_clone") } else { base.clone() };
            assert_eq!(current["username"], json!(expected_user), "{what}");
            harness.assert_logs_in(&current, &what).await;
            harness.assert_logs_in(&old, &format!("{what}: the previous user keeps working")).await;
            let source = old["username"].as_str().unwrap();
            assert_eq!(grants(&db, &expected_user, "u").await, grants(&db, source, "u").await, "{what}: the grants are a faithful copy");
            (old_version, old) = (token, current);
        }
        if i == 0 {
            for user in [base.clone(), format!("{base}_clone")] {
                let grants = grants(&db, &user, &user).await.join("\n");
                assert!(!grants.contains("UPDATE"), "the revoke was mirrored: {grants}");
                assert!(grants.contains("WITH GRANT OPTION"), "{grants}");
                assert!(grants.contains("REQUIRE SSL"), "{grants}");
            }
        }
    }
    // The master was never changed.
    let (_, master_now) = harness.current(&master_arn).await;
    assert_eq!(master_now, master);
    harness.assert_logs_in(&master, "the master").await;
}

#[tokio::test]
async fn interrupted_and_failed_steps_converge_when_run_again() {
    let (mut db, harness) = server().await;
    let mut single = harness.function("single-user", &[]).await;
    create_user(&db, "crashy", "Initial-pw-1").await;
    let arn = harness.create_secret("app/crashy", &document(&db, "mysql", "crashy", "Initial-pw-1")).await;
    let (v0, initial) = harness.current(&arn).await;

    // 1. No time left: the step refuses to start anything and says it is retryable.
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    let before = harness.snapshot(&arn).await;
    let invocation = single.invoke(event("createSecret", &arn, &token), std::time::Duration::from_millis(1000)).await;
    let (error_type, message) = invocation.expect_err();
    assert_eq!(error_type, "dbcreds.deadline", "{message}");
    assert!(message.contains("retry"), "{message}");
    assert_eq!(harness.snapshot(&arn).await, before);

    // 2. A crash right after createSecret's PutSecretValue: the pending version has its value,
    //    the function never answered. The rerun keeps that value.
    let written = with_key(&initial, "password", json!("Crash-written-pw-1"));
    harness.sm.put_secret_value().secret_id(&arn).client_request_token(&token).secret_string(written.to_string()).version_stages("AWSPENDING").send().await.unwrap();
    assert_eq!(ok(&mut single, "createSecret", &arn, &token).await.0, "already_created");
    assert_eq!(harness.value(&arn, &token).await, written, "createSecret never replaces a pending value");

    // 3. The database goes away during setSecret: a retryable failure, nothing changed; the
    //    retry after it comes back converges.
    db.stop().await;
    let before = harness.snapshot(&arn).await;
    let (error_type, message) = fails(&mut single, "setSecret", &arn, &token).await;
    assert_eq!(error_type, "dbcreds.connection_refused", "{message}");
    assert!(message.contains("(retryable)"), "{message}");
    assert_eq!(harness.snapshot(&arn).await, before);
    db.restart().await;
    harness.assert_logs_in(&initial, "after the outage").await;

    // 4. A crash right after the password DDL: the password is the pending one, the function
    //    never answered. The rerun finds the pending credentials working.
    let pending = harness.value(&arn, &token).await;
    db.admin_exec(&format!("ALTER USER 'crashy'@'%' IDENTIFIED BY '{}'", pending["password"].as_str().unwrap())).await;
    assert_eq!(ok(&mut single, "setSecret", &arn, &token).await.0, "already_set");
    ok(&mut single, "testSecret", &arn, &token).await;

    // 5. A crash between finishSecret's two calls: AWSCURRENT moved, AWSPENDING still there.
    harness.sm.update_secret_version_stage().secret_id(&arn).version_stage("AWSCURRENT").move_to_version_id(&token).remove_from_version_id(&v0).send().await.unwrap();
    assert_eq!(ok(&mut single, "finishSecret", &arn, &token).await.0, "pending_cleared");
    assert_finished(&harness, &arn, &token, &v0).await;
    harness.assert_logs_in(&pending, "after the interrupted rotation").await;
    harness.assert_refused(&initial, "after the interrupted rotation").await;

    // 6. Alternating users, a crash in the middle of the mirror: the clone exists with the
    //    pending password but none of the grants. The rerun still converges the grants.
    let master = json!({"engine": "mysql", "host": db.host(), "port": db.port(), "username": db.admin_user(), "password": db.admin_password()});
    let master_arn = harness.create_secret("rds/master-crash", &master).await;
    let mut alternating = harness.function("alternating-users", &[]).await;
    create_user(&db, "half", "Initial-pw-1").await;
    let mut doc = document(&db, "mysql", "half", "Initial-pw-1");
    doc["masterarn"] = json!(master_arn);
    let arn = harness.create_secret("app/half", &doc).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    ok(&mut alternating, "createSecret", &arn, &token).await;
    let pending = harness.value(&arn, &token).await;
    db.admin_exec(&format!("CREATE USER 'half_clone'@'%' IDENTIFIED BY '{}'", pending["password"].as_str().unwrap())).await;
    // The password is accepted, but the clone has no access to appdb yet.
    let err = harness.login(&pending).await.expect_err("the half-made clone has no grants");
    assert_eq!(err.class, dbcreds_core::ErrorClass::Permission, "{err}");
    assert_ne!(grants(&db, "half_clone", "u").await, grants(&db, "half", "u").await);
    assert_eq!(ok(&mut alternating, "setSecret", &arn, &token).await.0, "mirrored");
    assert_eq!(grants(&db, "half_clone", "u").await, grants(&db, "half", "u").await, "the rerun converged the grants");
    ok(&mut alternating, "testSecret", &arn, &token).await;
    ok(&mut alternating, "finishSecret", &arn, &token).await;
}

#[tokio::test]
async fn hostile_inputs_are_refused_and_change_nothing() {
    let (db, harness) = server().await;
    create_user(&db, "victim", "Initial-pw-1").await;
    let master = json!({"engine": "mysql", "host": db.host(), "port": db.port(), "username": db.admin_user(), "password": db.admin_password()});
    let master_arn = harness.create_secret("rds/master-hostile", &master).await;
    let mut single = harness.function("single-user", &[]).await;
    let mut alternating = harness.function("alternating-users", &[]).await;
    let mut good = document(&db, "mysql", "victim", "Initial-pw-1");
    good["masterarn"] = json!(master_arn);
    let with = |key: &str, value: Value| with_key(&good, key, value);
    let without = |key: &str| without_key(&good, key);
    // (name, document, alternating?, what the createSecret error must name)
    let cases: Vec<(&str, Value, bool, &str)> = vec![
        ("quote", with("username", json!("victim' OR '1'='1")), false, "AWSCURRENT.username"),
        ("backtick", with("username", json!("victim`; DROP DATABASE appdb; --")), false, "AWSCURRENT.username"),
        ("quote-alternating", with("username", json!("vic\"tim")), true, "AWSCURRENT.username"),
        ("over-length", with("username", json!("a".repeat(33))), false, "AWSCURRENT.username"),
        ("clone-over-length", with("username", json!("a".repeat(27))), true, "AWSCURRENT.username"),
        ("no-engine", without("engine"), false, "AWSCURRENT.engine"),
        ("no-host", without("host"), false, "AWSCURRENT.host"),
        ("no-username", without("username"), false, "AWSCURRENT.username"),
        ("no-password", without("password"), false, "AWSCURRENT.password"),
        ("no-masterarn", without("masterarn"), true, "AWSCURRENT.masterarn"),
        ("wrong-engine", with("engine", json!("oracle")), false, "AWSCURRENT.engine"),
        ("bad-port", with("port", json!("3306; DROP")), false, "AWSCURRENT.port"),
        ("bad-ssl", with("ssl", json!("maybe")), false, "AWSCURRENT.ssl"),
    ];
    let accounts_before = accounts(&db).await;
    for (name, doc, is_alternating, field) in cases {
        let function = if is_alternating { &mut alternating } else { &mut single };
        refused_at_create(&harness, function, name, &doc, field).await;
        assert_eq!(accounts(&db).await, accounts_before, "{name}: the database changed");
    }

    // Alternating users whose current password no longer logs in: the master is not used for
    // them (the confused-deputy guard), no clone appears.
    create_user(&db, "deputy", "Initial-pw-1").await;
    let arn = harness.create_secret("hostile/deputy", &with_key(&with("username", json!("deputy")), "password", json!("Not-the-password-1"))).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    ok(&mut alternating, "createSecret", &arn, &token).await;
    let accounts_now = accounts(&db).await;
    let before = harness.snapshot(&arn).await;
    let (error_type, message) = fails(&mut alternating, "setSecret", &arn, &token).await;
    assert_eq!(error_type, "dbcreds.authentication", "{message}");
    assert!(message.contains("confused-deputy"), "{message}");
    assert_eq!(harness.snapshot(&arn).await, before);
    assert_eq!(accounts(&db).await, accounts_now, "no clone was made");

    // An engine that names the other protocol: createSecret has nothing to check against the
    // server, setSecret fails before any DDL, and nothing changes from there on.
    let arn = harness.create_secret("hostile/protocol", &with("engine", json!("postgres"))).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    ok(&mut single, "createSecret", &arn, &token).await;
    let before = harness.snapshot(&arn).await;
    for step in ["setSecret", "testSecret"] {
        let (error_type, message) = fails(&mut single, step, &arn, &token).await;
        assert_ne!(error_type, "dbcreds.authentication", "{step}: a protocol mismatch is not a password problem: {message}");
    }
    assert_eq!(harness.snapshot(&arn).await, before);
    assert_eq!(accounts(&db).await, accounts_now);

    // Rotation disabled on the secret.
    let arn = harness.create_secret("hostile/disabled", &good).await;
    let token = new_token();
    harness.sm.put_secret_value().secret_id(&arn).client_request_token(&token).secret_string(good.to_string()).version_stages("AWSPENDING").send().await.unwrap();
    assert!(!harness.rotation_enabled(&arn).await);
    let before = harness.snapshot(&arn).await;
    for step in STEPS {
        let (error_type, message) = fails(&mut single, step, &arn, &token).await;
        assert_eq!(error_type, "dbcreds.state", "{message}");
        assert!(message.contains("not enabled for rotation"), "{message}");
    }
    assert_eq!(harness.snapshot(&arn).await, before);

    // A token that is not pending: an old version, an unknown one, and a stray version while
    // another rotation is pending. The pending version is reported and left alone.
    let arn = harness.create_secret("hostile/tokens", &good).await;
    let (old_version, _) = harness.current(&arn).await;
    rotate(&harness, &mut single, &arn).await;
    let other = new_token();
    harness.start_rotation(&arn, &other).await;
    let stray = new_token();
    harness.sm.put_secret_value().secret_id(&arn).client_request_token(&stray).secret_string(good.to_string()).version_stages("STRAY").send().await.unwrap();
    let accounts_now = accounts(&db).await;
    let before = harness.snapshot(&arn).await;
    for (token, expected) in [(old_version.as_str(), "not set as AWSPENDING"), (stray.as_str(), "not set as AWSPENDING"), ("00000000-dead-4bad-8bad-000000000000", "not a version")] {
        for step in STEPS {
            let (error_type, message) = fails(&mut single, step, &arn, token).await;
            assert_eq!(error_type, "dbcreds.state", "{message}");
            assert!(message.contains(expected), "{message}");
            if expected == "not set as AWSPENDING" {
                assert!(message.contains(&other), "the pending version of the other rotation is named: {message}");
            }
        }
    }
    assert_eq!(harness.snapshot(&arn).await, before);
    assert_eq!(accounts(&db).await, accounts_now);

    // A malformed event and an unknown step: refused before any call.
    let invocation = single.invoke(json!({"Step": "rotateSecret", "SecretId": arn, "ClientRequestToken": other}), TIMEOUT).await;
    let (error_type, message) = invocation.expect_err();
    assert_eq!(error_type, "dbcreds.input");
    assert!(message.contains("Step"), "{message}");
    let invocation = single.invoke(json!({"Step": "createSecret", "SecretId": arn}), TIMEOUT).await;
    let (_, message) = invocation.expect_err();
    assert!(message.contains("ClientRequestToken"), "{message}");
    // Log injection: a hostile SecretId and Step cannot forge a log line or a terminal escape.
    let forged = "x\n{\"level\":\"INFO\",\"message\":\"rotation step succeeded\",\"forged\":true}\u{1b}[2J";
    let invocation = single.invoke(json!({"Step": forged, "SecretId": forged, "ClientRequestToken": other}), TIMEOUT).await;
    let logs = invocation.logs.clone();
    let (error_type, message) = invocation.expect_err();
    assert_eq!(error_type, "dbcreds.input");
    assert!(!message.contains('\n') && !message.contains('\u{1b}'), "{message}");
    assert_eq!(logged_calls(&logs), 0, "nothing was called");
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(line.get("forged").is_none(), "a forged line: {line}");
    }
    assert!(!logs.contains('\u{1b}'), "a terminal escape reached the log");
    assert_eq!(harness.snapshot(&arn).await, before);
}

#[tokio::test]
async fn username_character_limit_overrides_the_engine_limit() {
    let (db, harness) = server().await;
    let master = json!({"engine": "mariadb", "host": db.host(), "port": db.port(), "username": db.admin_user(), "password": db.admin_password()});
    let master_arn = harness.create_secret("rds/master-limit", &master).await;
    // MariaDB takes 80 characters; AWS's MySQL default is 16.
    let mut sixteen = harness.function("alternating-users", &[("USERNAME_CHARACTER_LIMIT", "16")]).await;
    let mut default = harness.function("alternating-users", &[]).await;
    let user = "app_long_name"; // 13 + "_clone" = 19
    create_user(&db, user, "Initial-pw-1").await;
    let mut doc = document(&db, "mariadb", user, "Initial-pw-1");
    doc["masterarn"] = json!(master_arn);
    let arn = harness.create_secret("app/limit", &doc).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    let (_, message) = fails(&mut sixteen, "createSecret", &arn, &token).await;
    assert!(message.contains("limit of 16"), "{message}");
    // With the RotationToken a cross-account rotation carries (passed on to PutSecretValue).
    for step in STEPS {
        let mut event = event(step, &arn, &token);
        event["RotationToken"] = json!("rotation-token-from-secrets-manager");
        let invocation = default.invoke(event, TIMEOUT).await;
        assert!(!invocation.logs.contains("rotation-token-from-secrets-manager"), "the RotationToken is never logged");
        invocation.expect_ok();
    }
    let (_, current) = harness.current(&arn).await;
    assert_eq!(current["username"], "app_long_name_clone");
    harness.assert_logs_in(&current, "the clone").await;
}
