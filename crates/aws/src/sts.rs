//! Assuming a role (cross-account access), with an external id.
//!
//! The credentials come back with the secret access key and the session token in
//! `SecretString`s, so they cannot reach a log through `Debug`. A denial is classed
//! `AssumeRoleDenied`, with the two things that cause it in practice: the role's trust policy
//! does not name this function's role, or its `sts:ExternalId` condition does not match.

use crate::clients::{AwsClients, CallTimeouts};
use crate::error::{AwsError, CallContext, from_sdk_error};
use aws_credential_types::Credentials;
use dbcreds_core::{ErrorClass, InputError, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// STS's limits on `DurationSeconds`. Roles may cap it lower (MaxSessionDuration, and one hour
/// for role chaining); STS then answers ValidationError.
pub const MIN_SESSION_DURATION: Duration = Duration::from_secs(900);
pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(43_200);

/// Temporary credentials of an assumed role.
#[derive(Clone, Debug)]
pub struct AssumedCredentials {
    /// Not a secret (it names the key, like a user name), and useful in CloudTrail searches.
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expiration: SystemTime,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub assumed_role_arn: String,
}

impl AssumedCredentials {
    /// For an SDK client or an IAM token signer. The SDK's `Credentials` redacts its `Debug`.
    pub fn to_sdk_credentials(&self) -> Credentials {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_owned(),
            Some(self.session_token.expose().to_owned()),
            Some(self.expiration),
            "dbcreds-assume-role",
        )
    }
}

/// Calls STS AssumeRole.
#[derive(Clone, Debug)]
pub struct RoleAssumer {
    client: aws_sdk_sts::Client,
    timeouts: CallTimeouts,
    deadline: Option<Instant>,
    calls: Arc<AtomicU64>,
}

impl RoleAssumer {
    /// An STS client from the clients' configuration (region, credentials, endpoints, HTTP
    /// client, `AWS_ENDPOINT_URL_STS`). Built here rather than with the other clients: only the
    /// connection test and the CLI assume roles, so the rotator and the provisioner do not build
    /// one at each cold start. (Their binaries hold STS anyway: aws-config's credential
    /// providers call it for web identity and profile roles.)
    pub fn new(clients: &AwsClients) -> Self {
        let config = aws_sdk_sts::config::Builder::from(&clients.config).timeout_config(clients.timeouts.to_config()).retry_config(crate::clients::retry_config());
        Self::from_client(aws_sdk_sts::Client::from_conf(config.build()), clients.timeouts)
    }

    pub fn from_client(client: aws_sdk_sts::Client, timeouts: CallTimeouts) -> Self {
        Self { client, timeouts, deadline: None, calls: Arc::default() }
    }

    /// The same assumer, with calls bounded by the invocation's deadline.
    pub fn with_deadline(&self, deadline: impl Into<Instant>) -> Self {
        Self { deadline: Some(deadline.into()), ..self.clone() }
    }

    /// AssumeRole calls made by this assumer and its views.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Assumes `role_arn`. Inputs are checked first (an `Input` error names the field and
    /// nothing is sent); a denial is `AssumeRoleDenied`.
    pub async fn assume_role(&self, role_arn: &str, session_name: &str, external_id: Option<&str>, duration: Duration) -> Result<AssumedCredentials, AwsError> {
        validate_role_arn("role_arn", role_arn)?;
        validate_session_name("session_name", session_name)?;
        if let Some(external_id) = external_id {
            validate_external_id("external_id", external_id)?;
        }
        validate_duration("duration", duration)?;

        let denied_hint = if external_id.is_some() {
            "check the role's trust policy names this function's role ARN as principal and that its sts:ExternalId condition equals the EXTERNAL_ID given (it was sent)"
        } else {
            "check the role's trust policy names this function's role ARN as principal; if it requires sts:ExternalId, set EXTERNAL_ID (none was sent)"
        };
        let call = CallContext {
            operation: "AssumeRole",
            subject: role_arn,
            not_found: ErrorClass::Input,
            denied: ErrorClass::AssumeRoleDenied,
            denied_hint,
            deadline: self.deadline,
        };
        let overrides = aws_sdk_sts::config::Builder::default().timeout_config(self.timeouts.until(self.deadline, call.operation)?);
        let started = Instant::now();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let output = self
            .client
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .set_external_id(external_id.map(str::to_owned))
            .duration_seconds(duration.as_secs() as i32)
            .customize()
            .config_override(overrides)
            .send()
            .await
            .map_err(|err| from_sdk_error(&call, &err))?;

        let assumed_role_arn = output.assumed_role_user.map(|user| user.arn).unwrap_or_default();
        let Some(credentials) = output.credentials else {
            return Err(AwsError::new(ErrorClass::Internal, None, format!("AssumeRole {}: the response has no credentials", dbcreds_core::sanitize::for_log(role_arn))));
        };
        let expiration = SystemTime::try_from(credentials.expiration).unwrap_or_else(|_| SystemTime::now() + duration);
        tracing::info!(api = "AssumeRole", role_arn, assumed_role_arn = %assumed_role_arn, duration_ms = started.elapsed().as_millis() as u64, "role assumed");
        Ok(AssumedCredentials {
            access_key_id: credentials.access_key_id,
            secret_access_key: SecretString::new(credentials.secret_access_key),
            session_token: SecretString::new(credentials.session_token),
            expiration,
            assumed_role_arn,
        })
    }
}

