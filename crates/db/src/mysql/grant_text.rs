//! Reading `SHOW GRANTS` lines with a real tokenizer.
//!
//! Privileges are *computed* from the structured catalog (see `grants.rs`); `SHOW GRANTS` text is
//! only displayed (`read_grants`, the doctor) and compared in tests. Both need care that AWS's
//! function does not take: splitting on `' TO '` breaks on names holding that text and drops
//! `WITH GRANT OPTION`, and MariaDB prints the account's password hash in the USAGE line.
//! The tokenizer knows backtick identifiers (`` `a``b` ``), strings in single quotes (backslash
//! escapes unless `NO_BACKSLASH_ESCAPES`, doubled quotes always), double quotes (identifiers under
//! `ANSI_QUOTES`, strings otherwise), words and punctuation, so it finds the grantee exactly.

use crate::mysql::sql::{SqlMode, quote_ident, string_literal};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Word,
    /// A quoted identifier (backticks, or double quotes under ANSI_QUOTES).
    Ident,
    Str,
    Punct,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// The value: the unquoted, unescaped text for identifiers and strings.
    pub value: String,
    /// Byte range in the line, quotes included.
    pub start: usize,
    pub end: usize,
}

/// Splits a statement into tokens. Returns `None` for text it cannot read (an unterminated
/// quote), which callers treat as "leave unchanged / not equal".
pub fn tokenize(line: &str, mode: SqlMode) -> Option<Vec<Token>> {
    let bytes = line.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            b'`' => {
                let (value, end) = read_quoted(line, i, b'`', false)?;
                tokens.push(Token { kind: TokenKind::Ident, value, start, end });
                i = end;
            }
            b'"' if mode.ansi_quotes => {
                let (value, end) = read_quoted(line, i, b'"', false)?;
                tokens.push(Token { kind: TokenKind::Ident, value, start, end });
                i = end;
            }
            b'\'' | b'"' => {
                let (value, end) = read_quoted(line, i, c, !mode.no_backslash_escapes)?;
                tokens.push(Token { kind: TokenKind::Str, value, start, end });
                i = end;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$' || bytes[i] >= 0x80) {
                    i += 1;
                }
                tokens.push(Token { kind: TokenKind::Word, value: line[start..i].to_owned(), start, end: i });
            }
            _ => {
                let len = line[i..].chars().next().map_or(1, char::len_utf8);
                i += len;
                tokens.push(Token { kind: TokenKind::Punct, value: line[start..i].to_owned(), start, end: i });
            }
        }
    }
    Some(tokens)
}

/// Reads a quoted token starting at `open`; returns the unescaped value and the end offset.
fn read_quoted(line: &str, open: usize, quote: u8, backslash_escapes: bool) -> Option<(String, usize)> {
    let bytes = line.as_bytes();
    let mut value = String::new();
    let mut i = open + 1;
    while i < bytes.len() {
        let c = bytes[i];
        if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                value.push(quote as char);
                i += 2;
                continue;
            }
            return Some((value, i + 1));
        }
        if c == b'\\' && backslash_escapes {
            let next = line[i + 1..].chars().next()?;
            value.push(match next {
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                '0' => '\0',
                'Z' => '\x1a',
                'b' => '\x08',
                other => other,
            });
            i += 1 + next.len_utf8();
            continue;
        }
        let ch = line[i..].chars().next()?;
        value.push(ch);
        i += ch.len_utf8();
    }
    None
}

fn is_word(token: &Token, word: &str) -> bool {
    token.kind == TokenKind::Word && token.value.eq_ignore_ascii_case(word)
}

