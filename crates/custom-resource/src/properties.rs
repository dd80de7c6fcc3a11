//! Reading a resource's properties the way CloudFormation sends them.
//!
//! Every scalar arrives as a string (`"3306"`, `"true"`), because CloudFormation stringifies
//! template values; a hand-written event may send real numbers and booleans. Both are accepted.
//! Each accessor names the property's full path in its error (`Users[1].Privileges`), and
//! [`PropertyReader::finish`] reports keys nobody read, so a typo (`DatabseName`) is a FAILED
//! that names it instead of a silently ignored setting.

use crate::request::SERVICE_KEYS;
use dbcreds_core::InputError;
use dbcreds_core::sanitize::for_log;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A view of one JSON object of properties, remembering which keys were read.
pub struct PropertyReader<'a> {
    map: &'a Map<String, Value>,
    /// `""` at the top, `Users[1].` inside a list item.
    prefix: String,
    read: BTreeSet<&'a str>,
}

impl<'a> PropertyReader<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self::with_prefix(map, String::new())
    }

    fn with_prefix(map: &'a Map<String, Value>, prefix: String) -> Self {
        Self { map, prefix, read: BTreeSet::new() }
    }

    /// The full name of a key, for errors.
    pub fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&mut self, key: &'a str) -> Option<&'a Value> {
        self.read.insert(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    /// A string; numbers and booleans are taken as their text. Empty counts as absent, because
    /// `!If [..., !Ref AWS::NoValue]` and empty parameters both produce it.
    pub fn optional_string(&mut self, key: &'a str) -> Result<Option<String>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    pub fn required_string(&mut self, key: &'a str, fix: &str) -> Result<String, InputError> {
        self.optional_string(key)?.ok_or_else(|| InputError::missing(self.path(key), fix))
    }

    /// A port: a number or a string of digits, 1 to 65535.
    pub fn optional_port(&mut self, key: &'a str) -> Result<Option<u16>, InputError> {
        let path = self.path(key);
        match self.optional_string(key)? {
            None => Ok(None),
            Some(text) => dbcreds_core::env::parse_port(&path, &text).map(Some),
        }
    }

    /// A boolean: `true`/`false` as JSON or as the strings AWS accepts (`"true"`, `"1"`, `"yes"`...).
    pub fn optional_bool(&mut self, key: &'a str) -> Result<Option<bool>, InputError> {
        let path = self.path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => dbcreds_core::env::parse_bool(&path, s).map(Some),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// One of `choices` (compared ignoring ASCII case and `-`/`_`), returned in its canonical form.
    pub fn optional_choice(&mut self, key: &'a str, choices: &[&'static str]) -> Result<Option<&'static str>, InputError> {
        let path = self.path(key);
        let Some(text) = self.optional_string(key)? else { return Ok(None) };
        let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
        choices.iter().copied().find(|c| norm(c) == norm(&text)).map(Some).ok_or_else(|| {
            InputError::invalid(path, format!("{} is not one of {}", for_log(&text), choices.join(", ")), format!("use one of {}", choices.join(", ")))
        })
    }

    /// A list of objects, each read by `item` with its own reader (prefix `Key[i].`).
    pub fn list_of_objects<T>(&mut self, key: &'a str, mut item: impl FnMut(&mut PropertyReader<'a>) -> Result<T, InputError>) -> Result<Vec<T>, InputError> {
        let path = self.path(key);
        let items = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.wrong_type(key, "a list", other)),
        };
        let mut out = Vec::with_capacity(items.len());
        for (index, value) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Value::Object(map) = value else {
                return Err(InputError::invalid(item_path, format!("must be an object, found {}", json_type(value)), "write each entry as a map of properties"));
            };
            let mut reader = PropertyReader::with_prefix(map, format!("{item_path}."));
            let parsed = item(&mut reader)?;
            reader.finish()?;
            out.push(parsed);
        }
        Ok(out)
    }

    /// A string or a list of strings: `Ok(text)` or `Err(list)` in the shape
    /// `dbcreds_db::PrivilegeSpec::parse` takes.
    pub fn string_or_list(&mut self, key: &'a str) -> Result<Option<Result<String, Vec<String>>>, InputError> {
        let path = self.path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, value) in items.iter().enumerate() {
                    match value {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            return Err(InputError::invalid(format!("{path}[{index}]"), format!("must be a string, found {}", json_type(other)), "write each entry as a name"));
                        }
                    }
                }
                Ok(Some(Err(out)))
            }
            Some(Value::String(s)) if s.contains(',') => {
                // CloudFormation's CommaDelimitedList parameters arrive joined when passed through !Join.
                Ok(Some(Err(s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())))
            }
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(Ok(s.trim().to_owned()))),
            Some(other) => Err(self.wrong_type(key, "a name or a list of names", other)),
        }
    }

    /// Marks CloudFormation's own keys as read.
    pub fn allow_service_keys(&mut self) {
        for key in SERVICE_KEYS {
            self.read.insert(key);
        }
    }

    /// Fails on the first key that was never read, naming it and the accepted keys.
    pub fn finish(&self) -> Result<(), InputError> {
        if let Some(unknown) = self.map.keys().find(|k| !self.read.contains(k.as_str())) {
            let accepted: Vec<&str> = self.read.iter().copied().filter(|k| !SERVICE_KEYS.contains(k)).collect();
            return Err(InputError::invalid(
                self.path(&dbcreds_core::sanitize::field(unknown)),
                "is not a property of this resource",
                format!("remove it or check its spelling; the properties are {}", accepted.join(", ")),
            ));
        }
        Ok(())
    }

    fn wrong_type(&self, key: &str, wanted: &str, found: &Value) -> InputError {
        InputError::invalid(self.path(key), format!("must be {wanted}, found {}", json_type(found)), format!("write {} as {wanted}", self.path(key)))
    }
}

