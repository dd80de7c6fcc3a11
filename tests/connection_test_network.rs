//! The network layers, failing for real on loopback, through the `connection-test` binary:
//! an unresolvable name, a refused port, a port that drops SYNs, and a port that accepts TCP
//! but never speaks. The function runs in IAM mode without a role, so the token is signed
//! locally and no AWS endpoint is involved: everything before the failing phase still passes
//! and is reported.

mod connection_test_support;

use connection_test_support::*;
use serde_json::json;

fn env(host: &str, port: u16, engine: &str) -> Vec<(String, String)> {
    let mut env = offline_aws_env();
    env.extend(pairs(&[
        ("RDS_PROXY_APPLICATION_ENDPOINT", host),
        ("DB_PORT", &port.to_string()),
        ("DB_ENGINE", engine),
        ("DB_USERNAME", "app_iam"),
    ]));
    env
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_failure() {
    let mut function = start(env("nonexistent.invalid", 5432, "postgres")).await;
    let (response, logs) = invoke(&mut function, json!({})).await;
    expect_failure(&response, "dns", "dns", 502);
    expect_phases(&response, &[("assume_role", "skipped"), ("token", "ok"), ("dns", "failed")]);
    assert!(failure_message(&response).contains("nonexistent.invalid"), "{}", pretty(&response));
    assert!(failure_hint(&response).contains("DNS"), "{}", pretty(&response));
    let d = &response["diagnostics"];
    assert_eq!(d["endpoint"], "nonexistent.invalid:5432");
    assert_eq!(d["auth_mode"], "iam");
    assert_eq!(d["token_region"], "eu-west-1");
    expect_absent(&response, &logs, &["offline-secret-access-key"]);
    assert!(logs.contains("\"error_class\":\"dns\""), "the failure is logged with its class: {logs}");
}

#[tokio::test]
async fn a_refused_port_is_connection_refused() {
    let port = refused_port();
    let mut function = start(env("127.0.0.1", port, "mysql")).await;
    let (response, _) = invoke(&mut function, json!({})).await;
    expect_failure(&response, "tcp", "connection_refused", 502);
    expect_phases(&response, &[("assume_role", "skipped"), ("token", "ok"), ("dns", "ok"), ("tcp", "failed")]);
    assert!(failure_message(&response).contains(&format!("127.0.0.1:{port}")), "{}", pretty(&response));
    assert_eq!(response["diagnostics"]["addresses"], json!(["127.0.0.1"]));
}

#[tokio::test]
async fn a_port_that_drops_packets_is_a_tcp_timeout() {
    let blackhole = syn_dropping_port().await;
    let overflows_before = listen_overflows();
    let mut function = start(env("127.0.0.1", blackhole.port, "postgres")).await;
    let (response, _) = invoke(&mut function, json!({})).await;
    expect_failure(&response, "tcp", "tcp_timeout", 504);
    expect_phases(&response, &[("assume_role", "skipped"), ("token", "ok"), ("dns", "ok"), ("tcp", "failed")]);
    assert!(failure_hint(&response).contains("security group"), "{}", pretty(&response));
    // The kernel counted the dropped SYNs (other traffic can only add to the counter).
    if let (Some(before), Some(after)) = (overflows_before, listen_overflows()) {
        assert!(after > before, "the SYNs were not dropped by the full accept queue ({before} -> {after})");
    }
    drop(blackhole);
}

#[tokio::test]
async fn every_phase_ends_within_the_invocations_time_so_the_diagnosis_is_returned() {
    // A 2 s function timeout is shorter than the TCP phase's own 5 s deadline: the phase is cut
    // at the invocation's work deadline and the diagnosis still comes back, instead of Lambda
    // killing the function with nothing said.
    let blackhole = syn_dropping_port().await;
    let mut function = start(env("127.0.0.1", blackhole.port, "mysql")).await;
    let (response, _) = invoke_within(&mut function, json!({}), std::time::Duration::from_secs(2)).await;
    // `invoke_within` fails the test on a Lambda timeout: the answer came back in time.
    expect_failure(&response, "tcp", "tcp_timeout", 504);
    drop(blackhole);
}

#[tokio::test]
async fn a_port_that_accepts_but_never_speaks_stalls_the_handshake_on_both_engines() {
    let silent = SilentListener::start();
    for engine in ["postgres", "mysql"] {
        let mut function = start(env("localhost", silent.port, engine)).await;
        // A 3 s function timeout cuts the wait (the TLS phase's own limit is 5 s).
        let (response, _) = invoke_within(&mut function, json!({}), std::time::Duration::from_secs(3)).await;
        expect_failure(&response, "tls", "tcp_timeout", 504);
        expect_phases(&response, &[("assume_role", "skipped"), ("token", "ok"), ("dns", "ok"), ("tcp", "ok"), ("tls", "failed")]);
        let message = failure_message(&response);
        assert!(message.contains("TCP connection opened"), "{engine}: {message}");
        assert!(failure_hint(&response).contains("DB_PORT"), "{engine}: {}", pretty(&response));
        assert_eq!(response["diagnostics"]["connected_address"], format!("127.0.0.1:{}", silent.port), "{engine}");
    }
}

#[tokio::test]
async fn an_invalid_event_is_refused_by_field_and_nothing_is_tried() {
    let mut function = start(env("nonexistent.invalid", 5432, "postgres")).await;
    for (event, field) in [
        (json!({ "DB_PORT": "0" }), "DB_PORT"),
        (json!({ "dbPort": 5432 }), "event.dbPort"),
        (json!({ "DATABASE_ACCOUNT_IAM_ROLE": "not-an-arn" }), "DATABASE_ACCOUNT_IAM_ROLE"),
        (json!({ "AUTH_MODE": "secret" }), "DB_SECRET_ARN"),
        (json!(["DB_PORT"]), "event"),
        // An invoker cannot send a secret's password to a host of their choosing.
        (json!({ "AUTH_MODE": "secret", "DB_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf", "RDS_PROXY_APPLICATION_ENDPOINT": "attacker.example.com" }), "event.RDS_PROXY_APPLICATION_ENDPOINT"),
    ] {
        let (response, _) = invoke(&mut function, event.clone()).await;
        expect_failure(&response, "configuration", "input", 400);
        expect_phases(&response, &[("configuration", "failed")]);
        assert!(failure_message(&response).starts_with(&format!("{field}:")), "{event}: {}", pretty(&response));
    }
}

#[tokio::test]
async fn a_bad_ca_bundle_in_the_environment_is_reported_by_every_invocation_not_a_crash() {
    let mut env = env("localhost", refused_port(), "postgres");
    env.push(("DB_CA_BUNDLE".into(), "/nonexistent/ca.pem".into()));
    let mut function = start(env).await;
    for _ in 0..2 {
        let (response, _) = invoke(&mut function, json!({})).await;
        expect_failure(&response, "configuration", "input", 400);
        expect_phases(&response, &[("configuration", "failed")]);
        assert!(failure_message(&response).contains("DB_CA_BUNDLE"), "{}", pretty(&response));
        assert!(failure_hint(&response).contains("DB_CA_BUNDLE"), "{}", pretty(&response));
    }
}
