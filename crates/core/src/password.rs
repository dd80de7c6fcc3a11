//! Password policy and generation.
//!
//! We generate passwords locally from the operating system's CSPRNG instead of calling Secrets
//! Manager's GetRandomPassword. The policy knobs and defaults are exactly AWS's (the same
//! environment variables as their rotation functions), so the passwords are drawn from the same
//! alphabet; generating locally saves a network round trip per rotation, works when the function
//! has no route to the service yet, and keeps the password out of one more API response.

use crate::env::{parse_bool, parse_u32};
use crate::error::InputError;
use crate::sensitive::SecretString;

/// AWS GetRandomPassword's punctuation set.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// What AWS's MySQL rotation function excludes by default.
pub const DEFAULT_EXCLUDE_CHARACTERS: &str = "/@\"'\\";
pub const DEFAULT_LENGTH: u32 = 32;
/// GetRandomPassword accepts 1..=4096; we need room for one character of each included type.
pub const MAX_LENGTH: u32 = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: u32,
    pub exclude_characters: String,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    pub require_each_included_type: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: DEFAULT_LENGTH,
            exclude_characters: DEFAULT_EXCLUDE_CHARACTERS.into(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            require_each_included_type: true,
        }
    }
}

impl PasswordPolicy {
    /// Reads `PASSWORD_LENGTH`, `EXCLUDE_CHARACTERS`, `EXCLUDE_NUMBERS`, `EXCLUDE_PUNCTUATION`,
    /// `EXCLUDE_UPPERCASE`, `EXCLUDE_LOWERCASE` and `REQUIRE_EACH_INCLUDED_TYPE` through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InputError> {
        let defaults = Self::default();
        let flag = |name: &str, default: bool| -> Result<bool, InputError> {
            lookup(name).map_or(Ok(default), |v| parse_bool(name, &v))
        };
        let policy = Self {
            length: lookup("PASSWORD_LENGTH")
                .map_or(Ok(defaults.length), |v| parse_u32("PASSWORD_LENGTH", &v, 1, MAX_LENGTH))?,
            exclude_characters: lookup("EXCLUDE_CHARACTERS").unwrap_or(defaults.exclude_characters),
            exclude_numbers: flag("EXCLUDE_NUMBERS", false)?,
            exclude_punctuation: flag("EXCLUDE_PUNCTUATION", false)?,
            exclude_uppercase: flag("EXCLUDE_UPPERCASE", false)?,
            exclude_lowercase: flag("EXCLUDE_LOWERCASE", false)?,
            require_each_included_type: flag("REQUIRE_EACH_INCLUDED_TYPE", true)?,
        };
        policy.classes()?;
        Ok(policy)
    }

    /// The character classes left after the exclusions, each non-empty.
    fn classes(&self) -> Result<Vec<Vec<char>>, InputError> {
        let keep = |set: &str, excluded: bool| -> Vec<char> {
            if excluded {
                return Vec::new();
            }
            set.chars().filter(|c| !self.exclude_characters.contains(*c)).collect()
        };
        let classes: Vec<Vec<char>> = [
            keep("ABCDEFGHIJKLMNOPQRSTUVWXYZ", self.exclude_uppercase),
            keep("abcdefghijklmnopqrstuvwxyz", self.exclude_lowercase),
            keep("0123456789", self.exclude_numbers),
            keep(PUNCTUATION, self.exclude_punctuation),
        ]
        .into_iter()
        .filter(|class| !class.is_empty())
        .collect();
        if classes.is_empty() {
            return Err(InputError::invalid(
                "EXCLUDE_CHARACTERS",
                "the exclusions leave no character to build a password from",
                "exclude fewer characters or character types",
            ));
        }
        if self.require_each_included_type && (self.length as usize) < classes.len() {
            return Err(InputError::invalid(
                "PASSWORD_LENGTH",
                format!("{} is shorter than the {} character types that must each appear", self.length, classes.len()),
                "raise PASSWORD_LENGTH or set REQUIRE_EACH_INCLUDED_TYPE=false",
            ));
        }
        Ok(classes)
    }
}

