//! The local demo (`scripts/demo`): dbcreds' three Lambda functions, the real binaries from
//! target/debug, against throwaway MariaDB and PostgreSQL servers with verify-full TLS and moto
//! for Secrets Manager, STS and RDS. Nothing talks to AWS.
//!
//! 1. the servers and moto start ([`world`]);
//! 2. the `provisioner` creates DBUserA and DBUserB from a CloudFormation Create ([`provision`]);
//! 3. the `rotator` rotates each user, single user and alternating users ([`rotation`]);
//! 4. the `connection-test` checks the connection, fails on purpose, and tries IAM mode
//!    ([`connection_check`]);
//! 5. `dbcreds doctor` diagnoses a stuck rotation and its suggested fix is run ([`doctor`]);
//! 6. a summary of what was proven; the exit status is 1 if any proof failed.
//!
//! `--keep` keeps the servers and moto running after the summary, until Enter, and prints the
//! environment that points `dbcreds` at them, so the README's operator example can be run by hand.
//!
//! It narrates in plain text on stdout; the functions' JSON logs go to target/demo/. No password
//! or token is ever printed, and the last proof checks that ([`leaks`]).

mod connection_check;
mod doctor;
mod leaks;
mod login;
mod narrator;
mod provision;
mod rotation;
mod secrets;
mod world;

use narrator::{Column, Narrator};
use rotation::Strategy;
use std::process::ExitCode;
use std::time::Instant;
use world::World;

