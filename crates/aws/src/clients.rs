//! Every AWS client, built once per cold start.
//!
//! Building makes no network call: the region comes from `AWS_REGION` (Lambda always sets it),
//! credentials are resolved lazily on the first request and then cached by the SDK, and the
//! clients share one HTTPS connection pool (rustls + aws-lc-rs, the only TLS stack in the build).
//!
//! Timeouts: every call gets a connect, read, per-attempt and whole-operation timeout. The
//! adapters (`SecretsManagerStore`, `RdsEndpoints`, `RoleAssumer`) take the invocation's
//! deadline through `with_deadline` and shrink the operation timeout so that a slow call fails
//! with time left to report it, instead of Lambda killing the process mid-step.

use crate::error::AwsError;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use dbcreds_core::{ErrorClass, InputError};
use std::time::{Duration, Instant};

/// AWS's rotation functions read this variable for an explicit Secrets Manager endpoint (a VPC
/// endpoint's DNS name, for example). It wins over `AWS_ENDPOINT_URL_SECRETS_MANAGER`, as an
/// explicit `endpoint_url` wins over the environment in boto3.
pub const SECRETS_MANAGER_ENDPOINT: &str = "SECRETS_MANAGER_ENDPOINT";

/// Below this much time left, a call is not started: it could not finish, and starting it only
/// turns a clean `Deadline` error into a timeout in the middle of a write.
pub const MIN_CALL_TIME: Duration = Duration::from_millis(100);

/// Timeouts for one AWS call. The defaults suit Lambda: a connect that takes more than a few
/// seconds is a missing route (no VPC endpoint, no NAT), not a slow network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTimeouts {
    /// TCP + TLS connect to the endpoint.
    pub connect: Duration,
    /// Waiting for the first byte of a response.
    pub read: Duration,
    /// One attempt, from sending to the parsed response.
    pub attempt: Duration,
    /// The whole operation, retries and backoff included.
    pub operation: Duration,
}

impl CallTimeouts {
    pub const DEFAULT: CallTimeouts = CallTimeouts {
        connect: Duration::from_secs(3),
        read: Duration::from_secs(10),
        attempt: Duration::from_secs(10),
        operation: Duration::from_secs(25),
    };

    pub fn to_config(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.read)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    /// These timeouts, shortened so that nothing outlives `deadline`. Fails with
    /// [`ErrorClass::Deadline`] when less than [`MIN_CALL_TIME`] is left.
    pub fn until(self, deadline: Option<Instant>, operation: &str) -> Result<TimeoutConfig, AwsError> {
        let Some(deadline) = deadline else { return Ok(self.to_config()) };
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_CALL_TIME {
            return Err(AwsError::new(
                ErrorClass::Deadline,
                None,
                format!("{operation} not started: {} ms of the invocation's budget left", left.as_millis()),
            ));
        }
        Ok(CallTimeouts {
            connect: self.connect.min(left),
            read: self.read.min(left),
            attempt: self.attempt.min(left),
            operation: self.operation.min(left),
        }
        .to_config())
    }
}

impl Default for CallTimeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Standard retries (throttling, 5xx, connection resets, timeouts), three attempts, with short
/// backoff: a rotation step has seconds, not minutes.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(5))
}

/// The roots of Amazon Trust Services (Amazon Root CA 1-4, and Starfield Services Root G2 that
/// cross-signs them), which AWS's service endpoints chain to, VPC interface endpoints included.
/// From Debian's ca-certificates; see certs/README.md.
const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../../../certs/amazon-trust-services-roots.pem");

/// What the SDK verifies AWS's endpoints against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsEndpointTrust {
    /// Amazon Trust Services' five roots only. The SDK's default reads and decodes the system's
    /// ~150 roots while the configuration loads, about 3 ms of every cold start (BENCHMARKS.md,
    /// "Init"), and the functions only ever call AWS's endpoints: trusting just the CAs those
    /// chain to is also the narrower choice.
    AmazonRoots,
    /// The system's roots (the SDK's default), as `SSL_CERT_FILE` / `SSL_CERT_DIR` point to them.
    SystemRoots,
}

impl AwsEndpointTrust {
    /// Amazon's roots, unless the environment names a certificate file or directory: whoever
    /// sets `SSL_CERT_FILE` or `SSL_CERT_DIR` on a function (for an HTTPS proxy that inspects
    /// traffic, say) gets the SDK's default, which reads them.
    pub fn for_lambda() -> Self {
        Self::from_choice(dbcreds_core::env::environment_names_system_certificates())
    }

    fn from_choice(system_certificates_named: bool) -> Self {
        if system_certificates_named { Self::SystemRoots } else { Self::AmazonRoots }
    }
}

