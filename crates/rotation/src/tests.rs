//! Unit tests of the state machine with in-memory fakes: the preamble, each step's branches,
//! idempotency, interruptions, and hostile input. End-to-end proof against real servers and
//! moto lives in the workspace's `tests/rotator_*.rs`.

use crate::config::{RotationConfig, Strategy};
use crate::event::Step;
use crate::fakes::{FakeDatabases, FakeRds, FakeSecret, FakeStore, FakeVersion, Fault};
use crate::rotator::{Outcome, Rotator, StepReport};
use dbcreds_aws::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, DatabaseEndpoint};
use dbcreds_core::{Engine, ErrorClass};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

const ARN: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf";
const MASTER_ARN: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:master-XyZ123";
const HOST: &str = "db.example.com";
const V0: &str = "00000000-0000-4000-8000-000000000000";

fn token(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn port(engine: &str) -> u16 {
    if engine.contains("postgres") { 5432 } else { 3306 }
}

/// The secret's versions, the server's users and passwords, and the mirrors that ran.
type Snapshot = (BTreeMap<String, FakeVersion>, Vec<(String, String)>, Vec<(String, String)>);

struct World {
    store: FakeStore,
    dbs: FakeDatabases,
    rds: FakeRds,
    config: RotationConfig,
    engine: &'static str,
}

impl World {
    fn new(engine: &'static str, strategy: Strategy) -> Self {
        let world = World { store: FakeStore::default(), dbs: FakeDatabases::default(), rds: FakeRds::default(), config: RotationConfig { strategy, ..RotationConfig::default() }, engine };
        let mut document = json!({"engine": engine, "host": HOST, "port": port(engine).to_string(), "username": "app", "password": "old-pw", "dbname": "appdb", "team": {"owner": "x"}});
        let mut users = vec![("app", "old-pw")];
        if strategy == Strategy::AlternatingUsers {
            document["masterarn"] = json!(MASTER_ARN);
            users.push(("admin", "master-pw"));
            let master = json!({"engine": engine, "host": HOST, "port": port(engine), "username": "admin", "password": "master-pw"});
            world.store.add("master", secret(MASTER_ARN, &master));
        }
        world.store.add("app", secret(ARN, &document));
        world.dbs.add_server(&world.host_port(), &users);
        world
    }

    fn host_port(&self) -> String {
        format!("{HOST}:{}", port(self.engine))
    }

    fn rotator(&self) -> Rotator<'_> {
        Rotator { store: &self.store, databases: &self.dbs, endpoints: Some(&self.rds), config: &self.config }
    }

    /// What RotateSecret does before calling the function: a version with AWSPENDING, no value.
    fn start_rotation(&self, token: &str) {
        self.store.with_secret_mut(ARN, |secret| {
            for version in secret.versions.values_mut() {
                version.stages.retain(|s| s != AWSPENDING);
            }
            secret.versions.insert(token.to_owned(), FakeVersion { value: None, stages: vec![AWSPENDING.into()] });
        });
    }

    async fn step(&self, step: Step, token: &str) -> StepReport {
        self.step_by(step, token, Instant::now() + Duration::from_secs(30)).await
    }

    async fn step_by(&self, step: Step, token: &str, deadline: Instant) -> StepReport {
        let event = json!({"Step": step.as_str(), "SecretId": ARN, "ClientRequestToken": token, "RotationToken": "rotation-token-1"});
        self.rotator().run(&event, deadline).await
    }

    async fn ok(&self, step: Step, token: &str) -> Outcome {
        let report = self.step(step, token).await;
        match report.result {
            Ok(outcome) => outcome,
            Err(err) => panic!("{step} failed: {err}"),
        }
    }

    async fn err(&self, step: Step, token: &str) -> crate::RotationError {
        match self.step(step, token).await.result {
            Ok(outcome) => panic!("{step} succeeded ({outcome}) but should have failed"),
            Err(err) => err,
        }
    }

    async fn rotate(&self, token: &str) {
        self.start_rotation(token);
        for step in Step::ALL {
            self.ok(step, token).await;
        }
    }

    fn document(&self, version: &str) -> Value {
        serde_json::from_str(&self.store.value(ARN, version).expect("a value")).unwrap()
    }

    fn current_id(&self) -> String {
        self.store.secret(ARN).versions.iter().find(|(_, v)| v.stages.iter().any(|s| s == AWSCURRENT)).map(|(id, _)| id.clone()).unwrap()
    }

    fn pending_ids(&self) -> Vec<String> {
        self.store.secret(ARN).versions.iter().filter(|(_, v)| v.stages.iter().any(|s| s == AWSPENDING)).map(|(id, _)| id.clone()).collect()
    }

    fn logs_in(&self, document: &Value) -> bool {
        self.dbs.password_of(&self.host_port(), document["username"].as_str().unwrap()).as_deref() == document["password"].as_str()
    }

    /// Everything a failed step must leave unchanged.
    fn snapshot(&self) -> Snapshot {
        let mut users: Vec<(String, String)> = self.dbs.server(&self.host_port()).users.into_iter().collect();
        users.sort();
        (self.store.secret(ARN).versions, users, self.dbs.server(&self.host_port()).mirrors)
    }
}

