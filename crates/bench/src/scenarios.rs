//! The scenarios, one function each, adding their section to the report.

use crate::fixture::{Aws, Binaries, Database, EngineKind, FUNCTIONS, unique};
use crate::process::{cpu_time, higher, log_events, peak_rss_mib};
use crate::report::{Report, Table, Verdict, against};
use crate::rotation::{self, RotationRun, STEPS, Strategy};
use crate::stats::Samples;
use dbcreds_custom_resource::recorder::ResponseRecorder;
use dbcreds_testenv::Invocation;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

// Issue 8's targets.
const INIT_TARGET_MS: f64 = 12.0;
const SINGLE_USER_ROTATION_TARGET_MS: f64 = 50.0;
const ALTERNATING_ROTATION_TARGET_MS: f64 = 70.0;
const CALLS_PER_ROTATION_TARGET: f64 = 8.0;
const CONNECTIONS_PER_LOGIN_TARGET: f64 = 1.0;
const PEAK_RSS_TARGET_MIB: f64 = 18.0;
const ZIP_TARGET_MB: f64 = 4.0;
const PHASE_EXPLAIN_MS: f64 = 10.0;
/// Grant sync is "in proportion to what changed" when a grant that did not change costs less
/// than this share of one that had to be copied (the rest is reading the catalog to know).
const GRANT_UNCHANGED_SHARE: f64 = 0.10;

/// The floor of the init figures: crates/bench/src/bin/lambda_floor.rs, built next to the bench.
const FLOOR: &str = "lambda_floor";

fn floor_binary() -> Option<std::path::PathBuf> {
    let path = std::env::current_exe().ok()?.parent()?.join(FLOOR);
    path.is_file().then_some(path)
}

/// Cold invocations are costlier to repeat (a process each); fewer of them.
fn cold_runs(runs: usize) -> usize {
    runs.clamp(1, 10)
}

// ---------------------------------------------------------------------------------------------
// The machine

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program).args(args).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|text| text.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_owned())).unwrap_or_else(|| "unknown".into())
}

/// The load averages (1, 5, 15 minutes), as `uptime` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_else(|| "unknown".into())
}

