//! Commands the operator can paste: arguments quoted for a POSIX shell only when they need it,
//! and the global flags of this run carried into the `dbcreds` commands it suggests.

use crate::GlobalArgs;

/// `value` as one shell word: as is when it is plain, else in single quotes.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain { value.to_owned() } else { format!("'{}'", value.replace('\'', "'\\''")) }
}

/// A command line from its words.
pub fn command(words: &[&str]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// `dbcreds <args>` with this run's `--region`, `--profile` and `--ca-bundle`, so the suggested
/// command talks to the same account and trusts the same CAs.
pub fn dbcreds(global: &GlobalArgs, args: &[&str]) -> String {
    let mut words: Vec<String> = vec!["dbcreds".into()];
    words.extend(args.iter().map(|a| (*a).to_owned()));
    if let Some(region) = &global.region {
        words.extend(["--region".into(), region.clone()]);
    }
    if let Some(profile) = &global.profile {
        words.extend(["--profile".into(), profile.clone()]);
    }
    // Only when given as a flag: from DB_CA_BUNDLE, the operator's environment carries it already.
    if let Some(bundle) = &global.ca_bundle
        && std::env::var_os(dbcreds_db::tls::CA_BUNDLE_ENV).is_none_or(|env| env != bundle.as_os_str())
    {
        words.extend(["--ca-bundle".into(), bundle.display().to_string()]);
    }
    command(&words.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `aws secretsmanager <args>` with this run's `--region` and `--profile`.
pub fn aws(global: &GlobalArgs, args: &[&str]) -> String {
    let mut words: Vec<String> = vec!["aws".into(), "secretsmanager".into()];
    words.extend(args.iter().map(|a| (*a).to_owned()));
    if let Some(region) = &global.region {
        words.extend(["--region".into(), region.clone()]);
    }
    if let Some(profile) = &global.profile {
        words.extend(["--profile".into(), profile.clone()]);
    }
    command(&words.iter().map(String::as_str).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_words_that_need_it_are_quoted() {
        assert_eq!(quote("arn:aws:secretsmanager:eu-west-1:1:secret:prod/app-AbC123"), "arn:aws:secretsmanager:eu-west-1:1:secret:prod/app-AbC123");
        assert_eq!(quote("my secret"), "'my secret'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("{\"AutomaticallyAfterDays\":30}"), "'{\"AutomaticallyAfterDays\":30}'");
    }
}
