//! The doctor's report for people. The JSON output is the same report serialised.

use super::diagnosis::{Finding, Severity, Verdict};
use super::facts::{Facts, ValueState};
use std::fmt::Write;

pub fn text(facts: &Facts, findings: &[Finding], verdict: &Verdict) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "secret    {} ({})", facts.name, facts.arn);
    let rotation = &facts.rotation;
    let mut config = vec![if rotation.enabled { "enabled".to_owned() } else { "DISABLED".to_owned() }];
    config.push(format!("function {}", rotation.function_arn.as_deref().unwrap_or("none")));
    config.push(format!("schedule {}", rotation.schedule.as_deref().unwrap_or("none")));
    config.push(format!("last rotated {}", rotation.last_rotated.as_deref().unwrap_or("never")));
    if let Some(next) = &rotation.next_rotation {
        config.push(format!("next {next}"));
    }
    let _ = writeln!(out, "rotation  {}", config.join(", "));
    let _ = writeln!(out, "strategy  {} ({})", facts.strategy, facts.strategy_chosen_because);

    let _ = writeln!(out, "\nversions");
    for version in &facts.versions {
        let stages = if version.stages.is_empty() { "(no stage)".to_owned() } else { version.stages.join(",") };
        let what = match &version.value {
            ValueState::Document => version.document.as_ref().map(|d| d.describe()).unwrap_or_default(),
            ValueState::Invalid { problem } => format!("not a usable secret: {problem}"),
            ValueState::Missing => "no value".to_owned(),
            ValueState::Unreadable { failure } => format!("unreadable: {} [{}]", failure.message, failure.class),
            ValueState::NotRead => version.created.as_ref().map(|c| format!("created {c}, not read")).unwrap_or_else(|| "not read".into()),
        };
        let _ = writeln!(out, "  {stages:<22} {}  {what}", version.version_id);
        if let Some(login) = &version.login {
            let _ = writeln!(out, "  {:<22} {}", "", login.describe());
        }
    }

    if let Some(master) = &facts.master {
        let state = match (&master.failure, &master.login) {
            (Some(failure), _) => format!("cannot be used: {} [{}]", failure.message, failure.class),
            (None, Some(login)) => login.describe(),
            (None, None) => "not tried".to_owned(),
        };
        let _ = writeln!(out, "\nmaster    {} (from {}): {state}", master.secret_id, master.source);
    }
    // Without a master secret nobody asked the database about the users: nothing to show.
    if facts.master.is_some() && !facts.users.is_empty() {
        let _ = writeln!(out, "users");
        for user in &facts.users {
            let state = match (user.exists, &user.failure) {
                (_, Some(failure)) => format!("unknown: {} [{}]", failure.message, failure.class),
                (Some(true), None) => format!("exists, {} privilege entr{}", user.privileges.len(), if user.privileges.len() == 1 { "y" } else { "ies" }),
                (Some(false), None) => "does not exist".to_owned(),
                (None, None) => "not checked".to_owned(),
            };
            let _ = writeln!(out, "  {:<24} {:<20} {state}", user.username, user.role);
            for privilege in &user.privileges {
                let _ = writeln!(out, "  {:<24} {:<20}   {privilege}", "", "");
            }
        }
    }

    let _ = writeln!(out, "\nverdict: {}", verdict.summary);
    for finding in findings {
        let label = match finding.severity {
            Severity::Problem => "PROBLEM",
            Severity::Warning => "WARNING",
            Severity::Note => "note",
        };
        let _ = writeln!(out, "\n{label:<8} {}: {}", finding.code, finding.message);
        for (i, fix) in finding.fixes.iter().enumerate() {
            let lead = if finding.fixes.len() > 1 { format!("fix {}:", i + 1) } else { "fix:".to_owned() };
            let _ = writeln!(out, "  {lead:<7} {}", fix.command);
            let placeholder = if fix.exact { "" } else { " (fill in the part in <>)" };
            let _ = writeln!(out, "  {:<7} {}{placeholder}", "", fix.explanation);
        }
    }
    out
}
