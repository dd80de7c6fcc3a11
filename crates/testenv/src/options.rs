//! How a throwaway database server is set up.

/// Which certificate the server presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// The `localhost`/127.0.0.1 certificate from the test CA: verify-full succeeds.
    #[default]
    Verified,
    /// A certificate from the test CA whose only name is `wrong.example`: the chain verifies,
    /// hostname verification must fail.
    WrongName,
    /// No TLS at all: the server speaks plaintext only.
    Off,
}

/// Options for `MariaDb::start` and `Postgres::start`.
///
/// The default is TLS on with the verified certificate, and TLS *not required* by the server, so
/// tests can prove that the client refuses plaintext on its own rather than being saved by the
/// server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    pub tls: TlsMode,
    /// The server refuses plaintext logins over TCP (PostgreSQL: `hostssl` lines only in
    /// pg_hba.conf; MariaDB: `require_secure_transport=ON`).
    pub require_tls: bool,
    /// The server logs every session's transport and statements (`MariaDb::sessions`,
    /// `Postgres::sessions`): the server's own view of what travelled how.
    pub log_sessions: bool,
}

impl ServerOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tls(mut self, tls: TlsMode) -> Self {
        self.tls = tls;
        self
    }

    pub fn require_tls(mut self, require: bool) -> Self {
        self.require_tls = require;
        self
    }

    pub fn log_sessions(mut self, log: bool) -> Self {
        self.log_sessions = log;
        self
    }

    /// A server that requires TLS but has none would accept no TCP login at all: almost certainly
    /// a mistake in the test, so it is refused before anything starts.
    pub(crate) fn validate(&self) {
        assert!(
            !(self.require_tls && self.tls == TlsMode::Off),
            "ServerOptions: require_tls with TlsMode::Off leaves no way to log in over TCP; pick one"
        );
    }
}
