//! The server's own view of every session: how it came in (TLS, plaintext TCP, the local socket),
//! who logged in, and every statement it ran. With [`ServerOptions::log_sessions`] a server logs
//! this itself (PostgreSQL: `log_connections` and `log_statement = all` with the session id in
//! `log_line_prefix`; MariaDB: the general query log, whose `Connect` line names the transport),
//! so a test can prove from the server's side, not the client's, that no password DDL ever
//! travelled in plaintext.
//!
//! The statements hold passwords (or their hashes): [`ServerSession`]'s `Debug` shows how many
//! statements there were, never their text, and callers must not print them.
//!
//! [`ServerOptions::log_sessions`]: crate::ServerOptions::log_sessions

use crate::{MariaDb, Postgres};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How a session reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP with TLS.
    Tls,
    /// TCP without TLS.
    Plaintext,
    /// The server's unix socket (testenv's own admin connections).
    LocalSocket,
    /// The log never showed how the session came in (its connection line is missing).
    Unknown,
}

/// One session as the server logged it.
#[derive(Clone)]
pub struct ServerSession {
    /// The server's id of the session: PostgreSQL's `%c`, MariaDB's thread id.
    pub id: String,
    /// The login's user name, when the log shows one.
    pub user: Option<String>,
    pub transport: Transport,
    /// Every statement, in order, as the server received it. Holds passwords: never print.
    pub statements: Vec<String>,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("transport", &self.transport)
            .field("statements", &self.statements.len())
            .field("password_statements", &self.password_statements().count())
            .finish()
    }
}

impl ServerSession {
    /// The statements that set a password: `CREATE/ALTER ROLE|USER ... PASSWORD` (PostgreSQL),
    /// `CREATE/ALTER USER ... IDENTIFIED`, `SET PASSWORD`, `GRANT ... IDENTIFIED` (MariaDB).
    pub fn password_statements(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().map(String::as_str).filter(|s| is_password_statement(s))
    }
}

/// Whether `sql` sets a password, by its words (case-insensitive, any spacing), in any statement
/// of a batch (`BEGIN; SET LOCAL ROLE ...; ALTER ROLE ... PASSWORD ...; COMMIT`). The split at
/// `;` ignores quoting: a `;` inside a password only cuts the statement after its keywords.
pub fn is_password_statement(sql: &str) -> bool {
    sql.split(';').any(is_one_password_statement)
}

fn is_one_password_statement(sql: &str) -> bool {
    let words: Vec<String> = sql.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').filter(|w| !w.is_empty()).map(str::to_ascii_uppercase).collect();
    let has = |word: &str| words.iter().any(|w| w == word);
    let starts = |first: &str, second: &[&str]| words.first().is_some_and(|w| w == first) && words.get(1).is_some_and(|w| second.contains(&w.as_str()));
    let ddl = starts("CREATE", &["ROLE", "USER"]) || starts("ALTER", &["ROLE", "USER"]);
    (ddl && (has("PASSWORD") || has("IDENTIFIED"))) || starts("SET", &["PASSWORD"]) || (words.first().is_some_and(|w| w == "GRANT") && has("IDENTIFIED"))
}

impl Postgres {
    /// Every session the server logged (needs `ServerOptions::log_sessions`), ordered by id.
    pub fn sessions(&self) -> Vec<ServerSession> {
        assert!(self.options().log_sessions, "Postgres::sessions needs ServerOptions::log_sessions(true)");
        parse_postgres_log(&self.log())
    }
}

impl MariaDb {
    /// The general query log's file.
    pub(crate) fn general_log_path(&self) -> PathBuf {
        self.dir().join("general.log")
    }

    /// Every session the server logged (needs `ServerOptions::log_sessions`), ordered by id
    /// (as text).
    pub fn sessions(&self) -> Vec<ServerSession> {
        assert!(self.options().log_sessions, "MariaDb::sessions needs ServerOptions::log_sessions(true)");
        let log = std::fs::read(self.general_log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        parse_mariadb_general_log(&log)
    }
}

/// The prefix testenv sets in `log_line_prefix`: the session id, then a space.
pub(crate) const POSTGRES_PREFIX: &str = "session=";

fn session<'a>(sessions: &'a mut BTreeMap<String, ServerSession>, id: &str) -> &'a mut ServerSession {
    sessions.entry(id.to_owned()).or_insert_with(|| ServerSession { id: id.to_owned(), user: None, transport: Transport::Unknown, statements: Vec::new() })
}

