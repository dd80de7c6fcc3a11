//! The `dbcreds` binary's frame, without any service: `--help` on every subcommand, shell
//! completions, usage errors and their exit code, errors as JSON, and `dbcreds token`, whose
//! output must be byte for byte botocore's (`aws rds generate-db-auth-token`) for the same
//! credentials and time: botocore (from the test virtualenv, moto's dependency) is run with its
//! clock frozen and compared with the binary run with `--signing-time`.

mod cli_support;

use cli_support::run_offline;
use serde_json::Value;

const SUBCOMMANDS: [&str; 7] = ["doctor", "rotate", "reset-password", "token", "check", "provision", "completions"];

#[test]
fn every_subcommand_has_help_and_the_exit_codes_are_documented() {
    let top = run_offline(&["--help"], &[]);
    top.expect(0);
    for subcommand in SUBCOMMANDS {
        assert!(top.stdout.contains(subcommand), "--help lists {subcommand}:\n{}", top.stdout);
        let help = run_offline(&[subcommand, "--help"], &[]);
        help.expect(0);
        assert!(help.stdout.contains("Usage: dbcreds"), "{subcommand} --help:\n{}", help.stdout);
        assert!(help.stdout.lines().count() > 5, "{subcommand} --help says what it does:\n{}", help.stdout);
    }
    for code in ["0  done", "1  the operation failed", "2  bad arguments", "3  doctor found problems"] {
        assert!(top.stdout.contains(code), "exit code {code} documented:\n{}", top.stdout);
    }
}

#[test]
fn completions_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = run_offline(&["completions", shell], &[]);
        run.expect(0);
        for subcommand in SUBCOMMANDS {
            assert!(run.stdout.contains(subcommand), "{shell} completion knows {subcommand}");
        }
    }
    let bash = run_offline(&["completions", "bash"], &[]);
    assert!(bash.stdout.contains("--resume") && bash.stdout.contains("--dry-run"), "flags are completed too");
}

#[test]
fn usage_errors_exit_2_and_json_errors_are_json_on_stdout() {
    let run = run_offline(&["rotate"], &[]);
    run.expect(2);
    assert!(run.stderr.contains("<SECRET_ID>"), "{}", run.stderr);
    run_offline(&["no-such-command"], &[]).expect(2);
    run_offline(&["token", "--hostname", "db.example.com", "--port", "not-a-port", "--username", "app"], &[]).expect(2);

    // A bad value found by the library (not clap): still 2, named, and as JSON with --json.
    let env = [("AWS_ACCESS_KEY_ID", "akid"), ("AWS_SECRET_ACCESS_KEY", "skid"), ("AWS_REGION", "us-east-1")];
    let run = run_offline(&["--json", "token", "--hostname", "db.example.com:5432", "--port", "5432", "--username", "app"], &env);
    run.expect(2);
    let error: Value = run.json();
    assert_eq!(error["status"], "error");
    assert_eq!(error["exit_code"], 2);
    assert_eq!(error["error"]["class"], "input");
    assert!(error["error"]["message"].as_str().unwrap().contains("host:"), "{error}");
    assert!(run.stderr.is_empty(), "with --json nothing goes to stderr: {}", run.stderr);

    let run = run_offline(&["token", "--hostname", "db.example.com:5432", "--port", "5432", "--username", "app"], &env);
    run.expect(2);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.starts_with("dbcreds: error: ") && run.stderr.contains("what to do:"), "{}", run.stderr);
}

/// botocore's `generate_db_auth_token` with its clock frozen at `epoch`.
fn botocore_token(host: &str, port: u16, user: &str, region: &str, session_token: Option<&str>, epoch: u64) -> String {
    let python = dbcreds_testenv::paths::workspace_root().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/setup (botocore comes with moto)", python.display());
    let script = format!(
        "import datetime, botocore.session\nfrom unittest import mock\nt = datetime.datetime.fromtimestamp({epoch}, datetime.timezone.utc).replace(tzinfo=None)\n\
         with mock.patch('botocore.auth.get_current_datetime', return_value=t):\n    s = botocore.session.get_session()\n    s.set_credentials('akid', 'skid', {token})\n\
         \x20   print(s.create_client('rds', region_name='{region}').generate_db_auth_token('{host}', {port}, '{user}'), end='')\n",
        token = session_token.map(|t| format!("'{t}'")).unwrap_or_else(|| "None".into()),
    );
    let output = std::process::Command::new(python).arg("-c").arg(script).env("AWS_CONFIG_FILE", "/dev/null").env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null").output().expect("python runs");
    assert!(output.status.success(), "botocore failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn token_is_botocores_byte_for_byte_for_the_same_credentials_and_time() {
    let cases = [
        ("prod-instance.us-east-1.rds.amazonaws.com", 3306, "someusername", "us-east-1", None, 1_478_540_373),
        ("mydb.cluster-abc.eu-west-1.rds.amazonaws.com", 5432, "app_iam", "eu-west-1", Some("FwoGZXIvYXdzEXAMPLE"), 1_724_709_600),
        ("proxy.proxy-xyz.eu-central-1.rds.amazonaws.com", 443, "app", "eu-central-1", None, 1_700_000_000),
    ];
    for (host, port, user, region, session_token, epoch) in cases {
        let mut env = vec![("AWS_ACCESS_KEY_ID", "akid"), ("AWS_SECRET_ACCESS_KEY", "skid")];
        if let Some(token) = session_token {
            env.push(("AWS_SESSION_TOKEN", token));
        }
        let port_text = port.to_string();
        let epoch_text = epoch.to_string();
        let args = ["token", "--hostname", host, "--port", &port_text, "--username", user, "--region", region, "--signing-time", &epoch_text];
        let run = run_offline(&args, &env);
        run.expect(0);
        let expected = botocore_token(host, port, user, region, session_token, epoch);
        assert_eq!(run.stdout.trim_end(), expected, "{host}");
        assert!(run.stderr.is_empty(), "{}", run.stderr);

        // --json: the same token, and what it was signed for.
        let mut json_args = vec!["--json"];
        json_args.extend(args);
        let json = run_offline(&json_args, &env).json();
        assert_eq!(json["token"], expected.as_str());
        assert_eq!(json["region"], region);
        assert_eq!(json["expires_in_seconds"], 900);
        assert_eq!(json["exit_code"], 0);
    }
    // The published botocore vector, for good measure.
    let run = run_offline(
        &["token", "--hostname", "prod-instance.us-east-1.rds.amazonaws.com", "--port", "3306", "--username", "someusername", "--region", "us-east-1", "--signing-time", "1478540373"],
        &[("AWS_ACCESS_KEY_ID", "akid"), ("AWS_SECRET_ACCESS_KEY", "skid")],
    );
    assert!(run.stdout.trim_end().ends_with("X-Amz-Signature=d1138cdbc0ca63eec012ec0fc6c2267e03642168f5884a7795320d4c18374c61"), "{}", run.stdout);
}

#[test]
fn token_signs_for_now_with_the_environments_region() {
    let run = run_offline(
        &["token", "--hostname", "db.example.com", "--port", "5432", "--username", "app"],
        &[("AWS_ACCESS_KEY_ID", "akid"), ("AWS_SECRET_ACCESS_KEY", "skid"), ("AWS_REGION", "ap-south-1")],
    );
    run.expect(0);
    let token = run.stdout.trim_end();
    assert!(token.starts_with("db.example.com:5432/?Action=connect&DBUser=app&"), "{token}");
    assert!(token.contains("%2Fap-south-1%2Frds-db%2Faws4_request"), "{token}");
    assert!(token.contains("X-Amz-Expires=900"), "{token}");
}
