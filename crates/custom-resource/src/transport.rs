//! Delivering the response: an HTTP PUT to the presigned ResponseURL, retried with backoff.
//!
//! - HTTPS with rustls (aws-lc-rs, the stack the SDK uses), certificates verified against the
//!   system's roots: the URL points at S3, whose certificates chain to public roots.
//! - Plain http only to a loopback address (tests serve the URL locally); CloudFormation always
//!   sends https, so http anywhere else is refused rather than sent in the clear.
//! - The Content-Type header is sent empty: the URL is presigned without one, and S3 rejects a
//!   request whose Content-Type is not the one that was signed.
//! - Retries on connection failures, timeouts, 408, 429 and 5xx, with exponential backoff, until
//!   the attempts or the time run out. A lost response is a stack that hangs for an hour.

use crate::request::ResponseUrl;
use bytes::Bytes;
use dbcreds_core::sanitize::field as clean;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How hard to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// One attempt: connect, send, and read the status.
    pub attempt_timeout: Duration,
}

impl RetryPolicy {
    /// Six attempts over about 8 s of backoff: enough to ride out a blip, short enough to fit in
    /// the reserve the function keeps for answering.
    pub const DEFAULT: RetryPolicy =
        RetryPolicy { attempts: 6, first_backoff: Duration::from_millis(250), max_backoff: Duration::from_secs(4), attempt_timeout: Duration::from_secs(10) };

    fn backoff(&self, failed_attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempts.saturating_sub(1));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A response that reached the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub attempts: u32,
    pub status: u16,
}

/// A response that could not be delivered, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the response could not be delivered after {attempts} attempt(s): {last_error}")]
pub struct DeliveryError {
    pub attempts: u32,
    pub last_error: String,
}

/// The HTTP client for responses. Build it once per cold start.
#[derive(Clone)]
pub struct ResponseSender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for ResponseSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseSender").field("retry", &self.retry).finish_non_exhaustive()
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the HTTPS client for CloudFormation responses could not be built: {0}")]
pub struct SenderError(String);

impl ResponseSender {
    /// Verifies server certificates against the system's roots (as rustls-native-certs reads them).
    pub fn from_system_roots() -> Result<Self, SenderError> {
        let native = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
        Self::from_roots(roots)
    }

    /// Verifies server certificates against `roots`, which must not be empty, with the default retries.
    pub fn from_roots(roots: rustls::RootCertStore) -> Result<Self, SenderError> {
        if roots.is_empty() {
            return Err(SenderError("no system root certificate could be loaded (is the CA bundle installed?)".into()));
        }
        Self::with_roots(roots, RetryPolicy::DEFAULT)
    }

    pub fn with_roots(roots: rustls::RootCertStore, retry: RetryPolicy) -> Result<Self, SenderError> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| SenderError(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        http.set_nodelay(true);
        // http is allowed by the connector so tests can use a loopback server; `send` refuses
        // http to any other host before a connection is made.
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(Self { client, retry })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// PUTs `body` to `url`, retrying until it is accepted, the attempts run out, or `deadline`.
    pub async fn send(&self, url: &ResponseUrl, body: Vec<u8>, deadline: Instant) -> Result<Delivery, DeliveryError> {
        let uri: http::Uri = url.expose().parse().map_err(|_| DeliveryError { attempts: 0, last_error: "the ResponseURL is not a URL".into() })?;
        check_scheme(&uri).map_err(|last_error| DeliveryError { attempts: 0, last_error })?;
        let body = Bytes::from(body);
        let mut attempts = 0;
        let mut last_error = String::from("no attempt could be made before the deadline");
        while attempts < self.retry.attempts {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            attempts += 1;
            let limit = (now + self.retry.attempt_timeout).min(deadline);
            match tokio::time::timeout_at(limit, self.attempt(&uri, body.clone())).await {
                Ok(Ok((status, _))) if (200..300).contains(&status) => return Ok(Delivery { attempts, status }),
                Ok(Ok((status, code))) => {
                    last_error = match code {
                        Some(code) => format!("HTTP {status} ({code})"),
                        None => format!("HTTP {status}"),
                    };
                    if !is_retryable_status(status) {
                        return Err(DeliveryError { attempts, last_error: format!("{last_error}, which a retry cannot fix (an expired or altered presigned URL)") });
                    }
                }
                Ok(Err(err)) => last_error = err,
                Err(_) => last_error = "the attempt timed out".into(),
            }
            tracing::warn!(step = "respond", attempt = attempts, url = %url, error = %last_error, "response not delivered, retrying");
            let pause = self.retry.backoff(attempts);
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        Err(DeliveryError { attempts, last_error })
    }

    /// One PUT: the status and, on an error, S3's error code.
    async fn attempt(&self, uri: &http::Uri, body: Bytes) -> Result<(u16, Option<String>), String> {
        let request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(uri.clone())
            .header(http::header::CONTENT_TYPE, "")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|err| format!("the request could not be built: {err}"))?;
        let response = self.client.request(request).await.map_err(|err| describe_client_error(&err))?;
        let status = response.status().as_u16();
        // Read (a bounded amount of) the body so the connection can be reused, and keep S3's
        // error code for the log.
        let collected = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let code = if (200..300).contains(&status) {
            None
        } else {
            let text = String::from_utf8_lossy(&collected[..collected.len().min(512)]).into_owned();
            s3_error_code(&text).map(clean)
        };
        Ok((status, code))
    }
}

fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// https anywhere; http only to a loopback address.
fn check_scheme(uri: &http::Uri) -> Result<(), String> {
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!("refusing to send the response over plain http to {}: CloudFormation's ResponseURL is https (http is allowed only to a loopback address, for tests)", clean(host)))
            }
        }
        _ => Err("the ResponseURL is not an http(s) URL".into()),
    }
}

fn describe_client_error(err: &hyper_util::client::legacy::Error) -> String {
    // The chain says what failed (DNS, connect, TLS verification); it never holds the URL's query.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    clean(&text)
}

fn s3_error_code(xml: &str) -> Option<&str> {
    let start = xml.find("<Code>")? + "<Code>".len();
    let end = xml[start..].find("</Code>")? + start;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_allowed_only_to_loopback() {
        for ok in ["https://bucket.s3.amazonaws.com/x", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x", "http://127.1.2.3/x"] {
            assert!(check_scheme(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["http://bucket.s3.amazonaws.com/x", "http://10.0.0.1/x", "http://localhost.evil.com/x"] {
            let err = check_scheme(&bad.parse().unwrap()).unwrap_err();
            assert!(err.contains("plain http"), "{bad}: {err}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::DEFAULT;
        assert_eq!(policy.backoff(1), Duration::from_millis(250));
        assert_eq!(policy.backoff(2), Duration::from_millis(500));
        assert_eq!(policy.backoff(10), Duration::from_secs(4));
    }

    #[test]
    fn s3_codes_are_read_from_the_error_document() {
        assert_eq!(s3_error_code("<Error><Code>SlowDown</Code><Message>x</Message></Error>"), Some("SlowDown"));
        assert_eq!(s3_error_code("nothing"), None);
    }
}
