//! dbcreds' test environment: real servers for real tests, nothing mocked.
//!
//! - [`MariaDb`] and [`Postgres`]: throwaway servers from the machine's installed binaries, with
//!   TLS from a PKI generated at test time ([`pki`]), on free loopback ports, in temporary
//!   directories that vanish with them.
//! - [`Moto`]: moto in server mode for Secrets Manager, STS and RDS.
//! - [`LambdaFunction`]: the project's Lambda binaries run as Lambda runs them, behind an
//!   emulator of the Lambda Runtime API.
//!
//! Anything missing from the machine is a panic that says how to fix it (usually: run
//! `scripts/setup`); nothing is skipped silently.

mod executables;
pub mod lambda;
mod mariadb;
mod moto;
mod net;
mod options;
pub mod paths;
pub mod pki;
mod postgres;
mod random;
mod scratch;
mod server_process;
pub mod system_user;
mod template;
pub mod tls_client;

pub use lambda::{Invocation, InvocationTimings, LambdaFunction, Outcome, binary_path};
pub use mariadb::MariaDb;
pub use moto::Moto;
pub use options::{ServerOptions, TlsMode};
pub use postgres::Postgres;
pub use server_process::StartTimings;

/// Query results as text: one `Vec` per row, `None` for SQL NULL.
pub type Rows = Vec<Vec<Option<String>>>;
