//! A live MySQL-family session: connecting (DNS, TCP, verified TLS, login), the probe, and the
//! execution helpers every operation goes through (deadline, classification, redaction).

use crate::connect::{ConnectSpec, Credential};
use crate::error::DbError;
use crate::mysql::errors::{Phase, classify};
use crate::mysql::flavor::{Capabilities, ServerReport, detect};
use crate::mysql::grants::Planned;
use crate::mysql::sql::{Dialect, SqlMode, Statement};
use crate::server::{ServerInfo, Transport};
use dbcreds_core::sanitize::field as clean;
use dbcreds_core::{EngineFamily, ErrorClass, TlsPolicy};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Row, SslOpts, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Statements sent per round trip when applying a plan (multi-statement text). A GRANT is a few
/// hundred bytes, so a chunk stays far below any `max_allowed_packet`.
const BATCH: usize = 64;

enum BatchFailure {
    /// The statement at `index` failed with `error`.
    Statement { index: usize, error: mysql_async::Error },
    /// The session itself failed (deadline, retired connection).
    Session(DbError),
}

/// A session with a MySQL, MariaDB or Aurora MySQL server.
pub struct MySqlSession {
    /// `None` once the connection is known to be unusable (a statement timed out or the
    /// connection broke): later calls fail fast with `ConnectionLost`.
    conn: Option<Conn>,
    pub(crate) server: ServerInfo,
    pub(crate) transport: Transport,
    pub(crate) dialect: Dialect,
    pub(crate) deadline: Instant,
    tls: TlsPolicy,
    endpoint: String,
}

impl MySqlSession {
    /// Opens a session: resolves the host, connects, negotiates verified TLS (unless the policy
    /// is `Disabled`), logs in, then probes the server's flavour, version and `sql_mode`.
    pub async fn open(spec: &ConnectSpec) -> Result<Self, DbError> {
        if spec.family != EngineFamily::MySql {
            return Err(DbError::new(ErrorClass::Internal, "the MySQL adapter was given a PostgreSQL connection"));
        }
        let endpoint = format!("{}:{}", clean(&spec.host), spec.port);
        if Instant::now() >= spec.deadline {
            return Err(DbError::new(ErrorClass::Deadline, format!("no time left to connect to {endpoint}")));
        }
        if spec.username.contains('\0') {
            return Err(DbError::new(ErrorClass::Input, "username: contains a NUL character; fix the user name"));
        }
        if spec.credential.secret().expose().contains('\0') {
            return Err(DbError::new(ErrorClass::Input, "password: contains a NUL character, which cannot be sent at login"));
        }
        let iam = matches!(spec.credential, Credential::IamToken(_));
        if iam && spec.tls == TlsPolicy::Disabled {
            return Err(DbError::new(
                ErrorClass::Input,
                "ssl: IAM authentication sends the token with mysql_clear_password, which dbcreds allows only over verified TLS; remove \"ssl\": false",
            ));
        }
        crate::tls::install_crypto_provider();

        let ips = resolve(&spec.host, spec.port, spec.deadline).await?;
        let base = match spec.tls {
            TlsPolicy::VerifyFull => OptsBuilder::from_opts(tls_template(spec)?),
            TlsPolicy::Disabled => OptsBuilder::default(),
        };
        let opts = base
            .ip_or_hostname(spec.host.clone())
            .tcp_port(spec.port)
            .resolved_ips(Some(ips))
            .user(Some(spec.username.clone()))
            .pass(Some(spec.credential.secret().expose().to_owned()))
            .db_name(spec.database.clone())
            // Never switch to a Unix socket after connecting: it would bypass TLS.
            .prefer_socket(false)
            .enable_cleartext_plugin(iam)
            // Known values skip the driver's post-login `SELECT @@max_allowed_packet, ...`.
            .max_allowed_packet(Some(64 * 1024 * 1024))
            .wait_timeout(Some(28_800))
            .tcp_nodelay(true);
        let conn = match tokio::time::timeout_at(spec.deadline, Conn::new(opts)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => {
                let mut err = classify(&err, Phase::Connect { host: &spec.host, port: spec.port });
                if err.class == ErrorClass::Authentication && spec.tls == TlsPolicy::Disabled {
                    // MariaDB answers a plaintext login to a server with require_secure_transport
                    // with the same 1045 as a wrong password; say what else it could be.
                    err.message.push_str(" (this login was in plaintext because the secret says \"ssl\": false; a server that requires TLS refuses plaintext logins this way)");
                }
                return Err(err);
            }
            Err(_) => {
                return Err(DbError::new(
                    ErrorClass::TcpTimeout,
                    format!("connecting to {endpoint} did not finish before the deadline (no answer to TCP, TLS or login)"),
                ));
            }
        };
        let mut session = Self {
            conn: Some(conn),
            server: ServerInfo { flavor: crate::server::Flavor::MySql, version: (0, 0, 0), version_string: String::new() },
            transport: Transport { tls_version: None, certificate_verified: false },
            dialect: Dialect::new(Capabilities::of(&ServerInfo { flavor: crate::server::Flavor::MySql, version: (0, 0, 0), version_string: String::new() }), SqlMode::default()),
            deadline: spec.deadline,
            tls: spec.tls,
            endpoint,
        };
        session.probe().await?;
        Ok(session)
    }

