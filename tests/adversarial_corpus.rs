//! The adversarial input corpus through the real binaries (issue 7): every case of
//! `tests/corpus/{rotator,provisioner,connection-test}.json` against real MariaDB and
//! PostgreSQL with verified TLS and moto. Each case must be refused with a clear error that names
//! the field (and whatever else the case lists), forge no log line, carry no secret, and change
//! nothing (`tests/corpus/snapshot.rs`): the database's users, password hashes and grants are
//! compared before and after every case, the versions of the
//! secrets a case reads before and after it, and every version of every secret before the first
//! case and after the last.
//!
//! One world per engine (a server, moto, the three functions), started once. Every case's
//! secrets (and rotations) are made first, so that nothing but the cases runs between the
//! snapshots.

mod corpus;
mod provisioner_support;

use corpus::cases::{Bindings, Case, check_refusal, count_by_kind, expand, expand_text, load, patched};
use corpus::snapshot;
use dbcreds_testenv::{Invocation, LambdaFunction, Moto, Outcome, moto_rotation};
use provisioner_support::{Answer, Harness, Server, unique};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const DATABASE: &str = "appdb";
/// The good user every rotator and connection-test case starts from; it exists on the server.
const USER: &str = "corpus_app";
const PASSWORD: &str = "Corpus-Pw-7f3a9c1e2b!#%^*(-_=+";

struct World {
    server: Server,
    harness: Harness,
    master_arn: String,
    rotator_single: LambdaFunction,
    rotator_alternating: LambdaFunction,
    provisioner: LambdaFunction,
    connection_test: LambdaFunction,
    /// Every secret value this world wrote: none may appear in an error or a log.
    secrets: Vec<String>,
    /// Last: outlives the harness and functions that use it.
    _moto: Moto,
}

/// Which function a case is for.
#[derive(Clone, Copy, PartialEq)]
enum Function {
    RotatorSingle,
    RotatorAlternating,
    Provisioner,
    ConnectionTest,
}

/// What is sent: text that is not JSON, an event, or a CloudFormation request (answered at its
/// ResponseURL, `name`).
enum Request {
    Raw(String),
    Event(Value),
    CustomResource { event: Value, name: String },
}

/// A case with everything it needs made: what to send, to which function, and the secrets it
/// reads (snapshotted before and after it).
struct Ready<'c> {
    case: &'c Case,
    function: Function,
    request: Request,
    watched: Vec<String>,
}

/// What came back.
enum Reply {
    Invocation(Invocation),
    Answer(Answer),
}

impl Reply {
    fn logs(&self) -> &str {
        match self {
            Reply::Invocation(invocation) => &invocation.logs,
            Reply::Answer(answer) => &answer.invocation.logs,
        }
    }
}

impl World {
    async fn start(server: Server) -> World {
        let moto = Moto::start().await;
        let harness = Harness::sharing(&moto).await;
        match &server {
            Server::MariaDb(_) => {
                server.as_master("mysql", &format!("CREATE DATABASE {DATABASE}")).await;
                server.as_master("mysql", &format!("CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL")).await;
                server.as_master("mysql", &format!("GRANT SELECT ON {DATABASE}.* TO '{USER}'@'%'")).await;
            }
            Server::Postgres { .. } => {
                server.as_master("postgres", &format!("CREATE DATABASE {DATABASE}")).await;
                server.as_master("postgres", &format!("CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")).await;
                server.as_master("postgres", &format!("GRANT CONNECT ON DATABASE {DATABASE} TO {USER}")).await;
            }
        }
        let master_arn = harness.create_secret(&server.master_document()).await;
        let function_env = |extra: &[(&str, &str)]| {
            let mut env = moto.env();
            env.push(("DB_CA_BUNDLE".into(), server.ca_pem_path().display().to_string()));
            env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            env
        };
        let rotator_single = LambdaFunction::start("rotator", function_env(&[("ROTATION_STRATEGY", "single-user")])).await;
        let rotator_alternating = LambdaFunction::start("rotator", function_env(&[("ROTATION_STRATEGY", "alternating-users")])).await;
        let provisioner = harness.function(&server).await;
        let connection_test = LambdaFunction::start("connection-test", function_env(&[("AUTH_MODE", "secret")])).await;
        let secrets = vec![PASSWORD.to_owned(), server.master_password().to_owned()];
        World {
            server,
            harness,
            master_arn,
            rotator_single,
            rotator_alternating,
            provisioner,
            connection_test,
            secrets,
            _moto: moto,
        }
    }

