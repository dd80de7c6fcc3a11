//! `dbcreds`, the operator's command line. Each subcommand runs the same library code as the
//! Lambda functions (one model of the secret, one database seam, one set of AWS adapters), from
//! wherever the operator stands:
//!
//! | subcommand        | module              | reuses                                                  |
//! |-------------------|---------------------|---------------------------------------------------------|
//! | `doctor`          | [`doctor`]          | `SecretsManagerStore`, `dbcreds_db::connect`, the seam  |
//! | `rotate`          | [`rotate`]          | `dbcreds_rotation::Rotator`, the `rotator`'s four steps |
//! | `reset-password`  | [`reset_password`]  | `UserAdmin::set_password`, `GrantAdmin::mirror_user`    |
//! | `token`           | [`token`]           | `dbcreds_aws::iam_token`                                |
//! | `check`           | [`check`]           | `connection_test`'s configuration and phases            |
//! | `provision`       | [`provision`]       | `provisioner`'s `Users` specification and lifecycle     |
//! | `completions`     | [`completions`]     | clap_complete                                           |
//!
//! [`output`] renders every result as text or, with `--json`, as one JSON document on stdout;
//! [`exit`] holds the documented exit codes; [`progress`] shows a spinner on a terminal while a
//! step waits on the network; [`toolkit`] builds the AWS clients and the trust store once.

mod check;
mod completions;
mod doctor;
mod exit;
mod login;
mod output;
mod progress;
mod provision;
mod reset_password;
mod rotate;
mod shell;
mod strategy;
mod token;
mod toolkit;
mod uuid;

use clap::{Parser, Subcommand};
use exit::CliError;
use output::Report;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "dbcreds",
    version,
    about = "Database credentials nobody has to see: diagnose, rotate, sign IAM tokens, check connections, provision users",
    long_about = "dbcreds, the operator's command line. It runs the same code as the dbcreds Lambda functions \
                  (rotator, connection-test, provisioner) from wherever you stand, with the standard AWS \
                  environment (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...). No password or token is ever \
                  printed, except the token `dbcreds token` is asked for.",
    after_help = exit::EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Print one JSON document on stdout instead of text, errors included (for automation)
    #[arg(long, global = true)]
    pub json: bool,
    /// PEM bundle of the certificate authorities the database servers chain to, added to the
    /// system roots and the built-in RDS CAs
    #[arg(long, global = true, env = "DB_CA_BUNDLE", value_name = "PEM_FILE")]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// The AWS region (default: AWS_REGION, then the profile's region)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The named AWS profile to use (default: AWS_PROFILE, then `default`)
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Write the libraries' JSON logs to stderr: -v for info, -vv for debug (RUST_LOG wins)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Doctor(doctor::Args),
    Rotate(rotate::Args),
    ResetPassword(reset_password::Args),
    Token(token::Args),
    Check(check::Args),
    Provision(provision::Args),
    Completions(completions::Args),
}

async fn run(cli: Cli) -> Result<Report, CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Doctor(args) => doctor::run(args, global).await,
        Command::Rotate(args) => rotate::run(args, global).await,
        Command::ResetPassword(args) => reset_password::run(args, global).await,
        Command::Token(args) => token::run(args, global).await,
        Command::Check(args) => check::run(args, global).await,
        Command::Provision(args) => provision::run(args, global).await,
        Command::Completions(args) => completions::run(args),
    }
}

fn main() -> ExitCode {
    // clap prints help and version on stdout with 0, and usage errors on stderr with 2.
    let cli = Cli::try_parse().unwrap_or_else(|err| err.exit());
    let json = cli.global.json;
    progress::init();
    dbcreds_runtime::init_cli_logging(match cli.global.verbose {
        0 => None,
        1 => Some("info"),
        _ => Some("debug"),
    });
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return output::emit(Err(CliError::internal(format!("cannot start the async runtime: {err}"))), json),
    };
    let result = runtime.block_on(run(cli));
    output::emit(result, json)
}
