//! What to test, from the environment with an invocation event's overrides on top.
//!
//! The environment names of AWS's cross-account sample are kept (`DATABASE_ACCOUNT_IAM_ROLE`,
//! `RDS_PROXY_APPLICATION_ENDPOINT`, `DB_USERNAME`, `DBNAME`), so a function deployed from the
//! sample's template keeps working. The event overrides a field by using *the same name*: one
//! vocabulary to document and to remember. `""` or `null` in the event clears the environment's
//! value. Every value is validated, from either source, with an error that names the field; an
//! event field that is not one of these names is refused (a typo must not silently test the
//! environment's configuration instead of the one the operator meant).

use dbcreds_core::sanitize::for_log;
use dbcreds_core::{Engine, EngineFamily, InputError};
use serde_json::Value;
use std::collections::BTreeMap;

pub const ROLE_ARN: &str = "DATABASE_ACCOUNT_IAM_ROLE";
pub const HOST: &str = "RDS_PROXY_APPLICATION_ENDPOINT";
pub const USERNAME: &str = "DB_USERNAME";
pub const DBNAME: &str = "DBNAME";
pub const PORT: &str = "DB_PORT";
pub const ENGINE: &str = "DB_ENGINE";
pub const AUTH_MODE: &str = "AUTH_MODE";
pub const SECRET_ARN: &str = "DB_SECRET_ARN";
pub const CA_BUNDLE: &str = "DB_CA_BUNDLE";
pub const EXTERNAL_ID: &str = "EXTERNAL_ID";
pub const ROLE_SESSION_NAME: &str = "ROLE_SESSION_NAME";
pub const TEST_QUERY: &str = "TEST_QUERY";

/// Every configuration name, which is also every field an event may carry.
pub const FIELDS: [&str; 12] = [
    ROLE_ARN, HOST, USERNAME, DBNAME, PORT, ENGINE, AUTH_MODE, SECRET_ARN, CA_BUNDLE, EXTERNAL_ID, ROLE_SESSION_NAME, TEST_QUERY,
];

pub const DEFAULT_ROLE_SESSION_NAME: &str = "dbcreds-connection-test";

/// The AWS sample is Aurora PostgreSQL behind RDS Proxy, so IAM mode defaults to PostgreSQL.
pub const DEFAULT_IAM_ENGINE: EngineFamily = EngineFamily::Postgres;

const MAX_QUERY_CHARS: usize = 4096;
const MAX_NAME_CHARS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Assume a role (optional), generate an RDS IAM token, log in with it.
    Iam,
    /// Read a Secrets Manager secret, log in with its username and password.
    Secret,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Iam => "iam",
            AuthMode::Secret => "secret",
        }
    }
}

/// The role to assume before generating the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleToAssume {
    pub arn: String,
    /// Not a secret in AWS's model, but the response only says whether one was sent.
    pub external_id: Option<String>,
    pub session_name: String,
}

/// A validated configuration. In secret mode the secret fills what is not set here; what is set
/// here wins (host, port, database), so the secret's credentials can be tried through a proxy
/// endpoint other than the host the secret names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: AuthMode,
    /// `DB_ENGINE`. IAM mode: defaults to PostgreSQL. Secret mode: the secret's engine, which
    /// this must agree with when both are given.
    pub engine: Option<EngineFamily>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub database: Option<String>,
    /// Secret mode: the secret's ARN or name.
    pub secret_id: Option<String>,
    /// IAM mode: assume this role first, else use the function's own credentials.
    pub role: Option<RoleToAssume>,
    /// Run after the identity query; `None`: the identity query alone.
    pub test_query: Option<String>,
    /// `DB_CA_BUNDLE` as finally configured, and whether the event changed it (then the
    /// invocation builds its own trust store instead of using the cold start's).
    pub ca_bundle: Option<String>,
    pub ca_bundle_from_event: bool,
}

