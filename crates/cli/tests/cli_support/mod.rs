//! Shared by the `dbcreds` end-to-end tests: the real binary (built by cargo for these tests),
//! moto for Secrets Manager, STS and RDS, and the database servers of `dbcreds_testenv`.
//!
//! Every run's stdout and stderr are recorded for the suite-wide leak audit
//! (`dbcreds_testenv::leak_audit`), which searches them for every password the tests and moto
//! hold. [`Cli::run_fix`] runs a command the doctor suggested, exactly as printed: a `dbcreds`
//! command pasted into `sh -c` with this build first on PATH, an `aws secretsmanager` command as
//! the same API call with the same arguments through the SDK (the AWS CLI is not a dependency of
//! the tests).
#![allow(dead_code)] // each test file uses its own subset

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::RotationRulesType;
use dbcreds_testenv::{Moto, leak_audit, moto_rotation};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const BINARY: &str = env!("CARGO_BIN_EXE_dbcreds");

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (the run must have had `--json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("dbcreds {:?}: stdout is not JSON ({err}):\n{}\nstderr:\n{}", self.args, self.stdout, self.stderr))
    }

    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "dbcreds {:?} exited {}, expected {code}\nstdout:\n{}\nstderr:\n{}", self.args, self.code, self.stdout, self.stderr);
        self
    }
}

pub struct Cli {
    pub moto: Moto,
    pub sm: Client,
    env: Vec<(String, String)>,
}

impl Cli {
    /// moto, and the binary's environment: moto as every AWS endpoint, `ca` as DB_CA_BUNDLE.
    pub async fn start(ca: Option<&Path>) -> Cli {
        let moto = Moto::start().await;
        let sm = Client::new(&moto.sdk_config().await);
        let mut env = moto.env();
        if let Some(ca) = ca {
            env.push(("DB_CA_BUNDLE".into(), ca.display().to_string()));
        }
        Cli { moto, sm, env }
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }

    /// Runs the binary with `extra` on top of the environment (and nothing of the test's own
    /// environment that could point it elsewhere: no RUST_LOG, no ROTATION_STRATEGY).
    pub async fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut command = std::process::Command::new(BINARY);
        command.args(args);
        for name in ["RUST_LOG", "ROTATION_STRATEGY", "DB_CA_BUNDLE", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "DB_SECRET_ARN", "AUTH_MODE"] {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.envs(extra.iter().copied());
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let shown = args.join(" ");
        let output = tokio::task::spawn_blocking(move || command.output()).await.expect("the runner thread").expect("the dbcreds binary runs");
        let run = Run {
            args,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        leak_audit::record_output(&format!("dbcreds {shown} (stdout)"), &run.stdout);
        leak_audit::record_output(&format!("dbcreds {shown} (stderr)"), &run.stderr);
        run
    }

    /// Runs a command line as an operator pastes it: `sh -c`, with this build's `dbcreds` first
    /// on PATH and the same environment as [`Cli::run`].
    pub async fn paste(&self, line: &str) -> Run {
        let bin = Path::new(BINARY).parent().expect("the binary's directory").display().to_string();
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg(line).env_clear().envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()));
        let output = tokio::task::spawn_blocking(move || command.output()).await.expect("the runner thread").expect("sh runs");
        let run = Run {
            args: vec![line.to_owned()],
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        leak_audit::record_output(&format!("sh -c {line} (stdout)"), &run.stdout);
        leak_audit::record_output(&format!("sh -c {line} (stderr)"), &run.stderr);
        run
    }

    /// A secret with `document`; its password is registered for the leak audit.
    pub async fn create_secret(&self, name: &str, document: &Value) -> String {
        if let Some(password) = document["password"].as_str() {
            leak_audit::register_secret(&format!("test secret {name}"), password);
        }
        let out = self.sm.create_secret().name(name).secret_string(document.to_string()).send().await.expect("CreateSecret");
        out.arn.expect("an ARN")
    }

    pub async fn stages(&self, arn: &str) -> BTreeMap<String, Vec<String>> {
        moto_rotation::version_stages(&self.sm, arn).await.unwrap_or_else(|problem| panic!("{problem}"))
    }

    pub async fn version_with(&self, arn: &str, stage: &str) -> Option<String> {
        self.stages(arn).await.into_iter().find(|(_, stages)| stages.iter().any(|s| s == stage)).map(|(id, _)| id)
    }

    pub async fn value(&self, arn: &str, version: &str) -> Value {
        let out = self.sm.get_secret_value().secret_id(arn).version_id(version).send().await.expect("GetSecretValue");
        serde_json::from_str(&out.secret_string.expect("a string")).expect("JSON")
    }

    /// `(version, document)` of AWSCURRENT.
    pub async fn current(&self, arn: &str) -> (String, Value) {
        let version = self.version_with(arn, "AWSCURRENT").await.expect("an AWSCURRENT version");
        let value = self.value(arn, &version).await;
        (version, value)
    }

    /// RotateSecret as the service does before it invokes a function (see `moto_rotation`).
    pub async fn start_rotation(&self, arn: &str, token: &str) {
        moto_rotation::start_rotation(&self.sm, arn, token).await.unwrap_or_else(|problem| panic!("{problem}"));
    }

    /// Turns rotation on for a secret and rotates it once with `dbcreds rotate`, as an operator
    /// would right after provisioning: RotateSecret (emulated) and the four steps by the CLI.
    pub async fn first_rotation(&self, arn: &str, strategy: &str) -> Run {
        let token = moto_rotation::new_token();
        self.start_rotation(arn, &token).await;
        let run = self.run(&["rotate", arn, "--strategy", strategy, "--resume", &token]).await;
        run.expect(0);
        run
    }

    /// Runs a command the doctor printed, exactly as printed (see the module documentation).
    pub async fn run_fix(&self, command: &str) -> Option<Run> {
        let words = shell_words(command);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["dbcreds", ..] => Some(self.paste(command).await),
            ["aws", "secretsmanager", operation, args @ ..] => {
                let flags = flags(args);
                let flag = |name: &str| flags.get(name).cloned().flatten();
                match *operation {
                    "update-secret-version-stage" => {
                        self.sm
                            .update_secret_version_stage()
                            .secret_id(flag("--secret-id").expect("--secret-id"))
                            .version_stage(flag("--version-stage").expect("--version-stage"))
                            .set_move_to_version_id(flag("--move-to-version-id"))
                            .set_remove_from_version_id(flag("--remove-from-version-id"))
                            .send()
                            .await
                            .unwrap_or_else(|err| panic!("{command}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&err)));
                    }
                    "rotate-secret" => {
                        let rules = flag("--rotation-rules").map(|json| {
                            let value: Value = serde_json::from_str(&json).expect("--rotation-rules is JSON");
                            let mut rules = RotationRulesType::builder();
                            if let Some(days) = value["AutomaticallyAfterDays"].as_i64() {
                                rules = rules.automatically_after_days(days);
                            }
                            if let Some(expression) = value["ScheduleExpression"].as_str() {
                                rules = rules.schedule_expression(expression);
                            }
                            rules.build()
                        });
                        self.sm
                            .rotate_secret()
                            .secret_id(flag("--secret-id").expect("--secret-id"))
                            .set_rotation_lambda_arn(flag("--rotation-lambda-arn"))
                            .set_rotation_rules(rules)
                            .rotate_immediately(!flags.contains_key("--no-rotate-immediately"))
                            .send()
                            .await
                            .unwrap_or_else(|err| panic!("{command}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&err)));
                    }
                    other => panic!("the tests do not know how to run aws secretsmanager {other}: {command}"),
                }
                None
            }
            _ => panic!("not a command the doctor suggests: {command}"),
        }
    }
}

/// `--name value` pairs and bare `--flag`s.
fn flags(args: &[&str]) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let name = args[i];
        assert!(name.starts_with("--"), "unexpected argument {name:?} in {args:?}");
        match args.get(i + 1).filter(|next| !next.starts_with("--")) {
            Some(value) => {
                out.insert(name.to_owned(), Some((*value).to_owned()));
                i += 2;
            }
            None => {
                out.insert(name.to_owned(), None);
                i += 1;
            }
        }
    }
    out
}

/// Splits a POSIX shell command line (single quotes, `'\''`), as the doctor quotes them.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The findings of a doctor report with `code`.
pub fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"].as_array().into_iter().flatten().filter(|f| f["code"] == code).collect()
}

/// The problems' codes, in order.
pub fn problems(report: &Value) -> Vec<String> {
    report["findings"].as_array().into_iter().flatten().filter(|f| f["severity"] == "problem").map(|f| f["code"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The fix commands of every problem, in the order the doctor says to run them.
pub fn fix_commands(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] == "problem")
        .flat_map(|f| f["fixes"].as_array().cloned().unwrap_or_default())
        .map(|fix| {
            assert_eq!(fix["exact"], true, "a fix with a placeholder: {fix}");
            fix["command"].as_str().expect("a command").to_owned()
        })
        .collect()
}

/// Runs the binary with only `env` (no AWS environment at all), for what needs no service.
pub fn run_offline(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = std::process::Command::new(BINARY);
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env.iter().copied());
    command.env("AWS_CONFIG_FILE", "/dev/null").env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null").env("AWS_EC2_METADATA_DISABLED", "true");
    let output = command.output().expect("the dbcreds binary runs");
    let run = Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    leak_audit::record_output(&format!("dbcreds {} (stdout)", run.args.join(" ")), &run.stdout);
    leak_audit::record_output(&format!("dbcreds {} (stderr)", run.args.join(" ")), &run.stderr);
    run
}