/// `session=<id> LOG:  connection received: host=127.0.0.1 port=...` (or `host=[local]`),
/// `... LOG:  connection authorized: user=app database=appdb SSL enabled (protocol=...)`,
/// `... LOG:  statement: <sql>` / `execute <name>: <sql>`, continued on lines that start with a
/// tab.
pub fn parse_postgres_log(log: &str) -> Vec<ServerSession> {
    let mut sessions = BTreeMap::new();
    // The statement a continuation line belongs to.
    let mut open: Option<String> = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix('\t') {
            if let Some(id) = &open {
                let session: &mut ServerSession = session(&mut sessions, id);
                if let Some(last) = session.statements.last_mut() {
                    last.push('\n');
                    last.push_str(rest);
                }
            }
            continue;
        }
        open = None;
        let Some((id, message)) = line.strip_prefix(POSTGRES_PREFIX).and_then(|rest| rest.split_once(' ')) else { continue };
        let Some(message) = message.strip_prefix("LOG:").map(str::trim_start) else { continue };
        if let Some(received) = message.strip_prefix("connection received: ") {
            let session = session(&mut sessions, id);
            if received.starts_with("host=[local]") {
                session.transport = Transport::LocalSocket;
            }
        } else if let Some(authorized) = message.strip_prefix("connection authorized: ") {
            let session = session(&mut sessions, id);
            session.user = authorized.strip_prefix("user=").and_then(|u| u.split(' ').next()).map(str::to_owned);
            if session.transport != Transport::LocalSocket {
                session.transport = if authorized.contains(" SSL enabled") { Transport::Tls } else { Transport::Plaintext };
            }
        } else if let Some(sql) = message.strip_prefix("statement: ").or_else(|| message.strip_prefix("execute ").and_then(|m| m.split_once(": ").map(|(_, sql)| sql))) {
            session(&mut sessions, id).statements.push(sql.to_owned());
            open = Some(id.to_owned());
        }
    }
    sessions.into_values().collect()
}

/// MariaDB's general log: a header, then `[YYMMDD HH:MM:SS]\t<spaces><thread id> <Command>\t<argument>`,
/// an argument continued on the lines that follow. `Connect`'s argument is
/// `user@host on db using TCP/IP|SSL/TLS|Socket` (or the refusal); `Query` and `Execute` carry
/// the statement.
pub fn parse_mariadb_general_log(log: &str) -> Vec<ServerSession> {
    let mut sessions = BTreeMap::new();
    let mut open: Option<String> = None;
    for line in log.lines() {
        match parse_mariadb_entry(line) {
            Some((id, command, argument)) => {
                open = None;
                let session = session(&mut sessions, id);
                match command {
                    "Connect" => {
                        session.user = argument.split_once('@').map(|(user, _)| user.to_owned());
                        session.transport = match argument.rsplit_once(" using ") {
                            Some((_, "SSL/TLS")) => Transport::Tls,
                            Some((_, "TCP/IP")) => Transport::Plaintext,
                            Some((_, "Socket")) => Transport::LocalSocket,
                            _ => session.transport,
                        };
                    }
                    "Query" | "Execute" | "Prepare" => {
                        session.statements.push(argument.to_owned());
                        open = Some(id.to_owned());
                    }
                    _ => {}
                }
            }
            None => {
                if let Some(id) = &open {
                    let session: &mut ServerSession = session(&mut sessions, id);
                    if let Some(last) = session.statements.last_mut() {
                        last.push('\n');
                        last.push_str(line);
                    }
                }
            }
        }
    }
    sessions.into_values().collect()
}

