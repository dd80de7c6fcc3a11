//! The project's Lambda binaries, run as Lambda runs them: a process per execution environment,
//! talking to the Runtime API (emulated in [`runtime_api`]), killed when an invocation passes its
//! deadline, started afresh (a cold start) on the next invocation.
//!
//! Timings are recorded per invocation (init: process spawn to its first poll for an event;
//! duration: event delivered to answer posted), for the benchmarks as much as for the tests.

mod runtime_api;

use crate::scratch::scratch_dir;
use crate::paths;
use crate::random;
use bytes::Bytes;
use runtime_api::{FunctionError, PendingInvocation, RuntimeApi};
use serde_json::Value;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// How long a new process may take to ask for its first event (Lambda's init phase limit).
const INIT_LIMIT: Duration = Duration::from_secs(10);

pub const REGION: &str = "us-east-1";
pub const ACCOUNT_ID: &str = "123456789012";
pub const MEMORY_MB: u32 = 128;

/// Variables of the test process that reach the function, for debugging and coverage; nothing
/// else does (no AWS profile or credentials of the developer).
const PASSED_THROUGH: &[&str] = &["PATH", "RUST_BACKTRACE", "LLVM_PROFILE_FILE", "CARGO_LLVM_COV", "CARGO_LLVM_COV_TARGET_DIR"];

/// What an invocation came to, as the invoker of a Lambda function sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function's response. A body that is not JSON is kept as a JSON string.
    Ok(Value),
    /// The function reported an error, or its process died (`Runtime.ExitError`).
    Err { error_type: String, error_message: String },
    /// The deadline passed (or init did not finish within Lambda's init limit); the process was
    /// killed, and the next invocation is a cold start.
    Timeout,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InvocationTimings {
    /// This invocation started a new process.
    pub cold_start: bool,
    /// Process spawn to its first poll for an event; `Some` only on a cold start.
    pub init: Option<Duration>,
    /// Event delivered to the function's answer; `None` when it never answered.
    pub duration: Option<Duration>,
    /// `invoke` called to outcome known, as the invoker waited.
    pub total: Duration,
}

#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    pub timings: InvocationTimings,
    /// What the function wrote to stdout/stderr during this invocation.
    pub logs: String,
}

impl Invocation {
    /// The response, or a panic that shows the outcome and the function's logs.
    pub fn expect_ok(self) -> Value {
        match self.outcome {
            Outcome::Ok(value) => value,
            other => panic!("expected a successful invocation, got {other:?}\nfunction logs:\n{}", self.logs),
        }
    }

    /// `(error_type, error_message)`, or a panic that shows the outcome and the logs.
    pub fn expect_err(self) -> (String, String) {
        match self.outcome {
            Outcome::Err { error_type, error_message } => (error_type, error_message),
            other => panic!("expected a failed invocation, got {other:?}\nfunction logs:\n{}", self.logs),
        }
    }
}

/// A Lambda function backed by a binary of this workspace.
pub struct LambdaFunction {
    name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// Holds `function.log`, which every process of this function appends to.
    log_dir: TempDir,
    environment: Option<ExecutionEnvironment>,
    history: Vec<InvocationTimings>,
}

/// One process and its Runtime API endpoint.
struct ExecutionEnvironment {
    api: RuntimeApi,
    process: tokio::process::Child,
    spawned_at: Instant,
    /// The first invocation of an environment carries its init time.
    invoked: bool,
}

impl LambdaFunction {
    /// Starts `target/<profile>/<binary_name>` as a function of that name with `env` on top of
    /// the variables Lambda sets. The process starts now (its init time is reported with the
    /// first invocation).
    pub async fn start(binary_name: &str, env: Vec<(String, String)>) -> LambdaFunction {
        Self::start_binary(binary_name, binary_path(binary_name), env).await
    }

