//! The log-leak audit: what the whole test suite's functions wrote and answered, searched for
//! every secret the tests created or the functions generated.
//!
//! **Recording** (automatic, for every test that uses this crate), into
//! `target/leak-audit/` (or `DBCREDS_LEAK_AUDIT_DIR`), one pair of files per test process:
//! - `<process>.out`: outputs, raw: each [`crate::LambdaFunction`]'s whole log (stdout and
//!   stderr of every process of it), and every invocation's response or error;
//! - `<process>.secrets.jsonl`: secrets, one JSON object per line: each [`crate::Moto`]'s every
//!   secret version (the whole secret string and its `password`) and every STS session
//!   credential it issued (read from moto's state when the Moto is dropped), every database
//!   server's admin password, every `RotationToken` sent in an event, and whatever a test passes
//!   to [`register_secret`].
//!
//! **Auditing** ([`audit`]): every secret of at least [`MIN_SECRET_LEN`] characters is searched,
//! raw and in its JSON-escaped, doubly JSON-escaped and URL-encoded forms, in every output file
//! and in any extra file given (nextest's JUnit report, which holds every test's own output).
//! Findings name the file, the offset, the secret's origin and the form, never the secret.
//!
//! `scripts/test` empties the directory before the suite and runs the audit after it
//! (`tests/log_leak_audit.rs`, an ignored test run alone with `--run-ignored only`), over the
//! records and nextest's JUnit report (`target/nextest/ci/junit.xml`, which `.config/nextest.toml`
//! makes keep every test's output); any finding fails the run.

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Overrides where records go (default: `<target>/leak-audit`).
pub const DIR_VARIABLE: &str = "DBCREDS_LEAK_AUDIT_DIR";

/// Shorter values are not searched: they would match ordinary text by chance (a test password
/// such as `pw` is in "pwd"), and no generated secret is this short. They are counted.
pub const MIN_SECRET_LEN: usize = 8;

/// Where this machine's records go.
pub fn record_dir() -> PathBuf {
    match std::env::var_os(DIR_VARIABLE).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::paths::target_dir().join("leak-audit"),
    }
}

/// This process's file name stem: the pid and the process's start (pids are reused).
fn process_stem() -> &'static str {
    static STEM: OnceLock<String> = OnceLock::new();
    STEM.get_or_init(|| {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{}-{started}", std::process::id())
    })
}

/// Appends to one of this process's record files. Recording must never fail a test: a record
/// that cannot be written is reported on stderr (and the audit then has less to read).
fn append_in(dir: &Path, suffix: &str, bytes: &[u8]) {
    static WRITING: Mutex<()> = Mutex::new(());
    let _serialised = WRITING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = dir.join(format!("{}{suffix}", process_stem()));
    let result = std::fs::create_dir_all(dir).and_then(|()| OpenOptions::new().create(true).append(true).open(&path)).and_then(|mut file| file.write_all(bytes));
    if let Err(err) = result {
        eprintln!("leak audit: cannot record into {}: {err}", path.display());
    }
}

/// Registers a secret the audit must never find in any output.
pub fn register_secret(origin: &str, value: &str) {
    register_secret_in(&record_dir(), origin, value);
}

/// As [`register_secret`], into another record directory (the audit's own self-test).
pub fn register_secret_in(dir: &Path, origin: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    let line = serde_json::json!({"origin": origin, "value": value}).to_string() + "\n";
    append_in(dir, ".secrets.jsonl", line.as_bytes());
}

/// Records output the audit searches (a log, a response, an error), as is.
pub fn record_output(origin: &str, text: &str) {
    record_output_in(&record_dir(), origin, text);
}

/// As [`record_output`], into another record directory (the audit's own self-test).
pub fn record_output_in(dir: &Path, origin: &str, text: &str) {
    let mut blob = format!("\n=== {origin} ===\n").into_bytes();
    blob.extend_from_slice(text.as_bytes());
    blob.push(b'\n');
    append_in(dir, ".out", &blob);
}

/// Records a whole file of output (a function's log).
pub fn record_output_file(origin: &str, path: &Path) {
    if let Ok(bytes) = std::fs::read(path) {
        record_output(origin, &String::from_utf8_lossy(&bytes));
    }
}

/// Registers the secrets of an event sent to a function (its `RotationToken`).
pub fn register_event_secrets(body: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Value>(body) else { return };
    if let Some(token) = event.get("RotationToken").and_then(Value::as_str) {
        register_secret("event RotationToken", token);
    }
}