    /// One round trip, three result sets: what the server is, the session's `sql_mode` and
    /// character set, whether it is Aurora (and whether `partial_revokes` makes database
    /// names in grants literal), and the negotiated TLS version.
    async fn probe(&mut self) -> Result<(), DbError> {
        let sets = self
            .query_sets(
                "SELECT VERSION(), @@version_comment, @@sql_mode, @@character_set_client; \
                 SHOW VARIABLES WHERE Variable_name IN ('aurora_version', 'partial_revokes'); \
                 SHOW SESSION STATUS LIKE 'Ssl_version'",
                "reading the server version",
            )
            .await?;
        let first = sets.first().and_then(|rows| rows.first()).cloned().unwrap_or_default();
        let text = |i: usize| first.get(i).cloned().flatten().unwrap_or_default();
        let variables: Vec<(String, String)> = sets
            .get(1)
            .map(|rows| rows.iter().map(|r| (r.first().cloned().flatten().unwrap_or_default(), r.get(1).cloned().flatten().unwrap_or_default())).collect())
            .unwrap_or_default();
        let variable = |name: &str| variables.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let report = ServerReport { version: text(0), version_comment: text(1), aurora_version: variable("aurora_version") };
        self.server = detect(&report);
        let mut dialect = Dialect::new(Capabilities::of(&self.server), SqlMode::parse(&text(2)));
        dialect.literal_db_grants = variable("partial_revokes").is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
        self.dialect = dialect;
        let ssl_version = sets.get(2).and_then(|rows| rows.first()).and_then(|r| r.get(1).cloned().flatten()).filter(|v| !v.is_empty());
        self.transport = match self.tls {
            // The driver refuses to continue without TLS when it was asked for, so TLS is on even
            // if the server does not report a version (RDS Proxy reports its own backend link).
            TlsPolicy::VerifyFull => Transport { tls_version: Some(ssl_version.unwrap_or_else(|| "TLS".into())), certificate_verified: true },
            TlsPolicy::Disabled => Transport { tls_version: ssl_version, certificate_verified: false },
        };
        // Backslash escaping is only sound when no multi-byte character can end in 0x5C; the
        // driver asks for utf8mb4 at login, but a server can override the client character set.
        let charset = text(3).to_ascii_lowercase();
        if !matches!(charset.as_str(), "utf8mb4" | "utf8mb3" | "utf8" | "latin1" | "ascii" | "binary") {
            self.run(&Statement::plain("SET NAMES utf8mb4"), "setting the session character set").await?;
        }
        Ok(())
    }

    fn conn(&mut self) -> Result<&mut Conn, DbError> {
        self.conn.as_mut().ok_or_else(|| DbError::new(ErrorClass::ConnectionLost, "the session is no longer usable after an earlier failure; open a new one"))
    }

