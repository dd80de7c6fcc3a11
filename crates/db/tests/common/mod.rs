//! What the MySQL and PostgreSQL adapter tests share: the trust store of a test CA, the
//! verify-full connection spec the tests start from, and a few inputs.

#![allow(dead_code)] // each test binary uses its own subset

use dbcreds_core::{EngineFamily, TlsPolicy};
use dbcreds_db::{ConnectSpec, Credential, TrustStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub fn trust(pem: &[u8]) -> Arc<TrustStore> {
    Arc::new(TrustStore::from_pem(pem).expect("the test CA parses"))
}

/// Verify-full TLS trusting only `ca_pem`, 20 seconds to finish.
pub fn verify_full_spec(family: EngineFamily, host: &str, port: u16, ca_pem: &[u8], user: &str, password: &str) -> ConnectSpec {
    ConnectSpec {
        family,
        host: host.to_owned(),
        port,
        username: user.to_owned(),
        credential: Credential::Password(password.into()),
        database: None,
        tls: TlsPolicy::VerifyFull,
        trust: trust(ca_pem),
        deadline: Instant::now() + Duration::from_secs(20),
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Every printable ASCII character, space included.
pub fn printable_ascii() -> String {
    (0x20u8..0x7f).map(char::from).collect()
}
