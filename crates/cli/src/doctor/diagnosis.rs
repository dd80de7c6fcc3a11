//! From the facts to findings: what is wrong, why it matters, and the exact command that fixes
//! it. Pure: no I/O, unit-tested on hand-made facts; the end-to-end tests stage each state for
//! real, run the suggested command, and check the doctor then reports the secret healthy.
//!
//! The rules, in the order their fixes must run:
//! 1. a version stuck in AWSPENDING (every new rotation fails with "previous rotation isn't
//!    complete"): finish it (`dbcreds rotate --resume`, the rotator's own steps) when it can
//!    finish; remove the label when it cannot, or when rotation is off and nothing depends on it;
//!    finish it by hand (move AWSCURRENT, then remove AWSPENDING) when rotation is off and the
//!    database already has its password;
//! 2. AWSCURRENT does not log in: the password was changed outside the rotation, the user is
//!    missing (an alternating clone dropped), or the database still has AWSPREVIOUS's password:
//!    `dbcreds reset-password` (or a rotation, which falls back to AWSPREVIOUS); a network or TLS
//!    failure is sent to `dbcreds check`, which tells the layer;
//! 3. rotation is disabled: `aws secretsmanager rotate-secret` turns it back on;
//! 4. warnings and notes: AWSPENDING left on AWSCURRENT, an alternating AWSPREVIOUS that no
//!    longer logs in, a master that cannot be used, versions without a stage, other labels.

use super::facts::{ALTERNATE_USER, CURRENT_USER, Facts, ValueState, VersionFacts};
use crate::GlobalArgs;
use crate::shell;
use dbcreds_aws::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use dbcreds_core::ErrorClass;
use dbcreds_rotation::Strategy;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Problem,
    Warning,
    Note,
}

/// One command to run; `exact` is false when it holds a placeholder the operator must fill in.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Fix {
    pub command: String,
    pub exact: bool,
    pub explanation: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable name, for automation: `stuck_pending`, `current_refused`, ...
    pub code: &'static str,
    pub message: String,
    /// The commands that fix it, to run in this order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<Fix>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub healthy: bool,
    pub problems: usize,
    pub warnings: usize,
    pub summary: String,
}

pub fn diagnose(facts: &Facts, global: &GlobalArgs) -> (Vec<Finding>, Verdict) {
    let mut d = Diagnosis { facts, global, findings: Vec::new() };
    d.current_version();
    d.pending();
    d.current_login();
    d.rotation_config();
    d.notes();
    let problems = d.findings.iter().filter(|f| f.severity == Severity::Problem).count();
    let warnings = d.findings.iter().filter(|f| f.severity == Severity::Warning).count();
    let summary = match (problems, warnings) {
        (0, 0) => "healthy".to_owned(),
        (0, w) => format!("healthy, with {w} warning{}", plural(w)),
        (p, _) => format!("{p} problem{} found; run the fixes below in order", plural(p)),
    };
    let verdict = Verdict { healthy: problems == 0, problems, warnings, summary };
    (d.findings, verdict)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

struct Diagnosis<'a> {
    facts: &'a Facts,
    global: &'a GlobalArgs,
    findings: Vec<Finding>,
}

