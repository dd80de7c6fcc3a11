//! One way out for every subcommand: text for people on stdout, or with `--json` one JSON
//! document on stdout (errors included), built from the same report so both say the same thing.
//! Errors in text mode go to stderr. The exit code comes from the report's status or the error.

use crate::exit::{CliError, Status};
use serde::Serialize;
use serde_json::{Value, json};
use std::io::Write;
use std::process::ExitCode;

/// What a subcommand found or did.
pub struct Report {
    pub status: Status,
    /// The same content as `text`, for automation. `None` for raw output (completions).
    pub json: Option<Value>,
    pub text: String,
}

impl Report {
    /// A report whose JSON is `data` serialised (an object) and whose text is `text`.
    pub fn new(status: Status, data: &impl Serialize, text: String) -> Self {
        let json = serde_json::to_value(data).unwrap_or_else(|err| json!({"error": {"class": "internal", "message": format!("the report does not serialise: {err}")}}));
        Self { status, json: Some(json), text }
    }

    /// Output that is the same with and without `--json` (a completion script).
    pub fn raw(text: String) -> Self {
        Self { status: Status::Ok, json: None, text }
    }
}

/// Writes the result and returns the exit code.
pub fn emit(result: Result<Report, CliError>, json: bool) -> ExitCode {
    let (code, stdout, stderr) = render(&result, json);
    // A closed pipe (`dbcreds ... | head`) is not worth a panic.
    let _ = std::io::stdout().lock().write_all(stdout.as_bytes());
    let _ = std::io::stderr().lock().write_all(stderr.as_bytes());
    ExitCode::from(code)
}

/// (exit code, stdout, stderr) for a result.
pub fn render(result: &Result<Report, CliError>, json: bool) -> (u8, String, String) {
    match (result, json) {
        (Ok(report), _) if report.json.is_none() => (report.status.code(), report.text.clone(), String::new()),
        (Ok(report), true) => {
            let mut value = report.json.clone().unwrap_or(Value::Null);
            if let Value::Object(map) = &mut value {
                map.insert("status".into(), json!(report.status));
                map.insert("exit_code".into(), json!(report.status.code()));
            }
            (report.status.code(), pretty(&value), String::new())
        }
        (Ok(report), false) => (report.status.code(), ensure_newline(&report.text), String::new()),
        (Err(err), true) => (err.code(), pretty(&error_json(err)), String::new()),
        (Err(err), false) => (err.code(), String::new(), format!("dbcreds: error: {}\n  what to do: {}\n", err, err.hint())),
    }
}

pub fn error_json(err: &CliError) -> Value {
    json!({
        "status": "error",
        "exit_code": err.code(),
        "error": {"class": err.class.as_str(), "message": err.message, "hint": err.hint()},
    })
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

fn ensure_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') { text.to_owned() } else { format!("{text}\n") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbcreds_core::ErrorClass;

    #[test]
    fn json_carries_the_status_and_exit_code_and_text_the_same_report() {
        let report = Report::new(Status::Problems, &json!({"verdict": "stuck"}), "verdict: stuck".into());
        let (code, out, err) = render(&Ok(report), true);
        assert_eq!(code, 3);
        assert!(err.is_empty());
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["verdict"], "stuck");
        assert_eq!(value["status"], "problems");
        assert_eq!(value["exit_code"], 3);

        let report = Report::new(Status::Problems, &json!({"verdict": "stuck"}), "verdict: stuck".into());
        assert_eq!(render(&Ok(report), false), (3, "verdict: stuck\n".into(), String::new()));
    }

    #[test]
    fn errors_are_json_on_stdout_or_text_on_stderr() {
        let err = CliError::new(ErrorClass::Authentication, "refused");
        let (code, out, _) = render(&Err(err.clone()), true);
        assert_eq!(code, 1);
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["error"]["class"], "authentication");
        assert_eq!(value["error"]["hint"], ErrorClass::Authentication.hint());
        let (code, out, text) = render(&Err(err), false);
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(text.starts_with("dbcreds: error: refused [authentication]"), "{text}");
    }
}
