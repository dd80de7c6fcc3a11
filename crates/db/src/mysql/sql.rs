//! SQL generation for the MySQL family: pure functions, no I/O.
//!
//! Everything the adapter sends is built here, so it can be unit-tested, printed by a dry run with
//! passwords redacted ([`Statement::redacted`]), and reviewed in one place. The rules:
//! - identifiers (schema, table, column, routine names) are backtick-quoted with backticks doubled;
//! - accounts, hosts, passwords and X.509 strings are string literals escaped for the session's
//!   `sql_mode` ([`SqlMode`]): with `NO_BACKSLASH_ESCAPES` a backslash is an ordinary character and
//!   only `'` needs doubling; without it `\` and `'` (and, for readable logs, CR/LF/Ctrl-Z) are
//!   backslash-escaped. A NUL is refused rather than escaped: no MySQL client can send a password
//!   holding one, and no name needs one;
//! - privilege names, plugin names and routine kinds come from allow-lists or are checked to be
//!   plain words, so nothing read back from the server's catalog can smuggle SQL in;
//! - the names a caller gives us (users, databases) are validated with
//!   `dbcreds_core::validate_identifier` before any SQL is built ([`validate_user`]).

use crate::error::DbError;
use crate::mysql::flavor::{Capabilities, RoleModel};
use crate::mysql::grants::{ObjectKey, RoleRef, ResourceLimits, SslType, TlsRequirement};
use dbcreds_core::{EngineFamily, ErrorClass, IdentifierKind, SecretString, validate_identifier};
use std::fmt;
use zeroize::Zeroizing;

/// What `Statement::redacted` shows instead of a secret literal.
pub const REDACTED_LITERAL: &str = "'<redacted>'";

/// One SQL statement. A statement that carries a secret keeps its text in a zeroised buffer, and
/// `Debug`/`Display` show only the redacted form.
pub struct Statement {
    text: Zeroizing<String>,
    /// The text with secret literals replaced, present only when the statement carries a secret.
    shown: Option<String>,
}

impl Statement {
    pub fn plain(text: impl Into<String>) -> Self {
        Self { text: Zeroizing::new(text.into()), shown: None }
    }

    /// The exact text to send to the server. Call it only where the statement is executed.
    pub fn sql(&self) -> &str {
        &self.text
    }

    /// The text with every secret replaced by `'<redacted>'`: for logs, dry runs and errors.
    pub fn redacted(&self) -> &str {
        self.shown.as_deref().unwrap_or(&self.text)
    }

