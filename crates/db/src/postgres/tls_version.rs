//! Learning the negotiated TLS version without reaching into the TLS stream.
//!
//! `tokio-postgres-rustls` keeps its rustls session private, and asking the server
//! (`pg_stat_ssl`) is wrong through RDS Proxy, where the server sees the proxy's connection, not
//! ours. So the TLS connector is wrapped: the stream handed to rustls is wrapped in a reader that
//! watches the server's first bytes, which carry the ServerHello in plaintext in every TLS
//! version, and records the version the server selected (the `supported_versions` extension in
//! TLS 1.3, `legacy_version` before). Only those first bytes are parsed; after that the wrapper
//! is a plain pass-through.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::TlsConnect;

/// Where the version is recorded, shared between the connector and the session.
pub type VersionSlot = Arc<OnceLock<&'static str>>;

/// The ServerHello fits well within this; past it we stop looking.
const MAX_SNIFF: usize = 4096;

/// What the parser concluded from the bytes seen so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    NeedMore,
    /// Done: `None` when the bytes are not a ServerHello we understand.
    Version(Option<&'static str>),
}

/// Names as OpenSSL and `pg_stat_ssl.version` spell them.
fn version_name(code: u16) -> Option<&'static str> {
    match code {
        0x0304 => Some("TLSv1.3"),
        0x0303 => Some("TLSv1.2"),
        0x0302 => Some("TLSv1.1"),
        0x0301 => Some("TLSv1"),
        _ => None,
    }
}

/// Parses the start of the server's TLS byte stream.
pub fn parse_server_hello(bytes: &[u8]) -> Sniffed {
    // Record header: type (22 = handshake), version, length.
    if bytes.len() < 5 {
        return Sniffed::NeedMore;
    }
    if bytes[0] != 22 {
        return Sniffed::Version(None);
    }
    let record_len = u16::from_be_bytes([bytes[3], bytes[4]]) as usize;
    // Handshake header: type (2 = ServerHello), 24-bit length.
    if bytes.len() < 9 {
        return Sniffed::NeedMore;
    }
    if bytes[5] != 2 {
        return Sniffed::Version(None);
    }
    let hello_len = u32::from_be_bytes([0, bytes[6], bytes[7], bytes[8]]) as usize;
    if hello_len + 4 > record_len || 9 + hello_len > MAX_SNIFF {
        return Sniffed::Version(None);
    }
    if bytes.len() < 9 + hello_len {
        return Sniffed::NeedMore;
    }
    Sniffed::Version(parse_hello_body(&bytes[9..9 + hello_len]))
}

fn parse_hello_body(body: &[u8]) -> Option<&'static str> {
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let slice = body.get(*at..*at + n)?;
        *at += n;
        Some(slice)
    };
    let legacy = take(&mut at, 2)?;
    let legacy_version = u16::from_be_bytes([legacy[0], legacy[1]]);
    take(&mut at, 32)?; // random
    let session_id_len = take(&mut at, 1)?[0] as usize;
    take(&mut at, session_id_len)?;
    take(&mut at, 2)?; // cipher suite
    take(&mut at, 1)?; // compression
    if at == body.len() {
        return version_name(legacy_version);
    }
    let ext_len = take(&mut at, 2)?;
    let ext_end = at + u16::from_be_bytes([ext_len[0], ext_len[1]]) as usize;
    while at + 4 <= ext_end {
        let header = take(&mut at, 4)?;
        let ext_type = u16::from_be_bytes([header[0], header[1]]);
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let data = take(&mut at, len)?;
        if ext_type == 0x002b && len == 2 {
            return version_name(u16::from_be_bytes([data[0], data[1]]));
        }
    }
    version_name(legacy_version)
}

/// A stream that records the TLS version from the server's first bytes.
pub struct HelloSniffer<S> {
    inner: S,
    seen: Vec<u8>,
    done: bool,
    slot: VersionSlot,
}

