//! Shared by `tests/faults_*.rs`: a real database server behind a [`TcpFaultProxy`], moto behind
//! an [`HttpFaultProxy`], and the real `rotator` binary in two execution environments (for
//! concurrent deliveries), with the database killed and restarted, connections cut, Secrets
//! Manager throttling, failing and hanging, and function processes killed, on a schedule drawn
//! from a printed seed.
//!
//! After every step, and at the end once the faults stop and the retries converge, the
//! invariants of the issue are checked against the real server (direct connections, not through
//! the proxy) and moto (directly, not through the proxy):
//! - **no lockout**: AWSCURRENT logs in, except in the single-user window between setSecret and
//!   finishSecret, where AWSPENDING logs in instead;
//! - **no orphan password**: every user the rotation manages that exists in the database logs
//!   in with the password of some version of the secret;
//! - **one AWSCURRENT**, at most one AWSPENDING, and AWSCURRENT always has a value;
//! - **convergence**: after the retries the token is AWSCURRENT, AWSPENDING is on no version or
//!   on AWSCURRENT, the single-user old password is refused, and the next rotation runs cleanly.
#![allow(dead_code)] // each test file uses its own subset

#[path = "../rotator_support/mod.rs"]
mod rotator_support;

pub use rotator_support::{Harness, STEPS, event, new_token};

use dbcreds_testenv::faults::{HttpFault, HttpFaultProxy, HttpRule, Prng, TcpFault, TcpFaultProxy, TcpRule, format_seed, kill_process};
use dbcreds_testenv::{LambdaFunction, MariaDb, Outcome, Postgres, ServerOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// The function's timeout while faults are injected: short, so a hung call or a blackholed
/// connection costs seconds, not the 30 s of Lambda's default (the rotator keeps 1.5 s of it).
pub const FAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Once faults stop: Lambda's default rotation timeout, so a loaded machine never fails a retry.
pub const CLEAN_TIMEOUT: Duration = Duration::from_secs(30);
/// Clean attempts allowed after the faults stop. One is enough for a correct rotator (every
/// step converges when run again); the rest absorb a slow machine, and are counted.
pub const CLEAN_ATTEMPTS: usize = 4;

// ---------------------------------------------------------------------------------------------
// The database

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    MariaDb,
    Postgres,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::MariaDb => "mariadb",
            EngineKind::Postgres => "postgres",
        }
    }
}

pub enum Db {
    MariaDb(MariaDb),
    Postgres(Postgres),
}

/// What a login attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    Accepted,
    /// The server refused the credentials (wrong password, or no such user).
    Refused,
    /// Anything else (the server is down, TLS failed): the check itself could not be made.
    Broken(String),
}

impl Db {
    pub async fn start(kind: EngineKind) -> Db {
        match kind {
            EngineKind::MariaDb => {
                let db = MariaDb::start(ServerOptions::new()).await;
                db.admin_exec("CREATE DATABASE appdb").await;
                Db::MariaDb(db)
            }
            EngineKind::Postgres => Db::Postgres(Postgres::start(ServerOptions::new()).await),
        }
    }

    pub fn kind(&self) -> EngineKind {
        match self {
            Db::MariaDb(_) => EngineKind::MariaDb,
            Db::Postgres(_) => EngineKind::Postgres,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Db::MariaDb(db) => db.port(),
            Db::Postgres(db) => db.port(),
        }
    }

    pub fn ca_pem(&self) -> &[u8] {
        match self {
            Db::MariaDb(db) => db.ca_pem(),
            Db::Postgres(db) => db.ca_pem(),
        }
    }

    pub fn ca_pem_path(&self) -> &std::path::Path {
        match self {
            Db::MariaDb(db) => db.ca_pem_path(),
            Db::Postgres(db) => db.ca_pem_path(),
        }
    }

    pub fn admin_user(&self) -> &str {
        match self {
            Db::MariaDb(db) => db.admin_user(),
            Db::Postgres(db) => db.admin_user(),
        }
    }

    pub fn admin_password(&self) -> &str {
        match self {
            Db::MariaDb(db) => db.admin_password(),
            Db::Postgres(db) => db.admin_password(),
        }
    }