    fn engine(&self) -> &'static str {
        self.server.engine()
    }

    /// The good user's secret document (AWS's full JSON, with the master for alternating users).
    fn good_document(&self) -> Value {
        json!({
            "engine": self.server.engine(), "host": self.server.host(), "port": self.server.port(),
            "username": USER, "password": PASSWORD, "dbname": DATABASE, "masterarn": self.master_arn,
        })
    }

    /// A new secret named after the case (so a change found at the end names it).
    async fn put_secret(&mut self, case: &str, value: &str) -> String {
        self.secrets.push(value.to_owned());
        let out = self.harness.sm.create_secret().name(unique(&format!("corpus-{case}"))).secret_string(value).send().await.expect("CreateSecret");
        out.arn.expect("an ARN")
    }

    /// The case's own secret: `raw_<key>` as is, or the good document patched by `<key>`;
    /// `None` when the case has neither.
    async fn case_secret(&mut self, case: &Case, key: &str, good: &Value) -> Option<String> {
        let text = match (case.str(&format!("raw_{key}")), case.get(key)) {
            (Some(raw), _) => raw.to_owned(),
            (None, Some(patch)) => patched(good, Some(&expand(patch, &Bindings::new()))).to_string(),
            (None, None) => return None,
        };
        Some(self.put_secret(&case.name, &text).await)
    }

    fn function(&mut self, function: Function) -> &mut LambdaFunction {
        match function {
            Function::RotatorSingle => &mut self.rotator_single,
            Function::RotatorAlternating => &mut self.rotator_alternating,
            Function::Provisioner => &mut self.provisioner,
            Function::ConnectionTest => &mut self.connection_test,
        }
    }

    async fn send(&mut self, function: Function, request: Request) -> Reply {
        match request {
            Request::Raw(text) => Reply::Invocation(self.function(function).invoke_raw(text, TIMEOUT).await),
            Request::Event(event) => Reply::Invocation(self.function(function).invoke(event, TIMEOUT).await),
            Request::CustomResource { event, name } => Reply::Answer(self.harness.deliver(&mut self.provisioner, event, &name, TIMEOUT).await),
        }
    }
}

/// The cases of `file` that run against this engine.
fn cases_for(file: &str, engine: &str) -> Vec<Case> {
    load(file).into_iter().filter(|c| c.engines().iter().any(|e| e == engine)).collect()
}

/// The case's request: `raw_event` text, else `event` expanded, else `default`.
fn request(case: &Case, bindings: &Bindings, default: Value) -> Request {
    match (case.str("raw_event"), case.get("event")) {
        (Some(raw), _) => Request::Raw(expand_text(raw, bindings)),
        (None, Some(event)) => Request::Event(expand(event, bindings)),
        (None, None) => Request::Event(default),
    }
}

// ---------------------------------------------------------------------------------------------
// The rotator: a Lambda error of type dbcreds.input (unless the case says otherwise)

