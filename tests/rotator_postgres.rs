//! The `rotator` binary against a real PostgreSQL server with verified TLS and moto, for the
//! engine names `postgres` and `aurora-postgresql`, single user and alternating users, driven
//! step by step as Secrets Manager drives them.
//!
//! One server set (PostgreSQL + moto + functions) per test; each test covers several secrets.

mod rotator_support;

use dbcreds_core::ErrorClass;
use dbcreds_testenv::rds_master::create_managed_instance;
use dbcreds_testenv::{Postgres, ServerOptions, TlsMode};
use rotator_support::*;
use serde_json::{Value, json};

const ENGINES: [&str; 2] = ["postgres", "aurora-postgresql"];

async fn server() -> (Postgres, Harness) {
    let db = Postgres::start(ServerOptions::new()).await;
    db.admin_exec("CREATE DATABASE appdb").await;
    // Every statement goes to the server log: the proof that no password travels as text.
    db.admin_exec("ALTER SYSTEM SET log_statement = 'all'").await;
    db.admin_exec("SELECT pg_reload_conf()").await;
    let harness = Harness::new(db.ca_pem(), db.ca_pem_path()).await;
    (db, harness)
}

fn document(db: &Postgres, engine: &str, user: &str, password: &str) -> Value {
    json!({"engine": engine, "host": db.host(), "port": db.port().to_string(), "username": user, "password": password, "dbname": "appdb", "proxy": false, "team": {"owner": "payments"}})
}

async fn create_user(db: &Postgres, user: &str, password: &str) {
    db.admin_exec(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'")).await;
    db.admin_exec(&format!("GRANT CONNECT, CREATE ON DATABASE appdb TO {user}")).await;
    db.query_as_admin_in("appdb", &format!("GRANT USAGE, CREATE ON SCHEMA public TO {user}")).await.unwrap();
}

/// Every role with its password verifier and attributes, and every membership: what must not
/// change when a step refuses.
async fn roles(db: &Postgres) -> Vec<Vec<Option<String>>> {
    let mut rows = db.admin_query_strings("SELECT rolname, rolpassword, rolcreatedb::text, rolcanlogin::text, rolconnlimit::text FROM pg_authid ORDER BY rolname").await;
    rows.extend(db.admin_query_strings("SELECT roleid::regrole::text, member::regrole::text, admin_option::text FROM pg_auth_members ORDER BY 1, 2").await);
    rows
}

fn text(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
    rows.into_iter().map(|row| row.into_iter().map(|c| c.unwrap_or_else(|| "NULL".into())).collect::<Vec<_>>().join("|")).collect()
}

async fn attributes(db: &Postgres, user: &str) -> Vec<String> {
    text(db.admin_query_strings(&format!("SELECT rolcreatedb::text, rolconnlimit::text, rolinherit::text FROM pg_roles WHERE rolname = '{user}'")).await)
}

/// The roles `user` is a member of, leaving out `base` (which only the clone is a member of).
async fn memberships(db: &Postgres, user: &str, base: &str) -> Vec<String> {
    text(db.admin_query_strings(&format!("SELECT roleid::regrole::text FROM pg_auth_members WHERE member = '{user}'::regrole AND roleid::regrole::text <> '{base}' ORDER BY 1")).await)
}

/// Runs SQL in appdb logged in with a secret document's credentials, over verified TLS.
async fn run_as(harness: &Harness, document: &Value, sql: &str) -> Result<Vec<String>, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(document["host"].as_str().unwrap())
        .port(document["port"].as_str().unwrap().parse().unwrap())
        .user(document["username"].as_str().unwrap())
        .password(document["password"].as_str().unwrap())
        .dbname("appdb")
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*harness.trust.client_config()).clone());
    let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
    let task = tokio::spawn(connection);
    let result = client.simple_query(sql).await.map_err(|e| format!("{e}: {}", e.as_db_error().map(|d| d.message()).unwrap_or_default()));
    drop(client);
    let _ = task.await;
    Ok(result?
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).unwrap_or("NULL").to_owned()).collect::<Vec<_>>().join("|")),
            _ => None,
        })
        .collect())
}

