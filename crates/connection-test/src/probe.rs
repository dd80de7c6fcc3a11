//! The function's own look at the network when a login fails below the server's answer or is
//! slow (see `login`): TCP, and the protocol's TLS negotiation, each on its own clock, so a
//! failure names its layer precisely. DNS is resolved here for every check (no connection).
//!
//! A driver reports "could not connect" for an unknown host, a dropped SYN, a refused port and
//! an untrusted certificate alike, or at best with a message that differs by driver. Probing
//! each layer ourselves gives one classification for both engines:
//! - **DNS**: resolve with the system resolver, as the driver will.
//! - **TCP**: connect to each address in turn. A refusal is immediate, so a closed IPv6 address
//!   does not hide a working IPv4 one; a timeout means the packets are dropped.
//! - **TLS**: speak the engine's opening (PostgreSQL's `SSLRequest`; MySQL's server greeting and
//!   the client's SSL request packet), then do the TLS handshake with the same trust store and
//!   host-name check the drivers use. This tells an untrusted CA from a name mismatch (and
//!   lists the names the certificate carries), and tells a server that stalls after accepting
//!   the TCP connection from one that drops packets.
//!
//! The probe connection is then closed without logging in. On MySQL this counts as one
//! interrupted connection toward `max_connect_errors` (documented in docs/connection-test.md);
//! a successful login clears the count. A check whose login succeeds at once never probes.

use crate::report::Failure;
use crate::report::Phase;
use dbcreds_core::sanitize::for_log;
use dbcreds_core::{EngineFamily, ErrorClass};
use dbcreds_db::{DbError, TrustStore};
use rustls::pki_types::ServerName;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Resolves `host` as the driver will. An IP literal resolves to itself.
pub async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Failure> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout_at(deadline, lookup).await {
        Ok(Ok(addresses)) => {
            let mut unique: Vec<SocketAddr> = Vec::new();
            for address in addresses {
                if !unique.contains(&address) {
                    unique.push(address);
                }
            }
            if unique.is_empty() {
                return Err(Failure::new(Phase::Dns, ErrorClass::Dns, format!("{} resolved to no address", for_log(host))));
            }
            Ok(unique)
        }
        Ok(Err(err)) => Err(Failure::new(Phase::Dns, ErrorClass::Dns, format!("{} does not resolve: {err}", for_log(host)))),
        Err(_) => Err(Failure::new(Phase::Dns, ErrorClass::Dns, format!("resolving {} did not finish before the phase deadline", for_log(host)))
            .with_hint("the resolver did not answer: check the VPC's DNS resolution setting (enableDnsSupport), Route 53 Resolver rules and any DNS firewall")),
    }
}

/// Connects to the first address that accepts. Every address is tried in order with the time
/// that is left; refusals and unreachable routes fail fast, a dropped SYN uses up the deadline.
pub async fn connect_tcp(addresses: &[SocketAddr], deadline: Instant) -> Result<(TcpStream, SocketAddr), Failure> {
    let mut outcomes: Vec<(SocketAddr, io::ErrorKind, String)> = Vec::new();
    for &address in addresses {
        match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, address));
            }
            Ok(Err(err)) => outcomes.push((address, err.kind(), err.to_string())),
            Err(_) => outcomes.push((address, io::ErrorKind::TimedOut, "no answer before the phase deadline".into())),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let summary = outcomes.iter().map(|(address, _, what)| format!("{address}: {what}")).collect::<Vec<_>>().join("; ");
    let kinds: Vec<io::ErrorKind> = outcomes.iter().map(|(_, kind, _)| *kind).collect();
    let failure = if kinds.contains(&io::ErrorKind::TimedOut) {
        Failure::new(Phase::Tcp, ErrorClass::TcpTimeout, format!("TCP connect timed out ({summary})"))
    } else if kinds.iter().all(|kind| *kind == io::ErrorKind::ConnectionRefused) && !kinds.is_empty() {
        Failure::new(Phase::Tcp, ErrorClass::ConnectionRefused, format!("TCP connection refused ({summary})"))
    } else if kinds.iter().any(|kind| matches!(kind, io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable)) {
        Failure::new(Phase::Tcp, ErrorClass::TcpTimeout, format!("no route to the database ({summary})"))
            .with_hint("no route: check the function's subnets' route tables reach the database's VPC (peering, Transit Gateway, or the shared proxy endpoint's subnets), and the NACLs")
    } else {
        Failure::new(Phase::Tcp, ErrorClass::ConnectionLost, format!("TCP connect failed ({summary})"))
    };
    Err(failure)
}

/// What the TLS probe learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsProbe {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The MySQL greeting's server version (PostgreSQL tells it only after login).
    pub server_version: Option<String>,
}

