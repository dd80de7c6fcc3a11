//! Making untrusted text safe to log.
//!
//! Event fields such as `SecretId` and `ClientRequestToken` come from callers. Logged verbatim, a
//! value with a newline or an ANSI escape could forge log lines in plain-text sinks or confuse a
//! terminal. JSON logs escape them already; this is defence in depth for every other sink and for
//! error messages, which operators read in consoles.

/// The longest untrusted value we repeat back, in characters.
pub const MAX_LOGGED_CHARS: usize = 256;

/// Returns the value with control characters (including CR, LF, ESC, and Unicode line and
/// bidi-override controls) replaced by `?`, truncated to [`MAX_LOGGED_CHARS`], and quoted, so
/// the reader can see where it starts and ends.
pub fn for_log(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_LOGGED_CHARS) + 2);
    out.push('"');
    for (count, ch) in value.chars().enumerate() {
        if count == MAX_LOGGED_CHARS {
            out.push_str("...");
            break;
        }
        out.push(if is_dangerous(ch) { '?' } else { ch });
    }
    out.push('"');
    out
}

/// Like [`for_log`] without the quotes, for values that go into a structured field.
pub fn field(value: &str) -> String {
    let quoted = for_log(value);
    quoted[1..quoted.len() - 1].to_owned()
}

fn is_dangerous(ch: char) -> bool {
    ch.is_control()
        || matches!(ch,
            '\u{2028}' | '\u{2029}'            // line and paragraph separators
            | '\u{200B}'..='\u{200F}'          // zero-width characters and marks
            | '\u{202A}'..='\u{202E}'          // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}'          // bidi isolates
            | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_escapes_cannot_forge_lines() {
        let hostile = "arn:aws:secretsmanager:x\n{\"level\":\"INFO\",\"msg\":\"forged\"}\x1b[2J";
        let safe = for_log(hostile);
        assert!(!safe.contains('\n'));
        assert!(!safe.contains('\x1b'));
        assert!(safe.starts_with('"') && safe.ends_with('"'));
    }

    #[test]
    fn bidi_overrides_are_neutralised() {
        assert_eq!(field("a\u{202E}b"), "a?b");
    }

    #[test]
    fn long_values_are_truncated() {
        let long = "x".repeat(10_000);
        assert!(for_log(&long).len() < MAX_LOGGED_CHARS + 10);
    }
}