/// Like `dbcreds_core::tls_policy::json_type`, in CloudFormation's words: templates are YAML, and
/// their authors write lists and maps, not arrays and objects.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn numbers_and_booleans_arrive_as_strings_or_as_themselves() {
        let props = map(json!({"Port": "3306", "Other": 5432, "Flag": "true", "Off": false, "Yes": "YES"}));
        let mut reader = PropertyReader::new(&props);
        assert_eq!(reader.optional_port("Port").unwrap(), Some(3306));
        assert_eq!(reader.optional_port("Other").unwrap(), Some(5432));
        assert_eq!(reader.optional_bool("Flag").unwrap(), Some(true));
        assert_eq!(reader.optional_bool("Off").unwrap(), Some(false));
        assert_eq!(reader.optional_bool("Yes").unwrap(), Some(true));
        assert_eq!(reader.optional_bool("Absent").unwrap(), None);
        reader.finish().unwrap();
    }

    #[test]
    fn bad_values_name_the_property() {
        let props = map(json!({"Port": "33o6", "Flag": "ture", "Big": "70000", "Name": ["x"], "Kind": "sometimes"}));
        let mut reader = PropertyReader::new(&props);
        assert_eq!(reader.optional_port("Port").unwrap_err().field, "Port");
        assert_eq!(reader.optional_bool("Flag").unwrap_err().field, "Flag");
        assert_eq!(reader.optional_port("Big").unwrap_err().field, "Big");
        let err = reader.optional_string("Name").unwrap_err();
        assert_eq!(err.field, "Name");
        assert!(err.problem.contains("a list"), "{err}");
        let err = reader.optional_choice("Kind", &["password", "iam"]).unwrap_err();
        assert_eq!(err.field, "Kind");
        assert!(err.to_string().contains("password, iam"), "{err}");
    }

    #[test]
    fn choices_ignore_case_and_dash_or_underscore() {
        let props = map(json!({"A": "Single_User", "B": "IAM"}));
        let mut reader = PropertyReader::new(&props);
        assert_eq!(reader.optional_choice("A", &["single-user", "alternating-users"]).unwrap(), Some("single-user"));
        assert_eq!(reader.optional_choice("B", &["password", "iam"]).unwrap(), Some("iam"));
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let props = map(json!({"ServiceToken": "arn", "ServiceTimeout": "600", "DatabaseName": "appdb", "Users": [{"SecretArn": "a", "Privilege": "readonly"}]}));
        let mut reader = PropertyReader::new(&props);
        reader.allow_service_keys();
        reader.required_string("DatabaseName", "set it").unwrap();
        let err = reader
            .list_of_objects("Users", |user| {
                user.optional_string("SecretArn")?;
                user.optional_string("Privileges")?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.field, "Users[0].Privilege");
        assert!(err.fix.contains("Privileges"), "{err}");

        let props = map(json!({"DatabseName": "appdb"}));
        let mut reader = PropertyReader::new(&props);
        reader.optional_string("DatabaseName").unwrap();
        assert_eq!(reader.finish().unwrap_err().field, "DatabseName");
    }

    #[test]
    fn lists_and_items_are_type_checked() {
        let props = map(json!({"Users": "DBUserA", "Items": ["x"], "P": ["SELECT", 3], "Q": "SELECT, INSERT"}));
        let mut reader = PropertyReader::new(&props);
        assert_eq!(reader.list_of_objects("Users", |_| Ok(())).unwrap_err().field, "Users");
        assert_eq!(reader.list_of_objects("Items", |_| Ok(())).unwrap_err().field, "Items[0]");
        assert_eq!(reader.string_or_list("P").unwrap_err().field, "P[1]");
        assert_eq!(reader.string_or_list("Q").unwrap(), Some(Err(vec!["SELECT".to_string(), "INSERT".to_string()])));
    }

    #[test]
    fn empty_strings_count_as_absent() {
        let props = map(json!({"Host": "", "Port": " "}));
        let mut reader = PropertyReader::new(&props);
        assert_eq!(reader.optional_string("Host").unwrap(), None);
        assert_eq!(reader.optional_port("Port").unwrap(), None);
    }
}
