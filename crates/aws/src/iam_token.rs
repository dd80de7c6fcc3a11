//! RDS and RDS Proxy IAM authentication tokens.
//!
//! A token is a SigV4 presigned `GET https://<host>:<port>/?Action=connect&DBUser=<user>` for the
//! service `rds-db`, without the scheme, valid 15 minutes. AWS's Rust SDK signs it
//! (`aws_sdk_rds::auth_token`); this module checks the inputs first (the SDK puts the host and
//! user into the URL unescaped, so a `&` in a user name would add a query parameter), insists on
//! a region (the SDK would silently sign for us-east-1), and returns the token as a
//! `SecretString`: for 15 minutes it is as good as a password.
//!
//! Credentials and the clock come from the `SdkConfig`: the function's own role, or an assumed
//! role through [`crate::AwsClients::for_assumed_role`].

use crate::error::AwsError;
use aws_config::{Region, SdkConfig};
use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config};
use dbcreds_core::{ErrorClass, InputError, SecretString};

/// What to sign a token for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IamTokenRequest<'a> {
    /// The endpoint the client connects to (instance, cluster or proxy endpoint), exactly as
    /// used for the connection: the server checks the signed host.
    pub host: &'a str,
    pub port: u16,
    /// The database user (IAM-enabled).
    pub username: &'a str,
    /// The database's region; the config's region when `None`.
    pub region: Option<&'a str>,
}

/// Signs an IAM authentication token. No network call is made, except that resolving
/// credentials may call the credentials provider (cached by the SDK after the first call).
pub async fn generate(config: &SdkConfig, request: &IamTokenRequest<'_>) -> Result<SecretString, AwsError> {
    validate_host("host", request.host)?;
    if request.port == 0 {
        return Err(InputError::invalid("port", "0 is not a port", "use the database or proxy port, e.g. 5432 or 3306").into());
    }
    validate_username("username", request.username)?;
    let region = match request.region {
        Some(region) => {
            crate::clients::validate_region("region", region)?;
            Region::new(region.to_owned())
        }
        None => config.region().cloned().ok_or_else(|| InputError::missing("region", "set the database's region (AWS_REGION or the request's region)"))?,
    };
    let signer_config = Config::builder()
        .hostname(request.host)
        .port(u64::from(request.port))
        .username(request.username)
        .region(region)
        .build()
        .map_err(|err| AwsError::new(ErrorClass::Internal, None, format!("IAM token: {err}")))?;
    let token = AuthTokenGenerator::new(signer_config).auth_token(config).await.map_err(|err| {
        AwsError::new(
            ErrorClass::Aws,
            None,
            format!("IAM token for {}: could not sign ({err}); check the function's credentials", dbcreds_core::sanitize::for_log(request.username)),
        )
    })?;
    // `AuthToken` offers only a borrowed str; this copy is the one that gets zeroised.
    Ok(SecretString::new(token.as_str().to_owned()))
}

/// A DNS name (or IPv4 address): letters, digits, dots and dashes. No port, scheme or path:
/// those belong elsewhere, and would change what is signed.
pub fn validate_host(field: &str, host: &str) -> Result<(), InputError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with(['.', '-'])
        && !host.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(InputError::invalid(
            field,
            format!("{} is not a host name", dbcreds_core::sanitize::for_log(host)),
            "use the endpoint's DNS name alone, without scheme, port or path",
        ))
    }
}

/// Characters that go into the token's query unescaped without changing its meaning. `+` is out:
/// some parsers read it as a space.
pub fn validate_username(field: &str, username: &str) -> Result<(), InputError> {
    let ok = !username.is_empty() && username.len() <= 128 && username.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.$@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InputError::invalid(
            field,
            format!("{} cannot be used for IAM authentication", dbcreds_core::sanitize::for_log(username)),
            "use a user name of letters, digits and _ . $ @ -",
        ))
    }
}

#[cfg(test)]
mod tests {
    //! The published vectors of /work/shared/reference/iam-auth.md, with frozen credentials and
    //! a frozen clock.
    use super::*;
    use aws_config::BehaviorVersion;
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_smithy_async::time::StaticTimeSource;
    use std::time::{Duration, UNIX_EPOCH};