    /// Maps a bounded driver call's outcome, retiring the connection when it can no longer be
    /// trusted (a timeout leaves a statement in flight; a fatal error leaves no connection).
    fn settle<T>(&mut self, outcome: Result<Result<T, mysql_async::Error>, tokio::time::error::Elapsed>, what: &str, secret: bool) -> Result<T, DbError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if err.is_fatal() {
                    self.conn = None;
                }
                Err(classify(&err, Phase::Statement { what, secret }))
            }
            Err(_) => {
                self.conn = None;
                Err(DbError::new(ErrorClass::Deadline, format!("{what} on {}: did not finish before the deadline", self.endpoint)))
            }
        }
    }

    /// Password statements go only over TLS, or in plaintext when the secret said `ssl: false`.
    pub(crate) fn require_transport_for_secret(&self) -> Result<(), DbError> {
        if self.transport.tls_version.is_none() && self.tls != TlsPolicy::Disabled {
            return Err(DbError::new(ErrorClass::TlsUnavailable, "refusing to send a password over a connection without TLS"));
        }
        Ok(())
    }

    /// Runs one statement (text protocol), within the deadline.
    pub(crate) async fn run(&mut self, statement: &Statement, what: &str) -> Result<(), DbError> {
        if statement.carries_secret() {
            self.require_transport_for_secret()?;
        }
        tracing::debug!(sql = %statement.redacted(), "mysql statement");
        let deadline = self.deadline;
        let conn = self.conn()?;
        let outcome = tokio::time::timeout_at(deadline, conn.query_drop(statement.sql())).await;
        self.settle(outcome, what, statement.carries_secret())
    }

    /// Runs a plan's statements, several per round trip (a statement that carries a secret goes
    /// alone). Returns, per statement, whether it took effect.
    ///
    /// A GRANT on a table or routine that no longer exists is skipped with a warning: MySQL and
    /// MariaDB keep a table's grants after DROP TABLE, and refuse to grant on it again, so a
    /// faithful copy is impossible and failing would fail every rotation until someone cleans
    /// up. Any other failure stops the run with an error naming the statement (redacted); the
    /// statements before it took effect, and a retry re-plans from the server's state.
    pub(crate) async fn run_plan(&mut self, plan: &[Planned], what: &str) -> Result<Vec<bool>, DbError> {
        let mut applied = vec![false; plan.len()];
        let mut start = 0;
        while start < plan.len() {
            let end = if plan[start].statement.carries_secret() {
                start + 1
            } else {
                plan[start..].iter().take(BATCH).take_while(|p| !p.statement.carries_secret()).count() + start
            };
            let chunk: Vec<&Statement> = plan[start..end].iter().map(|p| &p.statement).collect();
            match self.run_batch(&chunk).await {
                Ok(()) => {
                    applied[start..end].iter_mut().for_each(|a| *a = true);
                    start = end;
                }
                Err(BatchFailure::Statement { index, error }) => {
                    applied[start..start + index].iter_mut().for_each(|a| *a = true);
                    let failed = &plan[start + index];
                    let missing_object = matches!(&error, mysql_async::Error::Server(e) if e.code == 1146 || e.code == 1305);
                    if failed.on_existing_object && missing_object {
                        tracing::warn!(
                            statement = %failed.statement.redacted(),
                            "not copied: the grant's table or routine no longer exists (the server refuses to grant on it); revoke it from the source to silence this"
                        );
                        start += index + 1;
                        continue;
                    }
                    let secret = failed.statement.carries_secret();
                    return self.settle::<()>(Ok(Err(error)), &format!("{what} ({})", failed.statement.redacted()), secret).map(|_| applied);
                }
                Err(BatchFailure::Session(err)) => return Err(err),
            }
        }
        Ok(applied)
    }

    /// Sends statements in one round trip (multi-statement text) and reads every result.
    async fn run_batch(&mut self, statements: &[&Statement]) -> Result<(), BatchFailure> {
        if statements.iter().any(|s| s.carries_secret()) {
            self.require_transport_for_secret().map_err(BatchFailure::Session)?;
        }
        for statement in statements {
            tracing::debug!(sql = %statement.redacted(), "mysql statement");
        }
        let text = statements.iter().map(|s| s.sql()).collect::<Vec<_>>().join(";\n");
        let deadline = self.deadline;
        let conn = self.conn().map_err(BatchFailure::Session)?;
        let work = async move {
            // The driver reports the first statement's error from query_iter. A later
            // statement's error is parked as the next pending result and surfaces only when
            // that result is read, so every result is read, the last one included.
            let mut result = conn.query_iter(text.as_str()).await.map_err(|e| (0usize, e))?;
            let mut index = 0usize;
            loop {
                result.collect::<Row>().await.map_err(|e| (index, e))?;
                index += 1;
                if result.is_empty() {
                    result.drop_result().await.map_err(|e| (index, e))?;
                    break;
                }
            }
            Ok::<(), (usize, mysql_async::Error)>(())
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err((index, error))) => {
                if error.is_fatal() {
                    self.conn = None;
                }
                Err(BatchFailure::Statement { index: index.min(statements.len() - 1), error })
            }
            Err(elapsed) => Err(BatchFailure::Session(self.settle::<()>(Err(elapsed), "applying statements", false).unwrap_err())),
        }
    }

    /// Runs a prepared statement with parameters and returns the rows as text.
    pub(crate) async fn rows(&mut self, sql: &str, params: Vec<Value>, what: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let deadline = self.deadline;
        let conn = self.conn()?;
        let params = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
        let work = async move {
            let rows: Vec<Row> = conn.exec(sql, params).await?;
            Ok(rows.into_iter().map(row_text).collect::<Vec<_>>())
        };
        let outcome = tokio::time::timeout_at(deadline, work).await;
        self.settle(outcome, what, false)
    }

    /// Runs constant text (possibly several statements) and returns every result set as text.
    pub(crate) async fn query_sets(&mut self, sql: &str, what: &str) -> Result<Vec<Vec<Vec<Option<String>>>>, DbError> {
        let deadline = self.deadline;
        let conn = self.conn()?;
        let work = async move {
            let mut result = conn.query_iter(sql).await?;
            let mut sets = Vec::new();
            while !result.is_empty() {
                let rows: Vec<Row> = result.collect().await?;
                sets.push(rows.into_iter().map(row_text).collect::<Vec<_>>());
            }
            // A later statement's error is parked as a pending result: surface it.
            result.drop_result().await?;
            Ok(sets)
        };
        let outcome = tokio::time::timeout_at(deadline, work).await;
        self.settle(outcome, what, false)
    }

    /// Closes politely, but never waits past the deadline or more than two seconds.
    pub(crate) async fn shut_down(mut self) {
        if let Some(conn) = self.conn.take() {
            let limit = self.deadline.min(Instant::now() + Duration::from_secs(2));
            let _ = tokio::time::timeout_at(limit, conn.disconnect()).await;
        }
    }
}