/// The SDK's own HTTPS client (hyper, rustls with aws-lc-rs, proxy settings from the
/// environment as in the SDK's default), trusting only Amazon's roots.
fn amazon_roots_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS);
    let context = TlsContext::builder().with_trust_store(trust).build().expect("a TLS context from a trust store always builds");
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc)).tls_context(context).build_https()
}

/// The SDK clients every function uses, and the configuration they were built from. STS, which
/// only the connection test and the CLI call, is built from `config` by [`crate::RoleAssumer`].
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub rds: aws_sdk_rds::Client,
    /// The shared configuration (region, credentials, endpoints, HTTP client). IAM tokens are
    /// signed with its credentials.
    pub config: SdkConfig,
    pub timeouts: CallTimeouts,
}

impl AwsClients {
    /// From the standard environment: `AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_RDS`, the
    /// credentials chain, and AWS's `SECRETS_MANAGER_ENDPOINT`. Call it once per cold start.
    ///
    /// For the Lambda functions: AWS's endpoints are verified against Amazon Trust Services'
    /// roots ([`AwsEndpointTrust::AmazonRoots`]) unless `SSL_CERT_FILE` or `SSL_CERT_DIR` say
    /// otherwise.
    pub async fn from_env() -> Result<Self, AwsError> {
        Self::load(None, None, AwsEndpointTrust::for_lambda()).await
    }

    /// [`AwsClients::from_env`] with a region and a named profile chosen by the caller, which win
    /// over `AWS_REGION` and `AWS_PROFILE` (the operator CLI's `--region` and `--profile`). AWS's
    /// endpoints are verified against the system's roots, as the AWS CLI does: an operator's
    /// machine may sit behind a proxy whose CA only the system trusts.
    pub async fn from_env_with(region: Option<&str>, profile: Option<&str>) -> Result<Self, AwsError> {
        Self::load(region, profile, AwsEndpointTrust::SystemRoots).await
    }

    async fn load(region: Option<&str>, profile: Option<&str>, trust: AwsEndpointTrust) -> Result<Self, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(CallTimeouts::DEFAULT.to_config()).retry_config(retry_config());
        if trust == AwsEndpointTrust::AmazonRoots {
            loader = loader.http_client(amazon_roots_http_client());
        }
        if let Some(region) = region {
            validate_region("region", region)?;
            loader = loader.region(Region::new(region.to_owned()));
        }
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        let config = loader.load().await;
        let endpoint = std::env::var(SECRETS_MANAGER_ENDPOINT).ok();
        Self::from_sdk_config(config, endpoint.as_deref())
    }

    /// From a configuration the caller built (tests, or a caller with its own credentials).
    /// `secrets_manager_endpoint` plays the role of `SECRETS_MANAGER_ENDPOINT`; empty means unset.
    pub fn from_sdk_config(config: SdkConfig, secrets_manager_endpoint: Option<&str>) -> Result<Self, AwsError> {
        if config.region().is_none() {
            return Err(InputError::missing("AWS_REGION", "set AWS_REGION to the region of the secret (Lambda sets it for you)").into());
        }
        let endpoint = match secrets_manager_endpoint.map(str::trim).filter(|value| !value.is_empty()) {
            Some(url) => Some(validate_endpoint_url(SECRETS_MANAGER_ENDPOINT, url)?),
            None => None,
        };
        let timeouts = CallTimeouts::DEFAULT;

        let mut secrets = aws_sdk_secretsmanager::config::Builder::from(&config)
            .timeout_config(timeouts.to_config())
            .retry_config(retry_config());
        if let Some(url) = endpoint {
            secrets = secrets.endpoint_url(url);
        }
        let rds = aws_sdk_rds::config::Builder::from(&config).timeout_config(timeouts.to_config()).retry_config(retry_config());

        tracing::debug!(
            region = config.region().map(Region::as_ref),
            secrets_manager_endpoint = endpoint.unwrap_or("default"),
            "AWS clients built"
        );
        Ok(Self {
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
            rds: aws_sdk_rds::Client::from_conf(rds.build()),
            config,
            timeouts,
        })
    }

    /// The same clients acting as an assumed role (cross-account), optionally in another region
    /// (the database account's). Endpoints, timeouts and the HTTP client are kept; nothing is
    /// called. `SECRETS_MANAGER_ENDPOINT` is not carried over: it names this account's endpoint.
    pub fn for_assumed_role(&self, credentials: &crate::sts::AssumedCredentials, region: Option<&str>) -> Result<Self, AwsError> {
        let mut builder = self.config.to_builder();
        builder.set_credentials_provider(Some(SharedCredentialsProvider::new(credentials.to_sdk_credentials())));
        if let Some(region) = region {
            validate_region("region", region)?;
            builder.set_region(Some(Region::new(region.to_owned())));
        }
        Self::from_sdk_config(builder.build(), None)
    }

    /// The region the clients call.
    pub fn region(&self) -> &str {
        self.config.region().map(Region::as_ref).unwrap_or_default()
    }
}