/// Registers the secrets in moto's state (`/moto-api/data.json`), see [`moto_state_secrets`].
pub fn register_moto_state(state: &Value) {
    for (origin, value) in moto_state_secrets(state) {
        register_secret(&origin, &value);
    }
}

/// `(origin, value)` of every secret in moto's state: every secret version's string and its
/// `password`, and every STS session credential (the secret key and the session token; an
/// access key id is not a secret).
pub fn moto_state_secrets(state: &Value) -> Vec<(String, String)> {
    let instances = |service: &str, model: &str| state.get(service).and_then(|s| s.get(model)).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut found = Vec::new();
    for secret in instances("secretsmanager", "FakeSecret") {
        let name = secret.get("name").and_then(Value::as_str).unwrap_or("?").to_owned();
        let mut strings: BTreeSet<String> = BTreeSet::new();
        if let Some(text) = secret.get("secret_string").and_then(Value::as_str) {
            strings.insert(text.to_owned());
        }
        if let Some(versions) = secret.get("versions").and_then(Value::as_object) {
            for version in versions.values() {
                if let Some(text) = version.get("secret_string").and_then(Value::as_str) {
                    strings.insert(text.to_owned());
                }
            }
        }
        for text in strings {
            found.extend(secret_string_secrets(&format!("secret {name}"), &text));
        }
    }
    for role in instances("sts", "AssumedRole").into_iter().chain(instances("sts", "Token")) {
        for key in ["secret_access_key", "session_token"] {
            if let Some(value) = role.get(key).and_then(Value::as_str) {
                found.push((format!("STS {key}"), value.to_owned()));
            }
        }
    }
    found
}

/// Registers a secret string, see [`secret_string_secrets`].
pub fn register_secret_string(origin: &str, text: &str) {
    for (origin, value) in secret_string_secrets(origin, text) {
        register_secret(&origin, &value);
    }
}

/// A secret string's secrets: the whole string, and the `password` of a JSON document.
pub fn secret_string_secrets(origin: &str, text: &str) -> Vec<(String, String)> {
    let mut found = vec![(format!("{origin} (whole secret string)"), text.to_owned())];
    if let Ok(Value::Object(document)) = serde_json::from_str::<Value>(text)
        && let Some(password) = document.get("password").and_then(Value::as_str)
    {
        found.push((format!("{origin} password"), password.to_owned()));
    }
    found
}

/// Reads moto's state over loopback and registers its secrets. Blocking and bounded (it runs
/// in `Drop`); a moto that does not answer is reported on stderr.
pub(crate) fn register_moto_secrets(port: u16) {
    use std::io::Read;
    use std::time::Duration;
    let fetch = || -> std::io::Result<Vec<u8>> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    };
    let response = match fetch() {
        Ok(response) => response,
        Err(err) => return eprintln!("leak audit: cannot read moto's state on port {port}: {err}"),
    };
    let Some(body_at) = response.windows(4).position(|w| w == b"\r\n\r\n") else { return };
    let head = String::from_utf8_lossy(&response[..body_at]).to_ascii_lowercase();
    let mut body = response[body_at + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(state) => register_moto_state(&state),
        Err(err) => eprintln!("leak audit: moto's state on port {port} is not JSON: {err}"),
    }
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end]).ok().and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok()).unwrap_or(0);
        if size == 0 || body.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[(line_end + 2 + size + 2).min(body.len())..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The audit

/// Where a secret's form was found. Never holds the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    pub offset: usize,
    pub origin: String,
    pub form: &'static str,
    /// The text around the match, with the match replaced by `<SECRET>`.
    pub context: String,
}

#[derive(Clone, Debug, Default)]
pub struct AuditReport {
    /// Distinct secrets searched.
    pub secrets: usize,
    /// Distinct (secret, form) patterns searched.
    pub patterns: usize,
    /// Secrets too short to search (see [`MIN_SECRET_LEN`]).
    pub too_short: usize,
    /// Secrets per origin kind (the origin up to its first space).
    pub by_origin: BTreeMap<String, usize>,
    pub files: usize,
    pub bytes: u64,
    pub findings: Vec<Finding>,
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "leak audit: {} secrets ({} patterns with their escaped and encoded forms; {} too short to search)", self.secrets, self.patterns, self.too_short)?;
        for (origin, n) in &self.by_origin {
            writeln!(f, "  {n:>6} from {origin}")?;
        }
        writeln!(f, "searched {} files, {} bytes of logs, responses and errors", self.files, self.bytes)?;
        writeln!(f, "leaks found: {}", self.findings.len())?;
        for finding in self.findings.iter().take(50) {
            writeln!(f, "  LEAK {} at byte {}: {} ({} form): ...{}...", finding.file.display(), finding.offset, finding.origin, finding.form, finding.context)?;
        }
        Ok(())
    }
}