pub fn machine_json(runs: usize) -> Value {
    json!({
        "cpu": cpu_model(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "rustc": command_output("rustc", &["-V"]),
        "commit": command_output("git", &["rev-parse", "--short", "HEAD"]),
        "runs": runs,
        "unix_time": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

pub fn machine_notes(bin_dir: &Path, runs: usize, load_at_start: &str, load_at_end: &str) -> String {
    let machine = machine_json(runs);
    format!(
        "## dbcreds benchmark results\n\nMachine: {} ({} cores), Linux {}, {}; commit {}; binaries from {}; {} runs per warm figure, {} per cold one. Load average (1, 5, 15 min) {load_at_start} at the start, {load_at_end} at the end. Figures are median / p95 in milliseconds unless marked.\n",
        machine["cpu"].as_str().unwrap_or_default(),
        machine["cores"],
        machine["kernel"].as_str().unwrap_or_default(),
        machine["rustc"].as_str().unwrap_or_default(),
        machine["commit"].as_str().unwrap_or_default(),
        bin_dir.display(),
        runs,
        cold_runs(runs)
    )
}

fn mib(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.1} MiB"))
}

fn ms(duration: Option<Duration>) -> f64 {
    duration.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// Init

/// A login that exists on `db` and its secret, for the connection test (the benchmark and the
/// budget test in tests/budgets_connection_test.rs).
pub async fn login_secret(aws: &Aws, db: &Database) -> String {
    let username = unique("ct");
    let password = format!("Login-pw-{}", unique(""));
    db.create_login(&username, &password).await;
    aws.create_secret(&db.document(&username, &password)).await
}

/// The connection test's environment in secret mode, trusting `db`'s CA.
pub fn connection_test_env(aws: &Aws, db: &Database, secret_arn: &str) -> Vec<(String, String)> {
    let mut env = aws.function_env();
    env.push(("DB_SECRET_ARN".into(), secret_arn.into()));
    env.push(("DB_CA_BUNDLE".into(), db.ca_pem_path().display().to_string()));
    env
}

fn provisioner_env(aws: &Aws, db: &Database) -> Vec<(String, String)> {
    let mut env = aws.function_env();
    env.push(("DB_CA_BUNDLE".into(), db.ca_pem_path().display().to_string()));
    env
}

/// Init (process start to the first poll for an event) of each function with its production
/// environment, over `runs` cold starts. The event is a trivial one (the rotator and the
/// provisioner refuse `{}` without a call; the connection test runs its check): init does not
/// depend on it.
pub async fn init(bins: &Binaries, runs: usize, report: &mut Report) {
    eprintln!("dbcreds-bench: init ({runs} cold starts per function)");
    let aws = Aws::start().await;
    let db = Database::start(EngineKind::Postgres).await;
    let secret_arn = login_secret(&aws, &db).await;
    let mut table = Table::new(&["function", "init ms (median / p95)", "target", "max", "peak RSS after one trivial invocation"]);
    let mut figures = serde_json::Map::new();
    let floor = floor_binary();
    for name in FUNCTIONS.into_iter().chain(floor.is_some().then_some(FLOOR)) {
        let env = match name {
            "rotator" => rotation::function_env(&aws, &db, Strategy::SingleUser),
            "provisioner" => provisioner_env(&aws, &db),
            "connection-test" => connection_test_env(&aws, &db, &secret_arn),
            _ => aws.function_env(),
        };
        let (mut inits, mut rss) = (Samples::default(), Samples::default());
        for _ in 0..runs {
            let mut function = match (name, &floor) {
                (FLOOR, Some(path)) => dbcreds_testenv::LambdaFunction::start_binary(FLOOR, path.clone(), env.clone()).await,
                _ => bins.start(name, env.clone()).await,
            };
            let invocation = function.invoke(json!({}), Duration::from_secs(30)).await;
            inits.push_ms(invocation.timings.init.expect("a cold start reports its init"));
            if let Some(peak) = function.pid().and_then(peak_rss_mib) {
                rss.push(peak);
            }
            function.kill().await;
        }
        if name == FLOOR {
            table.row(vec!["*floor: the smallest Lambda function*".into(), inits.median_p95(), "-".into(), format!("{:.1}", inits.max()), format!("{:.1} MiB", rss.max())]);
        } else {
            table.row(vec![name.into(), inits.median_p95(), against(inits.median(), INIT_TARGET_MS, " ms"), format!("{:.1}", inits.max()), format!("{:.1} MiB", rss.max())]);
            report.target(format!("init, {name}"), format!("{} ms", inits.median_p95()), format!("≤ {INIT_TARGET_MS} ms"), Verdict::of(inits.median(), INIT_TARGET_MS));
        }
        figures.insert(name.into(), json!({"init_ms": inits.to_json(), "peak_rss_mib": rss.to_json()}));
    }
    let notes = vec![
        "Process spawn to the function's first `GET /runtime/invocation/next`, with the production environment (moto as the AWS endpoint, `DB_CA_BUNDLE`), so it includes JSON logging, the AWS clients, the trust store and the configuration. The *floor* is `lambda_floor` (crates/bench/src/bin): the Lambda runtime crate answering `{}` and nothing else, started the same way; the difference to it is what our init costs.".to_owned(),
    ];
    report.section("init", "Init (cold start)", &notes, &table, Value::Object(figures));
}

// ---------------------------------------------------------------------------------------------
// Rotations

struct RotationFigures {
    warm: Vec<RotationRun>,
    fresh: Vec<RotationRun>,
    peak_rss: Option<f64>,
    /// The function process's CPU time per warm rotation (all four steps), on average.
    cpu_per_warm_rotation: Option<Duration>,
}

async fn measure_rotations(bins: &Binaries, aws: &Aws, db: &Database, strategy: Strategy, runs: usize) -> RotationFigures {
    let secret = rotation::rotated_secret(aws, db, strategy).await;
    let mut function = rotation::start_function(bins, aws, db, strategy).await;
    // The first rotation of a process: empty version cache, first connections.
    let mut fresh = vec![rotation::rotate(aws, db, &mut function, &secret.arn).await];
    let mut warm = Vec::new();
    let cpu_before = function.pid().and_then(cpu_time);
    for _ in 0..runs {
        warm.push(rotation::rotate(aws, db, &mut function, &secret.arn).await);
    }
    let cpu_after = function.pid().and_then(cpu_time);
    let cpu_per_warm_rotation = cpu_before.zip(cpu_after).filter(|_| runs > 0).map(|(before, after)| after.saturating_sub(before) / runs as u32);
    let peak_rss = function.pid().and_then(peak_rss_mib);
    for _ in 1..cold_runs(runs).min(5) {
        function.kill().await;
        fresh.push(rotation::rotate(aws, db, &mut function, &secret.arn).await);
    }
    function.kill().await;
    RotationFigures { warm, fresh, peak_rss, cpu_per_warm_rotation }
}

/// What each step must prove by logging in, by the rotation contract (so the connection count
/// can be held against it): setSecret checks the pending login first (refused on a first run),
/// then single user logs in as the current user to change its password; alternating users
/// log in as the current user (the confused-deputy guard) and as the master; testSecret logs in
/// with the pending credentials.
fn logins_per_step(strategy: Strategy, step: &str) -> u64 {
    match (strategy, step) {
        (Strategy::SingleUser, "setSecret") => 2,
        (Strategy::AlternatingUsers, "setSecret") => 3,
        (_, "testSecret") => 1,
        _ => 0,
    }
}

pub async fn rotations(bins: &Binaries, runs: usize, report: &mut Report) -> Option<f64> {
    eprintln!("dbcreds-bench: rotations ({runs} warm per engine and strategy)");
    let aws = Aws::start().await;
    let mut summary = Table::new(&[
        "engine",
        "strategy",
        "warm rotation ms",
        "target",
        "of which in Secrets Manager calls (moto) ms",
        "the rest (ours and the database's) ms",
        "wall ms (as Secrets Manager waits)",
        "SM calls, warm",
        "SM calls, fresh process",
        "DB connections / logins",
        "function CPU per warm rotation ms",
        "peak RSS",
    ]);
    let mut per_step = Table::new(&["engine", "strategy", "step", "warm ms", "in SM calls ms", "SM calls (warm)", "connections", "first in a fresh process ms"]);
    let mut figures = serde_json::Map::new();
    let mut peak_rss: Option<f64> = None;
    for engine in EngineKind::ALL {
        let db = Database::start(engine).await;
        for strategy in Strategy::ALL {
            let measured = measure_rotations(bins, &aws, &db, strategy, runs).await;
            let (mut durations, mut walls, mut in_calls, mut rest) = (Samples::default(), Samples::default(), Samples::default(), Samples::default());
            for run in &measured.warm {
                durations.push_ms(run.duration());
                walls.push_ms(run.wall);
                in_calls.push_ms(run.in_aws_calls());
                rest.push_ms(run.duration().saturating_sub(run.in_aws_calls()));
            }
            let warm_calls = measured.warm.iter().map(RotationRun::secrets_manager_calls).max().unwrap_or(0);
            let fresh_calls = measured.fresh.iter().map(RotationRun::secrets_manager_calls).max().unwrap_or(0);
            let connections = measured.warm.iter().chain(&measured.fresh).map(RotationRun::connections).max().unwrap_or(0);
            let logins: u64 = STEPS.iter().map(|s| logins_per_step(strategy, s)).sum();
            let target = if strategy == Strategy::SingleUser { SINGLE_USER_ROTATION_TARGET_MS } else { ALTERNATING_ROTATION_TARGET_MS };
            peak_rss = higher(peak_rss, measured.peak_rss);
            let label = format!("{}, {}", engine.name(), strategy.name());
            report.target(format!("warm four-step rotation, {label}"), format!("{} ms (of which {} ms in moto)", durations.median_p95(), in_calls.median_p95()), format!("≤ {target} ms"), Verdict::of(durations.median(), target));
            report.target(format!("Secrets Manager calls per rotation, {label}"), format!("{warm_calls} warm, {fresh_calls} in a fresh process"), format!("≤ {CALLS_PER_ROTATION_TARGET}"), Verdict::of(warm_calls as f64, CALLS_PER_ROTATION_TARGET));
            report.target(
                format!("new DB connections per proven login, rotation {label}"),
                format!("{connections} / {logins}"),
                format!("≤ {CONNECTIONS_PER_LOGIN_TARGET}"),
                Verdict::of(connections as f64 / logins as f64, CONNECTIONS_PER_LOGIN_TARGET),
            );
            summary.row(vec![
                engine.name().into(),
                strategy.name().into(),
                durations.median_p95(),
                against(durations.median(), target, " ms"),
                in_calls.median_p95(),
                rest.median_p95(),
                walls.median_p95(),
                against(warm_calls as f64, CALLS_PER_ROTATION_TARGET, ""),
                fresh_calls.to_string(),
                format!("{connections} / {logins}"),
                measured.cpu_per_warm_rotation.map_or_else(|| "-".to_owned(), |cpu| format!("{:.1}", cpu.as_secs_f64() * 1000.0)),
                mib(measured.peak_rss),
            ]);
            let mut steps_json = serde_json::Map::new();
            for (index, step) in STEPS.iter().enumerate() {
                let (mut step_ms, mut step_in_calls, mut first_ms) = (Samples::default(), Samples::default(), Samples::default());
                for run in &measured.warm {
                    step_ms.push_ms(run.steps[index].duration);
                    step_in_calls.push_ms(run.steps[index].in_aws_calls);
                }
                for run in &measured.fresh {
                    first_ms.push_ms(run.steps[index].duration);
                }
                let calls = measured.warm.last().map(|r| r.steps[index].calls.of_service("secretsmanager")).unwrap_or_default();
                let step_connections = measured.warm.iter().map(|r| r.steps[index].connections).max().unwrap_or(0);
                per_step.row(vec![
                    engine.name().into(),
                    strategy.name().into(),
                    (*step).into(),
                    step_ms.median_p95(),
                    step_in_calls.median_p95(),
                    calls.to_string(),
                    step_connections.to_string(),
                    first_ms.median_p95(),
                ]);
                steps_json.insert(
                    (*step).into(),
                    json!({
                        "warm_ms": step_ms.to_json(),
                        "in_secrets_manager_calls_ms": step_in_calls.to_json(),
                        "fresh_process_ms": first_ms.to_json(),
                        "secrets_manager_calls": calls.total(),
                        "calls": calls.to_string(),
                        "connections": step_connections,
                        "logins": logins_per_step(strategy, step),
                    }),
                );
            }
            figures.insert(
                format!("{}/{}", engine.name(), strategy.name()),
                json!({
                    "warm_rotation_ms": durations.to_json(),
                    "in_secrets_manager_calls_ms": in_calls.to_json(),
                    "rest_ms": rest.to_json(),
                    "warm_wall_ms": walls.to_json(),
                    "secrets_manager_calls_warm": warm_calls,
                    "secrets_manager_calls_fresh_process": fresh_calls,
                    "connections_per_rotation": connections,
                    "logins_per_rotation": logins,
                    "peak_rss_mib": measured.peak_rss,
                    "function_cpu_per_warm_rotation_ms": measured.cpu_per_warm_rotation.map(|cpu| cpu.as_secs_f64() * 1000.0),
                    "steps": steps_json,
                }),
            );
        }
    }
    let notes = vec![
        "A rotation is RotateSecret (emulated on moto, not counted) followed by the four steps invoked one after the other on the same warm process. *warm rotation* adds up the four steps' own durations (event delivered to answer posted); *in Secrets Manager calls* is the time the call counter in front of moto spent answering the steps' calls (moto's time and the counter's hop), and *the rest* is everything else: our code, the TLS handshakes and the database servers' logins and statements. *wall* is from the first invoke to the last answer, emulator included. Secrets Manager calls are counted by the proxy in front of moto; *fresh process* is the first rotation of a new process (empty version cache), the usual case when rotations are days apart. Connections are new TCP connections counted by the proxy in front of the server (the most of any rotation, warm or fresh), against the logins the steps must prove. *Function CPU* is the rotator process's CPU time (all threads, from the kernel's schedstat) over the warm rotations, divided by their number: what the build itself costs, without the waits.".to_owned(),
    ];
    report.section("rotation", "Warm four-step rotation", &notes, &summary, Value::Object(figures));
    report.push_markdown("\n#### Per step\n\n");
    report.push_markdown(&per_step.to_markdown());
    peak_rss
}

// ---------------------------------------------------------------------------------------------
// Grant sync (alternating users)

const GRANT_COUNTS: [usize; 3] = [10, 100, 1000];

/// Gives `username` `count` table-level grants (MySQL: SELECT on `count` tables) or role
/// memberships (PostgreSQL: `count` NOLOGIN roles), named from `prefix`.
async fn add_grants(db: &Database, username: &str, prefix: &str, range: std::ops::Range<usize>) {
    let chunk: Vec<usize> = range.collect();
    for part in chunk.chunks(200) {
        let sql = match db.kind() {
            EngineKind::MariaDb => part.iter().map(|i| format!("CREATE TABLE {}.{prefix}_{i} (id INT); GRANT SELECT ON {}.{prefix}_{i} TO '{username}'@'%'", db.dbname, db.dbname)).collect::<Vec<_>>().join("; "),
            EngineKind::Postgres => part.iter().map(|i| format!("CREATE ROLE {prefix}_{i} NOLOGIN; GRANT {prefix}_{i} TO {username}")).collect::<Vec<_>>().join("; "),
        };
        db.admin(&sql).await;
    }
}

pub async fn grant_sync(bins: &Binaries, runs: usize, report: &mut Report) -> Option<f64> {
    let steady_runs = runs.clamp(3, 10);
    eprintln!("dbcreds-bench: grant sync ({steady_runs} rotations per size)");
    let aws = Aws::start().await;
    let mut table = Table::new(&["engine", "grants", "first copy: setSecret ms (changes)", "nothing changed: setSecret ms", "one grant added: setSecret ms (changes)"]);
    let mut figures = serde_json::Map::new();
    let mut peak_rss: Option<f64> = None;
    for engine in EngineKind::ALL {
        let db = Database::start(engine).await;
        // (grants, first copy ms, nothing changed ms, one added ms) for the summary's curve.
        let mut curve: Vec<(usize, f64, f64, f64)> = Vec::new();
        for count in GRANT_COUNTS {
            let secret = rotation::rotated_secret(&aws, &db, Strategy::AlternatingUsers).await;
            let prefix = unique("g");
            add_grants(&db, &secret.username, &prefix, 0..count).await;
            let mut function = rotation::start_function(bins, &aws, &db, Strategy::AlternatingUsers).await;
            let set_secret = |run: &RotationRun| (run.step("setSecret").duration, rotation::mirrored_changes(&run.step("setSecret").logs));
            // The clone does not exist yet: everything is copied.
            let (first, first_changes) = set_secret(&rotation::rotate(&aws, &db, &mut function, &secret.arn).await);
            // The other user holds everything already: only the password changes.
            let mut steady = Samples::default();
            for _ in 0..steady_runs {
                steady.push_ms(set_secret(&rotation::rotate(&aws, &db, &mut function, &secret.arn).await).0);
            }
            // One more grant on the current user, which the pending user then lacks. The
            // rotation copies it, so both users are in step again for the next round.
            let mut one = Samples::default();
            let mut one_changes = None;
            for round in 0..steady_runs {
                let current = aws.current_value(&secret.arn).await;
                let current_user = current["username"].as_str().expect("a username").to_owned();
                add_grants(&db, &current_user, &format!("{prefix}r{round}"), 0..1).await;
                let (duration, changes) = set_secret(&rotation::rotate(&aws, &db, &mut function, &secret.arn).await);
                one.push_ms(duration);
                one_changes = one_changes.or(changes);
            }
            peak_rss = higher(peak_rss, function.pid().and_then(peak_rss_mib));
            function.kill().await;
            curve.push((count, first.as_secs_f64() * 1000.0, steady.median(), one.median()));
            let changes = |c: Option<u64>| c.map_or("?".into(), |c| c.to_string());
            table.row(vec![
                engine.name().into(),
                count.to_string(),
                format!("{:.1} ({})", first.as_secs_f64() * 1000.0, changes(first_changes)),
                steady.median_p95(),
                format!("{} ({})", one.median_p95(), changes(one_changes)),
            ]);
            figures.insert(
                format!("{}/{count}", engine.name()),
                json!({"first_copy_ms": first.as_secs_f64() * 1000.0, "first_copy_changes": first_changes, "unchanged_ms": steady.to_json(), "one_added_ms": one.to_json(), "one_added_changes": one_changes}),
            );
        }
        grant_curve_target(report, engine, &curve);
    }
    let notes = vec![
        "Alternating-users setSecret (the master makes the pending user a copy of the current one) with the current user holding 10, 100 or 1,000 table-level grants (MariaDB: `GRANT SELECT` on that many tables) or role memberships (PostgreSQL: that many roles). *First copy*: the clone is created and receives everything. *Nothing changed*: the next rotations, where the other user already holds the same grants (only the password is set). *One grant added*: one grant given to the current user just before the rotation. *changes* is the count the function reports (password included).".to_owned(),
    ];
    report.section("grant_sync", "Grant sync in alternating-users setSecret", &notes, &table, Value::Object(figures));
    peak_rss
}

/// The summary line of one engine's curve: what one more grant costs a setSecret when nothing
/// changed, against what it costs when it must be copied (the slope from the smallest to the
/// largest size). Proportional to what changed means the first is a small fraction of the second.
fn grant_curve_target(report: &mut Report, engine: EngineKind, curve: &[(usize, f64, f64, f64)]) {
    let (Some(small), Some(large)) = (curve.first(), curve.last()) else { return };
    let grants = (large.0 - small.0) as f64;
    let copy_slope = (large.1 - small.1) / grants;
    let unchanged_slope = (large.2 - small.2) / grants;
    let share = unchanged_slope.max(0.0) / copy_slope;
    let points = |pick: fn(&(usize, f64, f64, f64)) -> f64| curve.iter().map(|p| format!("{:.0}", pick(p))).collect::<Vec<_>>().join(" → ");
    report.target(
        format!("grant sync, alternating setSecret, {} ({} grants)", engine.name(), curve.iter().map(|p| p.0.to_string()).collect::<Vec<_>>().join("/")),
        format!(
            "nothing changed {} ms, one added {} ms, all copied {} ms: one more unchanged grant costs {:.1}% of copying one",
            points(|p| p.2),
            points(|p| p.3),
            points(|p| p.1),
            share * 100.0
        ),
        "in proportion to what changed",
        if share < GRANT_UNCHANGED_SHARE { Verdict::Met } else { Verdict::NotMet },
    );
}

// ---------------------------------------------------------------------------------------------
// Phases from a cold invocation's log

/// Phases of a cold invocation from the function's JSON log lines: `init` from the emulator,
/// then the gap from the event's delivery to each log line, named after the line, and the gap
/// from the last line to the answer. `delivered` is when the event was delivered, on the wall
/// clock the log uses.
fn phases_from_logs(invocation: &Invocation, delivered: SystemTime, names: &dyn Fn(&crate::process::LogEvent) -> Option<String>) -> Vec<(String, f64)> {
    let mut phases = vec![("init".to_owned(), ms(invocation.timings.init))];
    let mut last = delivered;
    for event in log_events(&invocation.logs) {
        if event.at < delivered {
            continue;
        }
        if let Some(name) = names(&event) {
            let gap = event.at.duration_since(last).unwrap_or_default();
            phases.push((name, gap.as_secs_f64() * 1000.0));
            last = event.at;
        }
    }
    let end = delivered + invocation.timings.duration.unwrap_or_default();
    phases.push(("answer".to_owned(), end.duration_since(last).unwrap_or_default().as_secs_f64() * 1000.0));
    phases
}

/// When the event was delivered, on the wall clock: `invoke` was called at `called`, and the
/// invocation took `total`, of which `duration` after delivery (to within the emulator's own
/// overhead, well under a millisecond).
fn delivered_at(called: SystemTime, invocation: &Invocation) -> SystemTime {
    let before = invocation.timings.total.saturating_sub(invocation.timings.duration.unwrap_or_default());
    called + before
}

/// Median and p95 per phase name, in first-seen order, with the note for those over 10 ms.
fn phase_table(runs: &[Vec<(String, f64)>], title: &str, explain: &dyn Fn(&str) -> &'static str) -> (Table, Value) {
    let mut order: Vec<String> = Vec::new();
    let mut samples: BTreeMap<String, Samples> = BTreeMap::new();
    for run in runs {
        // A name that occurs twice in a run (one per user) is numbered.
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, value) in run {
            let n = seen.entry(name.as_str()).or_insert(0);
            *n += 1;
            let key = if *n == 1 { name.clone() } else { format!("{name} #{n}") };
            if !order.contains(&key) {
                order.push(key.clone());
            }
            samples.entry(key).or_default().push(*value);
        }
    }
    let mut table = Table::new(&[title, "ms (median / p95)", "why, when over 10 ms"]);
    let mut json_phases = serde_json::Map::new();
    for key in &order {
        let s = &samples[key];
        let base = key.split(" #").next().unwrap_or(key);
        let why = if s.median() > PHASE_EXPLAIN_MS { explain(base) } else { "" };
        table.row(vec![key.clone(), s.median_p95(), why.into()]);
        json_phases.insert(key.clone(), s.to_json());
    }
    (table, Value::Object(json_phases))
}

// ---------------------------------------------------------------------------------------------
// Provisioner

fn provisioner_event(recorder: &ResponseRecorder, master_arn: &str, user_arns: &[String], database: &str) -> (Value, String) {
    let name = unique("response");
    let token = "arn:aws:lambda:us-east-1:123456789012:function:provisioner";
    let users: Vec<Value> = vec![
        json!({"SecretArn": user_arns[0], "Privileges": "readwrite", "Authentication": "password"}),
        json!({"SecretArn": user_arns[1], "Privileges": "readonly", "RotationStrategy": "alternating-users"}),
    ];
    let event = json!({
        "RequestType": "Create",
        "ServiceToken": token,
        "ResponseURL": recorder.url(&name),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/dbcreds-bench/6c3b1a20-0000-11ef-8000-0a1b2c3d4e5f",
        "RequestId": unique("request"),
        "LogicalResourceId": "DatabaseUsers",
        "ResourceType": "Custom::DatabaseUsers",
        "ResourceProperties": {"ServiceToken": token, "MasterSecretArn": master_arn, "DatabaseName": database, "Users": users},
    });
    (event, name)
}

fn provisioner_phase_name(event: &crate::process::LogEvent) -> Option<String> {
    let step = event.fields.get("step").and_then(Value::as_str)?;
    Some(match step {
        "resolve" => "read the master and user secrets".into(),
        "connect" => "connect as the master (TLS, login)".into(),
        "database" => "create the database".into(),
        "grant" => "create a user and grant".into(),
        "secret" => "prove the login, complete the secret (PutSecretValue)".into(),
        "login" => "log line: login proven".into(),
        other => other.to_owned(),
    })
}

fn provisioner_explanation(phase: &str) -> &'static str {
    match phase {
        "init" => "process start, AWS clients, trust store (see Init)",
        "read the master and user secrets" => "three GetSecretValue calls to moto, a Python server (~3 ms each here), the first one also opening the SDK's HTTP connection",
        "connect as the master (TLS, login)" => "TCP, TLS 1.3 handshake with certificate verification, and the server's password check (MariaDB native / PostgreSQL SCRAM-SHA-256 with 4096 PBKDF2 iterations on the server side and the client side)",
        "create the database" => "CREATE DATABASE: the server creates files (MariaDB a directory; PostgreSQL copies template1, a few MB, with a checkpoint-free copy)",
        "create a user and grant" => "CREATE USER with password hashing on the server, then reading the account's grants and applying the difference",
        "prove the login, complete the secret (PutSecretValue)" => "a new TLS connection and login as the user (the proof the issue asks for), then one PutSecretValue to moto",
        "answer" => "the PUT of the response to the ResponseURL (a new HTTP connection)",
        _ => "see the log line of this phase",
    }
}

/// The figures of a function invoked cold, then once more warm, over several processes (the
/// provisioner and the connection test are measured the same way).
#[derive(Default)]
struct ColdSamples {
    durations: Samples,
    inits: Samples,
    warm: Samples,
    rss: Samples,
}

impl ColdSamples {
    fn cold(&mut self, invocation: &Invocation) {
        self.durations.push_ms(invocation.timings.duration.unwrap_or_default());
        self.inits.push_ms(invocation.timings.init.unwrap_or_default());
    }

    /// The warm invocation's duration, then the process's peak RSS, and the process stopped.
    async fn warm_then_stop(&mut self, again: &Invocation, mut function: dbcreds_testenv::LambdaFunction) {
        self.warm.push_ms(again.timings.duration.unwrap_or_default());
        if let Some(peak) = function.pid().and_then(peak_rss_mib) {
            self.rss.push(peak);
        }
        function.kill().await;
    }

    fn peak_rss(&self) -> Option<f64> {
        Some(self.rss.max()).filter(|v| !v.is_nan())
    }

    fn row(&self, engine: EngineKind, calls: u64, connections: String) -> Vec<String> {
        vec![engine.name().into(), self.durations.median_p95(), self.inits.median_p95(), self.warm.median_p95(), calls.to_string(), connections, format!("{:.1} MiB", self.rss.max())]
    }

    fn to_json(&self, (cold_key, warm_key): (&str, &str), calls: u64, connections: u64, phases: Value) -> Value {
        json!({cold_key: self.durations.to_json(), "init_ms": self.inits.to_json(), warm_key: self.warm.to_json(), "secrets_manager_calls": calls, "connections": connections, "peak_rss_mib": self.rss.to_json(), "phases": phases})
    }
}

pub async fn provisioner(bins: &Binaries, runs: usize, report: &mut Report) -> Option<f64> {
    let cold = cold_runs(runs);
    eprintln!("dbcreds-bench: provisioner ({cold} cold Creates per engine)");
    let aws = Aws::start().await;
    let recorder = ResponseRecorder::start(Vec::new()).await.expect("a loopback port for the ResponseURL");
    let mut summary = Table::new(&["engine", "cold Create, two users: duration ms", "init ms", "warm Create (same process) ms", "SM calls", "DB connections / logins", "peak RSS"]);
    let mut figures = serde_json::Map::new();
    let mut phase_tables = String::new();
    let mut peak_rss: Option<f64> = None;
    for engine in EngineKind::ALL {
        let db = Database::start(engine).await;
        let master_arn = aws.create_secret(&db.master_document()).await;
        let mut samples = ColdSamples::default();
        let mut phase_runs = Vec::new();
        let (mut calls, mut connections) = (0, 0);
        for _ in 0..cold {
            let mut user_arns = Vec::new();
            for _ in 0..2 {
                let username = unique("u");
                user_arns.push(aws.create_secret(&json!({"username": username, "password": format!("Pw-{}-x!#", unique(""))})).await);
            }
            let database = unique("db");
            let (event, name) = provisioner_event(&recorder, &master_arn, &user_arns, &database);
            let mut function = bins.start("provisioner", provisioner_env(&aws, &db)).await;
            let (calls_before, connections_before) = (aws.calls(), db.connections());
            let called = SystemTime::now();
            let invocation = function.invoke(event, Duration::from_secs(120)).await;
            calls = aws.calls().since(&calls_before).of_service("secretsmanager").total();
            connections = db.connections() - connections_before;
            let put = recorder.requests_for(&name);
            let body = put.first().map(|p| p.json()).unwrap_or(Value::Null);
            assert_eq!(body["Status"], "SUCCESS", "the provisioner's Create failed: {body}\n{}", invocation.logs);
            samples.cold(&invocation);
            phase_runs.push(phases_from_logs(&invocation, delivered_at(called, &invocation), &provisioner_phase_name));

            // The same work again in the warm process (new users, new database).
            let mut warm_arns = Vec::new();
            for _ in 0..2 {
                warm_arns.push(aws.create_secret(&json!({"username": unique("w"), "password": format!("Pw-{}-y!#", unique(""))})).await);
            }
            let (event, _) = provisioner_event(&recorder, &master_arn, &warm_arns, &unique("db"));
            let again = function.invoke(event, Duration::from_secs(120)).await;
            samples.warm_then_stop(&again, function).await;
        }
        let (phases, phases_json) = phase_table(&phase_runs, &format!("provisioner Create phase ({})", engine.name()), &provisioner_explanation);
        summary.row(samples.row(engine, calls, format!("{connections} / 3")));
        figures.insert(engine.name().into(), samples.to_json(("cold_create_ms", "warm_create_ms"), calls, connections, phases_json));
        peak_rss = higher(peak_rss, samples.peak_rss());
        report.target(
            format!("provisioner Create, two users, cold, {}", engine.name()),
            format!("{} ms after an init of {} ms; {connections} DB connections for 3 logins", samples.durations.median_p95(), samples.inits.median_p95()),
            "measured; phases over 10 ms explained",
            Verdict::Reported,
        );
        phase_tables.push_str(&format!("\n#### Provisioner Create phases, {}\n\n", engine.name()));
        phase_tables.push_str(&phases.to_markdown());
    }
    let notes = vec![
        "A CloudFormation Create of `Custom::DatabaseUsers` with two users (one password user with readwrite, one alternating-users user with readonly), each in a new process (cold), answered to a loopback ResponseURL. Phases come from the function's own JSON log timestamps (each phase ends at its log line); *answer* ends when the function posted its result, after the PUT to the ResponseURL. Logins: the master, and one proof per user.".to_owned(),
    ];
    report.section("provisioner", "Provisioner Create (cold)", &notes, &summary, Value::Object(figures));
    report.push_markdown(&phase_tables);
    peak_rss
}

// ---------------------------------------------------------------------------------------------
// Connection test

fn connection_test_explanation(phase: &str) -> &'static str {
    match phase {
        "init" => "process start, AWS clients, trust store (see Init)",
        "read_secret" => "the first AWS call of the process: the SDK builds its HTTPS connector (loading the system's CA roots) and opens a connection to the endpoint, then moto answers GetSecretValue",
        "authentication" => "the check's one connection: TCP connect, the protocol's TLS negotiation and a TLS 1.3 handshake with certificate verification, then the server's password check (TCP and TLS are proven on it, not timed apart)",
        "query" => "the identity query",
        _ => "",
    }
}

pub async fn connection_test(bins: &Binaries, runs: usize, report: &mut Report) -> Option<f64> {
    let cold = cold_runs(runs);
    eprintln!("dbcreds-bench: connection-test ({cold} cold checks per engine)");
    let aws = Aws::start().await;
    let mut summary = Table::new(&["engine", "cold check ms", "init ms", "warm check (same process) ms", "SM calls", "DB connections / logins", "peak RSS"]);
    let mut figures = serde_json::Map::new();
    let mut phase_tables = String::new();
    let mut peak_rss: Option<f64> = None;
    for engine in EngineKind::ALL {
        let db = Database::start(engine).await;
        let secret_arn = login_secret(&aws, &db).await;
        let env = connection_test_env(&aws, &db, &secret_arn);
        let mut samples = ColdSamples::default();
        let mut phase_runs = Vec::new();
        let (mut calls, mut connections) = (0, 0);
        for _ in 0..cold {
            let mut function = bins.start("connection-test", env.clone()).await;
            let (calls_before, connections_before) = (aws.calls(), db.connections());
            let invocation = function.invoke(json!({}), Duration::from_secs(30)).await;
            calls = aws.calls().since(&calls_before).of_service("secretsmanager").total();
            connections = db.connections() - connections_before;
            samples.cold(&invocation);
            let response = invocation.clone().expect_ok();
            assert_eq!(response["statusCode"], 200, "the connection test failed: {response}\n{}", invocation.logs);
            let mut phases = vec![("init".to_owned(), ms(invocation.timings.init))];
            // TCP and TLS proven on the login's connection have no time of their own.
            for phase in response["diagnostics"]["phases"].as_array().into_iter().flatten() {
                if let Some(ms) = phase["ms"].as_f64() {
                    phases.push((phase["phase"].as_str().unwrap_or("?").to_owned(), ms));
                }
            }
            phase_runs.push(phases);
            let again = function.invoke(json!({}), Duration::from_secs(30)).await;
            samples.warm_then_stop(&again, function).await;
        }
        let (phases, phases_json) = phase_table(&phase_runs, &format!("connection-test phase ({})", engine.name()), &connection_test_explanation);
        let met = if connections as f64 <= CONNECTIONS_PER_LOGIN_TARGET { "met" } else { "**NOT met**" };
        summary.row(samples.row(engine, calls, format!("{connections} / 1 ({met})")));
        figures.insert(engine.name().into(), samples.to_json(("cold_check_ms", "warm_check_ms"), calls, connections, phases_json));
        peak_rss = higher(peak_rss, samples.peak_rss());
        report.target(
            format!("connection-test success, secret mode, cold, {}", engine.name()),
            format!("{} ms after an init of {} ms", samples.durations.median_p95(), samples.inits.median_p95()),
            "measured; phases over 10 ms explained",
            Verdict::Reported,
        );
        report.target(
            format!("new DB connections per proven login, connection-test {}", engine.name()),
            format!("{connections} / 1"),
            format!("≤ {CONNECTIONS_PER_LOGIN_TARGET}"),
            Verdict::of(connections as f64, CONNECTIONS_PER_LOGIN_TARGET),
        );
        phase_tables.push_str(&format!("\n#### Connection test phases, {}\n\n", engine.name()));
        phase_tables.push_str(&phases.to_markdown());
    }
    let notes = vec![
        "A secret-mode check (`DB_SECRET_ARN`, verify-full TLS) invoked `{}` in a new process (cold), then once more in the same process (warm). Phases are the function's own report (`diagnostics.phases[].ms`, whole milliseconds).".to_owned(),
    ];
    report.section("connection_test", "Connection test, secret mode (cold)", &notes, &summary, Value::Object(figures));
    report.push_markdown(&phase_tables);
    peak_rss
}

/// The peak RSS of each function, from the scenarios that ran it (the most of any run).
pub fn peak_rss_targets(report: &mut Report, peaks: &[(&str, Option<f64>)]) {
    for (function, peak) in peaks {
        if let Some(peak) = peak {
            report.target(format!("peak RSS, {function}"), format!("{peak:.1} MiB (max)"), format!("≤ {PEAK_RSS_TARGET_MIB} MiB"), Verdict::of(*peak, PEAK_RSS_TARGET_MIB));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Artifacts

pub fn artifacts(bin_dir: &Path, lambda_dir: &Path, report: &mut Report) {
    let mut table = Table::new(&["function", "arm64 bootstrap.zip", "target", "arm64 bootstrap (unzipped)", "x86_64 release binary"]);
    let mut figures = serde_json::Map::new();
    let size = |path: &Path| std::fs::metadata(path).ok().map(|m| m.len() as f64 / 1_000_000.0);
    for name in FUNCTIONS {
        let zip = size(&lambda_dir.join(name).join("bootstrap.zip"));
        let bootstrap = size(&lambda_dir.join(name).join("bootstrap"));
        let native = size(&bin_dir.join(name));
        let show = |v: Option<f64>| v.map_or("not built".into(), |v| format!("{v:.2} MB"));
        table.row(vec![name.into(), show(zip), zip.map_or("-".into(), |z| against(z, ZIP_TARGET_MB, " MB")), show(bootstrap), show(native)]);
        if let Some(zip) = zip {
            report.target(format!("arm64 bootstrap zipped, {name}"), format!("{zip:.2} MB"), format!("≤ {ZIP_TARGET_MB} MB"), Verdict::of(zip, ZIP_TARGET_MB));
        }
        figures.insert(name.into(), json!({"zip_mb": zip, "bootstrap_mb": bootstrap, "x86_64_mb": native}));
    }
    let notes = vec![format!(
        "`cargo lambda build --release --arm64 --output-format zip` (cargo-lambda and Zig from PyPI, see scripts/bench), read from {}. MB = 10^6 bytes, as Lambda's limits are stated.",
        lambda_dir.display()
    )];
    report.section("artifacts", "Artifact size", &notes, &table, Value::Object(figures));
}