impl Config {
    /// Reads every field from `env`, applies the event's overrides, and validates the result.
    pub fn load(env: impl Fn(&str) -> Option<String>, event: &Value) -> Result<Self, InputError> {
        let overrides = parse_event(event)?;
        let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
        for field in FIELDS {
            if let Some(value) = env(field) {
                values.insert(field, value);
            }
        }
        // The environment's endpoint, normalised as the configuration will hold it.
        let env_host = values.get(HOST).map(|v| v.trim()).filter(|v| !v.is_empty()).and_then(|v| validate_host(HOST, v).ok());
        let ca_bundle_before = values.get(CA_BUNDLE).cloned().filter(|v| !v.trim().is_empty());
        for (field, value) in overrides {
            match value {
                Some(value) => values.insert(field, value),
                None => values.remove(field),
            };
        }
        let mut config = Self::from_values(&values)?;
        config.ca_bundle_from_event = config.ca_bundle != ca_bundle_before;
        // In secret mode the password goes to the host being tested. The function's deployer
        // chooses that host (the secret's, or the environment's endpoint); an invoker must not be
        // able to send a secret they cannot read to a host of their choosing, where a valid
        // public certificate for their own name would pass verification.
        if config.mode == AuthMode::Secret && config.host.is_some() && config.host != env_host {
            return Err(InputError::invalid(
                format!("event.{HOST}"),
                "cannot change the host in secret mode: it would send the secret's password to a host neither the secret nor the function's configuration names",
                format!("set {HOST} in the function's environment, or test the host with AUTH_MODE=iam"),
            ));
        }
        Ok(config)
    }

    fn from_values(values: &BTreeMap<&'static str, String>) -> Result<Self, InputError> {
        // Empty means unset, in the environment as in the event.
        let get = |field: &str| values.get(field).map(|v| v.trim()).filter(|v| !v.is_empty());

        let secret_id = get(SECRET_ARN).map(|v| validate_secret_id(SECRET_ARN, v)).transpose()?;
        let mode = match get(AUTH_MODE) {
            Some(value) => parse_auth_mode(AUTH_MODE, value)?,
            None if secret_id.is_some() => AuthMode::Secret,
            None => AuthMode::Iam,
        };
        let engine = get(ENGINE).map(|v| Engine::parse(ENGINE, v).map(Engine::family)).transpose()?;
        let host = get(HOST).map(|v| validate_host(HOST, v)).transpose()?;
        let port = get(PORT).map(|v| dbcreds_core::env::parse_port(PORT, v)).transpose()?;
        let username = get(USERNAME).map(|v| validate_name(USERNAME, v, "user name")).transpose()?;
        let database = get(DBNAME).map(|v| validate_name(DBNAME, v, "database name")).transpose()?;
        let test_query = get(TEST_QUERY).map(|v| validate_query(TEST_QUERY, v)).transpose()?;
        let ca_bundle = get(CA_BUNDLE).map(|v| validate_path(CA_BUNDLE, v)).transpose()?;
        let external_id = get(EXTERNAL_ID).map(|v| validate_external_id(EXTERNAL_ID, v)).transpose()?;
        let session_name = get(ROLE_SESSION_NAME).map(|v| validate_session_name(ROLE_SESSION_NAME, v)).transpose()?;
        let role_arn = get(ROLE_ARN).map(|v| validate_role_arn(ROLE_ARN, v)).transpose()?;

        let role = match mode {
            AuthMode::Iam => role_arn.map(|arn| RoleToAssume {
                arn,
                external_id,
                session_name: session_name.unwrap_or_else(|| DEFAULT_ROLE_SESSION_NAME.to_owned()),
            }),
            AuthMode::Secret => None,
        };
        match mode {
            AuthMode::Iam => {
                if host.is_none() {
                    return Err(InputError::missing(HOST, "set the database or RDS Proxy endpoint's host name (IAM mode)"));
                }
                match &username {
                    None => return Err(InputError::missing(USERNAME, "set the IAM-enabled database user to log in as (IAM mode)")),
                    // The token carries the name in its query: refused here, naming the field,
                    // rather than when the token is signed.
                    Some(name) => dbcreds_aws::iam_token::validate_username(USERNAME, name)?,
                }
            }
            AuthMode::Secret => {
                if secret_id.is_none() {
                    return Err(InputError::missing(SECRET_ARN, "set the ARN of the secret whose credentials to test (AUTH_MODE=secret)"));
                }
            }
        }
        Ok(Self {
            mode,
            engine: match mode {
                AuthMode::Iam => Some(engine.unwrap_or(DEFAULT_IAM_ENGINE)),
                AuthMode::Secret => engine,
            },
            host,
            port,
            username,
            database,
            secret_id: if mode == AuthMode::Secret { secret_id } else { None },
            role,
            test_query,
            ca_bundle,
            ca_bundle_from_event: false,
        })
    }
}

