//! Errors from AWS calls, classified so the caller can tell "retry later" from "fix the policy".

use dbcreds_core::ErrorClass;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub class: ErrorClass,
    /// The service's error code (`ResourceNotFoundException`, `AccessDeniedException`,
    /// `ThrottlingException`, ...) when there is one.
    pub code: Option<String>,
    /// What was being done and what the service said. Never a secret value.
    pub message: String,
}

impl AwsError {
    pub fn new(class: ErrorClass, code: Option<String>, message: impl Into<String>) -> Self {
        Self { class, code, message: message.into() }
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn is_not_found(&self) -> bool {
        self.is_code("ResourceNotFoundException")
    }

    /// `AccessDeniedException` (JSON APIs such as Secrets Manager) or `AccessDenied` (STS, RDS).
    pub fn is_access_denied(&self) -> bool {
        self.code.as_deref().is_some_and(is_access_denied)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} ({code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AwsError {}

impl From<dbcreds_core::InputError> for AwsError {
    /// Bad input found before any call: nothing was sent, nothing changed.
    fn from(err: dbcreds_core::InputError) -> Self {
        AwsError::new(ErrorClass::Input, None, err.to_string())
    }
}

impl AwsError {
    /// The operator's hint for this error's class.
    pub fn hint(&self) -> &'static str {
        self.class.hint()
    }

    /// Whether the same call may succeed later without anyone changing anything (throttling,
    /// a 5xx, a timeout, a broken connection). Access denied and not-found are not.
    pub fn is_transient(&self) -> bool {
        match self.class {
            ErrorClass::Aws => !self.code.as_deref().is_some_and(is_permanent),
            class => class.is_transient(),
        }
    }
}

/// What a call was doing: it shapes the message and decides the class of "not found" and
/// "access denied", which mean different things for different calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallContext<'a> {
    /// The API name, `GetSecretValue`.
    pub operation: &'static str,
    /// What it was called on (a secret id, a role ARN). Logged through `sanitize::for_log`.
    pub subject: &'a str,
    /// The class of a not-found answer: `Input` when the caller named something that does not
    /// exist, `State` when the secret exists but the version or stage does not.
    pub not_found: ErrorClass,
    /// The class of an access-denied answer (`Aws`, or `AssumeRoleDenied` for STS).
    pub denied: ErrorClass,
    /// What the operator should check when access is denied.
    pub denied_hint: &'static str,
    /// The invocation's deadline, to tell "we ran out of budget" from "the service is slow".
    pub deadline: Option<std::time::Instant>,
}

pub(crate) fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" | "RequestThrottled" | "RequestThrottledException" | "SlowDown" | "ProvisionedThroughputExceededException"
    )
}

pub(crate) fn is_server_fault(code: &str) -> bool {
    matches!(code, "InternalServiceError" | "InternalServiceErrorException" | "InternalFailure" | "InternalError" | "ServiceUnavailable" | "ServiceUnavailableException")
}

/// Codes that mean someone has to change something (a policy, a key, a setting) first.
fn is_permanent(code: &str) -> bool {
    is_access_denied(code) || is_bad_credentials(code) || is_kms_refusal(code) || matches!(code, "RegionDisabledException" | "LimitExceededException")
}

fn is_kms_refusal(code: &str) -> bool {
    matches!(code, "DecryptionFailure" | "EncryptionFailure" | "KMSAccessDeniedException" | "KMSDisabledException" | "KMSInvalidStateException" | "KMSNotFoundException")
}

fn is_access_denied(code: &str) -> bool {
    matches!(code, "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" | "AuthorizationError" | "AuthorizationErrorException")
}

fn is_bad_credentials(code: &str) -> bool {
    matches!(
        code,
        "UnrecognizedClientException" | "InvalidClientTokenId" | "ExpiredToken" | "ExpiredTokenException" | "SignatureDoesNotMatch" | "IncompleteSignature" | "InvalidSignatureException" | "MissingAuthenticationToken"
    )
}

fn is_not_found_code(code: &str) -> bool {
    matches!(code, "ResourceNotFoundException" | "DBInstanceNotFound" | "DBInstanceNotFoundFault" | "DBClusterNotFoundFault" | "DBClusterNotFound" | "NoSuchEntity")
}

