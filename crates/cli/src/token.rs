//! `dbcreds token`: an RDS IAM authentication token, like `aws rds generate-db-auth-token`.
//!
//! Signed by `dbcreds_aws::iam_token` (AWS's Rust SDK signer, with the inputs checked first) with
//! the standard credentials chain. The SDK writes `X-Amz-Security-Token` after the signature and
//! botocore before it; the signature covers the sorted query either way, so the parameters are
//! put in botocore's order (sorted, the signature last) and the output is byte for byte what
//! `aws rds generate-db-auth-token` prints for the same credentials and time. This is the one
//! place dbcreds prints a credential: the token is what was asked for.

use crate::GlobalArgs;
use crate::exit::{CliError, Status};
use crate::output::Report;
use aws_config::SdkConfig;
use aws_smithy_async::time::StaticTimeSource;
use dbcreds_aws::iam_token::{self, IamTokenRequest};
use dbcreds_core::SecretString;
use std::time::{Duration, UNIX_EPOCH};

/// How long a token is valid (the signer's fixed `X-Amz-Expires`).
pub const VALID_FOR_SECONDS: u64 = 900;

#[derive(clap::Args, Debug)]
#[command(
    about = "Print an RDS IAM authentication token, like `aws rds generate-db-auth-token`",
    long_about = "Print an RDS IAM authentication token for a database user, like `aws rds generate-db-auth-token`: \
                  the same inputs, and byte for byte the same output for the same credentials and time. The token is \
                  signed here (no network call, apart from resolving credentials), with the standard credentials chain \
                  (AWS_PROFILE / --profile, AWS_ACCESS_KEY_ID..., SSO, instance roles), and is valid for 15 minutes. \
                  Use it as the password, over TLS, for an IAM-enabled user (MySQL: the mysql_clear_password plugin).\n\n\
                  Example:\n  PGPASSWORD=\"$(dbcreds token --hostname db.xxxx.eu-west-1.rds.amazonaws.com --port 5432 --username app_iam --region eu-west-1)\" \\\n    psql \"host=db.xxxx.eu-west-1.rds.amazonaws.com user=app_iam dbname=app sslmode=verify-full\""
)]
pub struct Args {
    /// The endpoint the client connects to (instance, cluster or RDS Proxy endpoint), exactly as used for the connection
    #[arg(long, value_name = "HOST")]
    pub hostname: String,
    /// The port the client connects to
    #[arg(long)]
    pub port: u16,
    /// The IAM-enabled database user
    #[arg(long, value_name = "USER")]
    pub username: String,
    /// The database's region (default: the configured region)
    #[arg(long)]
    pub region: Option<String>,
    /// Sign as of this time, in seconds since the Unix epoch, instead of now (to reproduce a token)
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub signing_time: Option<u64>,
}

#[derive(serde::Serialize)]
struct TokenReport<'a> {
    token: &'a str,
    hostname: &'a str,
    port: u16,
    username: &'a str,
    region: &'a str,
    expires_in_seconds: u64,
}

pub async fn run(args: Args, global: &GlobalArgs) -> Result<Report, CliError> {
    let clients = crate::toolkit::aws_clients(global, args.region.as_deref()).await?;
    let token = sign(&clients.config, &args).await?;
    let region = args.region.clone().unwrap_or_else(|| clients.region().to_owned());
    let data = TokenReport { token: token.expose(), hostname: &args.hostname, port: args.port, username: &args.username, region: &region, expires_in_seconds: VALID_FOR_SECONDS };
    Ok(Report::new(Status::Ok, &data, token.expose().to_owned()))
}

/// The token, in botocore's parameter order.
pub async fn sign(config: &SdkConfig, args: &Args) -> Result<SecretString, CliError> {
    let config = match args.signing_time {
        Some(seconds) => config.to_builder().time_source(StaticTimeSource::new(UNIX_EPOCH + Duration::from_secs(seconds))).build(),
        None => config.clone(),
    };
    let request = IamTokenRequest { host: &args.hostname, port: args.port, username: &args.username, region: args.region.as_deref() };
    let token = iam_token::generate(&config, &request).await?;
    Ok(botocore_order(&token, &args.hostname, args.port))
}

/// The same token as botocore writes it: `host:port` (botocore keeps `:443`, which the SDK leaves
/// out; the signed host is the same either way), then the signed parameters sorted by name, the
/// session token (when there is one), and the signature, which covers the sorted query.
fn botocore_order(token: &SecretString, host: &str, port: u16) -> SecretString {
    let Some((_, query)) = token.expose().split_once("/?") else { return token.clone() };
    let endpoint = format!("{host}:{port}");
    let mut params: Vec<&str> = query.split('&').collect();
    let mut take = |prefix: &str| params.iter().position(|p| p.starts_with(prefix)).map(|i| params.remove(i));
    let (session_token, signature) = (take("X-Amz-Security-Token="), take("X-Amz-Signature="));
    params.sort_by_key(|p| p.split_once('=').map_or(*p, |(name, _)| name));
    params.extend(session_token);
    params.extend(signature);
    SecretString::new(format!("{endpoint}/?{}", params.join("&")))
}

#[cfg(test)]
mod tests {
    //! botocore's own output for frozen credentials and time (botocore 1.44,
    //! `generate_db_auth_token` with `botocore.auth.get_current_datetime` patched), byte for byte.
    use super::*;
    use aws_config::{BehaviorVersion, Region};
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;

    const BOTOCORE: &str = "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=someusername&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20161107%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20161107T173933Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=d1138cdbc0ca63eec012ec0fc6c2267e03642168f5884a7795320d4c18374c61";
    const BOTOCORE_SESSION: &str = "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=someusername&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20161107%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20161107T173933Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok&X-Amz-Signature=1180ddb67ef791e8daff9ed421d95f20f7f1316ac42c97eae9f2d664dfe890a0";

    fn config(session_token: Option<&str>) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("akid", "skid", session_token.map(str::to_owned), None, "frozen")))
            .region(Region::new("us-east-1"))
            .build()
    }

    fn args() -> Args {
        Args { hostname: "prod-instance.us-east-1.rds.amazonaws.com".into(), port: 3306, username: "someusername".into(), region: None, signing_time: Some(1_478_540_373) }
    }

    #[tokio::test]
    async fn the_token_is_botocores_byte_for_byte() {
        assert_eq!(sign(&config(None), &args()).await.unwrap().expose(), BOTOCORE);
        assert_eq!(sign(&config(Some("tok")), &args()).await.unwrap().expose(), BOTOCORE_SESSION);
    }

    #[tokio::test]
    async fn bad_inputs_are_refused_by_name() {
        let mut bad = args();
        bad.hostname = "db.example.com:3306".into();
        let err = sign(&config(None), &bad).await.unwrap_err();
        assert_eq!(err.class, dbcreds_core::ErrorClass::Input);
        assert!(err.message.starts_with("host:"), "{err}");
    }
}
