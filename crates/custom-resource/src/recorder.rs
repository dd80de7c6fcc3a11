//! A stand-in for CloudFormation's presigned S3 URL: a small HTTP/1.1 server on loopback that
//! records every request and answers with scripted statuses. For the tests and the local demo,
//! which serve the `ResponseURL` themselves (the responder allows plain http to loopback only).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Bigger requests are cut off: CloudFormation's limit is 4096 bytes, so anything past this is a
/// bug the recorded length shows anyway.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// One recorded request.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case with their values, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON. Panics (with the body) when it is not, which is a failed test.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("the body is not JSON ({err}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// The server. Dropping it stops accepting connections.
pub struct ResponseRecorder {
    port: u16,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    script: Arc<Mutex<std::vec::IntoIter<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ResponseRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ResponseRecorder {
    /// Starts on a free loopback port. Requests get the statuses of `script` in turn, then 200.
    pub async fn start(script: Vec<u16>) -> std::io::Result<ResponseRecorder> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let requests: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let (log, statuses) = (Arc::clone(&requests), Arc::clone(&script));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, statuses) = (Arc::clone(&log), Arc::clone(&statuses));
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(30), serve(stream, log, statuses)).await;
                });
            }
        });
        Ok(ResponseRecorder { port, requests, script, task })
    }

    /// A URL shaped like CloudFormation's (a path and a signature in the query) on this server.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/cloudformation-custom-resource-response/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0123456789abcdef", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The requests whose path starts with `/cloudformation-custom-resource-response/<name>?`.
    pub fn requests_for(&self, name: &str) -> Vec<RecordedRequest> {
        let prefix = format!("/cloudformation-custom-resource-response/{name}?");
        self.requests().into_iter().filter(|r| r.target.starts_with(&prefix)).collect()
    }

    /// Adds statuses to answer with before falling back to 200.
    pub fn push_script(&self, statuses: Vec<u16>) {
        let mut script = self.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rest: Vec<u16> = script.by_ref().collect();
        *script = rest.into_iter().chain(statuses).collect::<Vec<_>>().into_iter();
    }
}

async fn serve(mut stream: tokio::net::TcpStream, log: Arc<Mutex<Vec<RecordedRequest>>>, statuses: Arc<Mutex<std::vec::IntoIter<u16>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buffer.len() > MAX_REQUEST_BYTES {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let length: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0).min(MAX_REQUEST_BYTES);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(RecordedRequest { method, target, headers, body });
    let status = statuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next().unwrap_or(200);
    let reply = format!("HTTP/1.1 {status} Recorded\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