/// Negotiates TLS the way `family`'s protocol does and completes a verified handshake, then
/// closes the connection politely.
pub async fn negotiate_tls(family: EngineFamily, mut stream: TcpStream, host: &str, trust: &TrustStore, deadline: Instant) -> Result<TlsProbe, Failure> {
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| Failure::new(Phase::Tls, ErrorClass::Input, format!("{} cannot be checked against a certificate", for_log(host))))?;
    let opening = async {
        match family {
            EngineFamily::Postgres => postgres_ssl_request(&mut stream).await.map(|()| None),
            EngineFamily::MySql => mysql_ssl_request(&mut stream).await.map(Some),
        }
    };
    let server_version = match tokio::time::timeout_at(deadline, opening).await {
        Ok(Ok(version)) => version,
        Ok(Err(failure)) => return Err(failure),
        Err(_) => return Err(stalled(family, "did not answer the protocol's opening")),
    };
    let connector = tokio_rustls::TlsConnector::from(trust.client_config());
    let mut tls = match tokio::time::timeout_at(deadline, connector.connect(server_name, stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => return Err(classify_handshake_error(&err, host, trust)),
        Err(_) => return Err(stalled(family, "stopped answering during the TLS handshake")),
    };
    let version = match tls.get_ref().1.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_owned(),
    };
    // close_notify, best effort: the server logs an aborted connection either way.
    let _ = tokio::time::timeout(Duration::from_millis(200), tls.shutdown()).await;
    Ok(TlsProbe { version, server_version })
}

fn stalled(family: EngineFamily, what: &str) -> Failure {
    Failure::new(Phase::Tls, ErrorClass::TcpTimeout, format!("the TCP connection opened but the server {what} before the phase deadline"))
        .with_hint(format!(
            "the port accepts connections but does not speak {family} TLS in time: check DB_PORT and DB_ENGINE name the database's port and engine, \
             that the database or proxy is healthy (RDS Proxy: its target group's health), and for large packets being dropped on the path \
             (MTU: ICMP 'fragmentation needed' blocked by a NACL or firewall)"
        ))
}

/// PostgreSQL: `SSLRequest` (length 8, code 80877103), answered with `S` or `N`.
async fn postgres_ssl_request(stream: &mut TcpStream) -> Result<(), Failure> {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    stream.write_all(&SSL_REQUEST).await.map_err(|err| lost(&err))?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(|err| lost(&err))?;
    match answer[0] {
        b'S' => Ok(()),
        b'N' => Err(Failure::new(Phase::Tls, ErrorClass::TlsUnavailable, "the PostgreSQL server does not offer TLS (it answered N to the SSL request)")),
        other => Err(not_the_engine(EngineFamily::Postgres, &format!("it answered the SSL request with byte 0x{other:02x}"))),
    }
}

const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
/// utf8mb4_general_ci: understood by every MySQL and MariaDB that speaks TLS 1.2.
const CHARSET_UTF8MB4: u8 = 45;

/// MySQL: read the server's greeting (protocol 10), check it offers TLS, and send the 32-byte
/// SSL request packet that precedes the handshake. Returns the greeting's server version.
async fn mysql_ssl_request(stream: &mut TcpStream) -> Result<String, Failure> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.map_err(|err| lost(&err))?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if length == 0 || length > 64 * 1024 {
        return Err(not_the_engine(EngineFamily::MySql, &format!("its first packet claims {length} bytes")));
    }
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.map_err(|err| lost(&err))?;
    let greeting = parse_mysql_greeting(&payload)?;
    if greeting.capabilities & CLIENT_SSL == 0 {
        return Err(Failure::new(
            Phase::Tls,
            ErrorClass::TlsUnavailable,
            format!("the MySQL server {} does not offer TLS (no CLIENT_SSL in its greeting)", for_log(&greeting.server_version)),
        ));
    }
    let mut packet = Vec::with_capacity(36);
    packet.extend_from_slice(&[32, 0, 0, 1]);
    packet.extend_from_slice(&(CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION).to_le_bytes());
    packet.extend_from_slice(&(16u32 * 1024 * 1024).to_le_bytes());
    packet.push(CHARSET_UTF8MB4);
    packet.extend_from_slice(&[0u8; 23]);
    stream.write_all(&packet).await.map_err(|err| lost(&err))?;
    Ok(greeting.server_version)
}

#[derive(Debug, PartialEq, Eq)]
struct MySqlGreeting {
    server_version: String,
    capabilities: u32,
}

