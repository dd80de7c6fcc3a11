//! What the server is, from what it reports: `server_version_num` (an integer, so no string
//! parsing of `version()`), and whether `pg_catalog.aurora_version()` exists (Aurora PostgreSQL).
//!
//! The adapter chooses syntax from [`Capabilities`] derived from the version number, never from
//! a version-string prefix.

use crate::error::DbError;
use crate::server::{Flavor, ServerInfo};
use dbcreds_core::ErrorClass;

/// The oldest PostgreSQL the adapter supports (11.0).
pub const MIN_VERSION_NUM: u32 = 110_000;

/// One query, one round trip, at connect: everything the session needs to know about the server
/// and about itself. `pg_stat_ssl` is not used for the TLS version: through RDS Proxy it would
/// describe the proxy's connection to the database, not ours.
pub const DETECT_SQL: &str = "SELECT current_setting('server_version_num'), pg_catalog.version(), \
     session_user::text, current_database()::text, \
     COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = session_user), false), \
     EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = 'aurora_version' \
             AND pronamespace = 'pg_catalog'::regnamespace)";

/// Asked only when [`DETECT_SQL`] found the function.
pub const AURORA_VERSION_SQL: &str = "SELECT pg_catalog.aurora_version()::text";

/// What the server can do, by feature rather than by version string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `server_version_num`, e.g. 150004.
    pub version_num: u32,
    /// PostgreSQL 16: role memberships carry INHERIT and SET options per grant
    /// (`GRANT r TO m WITH INHERIT FALSE`, `pg_auth_members.inherit_option/set_option`), a
    /// membership may be granted by several grantors (`REVOKE ... GRANTED BY`), and
    /// `pg_has_role(..., 'USAGE')` follows the INHERIT option of each grant.
    pub membership_options: bool,
    /// PostgreSQL 17: the MAINTAIN privilege on tables (part of ALL).
    pub maintain_privilege: bool,
}

impl Capabilities {
    pub fn for_version_num(version_num: u32) -> Self {
        Self { version_num, membership_options: version_num >= 160_000, maintain_privilege: version_num >= 170_000 }
    }
}

/// Parses `server_version_num`.
pub fn parse_version_num(text: &str) -> Result<u32, DbError> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 10_000)
        .ok_or_else(|| DbError::new(ErrorClass::Internal, format!("the server reported server_version_num {}, which is not a PostgreSQL version number", dbcreds_core::sanitize::for_log(text))))
}

/// (major, minor, patch): 150004 is 15.4 (PostgreSQL 10 and later have two parts), 90624 is 9.6.24.
pub fn version_triple(version_num: u32) -> (u32, u32, u32) {
    if version_num >= 100_000 {
        (version_num / 10_000, version_num % 10_000, 0)
    } else {
        (version_num / 10_000, (version_num / 100) % 100, version_num % 100)
    }
}

/// Builds the [`ServerInfo`] and refuses servers older than PostgreSQL 11.
pub fn server_info(version_num: u32, version_string: &str, aurora_version: Option<&str>) -> Result<ServerInfo, DbError> {
    let version = version_triple(version_num);
    if version_num < MIN_VERSION_NUM {
        return Err(DbError::new(
            ErrorClass::Sql,
            format!("the server runs PostgreSQL {}.{}, and dbcreds needs PostgreSQL 11 or later: upgrade the database", version.0, version.1),
        ));
    }
    let (flavor, version_string) = match aurora_version {
        Some(aurora) => (Flavor::AuroraPostgres, format!("{version_string} (Aurora PostgreSQL {aurora})")),
        None => (Flavor::Postgres, version_string.to_owned()),
    };
    Ok(ServerInfo { flavor, version, version_string })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_become_triples() {
        assert_eq!(version_triple(150_004), (15, 4, 0));
        assert_eq!(version_triple(110_022), (11, 22, 0));
        assert_eq!(version_triple(170_000), (17, 0, 0));
        assert_eq!(version_triple(90_624), (9, 6, 24));
    }

    #[test]
    fn capabilities_come_from_the_number() {
        let pg15 = Capabilities::for_version_num(150_020);
        assert!(!pg15.membership_options && !pg15.maintain_privilege);
        let pg16 = Capabilities::for_version_num(160_000);
        assert!(pg16.membership_options && !pg16.maintain_privilege);
        assert!(Capabilities::for_version_num(170_002).maintain_privilege);
    }

    #[test]
    fn flavour_from_aurora_version() {
        let vanilla = server_info(150_004, "PostgreSQL 15.4 on x86_64", None).unwrap();
        assert_eq!(vanilla.flavor, Flavor::Postgres);
        assert_eq!(vanilla.version, (15, 4, 0));
        assert!(vanilla.at_least(11, 0, 0));
        let aurora = server_info(160_002, "PostgreSQL 16.2 on aarch64", Some("16.2.1")).unwrap();
        assert_eq!(aurora.flavor, Flavor::AuroraPostgres);
        assert!(aurora.version_string.contains("Aurora PostgreSQL 16.2.1"));
    }

    #[test]
    fn old_or_odd_servers_are_refused_clearly() {
        let err = server_info(100_021, "PostgreSQL 10.21", None).unwrap_err();
        assert!(err.message.contains("PostgreSQL 10.21") && err.message.contains("11 or later"), "{err}");
        assert!(parse_version_num("15.4").is_err());
        assert!(parse_version_num("").is_err());
        assert_eq!(parse_version_num("150004\n").unwrap(), 150_004);
    }
}