    /// `"dbname"` of the secrets: the application's database.
    pub fn dbname(&self) -> &'static str {
        match self {
            Db::MariaDb(_) => "appdb",
            Db::Postgres(_) => "postgres",
        }
    }

    pub fn kill(&mut self) {
        match self {
            Db::MariaDb(db) => db.kill(),
            Db::Postgres(db) => db.kill(),
        }
    }

    pub async fn restart(&mut self) {
        match self {
            Db::MariaDb(db) => db.restart().await,
            Db::Postgres(db) => db.restart().await,
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self {
            Db::MariaDb(db) => db.is_running(),
            Db::Postgres(db) => db.is_running(),
        }
    }

    pub async fn admin(&self, sql: &str) {
        match self {
            Db::MariaDb(db) => db.admin_exec(sql).await,
            Db::Postgres(db) => db.admin_exec(sql).await,
        }
    }

    pub async fn admin_rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Db::MariaDb(db) => db.admin_query_strings(sql).await,
            Db::Postgres(db) => db.admin_query_strings(sql).await,
        }
    }

    /// An application user with a password and some privileges, as a provisioner would leave it.
    pub async fn create_app_user(&self, user: &str, password: &str) {
        match self {
            Db::MariaDb(db) => {
                db.admin_exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; GRANT SELECT, INSERT ON appdb.* TO '{user}'@'%'")).await;
            }
            Db::Postgres(db) => db.admin_exec(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'; GRANT CONNECT ON DATABASE postgres TO {user}")).await,
        }
    }

    pub async fn user_exists(&self, user: &str) -> bool {
        let sql = match self {
            Db::MariaDb(_) => format!("SELECT COUNT(*) FROM mysql.user WHERE User = '{user}'"),
            Db::Postgres(_) => format!("SELECT COUNT(*) FROM pg_roles WHERE rolname = '{user}'"),
        };
        self.admin_rows(&sql).await[0][0].as_deref() != Some("0")
    }

    /// Logs in directly (not through the proxy) over verified TLS.
    pub async fn login(&self, user: &str, password: &str) -> Login {
        let result = match self {
            Db::MariaDb(db) => db.query_as(user, password, "SELECT CURRENT_USER()").await,
            Db::Postgres(db) => db.query_as(user, password, "postgres", "SELECT session_user").await,
        };
        match result {
            Ok(_) => Login::Accepted,
            // MariaDB 1045 "Access denied"; PostgreSQL 28P01 / 28000.
            Err(err) if err.contains("Access denied") || err.contains("password authentication failed") || err.contains("does not exist") => Login::Refused,
            Err(err) => Login::Broken(err),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

/// One fault bound to one delivery of a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The database is killed before the step. `restart_first`: restarted before the step too
    /// (a restart between two steps); otherwise the step meets a dead database.
    DbKillBefore { restart_first: bool },
    /// The database is killed this long into the step, and restarted after it.
    DbKillDuring { after_ms: u64 },
    /// The database is killed right after the step, and restarted.
    DbKillAfter,
    /// Every connection to the database is refused during the step.
    DbUnreachable,
    Tcp(TcpRule),
    Aws(HttpRule),
    /// The function process is killed (SIGKILL, as Lambda at the deadline) this long into the step.
    KillFunction { after_ms: u64 },
    /// The invocation's timeout (the rotator keeps 1.5 s of it to report).
    ShortTimeout { ms: u64 },
    /// The step is delivered to two execution environments at once.
    Concurrent,
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::DbKillBefore { restart_first: true } => "db_restart_before_step",
            Fault::DbKillBefore { restart_first: false } => "db_down_during_step",
            Fault::DbKillDuring { .. } => "db_killed_mid_step",
            Fault::DbKillAfter => "db_killed_after_step",
            Fault::DbUnreachable => "db_unreachable",
            Fault::Tcp(rule) => rule.fault.kind(),
            Fault::Aws(rule) => rule.fault.kind(),
            Fault::KillFunction { .. } => "function_killed_mid_step",
            Fault::ShortTimeout { .. } => "short_deadline",
            Fault::Concurrent => "concurrent_delivery",
        }
    }
}

const AWS_ACTIONS: [Option<&str>; 5] = [
    None,
    Some("secretsmanager.DescribeSecret"),
    Some("secretsmanager.GetSecretValue"),
    Some("secretsmanager.PutSecretValue"),
    Some("secretsmanager.UpdateSecretVersionStage"),
];

