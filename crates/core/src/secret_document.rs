//! The secret document: AWS's documented JSON for RDS credentials.
//!
//! ```json
//! {"engine": "mysql", "host": "db.example.com", "port": 3306, "username": "app",
//!  "password": "...", "dbname": "appdb", "masterarn": "arn:...", "ssl": true,
//!  "dbInstanceIdentifier": "...", "dbClusterIdentifier": "...", "proxy": false}
//! ```
//!
//! Two promises shape this type:
//! - **Round trip.** Keys we don't know, and the way known keys were written (`"port": "5432"`
//!   stays a string), survive a rotation untouched, in their original order. So the document is
//!   kept as the parsed JSON object, and the typed accessors read from it.
//! - **The password is only ever a [`SecretString`].** It is moved out of the parsed JSON into a
//!   zeroising type at parse time and written back only when the document is serialised.
//!
//! Parsing checks the type of every known key that is present; whether a key is *required* is up
//! to the caller (a rotation needs `host`, an RDS-managed master secret has only username and
//! password), so required keys are checked by the accessors, which name the missing key.

use crate::engine::{ACCEPTED_ENGINES, Engine, EngineFamily};
use crate::error::InputError;
use crate::sensitive::SecretString;
use crate::tls_policy::{TlsPolicy, json_type};
use serde_json::{Map, Value};
use std::fmt;

pub const ENGINE: &str = "engine";
pub const HOST: &str = "host";
pub const PORT: &str = "port";
pub const USERNAME: &str = "username";
pub const PASSWORD: &str = "password";
pub const DBNAME: &str = "dbname";
pub const MASTERARN: &str = "masterarn";
pub const SSL: &str = "ssl";
pub const DB_INSTANCE_IDENTIFIER: &str = "dbInstanceIdentifier";
pub const DB_CLUSTER_IDENTIFIER: &str = "dbClusterIdentifier";
pub const PROXY: &str = "proxy";

/// The largest secret Secrets Manager stores is 64 KiB; anything bigger is not a secret value.
pub const MAX_DOCUMENT_BYTES: usize = 65_536;

#[derive(Clone)]
pub struct SecretDocument {
    /// Every key in its original order. The `password` entry, when present, holds `null`: its
    /// value lives in `password`, so the plaintext is never in a non-zeroising `String`.
    fields: Map<String, Value>,
    password: Option<SecretString>,
}

