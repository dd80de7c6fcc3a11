//! Faults through the real `provisioner` binary: the database cut off in the middle of a
//! statement (at every point of a Create, through the TCP fault proxy) or killed, Secrets Manager
//! throttling, failing, denying or hanging (through the HTTP fault proxy), the ResponseURL
//! failing its first PUTs, the function killed mid-Create and the request delivered again (as
//! Lambda retries an asynchronous invocation), a deadline reached mid-Create, and a panic.
//!
//! Each must send exactly one response per invocation that lives to answer (checked by
//! `Harness::deliver`: one PUT, empty Content-Type, at most 4096 bytes, the ids echoed, no secret
//! in the body or the logs), leave nothing the rollback Delete cannot clean up (the rollback is
//! run, and the database is checked with real statements afterwards), and never leave the stack
//! waiting: the function answers before its deadline (the emulator would kill it otherwise, and
//! the outcome would show it).
//!
//! The provisioner cannot be made to panic from outside: its only `expect`s are on values it set
//! itself (target.rs) and on building a client with no roots (main.rs), and every input goes
//! through checked parsers. The panic path is proven at the custom-resource level, with a handler
//! that panics while the ResponseURL also fails its first PUTs.

mod provisioner_support;

use async_trait_free::PanickingResource;
use dbcreds_custom_resource::recorder::ResponseRecorder;
use dbcreds_custom_resource::{ResponseSender, RetryPolicy, answer};
use dbcreds_runtime::Budget;
use dbcreds_testenv::faults::{HttpFault, HttpFaultProxy, HttpRule, Prng, TcpFault, TcpFaultProxy, TcpRule, format_seed, kill_process};
use dbcreds_testenv::{LambdaFunction, Moto, Outcome};
use provisioner_support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The function's timeout in these tests (the template's is 120 s): the provisioner's connection
/// patience is at most half of what is left, so failures come sooner.
const FAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A provisioner whose database is behind a TCP fault proxy and whose AWS endpoint is an HTTP
/// fault proxy in front of moto.
struct Rig {
    server: Server,
    harness: Harness,
    tcp: TcpFaultProxy,
    http: HttpFaultProxy,
    function: LambdaFunction,
    /// The master secret, pointing at the proxy.
    master_arn: String,
    users: u32,
    /// Last: outlives the harness that reads it.
    _moto: Moto,
}

impl Rig {
    async fn start(server: Server) -> Rig {
        let moto = Moto::start().await;
        let harness = Harness::sharing(&moto).await;
        let tcp = TcpFaultProxy::start(server.port()).await;
        let http = HttpFaultProxy::start(&moto.endpoint()).await;
        let mut env = http.redirect_env(moto.env());
        env.push(("DB_CA_BUNDLE".into(), server.ca_pem_path().display().to_string()));
        let function = LambdaFunction::start(BINARY, env).await;
        let master_arn = harness.create_secret(&with(server.master_document(), &[("port", json!(tcp.port()))])).await;
        Rig { server, harness, tcp, http, function, master_arn, users: 0, _moto: moto }
    }

    fn database_running(&mut self) -> bool {
        match &mut self.server {
            Server::MariaDb(db) => db.is_running(),
            Server::Postgres { server, .. } => server.is_running(),
        }
    }

    /// A new password user (with its secret) and the properties that list it.
    async fn resource(&mut self, prefix: &str) -> (Value, String, String) {
        self.users += 1;
        let user = format!("{prefix}{}", self.users);
        let (arn, password) = self.harness.user_secret(&user).await;
        (properties(&self.master_arn, "appdb", vec![password_user(&arn, json!("readwrite"))]), user, password)
    }

    async fn send(&mut self, kind: &str, props: &Value, physical_id: Option<&str>, timeout: Duration) -> Answer {
        let (event, name) = self.harness.event(kind, props, None, physical_id);
        self.harness.deliver(&mut self.function, event, &name, timeout).await
    }

    fn heal(&mut self) {
        self.tcp.disarm();
        self.tcp.set_refusing(false);
        self.http.disarm();
    }

