//! The resource's properties (the interface, names kept as the issue fixed them), read and
//! checked before anything is touched.
//!
//! ```yaml
//! MasterSecretArn: arn:...          # required
//! Engine: mysql                     # optional when the master secret says it
//! Host: db.example.com              # optional override
//! Port: "3306"                      # optional
//! DatabaseName: appdb               # required; created if missing, never dropped
//! NoEcho: "false"                   # optional: mask the resource's attributes
//! Users:
//!   - SecretArn: arn:...            # password users: the name and password come from the secret
//!     Privileges: readwrite         # readonly | readwrite | owner | [names]
//!     Authentication: password      # password (default) | iam
//!     RotationStrategy: single-user # single-user (default) | alternating-users
//!   - Username: app_iam             # iam users: no secret
//!     Authentication: iam
//!     Privileges: readonly
//! ```
//!
//! What needs the engine family (identifier limits, privilege names) is checked in
//! [`crate::target`] once the family is known, still before any change.

use dbcreds_core::{Engine, InputError};
use dbcreds_custom_resource::PropertyReader;
use serde_json::{Map, Value};

pub const MASTER_SECRET_ARN: &str = "MasterSecretArn";
pub const ENGINE: &str = "Engine";
pub const HOST: &str = "Host";
pub const PORT: &str = "Port";
pub const DATABASE_NAME: &str = "DatabaseName";
pub const USERS: &str = "Users";
pub const NO_ECHO: &str = "NoEcho";
pub const SECRET_ARN: &str = "SecretArn";
pub const USERNAME: &str = "Username";
pub const PRIVILEGES: &str = "Privileges";
pub const AUTHENTICATION: &str = "Authentication";
pub const ROTATION_STRATEGY: &str = "RotationStrategy";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    pub master_secret_arn: String,
    pub engine: Option<Engine>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database_name: String,
    pub users: Vec<UserSpec>,
    pub no_echo: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authentication {
    Password,
    Iam,
}