/// The faults of one delivery of `step`: none, one or two, drawn from `rng`.
pub fn draw_faults(rng: &mut Prng, step: &str) -> Vec<Fault> {
    let count = *rng.weighted(&[(15, 0usize), (50, 1), (35, 2)]);
    let db_weight = if step == "setSecret" { 6 } else { 2 };
    let mut faults = Vec::new();
    for _ in 0..count {
        let kind = *rng.weighted(&[(db_weight, 0u8), (4, 1), (1, 2), (5, 3), (2, 4), (1, 5), (2, 6)]);
        let fault = match kind {
            0 => match rng.below(3) {
                0 => Fault::DbKillBefore { restart_first: rng.chance(50) },
                1 => Fault::DbKillDuring { after_ms: rng.range(0, 400) },
                _ => Fault::DbKillAfter,
            },
            1 => {
                let fault = *rng.weighted(&[
                    (4, TcpFault::CutMidChunk),
                    (4, TcpFault::CutAfterChunk),
                    (1, TcpFault::Blackhole),
                    (2, TcpFault::Delay(Duration::from_millis(200))),
                ]);
                let fault = match fault {
                    TcpFault::Delay(_) => TcpFault::Delay(Duration::from_millis(rng.range(20, 600))),
                    other => other,
                };
                let connection = if rng.chance(10) { None } else { Some(rng.range(1, 3)) };
                Fault::Tcp(TcpRule { connection, client_chunk: rng.range(1, 9), fault })
            }
            2 => Fault::DbUnreachable,
            3 => {
                let fault = *rng.weighted(&[
                    (4, HttpFault::Throttle),
                    (3, HttpFault::ServerError(500)),
                    (1, HttpFault::ServerError(503)),
                    (4, HttpFault::FailAfterForward(500)),
                    (1, HttpFault::Hang),
                    (1, HttpFault::HangAfterForward),
                    (2, HttpFault::Reset),
                    (1, HttpFault::Delay(Duration::from_millis(300))),
                ]);
                let fault = match fault {
                    HttpFault::Delay(_) => HttpFault::Delay(Duration::from_millis(rng.range(50, 1500))),
                    other => other,
                };
                let action = *rng.pick(&AWS_ACTIONS);
                let nth = *rng.weighted(&[(6, 1), (3, 2), (1, 3)]);
                Fault::Aws(HttpRule::new(action, nth, rng.range(1, 4), fault))
            }
            4 => Fault::KillFunction { after_ms: rng.range(0, 500) },
            5 => Fault::ShortTimeout { ms: rng.range(1600, 3000) },
            _ => Fault::Concurrent,
        };
        faults.push(fault);
    }
    faults
}

// ---------------------------------------------------------------------------------------------
// Figures

/// What a run did, summed over its schedules (and, by `scripts/faults-long`, over runs).
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub schedules: u64,
    pub rotations: u64,
    pub deliveries: u64,
    pub failed_deliveries: u64,
    /// Deliveries the emulator had to kill at the deadline because the function did not answer
    /// in time on its own (not counting the processes the schedule killed itself).
    pub deadline_overruns: u64,
    pub faults: BTreeMap<String, u64>,
    /// Times the single-user window (AWSCURRENT refused, AWSPENDING accepted) was observed.
    pub single_user_windows: u64,
    /// PutSecretValue calls that repeated a token (concurrent or retried createSecret), answered
    /// as AWS does (success for the same value, ResourceExistsException for another).
    pub put_token_repeats: u64,
    pub invariant_checks: u64,
    /// Clean attempts needed after the faults stopped: count of rotations by attempts.
    pub clean_attempts: BTreeMap<String, u64>,
    pub violations: Vec<String>,
    pub seconds: f64,
}

impl Figures {
    pub fn fault(&mut self, kind: &str) {
        *self.faults.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// As JSON, for `scripts/faults-long` to add up.
    pub fn to_json(&self) -> Value {
        json!({
            "schedules": self.schedules, "rotations": self.rotations, "deliveries": self.deliveries,
            "failed_deliveries": self.failed_deliveries, "deadline_overruns": self.deadline_overruns,
            "faults": self.faults, "single_user_windows": self.single_user_windows, "put_token_repeats": self.put_token_repeats,
            "invariant_checks": self.invariant_checks, "clean_attempts": self.clean_attempts,
            "violations": self.violations, "seconds": self.seconds,
        })
    }

    pub fn merge(&mut self, other: &Figures) {
        self.schedules += other.schedules;
        self.rotations += other.rotations;
        self.deliveries += other.deliveries;
        self.failed_deliveries += other.failed_deliveries;
        self.deadline_overruns += other.deadline_overruns;
        for (kind, n) in &other.faults {
            *self.faults.entry(kind.clone()).or_default() += n;
        }
        self.single_user_windows += other.single_user_windows;
        self.put_token_repeats += other.put_token_repeats;
        self.invariant_checks += other.invariant_checks;
        for (kind, n) in &other.clean_attempts {
            *self.clean_attempts.entry(kind.clone()).or_default() += n;
        }
        self.violations.extend(other.violations.iter().cloned());
        self.seconds += other.seconds;
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "schedules run:          {}", self.schedules)?;
        writeln!(f, "rotations:              {} ({} deliveries, {} failed as the faults meant)", self.rotations, self.deliveries, self.failed_deliveries)?;
        writeln!(f, "faults injected:        {}", self.total_faults())?;
        for (kind, n) in &self.faults {
            writeln!(f, "  {kind:<28} {n}")?;
        }
        writeln!(f, "invariant checks:       {}", self.invariant_checks)?;
        writeln!(f, "single-user windows:    {} (AWSCURRENT refused, AWSPENDING logged in)", self.single_user_windows)?;
        writeln!(f, "repeated put tokens:    {} (answered as AWS does)", self.put_token_repeats)?;
        writeln!(f, "clean attempts to converge: {:?}", self.clean_attempts)?;
        writeln!(f, "deadline overruns:      {} (the emulator killed a function that did not answer by its deadline)", self.deadline_overruns)?;
        writeln!(f, "invariant violations:   {}", self.violations.len())?;
        for violation in &self.violations {
            writeln!(f, "  {violation}")?;
        }
        write!(f, "time:                   {:.0} s", self.seconds)
    }
}