async fn prepare_rotator<'c>(world: &mut World, cases: &'c [Case]) -> Vec<Ready<'c>> {
    // The secret the event cases run against: two versions (so one is AWSPREVIOUS, neither
    // current nor pending) and a rotation started.
    let shared = world.put_secret("rotator-shared", &world.good_document().to_string()).await;
    world.harness.sm.put_secret_value().secret_id(&shared).secret_string(world.good_document().to_string()).send().await.expect("PutSecretValue");
    let shared_token = moto_rotation::new_token();
    moto_rotation::start_rotation(&world.harness.sm, &shared, &shared_token).await.unwrap_or_else(|p| panic!("{p}"));
    let stages = moto_rotation::version_stages(&world.harness.sm, &shared).await.unwrap_or_else(|p| panic!("{p}"));
    let previous = stages.iter().find(|(_, s)| s.iter().any(|x| x == "AWSPREVIOUS")).map(|(id, _)| id.clone()).expect("an AWSPREVIOUS version");

    let mut ready = Vec::new();
    for case in cases {
        let function = if case.str("strategy") == Some("alternating-users") { Function::RotatorAlternating } else { Function::RotatorSingle };
        let master = world.case_secret(case, "master", &world.server.master_document()).await;
        let mut good = world.good_document();
        if let Some(master) = &master {
            good["masterarn"] = json!(master);
        }
        let own = match world.case_secret(case, "secret", &good).await {
            Some(arn) => Some(arn),
            None if master.is_some() => Some(world.put_secret(&case.name, &good.to_string()).await),
            None => None,
        };
        let (arn, token) = match own {
            Some(arn) => {
                let token = moto_rotation::new_token();
                moto_rotation::start_rotation(&world.harness.sm, &arn, &token).await.unwrap_or_else(|p| panic!("{p}"));
                (arn, token)
            }
            None => (shared.clone(), shared_token.clone()),
        };
        let step = if master.is_some() {
            // A hostile master is only read by setSecret: createSecret must work first.
            let event = json!({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": token});
            let created = world.function(function).invoke(event, TIMEOUT).await;
            assert!(matches!(created.outcome, Outcome::Ok(_)), "{}: createSecret before the hostile master: {:?}\n{}", case.name, created.outcome, created.logs);
            "setSecret"
        } else {
            "createSecret"
        };
        let bindings: Bindings = [("arn", json!(arn)), ("token", json!(token)), ("previous", json!(previous))].into_iter().collect();
        let request = request(case, &bindings, json!({"Step": step, "SecretId": arn, "ClientRequestToken": token}));
        let watched = [Some(arn), master, Some(world.master_arn.clone())].into_iter().flatten().collect();
        ready.push(Ready { case, function, request, watched });
    }
    ready
}

fn judge_rotator(case: &Case, what: &str, reply: &Reply) -> String {
    let Reply::Invocation(invocation) = reply else { unreachable!("the rotator is invoked directly") };
    lambda_error(case, what, invocation, "dbcreds.input")
}

/// A Lambda error of `error_type` (`"any"`: whatever the runtime reports); its message.
fn lambda_error(case: &Case, what: &str, invocation: &Invocation, default_type: &str) -> String {
    match &invocation.outcome {
        Outcome::Err { error_type, error_message } => {
            let wanted = case.str("error_type").unwrap_or(default_type);
            assert!(wanted == "any" || error_type == wanted, "{} ({what}): error type {error_type}, wanted {wanted}: {error_message}", case.name);
            error_message.clone()
        }
        other => panic!("{} ({what}): the input must be refused, got {other:?}\nlogs:\n{}", case.name, invocation.logs),
    }
}

// ---------------------------------------------------------------------------------------------
// The provisioner: exactly one FAILED answer (the harness checks the protocol), or a failed
// invocation when the event is not JSON at all

async fn prepare_provisioner<'c>(world: &mut World, cases: &'c [Case]) -> Vec<Ready<'c>> {
    let mut ready = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let master = match world.case_secret(case, "master", &world.server.master_document()).await {
            Some(arn) => arn,
            None => world.master_arn.clone(),
        };
        // A user that does not exist: a Create that wrongly went ahead would make it.
        let good_user = json!({"username": format!("corpus_new_{n}"), "password": format!("Corpus-New-{n}-{}", unique("pw").replace('-', ""))});
        let user_secret = match world.case_secret(case, "user_secret", &good_user).await {
            Some(arn) => arn,
            None => world.put_secret(&case.name, &good_user.to_string()).await,
        };
        let bindings: Bindings = [("master", json!(master)), ("user_secret", json!(user_secret)), ("port", json!(world.server.port()))].into_iter().collect();
        let user = patched(&json!({"SecretArn": user_secret, "Privileges": "readonly"}), case.get("user").map(|p| expand(p, &bindings)).as_ref());
        let properties = json!({"MasterSecretArn": master, "DatabaseName": DATABASE, "Users": [user]});
        let properties = patched(&properties, case.get("properties").map(|p| expand(p, &bindings)).as_ref());
        let (event, name) = world.harness.event("Create", &properties, None, None);
        let event = patched(&event, case.get("event").map(|p| expand(p, &bindings)).as_ref());
        let request = match case.str("raw_event") {
            Some(raw) => Request::Raw(expand_text(raw, &bindings)),
            None => Request::CustomResource { event, name },
        };
        ready.push(Ready { case, function: Function::Provisioner, request, watched: vec![master, user_secret] });
    }
    ready
}