    /// As `start`, with an explicit executable (a release build, for benchmarks).
    pub async fn start_binary(function_name: &str, binary: PathBuf, env: Vec<(String, String)>) -> LambdaFunction {
        let log_dir = scratch_dir("lambda");
        let mut function = LambdaFunction { name: function_name.to_string(), binary, env, log_dir, environment: None, history: Vec::new() };
        function.environment = Some(function.spawn_environment().await);
        function
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn function_arn(&self) -> String {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", self.name)
    }

    /// Invokes with a JSON event and waits for the outcome; `timeout` is the function's
    /// configured timeout, counted from the moment the function receives the event.
    pub async fn invoke(&mut self, event: Value, timeout: Duration) -> Invocation {
        self.invoke_raw(Bytes::from(event.to_string()), timeout).await
    }

    /// Invokes with an arbitrary body (malformed JSON, say).
    pub async fn invoke_raw(&mut self, body: impl Into<Bytes>, timeout: Duration) -> Invocation {
        let body: Bytes = body.into();
        crate::leak_audit::register_event_secrets(&body);
        let started = Instant::now();
        let log_offset = self.log_len();
        let function_arn = self.function_arn();
        let environment = self.live_environment().await;
        let cold_start = !environment.invoked;
        environment.invoked = true;
        let request_id = random::uuid_v4();
        let (delivered_tx, delivered_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        environment.api.queue(PendingInvocation {
            request_id: request_id.clone(),
            body,
            timeout,
            function_arn,
            trace_id: format!("Root=1-{}-{};Parent={};Sampled=0", random::hex(4), random::hex(12), random::hex(8)),
            delivered: delivered_tx,
            reply: reply_tx,
        });
        let (outcome, duration) = wait_for_outcome(environment, &request_id, delivered_rx, reply_rx, timeout).await;
        let init = if cold_start { environment.api.first_poll().map(|polled| polled.duration_since(environment.spawned_at)) } else { None };
        // Like Lambda, a timed-out or failed-init environment is thrown away; so is a dead process.
        let discard = matches!(outcome, Outcome::Timeout) || environment.process.try_wait().ok().flatten().is_some() || environment.api.init_errors().borrow().is_some();
        if discard {
            self.kill().await;
        }
        let timings = InvocationTimings { cold_start, init, duration, total: started.elapsed() };
        self.history.push(timings.clone());
        crate::leak_audit::record_output(&format!("{} outcome {request_id}", self.name), &format!("{outcome:?}"));
        Invocation { request_id, outcome, timings, logs: self.logs_from(log_offset) }
    }

    /// Everything every process of this function wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs_from(0)
    }

    /// Timings of every invocation so far, in order.
    pub fn timings(&self) -> &[InvocationTimings] {
        &self.history
    }

    /// The pid of the current process, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.environment.as_ref().and_then(|environment| environment.process.id())
    }

    /// Starts an execution environment now if none runs (after a kill or a timeout), so that
    /// [`LambdaFunction::pid`] names the process the next invocation will run in.
    pub async fn ensure_running(&mut self) {
        self.live_environment().await;
    }

    /// Kills the current process (as Lambda recycles an environment); the next invocation is a
    /// cold start.
    pub async fn kill(&mut self) {
        if let Some(mut environment) = self.environment.take() {
            let _ = environment.process.start_kill();
            let _ = environment.process.wait().await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("function.log")
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(self.log_path()).map(|meta| meta.len() as usize).unwrap_or(0)
    }

    fn logs_from(&self, offset: usize) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(offset..).unwrap_or_default()).into_owned()
    }

    /// The running environment, or a fresh one if there is none or its process has died.
    async fn live_environment(&mut self) -> &mut ExecutionEnvironment {
        let dead = match self.environment.as_mut() {
            Some(environment) => environment.process.try_wait().ok().flatten().is_some(),
            None => true,
        };
        if dead {
            self.kill().await;
            self.environment = Some(self.spawn_environment().await);
        }
        self.environment.as_mut().expect("an environment was just ensured")
    }

    async fn spawn_environment(&self) -> ExecutionEnvironment {
        let api = RuntimeApi::start().await;
        // Output goes to a file rather than a pipe: nothing can fill up and block the function,
        // and everything it wrote before posting an answer is readable the moment the answer is.
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open the function's log");
        let mut command = tokio::process::Command::new(&self.binary);
        command.env_clear();
        for name in PASSED_THROUGH {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("2026/01/01/[$LATEST]{}", random::hex(16)))
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("TZ", ":UTC")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and the closure allocates nothing. If the test
        // process dies without running Drop, the function dies with it.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned_at = Instant::now();
        let process = command.spawn().unwrap_or_else(|err| panic!("cannot start the Lambda binary {}: {err}", self.binary.display()));
        ExecutionEnvironment { api, process, spawned_at, invoked: false }
    }
}