// ---------------------------------------------------------------------------------------------
// The rig

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    SingleUser,
    Alternating,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::Alternating => "alternating-users",
        }
    }
}

/// A violated invariant: what, and the trail of deliveries that led there.
#[derive(Debug)]
pub struct Violation(pub String);

pub struct Rig {
    pub db: Db,
    pub harness: Harness,
    pub tcp: TcpFaultProxy,
    pub http: HttpFaultProxy,
    /// Two execution environments of the same function: `[0]` takes every delivery, `[1]` the
    /// concurrent duplicates.
    pub functions: [LambdaFunction; 2],
    pub strategy: Strategy,
    pub figures: Figures,
    master_arn: Option<String>,
    users: u64,
}

impl Rig {
    pub async fn start(kind: EngineKind, strategy: Strategy) -> Rig {
        let db = Db::start(kind).await;
        let harness = Harness::new(db.ca_pem(), db.ca_pem_path()).await;
        let tcp = TcpFaultProxy::start(db.port()).await;
        let http = HttpFaultProxy::start(&harness.moto.endpoint()).await;
        http.aws_put_semantics(true);
        let mut env = http.redirect_env(harness.moto.env());
        env.push(("DB_CA_BUNDLE".into(), db.ca_pem_path().display().to_string()));
        env.push(("ROTATION_STRATEGY".into(), strategy.name().into()));
        let functions = [LambdaFunction::start("rotator", env.clone()).await, LambdaFunction::start("rotator", env).await];
        let mut rig = Rig { db, harness, tcp, http, functions, strategy, figures: Figures::default(), master_arn: None, users: 0 };
        if strategy == Strategy::Alternating {
            let master = rig.document(rig.db.admin_user(), rig.db.admin_password());
            rig.master_arn = Some(rig.harness.create_secret("faults/master", &master).await);
        }
        rig
    }

    /// A secret document for `user`, pointing at the proxy (host `localhost`, as the server's
    /// certificate names it).
    fn document(&self, user: &str, password: &str) -> Value {
        let engine = self.db.kind().name();
        let mut document = json!({"engine": engine, "host": "localhost", "port": self.tcp.port(), "username": user, "password": password, "dbname": self.db.dbname(), "team": "faults"});
        if let Some(master) = &self.master_arn {
            document["masterarn"] = json!(master);
        }
        document
    }

    /// Runs one schedule: a fresh user and secret, one or two rotations under faults drawn from
    /// `seed`, then a clean rotation. Violations go to the figures (with the seed).
    pub async fn run_schedule(&mut self, seed: u64) {
        let started = Instant::now();
        self.figures.schedules += 1;
        let mut rng = Prng::new(seed);
        let mut trail = Trail::new(seed, self.db.kind(), self.strategy);
        let result = self.schedule(&mut rng, &mut trail).await;
        self.tcp.disarm();
        self.tcp.set_refusing(false);
        self.http.disarm();
        if !self.db.is_running() {
            self.db.restart().await;
        }
        if std::env::var_os("DBCREDS_FAULTS_VERBOSE").is_some() {
            println!("{trail}\n  ({:.1} s)", started.elapsed().as_secs_f64());
        }
        if let Err(Violation(what)) = result {
            let report = format!("seed {} ({} {}): {what}\n{trail}", format_seed(seed), self.db.kind().name(), self.strategy.name());
            eprintln!("INVARIANT VIOLATION {report}");
            self.figures.violations.push(report);
        }
        self.figures.seconds += started.elapsed().as_secs_f64();
    }

