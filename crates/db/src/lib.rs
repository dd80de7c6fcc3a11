//! The database seam: what dbcreds asks of a database, and one adapter per engine family.
//!
//! The shape follows Vault's database plugin interface (new user, update user, delete user) so
//! that the rotation state machine and the provisioner never see SQL:
//! - [`Session`]: a live, authenticated connection: who am I, run the operator's test query,
//!   change my own password (single-user rotation).
//! - [`UserAdmin`]: create a database, create/update/drop users (run with a master login).
//! - [`GrantAdmin`]: read a user's privileges, give a user exactly a privilege set on one
//!   database, and make one user a faithful copy of another (alternating-users rotation).
//!
//! [`dry_run`] plans what a caller would change (the SQL, passwords redacted) without changing it.
//!
//! [`connect`] picks the adapter from the engine family. Each adapter detects the server's flavour
//! and version from what the server reports ([`ServerInfo`]) and chooses its syntax from
//! capabilities, never from a version-string prefix.

pub mod connect;
pub mod dry_run;
pub mod error;
pub mod mysql;
pub mod postgres;
pub mod privileges;
pub mod server;
pub mod session;
pub mod tls;

pub use connect::{ConnectSpec, Credential, connect, check_login};
pub use error::DbError;
pub use privileges::{PrivilegeSpec, PrivilegePreset, GrantChange};
pub use server::{Flavor, ServerInfo, Transport};
pub use session::{AdminSession, GrantAdmin, Identity, NewUserAuth, Session, UserAdmin};
pub use tls::TrustStore;
