//! moto's IAM, for tests of permissions: IAM calls (users, access keys, policies, roles) and the
//! switch that makes moto enforce IAM policies on every request.
//!
//! The calls are plain HTTP and unsigned: moto routes a query-protocol request by the credential
//! scope of its Authorization header and checks signatures only once enforcement is on.

use crate::Moto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One IAM call (query protocol, `Action` among `params`); returns moto's XML answer.
pub async fn iam(moto: &Moto, params: &[(&str, &str)]) -> String {
    let mut body = String::from("Version=2010-05-08");
    for (key, value) in params {
        body.push('&');
        body.push_str(key);
        body.push('=');
        body.push_str(&form_encode(value));
    }
    let authorization = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
    post(moto, "/", &[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Authorization", authorization)], &body).await
}

/// A new IAM user and an access key for it: `(access key id, secret access key)`.
pub async fn user_with_key(moto: &Moto, user: &str) -> (String, String) {
    iam(moto, &[("Action", "CreateUser"), ("UserName", user)]).await;
    let answer = iam(moto, &[("Action", "CreateAccessKey"), ("UserName", user)]).await;
    (xml_value(&answer, "AccessKeyId"), xml_value(&answer, "SecretAccessKey"))
}

/// Switches moto's IAM enforcement on or off, for the whole moto server. While it is on, every
/// request must be signed by a user moto knows and is checked against that user's policies.
pub async fn set_iam_enforcement(moto: &Moto, on: bool) {
    // A raw body: with a form content type moto's handler would find no data.
    let reply = post(moto, "/moto-api/reset-auth", &[("Content-Type", "application/octet-stream")], if on { "0" } else { "inf" }).await;
    assert!(reply.contains("\"ok\""), "moto did not switch IAM enforcement: {reply}");
}

/// The text between `<tag>` and `</tag>` in an XML answer.
pub fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in the answer")) + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).expect("closing tag") + start;
    xml[start..end].to_owned()
}

pub(crate) async fn post(moto: &Moto, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let authority = format!("127.0.0.1:{}", moto.port());
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
    let status_ok = reply.starts_with("HTTP/1.1 2") || reply.starts_with("HTTP/1.0 2");
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
