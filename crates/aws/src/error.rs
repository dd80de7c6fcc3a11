//! Errors from AWS calls, classified so the caller can tell "retry later" from "fix the policy".

use dbcreds_core::ErrorClass;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub class: ErrorClass,
    /// The service's error code (`ResourceNotFoundException`, `AccessDeniedException`,
    /// `ThrottlingException`, ...) when there is one.
    pub code: Option<String>,
    /// What was being done and what the service said. Never a secret value.
    pub message: String,
}

impl AwsError {
    pub fn new(class: ErrorClass, code: Option<String>, message: impl Into<String>) -> Self {
        Self { class, code, message: message.into() }
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn is_not_found(&self) -> bool {
        self.is_code("ResourceNotFoundException")
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} ({code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AwsError {}