/// Where the grantee sits: after the first top-level `TO` (GRANT), `FROM` (REVOKE) or `FOR`
/// (MariaDB's `SET DEFAULT ROLE ... FOR`). Returns the index of the user token and of the host
/// token (if an `@host` follows).
fn grantee_position(tokens: &[Token]) -> Option<(usize, Option<usize>)> {
    let first = tokens.first()?;
    let marker = if is_word(first, "GRANT") {
        "TO"
    } else if is_word(first, "REVOKE") {
        "FROM"
    } else if is_word(first, "SET") {
        "FOR"
    } else {
        return None;
    };
    let at = tokens.iter().position(|t| is_word(t, marker))?;
    let user = at + 1;
    let user_token = tokens.get(user)?;
    if !matches!(user_token.kind, TokenKind::Ident | TokenKind::Str | TokenKind::Word) {
        return None;
    }
    let host = match (tokens.get(user + 1), tokens.get(user + 2)) {
        (Some(at_sign), Some(host)) if at_sign.kind == TokenKind::Punct && at_sign.value == "@" => Some(user + 2).filter(|_| host.kind != TokenKind::Punct),
        _ => None,
    };
    Some((user, host))
}

/// The grantee of a GRANT/REVOKE/SET DEFAULT ROLE line as `(user, host)`.
pub fn grantee(line: &str, mode: SqlMode) -> Option<(String, Option<String>)> {
    let tokens = tokenize(line, mode)?;
    let (user, host) = grantee_position(&tokens)?;
    Some((tokens[user].value.clone(), host.map(|h| tokens[h].value.clone())))
}

/// Rewrites the grantee's user name, keeping everything else byte for byte. Returns `None` when
/// the line has no grantee or the grantee is not `from`.
pub fn replace_grantee(line: &str, mode: SqlMode, from: &str, to: &str) -> Option<String> {
    let tokens = tokenize(line, mode)?;
    let (user, _) = grantee_position(&tokens)?;
    let token = &tokens[user];
    if token.value != from {
        return None;
    }
    let replacement = match token.kind {
        TokenKind::Str => string_literal(to, mode).ok()?,
        _ => quote_ident(to),
    };
    Some(format!("{}{}{}", &line[..token.start], replacement, &line[token.end..]))
}