/// The event's overrides: `None` clears a field. Anything but an object (or null) is refused.
fn parse_event(event: &Value) -> Result<Vec<(&'static str, Option<String>)>, InputError> {
    let map = match event {
        Value::Null => return Ok(Vec::new()),
        Value::Object(map) => map,
        other => {
            return Err(InputError::invalid(
                "event",
                format!("is {}, not a JSON object", dbcreds_core::tls_policy::json_type(other)),
                format!("send {{}} to use the function's environment, or an object with any of {}", FIELDS.join(", ")),
            ));
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let Some(field) = FIELDS.iter().copied().find(|f| f == key) else {
            return Err(InputError::invalid(
                format!("event.{}", dbcreds_core::sanitize::field(key)),
                "is not a known field",
                format!("use only {} (the environment variables' names)", FIELDS.join(", ")),
            ));
        };
        let value = match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) if field == PORT => Some(n.to_string()),
            other => {
                let expected = if field == PORT { "a number or a string" } else { "a string" };
                return Err(InputError::invalid(
                    format!("event.{field}"),
                    format!("must be {expected}, found {}", dbcreds_core::tls_policy::json_type(other)),
                    format!("send {expected}, or \"\" to clear the environment's value"),
                ));
            }
        };
        out.push((field, value));
    }
    Ok(out)
}

fn no_control_chars(field: &str, value: &str) -> Result<(), InputError> {
    if value.chars().any(char::is_control) {
        return Err(InputError::invalid(field, "contains a control character", "remove it"));
    }
    Ok(())
}

fn parse_auth_mode(field: &str, value: &str) -> Result<AuthMode, InputError> {
    match value.to_ascii_lowercase().as_str() {
        "iam" => Ok(AuthMode::Iam),
        "secret" => Ok(AuthMode::Secret),
        _ => Err(InputError::invalid(field, format!("unknown mode {}", for_log(value)), "use iam or secret")),
    }
}

/// A host name or an IP address literal (`dbcreds_core::validate_host`), an IPv6 literal kept
/// without its brackets.
fn validate_host(field: &str, value: &str) -> Result<String, InputError> {
    dbcreds_core::validate_host(field, value)?;
    Ok(dbcreds_core::host::unbracketed(value).to_owned())
}

/// Login and database names are sent to the server as protocol fields, never spliced into SQL
/// here, so any printable name the server accepts is allowed; only control characters and
/// absurd lengths are refused.
fn validate_name(field: &str, value: &str, noun: &str) -> Result<String, InputError> {
    no_control_chars(field, value)?;
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(InputError::invalid(field, format!("the {noun} is longer than {MAX_NAME_CHARS} characters"), format!("use the {noun} as the server knows it")));
    }
    Ok(value.to_owned())
}

fn validate_query(field: &str, value: &str) -> Result<String, InputError> {
    if value.contains('\0') {
        return Err(InputError::invalid(field, "contains a NUL byte", "remove it"));
    }
    if value.chars().count() > MAX_QUERY_CHARS {
        return Err(InputError::invalid(field, format!("is longer than {MAX_QUERY_CHARS} characters"), "use a short read-only query such as SELECT 1"));
    }
    Ok(value.to_owned())
}

fn validate_path(field: &str, value: &str) -> Result<String, InputError> {
    no_control_chars(field, value)?;
    Ok(value.to_owned())
}

fn validate_secret_id(field: &str, value: &str) -> Result<String, InputError> {
    no_control_chars(field, value)?;
    if value.len() > 2048 || value.chars().any(char::is_whitespace) {
        return Err(InputError::invalid(field, format!("{} is not a secret ARN or name", for_log(value)), "use the secret's ARN (arn:aws:secretsmanager:...)"));
    }
    Ok(value.to_owned())
}

/// The role ARN, external id and session name follow STS's rules, checked by the STS adapter's
/// own validators so the two can never disagree.
fn validate_role_arn(field: &str, value: &str) -> Result<String, InputError> {
    dbcreds_aws::sts::validate_role_arn(field, value).map(|()| value.to_owned())
}

fn validate_external_id(field: &str, value: &str) -> Result<String, InputError> {
    dbcreds_aws::sts::validate_external_id(field, value).map(|()| value.to_owned())
}

