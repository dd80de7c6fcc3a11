//! The SCRAM-SHA-256 verifier PostgreSQL stores for a password, computed on the client.
//!
//! This is what libpq's `PQencryptPasswordConn` does, so that `ALTER ROLE ... PASSWORD` carries
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` and the plaintext never appears in
//! SQL text, statement logs, `pg_stat_activity` or error reports. The server stores a string in
//! this format as is (whatever `password_encryption` says).
//!
//! Steps, as in PostgreSQL's `scram_build_secret` (RFC 5802 / RFC 7677):
//! 1. SASLprep the password exactly as PostgreSQL's `pg_saslprep` does (see [`pg_saslprep`]); if
//!    that fails, use the password's bytes unchanged, as both libpq and the server do.
//! 2. SaltedPassword = PBKDF2-HMAC-SHA-256(password, 16 random bytes, 4096 iterations).
//! 3. StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")),
//!    ServerKey = HMAC(SaltedPassword, "Server Key").
//!
//! Every intermediate buffer that could help recover the password is zeroised.

use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use dbcreds_core::{InputError, SecretString};
use std::num::NonZeroU32;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// PostgreSQL's default (`scram_iterations`, 4096 before 16 and by default since).
pub const ITERATIONS: u32 = 4096;
/// PostgreSQL's salt length.
pub const SALT_LEN: usize = 16;
/// libpq refuses to SASLprep (and so to log in with) a password longer than this, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A SCRAM-SHA-256 verifier. It is not the password, but it allows an offline guessing attack
/// and, with the StoredKey, impersonating the server, so it is kept as a secret too.
#[derive(Clone)]
pub struct ScramVerifier(SecretString);

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier(<redacted>)")
    }
}

impl ScramVerifier {
    /// The verifier of `password` with a fresh random salt.
    pub fn new(password: &SecretString) -> Result<Self, InputError> {
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        getrandom::fill(&mut *salt).map_err(|_| InputError::invalid("password", "the random number generator failed", "retry"))?;
        Self::with_salt(password.expose().as_bytes(), &*salt, ITERATIONS)
    }

    /// The verifier with a given salt and iteration count (tests and cross-checks).
    pub fn with_salt(password: &[u8], salt: &[u8], iterations: u32) -> Result<Self, InputError> {
        check_password(password)?;
        let iterations = NonZeroU32::new(iterations).ok_or_else(|| InputError::invalid("iterations", "is zero", "use 4096"))?;
        if salt.is_empty() {
            return Err(InputError::invalid("salt", "is empty", "use 16 random bytes"));
        }
        let prepared = pg_saslprep(password);
        let mut salted = Zeroizing::new([0u8; 32]);
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, &prepared, &mut *salted);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &*salted);
        let client_key = Zeroizing::new(hmac::sign(&key, b"Client Key").as_ref().to_vec());
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        let server_key = hmac::sign(&key, b"Server Key");
        let text = format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            iterations,
            BASE64.encode(salt),
            BASE64.encode(stored_key.as_ref()),
            BASE64.encode(server_key.as_ref())
        );
        Ok(Self(SecretString::new(text)))
    }

    pub fn as_secret(&self) -> &SecretString {
        &self.0
    }

    /// Parses `SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>` into (iterations, salt) when the
    /// text has that shape with valid base64 and 32-byte keys.
    pub fn parse_salt(text: &str) -> Option<(u32, Vec<u8>)> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iterations.parse().ok()?;
        let salt = BASE64.decode(salt).ok()?;
        let stored_ok = BASE64.decode(stored).ok()?.len() == 32;
        let server_ok = BASE64.decode(server).ok()?.len() == 32;
        (stored_ok && server_ok && iterations > 0 && !salt.is_empty()).then_some((iterations, salt))
    }
}

/// Passwords PostgreSQL clients can actually use: not empty (the server treats an empty
/// password as none), no NUL (the wire protocol sends a C string), at most 1024 bytes (libpq
/// refuses longer ones, so an application could never log in).
fn check_password(password: &[u8]) -> Result<(), InputError> {
    if password.is_empty() {
        return Err(InputError::invalid("password", "is empty", "set a non-empty password"));
    }
    if password.contains(&0) {
        return Err(InputError::invalid("password", "contains a NUL byte, which PostgreSQL cannot receive", "exclude NUL from the password alphabet"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(InputError::invalid(
            "password",
            format!("is {} bytes, over the {MAX_PASSWORD_BYTES} bytes libpq accepts", password.len()),
            format!("use at most {MAX_PASSWORD_BYTES} bytes (PASSWORD_LENGTH)"),
        ));
    }
    Ok(())
}

/// SASLprep as PostgreSQL's `pg_saslprep` implements it, returning the bytes to hash:
/// - pure ASCII is used as is (no check for control characters);
/// - not UTF-8: the raw bytes;
/// - otherwise non-ASCII spaces map to a space, "commonly mapped to nothing" characters are
///   removed, an empty result is "prohibited", the prohibited-output, unassigned and
///   bidirectional checks run on the *mapped* characters (before normalisation, as PostgreSQL
///   does), and the result is the NFKC normalisation of the mapped characters;
/// - "prohibited" means: use the raw bytes.
pub fn pg_saslprep(password: &[u8]) -> Zeroizing<Vec<u8>> {
    let raw = || Zeroizing::new(password.to_vec());
    if password.is_ascii() {
        return raw();
    }
    let Ok(text) = std::str::from_utf8(password) else {
        return raw();
    };
    use stringprep::tables;
    let mapped: Zeroizing<Vec<char>> = Zeroizing::new(
        text.chars()
            .filter(|c| !tables::commonly_mapped_to_nothing(*c))
            .map(|c| if tables::non_ascii_space_character(c) { ' ' } else { c })
            .collect(),
    );
    if mapped.is_empty() {
        return raw();
    }
    let prohibited = |c: char| {
        tables::non_ascii_space_character(c)
            || tables::ascii_control_character(c)
            || tables::non_ascii_control_character(c)
            || tables::private_use(c)
            || tables::non_character_code_point(c)
            || tables::surrogate_code(c)
            || tables::inappropriate_for_plain_text(c)
            || tables::inappropriate_for_canonical_representation(c)
            || tables::change_display_properties_or_deprecated(c)
            || tables::tagging_character(c)
            || tables::unassigned_code_point(c)
    };
    if mapped.iter().any(|c| prohibited(*c)) {
        return raw();
    }
    if mapped.iter().any(|c| tables::bidi_r_or_al(*c)) {
        let first = mapped[0];
        let last = mapped[mapped.len() - 1];
        if mapped.iter().any(|c| tables::bidi_l(*c)) || !tables::bidi_r_or_al(first) || !tables::bidi_r_or_al(last) {
            return raw();
        }
    }
    let normalized: Zeroizing<String> = Zeroizing::new(mapped.iter().copied().nfkc().collect());
    Zeroizing::new(normalized.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-salt vector of postgres-protocol's own test suite (password "secret", salt
    /// bytes 1..=16), which its authors checked against PostgreSQL.
    #[test]
    fn matches_a_published_vector() {
        let salt: Vec<u8> = (1..=16).collect();
        let verifier = ScramVerifier::with_salt(b"secret", &salt, 4096).unwrap();
        assert_eq!(
            verifier.as_secret().expose(),
            "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA="
        );
    }

    /// postgres-protocol's `scram_sha_256` is a second, independent implementation of libpq's
    /// algorithm: take its random salt and recompute.
    #[test]
    fn agrees_with_postgres_protocol_for_ascii_and_unicode() {
        let every_printable: String = (0x20u8..0x7f).map(char::from).collect();
        for password in ["pencil", every_printable.as_str(), "päßwörd", "ｆｕｌｌｗｉｄｔｈ", "a\u{00A0}b", "x\u{00AD}y", "\u{0627}\u{0644}"] {
            let theirs = postgres_protocol::password::scram_sha_256(password.as_bytes());
            let (iterations, salt) = ScramVerifier::parse_salt(&theirs).expect("their verifier parses");
            let ours = ScramVerifier::with_salt(password.as_bytes(), &salt, iterations).unwrap();
            assert_eq!(ours.as_secret().expose(), theirs, "{password:?}");
        }
    }

    #[test]
    fn fresh_verifiers_use_random_salt_and_default_iterations() {
        let password = SecretString::from("correct horse");
        let a = ScramVerifier::new(&password).unwrap();
        let b = ScramVerifier::new(&password).unwrap();
        assert_ne!(a.as_secret().expose(), b.as_secret().expose());
        let (iterations, salt) = ScramVerifier::parse_salt(a.as_secret().expose()).unwrap();
        assert_eq!((iterations, salt.len()), (ITERATIONS, SALT_LEN));
        // Nothing SQL would have to escape.
        assert!(a.as_secret().expose().chars().all(|c| c.is_ascii_alphanumeric() || "+/=$:-".contains(c)));
    }

    #[test]
    fn saslprep_follows_postgres() {
        assert_eq!(&*pg_saslprep(b"ascii\x01ctl"), b"ascii\x01ctl");
        assert_eq!(&*pg_saslprep("a\u{00A0}b".as_bytes()), b"a b");
        assert_eq!(&*pg_saslprep("x\u{00AD}y".as_bytes()), b"xy");
        assert_eq!(&*pg_saslprep("ｆｕｌｌ".as_bytes()), b"full");
        // Mapped to nothing at all: PostgreSQL calls that prohibited and keeps the raw bytes.
        assert_eq!(&*pg_saslprep("\u{00AD}".as_bytes()), "\u{00AD}".as_bytes());
        // Prohibited (private use), and mixed bidi text: raw bytes.
        assert_eq!(&*pg_saslprep("a\u{E000}".as_bytes()), "a\u{E000}".as_bytes());
        assert_eq!(&*pg_saslprep("\u{0627}a\u{0627}".as_bytes()), "\u{0627}a\u{0627}".as_bytes());
        assert_eq!(&*pg_saslprep(b"\xff\xfe"), b"\xff\xfe");
    }

    #[test]
    fn unusable_passwords_are_refused_without_echo() {
        for (password, what) in [(&b""[..], "empty"), (b"a\0b", "NUL"), (&[b'x'; 1025][..], "1024")] {
            let err = ScramVerifier::with_salt(password, b"salt", 4096).unwrap_err();
            assert_eq!(err.field, "password");
            assert!(err.to_string().contains(what), "{err}");
        }
        assert!(ScramVerifier::with_salt(&[b'x'; 1024], b"salt", 4096).is_ok());
    }

    #[test]
    fn debug_never_shows_the_verifier() {
        let verifier = ScramVerifier::new(&SecretString::from("pw")).unwrap();
        assert!(!format!("{verifier:?}").contains("SCRAM"));
    }

    #[test]
    fn parse_salt_rejects_malformed_text() {
        assert!(ScramVerifier::parse_salt("md5abc").is_none());
        assert!(ScramVerifier::parse_salt("SCRAM-SHA-256$x:AAAA$AAAA:AAAA").is_none());
        assert!(ScramVerifier::parse_salt("SCRAM-SHA-256$4096:AAAA$AAAA:AAAA").is_none());
    }
}
