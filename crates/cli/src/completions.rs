//! `dbcreds completions <shell>`: the shell completion script, from the same clap definition as
//! the parser, so it always knows every subcommand and flag.

use crate::Cli;
use crate::exit::CliError;
use crate::output::Report;
use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args, Debug)]
#[command(
    about = "Print the shell completion script for bash, zsh, fish, elvish or PowerShell",
    long_about = "Print the shell completion script for bash, zsh, fish, elvish or PowerShell on stdout.\n\n\
                  bash:  dbcreds completions bash > ~/.local/share/bash-completion/completions/dbcreds\n\
                  zsh:   dbcreds completions zsh > \"${fpath[1]}/_dbcreds\"\n\
                  fish:  dbcreds completions fish > ~/.config/fish/completions/dbcreds.fish"
)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> Result<Report, CliError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "dbcreds", &mut script);
    let script = String::from_utf8(script).map_err(|_| CliError::internal("the completion script is not UTF-8"))?;
    Ok(Report::raw(script))
}
