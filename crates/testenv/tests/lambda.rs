//! The Lambda Runtime API emulator, driving the tiny echo-lambda binary built with lambda_runtime
//! like the project's functions.

use dbcreds_testenv::{LambdaFunction, Outcome, binary_path};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(10);

fn extra_env() -> Vec<(String, String)> {
    vec![("ECHO_LAMBDA_EXTRA".to_string(), "from the test".to_string())]
}

#[tokio::test]
async fn the_binary_path_is_the_one_cargo_built() {
    assert_eq!(binary_path("echo-lambda"), std::path::PathBuf::from(env!("CARGO_BIN_EXE_echo-lambda")));
}

#[tokio::test]
#[should_panic(expected = "binary no-such-function not built")]
async fn a_missing_binary_says_how_to_build_it() {
    binary_path("no-such-function");
}

#[tokio::test]
async fn invocations_are_answered_by_one_warm_process() {
    let mut function = LambdaFunction::start("echo-lambda", extra_env()).await;
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let first = function.invoke(json!({"n": 1}), TIMEOUT).await;
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(first.timings.cold_start);
    assert!(first.timings.init.is_some(), "a cold start reports its init time");
    let request_id = first.request_id.clone();
    let response = first.expect_ok();
    assert_eq!(response["echo"], json!({"n": 1}));
    assert_eq!(response["request_id"], json!(request_id));
    assert_eq!(response["function_name"], json!("echo-lambda"));
    assert_eq!(response["function_arn"], json!("arn:aws:lambda:us-east-1:123456789012:function:echo-lambda"));
    assert_eq!(response["extra_env"], json!("from the test"));
    // The deadline the runtime sees is the invocation's timeout, counted from delivery (which
    // happened between `before` and `after`).
    let deadline = response["deadline_ms"].as_u64().expect("deadline");
    let timeout_ms = TIMEOUT.as_millis() as u64;
    assert!((before + timeout_ms..=after + timeout_ms).contains(&deadline), "deadline {deadline} not within [{before}, {after}] + {timeout_ms}");

    let second = function.invoke(json!({"n": 2}), TIMEOUT).await;
    assert!(!second.timings.cold_start);
    assert_eq!(second.timings.init, None);
    let second = second.expect_ok();
    assert_eq!(second["echo"], json!({"n": 2}));
    assert_eq!(second["pid"], response["pid"], "a warm invocation reuses the process");
    assert_eq!(function.timings().len(), 2);
    eprintln!("echo-lambda timings: {:?}", function.timings());
}

#[tokio::test]
async fn a_function_error_is_reported_with_its_type_and_message() {
    let mut function = LambdaFunction::start("echo-lambda", extra_env()).await;
    let (error_type, error_message) = function.invoke(json!({"fail": "the database said no"}), TIMEOUT).await.expect_err();
    assert_eq!(error_message, "the database said no");
    assert!(!error_type.is_empty());
    // An error is not a crash: the process stays warm.
    let after = function.invoke(json!({}), TIMEOUT).await;
    assert!(!after.timings.cold_start);
    after.expect_ok();
}

#[tokio::test]
async fn a_timeout_kills_the_process_and_the_next_invocation_is_a_cold_start() {
    let mut function = LambdaFunction::start("echo-lambda", extra_env()).await;
    let warm = function.invoke(json!({}), TIMEOUT).await.expect_ok();
    let first_pid = warm["pid"].as_u64().unwrap() as u32;

    // The function would answer after 60 s; the emulator gives up at the 300 ms deadline.
    let timed_out = function.invoke(json!({"sleep_ms": 60_000}), Duration::from_millis(300)).await;
    assert_eq!(timed_out.outcome, Outcome::Timeout);
    assert!(timed_out.timings.total < Duration::from_secs(30), "the emulator waited for the function instead of the deadline: {:?}", timed_out.timings);
    assert!(!std::path::Path::new(&format!("/proc/{first_pid}")).exists(), "the timed-out process {first_pid} is still alive");
    assert_eq!(function.pid(), None);

    let cold = function.invoke(json!({"after": "timeout"}), TIMEOUT).await;
    assert!(cold.timings.cold_start, "the invocation after a timeout starts a fresh process");
    let cold = cold.expect_ok();
    assert_ne!(cold["pid"].as_u64().unwrap() as u32, first_pid);
    assert_eq!(cold["echo"], json!({"after": "timeout"}));
}