    async fn schedule(&mut self, rng: &mut Prng, trail: &mut Trail) -> Result<(), Violation> {
        self.users += 1;
        let user = format!("fz{}", self.users);
        let password = format!("Initial-{}-pw", dbcreds_testenv::faults::fresh_seed() % 1_000_000_007);
        self.db.create_app_user(&user, &password).await;
        let arn = self.harness.create_secret(&format!("faults/{user}"), &self.document(&user, &password)).await;
        self.check(&arn, trail, "the secret as created").await?;
        let faulty_rotations = if rng.chance(30) { 2 } else { 1 };
        for _ in 0..faulty_rotations {
            self.faulty_rotation(&arn, rng, trail).await?;
        }
        trail.note("the next rotation, without faults");
        self.clean_rotation(&arn, trail).await
    }

    /// One rotation as Secrets Manager runs it, with faults on the first attempts, then clean
    /// attempts until it converges.
    async fn faulty_rotation(&mut self, arn: &str, rng: &mut Prng, trail: &mut Trail) -> Result<(), Violation> {
        self.figures.rotations += 1;
        let (old_version, old_document) = self.harness.current(arn).await;
        let token = new_token();
        self.harness.start_rotation(arn, &token).await;
        trail.note(&format!("rotation {token}"));
        let faulty_attempts = rng.range(1, 3) as usize;
        let mut converged = false;
        let mut start = 0usize;
        for attempt in 0..faulty_attempts + CLEAN_ATTEMPTS {
            let faulty = attempt < faulty_attempts;
            let mut failed_at = None;
            for (index, step) in STEPS.iter().enumerate().skip(start) {
                let faults = if faulty { draw_faults(rng, step) } else { Vec::new() };
                let ok = self.deliver(arn, &token, step, &faults, faulty, trail).await?;
                if !ok {
                    failed_at = Some(index);
                    break;
                }
                if faulty && rng.chance(15) {
                    trail.note(&format!("{step} delivered again"));
                    self.deliver(arn, &token, step, &[], true, trail).await?;
                }
                if faulty && index > 0 && rng.chance(10) {
                    let earlier = STEPS[rng.below(index as u64) as usize];
                    trail.note(&format!("a late duplicate of {earlier}"));
                    self.deliver(arn, &token, earlier, &[], true, trail).await?;
                }
            }
            match failed_at {
                None => {
                    converged = true;
                    let how = if faulty { "despite the faults".to_owned() } else { format!("{} clean attempt(s) after the faults", attempt + 1 - faulty_attempts) };
                    *self.figures.clean_attempts.entry(how).or_default() += 1;
                    break;
                }
                // Secrets Manager starts the rotation again; here, from the beginning or from
                // any step up to the one that failed (steps re-run out of order).
                Some(index) => start = if rng.chance(50) { 0 } else { rng.below(index as u64 + 1) as usize },
            }
        }
        if !converged {
            return Err(Violation(format!("the rotation did not converge in {CLEAN_ATTEMPTS} clean attempts after the faults stopped")));
        }
        if rng.chance(30) {
            trail.note("the whole rotation again with the same token");
            let before = self.harness.snapshot(arn).await;
            for step in STEPS {
                if !self.deliver(arn, &token, step, &[], false, trail).await? {
                    return Err(Violation(format!("{step} failed when the finished rotation was delivered again")));
                }
            }
            if self.harness.snapshot(arn).await != before {
                return Err(Violation("delivering the finished rotation again changed the secret".into()));
            }
        }
        self.check_converged(arn, &token, &old_version, &old_document).await
    }

    /// The next rotation after the faulty ones: four steps, each succeeding the first time.
    async fn clean_rotation(&mut self, arn: &str, trail: &mut Trail) -> Result<(), Violation> {
        self.figures.rotations += 1;
        let (old_version, old_document) = self.harness.current(arn).await;
        let token = new_token();
        self.harness.start_rotation(arn, &token).await;
        for step in STEPS {
            if !self.deliver(arn, &token, step, &[], false, trail).await? {
                return Err(Violation(format!("the next rotation did not start cleanly: {step} failed")));
            }
        }
        self.check_converged(arn, &token, &old_version, &old_document).await
    }