/// Resolves the host within the deadline, so a name that does not resolve is reported as DNS
/// (the driver would report it as a generic I/O error). The driver then connects to these
/// addresses and still verifies the certificate against the host *name*.
async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<std::net::IpAddr>, DbError> {
    match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let mut ips: Vec<std::net::IpAddr> = Vec::new();
            for addr in addrs {
                if !ips.contains(&addr.ip()) {
                    ips.push(addr.ip());
                }
            }
            if ips.is_empty() {
                return Err(DbError::new(ErrorClass::Dns, format!("{} resolves to no address", clean(host))));
            }
            Ok(ips)
        }
        Ok(Err(err)) => Err(DbError::new(ErrorClass::Dns, format!("cannot resolve {}: {}", clean(host), clean(&err.to_string())))),
        Err(_) => Err(DbError::new(ErrorClass::Dns, format!("resolving {} did not finish before the deadline", clean(host)))),
    }
}

/// Driver options with nothing but verify-full TLS set, shared by every MySQL connection made
/// with the spec's trust store: copies of one `Opts` share the driver's cached TLS connector, so
/// the roots are parsed into a connector once per process, not on every connection.
fn tls_template(spec: &ConnectSpec) -> Result<Opts, DbError> {
    let cell = spec.trust.mysql_tls();
    if let Some(template) = cell.get() {
        return Ok(template.clone());
    }
    let template = Opts::from(OptsBuilder::default().ssl_opts(ssl_opts(spec)?));
    // Two first connections racing both build one; either is as good, and one is kept.
    Ok(cell.get_or_init(|| template).clone())
}