/// The parts of the initial handshake packet (protocol 10) the probe needs, or the server's
/// error packet (for example "Host is blocked", "Too many connections") as a failure.
fn parse_mysql_greeting(payload: &[u8]) -> Result<MySqlGreeting, Failure> {
    match payload.first() {
        Some(0xff) if payload.len() >= 3 => {
            let code = u16::from_le_bytes([payload[1], payload[2]]);
            let text = String::from_utf8_lossy(&payload[3..]);
            let text = text.strip_prefix('#').map(|t| t.get(5..).unwrap_or("")).unwrap_or(&text);
            let message = format!("the MySQL server refused the connection before the handshake: {code} {}", for_log(text));
            // 1129 host blocked (max_connect_errors), 1130 host not allowed to connect.
            return Err(match code {
                1130 => Failure::new(Phase::Tls, ErrorClass::Authentication, message)
                    .with_hint("the server accepts no account from this client's address: check the user's host part ('user'@'%') or the proxy's configuration"),
                1129 => Failure::new(Phase::Tls, ErrorClass::ConnectionRefused, message)
                    .with_hint("the server blocked this client's address after too many interrupted connections: run FLUSH HOSTS (or mysqladmin flush-hosts) and raise max_connect_errors"),
                _ => Failure::new(Phase::Tls, ErrorClass::ConnectionRefused, message)
                    .with_hint("the server is refusing connections (for example too many connections): check its health and max_connections"),
            });
        }
        Some(10) => {}
        Some(other) => return Err(not_the_engine(EngineFamily::MySql, &format!("its greeting starts with byte 0x{other:02x}, not protocol 10"))),
        None => return Err(not_the_engine(EngineFamily::MySql, "its greeting is empty")),
    }
    let rest = &payload[1..];
    let end = rest.iter().position(|b| *b == 0).ok_or_else(|| not_the_engine(EngineFamily::MySql, "its greeting has no server version"))?;
    let server_version = String::from_utf8_lossy(&rest[..end]).into_owned();
    // MariaDB prefixes its greeting with "5.5.5-" for the sake of old MySQL clients.
    let server_version = match server_version.strip_prefix("5.5.5-") {
        Some(rest) if rest.contains("MariaDB") => rest.to_owned(),
        _ => server_version,
    };
    // After the version: thread id (4), auth data part 1 (8), filler (1), capabilities low (2),
    // charset (1), status (2), capabilities high (2).
    let after = &rest[end + 1..];
    if after.len() < 15 {
        return Err(not_the_engine(EngineFamily::MySql, "its greeting is too short"));
    }
    let low = u16::from_le_bytes([after[13], after[14]]) as u32;
    let high = if after.len() >= 20 { u16::from_le_bytes([after[18], after[19]]) as u32 } else { 0 };
    Ok(MySqlGreeting { server_version, capabilities: low | (high << 16) })
}

fn not_the_engine(family: EngineFamily, what: &str) -> Failure {
    Failure::new(Phase::Tls, ErrorClass::ConnectionRefused, format!("the server on that port does not speak the {family} protocol: {what}"))
        .with_hint(format!("something other than {family} listens there: check DB_PORT and DB_ENGINE"))
}

fn lost(err: &io::Error) -> Failure {
    Failure::new(Phase::Tls, ErrorClass::ConnectionLost, format!("the server closed the connection before TLS was negotiated: {err}"))
        .with_hint("the server or a proxy in between dropped the connection at once: check the server's logs and that the port belongs to the database")
}

/// Turns a failed handshake into a precise cause: untrusted chain, name mismatch, expired, or
/// a server whose TLS we do not share.
fn classify_handshake_error(err: &io::Error, host: &str, trust: &TrustStore) -> Failure {
    let trusted = trust.sources().join(", ");
    let Some(tls_error) = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return Failure::new(Phase::Tls, ErrorClass::ConnectionLost, format!("the connection broke during the TLS handshake: {err}"))
            .with_hint("the server or a proxy dropped the connection during the TLS handshake: check the server's TLS configuration and logs");
    };
    use rustls::CertificateError as C;
    match tls_error {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => Failure::new(
            Phase::Tls,
            ErrorClass::TlsVerification,
            format!("the server's certificate does not chain to a trusted CA (trusted: {trusted})"),
        )
        .with_hint("the system roots (which cover RDS Proxy) and the built-in RDS CA bundle (which covers RDS and Aurora endpoints) do not hold the server's CA: set DB_CA_BUNDLE to a PEM file holding it (a private CA, or an RDS CA newer than this build), and check you reach the server you meant to"),
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => Failure::new(
            Phase::Tls,
            ErrorClass::TlsVerification,
            format!("the server's certificate is not valid for {}: it names {}", for_log(host), presented.iter().map(|n| for_log(n)).collect::<Vec<_>>().join(", ")),
        )
        .with_hint(name_mismatch_hint()),
        rustls::Error::InvalidCertificate(C::NotValidForName) => {
            Failure::new(Phase::Tls, ErrorClass::TlsVerification, format!("the server's certificate is not valid for {}", for_log(host))).with_hint(name_mismatch_hint())
        }
        rustls::Error::InvalidCertificate(cause @ (C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. })) => {
            Failure::new(Phase::Tls, ErrorClass::TlsVerification, format!("the server's certificate is outside its validity period ({cause:?})"))
                .with_hint("renew the server's certificate (RDS: rotate the instance's CA), and check the function's clock")
        }
        rustls::Error::InvalidCertificate(other) => {
            Failure::new(Phase::Tls, ErrorClass::TlsVerification, format!("the server's certificate was rejected: {other:?} (trusted: {trusted})"))
        }
        rustls::Error::AlertReceived(alert) => Failure::new(Phase::Tls, ErrorClass::TlsUnavailable, format!("the server ended the TLS handshake with alert {alert:?}"))
            .with_hint("the server's TLS settings exclude ours: we require TLS 1.2 or 1.3 with modern cipher suites; check the server's tls_version / ssl_min_protocol_version"),
        rustls::Error::PeerIncompatible(why) => Failure::new(Phase::Tls, ErrorClass::TlsUnavailable, format!("the server's TLS is incompatible: {why:?}"))
            .with_hint("the server's TLS settings exclude ours: we require TLS 1.2 or 1.3 with modern cipher suites"),
        other => Failure::new(Phase::Tls, ErrorClass::TlsVerification, format!("the TLS handshake failed: {other}")),
    }
}