    /// Delivers one step with its faults, then checks the invariants. `Ok(true)` when the step
    /// succeeded.
    async fn deliver(&mut self, arn: &str, token: &str, step: &str, faults: &[Fault], faulty: bool, trail: &mut Trail) -> Result<bool, Violation> {
        self.figures.deliveries += 1;
        let timeout = faults.iter().find_map(|f| if let Fault::ShortTimeout { ms } = f { Some(Duration::from_millis(*ms)) } else { None });
        let timeout = timeout.unwrap_or(if faulty { FAULT_TIMEOUT } else { CLEAN_TIMEOUT });
        // Proxy faults are counted by the proxies when they hit (a rule may pick a call that
        // never comes); the others here, as they are applied.
        for fault in faults.iter().filter(|f| !matches!(f, Fault::Tcp(_) | Fault::Aws(_) | Fault::KillFunction { .. })) {
            self.figures.fault(fault.kind());
        }
        let tcp_rules: Vec<TcpRule> = faults.iter().filter_map(|f| if let Fault::Tcp(rule) = f { Some(*rule) } else { None }).collect();
        let http_rules: Vec<HttpRule> = faults.iter().filter_map(|f| if let Fault::Aws(rule) = f { Some(rule.clone()) } else { None }).collect();
        let concurrent = faults.contains(&Fault::Concurrent);
        let kill_during = faults.iter().find_map(|f| if let Fault::DbKillDuring { after_ms } = f { Some(*after_ms) } else { None });
        let kill_function = faults.iter().find_map(|f| if let Fault::KillFunction { after_ms } = f { Some(*after_ms) } else { None });

        for fault in faults {
            if let Fault::DbKillBefore { restart_first } = fault {
                self.db.kill();
                if *restart_first {
                    self.db.restart().await;
                }
            }
        }
        self.tcp.arm(tcp_rules);
        self.tcp.set_refusing(faults.contains(&Fault::DbUnreachable));
        self.http.arm(http_rules);

        let event = event(step, arn, token);
        let [first, second] = &mut self.functions;
        let victim = match kill_function {
            Some(_) => {
                first.ensure_running().await;
                first.pid()
            }
            None => None,
        };
        let db = &mut self.db;
        let deliveries = async {
            if concurrent {
                let (a, b) = tokio::join!(first.invoke(event.clone(), timeout), second.invoke(event.clone(), timeout));
                vec![a, b]
            } else {
                vec![first.invoke(event.clone(), timeout).await]
            }
        };
        let mut killed_function = false;
        let interference = async {
            let started = Instant::now();
            if let (Some(after), Some(pid)) = (kill_function, victim) {
                tokio::time::sleep(Duration::from_millis(after)).await;
                if kill_process(pid) {
                    killed_function = true;
                }
            }
            if let Some(after) = kill_during {
                tokio::time::sleep(Duration::from_millis(after).saturating_sub(started.elapsed())).await;
                db.kill();
            }
        };
        let (invocations, ()) = tokio::join!(deliveries, interference);
        if killed_function {
            self.figures.fault("function_killed_mid_step");
        }

        self.tcp.disarm();
        self.tcp.set_refusing(false);
        self.http.disarm();
        if faults.contains(&Fault::DbKillAfter) {
            self.db.kill();
        }
        if !self.db.is_running() {
            self.db.restart().await;
        }

        let mut outcomes = Vec::new();
        for invocation in &invocations {
            let outcome = match &invocation.outcome {
                Outcome::Ok(response) => format!("ok {}", response["outcome"].as_str().unwrap_or("?")),
                Outcome::Err { error_type, error_message } => format!("{error_type}: {}", first_line(error_message)),
                Outcome::Timeout => {
                    if kill_function.is_none() {
                        self.figures.deadline_overruns += 1;
                    }
                    "killed at the deadline".to_owned()
                }
            };
            outcomes.push(outcome);
        }
        let succeeded = invocations.iter().any(|i| matches!(i.outcome, Outcome::Ok(_)));
        if !succeeded {
            self.figures.failed_deliveries += 1;
        }
        let invoked = trail.started.elapsed();
        if !faulty && !succeeded {
            let logs = invocations.last().map(|i| i.logs.as_str()).unwrap_or("");
            let tail: String = logs.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
            trail.note(&format!("logs of the failed clean delivery (tail):\n{tail}"));
        }
        let checking = Instant::now();
        let checked = self.check(arn, trail, &format!("after {step}")).await;
        trail.delivery(step, faults, &outcomes, invoked, checking.elapsed());
        checked?;
        Ok(succeeded)
    }