    pub fn carries_secret(&self) -> bool {
        self.shown.is_some()
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Statement").field(&self.redacted()).finish()
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

/// Builds a statement that embeds a secret literal, writing the secret only into a buffer that
/// is reserved up front (so it never reallocates and leaves a copy behind) and zeroised on drop.
struct SecretStatementBuilder {
    text: Zeroizing<String>,
    shown: String,
}

impl SecretStatementBuilder {
    fn new(secret_len: usize) -> Self {
        // Worst case every secret byte doubles; 512 bytes covers the SQL around it.
        Self { text: Zeroizing::new(String::with_capacity(512 + 2 * secret_len + 2)), shown: String::with_capacity(512) }
    }

    fn sql(&mut self, part: &str) -> &mut Self {
        debug_assert!(self.text.len() + part.len() <= self.text.capacity(), "would reallocate a buffer holding a secret");
        self.text.push_str(part);
        self.shown.push_str(part);
        self
    }

    fn secret(&mut self, secret: &SecretString, mode: SqlMode) -> Result<&mut Self, DbError> {
        push_string_literal(&mut self.text, secret.expose(), mode)
            .map_err(|_| DbError::new(ErrorClass::Input, "password: contains a NUL character, which no MySQL client can send at login; generate another password"))?;
        self.shown.push_str(REDACTED_LITERAL);
        Ok(self)
    }

    fn build(self) -> Statement {
        Statement { text: self.text, shown: Some(self.shown) }
    }
}

/// The parts of the session's `@@sql_mode` that change how SQL text is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqlMode {
    /// `NO_BACKSLASH_ESCAPES`: `\` is an ordinary character inside string literals.
    pub no_backslash_escapes: bool,
    /// `ANSI_QUOTES`: `"` quotes identifiers, not strings (matters when reading SHOW GRANTS).
    pub ansi_quotes: bool,
}

impl SqlMode {
    /// Parses `@@sql_mode` (a comma-separated list; the server expands combination modes such as
    /// `ANSI`, but MariaDB's `ORACLE`, `MSSQL`, `DB2`, `POSTGRESQL` and `MAXDB` imply
    /// `ANSI_QUOTES` too, so they are honoured even if listed alone).
    pub fn parse(sql_mode: &str) -> Self {
        let mut mode = Self::default();
        for flag in sql_mode.split(',').map(|f| f.trim().to_ascii_uppercase()) {
            match flag.as_str() {
                "NO_BACKSLASH_ESCAPES" => mode.no_backslash_escapes = true,
                "ANSI_QUOTES" | "ANSI" | "ORACLE" | "MSSQL" | "DB2" | "POSTGRESQL" | "MAXDB" => mode.ansi_quotes = true,
                _ => {}
            }
        }
        mode
    }
}

/// A NUL cannot be written into a literal safely (or used at all): refused.
#[derive(Debug, PartialEq, Eq)]
pub struct ContainsNul;

/// Appends `value` as a single-quoted string literal that the server reads back as exactly
/// `value` under `mode`.
pub fn push_string_literal(out: &mut String, value: &str, mode: SqlMode) -> Result<(), ContainsNul> {
    if value.contains('\0') {
        return Err(ContainsNul);
    }
    out.push('\'');
    for ch in value.chars() {
        match ch {
            '\'' if mode.no_backslash_escapes => out.push_str("''"),
            _ if mode.no_backslash_escapes => out.push(ch),
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    Ok(())
}

/// `value` as a string literal for `mode`. For names and other non-secrets.
pub fn string_literal(value: &str, mode: SqlMode) -> Result<String, DbError> {
    let mut out = String::with_capacity(value.len() + 2);
    push_string_literal(&mut out, value, mode)
        .map_err(|_| DbError::new(ErrorClass::Input, format!("{} contains a NUL character", dbcreds_core::sanitize::for_log(value))))?;
    Ok(out)
}

/// An identifier in backticks, backticks doubled. Safe under every `sql_mode`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for ch in name.chars() {
        if ch == '`' {
            out.push('`');
        }
        out.push(ch);
    }
    out.push('`');
    out
}

/// Validates a user name the caller gave us (MySQL family rules, 32 characters).
pub fn validate_user(field: &str, user: &str) -> Result<(), DbError> {
    validate_identifier(field, user, EngineFamily::MySql, IdentifierKind::User, None).map_err(DbError::from)
}

/// Validates a database name the caller gave us (64 characters).
pub fn validate_database(field: &str, database: &str) -> Result<(), DbError> {
    validate_identifier(field, database, EngineFamily::MySql, IdentifierKind::Database, None).map_err(DbError::from)
}

/// The `db` part of a database-level GRANT that means exactly `database`: in `GRANT ... ON db.*`
/// the name is a LIKE pattern, so `app_db` also matches `appXdb`; escaping `_` and `%` makes it
/// literal. MySQL with `partial_revokes=ON` reads the name literally already (`literal = true`).
pub fn database_grant_pattern(database: &str, literal: bool) -> String {
    if literal {
        return database.to_owned();
    }
    let mut out = String::with_capacity(database.len() + 4);
    for ch in database.chars() {
        if matches!(ch, '_' | '%' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// A user's account at one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account<'a> {
    pub user: &'a str,
    pub host: &'a str,
}

/// How a new account authenticates.
#[derive(Clone, Copy, Debug)]
pub enum AccountAuth<'a> {
    /// A password, optionally with the authentication plugin to use (to copy the source's plugin
    /// when mirroring: a clone on another plugin could lock out clients built for the first).
    Password { password: &'a SecretString, plugin: Option<&'a str> },
    /// RDS IAM authentication.
    Iam,
}

/// Password plugins whose name we put into SQL. Anything else falls back to the server default.
pub const MYSQL_PASSWORD_PLUGINS: &[&str] = &["caching_sha2_password", "mysql_native_password", "sha256_password"];

/// Builds statements for one server: its capabilities and its session's `sql_mode`.
#[derive(Clone, Copy, Debug)]
pub struct Dialect {
    pub caps: Capabilities,
    pub mode: SqlMode,
    /// Whether `_`/`%` in database-level grants are literal (MySQL `partial_revokes=ON`).
    pub literal_db_grants: bool,
}

impl Dialect {
    pub fn new(caps: Capabilities, mode: SqlMode) -> Self {
        Self { caps, mode, literal_db_grants: false }
    }

    /// `'user'@'host'`.
    pub fn account(&self, account: Account<'_>) -> Result<String, DbError> {
        Ok(format!("{}@{}", string_literal(account.user, self.mode)?, string_literal(account.host, self.mode)?))
    }

    pub fn create_database(&self, database: &str) -> Statement {
        Statement::plain(format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(database)))
    }

    /// `CREATE USER [IF NOT EXISTS] ... IDENTIFIED ... [REQUIRE ...] [WITH ...]`. IAM users
    /// always `REQUIRE SSL`: their token travels in clear text inside the TLS session.
    /// `if_not_exists` is honoured only when the server has it.
    pub fn create_user(
        &self,
        account: Account<'_>,
        auth: AccountAuth<'_>,
        tls: Option<&TlsRequirement>,
        limits: Option<&ResourceLimits>,
        if_not_exists: bool,
    ) -> Result<Statement, DbError> {
        let head = format!(
            "CREATE USER {}{} ",
            if if_not_exists && self.caps.user_if_exists { "IF NOT EXISTS " } else { "" },
            self.account(account)?
        );
        let iam_tls = TlsRequirement { ssl_type: SslType::Any, ..TlsRequirement::default() };
        let tls = match auth {
            AccountAuth::Iam => Some(tls.filter(|t| t.ssl_type != SslType::None).unwrap_or(&iam_tls)),
            AccountAuth::Password { .. } => tls,
        };
        // Old servers take REQUIRE/WITH only on GRANT; the caller applies them separately there.
        let tail = if self.caps.alter_user { self.tls_and_limits_clause(tls, limits)? } else { String::new() };
        match auth {
            AccountAuth::Iam => Ok(Statement::plain(format!("{head}IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'{tail}"))),
            AccountAuth::Password { password, plugin } => {
                let mut b = SecretStatementBuilder::new(password.len());
                b.sql(&head);
                self.identified_by(&mut b, password, plugin)?;
                b.sql(&tail);
                Ok(b.build())
            }
        }
    }

    /// Writes `IDENTIFIED [WITH plugin] BY '<secret>'` (or MariaDB's `IDENTIFIED VIA ed25519
    /// USING PASSWORD('<secret>')`).
    fn identified_by(&self, b: &mut SecretStatementBuilder, password: &SecretString, plugin: Option<&str>) -> Result<(), DbError> {
        match self.password_plugin(plugin) {
            PluginClause::Default => {
                b.sql("IDENTIFIED BY ").secret(password, self.mode)?;
            }
            PluginClause::MySqlWith(name) => {
                b.sql("IDENTIFIED WITH ").sql(name).sql(" BY ").secret(password, self.mode)?;
            }
            PluginClause::MariaDbVia(name) => {
                b.sql("IDENTIFIED VIA ").sql(name).sql(" USING PASSWORD(").secret(password, self.mode)?.sql(")");
            }
        }
        Ok(())
    }

    fn password_plugin<'p>(&self, plugin: Option<&'p str>) -> PluginClause<'p> {
        match plugin {
            Some(name) if self.caps.identified_with_plugin_by && MYSQL_PASSWORD_PLUGINS.contains(&name) => PluginClause::MySqlWith(name),
            Some(name @ "ed25519") if self.caps.roles == RoleModel::MariaDb && self.caps.alter_user => PluginClause::MariaDbVia(name),
            _ => PluginClause::Default,
        }
    }

    /// Sets an account's password: `ALTER USER ... IDENTIFIED BY` where the server has it,
    /// else `SET PASSWORD FOR ... = PASSWORD(...)`.
    pub fn set_password(&self, account: Account<'_>, password: &SecretString, plugin: Option<&str>) -> Result<Statement, DbError> {
        let mut b = SecretStatementBuilder::new(password.len());
        if self.caps.alter_user {
            b.sql("ALTER USER ").sql(&self.account(account)?).sql(" ");
            self.identified_by(&mut b, password, plugin)?;
        } else {
            b.sql("SET PASSWORD FOR ").sql(&self.account(account)?).sql(" = PASSWORD(").secret(password, self.mode)?.sql(")");
        }
        Ok(b.build())
    }

    /// Changes the logged-in user's own password (single-user rotation).
    pub fn set_own_password(&self, password: &SecretString) -> Result<Statement, DbError> {
        let mut b = SecretStatementBuilder::new(password.len());
        if self.caps.alter_own_password {
            b.sql("ALTER USER CURRENT_USER() IDENTIFIED BY ").secret(password, self.mode)?;
        } else {
            b.sql("SET PASSWORD = PASSWORD(").secret(password, self.mode)?.sql(")");
        }
        Ok(b.build())
    }

    pub fn drop_user(&self, account: Account<'_>) -> Result<Statement, DbError> {
        let if_exists = if self.caps.user_if_exists { "IF EXISTS " } else { "" };
        Ok(Statement::plain(format!("DROP USER {if_exists}{}", self.account(account)?)))
    }

    /// Sets an existing account's TLS requirement and resource limits.
    pub fn alter_tls_and_limits(&self, account: Account<'_>, tls: &TlsRequirement, limits: &ResourceLimits) -> Result<Statement, DbError> {
        let clause = self.tls_and_limits_clause(Some(tls), Some(limits))?;
        if self.caps.alter_user {
            Ok(Statement::plain(format!("ALTER USER {}{clause}", self.account(account)?)))
        } else {
            Ok(Statement::plain(format!("GRANT USAGE ON *.* TO {}{clause}", self.account(account)?)))
        }
    }

    /// ` REQUIRE ... WITH ...` (each part only when given).
    fn tls_and_limits_clause(&self, tls: Option<&TlsRequirement>, limits: Option<&ResourceLimits>) -> Result<String, DbError> {
        let mut out = String::new();
        if let Some(tls) = tls {
            out.push_str(" REQUIRE ");
            match tls.ssl_type {
                SslType::None => out.push_str("NONE"),
                SslType::Any => out.push_str("SSL"),
                SslType::X509 => out.push_str("X509"),
                SslType::Specified => {
                    let mut parts = Vec::new();
                    for (word, value) in [("ISSUER", &tls.issuer), ("SUBJECT", &tls.subject), ("CIPHER", &tls.cipher)] {
                        if !value.is_empty() {
                            parts.push(format!("{word} {}", string_literal(value, self.mode)?));
                        }
                    }
                    if parts.is_empty() {
                        // SPECIFIED with nothing specified cannot be written back; X509 is the
                        // closest requirement that is at least as strict as TLS.
                        out.push_str("X509");
                    } else {
                        out.push_str(&parts.join(" AND "));
                    }
                }
            }
        }
        if let Some(limits) = limits {
            out.push_str(&format!(
                " WITH MAX_QUERIES_PER_HOUR {} MAX_UPDATES_PER_HOUR {} MAX_CONNECTIONS_PER_HOUR {} MAX_USER_CONNECTIONS {}",
                limits.max_queries_per_hour, limits.max_updates_per_hour, limits.max_connections_per_hour, limits.max_user_connections
            ));
            if let Some(seconds) = limits.max_statement_time.as_ref().filter(|_| self.caps.max_statement_time) {
                if !is_decimal(seconds) {
                    return Err(DbError::new(ErrorClass::Internal, format!("unexpected max_statement_time {}", dbcreds_core::sanitize::for_log(seconds))));
                }
                out.push_str(&format!(" MAX_STATEMENT_TIME {seconds}"));
            }
        }
        Ok(out)
    }

    /// `GRANT <privileges> ON <object> TO <account> [WITH GRANT OPTION]`.
    pub fn grant(&self, object: &ObjectKey, privileges: &[PrivilegeItem], account: Account<'_>, with_grant_option: bool) -> Result<Statement, DbError> {
        let option = if with_grant_option { " WITH GRANT OPTION" } else { "" };
        Ok(Statement::plain(format!(
            "GRANT {} ON {} TO {}{option}",
            render_privileges(privileges)?,
            render_object(object)?,
            self.account(account)?
        )))
    }

    /// `REVOKE <privileges> ON <object> FROM <account>`.
    pub fn revoke(&self, object: &ObjectKey, privileges: &[PrivilegeItem], account: Account<'_>) -> Result<Statement, DbError> {
        Ok(Statement::plain(format!("REVOKE {} ON {} FROM {}", render_privileges(privileges)?, render_object(object)?, self.account(account)?)))
    }

    pub fn revoke_grant_option(&self, object: &ObjectKey, account: Account<'_>) -> Result<Statement, DbError> {
        Ok(Statement::plain(format!("REVOKE GRANT OPTION ON {} FROM {}", render_object(object)?, self.account(account)?)))
    }

    /// A role as the server names it: `'r'@'h'` on MySQL, `` `r` `` on MariaDB.
    pub fn role(&self, role: &RoleRef) -> Result<String, DbError> {
        match &role.host {
            Some(host) => self.account(Account { user: &role.name, host }),
            None => Ok(quote_ident(&role.name)),
        }
    }

    pub fn grant_role(&self, role: &RoleRef, account: Account<'_>, admin_option: bool) -> Result<Statement, DbError> {
        let option = if admin_option { " WITH ADMIN OPTION" } else { "" };
        Ok(Statement::plain(format!("GRANT {} TO {}{option}", self.role(role)?, self.account(account)?)))
    }

    pub fn revoke_role(&self, role: &RoleRef, account: Account<'_>) -> Result<Statement, DbError> {
        Ok(Statement::plain(format!("REVOKE {} FROM {}", self.role(role)?, self.account(account)?)))
    }

    /// MariaDB only; MySQL has no statement that drops just the admin option.
    pub fn revoke_role_admin_option(&self, role: &RoleRef, account: Account<'_>) -> Result<Statement, DbError> {
        Ok(Statement::plain(format!("REVOKE ADMIN OPTION FOR {} FROM {}", self.role(role)?, self.account(account)?)))
    }

    /// Sets the account's default roles (MySQL: any number, `TO`; MariaDB: at most one, `FOR`).
    pub fn set_default_roles(&self, account: Account<'_>, roles: &[RoleRef]) -> Result<Statement, DbError> {
        let list = if roles.is_empty() {
            "NONE".to_owned()
        } else {
            roles.iter().map(|r| self.role(r)).collect::<Result<Vec<_>, _>>()?.join(", ")
        };
        let preposition = if self.caps.roles == RoleModel::MariaDb { "FOR" } else { "TO" };
        Ok(Statement::plain(format!("SET DEFAULT ROLE {list} {preposition} {}", self.account(account)?)))
    }

    pub fn grant_proxy(&self, proxied: Account<'_>, account: Account<'_>, with_grant_option: bool) -> Result<Statement, DbError> {
        let option = if with_grant_option { " WITH GRANT OPTION" } else { "" };
        Ok(Statement::plain(format!("GRANT PROXY ON {} TO {}{option}", self.account(proxied)?, self.account(account)?)))
    }

    pub fn revoke_proxy(&self, proxied: Account<'_>, account: Account<'_>) -> Result<Statement, DbError> {
        Ok(Statement::plain(format!("REVOKE PROXY ON {} FROM {}", self.account(proxied)?, self.account(account)?)))
    }
}