/// Verify-full TLS: only the trust store's roots (no built-in roots, no skipping of chain or
/// name checks). Roots rustls cannot parse are left out here, as the trust store does, because
/// the driver would otherwise fail the whole connection on one odd system certificate.
fn ssl_opts(spec: &ConnectSpec) -> Result<SslOpts, DbError> {
    let mut probe = rustls::RootCertStore::empty();
    let mut roots = Vec::new();
    for root in spec.trust.roots() {
        if probe.add(root.clone()).is_ok() {
            roots.push(root.as_ref().to_vec().into());
        }
    }
    if roots.is_empty() {
        return Err(DbError::new(ErrorClass::Input, "the trust store holds no usable certificate authority; set DB_CA_BUNDLE"));
    }
    Ok(SslOpts::default().with_root_certs(roots).with_disable_built_in_roots(true))
}

/// A row as text: the representation the mysql client prints.
pub(crate) fn row_text(row: Row) -> Vec<Option<String>> {
    let types: Vec<ColumnType> = row.columns_ref().iter().map(|c| c.column_type()).collect();
    row.unwrap().into_iter().zip(types).map(|(value, column_type)| value_text(value, column_type)).collect()
}

pub(crate) fn value_text(value: Value, column_type: ColumnType) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Date(year, month, day, hour, minute, second, micros) => {
            let date = format!("{year:04}-{month:02}-{day:02}");
            Some(match column_type {
                ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => date,
                _ if micros > 0 => format!("{date} {hour:02}:{minute:02}:{second:02}.{micros:06}"),
                _ => format!("{date} {hour:02}:{minute:02}:{second:02}"),
            })
        }
        Value::Time(negative, days, hours, minutes, seconds, micros) => {
            let sign = if negative { "-" } else { "" };
            let hours = u64::from(days) * 24 + u64::from(hours);
            Some(if micros > 0 {
                format!("{sign}{hours:02}:{minutes:02}:{seconds:02}.{micros:06}")
            } else {
                format!("{sign}{hours:02}:{minutes:02}:{seconds:02}")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_the_mysql_client() {
        assert_eq!(value_text(Value::NULL, ColumnType::MYSQL_TYPE_VAR_STRING), None);
        assert_eq!(value_text(Value::Int(-3), ColumnType::MYSQL_TYPE_LONG).unwrap(), "-3");
        assert_eq!(value_text(Value::Bytes(b"abc".to_vec()), ColumnType::MYSQL_TYPE_VAR_STRING).unwrap(), "abc");
        assert_eq!(value_text(Value::Date(2024, 2, 29, 0, 0, 0, 0), ColumnType::MYSQL_TYPE_DATE).unwrap(), "2024-02-29");
        assert_eq!(value_text(Value::Date(2024, 2, 29, 13, 5, 9, 0), ColumnType::MYSQL_TYPE_DATETIME).unwrap(), "2024-02-29 13:05:09");
        assert_eq!(value_text(Value::Date(2024, 2, 29, 13, 5, 9, 42), ColumnType::MYSQL_TYPE_TIMESTAMP).unwrap(), "2024-02-29 13:05:09.000042");
        assert_eq!(value_text(Value::Time(true, 1, 2, 3, 4, 0), ColumnType::MYSQL_TYPE_TIME).unwrap(), "-26:03:04");
        assert_eq!(value_text(Value::Bytes(vec![0xff, b'a']), ColumnType::MYSQL_TYPE_BLOB).unwrap(), "\u{fffd}a");
    }
}