impl SecretDocument {
    /// Parses a secret string. The input is consumed so its bytes can be zeroised.
    pub fn parse(text: SecretString) -> Result<Self, InputError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(InputError::invalid("secret", format!("is {} bytes, over the 64 KiB Secrets Manager limit", text.len()), "store a JSON object of RDS connection fields"));
        }
        let value: Value = serde_json::from_str(text.expose()).map_err(|err| {
            // serde_json's message carries a line/column and a category, never the input itself.
            InputError::invalid("secret", format!("is not valid JSON ({})", err.classify_str()), "store a JSON object such as {\"engine\":\"mysql\",\"host\":...,\"username\":...,\"password\":...}")
        })?;
        let Value::Object(fields) = value else {
            return Err(InputError::invalid("secret", format!("is {}, not a JSON object", json_type(&value)), "store a JSON object of RDS connection fields"));
        };
        Self::from_map(fields)
    }

    /// Builds a document from an already parsed object (for example the provisioner's own).
    pub fn from_map(mut fields: Map<String, Value>) -> Result<Self, InputError> {
        let password = match fields.get_mut(PASSWORD) {
            None => None,
            Some(Value::String(s)) => Some(SecretString::new(std::mem::take(s))),
            Some(other) => {
                let found = json_type(other);
                *other = Value::Null;
                return Err(InputError::invalid(PASSWORD, format!("must be a string, found {found}"), "store the password as a JSON string"));
            }
        };
        if password.is_some() {
            fields.insert(PASSWORD.into(), Value::Null);
        }
        let document = Self { fields, password };
        document.check_types()?;
        Ok(document)
    }

    /// A new document with just a user name and password, to be completed by setters.
    pub fn new(username: &str, password: SecretString) -> Self {
        let mut fields = Map::new();
        fields.insert(USERNAME.into(), Value::String(username.into()));
        fields.insert(PASSWORD.into(), Value::Null);
        Self { fields, password: Some(password) }
    }

    fn check_types(&self) -> Result<(), InputError> {
        for key in [HOST, USERNAME, DBNAME, MASTERARN, DB_INSTANCE_IDENTIFIER, DB_CLUSTER_IDENTIFIER] {
            self.optional_str(key)?;
        }
        if let Some(engine) = self.optional_str(ENGINE)? {
            Engine::parse(ENGINE, engine)?;
        }
        self.port_opt()?;
        self.tls_policy()?;
        match self.fields.get(PROXY) {
            None | Some(Value::Null | Value::Bool(_) | Value::String(_)) => {}
            Some(other) => return Err(InputError::invalid(PROXY, format!("must be a boolean or a string, found {}", json_type(other)), "use true or false")),
        }
        for key in [HOST, USERNAME] {
            if let Some("") = self.optional_str(key)? {
                return Err(InputError::invalid(key, "is empty", format!("set the {key}")));
            }
        }
        Ok(())
    }

    /// A string field that may be absent; present with another type is an error.
    fn optional_str(&self, key: &str) -> Result<Option<&str>, InputError> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(InputError::invalid(key, format!("must be a string, found {}", json_type(other)), format!("store {key} as a JSON string"))),
        }
    }

    fn required_str(&self, key: &str, fix: &str) -> Result<&str, InputError> {
        self.optional_str(key)?.ok_or_else(|| InputError::missing(key, fix))
    }

    pub fn engine(&self) -> Result<Engine, InputError> {
        let fix = format!("set engine to one of {ACCEPTED_ENGINES}");
        Engine::parse(ENGINE, self.required_str(ENGINE, &fix)?)
    }

    pub fn engine_opt(&self) -> Option<Engine> {
        self.engine().ok()
    }

    /// The host, checked to be a host name or an IP address (never a URL, a port or a forged
    /// log line).
    pub fn host(&self) -> Result<&str, InputError> {
        let host = self.required_str(HOST, "set host to the database endpoint")?;
        crate::host::validate_host(HOST, host)?;
        Ok(host)
    }

    pub fn host_opt(&self) -> Option<&str> {
        self.optional_str(HOST).ok().flatten()
    }

    /// The `port` key as written, a number or a string of digits.
    pub fn port_opt(&self) -> Result<Option<u16>, InputError> {
        match self.fields.get(PORT) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(p) if (1..=65_535).contains(&p) => Ok(Some(p as u16)),
                _ => Err(InputError::invalid(PORT, format!("{n} is out of range"), "use a port from 1 to 65535")),
            },
            Some(Value::String(s)) => crate::env::parse_port(PORT, s).map(Some),
            Some(other) => Err(InputError::invalid(PORT, format!("must be a number, found {}", json_type(other)), "use a port from 1 to 65535")),
        }
    }

    /// The port, or the engine's default when absent (as AWS's functions do).
    pub fn port(&self, family: EngineFamily) -> Result<u16, InputError> {
        Ok(self.port_opt()?.unwrap_or_else(|| family.default_port()))
    }

    pub fn username(&self) -> Result<&str, InputError> {
        self.required_str(USERNAME, "set username")
    }

    pub fn password(&self) -> Result<&SecretString, InputError> {
        self.password.as_ref().ok_or_else(|| InputError::missing(PASSWORD, "set password"))
    }

    pub fn dbname(&self) -> Option<&str> {
        self.optional_str(DBNAME).ok().flatten()
    }

    pub fn masterarn(&self) -> Option<&str> {
        self.optional_str(MASTERARN).ok().flatten()
    }

    pub fn db_instance_identifier(&self) -> Option<&str> {
        self.optional_str(DB_INSTANCE_IDENTIFIER).ok().flatten()
    }

    pub fn db_cluster_identifier(&self) -> Option<&str> {
        self.optional_str(DB_CLUSTER_IDENTIFIER).ok().flatten()
    }

    pub fn tls_policy(&self) -> Result<TlsPolicy, InputError> {
        TlsPolicy::from_ssl_field(SSL, self.fields.get(SSL))
    }

    /// Checks the keys a login needs: engine, host, username, password, and a valid port.
    pub fn require_connection_fields(&self) -> Result<(), InputError> {
        self.engine()?;
        self.host()?;
        self.username()?;
        self.password()?;
        self.port_opt()?;
        Ok(())
    }

    pub fn set_password(&mut self, password: SecretString) {
        self.fields.entry(PASSWORD).or_insert(Value::Null);
        self.password = Some(password);
    }

    pub fn set_username(&mut self, username: &str) {
        self.fields.insert(USERNAME.into(), Value::String(username.into()));
    }

    /// Sets a non-secret field. `password` must go through [`Self::set_password`].
    pub fn set_field(&mut self, key: &str, value: Value) {
        assert_ne!(key, PASSWORD, "the password is set with set_password");
        self.fields.insert(key.into(), value);
    }

    pub fn field(&self, key: &str) -> Option<&Value> {
        if key == PASSWORD { None } else { self.fields.get(key) }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// The JSON text to store in Secrets Manager, keys in their original order.
    pub fn to_json(&self) -> SecretString {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(256 + self.password.as_ref().map_or(0, |p| p.len() * 2)));
        serde_json::to_writer(&mut *out, &WithPassword(self)).expect("a JSON map always serialises");
        SecretString::new(String::from_utf8(std::mem::take(&mut *out)).expect("serde_json writes UTF-8"))
    }

    /// True when both documents describe the same login: same engine, host, port, user, password.
    pub fn same_credentials(&self, other: &SecretDocument) -> bool {
        self.engine_opt() == other.engine_opt()
            && self.host_opt() == other.host_opt()
            && self.port_opt().ok() == other.port_opt().ok()
            && self.username().ok() == other.username().ok()
            && self.password == other.password
    }
}