#[tokio::test]
async fn single_user_rotations_for_every_postgres_engine_name() {
    let (db, harness) = server().await;
    let mut function = harness.function("single-user", &[]).await;
    let mut passwords = Vec::new();
    for (i, engine) in ENGINES.iter().enumerate() {
        let user = format!("single{i}");
        create_user(&db, &user, "Initial-pw-1").await;
        let arn = harness.create_secret(&format!("app/{engine}/single"), &document(&db, engine, &user, "Initial-pw-1")).await;
        let mut old = harness.current(&arn).await;
        for n in 0..3 {
            let what = format!("{engine} rotation {n}");
            let (token, current) = checked_single_user_rotation(&harness, &mut function, &arn, &old, i == 0 && n == 0, single_user_budget(n == 0), &what).await;
            assert_eq!(current["port"], json!(db.port().to_string()), "{what}: a string port stays a string");
            let password = current["password"].as_str().unwrap().to_owned();
            assert!(!password.contains([':', '/', '@', '"', '\'', '\\']), "{what}: AWS's PostgreSQL exclusions");
            let verifier = db.admin_query_strings(&format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'")).await;
            assert!(verifier[0][0].as_deref().unwrap().starts_with("SCRAM-SHA-256$4096:"), "{what}: a SCRAM verifier is stored");
            passwords.push(password);
            old = (token, current);
        }
    }
    // log_statement = 'all' logged every statement the function sent: none carries a password.
    let log = db.log();
    assert!(log.contains("ALTER ROLE CURRENT_USER PASSWORD"), "statements are logged, so this check means something");
    for password in passwords {
        assert!(!log.contains(&password), "a password reached the server log");
    }
}

#[tokio::test]
async fn alternating_rotations_share_objects_between_both_users() {
    let (db, harness) = server().await;
    // An RDS-like master: CREATEROLE, not a superuser.
    db.admin_exec("CREATE ROLE rdsmaster LOGIN CREATEROLE CREATEDB PASSWORD 'Master-pw-1'").await;
    db.admin_exec("CREATE ROLE readers NOLOGIN; CREATE ROLE auditors NOLOGIN").await;
    db.admin_exec("GRANT readers, auditors TO rdsmaster WITH ADMIN OPTION").await;
    let superuser = json!({"engine": "postgres", "host": db.host(), "port": db.port(), "username": db.admin_user(), "password": db.admin_password(), "dbname": "appdb"});
    let rds_master = json!({"engine": "postgres", "host": db.host(), "port": db.port(), "username": "rdsmaster", "password": "Master-pw-1"});
    let masters = [harness.create_secret("rds/pg-superuser", &superuser).await, harness.create_secret("rds/pg-rdsmaster", &rds_master).await];
    let mut function = harness.function("alternating-users", &[]).await;

    for (i, engine) in ENGINES.iter().enumerate() {
        let base = format!("alt{i}");
        db.admin_exec(&format!("SET ROLE rdsmaster; CREATE ROLE {base} LOGIN PASSWORD 'Initial-pw-1' CONNECTION LIMIT 7; RESET ROLE")).await;
        db.admin_exec(&format!("GRANT CONNECT, CREATE ON DATABASE appdb TO {base}; GRANT readers, auditors TO {base}")).await;
        db.query_as_admin_in("appdb", &format!("GRANT USAGE, CREATE ON SCHEMA public TO {base}")).await.unwrap();
        let mut doc = document(&db, engine, &base, "Initial-pw-1");
        doc["masterarn"] = json!(masters[i]);
        let arn = harness.create_secret(&format!("app/{engine}/alternating"), &doc).await;
        let (mut old_version, mut old) = harness.current(&arn).await;
        let clone = format!("{base}_clone");
        let rotations = if i == 0 { 4 } else { 3 };
        for n in 0..rotations {
            let what = format!("{engine} rotation {n}");
            if n == 2 {
                // Revoked from the user the application uses now: the pending user loses it too.
                db.admin_exec(&format!("REVOKE auditors FROM {}", old["username"].as_str().unwrap())).await;
            }
            let (token, calls) = rotate(&harness, &mut function, &arn).await;
            assert!(n == 0 || calls <= 9, "{what}: {calls} Secrets Manager calls");
            assert_finished(&harness, &arn, &token, &old_version).await;
            let (_, current) = harness.current(&arn).await;
            let expected_user = if n % 2 == 0 { clone.clone() } else { base.clone() };
            assert_eq!(current["username"], json!(expected_user), "{what}");
            harness.assert_logs_in(&current, &what).await;
            harness.assert_logs_in(&old, &format!("{what}: the previous user keeps working")).await;

            // Attributes and memberships match, on every rotation.
            assert_eq!(attributes(&db, &clone).await, attributes(&db, &base).await, "{what}: role attributes copied");
            assert_eq!(memberships(&db, &clone, &base).await, memberships(&db, &base, &base).await, "{what}: memberships copied");
            let expected_roles: Vec<String> = if n >= 2 { vec!["readers".into()] } else { vec!["auditors".into(), "readers".into()] };
            assert_eq!(memberships(&db, &expected_user, &base).await, expected_roles, "{what}: the revoke was mirrored");

            // Objects made by either user belong to the base and stay usable by both.
            let table = format!("made_in_rotation_{i}_{n}");
            run_as(&harness, &current, &format!("CREATE TABLE {table} (id int); INSERT INTO {table} VALUES ({n})")).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            let owner = db.query_as_admin_in("appdb", &format!("SELECT tableowner FROM pg_tables WHERE tablename = '{table}'")).await.unwrap();
            assert_eq!(text(owner), vec![base.clone()], "{what}: the base user owns what the clone creates");
            for m in 0..=n {
                let table = format!("made_in_rotation_{i}_{m}");
                for user in [&current, &old] {
                    run_as(&harness, user, &format!("INSERT INTO {table} VALUES (100)")).await.unwrap_or_else(|e| panic!("{what}: {} cannot write {table}: {e}", user["username"]));
                }
            }
            (old_version, old) = (token, current);
        }
    }
    let (_, master_now) = harness.current(&masters[1]).await;
    assert_eq!(master_now, rds_master, "the master secret is never changed");
    harness.assert_logs_in(&json!({"engine": "postgres", "host": db.host(), "port": db.port(), "username": "rdsmaster", "password": "Master-pw-1"}), "the master").await;
}

#[tokio::test]
async fn interrupted_and_failed_steps_converge_when_run_again() {
    let (mut db, harness) = server().await;
    let mut single = harness.function("single-user", &[]).await;
    create_user(&db, "crashy", "Initial-pw-1").await;
    let arn = harness.create_secret("app/crashy", &document(&db, "postgres", "crashy", "Initial-pw-1")).await;
    let (v0, initial) = harness.current(&arn).await;

    // 1. No time left: nothing is started, and the failure says it is retryable.
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    let before = harness.snapshot(&arn).await;
    for step in STEPS {
        let (error_type, message) = single.invoke(event(step, &arn, &token), std::time::Duration::from_millis(1000)).await.expect_err();
        assert_eq!(error_type, "dbcreds.deadline", "{step}: {message}");
    }
    assert_eq!(harness.snapshot(&arn).await, before);
    ok(&mut single, "createSecret", &arn, &token).await;

    // 2. The database goes away: a retryable failure, nothing changed; then it converges.
    db.stop().await;
    let before = harness.snapshot(&arn).await;
    let (error_type, message) = fails(&mut single, "setSecret", &arn, &token).await;
    assert_eq!(error_type, "dbcreds.connection_refused", "{message}");
    assert_eq!(harness.snapshot(&arn).await, before);
    db.restart().await;

    // 3. A crash right after the password DDL: the rerun finds the pending password working.
    let pending = harness.value(&arn, &token).await;
    db.admin_exec(&format!("ALTER ROLE crashy PASSWORD '{}'", pending["password"].as_str().unwrap())).await;
    assert_eq!(ok(&mut single, "setSecret", &arn, &token).await.0, "already_set");
    ok(&mut single, "testSecret", &arn, &token).await;

    // 4. A crash between finishSecret's two calls.
    harness.sm.update_secret_version_stage().secret_id(&arn).version_stage("AWSCURRENT").move_to_version_id(&token).remove_from_version_id(&v0).send().await.unwrap();
    assert_eq!(ok(&mut single, "finishSecret", &arn, &token).await.0, "pending_cleared");
    assert_finished(&harness, &arn, &token, &v0).await;
    harness.assert_refused(&initial, "after the interrupted rotation").await;

    // 5. Someone reset the password in the database to the one before: AWSCURRENT is refused,
    //    AWSPREVIOUS logs in and sets the new password (AWS's fallback), then the rotation ends.
    db.admin_exec("ALTER ROLE crashy PASSWORD 'Initial-pw-1'").await;
    let (_, outcomes) = rotate_repeating(&harness, &mut single, &arn).await;
    assert_eq!(outcomes[1].0, "password_changed");
    let (_, current) = harness.current(&arn).await;
    harness.assert_logs_in(&current, "after the fallback").await;
    let log = single.logs();
    assert!(log.contains("logged in with AWSPREVIOUS"), "the fallback is in the log");

    // 6. A malformed AWSPREVIOUS while AWSCURRENT is refused: a clear failure, not a crash, a
    //    warning in the log, and nothing changed.
    let (current_version, current) = harness.current(&arn).await;
    let broken = new_token();
    harness.sm.put_secret_value().secret_id(&arn).client_request_token(&broken).secret_string("{\"username\": 5").version_stages("AWSPREVIOUS").send().await.unwrap();
    assert_eq!(harness.version_with(&arn, "AWSPREVIOUS").await.as_deref(), Some(broken.as_str()));
    db.admin_exec("ALTER ROLE crashy PASSWORD 'Someone-else-1'").await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    ok(&mut single, "createSecret", &arn, &token).await;
    let before = (harness.snapshot(&arn).await, roles(&db).await);
    let invocation = invoke(&mut single, "setSecret", &arn, &token).await;
    let logs = invocation.logs.clone();
    let (error_type, message) = invocation.expect_err();
    assert_eq!(error_type, "dbcreds.authentication", "{message}");
    assert!(message.contains("Unable to log into database with previous, current, or pending secret"), "{message}");
    assert!(logs.contains("AWSPREVIOUS skipped"), "a warning says why AWSPREVIOUS was not tried:\n{logs}");
    assert_eq!((harness.snapshot(&arn).await, roles(&db).await), before);
    assert_eq!(harness.current(&arn).await, (current_version, current));
}

#[tokio::test]
async fn hostile_inputs_and_plaintext_servers_change_nothing() {
    let (db, harness) = server().await;
    create_user(&db, "victim", "Initial-pw-1").await;
    let master = json!({"engine": "postgres", "host": db.host(), "port": db.port(), "username": db.admin_user(), "password": db.admin_password()});
    let master_arn = harness.create_secret("rds/pg-master-hostile", &master).await;
    let mut single = harness.function("single-user", &[]).await;
    let mut alternating = harness.function("alternating-users", &[]).await;
    let mut good = document(&db, "postgres", "victim", "Initial-pw-1");
    good["masterarn"] = json!(master_arn);
    let with = |key: &str, value: Value| with_key(&good, key, value);
    let without = |key: &str| without_key(&good, key);
    let cases: Vec<(&str, Value, bool, &str)> = vec![
        ("quote", with("username", json!("victim\"; DROP ROLE postgres; --")), false, "AWSCURRENT.username"),
        ("backtick", with("username", json!("vic`tim")), true, "AWSCURRENT.username"),
        ("over-length", with("username", json!("a".repeat(64))), false, "AWSCURRENT.username"),
        ("clone-over-length", with("username", json!("a".repeat(58))), true, "AWSCURRENT.username"),
        ("no-engine", without("engine"), false, "AWSCURRENT.engine"),
        ("no-host", without("host"), true, "AWSCURRENT.host"),
        ("no-username", without("username"), false, "AWSCURRENT.username"),
        ("no-password", without("password"), true, "AWSCURRENT.password"),
        ("wrong-engine", with("engine", json!("sqlserver")), false, "AWSCURRENT.engine"),
    ];
    let roles_before = roles(&db).await;
    for (name, doc, is_alternating, field) in cases {
        let function = if is_alternating { &mut alternating } else { &mut single };
        refused_at_create(&harness, function, name, &doc, field).await;
        assert_eq!(roles(&db).await, roles_before, "{name}: the database changed");
    }

    // The other protocol against this server: no DDL, and nothing changes after createSecret.
    // A MySQL client waits for a greeting PostgreSQL never sends, so the step ends at the
    // invocation's deadline, cleanly; a short function timeout keeps the test short.
    let arn = harness.create_secret("hostile/protocol", &with("engine", json!("mysql"))).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    ok(&mut single, "createSecret", &arn, &token).await;
    let before = harness.snapshot(&arn).await;
    for step in ["setSecret", "testSecret"] {
        let invocation = single.invoke(event(step, &arn, &token), std::time::Duration::from_secs(3)).await;
        let (error_type, message) = invocation.expect_err();
        assert!(["dbcreds.deadline", "dbcreds.tcp_timeout", "dbcreds.connection_lost"].contains(&error_type.as_str()), "{step}: {error_type}: {message}");
    }
    assert_eq!(harness.snapshot(&arn).await, before);
    assert_eq!(roles(&db).await, roles_before);

    // An RDS-managed master secret (only username and password): its database is found through
    // its aws:rds:primarydbinstancearn tag and DescribeDBInstances. moto's instance has a made-up
    // endpoint, so the master must be refused as another database, naming that endpoint: the
    // proof the lookup went through RDS. Nothing changes.
    let clients = dbcreds_aws::AwsClients::from_sdk_config(harness.moto.sdk_config().await, None).unwrap();
    let created = create_managed_instance(&clients.rds, "pgprod", "postgres", "postgres", None).await;
    let (managed_arn, rds_host) = (created.secret_arn, created.host);
    let managed = harness.current(&managed_arn).await.1;
    assert!(managed.get("host").is_none(), "an RDS-managed secret holds only username and password: {}", managed.as_object().unwrap().keys().cloned().collect::<Vec<_>>().join(","));
    let arn = harness.create_secret("hostile/rds-managed-elsewhere", &with("masterarn", json!(managed_arn))).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    ok(&mut alternating, "createSecret", &arn, &token).await;
    let before = harness.snapshot(&arn).await;
    let (error_type, message) = fails(&mut alternating, "setSecret", &arn, &token).await;
    assert_eq!(error_type, "dbcreds.input", "{message}");
    assert!(message.contains("master secret.host") && message.contains(&rds_host), "{message}");
    assert_eq!(harness.snapshot(&arn).await, before);
    assert_eq!(roles(&db).await, roles_before);

    // A server without TLS: the password DDL is never sent in the clear unless the secret says
    // "ssl": false.
    let plain = Postgres::start(ServerOptions::new().tls(TlsMode::Off)).await;
    plain.admin_exec("CREATE ROLE plainuser LOGIN PASSWORD 'Initial-pw-1'").await;
    let plain_roles = text(plain.admin_query_strings("SELECT rolname, rolpassword FROM pg_authid ORDER BY 1").await);
    let plain_doc = json!({"engine": "postgres", "host": plain.host(), "port": plain.port(), "username": "plainuser", "password": "Initial-pw-1"});
    let arn = harness.create_secret("hostile/plaintext", &plain_doc).await;
    let token = new_token();
    harness.start_rotation(&arn, &token).await;
    ok(&mut single, "createSecret", &arn, &token).await;
    let before = harness.snapshot(&arn).await;
    let (error_type, message) = fails(&mut single, "setSecret", &arn, &token).await;
    assert_eq!(error_type, "dbcreds.tls_unavailable", "{message}");
    assert!(message.contains("ssl"), "the error says how to allow plaintext: {message}");
    assert_eq!(harness.snapshot(&arn).await, before);
    assert_eq!(text(plain.admin_query_strings("SELECT rolname, rolpassword FROM pg_authid ORDER BY 1").await), plain_roles, "no DDL in the clear");

    // With "ssl": false, the operator's explicit choice, the same rotation goes through.
    let mut allowed = plain_doc.clone();
    allowed["ssl"] = json!(false);
    let arn = harness.create_secret("hostile/plaintext-allowed", &allowed).await;
    let (_, calls) = rotate(&harness, &mut single, &arn).await;
    assert!(calls <= 9);
    let (_, current) = harness.current(&arn).await;
    assert_eq!(current["ssl"], json!(false));
    harness.assert_logs_in(&current, "plaintext by request").await;
    assert_eq!(harness.login(&allowed).await.unwrap_err().class, ErrorClass::Authentication);
}
