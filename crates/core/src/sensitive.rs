//! A string that must never be seen: passwords, IAM tokens, whole secret documents.
//!
//! `Debug` and `Display` print a fixed marker, the bytes are zeroised on drop, and the only way
//! to read the value is the deliberately loud `expose()`. There is no `Serialize` impl on
//! purpose: a secret reaches a wire format only through code that asks for it by name.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// What `Debug`/`Display` print instead of the value.
pub const REDACTED: &str = "<redacted>";

#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Takes ownership without copying, so the only copy is the one that gets zeroised.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The plaintext. Call it only at the edge where the value must leave the process
    /// (a login, a password DDL, a PutSecretValue body).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SecretString::from("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&secret)), format!("Some({REDACTED})"));
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut secret = SecretString::from("abc");
        secret.zeroize();
        assert!(secret.is_empty());
    }
}
