//! The corpus files (`tests/corpus/*.json`): loading, the placeholders, and the checks every
//! refusal must pass whatever the function.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// One hostile input and what its refusal must say.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// The category of the input (malformed JSON, confusable, ...), for the counts.
    pub kind: String,
    /// The whole case as written; each test reads its own keys.
    pub spec: Map<String, Value>,
    /// The field the error must name.
    pub field: String,
    /// More words the error must contain.
    pub words: Vec<String>,
}

impl Case {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.spec.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.spec.get(key).and_then(Value::as_str)
    }

    /// The engines the case runs against (`"engines"`; both by default).
    pub fn engines(&self) -> Vec<String> {
        match self.spec.get("engines").and_then(Value::as_array) {
            Some(list) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            None => vec!["mariadb".into(), "postgres".into()],
        }
    }
}

/// The cases of `tests/corpus/<file>`, checked for the keys every case needs and for unique
/// names. Panics naming the case when the file is wrong.
pub fn load(file: &str) -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("corpus").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let document: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let entries = document["cases"].as_array().unwrap_or_else(|| panic!("{}: no \"cases\" list", path.display()));
    let mut seen = std::collections::BTreeSet::new();
    entries
        .iter()
        .map(|entry| {
            let spec = entry.as_object().unwrap_or_else(|| panic!("{}: a case is not an object: {entry}", path.display())).clone();
            let text = |key: &str| {
                spec.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{}: a case without \"{key}\": {entry}", path.display()))
                    .to_owned()
            };
            let name = text("name");
            assert!(seen.insert(name.clone()), "{}: two cases named {name}", path.display());
            let words = spec
                .get("words")
                .and_then(Value::as_array)
                .map(|w| w.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            Case {
                kind: text("kind"),
                field: text("field"),
                words,
                name,
                spec,
            }
        })
        .collect()
}

/// Values known only at run time (`${arn}`, `${port}`, ...).
pub type Bindings = BTreeMap<&'static str, Value>;

/// Expands a case's JSON: a string that is exactly `${name}` becomes the bound value (a port
/// stays a number), `${name}` inside a string is replaced by its text, and
/// `{"$repeat": text, "times": n}` becomes `text` repeated n times (oversized values, kept
/// readable in the file).
pub fn expand(value: &Value, bindings: &Bindings) -> Value {
    match value {
        Value::String(text) => {
            if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
                && let Some(bound) = bindings.get(name)
            {
                return bound.clone();
            }
            Value::String(expand_text(text, bindings))
        }
        Value::Array(items) => Value::Array(items.iter().map(|item| expand(item, bindings)).collect()),
        Value::Object(map) => {
            if let (Some(Value::String(text)), Some(times)) = (map.get("$repeat"), map.get("times").and_then(Value::as_u64)) {
                return Value::String(text.repeat(times as usize));
            }
            Value::Object(map.iter().map(|(k, v)| (k.clone(), expand(v, bindings))).collect())
        }
        other => other.clone(),
    }
}

/// `${name}` replaced by the bound value's text, in raw text (a truncated JSON event).
pub fn expand_text(text: &str, bindings: &Bindings) -> String {
    let mut out = text.to_owned();
    for (name, value) in bindings {
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("${{{name}}}"), &shown);
    }
    out
}

/// `base` with `patch` applied: a key set to null is removed, any other value replaces.
pub fn patched(base: &Value, patch: Option<&Value>) -> Value {
    let mut out = base.clone();
    if let (Some(Value::Object(changes)), Value::Object(target)) = (patch, &mut out) {
        for (key, value) in changes {
            if value.is_null() {
                target.remove(key);
            } else {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

/// Characters that could forge a log line or hide text from the reader (the set
/// `dbcreds_core::sanitize` neutralises).
fn is_dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// An error message is long enough to say what to fix and never repeats an oversized value.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// Every refusal: the message names the field and the case's words, carries no character that
/// could forge a log line or hide text, stays short, and no secret is in it or in the logs;
/// every log line is JSON, and none was forged by the input.
pub fn check_refusal(case: &Case, what: &str, message: &str, logs: &str, secrets: &[String]) {
    let name = &case.name;
    // The Lambda runtime library's own refusal (a payload that is not JSON) ends in a newline
    // (its Display uses writeln!); a JSON string field, so it cannot forge a log line.
    let message = match case.get("refused_by").and_then(Value::as_str) {
        Some("runtime") => message.strip_suffix('\n').unwrap_or(message),
        _ => message,
    };
    assert!(message.contains(&case.field), "{name} ({what}): the error must name {:?}: {message}", case.field);
    for word in &case.words {
        assert!(message.contains(word.as_str()), "{name} ({what}): the error must say {word:?}: {message}");
    }
    if let Some(bad) = message.chars().find(|c| is_dangerous(*c)) {
        panic!("{name} ({what}): the error carries U+{:04X}: {message:?}", bad as u32);
    }
    assert!(message.chars().count() <= MAX_MESSAGE_CHARS, "{name} ({what}): a {}-character error", message.chars().count());
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(!message.contains(secret.as_str()), "{name} ({what}): a secret in the error");
        assert!(!logs.contains(secret.as_str()), "{name} ({what}): a secret in the logs");
    }
    for line in logs.lines().filter(|line| !line.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("{name} ({what}): a log line is not JSON ({err}): {line}"));
        assert_ne!(parsed["message"], "FORGED", "{name} ({what}): the input forged a log line: {line}");
    }
}

/// How many cases of each kind, for the report.
pub fn count_by_kind(cases: &[Case]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for case in cases {
        *counts.entry(case.kind.clone()).or_default() += 1;
    }
    counts
}