impl<S> HelloSniffer<S> {
    pub fn new(inner: S, slot: VersionSlot) -> Self {
        Self { inner, seen: Vec::new(), done: false, slot }
    }

    fn observe(&mut self, fresh: &[u8]) {
        if self.done || fresh.is_empty() {
            return;
        }
        let room = MAX_SNIFF.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&fresh[..fresh.len().min(room)]);
        match parse_server_hello(&self.seen) {
            Sniffed::NeedMore if self.seen.len() < MAX_SNIFF => {}
            Sniffed::NeedMore | Sniffed::Version(None) => self.finish(None),
            Sniffed::Version(Some(version)) => self.finish(Some(version)),
        }
    }

    fn finish(&mut self, version: Option<&'static str>) {
        if let Some(version) = version {
            let _ = self.slot.set(version);
        }
        self.done = true;
        self.seen = Vec::new();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HelloSniffer<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled
            && !self.done
        {
            let fresh = buf.filled()[before..].to_vec();
            self.observe(&fresh);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HelloSniffer<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Wraps a TLS connector so the stream it handshakes over is a [`HelloSniffer`].
pub struct RecordingConnect<T> {
    pub inner: T,
    pub slot: VersionSlot,
}

impl<S, T> TlsConnect<S> for RecordingConnect<T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: TlsConnect<HelloSniffer<S>>,
{
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = T::Future;

    fn connect(self, stream: S) -> Self::Future {
        self.inner.connect(HelloSniffer::new(stream, self.slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ServerHello record with the given legacy version and optional supported_versions.
    fn hello(legacy: u16, supported: Option<u16>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&legacy.to_be_bytes());
        body.extend_from_slice(&[7u8; 32]);
        body.push(32);
        body.extend_from_slice(&[9u8; 32]);
        body.extend_from_slice(&[0x13, 0x01]);
        body.push(0);
        let mut exts = Vec::new();
        exts.extend_from_slice(&[0x00, 0x33, 0x00, 0x02, 0xaa, 0xbb]); // key_share-ish filler
        if let Some(version) = supported {
            exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x02]);
            exts.extend_from_slice(&version.to_be_bytes());
        }
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut handshake = vec![2u8];
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        let mut record = vec![22u8, 0x03, 0x03];
        record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        record.extend_from_slice(&handshake);
        record
    }

    #[test]
    fn reads_tls13_from_supported_versions_and_tls12_from_legacy() {
        assert_eq!(parse_server_hello(&hello(0x0303, Some(0x0304))), Sniffed::Version(Some("TLSv1.3")));
        assert_eq!(parse_server_hello(&hello(0x0303, None)), Sniffed::Version(Some("TLSv1.2")));
    }

    #[test]
    fn waits_for_the_whole_hello_and_gives_up_on_other_bytes() {
        let record = hello(0x0303, Some(0x0304));
        for cut in [0, 3, 8, record.len() - 1] {
            assert_eq!(parse_server_hello(&record[..cut]), Sniffed::NeedMore, "{cut}");
        }
        assert_eq!(parse_server_hello(b"\x15\x03\x03\x00\x02\x02\x28"), Sniffed::Version(None)); // an alert
        assert_eq!(parse_server_hello(b"E\x00\x00\x00\x10SFATAL"), Sniffed::Version(None)); // a PG error
    }

    #[tokio::test]
    async fn the_sniffer_records_across_split_reads_and_passes_bytes_through() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let record = hello(0x0303, Some(0x0304));
        let (mut server, client) = tokio::io::duplex(64);
        let slot: VersionSlot = Arc::default();
        let mut sniffer = HelloSniffer::new(client, slot.clone());
        let sent = record.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(7) {
                server.write_all(chunk).await.unwrap();
            }
            server
        });
        let mut received = vec![0u8; record.len()];
        sniffer.read_exact(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(received, record);
        assert_eq!(slot.get(), Some(&"TLSv1.3"));
    }
}