/// Replaces the authentication data MariaDB (and MySQL before 5.7.6) print in SHOW GRANTS:
/// every string after `IDENTIFIED` (`BY PASSWORD '*hash'`, `VIA plugin USING 'data'`, `AS '...'`)
/// up to `REQUIRE`/`WITH` becomes `'<redacted>'`. A line the tokenizer cannot read is replaced
/// whole if it mentions IDENTIFIED, since it might carry a hash.
pub fn redact_authentication(line: &str, mode: SqlMode) -> String {
    let Some(tokens) = tokenize(line, mode) else {
        return if line.to_ascii_uppercase().contains("IDENTIFIED") { "<unreadable grant line redacted>".into() } else { line.to_owned() };
    };
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    let mut in_auth = false;
    for token in &tokens {
        if is_word(token, "IDENTIFIED") {
            in_auth = true;
        } else if is_word(token, "REQUIRE") || is_word(token, "WITH") {
            in_auth = false;
        } else if in_auth && token.kind == TokenKind::Str {
            out.push_str(&line[last..token.start]);
            out.push_str(crate::mysql::sql::REDACTED_LITERAL);
            last = token.end;
        }
    }
    out.push_str(&line[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode() -> SqlMode {
        SqlMode::default()
    }

    #[test]
    fn finds_the_exact_grantee_in_every_shape() {
        let cases = [
            ("GRANT SELECT, INSERT ON `app\\_db`.* TO `u1`@`%` WITH GRANT OPTION", "u1", Some("%")),
            ("GRANT USAGE ON *.* TO 'u'@'10.0.%' IDENTIFIED BY PASSWORD '*ABC'", "u", Some("10.0.%")),
            ("GRANT `r1` TO `u1`@`%`", "u1", Some("%")),
            ("GRANT `r1`@`%`,`r2`@`%` TO `u1`@`localhost` WITH ADMIN OPTION", "u1", Some("localhost")),
            ("GRANT SELECT ON `db`.`TO` TO `x`@`%`", "x", Some("%")),
            ("GRANT SELECT ON `db`.` TO ` TO `y`@`%`", "y", Some("%")),
            ("REVOKE INSERT ON `mysql`.* FROM `u`@`%`", "u", Some("%")),
            ("SET DEFAULT ROLE `r1` FOR `u1`@`%`", "u1", Some("%")),
            ("GRANT PROXY ON ''@'' TO 'root'@'localhost' WITH GRANT OPTION", "root", Some("localhost")),
            ("GRANT SELECT (`a`, `b`) ON `d`.`t` TO `we``ird`@`h`", "we`ird", Some("h")),
        ];
        for (line, user, host) in cases {
            assert_eq!(grantee(line, mode()), Some((user.to_owned(), host.map(str::to_owned))), "{line}");
        }
    }

    #[test]
    fn the_naive_split_on_to_is_wrong_and_this_is_not() {
        // AWS's function splits on " TO " and keeps the left part: this table name defeats it.
        let line = "GRANT SELECT ON `db`.` TO x` TO `app`@`%` WITH GRANT OPTION";
        assert_eq!(line.split(" TO ").next().unwrap(), "GRANT SELECT ON `db`.`");
        let rewritten = replace_grantee(line, mode(), "app", "app_clone").unwrap();
        assert_eq!(rewritten, "GRANT SELECT ON `db`.` TO x` TO `app_clone`@`%` WITH GRANT OPTION");
    }

    #[test]
    fn replace_keeps_the_quote_style_and_refuses_other_grantees() {
        assert_eq!(replace_grantee("GRANT USAGE ON *.* TO 'app'@'%'", mode(), "app", "app_clone").unwrap(), "GRANT USAGE ON *.* TO 'app_clone'@'%'");
        assert_eq!(replace_grantee("GRANT `r` TO `app`@`%`", mode(), "other", "x"), None);
        assert_eq!(replace_grantee("SHOW TABLES", mode(), "app", "x"), None);
        let ansi = SqlMode { ansi_quotes: true, ..SqlMode::default() };
        assert_eq!(replace_grantee("GRANT SELECT ON \"db\".* TO \"app\"@\"%\"", ansi, "app", "b").unwrap(), "GRANT SELECT ON \"db\".* TO `b`@\"%\"");
    }

    #[test]
    fn quotes_and_escapes_are_read_per_mode() {
        let tokens = tokenize(r"GRANT X TO 'it\'s'@'h'", mode()).unwrap();
        assert_eq!(tokens[3].value, "it's");
        let nbe = SqlMode { no_backslash_escapes: true, ..SqlMode::default() };
        let tokens = tokenize(r"GRANT X TO 'a\'@'h'", nbe).unwrap();
        assert_eq!(tokens[3].value, r"a\");
        assert_eq!(tokens[5].value, "h");
        assert!(tokenize("GRANT X TO 'unterminated", mode()).is_none());
    }

    #[test]
    fn password_hashes_and_plugin_data_are_redacted() {
        let line = "GRANT USAGE ON *.* TO `u1`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122' REQUIRE SUBJECT '/CN=x' WITH MAX_QUERIES_PER_HOUR 10";
        assert_eq!(redact_authentication(line, mode()), "GRANT USAGE ON *.* TO `u1`@`%` IDENTIFIED BY PASSWORD '<redacted>' REQUIRE SUBJECT '/CN=x' WITH MAX_QUERIES_PER_HOUR 10");
        let via = "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED VIA ed25519 USING 'abc' OR mysql_native_password USING '*DEF'";
        let redacted = redact_authentication(via, mode());
        assert!(!redacted.contains("abc") && !redacted.contains("DEF"), "{redacted}");
        let plain = "GRANT SELECT ON `db`.* TO `u`@`%`";
        assert_eq!(redact_authentication(plain, mode()), plain);
        assert_eq!(redact_authentication("GRANT USAGE ON *.* TO u IDENTIFIED BY PASSWORD 'oops", mode()), "<unreadable grant line redacted>");
    }
}