    fn frozen(akid: &str, secret: &str, session_token: Option<&str>, epoch: u64, region: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(akid, secret, session_token.map(str::to_owned), None, "frozen")))
            .time_source(StaticTimeSource::new(UNIX_EPOCH + Duration::from_secs(epoch)))
            .region(Region::new(region.to_owned()))
            .build()
    }

    async fn token(config: &SdkConfig, host: &str, port: u16, username: &str) -> String {
        generate(config, &IamTokenRequest { host, port, username, region: None }).await.unwrap().expose().to_owned()
    }

    fn signature(token: &str) -> &str {
        let query = token.split_once("/?").expect("a query").1;
        query.split('&').find_map(|p| p.strip_prefix("X-Amz-Signature=")).expect("a signature")
    }

    /// The token minus its signature, as `name=value` pairs sorted by name, to compare what was
    /// signed regardless of the order an SDK writes the parameters in.
    fn sorted_params(token: &str) -> Vec<String> {
        let query = token.split_once("/?").expect("a query").1;
        let mut params: Vec<String> = query.split('&').filter(|p| !p.starts_with("X-Amz-Signature=")).map(str::to_owned).collect();
        params.sort();
        params
    }

    #[tokio::test]
    async fn aws_sdk_rust_vector_byte_for_byte() {
        let config = frozen("akid", "secret", None, 1_724_709_600, "us-east-1");
        assert_eq!(
            token(&config, "prod-instance.us-east-1.rds.amazonaws.com", 3306, "peccy").await,
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
        );
    }

    #[tokio::test]
    async fn botocore_vector() {
        // botocore writes the parameters in another order; the signature covers the sorted
        // query, so it must match exactly, and so must the set of parameters.
        let config = frozen("akid", "skid", None, 1_478_540_373, "us-east-1");
        let token = token(&config, "prod-instance.us-east-1.rds.amazonaws.com", 3306, "someusername").await;
        assert_eq!(signature(&token), "d1138cdbc0ca63eec012ec0fc6c2267e03642168f5884a7795320d4c18374c61");
        assert!(token.starts_with("prod-instance.us-east-1.rds.amazonaws.com:3306/?"), "{token}");
        assert_eq!(
            sorted_params(&token),
            [
                "Action=connect",
                "DBUser=someusername",
                "X-Amz-Algorithm=AWS4-HMAC-SHA256",
                "X-Amz-Credential=akid%2F20161107%2Fus-east-1%2Frds-db%2Faws4_request",
                "X-Amz-Date=20161107T173933Z",
                "X-Amz-Expires=900",
                "X-Amz-SignedHeaders=host",
            ]
        );
    }

    #[tokio::test]
    async fn aws_sdk_java_v2_vector() {
        let config = frozen("access_key", "secret_key", None, 1_478_540_373, "us-east-1");
        let token = token(&config, "host.us-east-1.amazonaws.com", 3306, "mySQLUser").await;
        assert_eq!(signature(&token), "87ab58107ef49f1c311a412f98b7f976b0b5152ffb559f0d36c6c9a0c5e0e362");
    }

    #[tokio::test]
    async fn session_token_vectors() {
        let config = frozen("IAMKEYINSTANCE", "asdfqwertypolly", Some("ZYX12345"), 1_537_372_962, "eu-west-1");
        let cluster = token(&config, "mysql-host-db.cluster-xxxxxxxxxx.eu-west-1.rds.amazonaws.com", 3306, "testuser").await;
        assert_eq!(signature(&cluster), "73f05d152c9ebecd66f44d213f1fb11037143fd01c688c087ab1a82a08ce6ee0");
        // The session token is part of the signed query (the signature above covers it; the SDK
        // writes it after the signature, botocore before).
        assert!(sorted_params(&cluster).contains(&"X-Amz-Security-Token=ZYX12345".to_owned()), "{cluster}");

        let instance = token(&config, "mydb.random.eu-west-1.rds.amazonaws.com", 3306, "iamuser").await;
        assert_eq!(signature(&instance), "e97dadda634d1efb530e381b8c5bccb10cf6ef824973cb28f44212cb2d6d24da");
    }

    #[tokio::test]
    async fn port_443_is_left_out_of_the_signed_host_as_botocore_does() {
        let config = frozen("akid", "secret", None, 1_724_709_600, "us-east-1");
        let token = token(&config, "proxy.proxy-abc.us-east-1.rds.amazonaws.com", 443, "app").await;
        assert!(token.starts_with("proxy.proxy-abc.us-east-1.rds.amazonaws.com/?Action=connect&DBUser=app&"), "{token}");
    }

    #[tokio::test]
    async fn the_token_is_redacted_and_the_region_is_the_request_s() {
        let config = frozen("akid", "secret", None, 1_724_709_600, "us-east-1");
        let token = generate(&config, &IamTokenRequest { host: "db.example.com", port: 5432, username: "app", region: Some("eu-central-1") }).await.unwrap();
        assert_eq!(format!("{token:?}"), dbcreds_core::sensitive::REDACTED);
        assert!(token.expose().contains("%2Feu-central-1%2Frds-db%2F"), "{}", token.expose());
    }

    #[tokio::test]
    async fn bad_inputs_are_named_and_nothing_is_signed() {
        let config = frozen("akid", "secret", None, 1_724_709_600, "us-east-1");
        let cases = [
            (IamTokenRequest { host: "db.example.com:5432", port: 5432, username: "app", region: None }, "host"),
            (IamTokenRequest { host: "https://db.example.com", port: 5432, username: "app", region: None }, "host"),
            (IamTokenRequest { host: "", port: 5432, username: "app", region: None }, "host"),
            (IamTokenRequest { host: "db.example.com", port: 0, username: "app", region: None }, "port"),
            (IamTokenRequest { host: "db.example.com", port: 5432, username: "app&Action=x", region: None }, "username"),
            (IamTokenRequest { host: "db.example.com", port: 5432, username: "a+b", region: None }, "username"),
            (IamTokenRequest { host: "db.example.com", port: 5432, username: "app", region: Some("EU") }, "region"),
        ];
        for (request, field) in cases {
            let err = generate(&config, &request).await.unwrap_err();
            assert_eq!(err.class, ErrorClass::Input, "{request:?}");
            assert!(err.message.starts_with(&format!("{field}:")), "{request:?}: {err}");
        }

        let no_region = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("akid", "secret", None, None, "frozen")))
            .time_source(StaticTimeSource::new(UNIX_EPOCH))
            .build();
        let err = generate(&no_region, &IamTokenRequest { host: "db.example.com", port: 5432, username: "app", region: None }).await.unwrap_err();
        assert!(err.message.starts_with("region:"), "{err}");
    }
}
