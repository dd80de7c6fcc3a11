//! Shared by the moto tests: a moto server, clients pointed at it, unique names, and the few IAM
//! calls needed to make moto deny something (sent as raw form posts: the crate has no IAM SDK,
//! and adding one only for fixtures would cost more build time than these forty lines).
#![allow(dead_code)]

use dbcreds_aws::AwsClients;
use dbcreds_testenv::Moto;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn moto() -> Moto {
    Moto::start().await
}

pub async fn clients(moto: &Moto) -> AwsClients {
    AwsClients::from_sdk_config(moto.sdk_config().await, None).expect("clients for moto")
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A ClientRequestToken (32 to 64 characters).
pub fn version_token(tag: &str) -> String {
    let token = format!("{:0>40}", unique(tag));
    token[token.len().saturating_sub(64)..].to_owned()
}

/// Creates a secret with one version (AWSCURRENT) through the SDK directly, so the code under
/// test is not its own fixture. Returns (ARN, VersionId).
pub async fn create_secret(clients: &AwsClients, name: &str, value: &str, tags: &[(&str, &str)]) -> (String, String) {
    let version = version_token("v1");
    let mut request = clients.secrets.create_secret().name(name).secret_string(value).client_request_token(&version);
    for (key, tag_value) in tags {
        request = request.tags(aws_sdk_secretsmanager::types::Tag::builder().key(*key).value(*tag_value).build());
    }
    let output = request.send().await.expect("CreateSecret on moto");
    (output.arn.expect("ARN"), output.version_id.expect("VersionId"))
}

/// An IAM (query protocol) call to moto, unsigned: moto checks signatures only once IAM
/// authentication is switched on, and routes by the credential scope of the Authorization header.
pub async fn iam(moto: &Moto, params: &[(&str, &str)]) -> String {
    let mut body = String::from("Version=2010-05-08");
    for (key, value) in params {
        body.push('&');
        body.push_str(key);
        body.push('=');
        body.push_str(&form_encode(value));
    }
    post(
        moto,
        "/",
        &[
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"),
        ],
        &body,
    )
    .await
}

/// A new IAM user with one inline policy, and clients that act as it. The policy matters only
/// while IAM enforcement is on ([`set_iam_enforcement`]). Returns the user name and the clients.
pub async fn iam_user(moto: &Moto, policy: &str) -> (String, AwsClients) {
    let user = unique("user");
    iam(moto, &[("Action", "CreateUser"), ("UserName", &user)]).await;
    iam(moto, &[("Action", "PutUserPolicy"), ("UserName", &user), ("PolicyName", "test-policy"), ("PolicyDocument", policy)]).await;
    let key = iam(moto, &[("Action", "CreateAccessKey"), ("UserName", &user)]).await;
    let credentials = aws_credential_types::Credentials::new(xml_value(&key, "AccessKeyId"), xml_value(&key, "SecretAccessKey"), None, None, "moto-user");
    let mut config = moto.sdk_config().await.to_builder();
    config.set_credentials_provider(Some(aws_credential_types::provider::SharedCredentialsProvider::new(credentials)));
    (user, AwsClients::from_sdk_config(config.build(), None).expect("clients for the user"))
}

/// Switches moto's IAM enforcement on (`Some(0)`) or off (`None`), for the whole moto server.
pub async fn set_iam_enforcement(moto: &Moto, on: bool) {
    let reply = post(moto, "/moto-api/reset-auth", &[], if on { "0" } else { "inf" }).await;
    assert!(reply.contains("\"ok\""), "{reply}");
}

/// The text between `<tag>` and `</tag>` in an XML reply.
pub fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in the reply")) + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).expect("closing tag") + start;
    xml[start..end].to_owned()
}

async fn post(moto: &Moto, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let endpoint = moto.endpoint();
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut stream = tokio::net::TcpStream::connect(&authority).await.expect("connect to moto");
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send to moto");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read from moto");
    let status_ok = reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200");
    assert!(status_ok, "moto answered {path} with {}", reply.lines().next().unwrap_or_default());
    reply
}

fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