enum PluginClause<'p> {
    Default,
    MySqlWith(&'p str),
    MariaDbVia(&'p str),
}

/// One entry of a GRANT/REVOKE privilege list: a privilege, on the whole object or on columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivilegeItem {
    pub privilege: String,
    /// Empty: the whole object. Otherwise a column privilege on these columns.
    pub columns: Vec<String>,
}

impl PrivilegeItem {
    pub fn object(privilege: impl Into<String>) -> Self {
        Self { privilege: privilege.into(), columns: Vec::new() }
    }
}

/// A privilege name is one or more upper-case words (`SELECT`, `CREATE TEMPORARY TABLES`,
/// `BINLOG_ADMIN`). Checked before it is spliced, whatever its source.
pub fn is_privilege_name(name: &str) -> bool {
    !name.is_empty()
        && name.split(' ').all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
}

fn render_privileges(items: &[PrivilegeItem]) -> Result<String, DbError> {
    if items.is_empty() {
        return Err(DbError::new(ErrorClass::Internal, "a GRANT/REVOKE needs at least one privilege"));
    }
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        if !is_privilege_name(&item.privilege) {
            return Err(DbError::new(ErrorClass::Internal, format!("refusing unexpected privilege name {}", dbcreds_core::sanitize::for_log(&item.privilege))));
        }
        if item.columns.is_empty() {
            parts.push(item.privilege.clone());
        } else {
            let columns: Vec<String> = item.columns.iter().map(|c| quote_ident(c)).collect();
            parts.push(format!("{} ({})", item.privilege, columns.join(", ")));
        }
    }
    Ok(parts.join(", "))
}

