//! Work in progress: not implemented yet.
use crate::GlobalArgs;
use crate::exit::CliError;
use crate::output::Report;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_args: Args, _global: &GlobalArgs) -> Result<Report, CliError> {
    Err(CliError::internal("not implemented yet".to_string()))
}