impl Diagnosis<'_> {
    fn add(&mut self, severity: Severity, code: &'static str, message: String, fixes: Vec<Fix>) {
        self.findings.push(Finding { severity, code, message, fixes });
    }

    fn id(&self) -> &str {
        &self.facts.secret_id
    }

    fn current(&self) -> Option<&VersionFacts> {
        self.facts.with_stage(AWSCURRENT)
    }

    /// AWSPENDING on a version other than AWSCURRENT's.
    fn stuck_pending(&self) -> Option<&VersionFacts> {
        self.facts.with_stage(AWSPENDING).filter(|v| !v.has(AWSCURRENT))
    }

    fn current_refused(&self) -> bool {
        self.current().and_then(|v| v.login.as_ref()).is_some_and(|l| l.refused())
    }

    fn resume(&self, token: &str) -> Fix {
        Fix {
            command: shell::dbcreds(self.global, &["rotate", self.id(), "--resume", token]),
            exact: true,
            explanation: "runs the rotation's remaining steps here with the rotator's own code (each step is safe to run again)".into(),
        }
    }

    fn remove_pending(&self, version: &str, why: &str) -> Fix {
        Fix {
            command: shell::aws(self.global, &["update-secret-version-stage", "--secret-id", self.id(), "--version-stage", AWSPENDING, "--remove-from-version-id", version]),
            exact: true,
            explanation: format!("removes the AWSPENDING label from version {version}, {why}"),
        }
    }

    fn promote(&self, version: &str, current: &str) -> Fix {
        Fix {
            command: shell::aws(self.global, &["update-secret-version-stage", "--secret-id", self.id(), "--version-stage", AWSCURRENT, "--move-to-version-id", version, "--remove-from-version-id", current]),
            exact: true,
            explanation: format!("makes version {version}, whose password the database has, AWSCURRENT (what finishSecret does; the old one becomes AWSPREVIOUS)"),
        }
    }

    fn reset_password(&self) -> Fix {
        let master = self.facts.master.as_ref();
        let mut args = vec!["reset-password", self.id()];
        let exact = match master {
            Some(master) if master.source == "--master-secret" => {
                args.extend(["--master-secret", master.secret_id.as_str()]);
                true
            }
            Some(_) => true,
            None => {
                args.extend(["--master-secret", "<master secret ARN>"]);
                false
            }
        };
        let mut command = shell::dbcreds(self.global, &args);
        if !exact {
            command = command.replace("'<master secret ARN>'", "<master secret ARN>");
        }
        let what = if self.facts.strategy_kind == Strategy::AlternatingUsers {
            "with the master secret, sets the user's password in the database to AWSCURRENT's (recreating the user as a copy of the other one if it is missing), then proves the login"
        } else {
            "with the master secret, sets the user's password in the database to AWSCURRENT's, then proves the login"
        };
        Fix { command, exact, explanation: what.into() }
    }

    // -----------------------------------------------------------------------------------------

    fn current_version(&mut self) {
        let Some(current) = self.current() else {
            self.add(Severity::Problem, "no_current", "the secret has no AWSCURRENT version: applications have nothing to read and no rotation can start".into(), vec![]);
            return;
        };
        let id = current.version_id.clone();
        match &current.value {
            ValueState::Document => {}
            ValueState::Invalid { problem } => self.add(
                Severity::Problem,
                "current_invalid",
                format!("AWSCURRENT (version {id}) is not a usable secret: {problem}; store a complete connection document (engine, host, port, username, password, dbname)"),
                vec![],
            ),
            ValueState::Missing => self.add(Severity::Problem, "current_invalid", format!("AWSCURRENT (version {id}) has no value"), vec![]),
            ValueState::Unreadable { failure } => self.add(
                Severity::Problem,
                "current_unreadable",
                format!("AWSCURRENT (version {id}) could not be read: {} [{}]; {}", failure.message, failure.class, failure.hint),
                vec![],
            ),
            ValueState::NotRead => {}
        }
    }

    fn pending(&mut self) {
        let Some(pending) = self.stuck_pending() else { return };
        let token = pending.version_id.clone();
        let enabled = self.facts.rotation.enabled;
        let current_id = self.current().map(|v| v.version_id.clone());
        let pending_logs_in = pending.login.as_ref().is_some_and(|l| l.logs_in);
        let stuck = format!("version {token} is stuck in AWSPENDING: every new rotation fails with \"previous rotation isn't complete\" until it is finished or removed");
        let (message, fixes) = match &pending.value {
            ValueState::Missing => {
                let message = format!("{stuck}; it has no value: RotateSecret created it, but createSecret never stored one (the function failed or was never reached)");
                let fix = if enabled { self.resume(&token) } else { self.remove_pending(&token, "which is safe: nothing was changed in the database") };
                (message, vec![fix])
            }
            ValueState::Invalid { problem } => {
                let message = format!("{stuck}; its value is not a usable secret ({problem}), so the rotation cannot finish");
                (message, vec![self.remove_pending(&token, "abandoning the rotation (AWSCURRENT is left as it is); then rotate again")])
            }
            ValueState::Unreadable { failure } => (format!("{stuck}; it could not be read ({} [{}])", failure.message, failure.class), vec![]),
            ValueState::NotRead => (stuck, vec![]),
            ValueState::Document if pending_logs_in && self.current_refused() => {
                let message = format!(
                    "{stuck}; setSecret ran but finishSecret did not: the database has AWSPENDING's password, so applications reading AWSCURRENT are locked out"
                );
                let fixes = match (enabled, &current_id) {
                    (true, _) => vec![self.resume(&token)],
                    (false, Some(current)) => vec![self.promote(&token, current), self.remove_pending(&token, "now that it is AWSCURRENT (what finishSecret does last)")],
                    (false, None) => vec![],
                };
                (message, fixes)
            }
            ValueState::Document => {
                let stage = if pending_logs_in { "after setSecret" } else { "after createSecret" };
                let message = format!("{stuck}; the rotation stopped {stage}, and AWSCURRENT's credentials still work");
                let fix = if enabled {
                    self.resume(&token)
                } else {
                    self.remove_pending(&token, "abandoning the rotation, which is safe: AWSCURRENT's credentials still log in")
                };
                (message, vec![fix])
            }
        };
        self.add(Severity::Problem, "stuck_pending", message, fixes);
    }

    fn current_login(&mut self) {
        let Some(current) = self.current() else { return };
        let Some(login) = &current.login else { return };
        let Some(failure) = &login.failure else { return };
        let user = current.document.as_ref().and_then(|d| d.username.clone()).unwrap_or_default();
        let pending_has_it = self.stuck_pending().and_then(|p| p.login.as_ref()).is_some_and(|l| l.logs_in);
        match failure.class {
            ErrorClass::Authentication if pending_has_it => {} // the stuck rotation explains it, and finishing it fixes it
            ErrorClass::Authentication => {
                let previous_works = self.facts.strategy_kind == Strategy::SingleUser
                    && self.facts.with_stage(AWSPREVIOUS).filter(|v| !v.has(AWSCURRENT)).and_then(|v| v.login.as_ref()).is_some_and(|l| l.logs_in);
                let missing = self.facts.user(CURRENT_USER).is_some_and(|u| u.exists == Some(false));
                let message = if missing {
                    format!("AWSCURRENT's user {user} does not exist in the database (dropped outside the rotation), so applications cannot log in")
                } else if previous_works {
                    format!("the database does not match AWSCURRENT: user {user} still has AWSPREVIOUS's password (the rotation's database change was undone, or the database restored), so applications reading AWSCURRENT are locked out")
                } else {
                    format!("the database does not match AWSCURRENT: user {user}'s password was changed outside the rotation (no version's credentials log in), so applications are locked out")
                };
                let mut fixes = vec![self.reset_password()];
                if previous_works && self.facts.rotation.enabled && self.stuck_pending().is_none() {
                    // Without a master secret, a rotation gets there too: setSecret falls back to AWSPREVIOUS.
                    if !fixes[0].exact {
                        fixes = vec![Fix {
                            command: shell::dbcreds(self.global, &["rotate", self.id()]),
                            exact: true,
                            explanation: "rotates now; setSecret logs in with AWSPREVIOUS (which the database still has) and sets a new password".into(),
                        }];
                    }
                }
                self.add(Severity::Problem, if missing { "current_user_missing" } else { "current_refused" }, message, fixes);
            }
            ErrorClass::Permission => self.add(
                Severity::Problem,
                "current_no_access",
                format!("AWSCURRENT's user {user} logs in but may not use its database: {} ; check its privileges (dbcreds provision reconciles them)", failure.message),
                vec![],
            ),
            class => {
                let check = Fix {
                    command: shell::dbcreds(self.global, &["check", "--secret-id", self.id()]),
                    exact: true,
                    explanation: "runs the connection test's phases (DNS, TCP, TLS, authentication, query) from here and says which layer fails and what to check".into(),
                };
                self.add(
                    Severity::Problem,
                    "current_unreachable",
                    format!("AWSCURRENT's credentials could not be tried: {} [{class}]; {}", failure.message, failure.hint),
                    vec![check],
                );
            }
        }
    }

    fn rotation_config(&mut self) {
        if self.facts.rotation.enabled {
            return;
        }
        let mut args = vec!["rotate-secret", "--secret-id", self.id()];
        let (function, exact) = match &self.facts.rotation.function_arn {
            Some(arn) => (arn.clone(), true),
            None => ("<rotation function ARN>".to_owned(), false),
        };
        args.extend(["--rotation-lambda-arn", function.as_str()]);
        if self.facts.rotation.schedule.is_none() {
            args.extend(["--rotation-rules", "{\"AutomaticallyAfterDays\":30}"]);
        }
        let mut command = shell::aws(self.global, &args);
        if !exact {
            command = command.replace("'<rotation function ARN>'", "<rotation function ARN>");
        }
        let configured = match &self.facts.rotation.function_arn {
            Some(arn) => format!(" (the function {arn} is still configured)"),
            None => " and no rotation function is configured".to_owned(),
        };
        let order = if self.stuck_pending().is_some() { "; run it after the AWSPENDING fix above, or RotateSecret refuses" } else { "" };
        self.add(
            Severity::Problem,
            "rotation_disabled",
            format!("rotation is disabled{configured}: the secret is not rotated on schedule, and the rotator refuses every step (`dbcreds rotate` included) until it is on{order}"),
            vec![Fix {
                command,
                exact,
                explanation: "turns rotation on again and rotates now through the rotation function (RotateSecret); add --no-rotate-immediately to only turn it on".into(),
            }],
        );
    }

    fn notes(&mut self) {
        let facts = self.facts;
        if let Some(current) = self.current()
            && current.has(AWSPENDING)
        {
            let id = current.version_id.clone();
            let fix = self.remove_pending(&id, "which changes nothing else");
            self.add(
                Severity::Warning,
                "pending_on_current",
                format!("AWSPENDING is still on the AWSCURRENT version {id} (AWS's own rotation functions leave it there); harmless for Secrets Manager, but tools that read AWSPENDING see a rotation in progress"),
                vec![fix],
            );
        }
        if let Some(previous) = facts.with_stage(AWSPREVIOUS).filter(|v| !v.has(AWSCURRENT))
            && let Some(login) = &previous.login
            && let Some(failure) = &login.failure
        {
            let user = previous.document.as_ref().and_then(|d| d.username.clone()).unwrap_or_default();
            match (facts.strategy_kind, failure.class) {
                (Strategy::SingleUser, ErrorClass::Authentication) => {
                    self.add(Severity::Note, "previous_refused", format!("AWSPREVIOUS ({user}) is refused, as expected after a single-user rotation"), vec![])
                }
                (Strategy::AlternatingUsers, ErrorClass::Authentication) => self.add(
                    Severity::Warning,
                    "previous_refused",
                    format!("AWSPREVIOUS's user {user} no longer logs in with AWSPREVIOUS's password: applications still using it are locked out until they read AWSCURRENT; the next rotation sets it anew"),
                    vec![],
                ),
                (_, class) => self.add(Severity::Warning, "previous_unreachable", format!("AWSPREVIOUS's credentials could not be tried: {} [{class}]", failure.message), vec![]),
            }
        }
        if let Some(master) = &facts.master {
            let problem = if facts.strategy_kind == Strategy::AlternatingUsers { Severity::Problem } else { Severity::Warning };
            if let Some(failure) = &master.failure {
                let why = if facts.strategy_kind == Strategy::AlternatingUsers { "the next rotation's setSecret will fail" } else { "reset-password cannot use it" };
                self.add(problem, "master_unusable", format!("the master secret {} cannot be used: {} [{}]; {why}", master.secret_id, failure.message, failure.class), vec![]);
            } else if let Some(failure) = master.login.as_ref().and_then(|l| l.failure.as_ref()) {
                self.add(problem, "master_refused", format!("the master secret {} does not log in: {} [{}]; {}", master.secret_id, failure.message, failure.class, failure.hint), vec![]);
            }
        }
        if let Some(alternate) = facts.user(ALTERNATE_USER)
            && alternate.exists == Some(false)
        {
            self.add(Severity::Note, "alternate_missing", format!("the alternate user {} does not exist yet; the next rotation creates it as a copy of AWSCURRENT's user", alternate.username), vec![]);
        }
        for user in &facts.users {
            if let Some(failure) = &user.failure {
                self.add(Severity::Warning, "user_unreadable", format!("could not read user {}: {} [{}]", user.username, failure.message, failure.class), vec![]);
            }
        }
        let unlabelled: Vec<&str> = facts.versions.iter().filter(|v| v.stages.is_empty()).map(|v| v.version_id.as_str()).collect();
        if !unlabelled.is_empty() {
            self.add(
                Severity::Note,
                "unlabelled_versions",
                format!("{} version{} without a stage ({}): deprecated, nothing reads them, Secrets Manager deletes them in time", unlabelled.len(), plural(unlabelled.len()), unlabelled.join(", ")),
                vec![],
            );
        }
        for version in &facts.versions {
            let others: Vec<&str> = version.stages.iter().map(String::as_str).filter(|s| ![AWSCURRENT, AWSPENDING, AWSPREVIOUS].contains(s)).collect();
            if !others.is_empty() {
                self.add(Severity::Note, "custom_labels", format!("version {} carries the label(s) {}, which rotation leaves alone", version.version_id, others.join(", ")), vec![]);
            }
        }
        if let Some(failure) = &facts.listing_failure {
            self.add(Severity::Warning, "versions_not_listed", format!("the versions without a stage could not be listed: {} [{}]", failure.message, failure.class), vec![]);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The decisions the end-to-end tests do not stage (they stage the common states for real).
    use super::*;
    use crate::doctor::facts::{RotationFacts, VersionFacts};
    use crate::login::{DocumentSummary, FailureReport, LoginReport};

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf";

    fn global() -> GlobalArgs {
        GlobalArgs { json: false, ca_bundle: None, region: Some("eu-west-1".into()), profile: None, verbose: 0 }
    }

    fn login(ok: bool, class: ErrorClass) -> LoginReport {
        LoginReport {
            logs_in: ok,
            as_user: ok.then(|| "app".into()),
            tls: ok.then(|| "TLSv1.3".into()),
            certificate_verified: ok,
            server_version: None,
            failure: (!ok).then(|| FailureReport::new(class, "refused")),
        }
    }

    fn version(id: &str, stages: &[&str], value: ValueState, login: Option<LoginReport>) -> VersionFacts {
        let document = (value == ValueState::Document).then(|| DocumentSummary { username: Some("app".into()), ..DocumentSummary::default() });
        VersionFacts { version_id: id.into(), stages: stages.iter().map(|s| (*s).to_owned()).collect(), created: None, value, document, login }
    }

    fn facts(enabled: bool, strategy: Strategy, versions: Vec<VersionFacts>) -> Facts {
        Facts {
            secret_id: ARN.into(),
            arn: ARN.into(),
            name: "app".into(),
            rotation: RotationFacts { enabled, function_arn: Some("arn:aws:lambda:eu-west-1:111122223333:function:rotator".into()), schedule: Some("rate(30 days)".into()), last_rotated: None, next_rotation: None },
            strategy: strategy.as_str(),
            strategy_kind: strategy,
            strategy_chosen_because: "test",
            versions,
            master: None,
            users: Vec::new(),
            database_matches_current: None,
            listing_failure: None,
        }
    }

    fn commands(findings: &[Finding]) -> Vec<String> {
        findings.iter().filter(|f| f.severity == Severity::Problem).flat_map(|f| f.fixes.iter().map(|x| x.command.clone())).collect()
    }

    #[test]
    fn with_rotation_off_a_set_password_is_finished_by_hand_in_finish_secrets_order() {
        let f = facts(false, Strategy::SingleUser, vec![
            version("cur", &[AWSCURRENT], ValueState::Document, Some(login(false, ErrorClass::Authentication))),
            version("pend", &[AWSPENDING], ValueState::Document, Some(login(true, ErrorClass::Authentication))),
        ]);
        let (findings, verdict) = diagnose(&f, &global());
        assert!(!verdict.healthy);
        assert_eq!(findings.iter().filter(|f| f.severity == Severity::Problem).map(|f| f.code).collect::<Vec<_>>(), ["stuck_pending", "rotation_disabled"]);
        assert_eq!(
            commands(&findings)[..2],
            [
                format!("aws secretsmanager update-secret-version-stage --secret-id {ARN} --version-stage AWSCURRENT --move-to-version-id pend --remove-from-version-id cur --region eu-west-1"),
                format!("aws secretsmanager update-secret-version-stage --secret-id {ARN} --version-stage AWSPENDING --remove-from-version-id pend --region eu-west-1"),
            ]
        );
    }

    #[test]
    fn an_unusable_pending_value_is_abandoned_and_a_network_failure_sent_to_check() {
        let f = facts(true, Strategy::SingleUser, vec![
            version("cur", &[AWSCURRENT], ValueState::Document, Some(login(false, ErrorClass::TcpTimeout))),
            version("pend", &[AWSPENDING], ValueState::Invalid { problem: "AWSPENDING.host: is missing".into() }, None),
        ]);
        let (findings, _) = diagnose(&f, &global());
        assert_eq!(
            commands(&findings),
            [
                format!("aws secretsmanager update-secret-version-stage --secret-id {ARN} --version-stage AWSPENDING --remove-from-version-id pend --region eu-west-1"),
                format!("dbcreds check --secret-id {ARN} --region eu-west-1"),
            ]
        );
        assert!(findings.iter().any(|f| f.code == "current_unreachable" && f.message.contains("tcp_timeout")));
    }

    #[test]
    fn pending_left_on_current_and_a_refused_alternating_previous_are_warnings_only() {
        let f = facts(true, Strategy::AlternatingUsers, vec![
            version("cur", &[AWSCURRENT, AWSPENDING], ValueState::Document, Some(login(true, ErrorClass::Authentication))),
            version("prev", &[AWSPREVIOUS], ValueState::Document, Some(login(false, ErrorClass::Authentication))),
        ]);
        let (findings, verdict) = diagnose(&f, &global());
        assert!(verdict.healthy, "{findings:?}");
        assert_eq!(verdict.warnings, 2);
        let codes: Vec<&str> = findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["pending_on_current", "previous_refused"]);
        assert_eq!(findings[0].fixes[0].command, format!("aws secretsmanager update-secret-version-stage --secret-id {ARN} --version-stage AWSPENDING --remove-from-version-id cur --region eu-west-1"));
    }

    #[test]
    fn a_single_user_database_back_on_the_previous_password_rotates_when_no_master_is_known() {
        let f = facts(true, Strategy::SingleUser, vec![
            version("cur", &[AWSCURRENT], ValueState::Document, Some(login(false, ErrorClass::Authentication))),
            version("prev", &[AWSPREVIOUS], ValueState::Document, Some(login(true, ErrorClass::Authentication))),
        ]);
        let (findings, _) = diagnose(&f, &global());
        let refused = findings.iter().find(|f| f.code == "current_refused").expect("current_refused");
        assert!(refused.message.contains("AWSPREVIOUS's password"), "{}", refused.message);
        assert_eq!(commands(&findings), [format!("dbcreds rotate {ARN} --region eu-west-1")]);
        assert!(refused.fixes[0].exact);
    }
}