fn judge_provisioner(case: &Case, what: &str, reply: &Reply) -> String {
    match reply {
        Reply::Invocation(invocation) => lambda_error(case, what, invocation, "any"),
        Reply::Answer(answer) => {
            assert_eq!(answer.status(), "FAILED", "{} ({what}): {}\n{}", case.name, answer.body, answer.invocation.logs);
            answer.reason().to_owned()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connection test: a non-200 answer whose failure names the field

async fn prepare_connection_test<'c>(world: &mut World, cases: &'c [Case]) -> Vec<Ready<'c>> {
    let mut good = world.good_document();
    good.as_object_mut().expect("an object").remove("masterarn");
    let good_secret = world.put_secret("connection-test-good", &good.to_string()).await;
    let mut ready = Vec::new();
    for case in cases {
        let secret = match world.case_secret(case, "secret", &good).await {
            Some(arn) => arn,
            None => good_secret.clone(),
        };
        let bindings: Bindings = [("secret", json!(secret)), ("port", json!(world.server.port()))].into_iter().collect();
        // The event names the secret unless the case says otherwise; a case's event that is not
        // an object is sent as it is.
        let name_the_secret = json!({"DB_SECRET_ARN": secret});
        let request = match request(case, &bindings, name_the_secret.clone()) {
            Request::Event(Value::Object(overrides)) => Request::Event(patched(&name_the_secret, Some(&Value::Object(overrides)))),
            other => other,
        };
        ready.push(Ready { case, function: Function::ConnectionTest, request, watched: vec![secret] });
    }
    ready
}

/// The phases that touch the database.
const DATABASE_PHASES: [&str; 4] = ["tcp", "tls", "authentication", "query"];

fn judge_connection_test(case: &Case, what: &str, reply: &Reply) -> String {
    let Reply::Invocation(invocation) = reply else { unreachable!("the connection test is invoked directly") };
    if case.str("raw_event").is_some() {
        return lambda_error(case, what, invocation, "any");
    }
    let Outcome::Ok(response) = &invocation.outcome else {
        panic!("{} ({what}): the connection test answers every input, got {:?}\n{}", case.name, invocation.outcome, invocation.logs);
    };
    assert_ne!(response["statusCode"], 200, "{} ({what}): {response}", case.name);
    let failure = &response["diagnostics"]["failure"];
    let phases: Vec<&str> = response["diagnostics"]["phases"].as_array().map(|p| p.iter().filter_map(|p| p["phase"].as_str()).collect()).unwrap_or_default();
    match case.str("refused_in") {
        // Refused before anything was tried against the database.
        None => assert!(!phases.iter().any(|p| DATABASE_PHASES.contains(p)), "{} ({what}): phases {phases:?}: {response}", case.name),
        // A login field the server refuses (it is never spliced into SQL): no query ran.
        Some(phase) => {
            assert_eq!(failure["phase"], phase, "{} ({what}): {response}", case.name);
            assert!(!phases.contains(&"query"), "{} ({what}): phases {phases:?}: {response}", case.name);
        }
    }
    format!("{} {}", failure["message"].as_str().unwrap_or_default(), failure["hint"].as_str().unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------

/// Every case runs even when an earlier one fails, so one run shows every problem.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, case: &Case, checks: impl FnOnce()) {
        // The failure is reported once, at the end, with the others: no panic message now.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(checks));
        std::panic::set_hook(hook);
        if let Err(panic) = outcome {
            let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            self.0.push(format!("{}: {message}", case.name));
        }
    }
}

async fn run_corpus(server: Server) {
    let mut world = World::start(server).await;
    let engine = world.engine();
    let rotator = cases_for("rotator.json", engine);
    let provisioner = cases_for("provisioner.json", engine);
    let connection_test = cases_for("connection-test.json", engine);

    let mut ready = prepare_rotator(&mut world, &rotator).await;
    ready.extend(prepare_provisioner(&mut world, &provisioner).await);
    ready.extend(prepare_connection_test(&mut world, &connection_test).await);

    let mut database_before = snapshot::database(&world.server).await;
    // The snapshot sees what it must: the good user and its grant.
    assert!(
        database_before.iter().any(|row| row.contains(USER) && row.contains("grant") && row.contains(DATABASE))
            || database_before.iter().any(|row| row.starts_with("database: ") && row.contains(USER)),
        "{engine}: the database snapshot misses {USER}'s grant on {DATABASE}: {database_before:#?}"
    );
    let secrets_before = snapshot::all_secrets(&world.harness.sm).await;

    let mut failures = Failures::default();
    let count = ready.len();
    for Ready { case, function, request, watched } in ready {
        let what = match function {
            Function::RotatorSingle | Function::RotatorAlternating => "rotator",
            Function::Provisioner => "provisioner",
            Function::ConnectionTest => "connection-test",
        };
        let what = format!("{what}, {engine}");
        let watched_before = snapshot::secrets(&world.harness.sm, &watched).await;
        let reply = world.send(function, request).await;
        let watched_after = snapshot::secrets(&world.harness.sm, &watched).await;
        let database_after = snapshot::database(&world.server).await;
        let secrets = world.secrets.clone();
        failures.check(case, || {
            let label = format!("{} ({what})", case.name);
            snapshot::assert_unchanged_database(&database_before, &database_after, &label);
            snapshot::assert_unchanged_secrets(&watched_before, &watched_after, &label);
            let message = match function {
                Function::RotatorSingle | Function::RotatorAlternating => judge_rotator(case, &what, &reply),
                Function::Provisioner => judge_provisioner(case, &what, &reply),
                Function::ConnectionTest => judge_connection_test(case, &what, &reply),
            };
            check_refusal(case, &what, &message, reply.logs(), &secrets);
        });
        // A change is blamed on the case that made it, not on every case after it.
        database_before = database_after;
    }
    let secrets_after = snapshot::all_secrets(&world.harness.sm).await;
    let everything = std::panic::catch_unwind(|| snapshot::assert_unchanged_secrets(&secrets_before, &secrets_after, &format!("{engine}, the whole corpus")));
    assert!(failures.0.is_empty(), "{engine}: {} of {count} corpus cases failed:\n\n{}", failures.0.len(), failures.0.join("\n\n"));
    if let Err(panic) = everything {
        std::panic::resume_unwind(panic);
    }
    let mut all = rotator;
    all.extend(provisioner);
    all.extend(connection_test);
    println!("{engine}: {count} corpus cases refused, nothing changed: {:?}", count_by_kind(&all));
}

#[tokio::test]
async fn mariadb_hostile_inputs_are_refused_by_every_function_and_change_nothing() {
    run_corpus(Server::mariadb().await).await;
}

#[tokio::test]
async fn postgres_hostile_inputs_are_refused_by_every_function_and_change_nothing() {
    run_corpus(Server::postgres().await).await;
}

/// The corpus holds at least 60 cases across the three functions, and every kind the issue
/// names.
#[test]
fn the_corpus_is_large_and_covers_every_kind() {
    let mut all = load("rotator.json");
    all.extend(load("provisioner.json"));
    all.extend(load("connection-test.json"));
    assert!(all.len() >= 60, "{} cases", all.len());
    let kinds = count_by_kind(&all);
    for kind in [
        "malformed JSON",
        "wrong type",
        "missing field",
        "oversized value",
        "SQL injection",
        "log injection",
        "unicode confusable",
        "port out of range",
        "unknown engine",
        "unknown step",
    ] {
        assert!(kinds.contains_key(kind), "no case of kind {kind}: {kinds:?}");
    }
    println!("{} corpus cases: {kinds:?}", all.len());
}