    /// The invariants that hold at every moment (see the module documentation).
    pub async fn check(&mut self, arn: &str, trail: &Trail, when: &str) -> Result<(), Violation> {
        self.figures.invariant_checks += 1;
        let versions = self.versions(arn).await;
        let with_stage = |stage: &str| versions.iter().filter(|v| v.stages.contains(stage)).collect::<Vec<_>>();
        let (current, pending) = (with_stage("AWSCURRENT"), with_stage("AWSPENDING"));
        if current.len() != 1 || pending.len() > 1 {
            return Err(Violation(format!("{when}: {} versions are AWSCURRENT and {} AWSPENDING", current.len(), pending.len())));
        }
        let Some(current_document) = current[0].document.clone() else {
            return Err(Violation(format!("{when}: AWSCURRENT ({}) has no value", current[0].id)));
        };
        let pending_document = pending.first().and_then(|v| v.document.clone());

        // (user, password) pairs already seen to log in during this check.
        let mut accepted: BTreeSet<(String, String)> = BTreeSet::new();
        let credentials = |document: &Value| (document["username"].as_str().unwrap_or_default().to_owned(), document["password"].as_str().unwrap_or_default().to_owned());
        match self.login(&current_document).await? {
            Login::Accepted => {
                accepted.insert(credentials(&current_document));
            }
            Login::Refused => {
                let window = self.strategy == Strategy::SingleUser && pending_document.is_some();
                let pending_logs_in = match &pending_document {
                    Some(document) if window => self.login(document).await? == Login::Accepted,
                    _ => false,
                };
                if let (true, Some(document)) = (pending_logs_in, &pending_document) {
                    accepted.insert(credentials(document));
                }
                if !pending_logs_in {
                    return Err(Violation(format!(
                        "{when}: LOCKOUT: AWSCURRENT ({}, user {}) does not log in{}",
                        current[0].id,
                        current_document["username"],
                        if window { " and neither does AWSPENDING" } else { "" }
                    )));
                }
                self.figures.single_user_windows += 1;
            }
            Login::Broken(_) => unreachable!("login() turns a broken check into a violation"),
        }

        // Every managed user that exists logs in with some version's password.
        let users: BTreeSet<String> = versions.iter().filter_map(|v| v.document.as_ref()).filter_map(|d| d["username"].as_str().map(str::to_owned)).collect();
        for user in users {
            if !self.db.user_exists(&user).await {
                continue;
            }
            let passwords: BTreeSet<String> = versions.iter().filter_map(|v| v.document.as_ref()).filter(|d| d["username"] == json!(user)).map(|d| credentials(d).1).collect();
            let mut any = passwords.iter().any(|password| accepted.contains(&(user.clone(), password.clone())));
            for password in passwords.iter().filter(|_| !any) {
                if self.login(&json!({"username": user, "password": password})).await? == Login::Accepted {
                    any = true;
                    break;
                }
            }
            if !any {
                return Err(Violation(format!("{when}: user {user}'s password in the database is none of the secret's versions (changed without the secret holding it)")));
            }
        }
        let _ = trail;
        Ok(())
    }

    /// After a rotation converged: the token is AWSCURRENT, AWSPENDING is on no version or on
    /// AWSCURRENT, and (single user) the old password no longer logs in.
    async fn check_converged(&mut self, arn: &str, token: &str, old_version: &str, old_document: &Value) -> Result<(), Violation> {
        let stages = self.harness.stages(arn).await;
        let current = stages.iter().find(|(_, s)| s.iter().any(|x| x == "AWSCURRENT")).map(|(id, _)| id.clone());
        if current.as_deref() != Some(token) {
            return Err(Violation(format!("converged, but AWSCURRENT is {current:?}, not the rotation's token {token}: {stages:?}")));
        }
        if let Some((pending, _)) = stages.iter().find(|(_, s)| s.iter().any(|x| x == "AWSPENDING"))
            && pending != token
        {
            return Err(Violation(format!("converged, but AWSPENDING is left on {pending}, not on AWSCURRENT: the next rotation would fail")));
        }
        if !stages.get(old_version).is_some_and(|s| s.iter().any(|x| x == "AWSPREVIOUS")) {
            return Err(Violation(format!("converged, but the old AWSCURRENT {old_version} is not AWSPREVIOUS: {stages:?}")));
        }
        let current_document = self.harness.value(arn, token).await;
        if self.login(&current_document).await? != Login::Accepted {
            return Err(Violation("converged, but AWSCURRENT does not log in".into()));
        }
        if self.strategy == Strategy::SingleUser && self.login(old_document).await? != Login::Refused {
            return Err(Violation("converged, but the single user's old password still logs in: the password did not change".into()));
        }
        Ok(())
    }

    async fn login(&self, document: &Value) -> Result<Login, Violation> {
        let (user, password) = (document["username"].as_str().unwrap_or_default(), document["password"].as_str().unwrap_or_default());
        match self.db.login(user, password).await {
            Login::Broken(problem) => Err(Violation(format!("the invariant check could not log in as {user} (not a verdict on the rotator; the test rig failed): {problem}"))),
            login => Ok(login),
        }
    }

