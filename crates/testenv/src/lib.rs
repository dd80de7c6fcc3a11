//! dbcreds' test environment: real servers for real tests, nothing mocked.
//!
//! - [`MariaDb`] and [`Postgres`]: throwaway servers from the machine's installed binaries, with
//!   TLS from a PKI generated at test time ([`pki`]), on free loopback ports, in temporary
//!   directories that vanish with them. Each start copies a data directory template that is
//!   initialised once per machine (`target/testenv-cache/`), so a server is ready in ~0.1-0.2 s.
//! - [`session_log`]: a server's own log of every session (`ServerOptions::log_sessions`): how
//!   it came in (TLS, plaintext, the local socket) and what it ran.
//! - [`Moto`]: moto in server mode for Secrets Manager, STS and RDS.
//! - [`LambdaFunction`]: the project's Lambda binaries run as Lambda runs them, behind an
//!   emulator of the Lambda Runtime API, with per-invocation timings.
//! - [`moto_rotation`]: RotateSecret on moto as the service does it before calling a rotation
//!   function; [`rds_master`]: a master login shaped like RDS's, and its secret's JSON.
//!
//! Anything missing from the machine is a panic that says how to fix it (usually: run
//! `scripts/setup`); nothing is skipped silently. Everything works as root (PostgreSQL then runs
//! as the `postgres` system user) and as a normal user.
//!
//! ```no_run
//! # async fn example() {
//! use dbcreds_testenv::{LambdaFunction, MariaDb, Moto, Postgres, ServerOptions, TlsMode};
//! use std::time::Duration;
//!
//! let mariadb = MariaDb::start(ServerOptions::default()).await; // TLS on, not required
//! let postgres = Postgres::start(ServerOptions::new().require_tls(true)).await;
//! let wrong_name = Postgres::start(ServerOptions::new().tls(TlsMode::WrongName)).await;
//! mariadb.admin_exec("CREATE USER 'app'@'%' IDENTIFIED BY 'pw'").await;
//! let rows = postgres.admin_query_strings("SELECT current_user").await;
//!
//! let moto = Moto::start().await;
//! let mut env = moto.env();
//! env.push(("DB_CA_BUNDLE".into(), postgres.ca_pem_path().display().to_string()));
//! let mut rotator = LambdaFunction::start("rotator", env).await;
//! let invocation = rotator.invoke(serde_json::json!({"Step": "createSecret"}), Duration::from_secs(30)).await;
//! # }
//! ```

mod database_server;
mod executables;
pub mod faults;
pub mod lambda;
pub mod leak_audit;
mod mariadb;
mod moto;
pub mod moto_iam;
pub mod moto_lambda;
pub mod moto_rotation;
mod net;
mod options;
pub mod paths;
pub mod pki;
mod postgres;
mod random;
pub mod rds_master;
mod scratch;
mod server_process;
pub mod session_log;
pub mod system_user;
mod template;
pub mod tls_client;

pub use lambda::{Invocation, InvocationTimings, LambdaFunction, Outcome, binary_path};
pub use database_server::{DatabaseServer, Engine, Login};
pub use mariadb::{MariaDb, MariaDbEngine};
pub use moto::Moto;
pub use options::{ServerOptions, TlsMode};
pub use postgres::{Postgres, PostgresEngine};
pub use server_process::StartTimings;

/// Query results as text: one `Vec` per row, `None` for SQL NULL.
pub type Rows = Vec<Vec<Option<String>>>;
