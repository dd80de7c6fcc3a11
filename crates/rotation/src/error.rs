//! A rotation step's failure: a class an operator can alarm on, and a message that says what to do.
//!
//! Messages come from the layers below (`InputError`, `DbError`, `AwsError`), which never carry a
//! secret value, and from the steps, which only name fields, users, hosts and version ids.

use dbcreds_aws::AwsError;
use dbcreds_core::{ErrorClass, InputError};
use dbcreds_db::DbError;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationError {
    pub class: ErrorClass,
    pub message: String,
}

impl RotationError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into() }
    }

    pub fn state(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::State, message)
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Input, message)
    }

    /// Whether Secrets Manager's own retry may succeed with nothing changed by anyone.
    pub fn is_retryable(&self) -> bool {
        self.class.is_transient()
    }

    /// Puts what was being done in front of the message.
    pub fn context(mut self, doing: &str) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }
}

impl fmt::Display for RotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}; {}]", self.message, self.class, self.class.hint())?;
        if self.is_retryable() {
            f.write_str(" (retryable)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RotationError {}

impl From<InputError> for RotationError {
    fn from(err: InputError) -> Self {
        RotationError::new(ErrorClass::Input, err.to_string())
    }
}

impl From<DbError> for RotationError {
    fn from(err: DbError) -> Self {
        RotationError::new(err.class, err.message)
    }
}

impl From<AwsError> for RotationError {
    fn from(err: AwsError) -> Self {
        // Throttling and 5xx are `Aws` and transient; access denied is `Aws` but permanent:
        // keep the distinction in the message, the class is what alarms key on.
        let mut message = err.to_string();
        if err.class == ErrorClass::Aws && !err.is_transient() {
            message.push_str(" (not retryable until the policy or key is fixed)");
        }
        RotationError::new(err.class, message)
    }
}