    /// After a Create under faults, with every fault gone: a Create that succeeded left a user
    /// that works, a not-created id left nothing at all, and the Delete CloudFormation sends next
    /// (the rollback after FAILED, the stack's own delete after SUCCESS) succeeds and leaves no
    /// user behind.
    async fn settle(&mut self, created: &Answer, props: &Value, user: &str, password: &str, what: &str) {
        self.heal();
        if !self.database_running() {
            self.server.restart().await;
        }
        let id = created.physical_id();
        match created.status() {
            "SUCCESS" => self.server.allowed(user, password, "appdb", "SELECT 1").await,
            _ if id.contains("-not-created-") => {
                assert!(!self.server.user_exists(user).await, "{what}: a not-created id, but user {user} exists; reason: {}", created.reason())
            }
            _ => assert!(id.ends_with(";incomplete"), "{what}: a failed Create answers a not-created or an incomplete id, got {id}"),
        }
        let deleted = self.send("Delete", props, Some(&id), FAULT_TIMEOUT).await;
        answered_in_time(&deleted);
        deleted.expect_success();
        assert!(!self.server.user_exists(user).await, "{what}: the Delete after a {} Create left user {user} behind", created.status());
        self.server.login_refused(user, password, "appdb").await;
    }
}

/// The function answered by itself, before Lambda would have stopped it.
fn answered_in_time(answer: &Answer) {
    assert!(
        matches!(answer.invocation.outcome, Outcome::Ok(_)),
        "the function must answer before its deadline, got {:?}\n{}",
        answer.invocation.outcome,
        answer.invocation.logs
    );
}

// ---------------------------------------------------------------------------------------------
// The database

/// Cuts the master connection at its n-th chunk from the client, for n = 1, 2, ... until a Create
/// runs past the last chunk: every statement boundary of a Create is hit once (alternately with
/// the chunk half sent and with it sent whole and the answer lost).
async fn cut_at_every_point_of_a_create(server: Server, stride: u64) {
    let mut rig = Rig::start(server).await;
    let mut n = 1;
    let (mut cut, mut succeeded, mut failed) = (0, 0, 0);
    loop {
        let (props, user, password) = rig.resource("cut").await;
        let fault = if n % 2 == 0 { TcpFault::CutAfterChunk } else { TcpFault::CutMidChunk };
        rig.tcp.arm(vec![TcpRule { connection: Some(1), client_chunk: n, fault }]);
        let injected_before = rig.tcp.injected().values().sum::<u64>();
        let created = rig.send("Create", &props, None, FAULT_TIMEOUT).await;
        answered_in_time(&created);
        let hit = rig.tcp.injected().values().sum::<u64>() > injected_before;
        let what = format!("{} cut at chunk {n} of the master connection ({fault:?})", rig.server.engine());
        match created.status() {
            "SUCCESS" => succeeded += 1,
            _ => failed += 1,
        }
        rig.settle(&created, &props, &user, &password, &what).await;
        if !hit {
            break;
        }
        cut += 1;
        n += stride;
        assert!(n < 400, "a Create with more than 400 chunks on its master connection: the sweep would never end");
    }
    assert!(cut >= 8, "a Create has more than 8 chunks on the master connection; only {cut} were cut");
    assert!(failed >= 1, "some cut must make the Create fail (else the sweep hit nothing that matters)");
    println!("{}: {cut} cut points, {failed} Creates failed and were rolled back, {succeeded} recovered by reconnecting", rig.server.engine());
}

#[tokio::test]
async fn mariadb_a_create_cut_at_any_statement_is_cleaned_up_by_its_rollback() {
    cut_at_every_point_of_a_create(Server::mariadb().await, 1).await;
}

#[tokio::test]
async fn postgres_a_create_cut_at_any_statement_is_cleaned_up_by_its_rollback() {
    cut_at_every_point_of_a_create(Server::postgres().await, 1).await;
}

/// The database killed (SIGKILL) at a seeded moment of a Create, and restarted after the answer.
#[tokio::test]
async fn a_database_killed_during_a_create_leaves_nothing_the_rollback_cannot_clean() {
    for server in [Server::mariadb().await, Server::postgres().await] {
        let mut rig = Rig::start(server).await;
        let seed = 0x5eed_0000_0000_0701;
        let mut rng = Prng::new(seed);
        for round in 0..4 {
            let (props, user, password) = rig.resource("killed").await;
            let after = Duration::from_millis(rng.range(0, 600));
            let (event, name) = rig.harness.event("Create", &props, None, None);
            let Rig { harness, function, server, .. } = &mut rig;
            let kill = async {
                tokio::time::sleep(after).await;
                match server {
                    Server::MariaDb(db) => db.kill(),
                    Server::Postgres { server, .. } => server.kill(),
                }
            };
            let (created, ()) = tokio::join!(harness.deliver(function, event, &name, FAULT_TIMEOUT), kill);
            answered_in_time(&created);
            let what = format!("{} killed {} ms into Create {round} (seed {})", rig.server.engine(), after.as_millis(), format_seed(seed));
            if created.status() == "FAILED" {
                assert!(created.reason().contains("appdb") || created.reason().contains("database"), "{what}: the reason names the database: {}", created.reason());
            }
            rig.server.restart().await;
            rig.settle(&created, &props, &user, &password, &what).await;
        }
    }
}