/// The Lambda binaries the demo runs, from target/debug.
pub const FUNCTIONS: [&str; 3] = ["provisioner", "rotator", "connection-test"];
/// The operator CLI, run by part 5.
pub const CLI: &str = "dbcreds";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let started = Instant::now();
    let mut out = Narrator::default();
    let missing: Vec<_> = FUNCTIONS.iter().chain([&CLI]).map(|name| dbcreds_testenv::paths::profile_dir().join(name)).filter(|path| !path.is_file()).collect();
    if !missing.is_empty() {
        eprintln!("demo: the Lambda binaries are not built ({} missing): run scripts/demo, which builds them", missing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
        return ExitCode::FAILURE;
    }
    let log_dir = dbcreds_testenv::paths::target_dir().join("demo");

    out.line("dbcreds demo: the provisioner, rotator and connection-test Lambda binaries against real TLS databases and moto.");
    out.line("Nothing here talks to AWS. Passwords are shown by their length only.");

    out.section("1. Throwaway servers with TLS from a CA made on the spot, and moto");
    let world = match World::start(log_dir).await {
        Ok(world) => world,
        Err(problem) => {
            eprintln!("demo: {problem}");
            return ExitCode::FAILURE;
        }
    };
    out.detail(format!("ready in {:.1} s", started.elapsed().as_secs_f64()));
    out.detail(format!("CA           \"dbcreds test CA\" (ECDSA P-256), generated for this run: {}", world.databases[0].ca_pem_path().display()));
    for database in &world.databases {
        let version = database.version().await;
        out.detail(format!(
            "{:<12} {}:{}  {version}, TLS required, certificate for localhost and 127.0.0.1 (started in {} ms)",
            database.name(),
            database.host(),
            database.port(),
            database.start_timings().total.as_millis()
        ));
    }
    out.detail(format!("{:<12} {}  Secrets Manager, STS and RDS", "moto", world.moto.endpoint()));
    out.detail(format!("{:<12} target/debug/{{{}}}, run behind the Lambda Runtime API emulator", "functions", FUNCTIONS.join(",")));
    out.detail(format!("{:<12} {}/{{{}}}.log (their JSON logs)", "logs", world.logs.dir().display(), FUNCTIONS.join(",")));
    for database in &world.databases {
        let proof = match database.master_document() {
            Ok(master) => login::proves_login(&master, &world.trust).await,
            Err(problem) => Err(problem),
        };
        out.proof(database.column(), "the master logs in over verify-full TLS (demo CA)", proof);
    }

    out.section("2. Provisioning: a CloudFormation Create of Custom::DatabaseUsers through the provisioner");
    let recorder = match dbcreds_custom_resource::recorder::ResponseRecorder::start(Vec::new()).await {
        Ok(recorder) => recorder,
        Err(err) => {
            eprintln!("demo: cannot start the ResponseURL recorder on loopback: {err}");
            return ExitCode::FAILURE;
        }
    };
    out.detail(format!("the ResponseURL is served by a recorder on 127.0.0.1:{} (a stand-in for CloudFormation's presigned S3 URL)", recorder.port()));
    let mut provisioned = Vec::new();
    for database in &world.databases {
        match provision::provision(&world, database, &recorder, &mut out).await {
            Ok(secrets) => provisioned.push((database, secrets)),
            Err(problem) => {
                // What depends on the users is not run, and says so in the summary.
                out.detail(format!("{} stops here: {problem}", database.name()));
                let column = database.column();
                let mut skipped = vec![rotation::proof_label(Strategy::SingleUser), rotation::proof_label(Strategy::AlternatingUsers), connection_check::SECRET_MODE_PROOF];
                skipped.push(if column == Column::MariaDb { connection_check::WRONG_CA_PROOF } else { connection_check::IAM_MODE_PROOF });
                for what in skipped {
                    out.proof(column, what, Err("not run: the provisioning failed".into()));
                }
            }
        }
    }

    out.section("3. Rotation through the rotator: the four steps, as Secrets Manager invokes them");
    for (database, secrets) in &provisioned {
        rotation::rotate(&world, database, Strategy::SingleUser, &secrets.user_a_arn, &mut out).await;
        rotation::rotate(&world, database, Strategy::AlternatingUsers, &secrets.user_b_arn, &mut out).await;
    }

    out.section("4. The connection-test: success, a deliberate failure, and IAM mode");
    for (database, secrets) in &provisioned {
        let wrong_ca = database.column() == Column::MariaDb;
        connection_check::secret_mode(&world, database, "DBUserA", &secrets.user_a_arn, wrong_ca, &mut out).await;
        if database.column() == Column::Postgres {
            connection_check::iam_mode(&world, database, "DBUserA", &mut out).await;
        }
    }

    out.section("5. The operator CLI: dbcreds doctor diagnoses a stuck rotation, and its fix is run");
    if let Some((database, secrets)) = provisioned.iter().find(|(database, _)| database.column() == Column::MariaDb) {
        doctor::stuck_rotation(&world, database, &secrets.user_a_arn, &mut out).await;
    }

    out.section("6. Summary");
    let transcript = out.transcript().to_owned();
    let leak_check = leaks::check(&world, &transcript);
    out.proof(Column::All, "no password or token in the output, answers or logs", leak_check);
    out.line("");
    out.summary();
    out.line("");
    let failures = out.failures();
    out.line(format!("the demo took {:.1} s; the functions' JSON logs are in {}", started.elapsed().as_secs_f64(), world.logs.dir().display()));
    let code = if failures == 0 {
        out.line("every proof held");
        ExitCode::SUCCESS
    } else {
        out.line(format!("{failures} proof(s) FAILED"));
        ExitCode::FAILURE
    };
    if std::env::args().skip(1).any(|arg| arg == "--keep") {
        keep_running(&world);
    }
    code
}

/// `--keep`: the servers and moto stay up until Enter, with the environment that points
/// `dbcreds` at them. The demo's secrets are named `demo/<engine>/<user>`.
fn keep_running(world: &World) {
    let env: Vec<String> = world.moto.env().into_iter().map(|(name, value)| format!("{name}={value}")).collect();
    println!("\nThe servers and moto keep running until you press Enter. In another shell, from this directory:\n");
    println!("  export {}", env.join(" "));
    println!("  export DB_CA_BUNDLE={}", world.databases[0].ca_pem_path().display());
    println!("  export PATH=\"$PWD/target/debug:$PATH\"");
    println!("  dbcreds doctor demo/mariadb/DBUserA");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