/// Draws a password from the OS CSPRNG. Each character is chosen uniformly (rejection sampling,
/// no modulo bias) from the union of the allowed classes; when every included type is required,
/// one position per class is drawn from that class and the positions are shuffled, which is how
/// GetRandomPassword behaves.
pub fn generate_password(policy: &PasswordPolicy) -> Result<SecretString, InputError> {
    let classes = policy.classes()?;
    let alphabet: Vec<char> = classes.iter().flatten().copied().collect();
    let length = policy.length as usize;
    let mut chars: Vec<char> = Vec::with_capacity(length);
    if policy.require_each_included_type {
        for class in &classes {
            chars.push(class[uniform_index(class.len())]);
        }
    }
    while chars.len() < length {
        chars.push(alphabet[uniform_index(alphabet.len())]);
    }
    // Fisher-Yates, so the required characters are not always at the front.
    for i in (1..chars.len()).rev() {
        chars.swap(i, uniform_index(i + 1));
    }
    let password: String = chars.iter().collect();
    zeroize::Zeroize::zeroize(&mut chars);
    Ok(SecretString::new(password))
}

/// A uniform index in `0..n` from the OS CSPRNG.
fn uniform_index(n: usize) -> usize {
    assert!(n > 0 && n <= u32::MAX as usize);
    let n = n as u32;
    // Reject the top partial range of u32 so every index is equally likely.
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        let value = u32::from_le_bytes(bytes);
        if value < zone {
            return (value % n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn policy(vars: &[(&str, &str)]) -> Result<PasswordPolicy, InputError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PasswordPolicy::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_aws() {
        let p = policy(&[]).unwrap();
        assert_eq!(p, PasswordPolicy::default());
        let pw = generate_password(&p).unwrap();
        assert_eq!(pw.len(), 32);
        for c in DEFAULT_EXCLUDE_CHARACTERS.chars() {
            assert!(!pw.expose().contains(c), "excluded {c} appeared");
        }
    }

    #[test]
    fn every_included_type_appears_when_required() {
        let p = policy(&[("PASSWORD_LENGTH", "4")]).unwrap();
        for _ in 0..200 {
            let pw = generate_password(&p).unwrap();
            let s = pw.expose();
            assert!(s.chars().any(|c| c.is_ascii_uppercase()), "{}", s.len());
            assert!(s.chars().any(|c| c.is_ascii_lowercase()));
            assert!(s.chars().any(|c| c.is_ascii_digit()));
            assert!(s.chars().any(|c| PUNCTUATION.contains(c)));
        }
    }

    #[test]
    fn exclusions_and_length_are_honoured() {
        let p = policy(&[("PASSWORD_LENGTH", "64"), ("EXCLUDE_PUNCTUATION", "true"), ("EXCLUDE_UPPERCASE", "yes"), ("EXCLUDE_CHARACTERS", "abc")]).unwrap();
        let pw = generate_password(&p).unwrap();
        assert_eq!(pw.len(), 64);
        assert!(pw.expose().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert!(!pw.expose().contains(['a', 'b', 'c']));
    }

    #[test]
    fn impossible_policies_are_refused_with_the_variable_named() {
        let err = policy(&[("EXCLUDE_NUMBERS", "1"), ("EXCLUDE_PUNCTUATION", "1"), ("EXCLUDE_UPPERCASE", "1"), ("EXCLUDE_LOWERCASE", "1")]).unwrap_err();
        assert_eq!(err.field, "EXCLUDE_CHARACTERS");
        assert_eq!(policy(&[("PASSWORD_LENGTH", "3")]).unwrap_err().field, "PASSWORD_LENGTH");
        assert_eq!(policy(&[("PASSWORD_LENGTH", "0")]).unwrap_err().field, "PASSWORD_LENGTH");
        assert_eq!(policy(&[("EXCLUDE_NUMBERS", "maybe")]).unwrap_err().field, "EXCLUDE_NUMBERS");
    }

    #[test]
    fn characters_are_spread_over_the_alphabet() {
        // A coarse check that the sampler is not stuck: 20k digits should hit every digit.
        let p = policy(&[("PASSWORD_LENGTH", "4096"), ("EXCLUDE_PUNCTUATION", "1"), ("EXCLUDE_UPPERCASE", "1"), ("EXCLUDE_LOWERCASE", "1")]).unwrap();
        let pw = generate_password(&p).unwrap();
        for d in '0'..='9' {
            let count = pw.expose().chars().filter(|c| *c == d).count();
            assert!(count > 250 && count < 600, "digit {d} appeared {count} times in 4096");
        }
    }
}