/// `arn:<partition>:iam::<12-digit account>:role/<optional path/><name>`.
pub fn validate_role_arn(field: &str, value: &str) -> Result<(), InputError> {
    let fix = "use the role's ARN, such as arn:aws:iam::111122223333:role/dbcreds-connection-test";
    let invalid = |problem: &str| InputError::invalid(field, format!("{} {problem}", dbcreds_core::sanitize::for_log(value)), fix);
    if value.trim().is_empty() {
        return Err(InputError::missing(field, fix));
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(invalid("is not an ARN"));
    };
    if *arn != "arn" || !is_partition(partition) {
        return Err(invalid("is not an ARN"));
    }
    if *service != "iam" || !region.is_empty() {
        return Err(invalid("is not an IAM ARN"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("does not hold a 12-digit account id"));
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return Err(invalid("is not a role ARN (role/...)"));
    };
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    let name_ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    let path_ok = path_and_name.len() <= 512 + 64 && path_and_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
    if !name_ok || !path_ok {
        return Err(invalid("has an invalid role name"));
    }
    Ok(())
}

fn is_partition(value: &str) -> bool {
    value == "aws" || value.strip_prefix("aws-").is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
}

/// STS's `RoleSessionName`: 2 to 64 of `[\w+=,.@-]`. It shows in CloudTrail and in the
/// assumed-role ARN, so callers make it say who assumed (e.g. the function's name).
pub fn validate_session_name(field: &str, value: &str) -> Result<(), InputError> {
    let ok = (2..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InputError::invalid(field, format!("{} is not a session name", dbcreds_core::sanitize::for_log(value)), "use 2 to 64 letters, digits or +=,.@_-"))
    }
}

/// STS's `ExternalId`: 2 to 1224 of `[\w+=,.@:/-]`. Not echoed in errors: it is not a secret,
/// but the party that chose it may prefer it stays out of logs.
pub fn validate_external_id(field: &str, value: &str) -> Result<(), InputError> {
    let ok = (2..=1224).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InputError::invalid(field, "is not a valid external id", "use 2 to 1224 letters, digits or +=,.@:/_- (the value from the role's trust policy)"))
    }
}

fn validate_duration(field: &str, duration: Duration) -> Result<(), InputError> {
    if (MIN_SESSION_DURATION..=MAX_SESSION_DURATION).contains(&duration) {
        Ok(())
    } else {
        Err(InputError::invalid(field, format!("{} s is out of range", duration.as_secs()), "use 900 to 43200 seconds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked_and_the_field_named() {
        for good in [
            "arn:aws:iam::111122223333:role/dbcreds",
            "arn:aws:iam::111122223333:role/service-role/path/dbcreds_x+=,.@-",
            "arn:aws-us-gov:iam::111122223333:role/r",
            "arn:aws-cn:iam::111122223333:role/r",
        ] {
            assert!(validate_role_arn("ROLE_ARN", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "dbcreds",
            "arn:aws:iam::1111:role/x",
            "arn:aws:iam::111122223333:user/x",
            "arn:aws:sts::111122223333:role/x",
            "arn:aws:iam:eu-west-1:111122223333:role/x",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::111122223333:role/x y",
            "arn:aws:iam::111122223333:role/x\n",
            "arn:evil:iam::111122223333:role/x",
        ] {
            let err = validate_role_arn("ROLE_ARN", bad).unwrap_err();
            assert_eq!(err.field, "ROLE_ARN", "{bad:?}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }

    #[test]
    fn session_names_external_ids_and_durations_are_checked() {
        assert!(validate_session_name("s", "dbcreds-connection-test").is_ok());
        assert!(validate_session_name("s", "a").is_err());
        assert!(validate_session_name("s", "has space").is_err());
        assert!(validate_session_name("s", &"x".repeat(65)).is_err());
        assert!(validate_external_id("e", "Unique-ID:1/2").is_ok());
        assert!(validate_external_id("e", "x").is_err());
        assert!(validate_external_id("e", "a b").is_err());
        assert!(validate_duration("d", Duration::from_secs(900)).is_ok());
        assert!(validate_duration("d", Duration::from_secs(899)).is_err());
        assert!(validate_duration("d", Duration::from_secs(43_201)).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret_parts() {
        let credentials = AssumedCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI-secret"),
            session_token: SecretString::from("FwoGZXIvYXdz-token"),
            expiration: SystemTime::UNIX_EPOCH,
            assumed_role_arn: "arn:aws:sts::111122223333:assumed-role/r/s".into(),
        };
        let debug = format!("{credentials:?} {:?}", credentials.to_sdk_credentials());
        assert!(!debug.contains("wJalrXUtnFEMI-secret"), "{debug}");
        assert!(!debug.contains("FwoGZXIvYXdz-token"), "{debug}");
        assert!(debug.contains("ASIAEXAMPLE"));
    }
}
