//! What the provisioner asks for: a privilege set on one database.
//!
//! The presets are least privilege for the common roles of an application user. A list of
//! privilege names is validated against the engine's privileges that make sense on a database
//! and its objects (no global privileges such as SUPER, FILE or CREATE USER).

use dbcreds_core::{EngineFamily, InputError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivilegePreset {
    /// Read data: MySQL `SELECT, SHOW VIEW`; PostgreSQL `CONNECT`, `USAGE` on the schema,
    /// `SELECT` on its tables and sequences (now and in future).
    ReadOnly,
    /// Read and write data, no DDL: adds `INSERT, UPDATE, DELETE` (and MySQL `EXECUTE`,
    /// `CREATE TEMPORARY TABLES`, `LOCK TABLES`; PostgreSQL `USAGE` on sequences, `TEMPORARY`).
    ReadWrite,
    /// Everything on that database (DDL included), no GRANT OPTION, nothing elsewhere.
    Owner,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrivilegeSpec {
    Preset(PrivilegePreset),
    /// Upper-case privilege names, validated for the engine.
    List(Vec<String>),
}

/// Database-level privilege names accepted in a list, per engine family.
pub fn allowed_privilege_names(family: EngineFamily) -> &'static [&'static str] {
    match family {
        EngineFamily::MySql => &[
            "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX", "ALTER",
            "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW",
            "CREATE ROUTINE", "ALTER ROUTINE", "EVENT", "TRIGGER",
        ],
        EngineFamily::Postgres => &[
            "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "CREATE",
            "CONNECT", "TEMPORARY", "EXECUTE", "USAGE",
        ],
    }
}

impl PrivilegeSpec {
    /// Parses `readonly | readwrite | owner` or a list of names. `field` names the property.
    pub fn parse(field: &str, family: EngineFamily, preset_or_list: Result<&str, &[String]>) -> Result<Self, InputError> {
        match preset_or_list {
            Ok(name) => match name.to_ascii_lowercase().as_str() {
                "readonly" | "read-only" => Ok(Self::Preset(PrivilegePreset::ReadOnly)),
                "readwrite" | "read-write" => Ok(Self::Preset(PrivilegePreset::ReadWrite)),
                "owner" => Ok(Self::Preset(PrivilegePreset::Owner)),
                _ => Err(InputError::invalid(field, format!("unknown preset {}", dbcreds_core::sanitize::for_log(name)), "use readonly, readwrite, owner, or a list of privilege names")),
            },
            Err(list) => {
                if list.is_empty() {
                    return Err(InputError::invalid(field, "the privilege list is empty", "name at least one privilege, or use a preset"));
                }
                let allowed = allowed_privilege_names(family);
                let mut names = Vec::with_capacity(list.len());
                for (i, raw) in list.iter().enumerate() {
                    let name = raw.trim().to_ascii_uppercase().split_whitespace().collect::<Vec<_>>().join(" ");
                    if !allowed.contains(&name.as_str()) {
                        return Err(InputError::invalid(
                            format!("{field}[{i}]"),
                            format!("{} is not a database privilege {family} allows here", dbcreds_core::sanitize::for_log(raw)),
                            format!("use one of: {}", allowed.join(", ")),
                        ));
                    }
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                Ok(Self::List(names))
            }
        }
    }
}

/// One change a privilege sync made, for logs, dry runs and the grant-sync benchmark.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum GrantChange {
    Granted(String),
    Revoked(String),
    /// A role attribute, a membership, a TLS requirement or a default role changed.
    Altered(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_lists_parse() {
        assert_eq!(PrivilegeSpec::parse("Privileges", EngineFamily::MySql, Ok("ReadOnly")).unwrap(), PrivilegeSpec::Preset(PrivilegePreset::ReadOnly));
        let list = vec!["select".to_string(), "show  view".to_string(), "SELECT".to_string()];
        assert_eq!(PrivilegeSpec::parse("Privileges", EngineFamily::MySql, Err(&list)).unwrap(), PrivilegeSpec::List(vec!["SELECT".into(), "SHOW VIEW".into()]));
    }

    #[test]
    fn global_or_unknown_privileges_are_refused_by_position() {
        let list = vec!["SELECT".to_string(), "SUPER".to_string()];
        let err = PrivilegeSpec::parse("Users[0].Privileges", EngineFamily::MySql, Err(&list)).unwrap_err();
        assert_eq!(err.field, "Users[0].Privileges[1]");
        let list = vec!["SELECT; DROP TABLE x".to_string()];
        assert!(PrivilegeSpec::parse("P", EngineFamily::Postgres, Err(&list)).is_err());
        assert!(PrivilegeSpec::parse("P", EngineFamily::Postgres, Ok("admin")).is_err());
    }
}