/// The `x-amzn-errortype` header (`AccessDeniedException:http://...`, or `ns#Code`), which AWS
/// JSON APIs send beside the body. The SDK reads the code from the body and loses it when the
/// body is not JSON (a proxy's page, or moto's XML error body on a JSON API).
fn error_type_header(response: &aws_smithy_runtime_api::http::Response) -> Option<String> {
    let value = response.headers().get("x-amzn-errortype")?;
    let code = value.split(':').next()?.rsplit('#').next()?.trim();
    (!code.is_empty()).then(|| code.to_owned())
}

/// Turns an SDK error into an [`AwsError`] with the service's code and a class an operator can
/// act on. Service messages are kept (they never carry secret values: request bodies are not
/// echoed); transport errors keep their cause chain.
pub(crate) fn from_sdk_error<E>(call: &CallContext<'_>, err: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>) -> AwsError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_types::error::display::DisplayErrorContext;
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;

    let what = format!("{} {}", call.operation, dbcreds_core::sanitize::for_log(call.subject));
    let out_of_time = call.deadline.is_some_and(|deadline| std::time::Instant::now() + crate::clients::MIN_CALL_TIME >= deadline);
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = err.code().map(str::to_owned).or_else(|| error_type_header(service.raw())).or_else(|| {
                // A 403 whose body the SDK could not read (a proxy's page, or moto's XML error
                // body) is an authorization refusal: every AWS 403 code is one. Naming it keeps
                // `is_access_denied()` and `is_transient()` right; the message says HTTP 403.
                (status == 403).then(|| "AccessDenied".to_owned())
            });
            let said = err.message().map(dbcreds_core::sanitize::field).unwrap_or_else(|| format!("HTTP {status}"));
            let (class, detail) = match code.as_deref() {
                Some(code) if is_not_found_code(code) => (call.not_found, format!("not found: {said}")),
                Some(code) if is_access_denied(code) => (call.denied, format!("access denied: {said}; {}", call.denied_hint)),
                Some(code) if is_bad_credentials(code) => (
                    ErrorClass::Aws,
                    format!("the credentials were rejected: {said}; check the function's role (or the assumed role's session) and that the clock is right"),
                ),
                Some(code) if is_throttling(code) => (ErrorClass::Aws, format!("throttled after retries: {said}; the step is safe to retry")),
                Some(code) if is_kms_refusal(code) => (
                    ErrorClass::Aws,
                    format!("KMS refused: {said}; the function's role needs kms:Decrypt (and kms:GenerateDataKey to write) on the secret's key, and the key must be enabled"),
                ),
                Some("InvalidParameterException" | "InvalidParameterValue" | "InvalidParameterCombination" | "ValidationException" | "ValidationError" | "MalformedQueryString") => {
                    (ErrorClass::Input, format!("rejected as invalid: {said}"))
                }
                Some("InvalidRequestException" | "ResourceExistsException" | "PreconditionNotMetException") => (ErrorClass::State, format!("not allowed in the secret's current state: {said}")),
                Some("RegionDisabledException") => (ErrorClass::Aws, format!("{said}; activate STS in this region (IAM account settings)")),
                Some(code) if is_server_fault(code) => (ErrorClass::Aws, format!("the service failed after retries: {said}; the step is safe to retry")),
                _ if status >= 500 => (ErrorClass::Aws, format!("the service failed after retries: {said}; the step is safe to retry")),
                _ => (ErrorClass::Aws, said),
            };
            AwsError::new(class, code, format!("{what}: {detail}"))
        }
        SdkError::TimeoutError(_) if out_of_time => {
            AwsError::new(ErrorClass::Deadline, None, format!("{what}: stopped at the invocation's deadline; the step is safe to retry"))
        }
        SdkError::TimeoutError(_) => AwsError::new(
            ErrorClass::Aws,
            None,
            format!("{what}: timed out after retries; the service is slow or unreachable (VPC endpoint or NAT); the step is safe to retry"),
        ),
        SdkError::DispatchFailure(failure) if failure.is_user() => AwsError::new(
            ErrorClass::Input,
            None,
            format!("{what}: the request could not be sent: {}; check AWS_ENDPOINT_URL* and SECRETS_MANAGER_ENDPOINT", DisplayErrorContext(err)),
        ),
        SdkError::DispatchFailure(failure) if failure.is_timeout() && out_of_time => {
            AwsError::new(ErrorClass::Deadline, None, format!("{what}: stopped at the invocation's deadline while connecting; the step is safe to retry"))
        }
        SdkError::DispatchFailure(_) => AwsError::new(
            ErrorClass::Aws,
            None,
            format!(
                "{what}: no route to the endpoint: VPC endpoint or NAT: a function in a VPC needs an interface endpoint for the service or a NAT gateway ({})",
                DisplayErrorContext(err)
            ),
        ),
        SdkError::ResponseError(_) => {
            AwsError::new(ErrorClass::Aws, None, format!("{what}: the response could not be read ({}); the step is safe to retry", DisplayErrorContext(err)))
        }
        SdkError::ConstructionFailure(_) => {
            AwsError::new(ErrorClass::Internal, None, format!("{what}: the request could not be built: {}", DisplayErrorContext(err)))
        }
        _ => AwsError::new(ErrorClass::Aws, None, format!("{what}: {}", DisplayErrorContext(err))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    #[derive(Debug)]
    struct ModeledError(ErrorMetadata);
    impl fmt::Display for ModeledError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0.code())
        }
    }
    impl std::error::Error for ModeledError {}
    impl aws_smithy_types::error::metadata::ProvideErrorMetadata for ModeledError {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    fn service_error(status: u16, code: &str, message: &str) -> SdkError<ModeledError, Response> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(ModeledError(meta), Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()))
    }

    const CALL: CallContext<'static> = CallContext {
        operation: "GetSecretValue",
        subject: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf",
        not_found: ErrorClass::State,
        denied: ErrorClass::Aws,
        denied_hint: "allow secretsmanager:GetSecretValue",
        deadline: None,
    };

    // The SDK's error types are what moto and AWS produce; these cases cover the codes moto
    // cannot be made to return (throttling, 5xx, KMS). The moto tests cover the rest end to end.
    #[test]
    fn service_codes_map_to_classes() {
        let cases = [
            (400, "ResourceNotFoundException", ErrorClass::State, false),
            (400, "AccessDeniedException", ErrorClass::Aws, false),
            (403, "AccessDenied", ErrorClass::Aws, false),
            (400, "ThrottlingException", ErrorClass::Aws, true),
            (500, "InternalServiceError", ErrorClass::Aws, true),
            (503, "SomethingNew", ErrorClass::Aws, true),
            (400, "InvalidParameterException", ErrorClass::Input, false),
            (400, "InvalidRequestException", ErrorClass::State, false),
            (400, "ResourceExistsException", ErrorClass::State, false),
            (400, "DecryptionFailure", ErrorClass::Aws, false),
            (400, "UnrecognizedClientException", ErrorClass::Aws, false),
        ];
        for (status, code, class, transient) in cases {
            let err = from_sdk_error(&CALL, &service_error(status, code, "said"));
            assert_eq!(err.class, class, "{code}");
            assert_eq!(err.code.as_deref(), Some(code));
            assert_eq!(err.is_transient(), transient, "{code}");
            assert!(err.message.starts_with("GetSecretValue \"arn:aws:secretsmanager"), "{err}");
        }
        let unreadable = SdkError::service_error(ModeledError(ErrorMetadata::builder().build()), Response::new(StatusCode::try_from(403).unwrap(), SdkBody::empty()));
        let err = from_sdk_error(&CALL, &unreadable);
        assert_eq!((err.class, err.code.as_deref()), (ErrorClass::Aws, Some("AccessDenied")));
        assert!(err.is_access_denied() && !err.is_transient());
        assert!(err.message.contains("access denied: HTTP 403"), "{err}");
        assert!(err.message.contains("allow secretsmanager:GetSecretValue"), "{err}");
        let mut response = Response::new(StatusCode::try_from(400).unwrap(), SdkBody::from("<html>"));
        response.headers_mut().insert("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/");
        let err = from_sdk_error(&CALL, &SdkError::service_error(ModeledError(ErrorMetadata::builder().build()), response));
        assert_eq!(err.code.as_deref(), Some("ThrottlingException"));
        assert!(err.is_transient());
        let denied = from_sdk_error(&CALL, &service_error(400, "AccessDeniedException", "no"));
        assert!(denied.message.contains("allow secretsmanager:GetSecretValue"), "{denied}");
    }

    #[test]
    fn hostile_service_messages_cannot_forge_log_lines() {
        let err = from_sdk_error(&CALL, &service_error(400, "InvalidParameterException", "bad\n{\"level\":\"INFO\"}"));
        assert!(!err.message.contains('\n'), "{err}");
    }
}