    /// Every version of the secret (including those without a stage), read from moto directly.
    async fn versions(&self, arn: &str) -> Vec<VersionState> {
        let listed = self.harness.sm.list_secret_version_ids().secret_id(arn).include_deprecated(true).max_results(100).send().await.expect("ListSecretVersionIds");
        let mut versions = Vec::new();
        for version in listed.versions.unwrap_or_default() {
            let id = version.version_id.unwrap_or_default();
            let stages: BTreeSet<String> = version.version_stages.unwrap_or_default().into_iter().collect();
            let value = self.harness.sm.get_secret_value().secret_id(arn).version_id(&id).send().await.ok().and_then(|v| v.secret_string);
            let document = value.and_then(|text| serde_json::from_str(&text).ok());
            versions.push(VersionState { id, stages, document });
        }
        versions
    }

    /// The proxies' injected faults, added to the figures (call once at the end).
    pub fn collect_proxy_figures(&mut self) {
        for (kind, n) in self.tcp.injected() {
            *self.figures.faults.entry(kind.to_owned()).or_default() += n;
        }
        for (kind, n) in self.http.injected() {
            if kind == "aws_put_repeat_emulated" {
                // Not a fault: a repeated PutSecretValue token answered as AWS answers it.
                self.figures.put_token_repeats += n;
                continue;
            }
            *self.figures.faults.entry(kind.to_owned()).or_default() += n;
        }
    }
}

struct VersionState {
    id: String,
    stages: BTreeSet<String>,
    document: Option<Value>,
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(240).collect()
}

/// What a schedule did, for the report of a violation.
pub struct Trail {
    lines: Vec<String>,
    started: Instant,
}

impl Trail {
    fn new(seed: u64, kind: EngineKind, strategy: Strategy) -> Trail {
        Trail { lines: vec![format!("replay: DBCREDS_FAULT_SEED={} ({} {})", format_seed(seed), kind.name(), strategy.name())], started: Instant::now() }
    }

    fn note(&mut self, text: &str) {
        self.lines.push(format!("  -- {text}"));
    }

    fn delivery(&mut self, step: &str, faults: &[Fault], outcomes: &[String], at: Duration, checked_in: Duration) {
        let faults = if faults.is_empty() { String::new() } else { format!(" with {faults:?}") };
        self.lines.push(format!("  [{:>5.1}s, checked in {} ms] {step}{faults} -> {}", at.as_secs_f64(), checked_in.as_millis(), outcomes.join(" | ")));
    }
}

impl fmt::Display for Trail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// Running a test's schedules

/// The seeds a test runs: `DBCREDS_FAULT_SEED` alone when set; `DBCREDS_FAULTS_LONG=<n>` fresh
/// random seeds (printed as they run); otherwise the fixed CI sample.
pub fn seeds(ci_sample: &[u64]) -> Vec<u64> {
    if let Some(seed) = dbcreds_testenv::faults::seed_from_env() {
        return vec![seed];
    }
    if let Some(n) = std::env::var("DBCREDS_FAULTS_LONG").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        return (0..n).map(|_| dbcreds_testenv::faults::fresh_seed()).collect();
    }
    ci_sample.to_vec()
}

/// Runs every seed on one rig and fails with every violation found (each with its seed and its
/// trail). The figures are printed and written to `target/faults/<name>-<pid>.json` for
/// `scripts/faults-long`.
pub async fn run(kind: EngineKind, strategy: Strategy, seeds: &[u64]) -> Figures {
    let mut rig = Rig::start(kind, strategy).await;
    for seed in seeds {
        println!("{} {}: schedule {}", kind.name(), strategy.name(), format_seed(*seed));
        rig.run_schedule(*seed).await;
    }
    rig.collect_proxy_figures();
    let figures = rig.figures.clone();
    let name = format!("{}-{}", kind.name(), strategy.name());
    println!("== {name} ==\n{figures}");
    // scripts/faults-long gives its run a directory of its own, so that a CI sample run at the
    // same time (another checkout's suite, a developer's test) cannot add to its figures.
    let dir = std::env::var_os("DBCREDS_FAULTS_FIGURES_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| dbcreds_testenv::paths::target_dir().join("faults"));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}-{}.json", std::process::id())), serde_json::to_string_pretty(&figures.to_json()).unwrap_or_default());
    assert!(figures.violations.is_empty(), "{} invariant violation(s) in {name}:\n{}", figures.violations.len(), figures.violations.join("\n\n"));
    figures
}
