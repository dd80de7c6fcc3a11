//! Which MySQL-family server we talk to, and what its SQL can do.
//!
//! The flavour comes from what the server says about itself (`VERSION()`, `@@version_comment`,
//! and `@@aurora_version` when that variable exists), and every syntax choice downstream comes
//! from [`Capabilities`], a table of features keyed on flavour and version. AWS's functions sniff
//! the first character of the version string instead, which sends MySQL 9 down the MySQL 5.x
//! path and gives MariaDB 10.2+ the deprecated `PASSWORD()` syntax.

use crate::server::{Flavor, ServerInfo};

/// What the connection probe read from the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerReport {
    /// `VERSION()`, e.g. `8.0.39`, `10.11.8-MariaDB-log`.
    pub version: String,
    /// `@@version_comment`, e.g. `Source distribution`, `mariadb.org binary distribution`.
    pub version_comment: String,
    /// `@@aurora_version` when the variable exists (Aurora MySQL only), e.g. `3.08.0`.
    pub aurora_version: Option<String>,
}

/// Detects the flavour and version from the probe. Never fails: an unparsable version reads
/// as 0.0.0, which selects the oldest (most widely accepted) syntax.
pub fn detect(report: &ServerReport) -> ServerInfo {
    let says_mariadb = report.version.to_ascii_lowercase().contains("mariadb")
        || report.version_comment.to_ascii_lowercase().contains("mariadb");
    let flavor = if report.aurora_version.as_deref().is_some_and(|v| !v.trim().is_empty()) {
        Flavor::AuroraMySql
    } else if says_mariadb {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    // MariaDB 10.x once announced itself as `5.5.5-10.x.y-MariaDB` for old clients; VERSION()
    // does not, but a proxy might relay the handshake string, so strip the prefix if present.
    let version_text = match report.version.strip_prefix("5.5.5-") {
        Some(rest) if flavor == Flavor::MariaDb => rest,
        _ => report.version.as_str(),
    };
    let version_string = match (&flavor, &report.aurora_version) {
        (Flavor::AuroraMySql, Some(aurora)) => format!("{} (Aurora MySQL {})", report.version, aurora.trim()),
        _ => report.version.clone(),
    };
    ServerInfo { flavor, version: parse_version(version_text), version_string }
}

/// Reads the leading `major.minor.patch` of a version string; missing parts read as 0.
pub fn parse_version(text: &str) -> (u32, u32, u32) {
    let mut parts = [0u32; 3];
    for (slot, piece) in parts.iter_mut().zip(text.trim().split('.')) {
        let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse() {
            Ok(n) => *slot = n,
            Err(_) => break,
        }
        if digits.len() != piece.len() {
            break;
        }
    }
    (parts[0], parts[1], parts[2])
}

/// How a server models roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleModel {
    /// No roles (MySQL 5.7 and older, MariaDB before 10.0.5).
    None,
    /// MySQL 8+: roles are accounts (`'r'@'%'`) in `mysql.role_edges`, with any number of
    /// default roles in `mysql.default_roles`.
    MySql,
    /// MariaDB: roles are host-less names in `mysql.roles_mapping`, one default role in
    /// `mysql.user.default_role`.
    MariaDb,
}

/// The syntax and catalog features a server has. Built from [`ServerInfo`] only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `ALTER USER ... IDENTIFIED BY`, and `REQUIRE`/`WITH MAX_...` on CREATE/ALTER USER
    /// (MySQL 5.7.6+, MariaDB 10.2+). Without it: `SET PASSWORD ... = PASSWORD(...)` and
    /// `GRANT USAGE ... REQUIRE/WITH`.
    pub alter_user: bool,
    /// `CREATE USER IF NOT EXISTS` and `DROP USER IF EXISTS` (MySQL 5.7.8+, MariaDB 10.1.3+).
    pub user_if_exists: bool,
    /// `IDENTIFIED WITH <plugin> BY '<password>'` (MySQL 5.7.6+; MariaDB spells it differently).
    pub identified_with_plugin_by: bool,
    /// A user may run `ALTER USER CURRENT_USER() IDENTIFIED BY` without privileges (MySQL
    /// 5.7.6+). MariaDB demands CREATE USER for any ALTER USER, so an application user changes
    /// its own password with `SET PASSWORD = PASSWORD(...)`, which MariaDB applies through the
    /// account's own plugin.
    pub alter_own_password: bool,
    pub roles: RoleModel,
    /// MariaDB 10.1.1+: the `MAX_STATEMENT_TIME` resource limit.
    pub max_statement_time: bool,
    /// MySQL 8+: dynamic global privileges in `mysql.global_grants`.
    pub global_grants_table: bool,
    /// MySQL 8.0.16+: partial revokes, stored as `Restrictions` in `mysql.user.User_attributes`.
    pub partial_revokes: bool,
}