/// The `ON` target of a GRANT/REVOKE.
pub fn render_object(object: &ObjectKey) -> Result<String, DbError> {
    Ok(match object {
        ObjectKey::Global => "*.*".to_owned(),
        ObjectKey::Database(pattern) => format!("{}.*", quote_ident(pattern)),
        ObjectKey::Table { database, table } => format!("{}.{}", quote_ident(database), quote_ident(table)),
        ObjectKey::Routine { kind, database, name } => format!("{} {}.{}", kind.keyword(), quote_ident(database), quote_ident(name)),
    })
}

fn is_decimal(text: &str) -> bool {
    let mut dots = 0;
    !text.is_empty()
        && text.chars().all(|c| {
            if c == '.' {
                dots += 1;
            }
            c.is_ascii_digit() || c == '.'
        })
        && dots <= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::flavor::Capabilities;
    use crate::mysql::grants::RoutineKind;
    use crate::server::{Flavor, ServerInfo};

    fn dialect(flavor: Flavor, version: (u32, u32, u32), mode: &str) -> Dialect {
        Dialect::new(Capabilities::of(&ServerInfo { flavor, version, version_string: String::new() }), SqlMode::parse(mode))
    }

    fn mariadb() -> Dialect {
        dialect(Flavor::MariaDb, (10, 11, 8), "STRICT_TRANS_TABLES")
    }

    fn mysql8() -> Dialect {
        dialect(Flavor::MySql, (8, 0, 39), "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES")
    }

    fn literal(value: &str, mode: &str) -> String {
        string_literal(value, SqlMode::parse(mode)).unwrap()
    }

    #[test]
    fn sql_mode_flags_are_read_from_the_list() {
        assert_eq!(SqlMode::parse(""), SqlMode::default());
        assert!(SqlMode::parse("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES").no_backslash_escapes);
        assert!(SqlMode::parse("REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI").ansi_quotes);
        assert!(SqlMode::parse("oracle").ansi_quotes);
        assert!(!SqlMode::parse("NO_BACKSLASH_ESCAPES_NOT").no_backslash_escapes);
    }

    #[test]
    fn literals_escape_quotes_and_backslashes_for_the_mode() {
        assert_eq!(literal("it's", ""), r"'it\'s'");
        assert_eq!(literal(r"a\b", ""), r"'a\\b'");
        assert_eq!(literal(r"a\'b", ""), r"'a\\\'b'");
        assert_eq!(literal("line\nbreak\r\x1a", ""), r"'line\nbreak\r\Z'");
        assert_eq!(literal("%_\"`", ""), "'%_\"`'");
        // Under NO_BACKSLASH_ESCAPES a backslash is literal and a quote is doubled.
        assert_eq!(literal("it's", "NO_BACKSLASH_ESCAPES"), "'it''s'");
        assert_eq!(literal(r"a\'b", "NO_BACKSLASH_ESCAPES"), r"'a\''b'");
        assert_eq!(literal(r"ends with \", "NO_BACKSLASH_ESCAPES"), r"'ends with \'");
        assert!(string_literal("a\0b", SqlMode::default()).is_err());
    }

    /// A reader of MySQL string literals, as the server's lexer reads them, to prove round trips.
    fn unescape(literal: &str, mode: SqlMode) -> String {
        let inner = &literal[1..literal.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if !mode.no_backslash_escapes => match chars.next().unwrap() {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    'Z' => out.push('\x1a'),
                    '0' => out.push('\0'),
                    other => out.push(other),
                },
                '\'' => {
                    assert_eq!(chars.next(), Some('\''), "an unescaped quote ends the literal early: {literal}");
                    out.push('\'');
                }
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn every_printable_ascii_character_round_trips_in_both_modes() {
        let all: String = (0x20u8..0x7f).map(char::from).collect();
        for mode in [SqlMode::default(), SqlMode::parse("NO_BACKSLASH_ESCAPES")] {
            let lit = string_literal(&all, mode).unwrap();
            assert_eq!(unescape(&lit, mode), all, "{mode:?}");
            for c in all.chars() {
                for s in [c.to_string(), format!("{c}{c}"), format!("x{c}"), format!("{c}x")] {
                    assert_eq!(unescape(&string_literal(&s, mode).unwrap(), mode), s);
                }
            }
        }
    }

    #[test]
    fn identifiers_double_backticks() {
        assert_eq!(quote_ident("app"), "`app`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("``"), "``````");
        assert_eq!(quote_ident("x'; DROP"), "`x'; DROP`");
    }

    #[test]
    fn hostile_names_are_refused_before_any_sql() {
        for name in ["a'; DROP USER root; --", "a`b", "a\"b", "a\0b", "", &"x".repeat(33)] {
            let err = validate_user("user", name).unwrap_err();
            assert_eq!(err.class, ErrorClass::Input, "{name:?}");
        }
        assert!(validate_database("database", &"d".repeat(65)).is_err());
        validate_database("database", &"d".repeat(64)).unwrap();
    }

    #[test]
    fn database_grants_escape_like_wildcards() {
        assert_eq!(database_grant_pattern("app_db", false), r"app\_db");
        assert_eq!(database_grant_pattern("a%b\\", false), r"a\%b\\");
        assert_eq!(database_grant_pattern("app_db", true), "app_db");
        let object = ObjectKey::Database(database_grant_pattern("app_db", false));
        assert_eq!(render_object(&object).unwrap(), r"`app\_db`.*");
    }

    #[test]
    fn password_statements_carry_the_literal_but_never_show_it() {
        let password = SecretString::from(r"p'a\ss");
        let d = mariadb();
        let stmt = d.set_password(Account { user: "app", host: "%" }, &password, None).unwrap();
        assert_eq!(stmt.sql(), r"ALTER USER 'app'@'%' IDENTIFIED BY 'p\'a\\ss'");
        assert_eq!(stmt.redacted(), "ALTER USER 'app'@'%' IDENTIFIED BY '<redacted>'");
        assert!(stmt.carries_secret());
        for shown in [format!("{stmt}"), format!("{stmt:?}")] {
            assert!(!shown.contains("ss'"), "{shown}");
        }
        let nbe = dialect(Flavor::MariaDb, (10, 11, 8), "NO_BACKSLASH_ESCAPES");
        assert_eq!(nbe.set_own_password(&password).unwrap().sql(), r"SET PASSWORD = PASSWORD('p''a\ss')");
        let nbe = dialect(Flavor::MySql, (8, 0, 39), "NO_BACKSLASH_ESCAPES");
        assert_eq!(nbe.set_own_password(&password).unwrap().sql(), r"ALTER USER CURRENT_USER() IDENTIFIED BY 'p''a\ss'");
        assert!(d.set_own_password(&SecretString::from("a\0b")).is_err());
    }

    #[test]
    fn password_syntax_follows_capabilities() {
        let pw = SecretString::from("pw");
        let app = Account { user: "app", host: "%" };
        // Old servers: SET PASSWORD with PASSWORD().
        let mysql56 = dialect(Flavor::MySql, (5, 6, 51), "");
        assert_eq!(mysql56.set_password(app, &pw, None).unwrap().sql(), "SET PASSWORD FOR 'app'@'%' = PASSWORD('pw')");
        assert_eq!(mysql56.set_own_password(&pw).unwrap().sql(), "SET PASSWORD = PASSWORD('pw')");
        // MariaDB refuses ALTER USER without CREATE USER, even for one's own account.
        for version in [(10, 1, 48), (10, 11, 8), (11, 4, 2)] {
            assert_eq!(dialect(Flavor::MariaDb, version, "").set_own_password(&pw).unwrap().sql(), "SET PASSWORD = PASSWORD('pw')");
        }
        // MySQL 9 gets modern syntax.
        let mysql9 = dialect(Flavor::MySql, (9, 1, 0), "");
        assert_eq!(mysql9.set_own_password(&pw).unwrap().sql(), "ALTER USER CURRENT_USER() IDENTIFIED BY 'pw'");
        // Plugins are copied only from the allow-list.
        assert_eq!(
            mysql8().set_password(app, &pw, Some("mysql_native_password")).unwrap().sql(),
            "ALTER USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY 'pw'"
        );
        assert_eq!(mysql8().set_password(app, &pw, Some("evil' OR 1")).unwrap().sql(), "ALTER USER 'app'@'%' IDENTIFIED BY 'pw'");
        assert_eq!(
            mariadb().set_password(app, &pw, Some("ed25519")).unwrap().sql(),
            "ALTER USER 'app'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('pw')"
        );
        assert_eq!(mariadb().set_password(app, &pw, Some("mysql_native_password")).unwrap().sql(), "ALTER USER 'app'@'%' IDENTIFIED BY 'pw'");
    }

    #[test]
    fn create_user_for_passwords_and_iam() {
        let pw = SecretString::from("pw");
        let app = Account { user: "app", host: "%" };
        let stmt = mysql8().create_user(app, AccountAuth::Password { password: &pw, plugin: None }, None, None, true).unwrap();
        assert_eq!(stmt.sql(), "CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'pw'");
        let iam = mysql8().create_user(Account { user: "app_iam", host: "%" }, AccountAuth::Iam, None, None, true).unwrap();
        assert_eq!(iam.sql(), "CREATE USER IF NOT EXISTS 'app_iam'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL");
        assert!(!iam.carries_secret());
        // An IAM user asked to REQUIRE NONE still requires TLS.
        let none = TlsRequirement::default();
        let iam = mariadb().create_user(app, AccountAuth::Iam, Some(&none), None, false).unwrap();
        assert_eq!(iam.sql(), "CREATE USER 'app'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL");
        let old = dialect(Flavor::MySql, (5, 6, 10), "");
        assert_eq!(old.create_user(app, AccountAuth::Password { password: &pw, plugin: None }, None, None, true).unwrap().sql(), "CREATE USER 'app'@'%' IDENTIFIED BY 'pw'");
    }

    #[test]
    fn create_user_copies_tls_and_limits() {
        let pw = SecretString::from("pw");
        let tls = TlsRequirement { ssl_type: SslType::Specified, cipher: String::new(), issuer: "/CN=ca".into(), subject: "/CN=o'brien".into() };
        let limits = ResourceLimits { max_queries_per_hour: 10, max_updates_per_hour: 0, max_connections_per_hour: 5, max_user_connections: 2, max_statement_time: Some("1.500000".into()) };
        let stmt = mariadb()
            .create_user(Account { user: "app_clone", host: "10.0.%" }, AccountAuth::Password { password: &pw, plugin: None }, Some(&tls), Some(&limits), false)
            .unwrap();
        assert_eq!(
            stmt.redacted(),
            r"CREATE USER 'app_clone'@'10.0.%' IDENTIFIED BY '<redacted>' REQUIRE ISSUER '/CN=ca' AND SUBJECT '/CN=o\'brien' WITH MAX_QUERIES_PER_HOUR 10 MAX_UPDATES_PER_HOUR 0 MAX_CONNECTIONS_PER_HOUR 5 MAX_USER_CONNECTIONS 2 MAX_STATEMENT_TIME 1.500000"
        );
        // MySQL has no MAX_STATEMENT_TIME limit.
        let alter = mysql8().alter_tls_and_limits(Account { user: "a", host: "%" }, &TlsRequirement { ssl_type: SslType::X509, ..Default::default() }, &limits).unwrap();
        assert_eq!(alter.sql(), "ALTER USER 'a'@'%' REQUIRE X509 WITH MAX_QUERIES_PER_HOUR 10 MAX_UPDATES_PER_HOUR 0 MAX_CONNECTIONS_PER_HOUR 5 MAX_USER_CONNECTIONS 2");
        let old = dialect(Flavor::MySql, (5, 6, 10), "");
        let alter = old.alter_tls_and_limits(Account { user: "a", host: "%" }, &TlsRequirement { ssl_type: SslType::Any, ..Default::default() }, &ResourceLimits::default()).unwrap();
        assert!(alter.sql().starts_with("GRANT USAGE ON *.* TO 'a'@'%' REQUIRE SSL WITH "), "{alter}");
        let bad = ResourceLimits { max_statement_time: Some("1; DROP".into()), ..Default::default() };
        assert!(mariadb().alter_tls_and_limits(Account { user: "a", host: "%" }, &tls, &bad).is_err());
    }

    #[test]
    fn grants_render_objects_privileges_and_columns() {
        let acct = Account { user: "app", host: "%" };
        let d = mariadb();
        let table = ObjectKey::Table { database: "app_db".into(), table: "t`1".into() };
        let items = vec![PrivilegeItem::object("SELECT"), PrivilegeItem { privilege: "UPDATE".into(), columns: vec!["a".into(), "b".into()] }];
        assert_eq!(d.grant(&table, &items, acct, true).unwrap().sql(), "GRANT SELECT, UPDATE (`a`, `b`) ON `app_db`.`t``1` TO 'app'@'%' WITH GRANT OPTION");
        assert_eq!(d.revoke(&ObjectKey::Global, &[PrivilegeItem::object("PROCESS")], acct).unwrap().sql(), "REVOKE PROCESS ON *.* FROM 'app'@'%'");
        let routine = ObjectKey::Routine { kind: RoutineKind::Procedure, database: "db".into(), name: "p".into() };
        assert_eq!(d.revoke_grant_option(&routine, acct).unwrap().sql(), "REVOKE GRANT OPTION ON PROCEDURE `db`.`p` FROM 'app'@'%'");
        assert!(d.grant(&table, &[PrivilegeItem::object("SELECT ON *.* TO x; --")], acct, false).is_err());
        assert!(d.grant(&table, &[], acct, false).is_err());
    }

    #[test]
    fn roles_and_default_roles_per_flavour() {
        let acct = Account { user: "app", host: "%" };
        let maria_role = RoleRef { name: "reader".into(), host: None };
        let mysql_role = RoleRef { name: "reader".into(), host: Some("%".into()) };
        assert_eq!(mariadb().grant_role(&maria_role, acct, true).unwrap().sql(), "GRANT `reader` TO 'app'@'%' WITH ADMIN OPTION");
        assert_eq!(mysql8().revoke_role(&mysql_role, acct).unwrap().sql(), "REVOKE 'reader'@'%' FROM 'app'@'%'");
        assert_eq!(mariadb().set_default_roles(acct, &[maria_role.clone()]).unwrap().sql(), "SET DEFAULT ROLE `reader` FOR 'app'@'%'");
        assert_eq!(mariadb().set_default_roles(acct, &[]).unwrap().sql(), "SET DEFAULT ROLE NONE FOR 'app'@'%'");
        let writer = RoleRef { name: "writer".into(), host: Some("%".into()) };
        assert_eq!(mysql8().set_default_roles(acct, &[mysql_role, writer]).unwrap().sql(), "SET DEFAULT ROLE 'reader'@'%', 'writer'@'%' TO 'app'@'%'");
    }

    #[test]
    fn hosts_from_the_catalog_are_escaped_not_trusted() {
        let d = mariadb();
        assert_eq!(d.account(Account { user: "u", host: "h'x" }).unwrap(), r"'u'@'h\'x'");
        assert_eq!(d.drop_user(Account { user: "u", host: "10.0.%" }).unwrap().sql(), "DROP USER IF EXISTS 'u'@'10.0.%'");
    }
}