/// An endpoint URL must be absolute http(s) with a host; anything else is a typo that would
/// otherwise surface as a confusing dispatch error on the first call.
fn validate_endpoint_url<'a>(field: &str, url: &'a str) -> Result<&'a str, InputError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.chars().any(char::is_whitespace) => Ok(url),
        _ => Err(InputError::invalid(
            field,
            format!("{} is not an http(s) URL", dbcreds_core::sanitize::for_log(url)),
            "use a URL such as https://secretsmanager.eu-west-1.amazonaws.com or the VPC endpoint's https:// DNS name",
        )),
    }
}

/// Region names: lowercase letters, digits and dashes (`us-east-1`, `us-gov-west-1`).
pub(crate) fn validate_region(field: &str, region: &str) -> Result<(), InputError> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(InputError::invalid(field, format!("{} is not a region name", dbcreds_core::sanitize::for_log(region)), "use a region such as eu-west-1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amazon_trust_services_roots_are_five_certificates_that_parse_as_the_sdk_parses_them() {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS).collect::<Result<_, _>>().expect("PEM");
        assert_eq!(certs.len(), 5);
        // The SDK panics on a root it cannot add.
        let mut store = rustls::RootCertStore::empty();
        for cert in certs {
            store.add(cert).expect("a trust anchor");
        }
        assert_eq!(store.len(), 5);
    }

    #[test]
    fn lambda_functions_trust_amazon_roots_unless_the_environment_names_certificates() {
        let from_lookup = |is_set: &dyn Fn(&str) -> bool| AwsEndpointTrust::from_choice(dbcreds_core::env::names_system_certificates(is_set));
        assert_eq!(from_lookup(&|_| false), AwsEndpointTrust::AmazonRoots);
        assert_eq!(from_lookup(&|name| name == "SSL_CERT_FILE"), AwsEndpointTrust::SystemRoots);
        assert_eq!(from_lookup(&|name| name == "SSL_CERT_DIR"), AwsEndpointTrust::SystemRoots);
        let _client = amazon_roots_http_client();
    }
    use aws_credential_types::Credentials;

    fn config(region: Option<&str>) -> SdkConfig {
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test")));
        builder.set_region(region.map(|r| Region::new(r.to_owned())));
        builder.build()
    }

    #[test]
    fn a_missing_region_is_named() {
        let err = AwsClients::from_sdk_config(config(None), None).unwrap_err();
        assert_eq!(err.class, ErrorClass::Input);
        assert!(err.message.contains("AWS_REGION"), "{err}");
    }

    #[test]
    fn secrets_manager_endpoint_is_validated_and_applied() {
        let err = AwsClients::from_sdk_config(config(Some("eu-west-1")), Some("secretsmanager.eu-west-1.amazonaws.com")).unwrap_err();
        assert_eq!(err.class, ErrorClass::Input);
        assert!(err.message.contains(SECRETS_MANAGER_ENDPOINT), "{err}");

        let clients = AwsClients::from_sdk_config(config(Some("eu-west-1")), Some("https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com")).unwrap();
        assert_eq!(clients.secrets.config().region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(clients.region(), "eu-west-1");

        // Empty means unset, as AWS's functions treat it.
        assert!(AwsClients::from_sdk_config(config(Some("eu-west-1")), Some("  ")).is_ok());
    }

    #[test]
    fn timeouts_shrink_to_the_deadline_and_refuse_a_spent_one() {
        let deadline = Instant::now() + Duration::from_secs(4);
        let config = CallTimeouts::DEFAULT.until(Some(deadline), "GetSecretValue").unwrap();
        assert!(config.operation_timeout().unwrap() <= Duration::from_secs(4));
        assert!(config.operation_attempt_timeout().unwrap() <= Duration::from_secs(4));
        assert_eq!(config.connect_timeout(), Some(CallTimeouts::DEFAULT.connect));

        let unbounded = CallTimeouts::DEFAULT.until(None, "GetSecretValue").unwrap();
        assert_eq!(unbounded.operation_timeout(), Some(CallTimeouts::DEFAULT.operation));

        let err = CallTimeouts::DEFAULT.until(Some(Instant::now()), "PutSecretValue").unwrap_err();
        assert_eq!(err.class, ErrorClass::Deadline);
        assert!(err.message.contains("PutSecretValue"), "{err}");
    }

    #[test]
    fn region_names_are_checked() {
        assert!(validate_region("region", "us-gov-west-1").is_ok());
        for bad in ["", "EU-WEST-1", "eu west 1", "-eu", "eu-west-1\n"] {
            assert!(validate_region("region", bad).is_err(), "{bad:?}");
        }
    }
}
