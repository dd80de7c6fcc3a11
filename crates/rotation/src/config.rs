//! The function's configuration: the same environment variables as AWS's rotation functions,
//! plus `ROTATION_STRATEGY`, so one build serves both of AWS's function kinds.

use dbcreds_core::env::parse_u32;
use dbcreds_core::sanitize::for_log;
use dbcreds_core::{Engine, EngineFamily, InputError, PasswordPolicy};

/// What AWS's PostgreSQL rotation functions exclude by default (MySQL's set plus `:`).
pub const POSTGRES_DEFAULT_EXCLUDE_CHARACTERS: &str = ":/@\"'\\";
/// What AWS's MySQL rotation functions exclude by default.
pub const MYSQL_DEFAULT_EXCLUDE_CHARACTERS: &str = "/@\"'\\";

/// The environment variable that picks the strategy.
pub const ROTATION_STRATEGY: &str = "ROTATION_STRATEGY";
pub const USERNAME_CHARACTER_LIMIT: &str = "USERNAME_CHARACTER_LIMIT";
/// How long a warm function may reuse the master secret it read (alternating users), in seconds.
pub const MASTER_SECRET_CACHE_SECONDS: &str = "MASTER_SECRET_CACHE_SECONDS";
/// Five minutes: a burst of rotations of the secrets that share one master (the provisioner's
/// DBUserA, DBUserB, ...) reads it once, while a master rotated since (RDS rotates a managed
/// master every 7 days by default) is read again at the latest that much later, and at once
/// when the database refuses the remembered password.
pub const DEFAULT_MASTER_SECRET_CACHE: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The user changes its own password (AWS's `...SingleUser` functions).
    SingleUser,
    /// A master secret (`masterarn`) keeps `<user>` and `<user>_clone` in step, and each rotation
    /// switches to the other one (AWS's `...MultiUser` functions).
    AlternatingUsers,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
        }
    }

    pub fn parse(value: &str) -> Result<Strategy, InputError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "single-user" | "single_user" | "singleuser" => Ok(Strategy::SingleUser),
            "alternating-users" | "alternating_users" | "alternatingusers" | "alternating" | "multi-user" | "multiuser" => Ok(Strategy::AlternatingUsers),
            _ => Err(InputError::invalid(ROTATION_STRATEGY, format!("{} is not a strategy", for_log(value)), "use single-user (the default) or alternating-users")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationConfig {
    pub strategy: Strategy,
    /// The policy from the environment. `EXCLUDE_CHARACTERS` unset means "the engine's AWS
    /// default", which [`RotationConfig::policy_for`] applies.
    pub policy: PasswordPolicy,
    pub exclude_characters_set: bool,
    /// `USERNAME_CHARACTER_LIMIT`, when set: replaces the engine's user-name limit.
    pub username_limit: Option<usize>,
    /// `MASTER_SECRET_CACHE_SECONDS`: how long the master secret's AWSCURRENT, once read, is
    /// reused without asking Secrets Manager (0: read it on every setSecret, as AWS's do).
    pub master_cache: std::time::Duration,
}

impl Default for RotationConfig {
    fn default() -> Self {
        Self { strategy: Strategy::SingleUser, policy: PasswordPolicy::default(), exclude_characters_set: false, username_limit: None, master_cache: DEFAULT_MASTER_SECRET_CACHE }
    }
}

impl RotationConfig {
    /// Reads `ROTATION_STRATEGY`, `USERNAME_CHARACTER_LIMIT`, `MASTER_SECRET_CACHE_SECONDS` and the password policy variables
    /// (`PASSWORD_LENGTH`, `EXCLUDE_CHARACTERS`, `EXCLUDE_NUMBERS`, `EXCLUDE_PUNCTUATION`,
    /// `EXCLUDE_UPPERCASE`, `EXCLUDE_LOWERCASE`, `REQUIRE_EACH_INCLUDED_TYPE`). Each bad value is an
    /// error naming its variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InputError> {
        let strategy = lookup(ROTATION_STRATEGY).map_or(Ok(Strategy::SingleUser), |v| Strategy::parse(&v))?;
        let policy = PasswordPolicy::from_lookup(&lookup)?;
        let exclude_characters_set = lookup("EXCLUDE_CHARACTERS").is_some();
        let username_limit = match lookup(USERNAME_CHARACTER_LIMIT).filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(parse_u32(USERNAME_CHARACTER_LIMIT, &v, 1, 128)? as usize),
            None => None,
        };
        let master_cache = match lookup(MASTER_SECRET_CACHE_SECONDS).filter(|v| !v.trim().is_empty()) {
            Some(v) => std::time::Duration::from_secs(u64::from(parse_u32(MASTER_SECRET_CACHE_SECONDS, &v, 0, 3600)?)),
            None => DEFAULT_MASTER_SECRET_CACHE,
        };
        let config = Self { strategy, policy, exclude_characters_set, username_limit, master_cache };
        // Both engine defaults must leave a usable alphabet, so a bad policy fails at start-up.
        for family in [EngineFamily::MySql, EngineFamily::Postgres] {
            dbcreds_core::generate_password(&config.policy_for(family))?;
        }
        Ok(config)
    }

    /// The password policy for an engine family: `EXCLUDE_CHARACTERS` when set, else the
    /// default of AWS's function for that engine.
    pub fn policy_for(&self, family: EngineFamily) -> PasswordPolicy {
        let mut policy = self.policy.clone();
        if !self.exclude_characters_set {
            policy.exclude_characters = match family {
                EngineFamily::MySql => MYSQL_DEFAULT_EXCLUDE_CHARACTERS,
                EngineFamily::Postgres => POSTGRES_DEFAULT_EXCLUDE_CHARACTERS,
            }
            .to_owned();
        }
        policy
    }

    /// The longest user name for this engine: `USERNAME_CHARACTER_LIMIT` when set, else the
    /// engine's real limit (MySQL 5.7.8+ and Aurora MySQL 32, MariaDB 80, PostgreSQL 63).
    pub fn username_limit_for(&self, engine: Engine) -> usize {
        self.username_limit.unwrap_or(match engine {
            Engine::MariaDb => 80,
            Engine::MySql | Engine::AuroraMySql | Engine::Aurora => 32,
            Engine::Postgres | Engine::PostgreSql | Engine::AuroraPostgreSql => 63,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<RotationConfig, InputError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RotationConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_single_user_with_each_engines_exclusions() {
        let c = config(&[]).unwrap();
        assert_eq!(c.strategy, Strategy::SingleUser);
        assert_eq!(c.policy_for(EngineFamily::MySql).exclude_characters, "/@\"'\\");
        assert_eq!(c.policy_for(EngineFamily::Postgres).exclude_characters, ":/@\"'\\");
        assert_eq!(c.username_limit_for(Engine::MySql), 32);
        assert_eq!(c.username_limit_for(Engine::MariaDb), 80);
        assert_eq!(c.username_limit_for(Engine::AuroraPostgreSql), 63);
        assert_eq!(c.master_cache, DEFAULT_MASTER_SECRET_CACHE);
        assert_eq!(config(&[("MASTER_SECRET_CACHE_SECONDS", "0")]).unwrap().master_cache, std::time::Duration::ZERO);
    }

    #[test]
    fn explicit_exclusions_apply_to_both_engines() {
        let c = config(&[("EXCLUDE_CHARACTERS", "xyz"), ("ROTATION_STRATEGY", "alternating-users"), ("USERNAME_CHARACTER_LIMIT", "16")]).unwrap();
        assert_eq!(c.strategy, Strategy::AlternatingUsers);
        assert_eq!(c.policy_for(EngineFamily::Postgres).exclude_characters, "xyz");
        assert_eq!(c.username_limit_for(Engine::MariaDb), 16);
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(config(&[("ROTATION_STRATEGY", "round-robin")]).unwrap_err().field, "ROTATION_STRATEGY");
        assert_eq!(config(&[("USERNAME_CHARACTER_LIMIT", "0")]).unwrap_err().field, "USERNAME_CHARACTER_LIMIT");
        assert_eq!(config(&[("PASSWORD_LENGTH", "x")]).unwrap_err().field, "PASSWORD_LENGTH");
        assert_eq!(config(&[("EXCLUDE_LOWERCASE", "perhaps")]).unwrap_err().field, "EXCLUDE_LOWERCASE");
        assert_eq!(config(&[("MASTER_SECRET_CACHE_SECONDS", "7200")]).unwrap_err().field, "MASTER_SECRET_CACHE_SECONDS");
    }
}