fn validate_session_name(field: &str, value: &str) -> Result<String, InputError> {
    dbcreds_aws::sts::validate_session_name(field, value).map(|()| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    const SAMPLE: &[(&str, &str)] = &[
        (ROLE_ARN, "arn:aws:iam::111122223333:role/db-connect"),
        (HOST, "app.endpoint.proxy-abc.eu-west-1.rds.amazonaws.com"),
        (USERNAME, "app_iam"),
        (DBNAME, "appdb"),
    ];

    #[test]
    fn the_aws_samples_environment_is_iam_mode_on_postgres() {
        let config = Config::load(env(SAMPLE), &json!({})).unwrap();
        assert_eq!(config.mode, AuthMode::Iam);
        assert_eq!(config.engine, Some(EngineFamily::Postgres));
        assert_eq!(config.port, None);
        let role = config.role.unwrap();
        assert_eq!(role.arn, "arn:aws:iam::111122223333:role/db-connect");
        assert_eq!(role.session_name, DEFAULT_ROLE_SESSION_NAME);
        assert_eq!(role.external_id, None);
        assert!(!config.ca_bundle_from_event);
    }

    #[test]
    fn event_fields_override_and_clear_the_environment() {
        let event = json!({ PORT: 6432, HOST: "other.example.com", ROLE_ARN: "", ENGINE: "mysql" });
        let config = Config::load(env(SAMPLE), &event).unwrap();
        assert_eq!(config.port, Some(6432));
        assert_eq!(config.host.as_deref(), Some("other.example.com"));
        assert_eq!(config.role, None, "an empty string clears the environment's role");
        assert_eq!(config.engine, Some(EngineFamily::MySql));
        let config = Config::load(env(SAMPLE), &json!({ ROLE_ARN: null, PORT: "3307" })).unwrap();
        assert_eq!(config.role, None);
        assert_eq!(config.port, Some(3307));
    }

    #[test]
    fn a_secret_arn_selects_secret_mode_unless_told_otherwise() {
        let with_secret = [(SECRET_ARN, "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf")];
        let config = Config::load(env(&with_secret), &Value::Null).unwrap();
        assert_eq!(config.mode, AuthMode::Secret);
        assert_eq!(config.engine, None, "secret mode takes the engine from the secret");
        let mut both = SAMPLE.to_vec();
        both.extend(with_secret);
        let config = Config::load(env(&both), &json!({ AUTH_MODE: "IAM" })).unwrap();
        assert_eq!(config.mode, AuthMode::Iam);
        assert_eq!(config.secret_id, None);
        let config = Config::load(env(&both), &json!({})).unwrap();
        assert_eq!(config.role, None, "secret mode never assumes the role");
    }

    #[test]
    fn unknown_event_fields_are_refused_by_name() {
        let err = Config::load(env(SAMPLE), &json!({ "key1": "value1" })).unwrap_err();
        assert_eq!(err.field, "event.key1");
        assert!(err.fix.contains(HOST), "{err}");
        // camelCase is not an alias: one vocabulary.
        assert_eq!(Config::load(env(SAMPLE), &json!({ "dbPort": 5432 })).unwrap_err().field, "event.dbPort");
        assert_eq!(Config::load(env(SAMPLE), &json!([1])).unwrap_err().field, "event");
        assert_eq!(Config::load(env(SAMPLE), &json!({ HOST: 5 })).unwrap_err().field, format!("event.{HOST}"));
        assert_eq!(Config::load(env(SAMPLE), &json!({ PORT: true })).unwrap_err().field, format!("event.{PORT}"));
    }

    #[test]
    fn every_field_is_validated_from_either_source() {
        let cases: &[(&str, &str)] = &[
            (PORT, "0"),
            (PORT, "5432x"),
            (ENGINE, "oracle"),
            (AUTH_MODE, "password"),
            (HOST, "https://db.example.com"),
            (HOST, "db.example.com:5432"),
            (HOST, "db example.com"),
            (HOST, "db..example.com"),
            (ROLE_ARN, "db-connect"),
            (ROLE_ARN, "arn:aws:iam::1111:role/x"),
            (ROLE_ARN, "arn:aws:iam::111122223333:user/x"),
            (EXTERNAL_ID, "x"),
            (EXTERNAL_ID, "has space"),
            (ROLE_SESSION_NAME, "bad name!"),
            (USERNAME, "a\nb"),
            // IAM mode (SAMPLE's): the name must fit in the token's query.
            (USERNAME, "app'; DROP USER root; --"),
            (USERNAME, "\u{430}pp"),
            (TEST_QUERY, "SELECT 1\0"),
            (SECRET_ARN, "arn with space"),
        ];
        for (field, value) in cases {
            let from_event = Config::load(env(SAMPLE), &json!({ *field: value })).unwrap_err();
            assert_eq!(from_event.field, *field, "event {field}={value:?}: {from_event}");
            let mut pairs = SAMPLE.to_vec();
            pairs.push((field, value));
            let from_env = Config::load(env(&pairs), &json!({})).unwrap_err();
            assert_eq!(from_env.field, *field, "env {field}={value:?}: {from_env}");
        }
    }

    #[test]
    fn required_fields_depend_on_the_mode() {
        assert_eq!(Config::load(env(&[(USERNAME, "u")]), &json!({})).unwrap_err().field, HOST);
        assert_eq!(Config::load(env(&[(HOST, "h")]), &json!({})).unwrap_err().field, USERNAME);
        assert_eq!(Config::load(env(SAMPLE), &json!({ AUTH_MODE: "secret" })).unwrap_err().field, SECRET_ARN);
    }

    #[test]
    fn ip_literals_and_trailing_dots_are_hosts() {
        for host in ["127.0.0.1", "::1", "[::1]", "db.example.com."] {
            assert!(Config::load(env(SAMPLE), &json!({ HOST: host })).is_ok(), "{host}");
        }
        let config = Config::load(env(SAMPLE), &json!({ HOST: "[::1]" })).unwrap();
        assert_eq!(config.host.as_deref(), Some("::1"));
    }

    #[test]
    fn the_external_id_is_never_echoed() {
        let err = Config::load(env(SAMPLE), &json!({ EXTERNAL_ID: "sekrit external id" })).unwrap_err();
        assert!(!err.to_string().contains("sekrit"), "{err}");
    }

    #[test]
    fn an_event_cannot_send_a_secrets_password_to_a_host_of_its_choosing() {
        let secret = [(SECRET_ARN, "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf")];
        let err = Config::load(env(&secret), &json!({ HOST: "attacker.example.com" })).unwrap_err();
        assert_eq!(err.field, format!("event.{HOST}"));
        let mut iam_env = SAMPLE.to_vec();
        iam_env.extend(secret);
        iam_env.push((AUTH_MODE, "iam"));
        // Switching to secret mode does not open the door either...
        let err = Config::load(env(&iam_env), &json!({ AUTH_MODE: "secret", HOST: "attacker.example.com" })).unwrap_err();
        assert_eq!(err.field, format!("event.{HOST}"));
        // ...but the deployer's endpoint stays usable, the port may change, and IAM mode (a
        // token is signed for the host it is sent to) may test any host.
        let mut configured = secret.to_vec();
        configured.push((HOST, "proxy.example.com"));
        assert_eq!(Config::load(env(&configured), &json!({ HOST: "proxy.example.com", PORT: 6432 })).unwrap().host.as_deref(), Some("proxy.example.com"));
        assert_eq!(Config::load(env(&iam_env), &json!({ AUTH_MODE: "secret" })).unwrap().host.as_deref(), Some(SAMPLE[1].1));
        assert!(Config::load(env(SAMPLE), &json!({ HOST: "other.example.com" })).is_ok());
    }

    #[test]
    fn an_event_ca_bundle_is_noticed() {
        let mut pairs = SAMPLE.to_vec();
        pairs.push((CA_BUNDLE, "/opt/rds.pem"));
        assert!(!Config::load(env(&pairs), &json!({})).unwrap().ca_bundle_from_event);
        assert!(!Config::load(env(&pairs), &json!({ CA_BUNDLE: "/opt/rds.pem" })).unwrap().ca_bundle_from_event);
        let config = Config::load(env(&pairs), &json!({ CA_BUNDLE: "/tmp/other.pem" })).unwrap();
        assert!(config.ca_bundle_from_event);
        assert_eq!(config.ca_bundle.as_deref(), Some("/tmp/other.pem"));
        assert!(Config::load(env(&pairs), &json!({ CA_BUNDLE: "" })).unwrap().ca_bundle_from_event);
    }

    #[test]
    fn every_sample_event_is_a_valid_configuration_on_its_own() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/connection-test");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // environment-only.json relies on the environment; the others carry everything.
            let base: &[(&str, &str)] = if name == "environment-only.json" { SAMPLE } else { &[] };
            let config = Config::load(env(base), &event).unwrap_or_else(|err| panic!("{name}: {err}"));
            let expected_mode = if name.starts_with("secret") { AuthMode::Secret } else { AuthMode::Iam };
            assert_eq!(config.mode, expected_mode, "{name}");
            if name.contains("mysql") {
                assert!(config.engine.is_none_or(|e| e == EngineFamily::MySql), "{name}");
            }
            seen.push(name);
        }
        seen.sort();
        assert_eq!(seen, ["environment-only.json", "iam-mysql.json", "iam-postgres.json", "secret-mysql.json", "secret-postgres.json"]);
    }
}
