//! The demo's own view of Secrets Manager (moto): creating the secrets a stack would create,
//! reading versions back as `SecretDocument`s, and describing them without their passwords.
//!
//! Every password the demo writes or reads is remembered (as a `SecretString`), so that the leak
//! check at the end can search the transcript, the responses and the functions' logs for it.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use dbcreds_core::{SecretDocument, SecretString};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct Secrets {
    sm: Client,
    seen: Mutex<Vec<SecretString>>,
}

impl Secrets {
    pub fn new(sm: Client) -> Secrets {
        Secrets { sm, seen: Mutex::new(Vec::new()) }
    }

    pub fn client(&self) -> &Client {
        &self.sm
    }

    /// Remembers a secret value for the leak check.
    pub fn remember(&self, secret: &SecretString) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !seen.contains(secret) {
            seen.push(secret.clone());
        }
    }

    pub fn known(&self) -> Vec<SecretString> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// CreateSecret with the document as its first (AWSCURRENT) version; returns the ARN.
    pub async fn create(&self, name: &str, document: &SecretDocument) -> Result<String, String> {
        if let Ok(password) = document.password() {
            self.remember(password);
        }
        let text = document.to_json();
        let out = self.sm.create_secret().name(name).secret_string(text.expose()).send().await.map_err(|err| format!("CreateSecret {name}: {}", DisplayErrorContext(&err)))?;
        out.arn.ok_or_else(|| format!("CreateSecret {name} returned no ARN"))
    }

    /// A version's document (AWSCURRENT when `version` is `None`) and its version id.
    pub async fn read(&self, arn: &str, version: Option<&str>) -> Result<(String, SecretDocument), String> {
        // AWSCURRENT by name: moto's GetSecretValue without a stage reads the version its
        // RotateSecret made (see dbcreds_testenv::moto_rotation), where AWS reads AWSCURRENT.
        let request = match version {
            Some(version) => self.sm.get_secret_value().secret_id(arn).version_id(version),
            None => self.sm.get_secret_value().secret_id(arn).version_stage("AWSCURRENT"),
        };
        let out = request.send().await.map_err(|err| format!("GetSecretValue {}: {}", short_arn(arn), DisplayErrorContext(&err)))?;
        let version_id = out.version_id.clone().unwrap_or_default();
        let text = SecretString::new(out.secret_string.unwrap_or_default());
        let document = SecretDocument::parse(text).map_err(|err| format!("{}: {err}", short_arn(arn)))?;
        if let Ok(password) = document.password() {
            self.remember(password);
        }
        Ok((version_id, document))
    }

    pub async fn current(&self, arn: &str) -> Result<(String, SecretDocument), String> {
        self.read(arn, None).await
    }

    /// Version id → stages.
    pub async fn stages(&self, arn: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
        dbcreds_testenv::moto_rotation::version_stages(&self.sm, arn).await
    }
}

/// A document as it can be shown: every key in order, the password as its length only.
pub fn describe(document: &SecretDocument) -> String {
    let fields: Vec<String> = document
        .keys()
        .map(|key| match document.field(key) {
            None => format!("password: <{} chars>", document.password().map(SecretString::len).unwrap_or(0)),
            Some(Value::String(text)) if key == "masterarn" => format!("{key}: {}", short_arn(text)),
            Some(Value::String(text)) => format!("{key}: {text}"),
            Some(other) => format!("{key}: {other}"),
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// `...:secret:demo/mariadb/DBUserA-AbCdEf` → `secret:demo/mariadb/DBUserA-AbCdEf`: enough to
/// tell the secrets apart in a narration.
pub fn short_arn(arn: &str) -> &str {
    arn.find("secret:").map_or(arn, |at| &arn[at..])
}

/// The first 8 characters of a version id.
pub fn short_version(version: &str) -> &str {
    version.get(..8).unwrap_or(version)
}
