//! `dbcreds-bench`: issue 8's figures, measured on the real release binaries.
//!
//! Each function runs as Lambda runs it, behind the Lambda Runtime API emulator of
//! `dbcreds-testenv`, against throwaway TLS MariaDB and PostgreSQL servers and moto. AWS calls
//! are counted by an HTTP proxy in front of moto and database connections by TCP proxies in front
//! of the servers, never by the code under test. Peak memory is the kernel's `VmHWM` of the
//! function's process.
//!
//! ```text
//! dbcreds-bench [--runs N] [--bin-dir target/release] [--lambda-dir target/lambda]
//!               [--out target/bench] [--only aws,init,rotation,grants,provisioner,connection-test,artifacts]
//! ```
//!
//! `scripts/bench` builds the binaries and the arm64 zips and runs this. Results go to
//! `<out>/results.json` and `<out>/results.md`, and the Markdown is printed.

use dbcreds_bench::fixture::Binaries;
use dbcreds_bench::report::Report;
use dbcreds_bench::{aws_latency, process, scenarios};
use std::path::PathBuf;

struct Options {
    runs: usize,
    bin_dir: PathBuf,
    lambda_dir: PathBuf,
    out: PathBuf,
    only: Option<Vec<String>>,
}

const SCENARIOS: [&str; 7] = ["aws", "init", "rotation", "grants", "provisioner", "connection-test", "artifacts"];
/// The scenarios that start the functions.
const NEED_BINARIES: [&str; 5] = ["init", "rotation", "grants", "provisioner", "connection-test"];
const USAGE: &str = "usage: dbcreds-bench [--runs N] [--bin-dir DIR] [--lambda-dir DIR] [--out DIR] [--only aws,init,rotation,grants,provisioner,connection-test,artifacts]";

fn parse_options() -> Result<Options, String> {
    let root = dbcreds_testenv::paths::workspace_root();
    let mut options = Options { runs: 20, bin_dir: root.join("target/release"), lambda_dir: root.join("target/lambda"), out: root.join("target/bench"), only: None };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => options.runs = value()?.parse().map_err(|_| "--runs takes a number".to_string()).and_then(|n: usize| if n == 0 { Err("--runs must be at least 1".to_string()) } else { Ok(n) })?,
            "--bin-dir" => options.bin_dir = PathBuf::from(value()?),
            "--lambda-dir" => options.lambda_dir = PathBuf::from(value()?),
            "--out" => options.out = PathBuf::from(value()?),
            "--only" => {
                let names: Vec<String> = value()?.split(',').map(str::to_owned).collect();
                if let Some(unknown) = names.iter().find(|n| !SCENARIOS.contains(&n.as_str())) {
                    return Err(format!("--only: unknown scenario {unknown}"));
                }
                options.only = Some(names);
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("{problem}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let wanted = |name: &str| options.only.as_ref().is_none_or(|only| only.iter().any(|n| n == name));
    let needs_binaries = NEED_BINARIES.iter().any(|s| wanted(s));
    let bins = match Binaries::check(&options.bin_dir) {
        Ok(bins) => Some(bins),
        Err(problem) if needs_binaries => {
            eprintln!("dbcreds-bench: {problem}");
            std::process::exit(1);
        }
        Err(_) => None,
    };

    let load_at_start = scenarios::load_average();
    let mut report = Report::default();
    if wanted("aws") {
        aws_latency::aws_latency(options.runs, &mut report).await;
    }
    let (mut rotator_rss, mut provisioner_rss, mut connection_test_rss) = (None, None, None);
    if let Some(bins) = &bins {
        if wanted("init") {
            scenarios::init(bins, options.runs, &mut report).await;
        }
        if wanted("rotation") {
            rotator_rss = process::higher(rotator_rss, scenarios::rotations(bins, options.runs, &mut report).await);
        }
        if wanted("grants") {
            rotator_rss = process::higher(rotator_rss, scenarios::grant_sync(bins, options.runs, &mut report).await);
        }
        if wanted("provisioner") {
            provisioner_rss = scenarios::provisioner(bins, options.runs, &mut report).await;
        }
        if wanted("connection-test") {
            connection_test_rss = scenarios::connection_test(bins, options.runs, &mut report).await;
        }
    }
    scenarios::peak_rss_targets(&mut report, &[("rotator", rotator_rss), ("provisioner", provisioner_rss), ("connection-test", connection_test_rss)]);
    if wanted("artifacts") {
        scenarios::artifacts(&options.bin_dir, &options.lambda_dir, &mut report);
    }
    let load_at_end = scenarios::load_average();
    report.set_header(scenarios::machine_notes(&options.bin_dir, options.runs, &load_at_start, &load_at_end));
    let mut machine = scenarios::machine_json(options.runs);
    machine["load_at_start"] = load_at_start.into();
    machine["load_at_end"] = load_at_end.into();
    report.set("machine", machine);

    std::fs::create_dir_all(&options.out).unwrap_or_else(|err| panic!("cannot create {}: {err}", options.out.display()));
    let json_path = options.out.join("results.json");
    let md_path = options.out.join("results.md");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report.json()).expect("JSON")).unwrap_or_else(|err| panic!("cannot write {}: {err}", json_path.display()));
    std::fs::write(&md_path, report.markdown()).unwrap_or_else(|err| panic!("cannot write {}: {err}", md_path.display()));
    println!("{}", report.markdown());
    eprintln!("dbcreds-bench: wrote {} and {}", json_path.display(), md_path.display());
}
