//! Rules for the names we put into SQL: user names, database names, role names.
//!
//! Every identifier is validated before it reaches a server, and then quoted by the engine's
//! rules anyway (defence in depth, in the db crate). Validation is deliberately strict: ASCII
//! letters, digits, `_`, `$` and `-`, starting with a letter or `_`. That accepts every name AWS's
//! consoles and samples produce (`DBUserA`, `app_iam`, `my-app_clone`) and rejects quotes,
//! backticks, semicolons, whitespace, NUL and Unicode confusables, which have no business in a
//! credential's user name and are the raw material of injection and spoofing.

use crate::engine::EngineFamily;
use crate::error::InputError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifierKind {
    User,
    Database,
}

impl IdentifierKind {
    fn noun(self) -> &'static str {
        match self {
            IdentifierKind::User => "user name",
            IdentifierKind::Database => "database name",
        }
    }
}

/// The longest name each engine stores, in characters (all names here are ASCII).
/// MySQL 5.7.8+ and 8.x/9.x: 32 for user names, 64 for schema names. MariaDB allows 80 for user
/// names, but 32 keeps a name portable across the MySQL family, which matters when a secret moves
/// between MySQL and Aurora MySQL. PostgreSQL: NAMEDATALEN - 1 = 63 bytes for every identifier.
pub fn max_len(family: EngineFamily, kind: IdentifierKind) -> usize {
    match (family, kind) {
        (EngineFamily::MySql, IdentifierKind::User) => 32,
        (EngineFamily::MySql, IdentifierKind::Database) => 64,
        (EngineFamily::Postgres, _) => 63,
    }
}

/// Validates `value` as an identifier of `kind` for `family`, with an optional tighter or looser
/// limit (`USERNAME_CHARACTER_LIMIT`). `field` names where the value came from, for the error.
pub fn validate_identifier(
    field: &str,
    value: &str,
    family: EngineFamily,
    kind: IdentifierKind,
    limit_override: Option<usize>,
) -> Result<(), InputError> {
    let limit = limit_override.unwrap_or_else(|| max_len(family, kind));
    let noun = kind.noun();
    let shown = crate::sanitize::for_log(value);
    if value.is_empty() {
        return Err(InputError::invalid(field, format!("the {noun} is empty"), format!("set a {noun}")));
    }
    if value.contains('\0') {
        return Err(InputError::invalid(field, format!("the {noun} contains a NUL byte"), "remove it"));
    }
    if let Some(bad) = value.chars().find(|c| !is_allowed(*c)) {
        return Err(InputError::invalid(
            field,
            format!("the {noun} {shown} contains {}", describe(bad)),
            "use only ASCII letters, digits, '_', '$' and '-'",
        ));
    }
    let first = value.chars().next().unwrap_or('_');
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(InputError::invalid(field, format!("the {noun} {shown} does not start with a letter or '_'"), "start it with a letter or '_'"));
    }
    if value.len() > limit {
        return Err(InputError::invalid(
            field,
            format!("the {noun} {shown} is {} characters, over the {family} limit of {limit}", value.len()),
            format!("use at most {limit} characters"),
        ));
    }
    Ok(())
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-')
}

fn describe(c: char) -> String {
    match c {
        '\'' => "a single quote".into(),
        '"' => "a double quote".into(),
        '`' => "a backtick".into(),
        ';' => "a semicolon".into(),
        c if c.is_whitespace() => "white space".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c if !c.is_ascii() => format!("the non-ASCII character U+{:04X}", c as u32),
        c => format!("the character '{c}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EngineFamily::*;
    use IdentifierKind::*;

    #[test]
    fn ordinary_names_pass() {
        for name in ["DBUserA", "app_iam", "my-app_clone", "_x", "u$1"] {
            validate_identifier("username", name, MySql, User, None).unwrap();
            validate_identifier("username", name, Postgres, User, None).unwrap();
        }
    }

    #[test]
    fn hostile_names_are_rejected_with_the_field_named() {
        for name in ["a'; DROP USER root; --", "a`b", "a\"b", "a\0b", "a b", "a\nb", "аdmin" /* Cyrillic a */, "1abc", ""] {
            let err = validate_identifier("secret.username", name, MySql, User, None).unwrap_err();
            assert_eq!(err.field, "secret.username", "{name:?}");
        }
    }

    #[test]
    fn limits_follow_the_engine() {
        let name32 = "a".repeat(32);
        validate_identifier("u", &name32, MySql, User, None).unwrap();
        assert!(validate_identifier("u", &format!("{name32}b"), MySql, User, None).is_err());
        validate_identifier("u", &"a".repeat(63), Postgres, User, None).unwrap();
        let err = validate_identifier("u", &"a".repeat(64), Postgres, User, None).unwrap_err();
        assert!(err.problem.contains("63"), "{err}");
        assert!(validate_identifier("u", "abcdefghijklmnopq", MySql, User, Some(16)).is_err());
    }
}