/// Every connection refused (the database down behind its endpoint) for a while, then back: the
/// Create fails once, naming what to check, and changes nothing; the retry succeeds.
#[tokio::test]
async fn an_unreachable_database_fails_the_create_once_and_a_retry_succeeds() {
    let mut rig = Rig::start(Server::postgres().await).await;
    let (props, user, password) = rig.resource("down").await;
    rig.tcp.set_refusing(true);
    let started = Instant::now();
    let failed = rig.send("Create", &props, None, Duration::from_secs(12)).await;
    answered_in_time(&failed);
    failed.expect_failed(&["connecting to postgres database appdb", "nothing was changed"]);
    assert!(started.elapsed() < Duration::from_secs(12));
    assert!(rig.tcp.injected().get("tcp_refused").copied().unwrap_or(0) >= 2, "the provisioner retries a refused connection within its patience");
    assert!(failed.physical_id().contains("-not-created-"));
    assert!(!rig.server.user_exists(&user).await);
    rig.heal();
    let created = rig.send("Create", &props, None, FAULT_TIMEOUT).await;
    created.expect_success();
    rig.settle(&created, &props, &user, &password, "after the database came back").await;
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager

/// The master secret unreadable: throttled, failing with 5xx, access denied, or hanging on every
/// GetSecretValue. One FAILED each, naming the master secret, nothing changed; the rollback
/// Delete (with Secrets Manager back) succeeds.
#[tokio::test]
async fn an_unreadable_master_secret_fails_once_and_changes_nothing() {
    let mut rig = Rig::start(Server::mariadb().await).await;
    let read = Some("secretsmanager.GetSecretValue");
    let cases: Vec<(HttpFault, &[&str])> = vec![
        (HttpFault::Throttle, &["master secret", "ThrottlingException"]),
        (HttpFault::ServerError(500), &["master secret"]),
        (HttpFault::ServerError(503), &["master secret"]),
        (HttpFault::Reject(400, "AccessDeniedException"), &["master secret", "AccessDeniedException"]),
        (HttpFault::Reject(400, "DecryptionFailure"), &["master secret", "DecryptionFailure"]),
        (HttpFault::Hang, &["master secret"]),
    ];
    for (fault, words) in cases {
        let (props, user, password) = rig.resource("unreadable").await;
        rig.http.arm(vec![HttpRule::new(read, 1, 1_000, fault)]);
        let failed = rig.send("Create", &props, None, Duration::from_secs(15)).await;
        answered_in_time(&failed);
        failed.expect_failed(words);
        assert!(failed.reason().contains("nothing was changed"), "{fault:?}: {}", failed.reason());
        assert!(failed.physical_id().contains("-not-created-"), "{fault:?}: {}", failed.physical_id());
        assert!(rig.http.injected().get(fault.kind()).copied().unwrap_or(0) >= 1, "{fault:?} was injected");
        rig.settle(&failed, &props, &user, &password, &format!("{fault:?}")).await;
    }
}

/// Secrets Manager failing now and then (each call of a kind failing once, then working): the
/// SDK's retries absorb it and the Create succeeds, or it fails once and the retry succeeds; a
/// PutSecretValue that was applied but whose answer was lost is harmless.
#[tokio::test]
async fn transient_secrets_manager_failures_are_absorbed_or_retried() {
    let mut rig = Rig::start(Server::postgres().await).await;
    let faults = [
        HttpRule::new(Some("secretsmanager.GetSecretValue"), 1, 2, HttpFault::Throttle),
        HttpRule::new(Some("secretsmanager.PutSecretValue"), 1, 1, HttpFault::FailAfterForward(500)),
        HttpRule::new(Some("secretsmanager.PutSecretValue"), 1, 1, HttpFault::Reset),
        HttpRule::new(None, 2, 1, HttpFault::ServerError(503)),
        HttpRule::new(Some("secretsmanager.DescribeSecret"), 1, 1, HttpFault::FailAfterForward(500)),
    ];
    rig.http.aws_put_semantics(true);
    for rule in faults {
        let (props, user, password) = rig.resource("flaky").await;
        rig.http.arm(vec![rule.clone()]);
        let first = rig.send("Create", &props, None, FAULT_TIMEOUT).await;
        answered_in_time(&first);
        let created = if first.status() == "SUCCESS" {
            first
        } else {
            // CloudFormation does not retry a FAILED Create, but an operator re-running the stack
            // sends the same properties: it must work once Secrets Manager is well again.
            rig.heal();
            let again = rig.send("Create", &props, None, FAULT_TIMEOUT).await;
            again.expect_success();
            again
        };
        let secret = rig.harness.current(props["Users"][0]["SecretArn"].as_str().unwrap()).await;
        assert_eq!(secret["password"], json!(password), "{rule:?}: the user's password is kept");
        assert_eq!(secret["username"], json!(user));
        rig.settle(&created, &props, &user, &password, &format!("{rule:?}")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The ResponseURL

/// The first PUTs fail (500, 503): the responder retries with the same body until one is
/// accepted; exactly one accepted answer. A URL that refuses for good (403) makes the
/// invocation a Lambda error, so that Lambda's retry of the asynchronous invocation answers; the
/// second handling of the same request is harmless.
#[tokio::test]
async fn a_response_url_failing_its_first_puts_still_gets_exactly_one_answer() {
    let mut rig = Rig::start(Server::mariadb().await).await;
    let (props, user, password) = rig.resource("put").await;
    let (event, name) = rig.harness.event("Create", &props, None, None);
    rig.harness.recorder.push_script(vec![500, 503]);
    let invocation = rig.function.invoke(event.clone(), FAULT_TIMEOUT).await;
    assert!(matches!(invocation.outcome, Outcome::Ok(_)), "{:?}\n{}", invocation.outcome, invocation.logs);
    let puts = rig.harness.recorder.requests_for(&name);
    assert_eq!(puts.len(), 3, "two failed PUTs and the one accepted: {puts:?}");
    assert!(puts.iter().all(|put| put.body == puts[0].body), "every attempt sends the same body");
    assert!(puts.iter().all(|put| put.header("content-type") == Some("")), "{puts:?}");
    let body = puts[2].json();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    let id = body["PhysicalResourceId"].as_str().unwrap().to_owned();
    rig.server.allowed(&user, &password, "appdb", "SELECT 1").await;

    // A URL that refuses for good: no answer gets through, and the invocation says so as a
    // Lambda error (which makes Lambda retry an asynchronous invocation).
    let (props2, user2, password2) = rig.resource("put").await;
    let (event2, name2) = rig.harness.event("Create", &props2, None, None);
    rig.harness.recorder.push_script(vec![403]);
    let refused = rig.function.invoke(event2.clone(), FAULT_TIMEOUT).await;
    match &refused.outcome {
        Outcome::Err { error_message, .. } => assert!(!error_message.contains(&password2), "no secret in the error"),
        other => panic!("an undeliverable answer must be a Lambda error, got {other:?}\n{}", refused.logs),
    }
    assert!(refused.logs.contains("response NOT delivered"), "{}", refused.logs);
    // Lambda's retry: the same event again. Exactly one answer is accepted, with the same id.
    let retried = rig.function.invoke(event2, FAULT_TIMEOUT).await;
    assert!(matches!(retried.outcome, Outcome::Ok(_)), "{:?}\n{}", retried.outcome, retried.logs);
    let puts2 = rig.harness.recorder.requests_for(&name2);
    assert_eq!(puts2.len(), 2, "the refused PUT and the retry's: {puts2:?}");
    let (first, second) = (puts2[0].json(), puts2[1].json());
    assert_eq!(second["Status"], "SUCCESS", "{second}");
    assert_eq!(first["PhysicalResourceId"], second["PhysicalResourceId"], "handling the request twice answers the same id");
    rig.server.allowed(&user2, &password2, "appdb", "SELECT 1").await;

    for (props, id, user, password) in [(props, id, user, password), (props2, second["PhysicalResourceId"].as_str().unwrap().to_owned(), user2, password2)] {
        rig.send("Delete", &props, Some(&id), FAULT_TIMEOUT).await.expect_success();
        rig.server.login_refused(&user, &password, "appdb").await;
    }
}

// ---------------------------------------------------------------------------------------------
// The function killed, and its deadline

/// The function killed (SIGKILL, as Lambda at a timeout or on a crash) at a seeded moment of a
/// Create, and the same event delivered again as Lambda's retry: the retry answers exactly once
/// and its resource is whole; the Delete cleans everything up.
#[tokio::test]
async fn a_function_killed_mid_create_is_answered_by_the_retry() {
    let mut rig = Rig::start(Server::postgres().await).await;
    let seed = 0x5eed_0000_0000_0702;
    let mut rng = Prng::new(seed);
    for round in 0..5 {
        let (props, user, password) = rig.resource("crash").await;
        let (event, name) = rig.harness.event("Create", &props, None, None);
        rig.function.ensure_running().await;
        let pid = rig.function.pid().expect("a running function");
        let after = Duration::from_millis(rng.range(50, 900));
        let Rig { function, .. } = &mut rig;
        let killer = async {
            tokio::time::sleep(after).await;
            kill_process(pid)
        };
        let (killed, _) = tokio::join!(function.invoke(event.clone(), FAULT_TIMEOUT), killer);
        let what = format!("killed {} ms into Create {round} (seed {})", after.as_millis(), format_seed(seed));
        let answered_before_dying = rig.harness.recorder.requests_for(&name).len();
        assert!(answered_before_dying <= 1, "{what}: at most one answer before the kill");
        if matches!(killed.outcome, Outcome::Ok(_)) {
            // The Create finished before the kill landed.
            assert_eq!(answered_before_dying, 1, "{what}");
        }
        // The SIGKILL took the environment even when it landed after the Create had finished;
        // reap it (it may not be a zombie yet), so the retry runs in a new one, as on Lambda.
        rig.function.kill().await;
        let retried = rig.harness.deliver(&mut rig.function, event, &name, FAULT_TIMEOUT).await;
        answered_in_time(&retried);
        retried.expect_success();
        rig.settle(&retried, &props, &user, &password, &what).await;
    }
}

/// The database stops answering in the middle of a Create, after users were touched: the
/// function answers FAILED before its deadline (naming what it was doing), with an id the
/// rollback Delete cleans up.
#[tokio::test]
async fn a_deadline_reached_mid_create_is_answered_before_lambda_stops_the_function() {
    for server in [Server::mariadb().await, Server::postgres().await] {
        let mut rig = Rig::start(server).await;
        let mut outcomes = Vec::new();
        for chunk in [6u64, 10, 14] {
            let (props, user, password) = rig.resource("stuck").await;
            rig.tcp.arm(vec![TcpRule { connection: Some(1), client_chunk: chunk, fault: TcpFault::Blackhole }]);
            // 10 s of function time, 6 of them kept to answer: the work stops after about 4.
            let answer = rig.send("Create", &props, None, Duration::from_secs(10)).await;
            answered_in_time(&answer);
            if answer.status() == "FAILED" {
                answer.expect_failed(&["deadline"]);
            }
            outcomes.push(format!("chunk {chunk}: {} {}", answer.status(), answer.physical_id()));
            rig.settle(&answer, &props, &user, &password, &format!("blackholed at chunk {chunk}")).await;
        }
        assert!(outcomes.iter().any(|o| o.contains("FAILED")), "a blackhole must make some Create time out: {outcomes:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A panic, at the custom-resource level

mod async_trait_free {
    use dbcreds_custom_resource::{Context, CustomResource, Failure, Request, Success};

    /// A handler that panics after it has started changing things (with a payload that is not a
    /// string, the hardest case for the message).
    pub struct PanickingResource;

    impl CustomResource for PanickingResource {
        fn handle<'a, 'b, 'c, 'd>(&'a self, _request: &'b Request, context: &'c Context) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Success, Failure>> + Send + 'd>>
        where
            'a: 'd,
            'b: 'd,
            'c: 'd,
        {
            Box::pin(async move {
                context.set_failure_physical_id("dbcreds:test;incomplete");
                context.set_step("creating users");
                tokio::task::yield_now().await;
                std::panic::panic_any(42_u64)
            })
        }
    }
}

#[tokio::test]
async fn a_panicking_handler_is_answered_failed_exactly_once_even_when_the_url_fails_first() {
    let recorder = ResponseRecorder::start(vec![500, 502]).await.unwrap();
    let url = recorder.url("panic");
    let event = json!({
        "RequestType": "Create", "ResponseURL": url, "StackId": STACK_ID, "RequestId": "r-panic",
        "LogicalResourceId": LOGICAL_ID, "ResourceType": "Custom::DatabaseUsers", "ResourceProperties": {"ServiceToken": "x"}
    });
    let sender = ResponseSender::with_roots(rustls::RootCertStore::empty(), RetryPolicy::DEFAULT).expect("a sender");
    let deadline_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 + 20_000;
    let budget = Budget::from_deadline_ms(deadline_ms, Duration::from_secs(6));
    let answered = answer(&event, budget, &sender, &PanickingResource).await.expect("answerable");
    let delivery = answered.delivery.expect("delivered after the failed attempts");
    assert_eq!(delivery.attempts, 3);
    let puts = recorder.requests_for("panic");
    assert_eq!(puts.len(), 3, "{puts:?}");
    let body: Value = puts[2].json();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["PhysicalResourceId"], "dbcreds:test;incomplete", "the id the handler set before panicking, for the rollback Delete");
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("creating users") && reason.contains("internal error"), "{reason}");
}
