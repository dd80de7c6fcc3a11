//! Which rotation strategy a secret uses. The deployed rotator knows it from its
//! `ROTATION_STRATEGY`; from outside, `--strategy` says it, else `ROTATION_STRATEGY` in this
//! environment, else the secret: an alternating-users secret must name its master secret
//! (`masterarn`), which the provisioner writes only for alternating users.

use dbcreds_core::SecretDocument;
use dbcreds_rotation::Strategy;
use dbcreds_rotation::config::ROTATION_STRATEGY;

/// `--strategy` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    SingleUser,
    AlternatingUsers,
}

impl From<StrategyArg> for Strategy {
    fn from(arg: StrategyArg) -> Self {
        match arg {
            StrategyArg::SingleUser => Strategy::SingleUser,
            StrategyArg::AlternatingUsers => Strategy::AlternatingUsers,
        }
    }
}

/// The strategy, and why it was chosen (for the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub strategy: Strategy,
    pub because: &'static str,
}

pub fn choose(flag: Option<StrategyArg>, env: Option<Strategy>, current: Option<&SecretDocument>) -> Chosen {
    if let Some(flag) = flag {
        return Chosen { strategy: flag.into(), because: "--strategy" };
    }
    if let Some(strategy) = env {
        return Chosen { strategy, because: "ROTATION_STRATEGY" };
    }
    match current.and_then(SecretDocument::masterarn) {
        Some(_) => Chosen { strategy: Strategy::AlternatingUsers, because: "AWSCURRENT names a master secret in masterarn" },
        None => Chosen { strategy: Strategy::SingleUser, because: "AWSCURRENT names no master secret in masterarn" },
    }
}

/// `ROTATION_STRATEGY` from the environment, when set (a bad value is an error naming it).
pub fn from_environment() -> Result<Option<Strategy>, dbcreds_core::InputError> {
    match std::env::var(ROTATION_STRATEGY).ok().filter(|v| !v.trim().is_empty()) {
        Some(value) => Strategy::parse(&value).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbcreds_core::SecretString;

    fn document(text: &str) -> SecretDocument {
        SecretDocument::parse(SecretString::from(text)).unwrap()
    }

    #[test]
    fn the_flag_wins_then_the_environment_then_masterarn() {
        let alternating = document(r#"{"username":"app","masterarn":"arn:m"}"#);
        let single = document(r#"{"username":"app"}"#);
        assert_eq!(choose(Some(StrategyArg::SingleUser), Some(Strategy::AlternatingUsers), Some(&alternating)).strategy, Strategy::SingleUser);
        assert_eq!(choose(None, Some(Strategy::SingleUser), Some(&alternating)).because, "ROTATION_STRATEGY");
        assert_eq!(choose(None, None, Some(&alternating)).strategy, Strategy::AlternatingUsers);
        assert_eq!(choose(None, None, Some(&single)).strategy, Strategy::SingleUser);
        assert_eq!(choose(None, None, None).strategy, Strategy::SingleUser);
    }
}
