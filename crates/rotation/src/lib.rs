//! The four-step Secrets Manager rotation state machine, separate from the database and from
//! Secrets Manager (as in Square's password-rotation-lambda: a rotator driving a secret store and
//! a password setter).
//!
//! - [`event`]: the rotation event (with `RotationToken`), validated field by field.
//! - [`config`]: `ROTATION_STRATEGY`, `USERNAME_CHARACTER_LIMIT` and AWS's password variables.
//! - [`rotator`]: the preamble every step runs, the dispatch, the deadline, the report.
//! - [`steps`]: `create_secret`, `set_secret` (single user, alternating users), `test_secret`,
//!   `finish_secret`, each commented with the cases it handles.
//! - [`master`]: the master login of an alternating-users secret, shared with the operator CLI.
//! - [`ports`]: the [`ports::Databases`] and [`ports::EndpointLookup`] traits and their live
//!   implementations over `dbcreds_db` and `dbcreds_aws::RdsEndpoints`.
//!
//! The state machine depends on `dbcreds_aws::SecretStore` and the ports only, so every step is
//! unit-tested with in-memory fakes (see `tests.rs`); the `rotator` binary proves it end to end
//! against real MariaDB, PostgreSQL and moto (`tests/rotator_*.rs`).

pub mod config;
pub mod error;
pub mod event;
pub mod master;
pub mod ports;
pub mod rotator;
pub mod steps;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

pub use config::{RotationConfig, Strategy};
pub use error::RotationError;
pub use event::{RotationEvent, Step};
pub use ports::{Databases, EndpointLookup, LiveDatabases};
pub use rotator::{Outcome, Rotator, StepInfo, StepReport};
