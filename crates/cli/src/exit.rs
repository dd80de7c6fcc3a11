//! The exit codes, documented in `--help` and the README, and the error every subcommand returns
//! when it cannot produce its report.
//!
//! A subcommand that ran to the end reports its findings ([`crate::output::Report`]) with a
//! [`Status`]; one that could not run returns a [`CliError`] whose class decides the code: bad
//! input is a usage error (nothing was changed), anything else a failure.

use dbcreds_core::{ErrorClass, InputError};
use std::fmt;

/// 0: done; for `doctor`, the secret is healthy (warnings may be printed).
pub const OK: u8 = 0;
/// 1: the operation failed: a rotation step, the connection check, a database or AWS call.
pub const FAILED: u8 = 1;
/// 2: bad arguments or input (a flag, a file, a secret's field): nothing was changed.
pub const USAGE: u8 = 2;
/// 3: `doctor` ran to the end and found problems; the report names the command that fixes each.
pub const PROBLEMS: u8 = 3;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done; for doctor: the secret is healthy
  1  the operation failed (a rotation step, the connection check, a database or AWS call)
  2  bad arguments or input; nothing was changed
  3  doctor found problems; the report ends with the command that fixes each one";

/// How a subcommand that ran to the end came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Problems,
    Failed,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => OK,
            Status::Problems => PROBLEMS,
            Status::Failed => FAILED,
        }
    }
}

/// Why a subcommand could not produce its report. The message never holds a secret: it comes from
/// the library errors (which never do) or names fields, users, hosts and versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    pub class: ErrorClass,
    pub message: String,
    /// What to do about it; the class's hint when not set.
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), hint: None }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Internal, message)
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Input, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Puts what was being done in front of the message.
    pub fn context(mut self, doing: &str) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }

    pub fn hint(&self) -> &str {
        self.hint.as_deref().unwrap_or(self.class.hint())
    }

    pub fn code(&self) -> u8 {
        if self.class == ErrorClass::Input { USAGE } else { FAILED }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.class)
    }
}

impl From<InputError> for CliError {
    fn from(err: InputError) -> Self {
        CliError::new(ErrorClass::Input, err.to_string())
    }
}

impl From<dbcreds_aws::AwsError> for CliError {
    fn from(err: dbcreds_aws::AwsError) -> Self {
        CliError::new(err.class, err.to_string())
    }
}

impl From<dbcreds_db::DbError> for CliError {
    fn from(err: dbcreds_db::DbError) -> Self {
        CliError::new(err.class, err.message)
    }
}

impl From<dbcreds_rotation::RotationError> for CliError {
    fn from(err: dbcreds_rotation::RotationError) -> Self {
        CliError::new(err.class, err.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_a_usage_error_and_everything_else_a_failure() {
        assert_eq!(CliError::input("x").code(), USAGE);
        assert_eq!(CliError::new(ErrorClass::Authentication, "x").code(), FAILED);
        assert_eq!(CliError::internal("x").code(), FAILED);
        assert_eq!(Status::Problems.code(), PROBLEMS);
    }

    #[test]
    fn the_hint_defaults_to_the_class_hint() {
        assert_eq!(CliError::new(ErrorClass::Dns, "x").hint(), ErrorClass::Dns.hint());
        assert_eq!(CliError::new(ErrorClass::Dns, "x").with_hint("look").hint(), "look");
    }
}