fn name_mismatch_hint() -> &'static str {
    "connect with a host name the certificate carries: for RDS Proxy the proxy endpoint's own DNS name (not a CNAME or an IP address), for RDS the instance or cluster endpoint; or reissue the certificate for the name you use"
}

/// The trust store to verify with: the cold start's, or one built for an event's `DB_CA_BUNDLE`.
pub fn trust_for_invocation(cold_start: &Result<Arc<TrustStore>, DbError>, ca_bundle: Option<&str>, changed_by_event: bool) -> Result<Arc<TrustStore>, Failure> {
    let fix = if changed_by_event { "fix DB_CA_BUNDLE in the event" } else { "fix the function's DB_CA_BUNDLE" };
    let failed = |err: &DbError| Failure::new(Phase::Configuration, err.class, err.message.clone()).with_hint(format!("{fix}: it must name a readable PEM file of CA certificates"));
    if !changed_by_event {
        return cold_start.clone().map_err(|err| failed(&err));
    }
    let bundle = ca_bundle.map(str::to_owned);
    TrustStore::load(|name| if name == dbcreds_db::tls::CA_BUNDLE_ENV { bundle.clone() } else { None }).map(Arc::new).map_err(|err| failed(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting(version: &str, low: u16, high: u16) -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(version.as_bytes());
        p.push(0);
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"12345678");
        p.push(0);
        p.extend_from_slice(&low.to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&high.to_le_bytes());
        p
    }

    #[test]
    fn a_mysql_greeting_yields_version_and_capabilities() {
        let parsed = parse_mysql_greeting(&greeting("5.5.5-10.11.9-MariaDB", 0x0800 | 0x0200, 0x0008)).unwrap();
        assert_eq!(parsed.server_version, "10.11.9-MariaDB");
        assert_eq!(parse_mysql_greeting(&greeting("8.0.39", 0x0800, 0)).unwrap().server_version, "8.0.39");
        assert_eq!(parsed.capabilities, 0x0008_0A00);
    }

    #[test]
    fn mysql_error_packets_and_foreign_protocols_are_named() {
        let mut blocked = vec![0xff];
        blocked.extend_from_slice(&1129u16.to_le_bytes());
        blocked.extend_from_slice(b"Host '10.0.0.5' is blocked because of many connection errors");
        let failure = parse_mysql_greeting(&blocked).unwrap_err();
        assert_eq!(failure.class, ErrorClass::ConnectionRefused);
        assert!(failure.message.contains("1129") && failure.hint.contains("FLUSH HOSTS"), "{failure:?}");
        let mut denied = vec![0xff];
        denied.extend_from_slice(&1130u16.to_le_bytes());
        denied.extend_from_slice(b"Host 'x' is not allowed to connect");
        assert_eq!(parse_mysql_greeting(&denied).unwrap_err().class, ErrorClass::Authentication);
        let ssh = parse_mysql_greeting(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap_err();
        assert!(ssh.message.contains("does not speak the mysql protocol"), "{ssh:?}");
        assert!(parse_mysql_greeting(&[10, b'5']).is_err());
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_a_dns_failure() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let failure = resolve("nonexistent.invalid", 5432, deadline).await.unwrap_err();
        assert_eq!((failure.phase, failure.class), (Phase::Dns, ErrorClass::Dns));
        assert!(failure.message.contains("nonexistent.invalid"), "{failure:?}");
    }
}
