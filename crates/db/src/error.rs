//! Errors from the database seam, classified by the layer that failed.
//!
//! The message is written for an operator and never contains a password, a token, or a SQL
//! statement that carried one: adapters build messages from the server's error code and text,
//! and statements with secrets are never echoed.

use dbcreds_core::{ErrorClass, InputError};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    pub class: ErrorClass,
    pub message: String,
}

impl DbError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into() }
    }

    pub fn hint(&self) -> &'static str {
        self.class.hint()
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.message, self.class, self.class.hint())
    }
}

impl std::error::Error for DbError {}

impl From<InputError> for DbError {
    fn from(err: InputError) -> Self {
        DbError::new(ErrorClass::Input, err.to_string())
    }
}