/// Serialises the fields with the password written in its original position.
struct WithPassword<'a>(&'a SecretDocument);

impl serde::Serialize for WithPassword<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.fields.len()))?;
        for (key, value) in &self.0.fields {
            if key == PASSWORD {
                match &self.0.password {
                    Some(password) => map.serialize_entry(key, password.expose())?,
                    None => map.serialize_entry(key, value)?,
                }
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Shows the connection fields an operator needs and only the *names* of other keys: an
/// unknown key may hold another credential, so its value is never printed.
impl fmt::Debug for SecretDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let other: Vec<&str> = self
            .fields
            .keys()
            .map(String::as_str)
            .filter(|k| ![ENGINE, HOST, PORT, USERNAME, PASSWORD, DBNAME].contains(k))
            .collect();
        f.debug_struct("SecretDocument")
            .field("engine", &self.fields.get(ENGINE))
            .field("host", &self.fields.get(HOST))
            .field("port", &self.fields.get(PORT))
            .field("username", &self.fields.get(USERNAME))
            .field("dbname", &self.fields.get(DBNAME))
            .field("password", &self.password)
            .field("other_keys", &other)
            .finish()
    }
}

trait ClassifyStr {
    fn classify_str(&self) -> String;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> String {
        let what = match self.classify() {
            serde_json::error::Category::Eof => "it ends early",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Io => "read error",
        };
        format!("{what} at line {} column {}", self.line(), self.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SecretDocument, InputError> {
        SecretDocument::parse(SecretString::from(text))
    }

    const FULL: &str = r#"{"engine":"mysql","host":"db.example.com","port":"3306","username":"app","password":"p@ss\"word","dbname":"appdb","team":{"owner":"x"},"ssl":true}"#;

    #[test]
    fn round_trip_keeps_unknown_keys_order_and_representation() {
        let doc = parse(FULL).unwrap();
        assert_eq!(doc.to_json().expose(), FULL);
        assert_eq!(doc.port(EngineFamily::MySql).unwrap(), 3306);
        assert_eq!(doc.password().unwrap().expose(), "p@ss\"word");
    }

    #[test]
    fn changing_the_password_keeps_everything_else() {
        let mut doc = parse(FULL).unwrap();
        doc.set_password(SecretString::from("new"));
        doc.set_username("app_clone");
        let out: Value = serde_json::from_str(doc.to_json().expose()).unwrap();
        assert_eq!(out["password"], "new");
        assert_eq!(out["username"], "app_clone");
        assert_eq!(out["team"]["owner"], "x");
        assert_eq!(out["port"], "3306");
    }

    #[test]
    fn debug_never_shows_the_password_or_unknown_values() {
        let doc = parse(r#"{"username":"u","password":"topsecret","apiKey":"alsosecret"}"#).unwrap();
        let debug = format!("{doc:?}");
        assert!(!debug.contains("topsecret"), "{debug}");
        assert!(!debug.contains("alsosecret"), "{debug}");
        assert!(debug.contains("apiKey"));
    }

    #[test]
    fn engine_aliases_and_port_forms() {
        for (engine, family) in [("aurora", EngineFamily::MySql), ("postgresql", EngineFamily::Postgres)] {
            let doc = parse(&format!(r#"{{"engine":"{engine}","host":"h","username":"u","password":"p"}}"#)).unwrap();
            assert_eq!(doc.engine().unwrap().family(), family);
            assert_eq!(doc.port(family).unwrap(), family.default_port());
        }
        assert_eq!(parse(r#"{"port":5432}"#).unwrap().port_opt().unwrap(), Some(5432));
    }

    #[test]
    fn ill_typed_fields_are_named() {
        let cases = [
            (r#"{"port":true}"#, "port"),
            (r#"{"port":70000}"#, "port"),
            (r#"{"port":"abc"}"#, "port"),
            (r#"{"host":5}"#, "host"),
            (r#"{"username":["u"]}"#, "username"),
            (r#"{"password":123}"#, "password"),
            (r#"{"engine":"oracle"}"#, "engine"),
            (r#"{"ssl":"perhaps"}"#, "ssl"),
            (r#"{"host":""}"#, "host"),
            (r#"[1,2]"#, "secret"),
            (r#"{"username":"u","#, "secret"),
        ];
        for (text, field) in cases {
            assert_eq!(parse(text).unwrap_err().field, field, "{text}");
        }
    }

    #[test]
    fn a_host_that_is_not_a_host_name_is_named() {
        for host in ["db.example.com\n{\"message\":\"x\"}", "https://db.example.com", "db.example.com:3306"] {
            let text = serde_json::json!({"engine": "mysql", "host": host, "username": "u", "password": "p"}).to_string();
            assert_eq!(parse(&text).unwrap().require_connection_fields().unwrap_err().field, "host", "{host}");
        }
    }

    #[test]
    fn missing_required_fields_are_named() {
        let doc = parse(r#"{"engine":"postgres","username":"u","password":"p"}"#).unwrap();
        assert_eq!(doc.require_connection_fields().unwrap_err().field, "host");
        let doc = parse(r#"{"engine":"postgres","host":"h","password":"p"}"#).unwrap();
        assert_eq!(doc.require_connection_fields().unwrap_err().field, "username");
        let doc = parse(r#"{"engine":"postgres","host":"h","username":"u"}"#).unwrap();
        assert_eq!(doc.require_connection_fields().unwrap_err().field, "password");
        let doc = parse(r#"{"host":"h","username":"u","password":"p"}"#).unwrap();
        assert_eq!(doc.require_connection_fields().unwrap_err().field, "engine");
    }

    #[test]
    fn parse_errors_never_echo_the_input() {
        let err = parse(r#"{"password":"hunter2-secret" "#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn same_credentials_compares_the_login() {
        let a = parse(FULL).unwrap();
        let mut b = parse(FULL).unwrap();
        assert!(a.same_credentials(&b));
        b.set_password(SecretString::from("other"));
        assert!(!a.same_credentials(&b));
    }
}
