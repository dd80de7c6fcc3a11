//! Database engines as AWS's secret document names them, and the two families we drive.

use crate::error::InputError;
use std::fmt;

/// The engine family decides the driver, the SQL dialect and the identifier rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineFamily {
    /// MySQL, MariaDB and Aurora MySQL: one wire protocol, one driver.
    MySql,
    /// PostgreSQL and Aurora PostgreSQL.
    Postgres,
}

impl EngineFamily {
    pub fn default_port(self) -> u16 {
        match self {
            EngineFamily::MySql => 3306,
            EngineFamily::Postgres => 5432,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EngineFamily::MySql => "mysql",
            EngineFamily::Postgres => "postgres",
        }
    }
}

impl fmt::Display for EngineFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `engine` value of a secret, kept as written so it round-trips, with its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    MySql,
    MariaDb,
    AuroraMySql,
    /// `aurora`: the legacy name of Aurora MySQL 5.6-compatible clusters.
    Aurora,
    Postgres,
    /// `postgresql`: accepted as an alias of `postgres`.
    PostgreSql,
    AuroraPostgreSql,
}

/// The names accepted in the secret's `engine` key, for error messages.
pub const ACCEPTED_ENGINES: &str =
    "mysql, mariadb, aurora-mysql, aurora, postgres, postgresql, aurora-postgresql";

impl Engine {
    pub const ALL: [Engine; 7] = [
        Engine::MySql,
        Engine::MariaDb,
        Engine::AuroraMySql,
        Engine::Aurora,
        Engine::Postgres,
        Engine::PostgreSql,
        Engine::AuroraPostgreSql,
    ];

    /// Parses the secret's `engine` value. Matching is exact apart from ASCII case, because a
    /// near miss (`my-sql`, `postgre`) is more likely a typo worth reporting than an alias.
    pub fn parse(field: &str, value: &str) -> Result<Self, InputError> {
        let lowered = value.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|engine| engine.as_str() == lowered)
            .ok_or_else(|| {
                InputError::invalid(
                    field,
                    format!("unknown engine {}", crate::sanitize::for_log(value)),
                    format!("use one of {ACCEPTED_ENGINES}"),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::MySql => "mysql",
            Engine::MariaDb => "mariadb",
            Engine::AuroraMySql => "aurora-mysql",
            Engine::Aurora => "aurora",
            Engine::Postgres => "postgres",
            Engine::PostgreSql => "postgresql",
            Engine::AuroraPostgreSql => "aurora-postgresql",
        }
    }

    pub fn family(self) -> EngineFamily {
        match self {
            Engine::MySql | Engine::MariaDb | Engine::AuroraMySql | Engine::Aurora => {
                EngineFamily::MySql
            }
            Engine::Postgres | Engine::PostgreSql | Engine::AuroraPostgreSql => {
                EngineFamily::Postgres
            }
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_alias_maps_to_its_family() {
        for name in ["mysql", "mariadb", "aurora-mysql", "aurora", "MySQL"] {
            assert_eq!(Engine::parse("engine", name).unwrap().family(), EngineFamily::MySql, "{name}");
        }
        for name in ["postgres", "postgresql", "aurora-postgresql", "Postgres"] {
            assert_eq!(Engine::parse("engine", name).unwrap().family(), EngineFamily::Postgres, "{name}");
        }
    }

    #[test]
    fn unknown_engine_names_the_field_and_the_choices() {
        let err = Engine::parse("engine", "oracle").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("engine"), "{text}");
        assert!(text.contains("oracle"), "{text}");
        assert!(text.contains("aurora-postgresql"), "{text}");
    }

    #[test]
    fn canonical_names_round_trip() {
        for engine in Engine::ALL {
            assert_eq!(Engine::parse("engine", engine.as_str()).unwrap(), engine);
        }
    }
}