impl FakeStore {
    fn with_secret_mut(&self, id: &str, f: impl FnOnce(&mut FakeSecret)) {
        let mut secrets = self.secrets.lock().unwrap();
        let secret = secrets.values_mut().find(|s| s.arn == id).expect("secret");
        f(secret);
    }
}

fn secret(arn: &str, document: &Value) -> FakeSecret {
    FakeSecret {
        arn: arn.to_owned(),
        rotation_enabled: true,
        versions: BTreeMap::from([(V0.to_owned(), FakeVersion { value: Some(document.to_string()), stages: vec![AWSCURRENT.into()] })]),
        tags: BTreeMap::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Full rotations

#[tokio::test]
async fn single_user_rotations_change_the_password_and_keep_everything_else() {
    for engine in ["mysql", "mariadb", "aurora-mysql", "postgres", "aurora-postgresql"] {
        let world = World::new(engine, Strategy::SingleUser);
        let mut previous = world.document(V0);
        for n in 1..=3 {
            let t = token(n);
            world.rotate(&t).await;
            assert_eq!(world.current_id(), t, "{engine}");
            assert!(world.pending_ids().is_empty(), "{engine}: AWSPENDING must not be left behind");
            assert_eq!(world.store.stages(ARN, &token(n - 1).replace(&token(0), V0)), vec![AWSPREVIOUS.to_owned()], "{engine}");
            let current = world.document(&t);
            assert!(world.logs_in(&current), "{engine}: the new AWSCURRENT must log in");
            assert!(!world.logs_in(&previous), "{engine}: the old password must no longer log in");
            assert_eq!(current["username"], "app");
            assert_eq!(current["team"]["owner"], "x", "unknown keys survive");
            assert_eq!(current["port"], json!(port(engine).to_string()), "the port keeps its JSON type");
            let password = current["password"].as_str().unwrap();
            assert_eq!(password.len(), 32);
            let excluded = if engine.contains("postgres") { ":/@\"'\\" } else { "/@\"'\\" };
            assert!(!password.contains(|c| excluded.contains(c)), "{engine}: {excluded}");
            previous = current;
        }
    }
}

#[tokio::test]
async fn alternating_rotations_switch_users_and_both_keep_working() {
    for engine in ["mysql", "postgres"] {
        let world = World::new(engine, Strategy::AlternatingUsers);
        let mut expected_user = "app";
        let mut documents = vec![world.document(V0)];
        for n in 1..=4 {
            let t = token(n);
            world.rotate(&t).await;
            let current = world.document(&t);
            let source = expected_user;
            expected_user = if expected_user == "app" { "app_clone" } else { "app" };
            assert_eq!(current["username"], expected_user, "{engine} rotation {n}");
            assert!(world.logs_in(&current));
            // The version before is the other user, and it still logs in.
            assert!(world.logs_in(documents.last().unwrap()), "{engine}: the previous user keeps working");
            let mirrors = world.dbs.server(&world.host_port()).mirrors;
            assert_eq!(mirrors.last().unwrap(), &(expected_user.to_owned(), source.to_owned()), "the clone copies the current user");
            assert!(world.pending_ids().is_empty());
            documents.push(current);
        }
        assert_eq!(world.dbs.server(&world.host_port()).users.get("admin").map(String::as_str), Some("master-pw"), "the master is never changed");
    }
}

#[tokio::test]
async fn a_rotation_makes_the_calls_the_budget_allows() {
    let world = World::new("mysql", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    let before = world.store.calls();
    for step in Step::ALL {
        world.ok(step, &t).await;
    }
    let calls = world.store.calls();
    // One DescribeSecret per step, one write for the value, two stage moves. The reads are
    // counted here without the SDK store's version cache (which serves all but the first
    // AWSCURRENT and the pending probe in a warm process): 1 + 1 in createSecret, 2 in setSecret,
    // 1 in testSecret, 1 in finishSecret.
    assert_eq!(calls.describe - before.describe, 4);
    assert_eq!(calls.put - before.put, 1);
    assert_eq!(calls.update - before.update, 2);
    assert_eq!(calls.get - before.get, 6);
}

// ---------------------------------------------------------------------------------------------
// The preamble

#[tokio::test]
async fn a_disabled_rotation_is_refused_before_anything_is_read() {
    let world = World::new("mysql", Strategy::SingleUser);
    world.start_rotation(&token(1));
    world.store.with_secret_mut(ARN, |s| s.rotation_enabled = false);
    let before = world.snapshot();
    for step in Step::ALL {
        let err = world.err(step, &token(1)).await;
        assert_eq!(err.class, ErrorClass::State);
        assert!(err.message.contains("not enabled for rotation"), "{err}");
    }
    assert_eq!(world.store.calls().get, 0);
    assert_eq!(world.snapshot(), before);
}

#[tokio::test]
async fn a_token_that_is_not_a_version_or_has_no_stage_is_refused() {
    let world = World::new("postgres", Strategy::SingleUser);
    let err = world.err(Step::CreateSecret, &token(9)).await;
    assert!(err.message.contains("not a version"), "{err}");
    world.store.with_secret_mut(ARN, |s| {
        s.versions.insert(token(8), FakeVersion { value: Some("{}".into()), stages: vec![] });
    });
    let err = world.err(Step::SetSecret, &token(8)).await;
    assert!(err.message.contains("no stage for rotation"), "{err}");
}

#[tokio::test]
async fn a_token_that_is_already_current_is_a_success_for_every_step() {
    let world = World::new("mysql", Strategy::SingleUser);
    let before = world.snapshot();
    for step in Step::ALL {
        assert_eq!(world.ok(step, V0).await, Outcome::AlreadyCurrent, "{step}");
    }
    assert_eq!(world.snapshot(), before);
}

#[tokio::test]
async fn a_pending_version_of_another_token_is_reported_and_left_alone() {
    let world = World::new("mysql", Strategy::SingleUser);
    world.start_rotation(&token(1));
    world.ok(Step::CreateSecret, &token(1)).await;
    // A stray version that is neither current nor pending (AWSPREVIOUS, say).
    world.store.with_secret_mut(ARN, |s| {
        s.versions.insert(token(2), FakeVersion { value: Some("{}".into()), stages: vec!["CUSTOM".into()] });
    });
    let before = world.snapshot();
    for step in Step::ALL {
        let err = world.err(step, &token(2)).await;
        assert_eq!(err.class, ErrorClass::State);
        assert!(err.message.contains("not set as AWSPENDING"), "{err}");
        assert!(err.message.contains(&token(1)), "names the other rotation's version: {err}");
    }
    assert_eq!(world.snapshot(), before);
    assert_eq!(world.pending_ids(), vec![token(1)]);
}

#[tokio::test]
async fn malformed_events_and_unknown_steps_are_refused_without_a_call() {
    let world = World::new("mysql", Strategy::SingleUser);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (event, field) in [
        (json!({"Step": "rotateSecret", "SecretId": ARN, "ClientRequestToken": token(1)}), "Step"),
        (json!({"Step": "createSecret", "ClientRequestToken": token(1)}), "SecretId"),
        (json!({"Step": "createSecret", "SecretId": ARN, "ClientRequestToken": 7}), "ClientRequestToken"),
        (json!("createSecret"), "event"),
    ] {
        let err = world.rotator().run(&event, deadline).await.result.unwrap_err();
        assert_eq!(err.class, ErrorClass::Input);
        assert!(err.message.contains(field), "{err}");
    }
    assert_eq!(world.store.calls().total(), 0);
}

// ---------------------------------------------------------------------------------------------
// createSecret

#[tokio::test]
async fn create_secret_never_replaces_a_pending_value() {
    let world = World::new("mysql", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    assert_eq!(world.ok(Step::CreateSecret, &t).await, Outcome::Created);
    let first = world.store.value(ARN, &t).unwrap();
    assert_eq!(world.ok(Step::CreateSecret, &t).await, Outcome::AlreadyCreated);
    assert_eq!(world.store.value(ARN, &t).unwrap(), first);
    assert_eq!(world.store.calls().put, 1);
}

#[tokio::test]
async fn create_secret_reports_a_pending_value_it_cannot_read_and_keeps_it() {
    let world = World::new("mysql", Strategy::SingleUser);
    let t = token(1);
    world.store.with_secret_mut(ARN, |s| {
        s.versions.insert(t.clone(), FakeVersion { value: Some("not json".into()), stages: vec![AWSPENDING.into()] });
    });
    let err = world.err(Step::CreateSecret, &t).await;
    assert_eq!(err.class, ErrorClass::State);
    assert!(err.message.contains("cancel"), "{err}");
    assert_eq!(world.store.value(ARN, &t).as_deref(), Some("not json"));
}

#[tokio::test]
async fn create_secret_interrupted_after_the_write_converges() {
    let world = World::new("postgres", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    world.store.fail_next(Fault::Put { after: true });
    let err = world.err(Step::CreateSecret, &t).await;
    assert!(err.is_retryable(), "{err}");
    let written = world.store.value(ARN, &t).unwrap();
    assert_eq!(world.ok(Step::CreateSecret, &t).await, Outcome::AlreadyCreated);
    assert_eq!(world.store.value(ARN, &t).unwrap(), written);
    for step in [Step::SetSecret, Step::TestSecret, Step::FinishSecret] {
        world.ok(step, &t).await;
    }
    assert!(world.logs_in(&world.document(&t)));
}

#[tokio::test]
async fn create_secret_passes_the_rotation_token() {
    // The fake checks nothing about the token; this proves the event's token reaches the store.
    struct Recording(FakeStore, std::sync::Mutex<Option<String>>);
    #[async_trait::async_trait]
    impl dbcreds_aws::SecretStore for Recording {
        async fn describe(&self, id: &str) -> Result<dbcreds_aws::SecretMetadata, dbcreds_aws::AwsError> {
            self.0.describe(id).await
        }
        async fn get_value(&self, id: &str, s: dbcreds_aws::VersionSelector) -> Result<dbcreds_aws::SecretVersion, dbcreds_aws::AwsError> {
            self.0.get_value(id, s).await
        }
        async fn put_value(&self, id: &str, v: &str, value: &dbcreds_core::SecretString, stages: &[&str], rt: Option<&str>) -> Result<(), dbcreds_aws::AwsError> {
            *self.1.lock().unwrap() = rt.map(str::to_owned);
            self.0.put_value(id, v, value, stages, rt).await
        }
        async fn update_stage(&self, id: &str, s: &str, to: Option<&str>, from: Option<&str>) -> Result<(), dbcreds_aws::AwsError> {
            self.0.update_stage(id, s, to, from).await
        }
    }
    let world = World::new("mysql", Strategy::SingleUser);
    world.start_rotation(&token(1));
    let recording = Recording(std::mem::take(&mut *Box::new(world.store)), Default::default());
    let rotator = Rotator { store: &recording, databases: &world.dbs, endpoints: None, config: &world.config };
    let event = json!({"Step": "createSecret", "SecretId": ARN, "ClientRequestToken": token(1), "RotationToken": "rt-42"});
    rotator.run(&event, Instant::now() + Duration::from_secs(5)).await.result.unwrap();
    assert_eq!(recording.1.lock().unwrap().as_deref(), Some("rt-42"));
}

// ---------------------------------------------------------------------------------------------
// Hostile and malformed secrets: a clear error, nothing changed

#[tokio::test]
async fn hostile_or_incomplete_secrets_change_nothing() {
    let base = json!({"engine": "mysql", "host": HOST, "port": 3306, "username": "app", "password": "old-pw", "masterarn": MASTER_ARN});
    let mut cases: Vec<(Value, &str, Strategy)> = vec![];
    for (user, strategy) in [("app'; DROP USER root; --", Strategy::SingleUser), ("app`x", Strategy::SingleUser), ("a\"b", Strategy::AlternatingUsers), (&*"a".repeat(33), Strategy::SingleUser), (&*"a".repeat(27), Strategy::AlternatingUsers)] {
        let mut doc = base.clone();
        doc["username"] = json!(user);
        cases.push((doc, "AWSCURRENT.username", strategy));
    }
    for key in ["engine", "host", "username", "password"] {
        let mut doc = base.clone();
        doc.as_object_mut().unwrap().remove(key);
        cases.push((doc, key, Strategy::SingleUser));
    }
    let mut doc = base.clone();
    doc["engine"] = json!("oracle");
    cases.push((doc, "AWSCURRENT.engine", Strategy::SingleUser));
    let mut doc = base.clone();
    doc["port"] = json!("33o6");
    cases.push((doc, "AWSCURRENT.port", Strategy::SingleUser));
    let mut doc = base.clone();
    doc.as_object_mut().unwrap().remove("masterarn");
    cases.push((doc, "AWSCURRENT.masterarn", Strategy::AlternatingUsers));

    for (document, field, strategy) in cases {
        let world = World::new("mysql", strategy);
        world.store.with_secret_mut(ARN, |s| s.versions.get_mut(V0).unwrap().value = Some(document.to_string()));
        world.start_rotation(&token(1));
        let before = world.snapshot();
        for step in [Step::CreateSecret, Step::SetSecret] {
            let err = world.err(step, &token(1)).await;
            assert_eq!(err.class, ErrorClass::Input, "{document}: {err}");
            assert!(err.message.contains(field), "{document}: expected {field} in {err}");
        }
        assert_eq!(world.snapshot(), before, "{document}");
        assert!(world.dbs.logins.lock().unwrap().is_empty(), "no login was attempted for {document}");
    }
}

#[tokio::test]
async fn a_pending_version_for_another_user_or_host_is_refused() {
    let world = World::new("mysql", Strategy::SingleUser);
    let t = token(1);
    world.store.with_secret_mut(ARN, |s| {
        let doc = json!({"engine": "mysql", "host": "evil.example.com", "username": "app", "password": "x"});
        s.versions.insert(t.clone(), FakeVersion { value: Some(doc.to_string()), stages: vec![AWSPENDING.into()] });
    });
    let before = world.snapshot();
    let err = world.err(Step::SetSecret, &t).await;
    assert!(err.message.contains("AWSPENDING.host"), "{err}");
    world.store.with_secret_mut(ARN, |s| {
        let doc = json!({"engine": "mysql", "host": HOST, "username": "root", "password": "x"});
        s.versions.get_mut(&t).unwrap().value = Some(doc.to_string());
    });
    let err = world.err(Step::SetSecret, &t).await;
    assert!(err.message.contains("AWSPENDING.username"), "{err}");
    assert_eq!(world.snapshot().1, before.1, "the database is unchanged");
}

// ---------------------------------------------------------------------------------------------
// setSecret, single user

#[tokio::test]
async fn set_secret_is_idempotent() {
    let world = World::new("postgres", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    assert_eq!(world.ok(Step::SetSecret, &t).await, Outcome::PasswordChanged { with: AWSCURRENT });
    assert_eq!(world.ok(Step::SetSecret, &t).await, Outcome::AlreadySet);
    assert_eq!(world.ok(Step::TestSecret, &t).await, Outcome::Tested);
    assert_eq!(world.ok(Step::TestSecret, &t).await, Outcome::Tested);
    assert_eq!(world.ok(Step::FinishSecret, &t).await, Outcome::Finished);
    assert_eq!(world.ok(Step::FinishSecret, &t).await, Outcome::AlreadyCurrent);
}

#[tokio::test]
async fn set_secret_falls_back_to_the_previous_version() {
    let world = World::new("mysql", Strategy::SingleUser);
    world.rotate(&token(1)).await;
    // Someone restored the old password in the database: AWSCURRENT no longer logs in.
    world.dbs.servers.lock().unwrap().get_mut(&world.host_port()).unwrap().users.insert("app".into(), "old-pw".into());
    let t = token(2);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    assert_eq!(world.ok(Step::SetSecret, &t).await, Outcome::PasswordChanged { with: AWSPREVIOUS });
    world.ok(Step::TestSecret, &t).await;
    world.ok(Step::FinishSecret, &t).await;
    assert!(world.logs_in(&world.document(&t)));
}

#[tokio::test]
async fn a_malformed_previous_version_is_skipped_not_a_crash() {
    let world = World::new("mysql", Strategy::SingleUser);
    world.rotate(&token(1)).await;
    world.store.with_secret_mut(ARN, |s| s.versions.get_mut(V0).unwrap().value = Some("{\"username\": 5".into()));
    // With a working AWSCURRENT the malformed AWSPREVIOUS is never needed.
    world.rotate(&token(2)).await;
    // AWSPREVIOUS is now token 1; make it malformed and AWSCURRENT wrong in the database.
    world.store.with_secret_mut(ARN, |s| s.versions.get_mut(&token(1)).unwrap().value = Some("[]".into()));
    world.dbs.servers.lock().unwrap().get_mut(&world.host_port()).unwrap().users.insert("app".into(), "someone-else-set-this".into());
    let t = token(3);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    let before = world.snapshot();
    let err = world.err(Step::SetSecret, &t).await;
    assert_eq!(err.class, ErrorClass::Authentication);
    assert!(err.message.contains("Unable to log into database with previous, current, or pending secret"), "{err}");
    assert_eq!(world.snapshot(), before);
}

#[tokio::test]
async fn a_network_or_tls_failure_is_reported_as_such_without_trying_other_logins() {
    let world = World::new("mysql", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    *world.dbs.broken.lock().unwrap() = Some(ErrorClass::TlsVerification);
    let err = world.err(Step::SetSecret, &t).await;
    assert_eq!(err.class, ErrorClass::TlsVerification, "{err}");
    assert!(err.message.contains("AWSPENDING"), "{err}");
    *world.dbs.broken.lock().unwrap() = None;
    assert_eq!(world.ok(Step::SetSecret, &t).await, Outcome::PasswordChanged { with: AWSCURRENT });
}

// ---------------------------------------------------------------------------------------------
// setSecret, alternating users

#[tokio::test]
async fn alternating_refuses_when_the_current_credentials_do_not_log_in() {
    let world = World::new("postgres", Strategy::AlternatingUsers);
    let t = token(1);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    world.dbs.servers.lock().unwrap().get_mut(&world.host_port()).unwrap().users.insert("app".into(), "changed".into());
    let before = world.snapshot();
    let err = world.err(Step::SetSecret, &t).await;
    assert_eq!(err.class, ErrorClass::Authentication);
    assert!(err.message.contains("confused-deputy"), "{err}");
    assert_eq!(world.snapshot(), before, "no mirror, no password change");
}

#[tokio::test]
async fn alternating_refuses_a_master_for_another_database_or_the_master_itself() {
    let world = World::new("mysql", Strategy::AlternatingUsers);
    let t = token(1);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    world.store.with_secret_mut(MASTER_ARN, |s| {
        let doc = json!({"engine": "mysql", "host": "other.example.com", "username": "admin", "password": "master-pw"});
        s.versions.get_mut(V0).unwrap().value = Some(doc.to_string());
    });
    let before = world.snapshot();
    let err = world.err(Step::SetSecret, &t).await;
    assert!(err.message.contains("master secret.host"), "{err}");
    world.store.with_secret_mut(MASTER_ARN, |s| {
        let doc = json!({"engine": "postgres", "host": HOST, "port": 3306, "username": "admin", "password": "master-pw"});
        s.versions.get_mut(V0).unwrap().value = Some(doc.to_string());
    });
    let err = world.err(Step::SetSecret, &t).await;
    assert!(err.message.contains("master secret.engine"), "{err}");
    world.store.with_secret_mut(MASTER_ARN, |s| {
        let doc = json!({"engine": "mysql", "host": HOST, "username": "app", "password": "old-pw"});
        s.versions.get_mut(V0).unwrap().value = Some(doc.to_string());
    });
    let err = world.err(Step::SetSecret, &t).await;
    assert!(err.message.contains("master user"), "{err}");
    assert_eq!(world.snapshot(), before);
}

#[tokio::test]
async fn alternating_interrupted_mirror_converges_on_the_rerun() {
    let world = World::new("mysql", Strategy::AlternatingUsers);
    let t = token(1);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    *world.dbs.interrupt_next_mirror.lock().unwrap() = true;
    let err = world.err(Step::SetSecret, &t).await;
    assert!(err.is_retryable(), "{err}");
    // The password is in place but the grants are not: the rerun must mirror again.
    assert!(world.logs_in(&world.document(&t)));
    assert!(!world.dbs.server(&world.host_port()).grants_in_step.contains(&"app_clone".to_owned()));
    match world.ok(Step::SetSecret, &t).await {
        Outcome::Mirrored { pending_already_logged_in, .. } => assert!(pending_already_logged_in),
        other => panic!("{other}"),
    }
    assert!(world.dbs.server(&world.host_port()).grants_in_step.contains(&"app_clone".to_owned()));
}

#[tokio::test]
async fn alternating_converges_a_clone_that_has_its_password_but_no_grants() {
    let world = World::new("mysql", Strategy::AlternatingUsers);
    let t = token(1);
    world.start_rotation(&t);
    world.ok(Step::CreateSecret, &t).await;
    // A crash after the clone's password, before its grants: it authenticates, then is refused
    // the database (permission). That must not stop the step.
    let pending = world.document(&t);
    world.dbs.servers.lock().unwrap().get_mut(&world.host_port()).unwrap().users.insert("app_clone".into(), pending["password"].as_str().unwrap().into());
    world.dbs.no_access.lock().unwrap().push("app_clone".into());
    match world.ok(Step::SetSecret, &t).await {
        Outcome::Mirrored { pending_already_logged_in, .. } => assert!(pending_already_logged_in),
        other => panic!("{other}"),
    }
    assert_eq!(world.ok(Step::TestSecret, &t).await, Outcome::Tested);
}

#[tokio::test]
async fn alternating_with_an_rds_managed_master_finds_the_host_through_rds() {
    let mut world = World::new("postgres", Strategy::AlternatingUsers);
    let instance = "arn:aws:rds:eu-west-1:111122223333:db:prod";
    world.store.with_secret_mut(MASTER_ARN, |s| {
        s.versions.get_mut(V0).unwrap().value = Some(json!({"username": "admin", "password": "master-pw"}).to_string());
        s.tags.insert("aws:rds:primaryDBInstanceArn".into(), instance.into());
    });
    world.rds.endpoints.insert(
        instance.into(),
        DatabaseEndpoint { host: HOST.into(), port: 5432, engine: Some(Engine::Postgres), engine_name: "postgres".into(), resource_arn: instance.into() },
    );
    world.rotate(&token(1)).await;
    assert_eq!(world.document(&token(1))["username"], "app_clone");
    assert!(world.logs_in(&world.document(&token(1))));

    // The same master pointing elsewhere is refused.
    world.rds.endpoints.get_mut(instance).unwrap().host = "elsewhere.example.com".into();
    world.start_rotation(&token(2));
    world.ok(Step::CreateSecret, &token(2)).await;
    let err = world.err(Step::SetSecret, &token(2)).await;
    assert!(err.message.contains("master secret.host"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// finishSecret

#[tokio::test]
async fn finish_interrupted_between_its_two_calls_converges() {
    for after in [false, true] {
        let world = World::new("mysql", Strategy::SingleUser);
        let t = token(1);
        world.start_rotation(&t);
        for step in [Step::CreateSecret, Step::SetSecret, Step::TestSecret] {
            world.ok(step, &t).await;
        }
        // Fails removing AWSPENDING (before or after the service applied it).
        world.store.fail_next(Fault::UpdateStage { stage: AWSPENDING, after });
        let err = world.err(Step::FinishSecret, &t).await;
        assert!(err.is_retryable(), "{err}");
        assert_eq!(world.current_id(), t);
        let outcome = world.ok(Step::FinishSecret, &t).await;
        assert_eq!(outcome, if after { Outcome::AlreadyCurrent } else { Outcome::PendingCleared });
        assert!(world.pending_ids().is_empty());
        assert_eq!(world.store.stages(ARN, V0), vec![AWSPREVIOUS.to_owned()]);
    }
}

#[tokio::test]
async fn finish_interrupted_while_moving_current_converges() {
    let world = World::new("postgres", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    for step in [Step::CreateSecret, Step::SetSecret, Step::TestSecret] {
        world.ok(step, &t).await;
    }
    world.store.fail_next(Fault::UpdateStage { stage: AWSCURRENT, after: true });
    world.err(Step::FinishSecret, &t).await;
    assert_eq!(world.ok(Step::FinishSecret, &t).await, Outcome::PendingCleared);
    assert!(world.pending_ids().is_empty());
    assert_eq!(world.current_id(), t);
}

// ---------------------------------------------------------------------------------------------
// The deadline

#[tokio::test]
async fn a_spent_deadline_fails_cleanly_and_changes_nothing() {
    let world = World::new("mysql", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    let before = world.snapshot();
    for step in Step::ALL {
        let report = world.step_by(step, &t, Instant::now()).await;
        let err = report.result.unwrap_err();
        assert_eq!(err.class, ErrorClass::Deadline, "{step}: {err}");
        assert!(err.is_retryable());
    }
    assert_eq!(world.store.calls().total(), 0, "nothing is started without time to finish it");
    assert_eq!(world.snapshot(), before);
}

#[tokio::test]
async fn reports_carry_what_the_log_line_needs() {
    let world = World::new("postgres", Strategy::SingleUser);
    let t = token(1);
    world.start_rotation(&t);
    let report = world.step(Step::CreateSecret, &t).await;
    assert_eq!(report.info.secret_arn.as_deref(), Some(ARN));
    assert_eq!(report.info.version.as_deref(), Some(t.as_str()));
    assert_eq!(report.info.engine.as_deref(), Some("postgres"));
    assert_eq!(report.info.host.as_deref(), Some(HOST));
    let debug = format!("{report:?}");
    let pending = world.document(&t);
    assert!(!debug.contains(pending["password"].as_str().unwrap()), "no password in the report");
}

// ---------------------------------------------------------------------------------------------
// A rotation started by a caller that runs the steps itself (the operator CLI)

#[tokio::test]
async fn start_creates_the_pending_version_and_the_other_steps_finish_the_rotation() {
    for strategy in [Strategy::SingleUser, Strategy::AlternatingUsers] {
        let world = World::new("postgres", strategy);
        let t = token(1);
        let report = world.rotator().start(ARN, &t, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(report.result.expect("started"), Outcome::Created);
        assert_eq!(world.pending_ids(), vec![t.clone()]);
        for step in [Step::SetSecret, Step::TestSecret, Step::FinishSecret] {
            world.ok(step, &t).await;
        }
        assert_eq!(world.current_id(), t);
        assert!(world.logs_in(&world.document(&t)));
    }
}

#[tokio::test]
async fn start_refuses_a_rotation_in_progress_a_disabled_rotation_and_a_used_token() {
    let world = World::new("mysql", Strategy::SingleUser);
    let deadline = Instant::now() + Duration::from_secs(30);
    world.start_rotation(&token(1));
    let before = world.snapshot();
    let err = world.rotator().start(ARN, &token(2), deadline).await.result.unwrap_err();
    assert_eq!(err.class, ErrorClass::State);
    assert!(err.message.contains("isn't complete") && err.message.contains(&token(1)), "{err}");
    assert_eq!(world.snapshot(), before);

    let world = World::new("mysql", Strategy::SingleUser);
    world.store.with_secret_mut(ARN, |s| s.rotation_enabled = false);
    let err = world.rotator().start(ARN, &token(2), deadline).await.result.unwrap_err();
    assert!(err.message.contains("not enabled for rotation"), "{err}");

    let world = World::new("mysql", Strategy::SingleUser);
    let err = world.rotator().start(ARN, V0, deadline).await.result.unwrap_err();
    assert_eq!(err.class, ErrorClass::Input);
    assert!(err.message.contains("already exists"), "{err}");
    let err = world.rotator().start(ARN, "short", deadline).await.result.unwrap_err();
    assert_eq!(err.class, ErrorClass::Input);
    assert!(world.pending_ids().is_empty());
}