impl Drop for LambdaFunction {
    /// Everything the function wrote goes to the log-leak audit's records (see
    /// [`crate::leak_audit`]) before its temporary directory goes.
    fn drop(&mut self) {
        crate::leak_audit::record_output_file(&format!("{} log", self.name), &self.log_path());
    }
}

impl std::fmt::Debug for LambdaFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaFunction").field("name", &self.name).field("binary", &self.binary).field("invocations", &self.history.len()).finish_non_exhaustive()
    }
}

/// Waits for the event to be picked up, then for the answer until the deadline; meanwhile
/// watches for the process dying and for an init error.
async fn wait_for_outcome(
    environment: &mut ExecutionEnvironment,
    request_id: &str,
    delivered: oneshot::Receiver<Instant>,
    reply: oneshot::Receiver<runtime_api::RuntimeReply>,
    timeout: Duration,
) -> (Outcome, Option<Duration>) {
    let init_errors = environment.api.init_errors();
    let mut watching = init_errors.clone();
    let delivered_at = tokio::select! {
        delivered = delivered => match delivered {
            Ok(at) => at,
            Err(_) => return (exit_error(request_id, "the Runtime API dropped the event"), None),
        },
        status = environment.process.wait() => return (exit_outcome(request_id, status, &init_errors), None),
        _ = watching.wait_for(Option::is_some) => return (init_error_outcome(&init_errors), None),
        _ = tokio::time::sleep(INIT_LIMIT) => return (Outcome::Timeout, None),
    };
    let deadline = tokio::time::Instant::from_std(delivered_at + timeout);
    tokio::select! {
        reply = reply => match reply {
            Ok(reply) => (outcome_of(reply.result), Some(reply.at.duration_since(delivered_at))),
            Err(_) => (exit_error(request_id, "the Runtime API dropped the invocation"), None),
        },
        status = environment.process.wait() => (exit_outcome(request_id, status, &init_errors), None),
        _ = tokio::time::sleep_until(deadline) => (Outcome::Timeout, None),
    }
}

fn outcome_of(result: Result<Bytes, FunctionError>) -> Outcome {
    match result {
        Ok(body) => Outcome::Ok(serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))),
        Err(error) => Outcome::Err { error_type: error.error_type, error_message: error.error_message },
    }
}

/// A process that exited mid-invocation: the init error it posted, if any, else Lambda's
/// `Runtime.ExitError`.
fn exit_outcome(request_id: &str, status: std::io::Result<std::process::ExitStatus>, init_errors: &tokio::sync::watch::Receiver<Option<FunctionError>>) -> Outcome {
    if init_errors.borrow().is_some() {
        return init_error_outcome(init_errors);
    }
    let status = status.map(|status| status.to_string()).unwrap_or_else(|err| format!("unknown exit status ({err})"));
    exit_error(request_id, &format!("Runtime exited with error: {status}"))
}

fn init_error_outcome(init_errors: &tokio::sync::watch::Receiver<Option<FunctionError>>) -> Outcome {
    let error = init_errors.borrow().clone().expect("an init error was posted");
    Outcome::Err { error_type: error.error_type, error_message: error.error_message }
}

fn exit_error(request_id: &str, what: &str) -> Outcome {
    Outcome::Err { error_type: "Runtime.ExitError".to_string(), error_message: format!("RequestId: {request_id} Error: {what}") }
}

/// `target/<profile>/<name>`: a binary of this workspace. Panics with how to build it if missing.
pub fn binary_path(name: &str) -> PathBuf {
    let path = paths::profile_dir().join(name);
    if !path.is_file() {
        panic!("binary {name} not built ({} is missing): run `cargo build --workspace --bins` (scripts/test does this)", path.display());
    }
    path
}
