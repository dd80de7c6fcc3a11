//! The pure domain of dbcreds: no I/O, no drivers, no SDK.
//!
//! Everything the three Lambda functions agree on lives here: the secret document AWS documents
//! for RDS secrets, the redacting types that hold passwords and tokens, the password policy and
//! generator, the rules for identifiers, and the error vocabulary that tells an operator what
//! failed and what to check.

pub mod engine;
pub mod env;
pub mod error;
pub mod host;
pub mod identifier;
pub mod password;
pub mod sanitize;
pub mod secret_document;
pub mod sensitive;
pub mod tls_policy;

pub use engine::{Engine, EngineFamily};
pub use error::{ErrorClass, InputError};
pub use host::validate_host;
pub use identifier::{IdentifierKind, validate_identifier};
pub use password::{PasswordPolicy, generate_password};
pub use secret_document::SecretDocument;
pub use sensitive::SecretString;
pub use tls_policy::TlsPolicy;