#[tokio::test]
async fn a_process_that_exits_mid_invocation_is_a_runtime_exit_error() {
    let mut function = LambdaFunction::start("echo-lambda", extra_env()).await;
    let (error_type, error_message) = function.invoke(json!({"exit": 7}), TIMEOUT).await.expect_err();
    assert_eq!(error_type, "Runtime.ExitError");
    assert!(error_message.contains("exit status: 7"), "{error_message}");
    let next = function.invoke(json!({}), TIMEOUT).await;
    assert!(next.timings.cold_start);
    next.expect_ok();
}

#[tokio::test]
async fn a_process_that_fails_init_is_a_runtime_exit_error_with_its_logs() {
    let env = vec![("ECHO_LAMBDA_FAIL_INIT".to_string(), "no config".to_string())];
    let mut function = LambdaFunction::start("echo-lambda", env).await;
    let invocation = function.invoke(json!({}), TIMEOUT).await;
    assert!(invocation.logs.contains("failing init on purpose: no config"), "logs: {}", invocation.logs);
    let (error_type, error_message) = invocation.expect_err();
    assert_eq!(error_type, "Runtime.ExitError");
    assert!(error_message.contains("exit status: 3"), "{error_message}");
}

#[tokio::test]
async fn malformed_json_reaches_the_runtime_which_reports_an_error() {
    let mut function = LambdaFunction::start("echo-lambda", extra_env()).await;
    let invocation = function.invoke_raw(&b"{not json"[..], TIMEOUT).await;
    let (error_type, error_message) = invocation.expect_err();
    assert!(!error_type.is_empty() && !error_message.is_empty());
    function.invoke(json!({}), TIMEOUT).await.expect_ok();
}

#[tokio::test]
async fn stdout_and_stderr_are_captured_per_invocation_and_in_total() {
    let mut function = LambdaFunction::start("echo-lambda", extra_env()).await;
    let first = function.invoke(json!({"log": "first line"}), TIMEOUT).await;
    assert!(first.logs.contains("stdout: first line") && first.logs.contains("stderr: first line"), "logs: {}", first.logs);
    let second = function.invoke(json!({"log": "second line"}), TIMEOUT).await;
    assert!(second.logs.contains("second line") && !second.logs.contains("first line"), "logs: {}", second.logs);
    let all = function.logs();
    assert!(all.contains("first line") && all.contains("second line"));
}

#[tokio::test]
async fn the_function_sees_lambda_variables_and_nothing_of_the_test_environment() {
    // cargo and nextest give every test process this variable; the function must not inherit it.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some(), "the test runner sets CARGO_PKG_NAME");
    let mut function = LambdaFunction::start("echo-lambda", vec![("ECHO_LAMBDA_EXTRA".into(), "given".into())]).await;
    let response = function.invoke(json!({}), TIMEOUT).await.expect_ok();
    assert_eq!(response["extra_env"], json!("given"));
    let environ = std::fs::read(format!("/proc/{}/environ", function.pid().expect("running"))).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for expected in ["AWS_LAMBDA_RUNTIME_API=127.0.0.1:", "AWS_LAMBDA_FUNCTION_NAME=echo-lambda", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_LOG_FORMAT=JSON", "AWS_REGION=us-east-1"] {
        assert!(environ.contains(expected), "{expected} missing from the function's environment");
    }
    assert!(!environ.contains("CARGO_PKG_NAME="), "the test's environment leaked into the function");
}