impl Capabilities {
    pub fn of(server: &ServerInfo) -> Self {
        let at_least = |major, minor, patch| server.at_least(major, minor, patch);
        match server.flavor {
            Flavor::MariaDb => Self {
                alter_user: at_least(10, 2, 0),
                user_if_exists: at_least(10, 1, 3),
                identified_with_plugin_by: false,
                alter_own_password: false,
                roles: if at_least(10, 1, 1) { RoleModel::MariaDb } else { RoleModel::None },
                max_statement_time: at_least(10, 1, 1),
                global_grants_table: false,
                partial_revokes: false,
            },
            // Aurora MySQL reports the MySQL version it is compatible with (5.6.10, 5.7.12, 8.0.x).
            _ => Self {
                alter_user: at_least(5, 7, 6),
                user_if_exists: at_least(5, 7, 8),
                identified_with_plugin_by: at_least(5, 7, 6),
                alter_own_password: at_least(5, 7, 6),
                roles: if at_least(8, 0, 0) { RoleModel::MySql } else { RoleModel::None },
                max_statement_time: false,
                global_grants_table: at_least(8, 0, 0),
                partial_revokes: at_least(8, 0, 16),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(version: &str, comment: &str, aurora: Option<&str>) -> ServerReport {
        ServerReport { version: version.into(), version_comment: comment.into(), aurora_version: aurora.map(str::to_owned) }
    }

    #[test]
    fn flavours_come_from_what_the_server_reports() {
        let cases = [
            (report("8.0.39", "MySQL Community Server - GPL", None), Flavor::MySql, (8, 0, 39)),
            (report("9.1.0", "Source distribution", None), Flavor::MySql, (9, 1, 0)),
            (report("5.7.44-log", "Source distribution", None), Flavor::MySql, (5, 7, 44)),
            (report("10.11.8-MariaDB-log", "managed by https://aws.amazon.com/rds/", None), Flavor::MariaDb, (10, 11, 8)),
            (report("11.4.2-MariaDB", "mariadb.org binary distribution", None), Flavor::MariaDb, (11, 4, 2)),
            (report("10.6.18", "MariaDB Server", None), Flavor::MariaDb, (10, 6, 18)),
            (report("5.5.5-10.3.39-MariaDB", "", None), Flavor::MariaDb, (10, 3, 39)),
            (report("8.0.39", "Source distribution", Some("3.08.0")), Flavor::AuroraMySql, (8, 0, 39)),
            (report("5.7.12", "MySQL Community Server (GPL)", Some("2.12.1")), Flavor::AuroraMySql, (5, 7, 12)),
            (report("8.0.39", "Source distribution", Some("")), Flavor::MySql, (8, 0, 39)),
        ];
        for (report, flavor, version) in cases {
            let info = detect(&report);
            assert_eq!((info.flavor, info.version), (flavor, version), "{report:?}");
        }
        let aurora = detect(&report("8.0.39", "", Some("3.08.0")));
        assert_eq!(aurora.version_string, "8.0.39 (Aurora MySQL 3.08.0)");
    }

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(parse_version("8.0.39-0ubuntu0.22.04.1"), (8, 0, 39));
        assert_eq!(parse_version("10.11"), (10, 11, 0));
        assert_eq!(parse_version("garbage"), (0, 0, 0));
        assert_eq!(parse_version("5.7.12a.1"), (5, 7, 12));
    }

    fn caps(flavor: Flavor, version: (u32, u32, u32)) -> Capabilities {
        Capabilities::of(&ServerInfo { flavor, version, version_string: String::new() })
    }

    #[test]
    fn syntax_follows_capabilities_not_the_first_digit() {
        // MySQL 9 is a MySQL 8 successor, not something older: modern syntax and roles.
        let mysql9 = caps(Flavor::MySql, (9, 0, 1));
        assert!(mysql9.alter_user && mysql9.user_if_exists && mysql9.global_grants_table && mysql9.partial_revokes);
        assert!(!caps(Flavor::MySql, (8, 0, 15)).partial_revokes);
        assert!(!caps(Flavor::MariaDb, (11, 4, 0)).partial_revokes);
        assert_eq!(mysql9.roles, RoleModel::MySql);
        // MariaDB 10.2+ has ALTER USER even though its version does not start with 8.
        assert!(caps(Flavor::MariaDb, (10, 2, 0)).alter_user);
        assert!(!caps(Flavor::MariaDb, (10, 1, 48)).alter_user);
        assert!(caps(Flavor::MariaDb, (10, 1, 48)).user_if_exists);
        assert_eq!(caps(Flavor::MariaDb, (11, 4, 0)).roles, RoleModel::MariaDb);
        // MySQL 5.7.6 introduced ALTER USER ... IDENTIFIED BY; IF [NOT] EXISTS came in 5.7.8.
        assert!(!caps(Flavor::MySql, (5, 7, 5)).alter_user);
        let mysql576 = caps(Flavor::MySql, (5, 7, 6));
        assert!(mysql576.alter_user && !mysql576.user_if_exists);
        assert_eq!(caps(Flavor::MySql, (5, 7, 44)).roles, RoleModel::None);
        // Aurora MySQL 2 (5.7.12) and 3 (8.0.x) follow their MySQL base.
        assert!(caps(Flavor::AuroraMySql, (5, 7, 12)).user_if_exists);
        assert_eq!(caps(Flavor::AuroraMySql, (8, 0, 39)).roles, RoleModel::MySql);
        assert!(!caps(Flavor::AuroraMySql, (5, 6, 10)).alter_user);
    }
}
