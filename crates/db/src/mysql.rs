//! The MySQL-family adapter: MySQL 5.7/8.x/9.x, MariaDB 10.x/11.x and Aurora MySQL, over
//! `mysql_async` with rustls (aws-lc-rs).
//!
//! - `session`: connecting (DNS, TCP, verified TLS, login, IAM tokens), the deadline, the probe
//!   that detects the flavour, version and `sql_mode`, and statement execution.
//! - `flavor`: flavour and version detection, and the capability table syntax is chosen from.
//! - `sql`: pure SQL builders, quoting and `sql_mode`-aware escaping, redactable statements.
//! - `grants`: what an account holds, as data, and the GRANT/REVOKE difference between two.
//! - `catalog`: reading accounts and privileges from structured sources.
//! - `grant_text`: a tokenizer for `SHOW GRANTS` lines (redaction, exact grantee).
//! - `errors`: classifying driver and server errors into `ErrorClass`es, without secrets.
//! - `admin`: the `Session`, `UserAdmin` and `GrantAdmin` implementations.

mod admin;
mod catalog;
pub mod errors;
pub mod flavor;
pub mod grant_text;
pub mod grants;
mod session;
pub mod sql;

pub use admin::{DEFAULT_HOST, preset_privileges};
pub use session::MySqlSession;

use crate::connect::ConnectSpec;
use crate::error::DbError;
use crate::session::AdminSession;

/// Opens a MySQL-family session. See [`MySqlSession::open`].
pub async fn connect(spec: &ConnectSpec) -> Result<Box<dyn AdminSession>, DbError> {
    Ok(Box::new(MySqlSession::open(spec).await?))
}
