//! One error type for the provisioner, classified, with what it was doing. Its text becomes the
//! FAILED response's `Reason`, so it says what failed and what to fix, and never holds a secret:
//! the seams it wraps (`DbError`, `AwsError`, `InputError`) never carry one.

use dbcreds_aws::AwsError;
use dbcreds_core::{ErrorClass, InputError};
use dbcreds_custom_resource::Failure;
use dbcreds_db::DbError;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionError {
    pub class: ErrorClass,
    pub message: String,
}

impl ProvisionError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into() }
    }

    /// Prefixes what was being done: `creating user "app": ...`.
    pub fn context(mut self, doing: &str) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProvisionError {}

impl From<InputError> for ProvisionError {
    fn from(err: InputError) -> Self {
        ProvisionError::new(ErrorClass::Input, err.to_string())
    }
}

impl From<DbError> for ProvisionError {
    fn from(err: DbError) -> Self {
        // DbError's Display already ends with the class and the operator's hint.
        ProvisionError::new(err.class, err.to_string())
    }
}

impl From<AwsError> for ProvisionError {
    fn from(err: AwsError) -> Self {
        let hint = err.hint();
        ProvisionError::new(err.class, format!("{err} ({}): {hint}", err.class))
    }
}

impl ProvisionError {
    /// The FAILED answer. `changed` says whether the request had started changing things, which
    /// the reader needs to know: "nothing was changed" versus "the rollback Delete cleans up".
    pub fn into_failure(self, changed: bool) -> Failure {
        let tail = if !changed {
            "nothing was changed"
        } else if self.class.is_transient() {
            "the request is safe to retry; what was done so far is kept or cleaned up by the rollback"
        } else {
            "what was done so far is kept for a retry, or removed by the rollback"
        };
        Failure::new(self.class, format!("{}; {tail}", self.message))
    }
}

pub type Result<T, E = ProvisionError> = std::result::Result<T, E>;