/// The forms a secret can take in a log line or a response: raw, JSON-escaped (a string inside a
/// JSON log field), doubly JSON-escaped (a JSON document logged inside a JSON field), and
/// URL-encoded (a query string, a form body, a presigned URL; both hex cases, and `+` for space).
pub fn forms(secret: &str) -> Vec<(&'static str, String)> {
    let json_escaped = |s: &str| {
        let quoted = serde_json::to_string(s).expect("a string serialises");
        quoted[1..quoted.len() - 1].to_owned()
    };
    let once = json_escaped(secret);
    let twice = json_escaped(&once);
    let upper = url_encode(secret, true, false);
    let candidates = [
        ("raw", secret.to_owned()),
        ("JSON-escaped", once),
        ("doubly JSON-escaped", twice),
        ("URL-encoded", upper.clone()),
        ("URL-encoded (lower-case hex)", url_encode(secret, false, false)),
        ("form-encoded", url_encode(secret, true, true)),
        ("URL-encoded twice", url_encode(&upper, true, false)),
    ];
    let mut seen = BTreeSet::new();
    candidates.into_iter().filter(|(_, text)| seen.insert(text.clone())).collect()
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn url_encode(text: &str, upper_hex: bool, plus_for_space: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            b' ' if plus_for_space => out.push('+'),
            _ if upper_hex => out.push_str(&format!("%{byte:02X}")),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

/// Every secret registered under `dir`: value -> origins.
pub fn registered_secrets(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files_with_suffix(dir, ".secrets.jsonl") {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<Value>(line) else { continue };
            if let (Some(origin), Some(value)) = (record["origin"].as_str(), record["value"].as_str()) {
                secrets.entry(value.to_owned()).or_default().insert(origin.to_owned());
            }
        }
    }
    secrets
}

/// The output files recorded under `dir`.
pub fn recorded_outputs(dir: &Path) -> Vec<PathBuf> {
    files_with_suffix(dir, ".out")
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)))
        .collect();
    files.sort();
    files
}

/// The audit of a record directory: every secret registered there, searched in every output
/// recorded there and in `extra` files (a JUnit report).
pub fn audit_dir(dir: &Path, extra: &[PathBuf]) -> AuditReport {
    let mut outputs = recorded_outputs(dir);
    outputs.extend(extra.iter().filter(|path| path.exists()).cloned());
    audit(&registered_secrets(dir), &outputs)
}