impl Authentication {
    pub fn as_str(self) -> &'static str {
        match self {
            Authentication::Password => "password",
            Authentication::Iam => "iam",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationStrategy {
    SingleUser,
    /// The rotator keeps `<user>` and `<user>_clone` with the master secret, so the provisioner
    /// writes `masterarn` into the user's secret.
    AlternatingUsers,
}

/// Who the user is: a secret that names it, or (IAM) a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSource {
    Secret(String),
    Iam(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// Position in `Users`, for error messages and `Data`.
    pub index: usize,
    pub source: UserSource,
    /// `Ok(preset)` or `Err(list)`, as `dbcreds_db::PrivilegeSpec::parse` takes it.
    pub privileges: Result<String, Vec<String>>,
    pub strategy: RotationStrategy,
}

impl UserSpec {
    pub fn authentication(&self) -> Authentication {
        match self.source {
            UserSource::Secret(_) => Authentication::Password,
            UserSource::Iam(_) => Authentication::Iam,
        }
    }

    /// `Users[1].`, the prefix of this entry's property names.
    pub fn path(&self) -> String {
        format!("{USERS}[{}].", self.index)
    }
}

impl ResourceSpec {
    /// Reads and checks the properties. The first problem is returned, naming the property.
    pub fn parse(properties: &Map<String, Value>) -> Result<Self, InputError> {
        let mut reader = PropertyReader::new(properties);
        reader.allow_service_keys();
        let master_secret_arn = reader.required_string(MASTER_SECRET_ARN, "set it to the master user's secret, e.g. !GetAtt Database.MasterUserSecret.SecretArn")?;
        let engine = match reader.optional_string(ENGINE)? {
            Some(text) => Some(Engine::parse(ENGINE, &text)?),
            None => None,
        };
        let host = reader.optional_string(HOST)?;
        if let Some(host) = &host {
            dbcreds_core::validate_host(HOST, host)?;
        }
        let port = reader.optional_port(PORT)?;
        let database_name = reader.required_string(DATABASE_NAME, "name the application's database (it is created if missing and never dropped)")?;
        let no_echo = reader.optional_bool(NO_ECHO)?.unwrap_or(false);
        let mut index = 0;
        let users = reader.list_of_objects(USERS, |user| {
            let parsed = parse_user(user, index);
            index += 1;
            parsed
        })?;
        reader.finish()?;
        check_duplicates(&users)?;
        Ok(Self { master_secret_arn, engine, host, port, database_name, users, no_echo })
    }
}

fn parse_user(user: &mut PropertyReader<'_>, index: usize) -> Result<UserSpec, InputError> {
    let authentication = match user.optional_choice(AUTHENTICATION, &["password", "iam"])? {
        Some("iam") => Authentication::Iam,
        _ => Authentication::Password,
    };
    let secret_arn = user.optional_string(SECRET_ARN)?;
    let username = user.optional_string(USERNAME)?;
    let strategy_text = user.optional_choice(ROTATION_STRATEGY, &["single-user", "alternating-users"])?;
    let privileges = user
        .string_or_list(PRIVILEGES)?
        .ok_or_else(|| InputError::missing(user.path(PRIVILEGES), "use readonly, readwrite, owner, or a list of privilege names"))?;
    let source = match authentication {
        Authentication::Password => {
            if username.is_some() {
                return Err(InputError::invalid(
                    user.path(USERNAME),
                    "is only for Authentication: iam",
                    "a password user's name is the username in its secret; remove Username (or set Authentication: iam)",
                ));
            }
            UserSource::Secret(secret_arn.ok_or_else(|| InputError::missing(user.path(SECRET_ARN), "name the user's secret, which holds at least username and password (or set Authentication: iam and Username)"))?)
        }
        Authentication::Iam => {
            if secret_arn.is_some() {
                return Err(InputError::invalid(user.path(SECRET_ARN), "is not used by an IAM user", "remove SecretArn; an IAM user logs in with a token, not a password"));
            }
            if strategy_text.is_some() {
                return Err(InputError::invalid(user.path(ROTATION_STRATEGY), "does not apply to an IAM user", "remove RotationStrategy; IAM users have no password to rotate"));
            }
            UserSource::Iam(username.ok_or_else(|| InputError::missing(user.path(USERNAME), "name the IAM-authenticated database user"))?)
        }
    };
    let strategy = match strategy_text {
        Some("alternating-users") => RotationStrategy::AlternatingUsers,
        _ => RotationStrategy::SingleUser,
    };
    Ok(UserSpec { index, source, privileges, strategy })
}

fn check_duplicates(users: &[UserSpec]) -> Result<(), InputError> {
    for (i, user) in users.iter().enumerate() {
        if let Some(earlier) = users[..i].iter().find(|other| other.source == user.source) {
            let key = match user.source {
                UserSource::Secret(_) => SECRET_ARN,
                UserSource::Iam(_) => USERNAME,
            };
            return Err(InputError::invalid(
                format!("{}{key}", user.path()),
                format!("repeats Users[{}]", earlier.index),
                "list each user once",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<ResourceSpec, InputError> {
        ResourceSpec::parse(value.as_object().unwrap())
    }

    fn example() -> Value {
        json!({
            "ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:provisioner",
            "ServiceTimeout": "600",
            "MasterSecretArn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-1-AbCdEf",
            "Engine": "mysql",
            "Host": "db.example.com",
            "Port": "3306",
            "DatabaseName": "appdb",
            "Users": [
                {"SecretArn": "arn:a", "Privileges": "readwrite", "Authentication": "password", "RotationStrategy": "single-user"},
                {"SecretArn": "arn:b", "Privileges": "readonly"},
                {"Username": "app_iam", "Authentication": "iam", "Privileges": "readonly"},
                {"SecretArn": "arn:c", "Privileges": ["SELECT", "INSERT"], "RotationStrategy": "alternating-users"}
            ]
        })
    }

    #[test]
    fn the_issue_example_parses_with_string_typed_scalars() {
        let spec = parse(example()).unwrap();
        assert_eq!(spec.engine, Some(Engine::MySql));
        assert_eq!(spec.port, Some(3306));
        assert_eq!(spec.host.as_deref(), Some("db.example.com"));
        assert_eq!(spec.users.len(), 4);
        assert_eq!(spec.users[0].source, UserSource::Secret("arn:a".into()));
        assert_eq!(spec.users[2].source, UserSource::Iam("app_iam".into()));
        assert_eq!(spec.users[2].authentication(), Authentication::Iam);
        assert_eq!(spec.users[3].privileges, Err(vec!["SELECT".to_string(), "INSERT".to_string()]));
        assert_eq!(spec.users[3].strategy, RotationStrategy::AlternatingUsers);
        assert!(!spec.no_echo);
    }

    #[test]
    fn numbers_and_booleans_may_also_be_json_values() {
        let mut props = example();
        props["Port"] = json!(3307);
        props["NoEcho"] = json!(true);
        let spec = parse(props).unwrap();
        assert_eq!(spec.port, Some(3307));
        assert!(spec.no_echo);
        let mut props = example();
        props["NoEcho"] = json!("true");
        assert!(parse(props).unwrap().no_echo);
    }

    #[test]
    fn every_bad_property_is_named() {
        type Case = (fn(&mut Value), &'static str);
        let cases: Vec<Case> = vec![
            (|p| drop(p.as_object_mut().unwrap().remove("MasterSecretArn")), "MasterSecretArn"),
            (|p| drop(p.as_object_mut().unwrap().remove("DatabaseName")), "DatabaseName"),
            (|p| p["Engine"] = json!("oracle"), "Engine"),
            (|p| p["Port"] = json!("33o6"), "Port"),
            (|p| p["Port"] = json!("0"), "Port"),
            (|p| p["Host"] = json!("https://db.example.com"), "Host"),
            (|p| p["NoEcho"] = json!("perhaps"), "NoEcho"),
            (|p| p["Users"] = json!("DBUserA"), "Users"),
            (|p| p["DatabseName"] = json!("typo"), "DatabseName"),
            (|p| p["Users"][0]["Privilege"] = json!("readonly"), "Users[0].Privilege"),
            (|p| drop(p["Users"][1].as_object_mut().unwrap().remove("Privileges")), "Users[1].Privileges"),
            (|p| p["Users"][1]["Privileges"] = json!({"SELECT": true}), "Users[1].Privileges"),
            (|p| p["Users"][1]["Authentication"] = json!("kerberos"), "Users[1].Authentication"),
            (|p| p["Users"][1]["RotationStrategy"] = json!("weekly"), "Users[1].RotationStrategy"),
            (|p| drop(p["Users"][1].as_object_mut().unwrap().remove("SecretArn")), "Users[1].SecretArn"),
            (|p| p["Users"][1]["Username"] = json!("x"), "Users[1].Username"),
            (|p| drop(p["Users"][2].as_object_mut().unwrap().remove("Username")), "Users[2].Username"),
            (|p| p["Users"][2]["SecretArn"] = json!("arn:x"), "Users[2].SecretArn"),
            (|p| p["Users"][2]["RotationStrategy"] = json!("single-user"), "Users[2].RotationStrategy"),
            (|p| p["Users"][1]["SecretArn"] = json!("arn:a"), "Users[1].SecretArn"),
            (|p| p["Users"][3]["Privileges"] = json!(["SELECT", 5]), "Users[3].Privileges[1]"),
        ];
        for (mutate, field) in cases {
            let mut props = example();
            mutate(&mut props);
            let err = parse(props).expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(!err.fix.is_empty());
        }
    }

    #[test]
    fn an_empty_user_list_is_allowed() {
        let mut props = example();
        props.as_object_mut().unwrap().remove("Users");
        assert!(parse(props).unwrap().users.is_empty());
    }
}