/// `(thread id, command, argument)` of a general log entry line, `None` for anything else.
fn parse_mariadb_entry(line: &str) -> Option<(&str, &str, &str)> {
    // An optional time stamp (`241203  8:00:00`), then a tab.
    let rest = match line.find('\t') {
        Some(tab) if line[..tab].chars().all(|c| c.is_ascii_digit() || c == ' ' || c == ':') => &line[tab..],
        _ => return None,
    };
    let rest = rest.trim_start();
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if digits == 0 {
        return None;
    }
    let (id, rest) = rest.split_at(digits);
    let rest = rest.strip_prefix(' ')?;
    let (command, argument) = rest.split_once('\t').unwrap_or((rest, ""));
    if command.is_empty() || !command.chars().all(|c| c.is_ascii_alphabetic() || c == ' ') {
        return None;
    }
    Some((id, command, argument))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_statements_are_recognised_and_nothing_else() {
        for sql in [
            "ALTER ROLE app WITH PASSWORD 'x'",
            "alter user \"app\" password 'SCRAM-SHA-256$...'",
            "CREATE ROLE app LOGIN PASSWORD 'x'",
            "ALTER USER 'app'@'%' IDENTIFIED BY 'x'",
            "CREATE USER `app`@`%` IDENTIFIED VIA mysql_native_password USING PASSWORD('x')",
            "SET PASSWORD FOR 'app'@'%' = PASSWORD('x')",
            "GRANT SELECT ON db.* TO 'app'@'%' IDENTIFIED BY 'x'",
            "BEGIN;\nSET LOCAL ROLE master;\nALTER ROLE \"app\" PASSWORD 'a;b';\nCOMMIT",
        ] {
            assert!(is_password_statement(sql), "{sql}");
        }
        for sql in ["SELECT 1", "BEGIN; GRANT SELECT ON db.* TO app; COMMIT", "GRANT SELECT ON db.* TO app", "ALTER ROLE app CONNECTION LIMIT 5", "SELECT rolpassword FROM pg_authid", "DROP USER app"] {
            assert!(!is_password_statement(sql), "{sql}");
        }
    }

    #[test]
    fn postgres_sessions_with_their_transport_and_statements() {
        let log = "\
session=65a.1 LOG:  connection received: host=[local]
session=65a.1 LOG:  connection authorized: user=postgres database=postgres
session=65a.1 LOG:  statement: SELECT 1
session=65b.2 LOG:  connection received: host=127.0.0.1 port=5555
session=65b.2 LOG:  connection authorized: user=master database=postgres SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)
session=65b.2 LOG:  statement: ALTER ROLE app
\tPASSWORD 'x'
session=65c.3 LOG:  connection received: host=127.0.0.1 port=5556
session=65c.3 LOG:  connection authorized: user=app database=appdb
session=65c.3 LOG:  execute <unnamed>: SELECT current_user
session=65c.3 ERROR:  boom
session=65c.3 STATEMENT:  SELECT boom
2024-01-01 LOG:  checkpoint starting
";
        let sessions = parse_postgres_log(log);
        assert_eq!(sessions.len(), 3);
        assert_eq!((sessions[0].transport, sessions[0].user.as_deref()), (Transport::LocalSocket, Some("postgres")));
        assert_eq!((sessions[1].transport, sessions[1].user.as_deref()), (Transport::Tls, Some("master")));
        assert_eq!(sessions[1].statements, ["ALTER ROLE app\nPASSWORD 'x'"]);
        assert_eq!(sessions[1].password_statements().count(), 1);
        assert_eq!((sessions[2].transport, sessions[2].statements.len()), (Transport::Plaintext, 1));
        assert!(!format!("{sessions:?}").contains("PASSWORD 'x'"), "Debug never shows a statement");
    }

    #[test]
    fn mariadb_sessions_with_their_transport_and_statements() {
        let log = "\
/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1 (Debian 12). started with:
Tcp port: 3306  Unix socket: /tmp/x.sock
Time\t\t    Id Command\tArgument
241203  8:00:00\t     3 Connect\troot@localhost on  using Socket
\t\t     3 Query\tSELECT 1
241203  8:00:01\t     4 Connect\troot@127.0.0.1 on  using SSL/TLS
\t\t     4 Query\tALTER USER 'app'@'%'
IDENTIFIED BY 'x'
\t\t     4 Quit\t
\t\t    12 Connect\tapp@127.0.0.1 on appdb using TCP/IP
\t\t    12 Query\tSELECT 2
";
        let sessions = parse_mariadb_general_log(log);
        assert_eq!(sessions.iter().map(|s| (s.id.as_str(), s.transport)).collect::<Vec<_>>(), [("12", Transport::Plaintext), ("3", Transport::LocalSocket), ("4", Transport::Tls)]);
        let tls = &sessions[2];
        assert_eq!(tls.user.as_deref(), Some("root"));
        assert_eq!(tls.statements, ["ALTER USER 'app'@'%'\nIDENTIFIED BY 'x'"]);
        assert_eq!(tls.password_statements().count(), 1);
    }
}