/// Searches `outputs` (and, for an XML file such as a JUnit report, its unescaped text too) for
/// every form of every secret in `secrets`.
pub fn audit(secrets: &BTreeMap<String, BTreeSet<String>>, outputs: &[PathBuf]) -> AuditReport {
    let mut report = AuditReport::default();
    let mut patterns: Vec<String> = Vec::new();
    let mut owners: Vec<(String, &'static str)> = Vec::new();
    for (value, origins) in secrets {
        let origin = origins.iter().next().cloned().unwrap_or_default();
        let kind = origin.split(' ').next().unwrap_or("").to_owned();
        *report.by_origin.entry(kind).or_default() += 1;
        if value.chars().count() < MIN_SECRET_LEN {
            report.too_short += 1;
            continue;
        }
        report.secrets += 1;
        for (form, text) in forms(value) {
            patterns.push(text);
            owners.push((origins.iter().cloned().collect::<Vec<_>>().join(", "), form));
        }
    }
    report.patterns = patterns.len();
    let matcher = AhoCorasick::builder().match_kind(MatchKind::Standard).build(&patterns).expect("the secret patterns build an automaton");
    for path in outputs {
        let Ok(bytes) = std::fs::read(path) else { continue };
        report.files += 1;
        report.bytes += bytes.len() as u64;
        let mut texts = vec![bytes];
        if path.extension().is_some_and(|ext| ext == "xml") {
            let unescaped = xml_unescape(&String::from_utf8_lossy(&texts[0])).into_bytes();
            texts.push(unescaped);
        }
        for text in &texts {
            for found in matcher.find_overlapping_iter(text) {
                let (origin, form) = owners[found.pattern().as_usize()].clone();
                let finding = Finding { file: path.clone(), offset: found.start(), origin, form, context: context(text, found.start(), found.end()) };
                if !report.findings.iter().any(|f| f.file == finding.file && f.offset == finding.offset && f.origin == finding.origin) {
                    report.findings.push(finding);
                }
            }
        }
    }
    report
}

/// Up to 60 bytes either side of a match, the match itself replaced.
fn context(text: &[u8], start: usize, end: usize) -> String {
    let before = &text[start.saturating_sub(60)..start];
    let after = &text[end..(end + 60).min(text.len())];
    format!("{}<SECRET>{}", String::from_utf8_lossy(before), String::from_utf8_lossy(after)).replace(['\n', '\r'], " ")
}

/// The five predefined XML entities and numeric character references.
fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_cover_escaping_and_encoding() {
        let forms: BTreeMap<&str, String> = forms("p\"w/ d+%").into_iter().collect();
        assert_eq!(forms["raw"], "p\"w/ d+%");
        assert_eq!(forms["JSON-escaped"], "p\\\"w/ d+%");
        assert_eq!(forms["doubly JSON-escaped"], "p\\\\\\\"w/ d+%");
        assert_eq!(forms["URL-encoded"], "p%22w%2F%20d%2B%25");
        assert_eq!(forms["URL-encoded (lower-case hex)"], "p%22w%2f%20d%2b%25");
        assert_eq!(forms["form-encoded"], "p%22w%2F+d%2B%25");
        assert_eq!(forms["URL-encoded twice"], "p%2522w%252F%2520d%252B%2525");
        // An alphanumeric secret has a single form.
        assert_eq!(super::forms("abcdefgh12").len(), 1);
    }

    #[test]
    fn xml_entities_are_decoded() {
        assert_eq!(xml_unescape("a &lt;b&gt; &amp;amp; &quot;&apos; &#65;&#x42; & ;"), "a <b> &amp; \"' AB & ;");
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(dechunk(b"4\r\nWiki\r\n6\r\npedia \r\n0\r\n\r\n"), b"Wikipedia ");
    }

    #[test]
    fn moto_state_yields_versions_passwords_and_session_credentials() {
        let state = serde_json::json!({
            "secretsmanager": {"FakeSecret": [{"name": "app", "secret_string": "{\"password\":\"Current-pw-123\"}",
                "versions": {"v1": {"secret_string": "{\"password\":\"Old-pw-12345\",\"username\":\"u\"}"}, "v2": {"secret_string": "{\"password\":\"Current-pw-123\"}"}}}]},
            "sts": {"AssumedRole": [{"access_key_id": "ASIAEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG", "session_token": "FQoGZXIvYXdzEBYaDExample"}], "Token": []}
        });
        let values: BTreeSet<String> = moto_state_secrets(&state).into_iter().map(|(_, value)| value).collect();
        for expected in ["Current-pw-123", "Old-pw-12345", "wJalrXUtnFEMI/K7MDENG", "FQoGZXIvYXdzEBYaDExample", "{\"password\":\"Current-pw-123\"}"] {
            assert!(values.contains(expected), "{expected} missing from {values:?}");
        }
        assert!(!values.contains("ASIAEXAMPLE"), "an access key id is not a secret");
    }

    #[test]
    fn the_audit_finds_every_form_and_names_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "Leak/me+if you=dare\"".to_owned();
        let mut secrets = BTreeMap::new();
        secrets.insert(secret.clone(), BTreeSet::from(["test secret".to_owned()]));
        secrets.insert("short".to_owned(), BTreeSet::from(["test short".to_owned()]));
        let clean = dir.path().join("clean.out");
        std::fs::write(&clean, "nothing to see: Leak/me but not the rest").unwrap();
        let mut dirty_files = Vec::new();
        for (i, (form, text)) in forms(&secret).into_iter().enumerate() {
            let path = dir.path().join(format!("dirty-{i}.out"));
            std::fs::write(&path, format!("{{\"message\":\"oops {text} there\"}} ({form})")).unwrap();
            dirty_files.push(path);
        }
        let junit = dir.path().join("junit.xml");
        std::fs::write(&junit, format!("<system-out>{}</system-out>", secret.replace('&', "&amp;").replace('"', "&quot;"))).unwrap();
        let mut files = vec![clean.clone(), junit.clone()];
        files.extend(dirty_files.iter().cloned());
        let report = audit(&secrets, &files);
        assert_eq!(report.secrets, 1);
        assert_eq!(report.too_short, 1);
        let flagged: BTreeSet<&PathBuf> = report.findings.iter().map(|f| &f.file).collect();
        for file in dirty_files.iter().chain([&junit]) {
            assert!(flagged.contains(file), "{} not flagged: {report}", file.display());
        }
        assert!(!flagged.contains(&clean), "{report}");
        let shown = report.to_string();
        for (_, text) in forms(&secret) {
            assert!(!shown.contains(&text), "the report must not show the secret: {shown}");
        }
    }
}
