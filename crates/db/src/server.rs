//! What the server says it is, and what the connection looks like.

/// The server product, detected from what it reports (`VERSION()`, `@@version_comment`,
/// `@@aurora_version`, `server_version_num`, `aurora_version()`), never from a prefix guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    MySql,
    MariaDb,
    AuroraMySql,
    Postgres,
    AuroraPostgres,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ServerInfo {
    pub flavor: Flavor,
    /// (major, minor, patch) as the server reports them.
    pub version: (u32, u32, u32),
    /// The full version string, for diagnostics.
    pub version_string: String,
}

impl ServerInfo {
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version >= (major, minor, patch)
    }
}

/// How the session is carried.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Transport {
    /// `Some("TLSv1.3")` when TLS is on; `None` for plaintext (only when the secret allowed it).
    pub tls_version: Option<String>,
    /// True when the certificate chain and host name were verified. Always true with TLS:
    /// this crate has no mode that skips verification. Reported so operators can see it.
    pub certificate_verified: bool,
}
