//! The live PostgreSQL session: connecting, running statements under the deadline, and the
//! `Session`, `UserAdmin` and `GrantAdmin` operations on top of the pure SQL of [`super::sql`].

use super::classify::{classify, classify_connect, classify_tcp, has_sqlstate};
use super::detect::{self, Capabilities};
use super::grants::{self, CurrentAcls, DefaultAcl, ObjectAcl, PrivilegeSet, Privileges};
use super::mirror::{self, Attributes, MembershipGrant, RoleState};
use super::scram::ScramVerifier;
use super::sql::{self, Ident, MembershipOptions, ObjectKind, Statement};
use super::tls_version::{HelloSniffer, RecordingConnect, VersionSlot};
use crate::connect::{ConnectSpec, Credential};
use crate::error::DbError;
use crate::privileges::{GrantChange, PrivilegeSpec};
use crate::server::{ServerInfo, Transport};
use crate::session::{AdminSession, GrantAdmin, Identity, NewUserAuth, Session, UserAdmin};
use async_trait::async_trait;
use dbcreds_core::{ErrorClass, InputError, SecretString};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The database a PostgreSQL login uses when the secret names none.
pub const DEFAULT_DATABASE: &str = "postgres";

/// How much later than our deadline the server cancels a statement by itself.
const SERVER_TIMEOUT_MARGIN_MS: u128 = 500;

/// How long `close` waits for the server to acknowledge the goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Opens a session: DNS, TCP, TLS (verify-full unless the policy is `Disabled`), login, and
/// server detection, all before `spec.deadline`.
pub async fn connect(spec: &ConnectSpec) -> Result<Box<dyn AdminSession>, DbError> {
    Ok(Box::new(PgSession::open(spec).await?))
}

pub(crate) struct PgSession {
    /// `None` once the connection is unusable (after a deadline or a broken connection).
    client: Option<Client>,
    task: Option<JoinHandle<()>>,
    /// Kept to open a second connection to another database of the same server.
    spec: ConnectSpec,
    server: ServerInfo,
    caps: Capabilities,
    transport: Transport,
    session_user: Ident,
    database: String,
    superuser: bool,
    /// The last session opened on another database of the server (table and default privileges
    /// live in each database's catalog), kept for the next call there: a provisioner granting N
    /// users on a new database then logs in there once, not N times.
    elsewhere: Option<Box<PgSession>>,
}

/// Why a bounded call failed: the server said no, or time ran out.
enum Failure {
    Db(DbError),
    Elapsed(DbError),
}

async fn bounded<T>(deadline: Instant, what: &str, call: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, Failure> {
    match timeout_at(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Failure::Db(classify(&err, what))),
        Err(_) => Err(Failure::Elapsed(DbError::new(
            ErrorClass::Deadline,
            format!("{what} did not finish before the deadline; the connection was closed and the server cancels the statement at its statement_timeout"),
        ))),
    }
}

fn input(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> DbError {
    DbError::from(InputError::invalid(field, problem, fix))
}

impl PgSession {
    pub(crate) async fn open(spec: &ConnectSpec) -> Result<Self, DbError> {
        let endpoint = format!("{}:{}", spec.host, spec.port);
        if spec.username.is_empty() || spec.username.contains('\0') {
            return Err(input("username", "is empty or contains a NUL byte", "set the database user name"));
        }
        if matches!(spec.credential, Credential::IamToken(_)) && !spec.tls.is_tls() {
            return Err(input("ssl", "an IAM authentication token may only be sent over verified TLS", "remove \"ssl\": false from the secret"));
        }
        let database = spec.database.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        if database.contains('\0') {
            return Err(input("dbname", "contains a NUL byte", "fix the database name"));
        }
        if Instant::now() >= spec.deadline {
            return Err(DbError::new(ErrorClass::Deadline, format!("no time left to connect to {endpoint}")));
        }

        let stream = tcp_connect(spec, &endpoint).await?;
        let mut config = Config::new();
        config
            .user(&spec.username)
            .password(spec.credential.secret().expose().as_bytes())
            .dbname(&database)
            .application_name("dbcreds");
        let slot: VersionSlot = Arc::default();
        let login = async {
            if spec.tls.is_tls() {
                config.ssl_mode(SslMode::Require);
                let mut make = MakeRustlsConnect::new((*spec.trust.client_config()).clone());
                let tls = <MakeRustlsConnect as MakeTlsConnect<HelloSniffer<TcpStream>>>::make_tls_connect(&mut make, &spec.host)
                    .map_err(|_| input("host", format!("{} is not a valid TLS server name", dbcreds_core::sanitize::for_log(&spec.host)), "use the endpoint's DNS name"))?;
                let (client, connection) = config.connect_raw(stream, RecordingConnect { inner: tls, slot: slot.clone() }).await.map_err(|e| classify_connect(&e, &endpoint))?;
                Ok::<_, DbError>((client, spawn_connection(connection)))
            } else {
                config.ssl_mode(SslMode::Disable);
                let (client, connection) = config.connect_raw(stream, NoTls).await.map_err(|e| classify_connect(&e, &endpoint))?;
                Ok((client, spawn_connection(connection)))
            }
        };
        let (client, task) = match timeout_at(spec.deadline, login).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(DbError::new(
                    ErrorClass::Deadline,
                    format!("{endpoint} accepted the TCP connection, but the TLS handshake and login did not finish before the deadline"),
                ));
            }
        };
        let transport = Transport { tls_version: spec.tls.is_tls().then(|| slot.get().copied().unwrap_or("TLS (version not seen)").to_owned()), certificate_verified: spec.tls.is_tls() };

        let mut session = PgSession {
            client: Some(client),
            task: Some(task),
            spec: spec.clone(),
            server: ServerInfo { flavor: crate::server::Flavor::Postgres, version: (0, 0, 0), version_string: String::new() },
            caps: Capabilities::for_version_num(0),
            transport,
            session_user: Ident::from_catalog(&spec.username),
            database,
            superuser: false,
            elsewhere: None,
        };
        session.detect().await?;
        Ok(session)
    }

    /// Asks the server what it is and who we are, and bounds every later statement on the
    /// server side too: `statement_timeout` is the time left now, so a statement we stop waiting
    /// for at the deadline is cancelled by the server shortly after.
    async fn detect(&mut self) -> Result<(), DbError> {
        // A little after our own deadline, so it is our timer that reports the deadline.
        let left = (self.spec.deadline.saturating_duration_since(Instant::now()).as_millis() + SERVER_TIMEOUT_MARGIN_MS).min(i32::MAX as u128);
        let sql = format!("SET statement_timeout = {left}; {}", detect::DETECT_SQL);
        let rows = text_rows(self.simple("detecting the server version", &sql).await?);
        let row = rows.into_iter().next().ok_or_else(|| DbError::new(ErrorClass::Internal, "the server returned nothing for the version query"))?;
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let version_num = detect::parse_version_num(&field(0))?;
        let aurora = if field(5) == "t" {
            let rows = text_rows(self.simple("reading aurora_version()", detect::AURORA_VERSION_SQL).await?);
            rows.into_iter().next().and_then(|r| r.into_iter().next().flatten())
        } else {
            None
        };
        self.server = detect::server_info(version_num, &field(1), aurora.as_deref())?;
        self.caps = Capabilities::for_version_num(version_num);
        self.session_user = Ident::from_catalog(&field(2));
        self.database = field(3);
        self.superuser = field(4) == "t";
        Ok(())
    }

    fn client(&self) -> Result<&Client, DbError> {
        self.client.as_ref().ok_or_else(|| DbError::new(ErrorClass::ConnectionLost, "the session was closed after an earlier failure; open a new one"))
    }

    /// Drops the connection: the session is unusable after a deadline or a broken connection.
    fn poison(&mut self) {
        self.client = None;
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    fn settle<T>(&mut self, result: Result<T, Failure>) -> Result<T, DbError> {
        match result {
            Ok(value) => Ok(value),
            Err(Failure::Db(err)) => {
                if err.class == ErrorClass::ConnectionLost {
                    self.poison();
                }
                Err(err)
            }
            Err(Failure::Elapsed(err)) => {
                self.poison();
                Err(err)
            }
        }
    }

    async fn simple(&mut self, what: &str, sql: &str) -> Result<Vec<SimpleQueryMessage>, DbError> {
        let deadline = self.spec.deadline;
        let result = {
            let client = self.client()?;
            bounded(deadline, what, client.simple_query(sql)).await
        };
        self.settle(result)
    }

    /// A catalog query with text parameters, in one round trip (no separate prepare).
    async fn rows(&mut self, what: &str, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>, DbError> {
        let deadline = self.spec.deadline;
        let result = {
            let client = self.client()?;
            bounded(deadline, what, client.query_typed(sql, params)).await
        };
        self.settle(result)
    }

    /// Runs statements as one transaction in one round trip. On failure the transaction is
    /// rolled back, so nothing of it stays. The error never contains the statements.
    async fn script(&mut self, what: &str, statements: &[Statement]) -> Result<(), DbError> {
        if statements.is_empty() {
            return Ok(());
        }
        for statement in statements {
            tracing::debug!(sql = %statement.redacted(), "postgres statement");
        }
        let script = sql::transaction(statements);
        let text = script.expose();
        let deadline = self.spec.deadline;
        let result = {
            let client = self.client()?;
            bounded(deadline, what, client.batch_execute(&text)).await
        };
        drop(text);
        if let Err(Failure::Db(_)) = &result {
            // An error inside BEGIN ... COMMIT leaves the transaction open and aborted.
            if let Some(client) = &self.client {
                let _ = timeout_at(deadline, client.batch_execute("ROLLBACK")).await;
            }
        }
        self.settle(result)
    }

    async fn role_exists(&mut self, name: &str) -> Result<bool, DbError> {
        let rows = self.rows("looking up the role", "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1::name", &[(&name, Type::TEXT)]).await?;
        Ok(!rows.is_empty())
    }

    /// Whether the session user must borrow the privileges of `role` (see
    /// [`sql::borrow_privileges`]): never for a superuser or the role itself. Before PostgreSQL 16
    /// a membership is one row, so the session borrows only when it is no member at all (granting
    /// an existing membership does nothing, and revoking it afterwards would remove the original).
    /// From 16 on, grants are per grantor, and the session borrows when it lacks the privileges.
    async fn must_borrow(&mut self, role: &str) -> Result<bool, DbError> {
        if self.superuser || role == self.session_user.name() {
            return Ok(false);
        }
        let mode = if self.caps.membership_options { "USAGE" } else { "MEMBER" };
        let rows = self
            .rows("checking role membership", "SELECT pg_catalog.pg_has_role(session_user, $1::name, $2)", &[(&role, Type::TEXT), (&mode, Type::TEXT)])
            .await?;
        Ok(!rows.first().map(|r| r.get::<_, bool>(0)).unwrap_or(false))
    }

    /// A second session with the same login on another database of the same server.
    async fn open_on(&self, database: &str) -> Result<PgSession, DbError> {
        let mut spec = self.spec.clone();
        spec.database = Some(database.to_owned());
        PgSession::open(&spec).await
    }

    /// A session on `database` as the same login: the one kept from the last call there if it
    /// is still usable, else a new one. Give it back with [`PgSession::keep_elsewhere`].
    async fn session_on(&mut self, database: &str) -> Result<Box<PgSession>, DbError> {
        match self.elsewhere.take() {
            Some(kept) if kept.database == database && kept.client.is_some() => Ok(kept),
            other => {
                if let Some(stale) = other {
                    stale.close().await;
                }
                Ok(Box::new(self.open_on(database).await?))
            }
        }
    }

    fn keep_elsewhere(&mut self, session: Box<PgSession>) {
        self.elsewhere = Some(session);
    }

    async fn read_roles(&mut self, names: &[&str]) -> Result<BTreeMap<String, RoleState>, DbError> {
        let (a, b) = (names[0], *names.get(1).unwrap_or(&names[0]));
        let rows = self
            .rows(
                "reading role attributes",
                "SELECT rolname::text, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, \
                 CASE WHEN rolvaliduntil IS NULL OR rolvaliduntil = 'infinity' THEN NULL ELSE rolvaliduntil::text END, \
                 COALESCE(rolconfig, '{}'::text[]) \
                 FROM pg_catalog.pg_roles WHERE rolname IN ($1::name, $2::name)",
                &[(&a, Type::TEXT), (&b, Type::TEXT)],
            )
            .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            let config: Vec<String> = row.get(10);
            let config = config.iter().filter_map(|entry| sql::split_setting(entry)).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            let attributes = Attributes {
                superuser: row.get(1),
                createdb: row.get(2),
                createrole: row.get(3),
                inherit: row.get(4),
                login: row.get(5),
                replication: row.get(6),
                bypassrls: row.get(7),
                connection_limit: row.get(8),
                valid_until: row.get(9),
            };
            out.insert(row.get::<_, String>(0), RoleState { attributes, config, memberships: BTreeMap::new() });
        }
        let options = if self.caps.membership_options { "m.inherit_option, m.set_option" } else { "true, true" };
        let rows = self
            .rows(
                "reading role memberships",
                &format!(
                    "SELECT mem.rolname::text, r.rolname::text, g.rolname::text, m.admin_option, {options} \
                     FROM pg_catalog.pg_auth_members m \
                     JOIN pg_catalog.pg_roles r ON r.oid = m.roleid \
                     JOIN pg_catalog.pg_roles mem ON mem.oid = m.member \
                     LEFT JOIN pg_catalog.pg_roles g ON g.oid = m.grantor \
                     WHERE mem.rolname IN ($1::name, $2::name)"
                ),
                &[(&a, Type::TEXT), (&b, Type::TEXT)],
            )
            .await?;
        for row in rows {
            let member: String = row.get(0);
            if let Some(state) = out.get_mut(&member) {
                let grant = MembershipGrant { grantor: row.get(2), options: MembershipOptions { admin: row.get(3), inherit: row.get(4), set: row.get(5) } };
                state.memberships.entry(row.get::<_, String>(1)).or_default().push(grant);
            }
        }
        Ok(out)
    }

    /// Databases other than the connected one where `role` owns objects or holds privileges.
    async fn other_databases_of(&mut self, role: &str, owned_only: bool) -> Result<Vec<String>, DbError> {
        let rows = self
            .rows(
                "finding the role's objects in other databases",
                "SELECT DISTINCT d.datname::text FROM pg_catalog.pg_shdepend s \
                 JOIN pg_catalog.pg_database d ON d.oid = s.dbid \
                 WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass \
                 AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1::name) \
                 AND d.datname <> current_database() AND (NOT $2 OR s.deptype = 'o') ORDER BY 1",
                &[(&role, Type::TEXT), (&owned_only, Type::BOOL)],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether `role` owns anything in the connected database (or a shared object).
    async fn owns_objects_here(&mut self, role: &str) -> Result<bool, DbError> {
        let rows = self
            .rows(
                "looking for objects the role owns",
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend s \
                 WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass \
                 AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1::name) \
                 AND s.deptype = 'o' \
                 AND s.dbid IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())))",
                &[(&role, Type::TEXT)],
            )
            .await?;
        Ok(rows.first().map(|r| r.get::<_, bool>(0)).unwrap_or(false))
    }

    /// The statements that create `user` (a SCRAM verifier, never the password; or an IAM login).
    async fn new_user_statements(&mut self, user: &Ident, auth: NewUserAuth<'_>) -> Result<Vec<Statement>, DbError> {
        Ok(match auth {
            NewUserAuth::Password(password) => vec![sql::create_login_role(user, &ScramVerifier::new(password)?)],
            NewUserAuth::Iam => {
                if !self.role_exists(sql::RDS_IAM_ROLE).await? {
                    return Err(input("user", format!("IAM authentication needs the {} role, which this server does not have", sql::RDS_IAM_ROLE), "use IAM users only on RDS or Aurora PostgreSQL"));
                }
                sql::create_iam_role(user)
            }
        })
    }

    /// `apply_privileges` on the connected database.
    async fn apply_here(&mut self, user: &Ident, database: &Ident, wanted: &PrivilegeSet) -> Result<Vec<GrantChange>, DbError> {
        let (statements, changes) = self.plan_here(user, database, wanted, false).await?;
        if !statements.is_empty() {
            self.script(&format!("applying privileges for {user} on {database}"), &statements).await?;
        }
        Ok(changes)
    }

    /// What `apply_here` runs, planned against this database's catalog: the grants and revokes,
    /// wrapped in the borrowing of the roles whose authority they need. `user_is_new`: the role
    /// does not exist yet (a dry run that plans its creation), so it holds nothing here.
    async fn plan_here(&mut self, user: &Ident, database: &Ident, wanted: &PrivilegeSet, user_is_new: bool) -> Result<(Vec<Statement>, Vec<GrantChange>), DbError> {
        if user_is_new {
            let current = self.acls_for_a_new_role().await?;
            return self.finish_plan(user, database, wanted, current).await;
        }
        let name = user.name();
        let rows = self
            .rows(
                "reading database and schema privileges",
                "SELECT d.datdba = r.oid, \
                 ARRAY(SELECT a.privilege_type FROM aclexplode(d.datacl) a WHERE a.grantee = r.oid), \
                 n.nspowner = r.oid, \
                 ARRAY(SELECT a.privilege_type FROM aclexplode(n.nspacl) a WHERE a.grantee = r.oid) \
                 FROM pg_catalog.pg_roles r, pg_catalog.pg_database d, pg_catalog.pg_namespace n \
                 WHERE r.rolname = $1::name AND d.datname = current_database() AND n.nspname = 'public'",
                &[(&name, Type::TEXT)],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(DbError::new(ErrorClass::Sql, format!("database {database} has no schema public, which apply_privileges manages")));
        };
        let privileges = |names: Vec<String>| -> Privileges { names.iter().filter_map(|n| grants::known_privilege(n)).collect() };
        let mut current = CurrentAcls {
            database: (!row.get::<_, bool>(0)).then(|| privileges(row.get(1))),
            schema: (!row.get::<_, bool>(2)).then(|| privileges(row.get(3))),
            objects: Vec::new(),
            defaults: Vec::new(),
        };

        let rows = self
            .rows(
                "reading table and sequence privileges",
                "SELECT c.relkind::text, c.relname::text, \
                 ARRAY(SELECT a.privilege_type FROM aclexplode(c.relacl) a WHERE a.grantee = r.oid), \
                 pg_catalog.pg_get_userbyid(c.relowner)::text \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, pg_catalog.pg_roles r \
                 WHERE r.rolname = $1::name AND n.nspname = 'public' AND c.relkind IN ('r','p','v','m','f','S') AND c.relowner <> r.oid",
                &[(&name, Type::TEXT)],
            )
            .await?;
        for row in rows {
            let kind = if row.get::<_, String>(0) == "S" { ObjectKind::Sequence } else { ObjectKind::Table };
            current.objects.push(ObjectAcl { kind, reference: sql::qualified("public", &row.get::<_, String>(1)), privileges: privileges(row.get(2)), owner: row.get(3) });
        }

        let want_routines = !wanted.routine.is_empty();
        let rows = self
            .rows(
                "reading routine privileges",
                "SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)), \
                 ARRAY(SELECT a.privilege_type FROM aclexplode(p.proacl) a WHERE a.grantee = r.oid), \
                 pg_catalog.pg_get_userbyid(p.proowner)::text \
                 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace, pg_catalog.pg_roles r \
                 WHERE r.rolname = $1::name AND n.nspname = 'public' AND p.proowner <> r.oid \
                 AND ($2 OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = r.oid))",
                &[(&name, Type::TEXT), (&want_routines, Type::BOOL)],
            )
            .await?;
        for row in rows {
            current.objects.push(ObjectAcl { kind: ObjectKind::Routine, reference: row.get(0), privileges: privileges(row.get(1)), owner: row.get(2) });
        }

        let rows = self
            .rows(
                "reading default privileges",
                "SELECT pg_catalog.pg_get_userbyid(d.defaclrole)::text, d.defaclobjtype::text, \
                 ARRAY(SELECT a.privilege_type FROM aclexplode(d.defaclacl) a WHERE a.grantee = r.oid), \
                 pg_catalog.pg_has_role(session_user, d.defaclrole, 'MEMBER') \
                 OR NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = d.defaclrole) \
                 FROM pg_catalog.pg_default_acl d JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace, pg_catalog.pg_roles r \
                 WHERE r.rolname = $1::name AND n.nspname = 'public'",
                &[(&name, Type::TEXT)],
            )
            .await?;
        for row in rows {
            let kind = match row.get::<_, String>(1).as_str() {
                "r" => ObjectKind::Table,
                "S" => ObjectKind::Sequence,
                "f" => ObjectKind::Routine,
                _ => continue,
            };
            let privileges = privileges(row.get(2));
            if !privileges.is_empty() {
                current.defaults.push(DefaultAcl { creator: row.get(0), kind, privileges, manageable: row.get(3) });
            }
        }

        self.finish_plan(user, database, wanted, current).await
    }

    /// The roles that create objects in the schema (their default privileges are managed), and
    /// the plan against `current`, with the borrowing statements around it.
    async fn finish_plan(&mut self, user: &Ident, database: &Ident, wanted: &PrivilegeSet, current: CurrentAcls) -> Result<(Vec<Statement>, Vec<GrantChange>), DbError> {
        let name = user.name();
        let rows = self
            .rows(
                "finding the roles that create objects in the schema",
                "SELECT r.rolname::text FROM pg_catalog.pg_roles r \
                 WHERE r.rolname <> $1::name AND r.rolname !~ '^pg_' \
                 AND (pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER') OR NOT r.rolsuper) \
                 AND (r.rolname = session_user \
                      OR r.oid = (SELECT datdba FROM pg_catalog.pg_database WHERE datname = current_database()) \
                      OR r.oid IN (SELECT a.grantee FROM pg_catalog.pg_namespace n, aclexplode(n.nspacl) a \
                                   WHERE n.nspname = 'public' AND a.privilege_type = 'CREATE')) \
                 ORDER BY 1",
                &[(&name, Type::TEXT)],
            )
            .await?;
        let creators: Vec<Ident> = rows.iter().map(|r| Ident::from_catalog(&r.get::<_, String>(0))).collect();

        let plan = grants::plan(user, database, &Ident::from_catalog("public"), wanted, &creators, &current);
        for entry in &plan.unmanageable {
            tracing::warn!(user = %user, entry = %entry, "cannot change these default privileges: they belong to a superuser");
        }
        if plan.statements.is_empty() {
            return Ok((Vec::new(), plan.changes));
        }
        let mut borrow = Vec::new();
        for role in &plan.touched_roles {
            if self.must_borrow(role).await? {
                borrow.push(Ident::from_catalog(role));
            }
        }
        let me = self.session_user.clone();
        let (lend, give_back) = sql::borrow_privileges(&me, &borrow, &self.caps);
        let statements: Vec<Statement> = lend.into_iter().chain(plan.statements).chain(give_back).collect();
        Ok((statements, plan.changes))
    }

    /// The schema's objects as a role that does not exist yet sees them: it holds nothing on the
    /// database, the schema or any object, and no default privileges name it.
    async fn acls_for_a_new_role(&mut self) -> Result<CurrentAcls, DbError> {
        let mut current = CurrentAcls { database: Some(Privileges::new()), schema: Some(Privileges::new()), objects: Vec::new(), defaults: Vec::new() };
        let rows = self
            .rows(
                "reading the schema's tables and sequences",
                "SELECT c.relkind::text, c.relname::text, pg_catalog.pg_get_userbyid(c.relowner)::text \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r','p','v','m','f','S')",
                &[],
            )
            .await?;
        for row in rows {
            let kind = if row.get::<_, String>(0) == "S" { ObjectKind::Sequence } else { ObjectKind::Table };
            current.objects.push(ObjectAcl { kind, reference: sql::qualified("public", &row.get::<_, String>(1)), privileges: Privileges::new(), owner: row.get(2) });
        }
        Ok(current)
    }
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %classify(&err, "postgres connection").message, "postgres connection ended");
        }
    })
}

/// DNS, then TCP to each address in turn, each attempt with a fair share of the time left.
async fn tcp_connect(spec: &ConnectSpec, endpoint: &str) -> Result<TcpStream, DbError> {
    let shown_host = dbcreds_core::sanitize::for_log(&spec.host);
    let addresses: Vec<std::net::SocketAddr> = match timeout_at(spec.deadline, tokio::net::lookup_host((spec.host.as_str(), spec.port))).await {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(err)) => return Err(DbError::new(ErrorClass::Dns, format!("cannot resolve {shown_host}: {err}"))),
        Err(_) => return Err(DbError::new(ErrorClass::Dns, format!("resolving {shown_host} did not finish before the deadline"))),
    };
    if addresses.is_empty() {
        return Err(DbError::new(ErrorClass::Dns, format!("{shown_host} resolves to no address")));
    }
    let mut last = None;
    for (i, address) in addresses.iter().enumerate() {
        let now = Instant::now();
        let left = spec.deadline.saturating_duration_since(now);
        let share = left / (addresses.len() - i) as u32;
        let attempt_deadline = if i + 1 == addresses.len() { spec.deadline } else { now + share };
        match timeout_at(attempt_deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => last = Some(classify_tcp(&err, &format!("{endpoint} ({address})"))),
            Err(_) => last = Some(DbError::new(ErrorClass::TcpTimeout, format!("connecting to {endpoint} ({address}) did not finish before the deadline"))),
        }
    }
    Err(last.expect("at least one address was tried"))
}

/// The data rows of a simple query, as text.
fn text_rows(messages: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    messages
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect()
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // Dropping the client makes the connection task say goodbye and end; the task is aborted
        // after a short grace in case the server does not answer.
        self.client = None;
        if let Some(task) = self.task.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        let abort = task.abort_handle();
                        if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                            abort.abort();
                        }
                    });
                }
                Err(_) => task.abort(),
            }
        }
    }
}

#[async_trait]
impl Session for PgSession {
    fn server(&self) -> &ServerInfo {
        &self.server
    }

    fn transport(&self) -> &Transport {
        &self.transport
    }

    /// `session_user`, the login, rather than `current_user`: a role with a `role` setting (the
    /// alternating-users clone acts as its base user) has `current_user` = the role it acts as.
    async fn identity(&mut self) -> Result<Identity, DbError> {
        let rows = text_rows(self.simple("asking who we are", "SELECT session_user, pg_catalog.version()").await?);
        let row = rows.into_iter().next().unwrap_or_default();
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        Ok(Identity { current_user: field(0), server_version: field(1) })
    }

    /// Runs the statement inside `BEGIN READ ONLY` ... `ROLLBACK`. It is parsed first with the
    /// extended protocol, which refuses several statements in one string, so a `COMMIT; DELETE`
    /// cannot escape the read-only transaction; then run with the simple protocol, so every
    /// column comes back as text whatever its type.
    async fn query_read_only(&mut self, sql_text: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        if sql_text.trim().is_empty() {
            return Err(input("TEST_QUERY", "is empty", "set a query such as SELECT 1"));
        }
        self.simple("starting a read-only transaction", "BEGIN READ ONLY").await?;
        let deadline = self.spec.deadline;
        let parsed = {
            let client = self.client()?;
            bounded(deadline, "checking the test query", client.prepare(sql_text)).await
        };
        let result = match self.settle(parsed) {
            Err(err) if err.message.contains("cannot insert multiple commands") => {
                Err(input("TEST_QUERY", "holds more than one statement", "use a single read-only statement"))
            }
            Err(err) => Err(err),
            Ok(_statement) => self.simple("running the test query", sql_text).await.map(text_rows),
        };
        if self.client.is_some() {
            let _ = self.simple("ending the read-only transaction", "ROLLBACK").await;
        }
        result
    }

    async fn set_own_password(&mut self, new_password: &SecretString) -> Result<(), DbError> {
        let verifier = ScramVerifier::new(new_password)?;
        self.script("changing the session user's password", &sql::set_own_password(&verifier)).await
    }

    async fn close(mut self: Box<Self>) {
        if let Some(elsewhere) = self.elsewhere.take() {
            elsewhere.close().await;
        }
        self.client = None;
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

#[async_trait]
impl UserAdmin for PgSession {
    async fn create_database_if_missing(&mut self, database: &str) -> Result<bool, DbError> {
        let database = Ident::database("database", database)?;
        let name = database.name();
        let rows = self.rows("looking up the database", "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1::name", &[(&name, Type::TEXT)]).await?;
        if !rows.is_empty() {
            return Ok(false);
        }
        // CREATE DATABASE runs neither in a transaction nor with IF NOT EXISTS.
        match self.simple(&format!("creating database {database}"), &sql::create_database(&database).expose()).await {
            Ok(_) => Ok(true),
            // Created concurrently: duplicate_database, or the catalog's unique index when both
            // inserts race.
            Err(err) if has_sqlstate(&err, &["42P04", "23505"]) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn user_exists(&mut self, user: &str) -> Result<bool, DbError> {
        let user = Ident::user("user", user)?;
        self.role_exists(user.name()).await
    }

    async fn create_user(&mut self, user: &str, auth: NewUserAuth<'_>) -> Result<bool, DbError> {
        let user = Ident::user("user", user)?;
        let statements = self.new_user_statements(&user, auth).await?;
        if self.role_exists(user.name()).await? {
            return Ok(false);
        }
        match self.script(&format!("creating user {user}"), &statements).await {
            Ok(()) => Ok(true),
            // Created concurrently: duplicate_object, or the catalog's unique index.
            Err(err) if has_sqlstate(&err, &["42710", "23505"]) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn set_password(&mut self, user: &str, password: &SecretString) -> Result<(), DbError> {
        let user = Ident::user("user", user)?;
        let verifier = ScramVerifier::new(password)?;
        self.script(&format!("setting the password of {user}"), &[sql::set_password(&user, &verifier)]).await
    }

    async fn drop_user(&mut self, user: &str) -> Result<bool, DbError> {
        let user = Ident::user("user", user)?;
        if !self.role_exists(user.name()).await? {
            return Ok(false);
        }
        let me = self.session_user.clone();
        if me == user {
            return Err(input("user", format!("{user} is the user this session is logged in as"), "drop it with another login"));
        }
        // REASSIGN OWNED and DROP OWNED need the privileges of the role being dropped. An RDS
        // master is not a superuser: it borrows them through a membership that DROP ROLE removes.
        // Committed on its own, because the other databases are reached over other connections;
        // DROP ROLE removes it, and a failure gives it back.
        let borrowed = self.must_borrow(user.name()).await?;
        let (lend, give_back) = sql::borrow_privileges(&me, std::slice::from_ref(&user), &self.caps);
        if borrowed {
            self.script(&format!("borrowing the privileges of {user}"), &lend).await?;
        }
        match self.drop_user_everywhere(&user, &me).await {
            Ok(()) => Ok(true),
            // Dropped concurrently by another caller: the goal is reached.
            Err(err) if err.class != ErrorClass::ConnectionLost && self.client.is_some() && !self.role_exists(user.name()).await.unwrap_or(true) => {
                tracing::debug!(error = %err.message, "the user was dropped concurrently");
                Ok(false)
            }
            Err(err) => {
                if borrowed && self.client.is_some() {
                    let _ = self.script("returning borrowed privileges", &give_back).await;
                }
                Err(err)
            }
        }
    }
}

impl PgSession {
    async fn drop_user_everywhere(&mut self, user: &Ident, me: &Ident) -> Result<(), DbError> {
        for database in self.other_databases_of(user.name(), false).await? {
            let mut other = self.session_on(&database).await?;
            let outcome = other
                .script(&format!("reassigning the objects of {user} in database {}", sql::quote_ident(&database)), &[sql::reassign_owned(user, me), sql::drop_owned(user)])
                .await;
            self.keep_elsewhere(other);
            outcome?;
        }
        self.script(&format!("dropping user {user}"), &[sql::reassign_owned(user, me), sql::drop_owned(user), sql::drop_role_if_exists(user)]).await
    }
}

#[async_trait]
impl GrantAdmin for PgSession {
    async fn read_grants(&mut self, user: &str) -> Result<Vec<String>, DbError> {
        let user = Ident::user("user", user)?;
        let states = self.read_roles(&[user.name()]).await?;
        let state = states.get(user.name()).ok_or_else(|| input("user", format!("role {user} does not exist"), "create the user first"))?;
        Ok(mirror::describe(state, &self.caps))
    }

    async fn apply_privileges(&mut self, user: &str, database: &str, spec: &PrivilegeSpec) -> Result<Vec<GrantChange>, DbError> {
        let user = Ident::user("user", user)?;
        let database = Ident::database("database", database)?;
        let wanted = grants::desired_privileges(spec, &self.caps)?;
        if !self.role_exists(user.name()).await? {
            return Err(input("user", format!("role {user} does not exist"), "create the user first"));
        }
        if database.name() == self.database {
            return self.apply_here(&user, &database, &wanted).await;
        }
        // Table and default privileges live in each database's own catalog.
        let mut other = self.session_on(database.name()).await?;
        let result = other.apply_here(&user, &database, &wanted).await;
        self.keep_elsewhere(other);
        result
    }

    async fn mirror_user(&mut self, source: &str, target: &str, password: &SecretString) -> Result<Vec<GrantChange>, DbError> {
        let pair = mirror::pair(source, target)?;
        let verifier = ScramVerifier::new(password)?;
        let states = self.read_roles(&[pair.base.name(), pair.clone.name()]).await?;
        let source_state = states.get(pair.source().name()).ok_or_else(|| input("source", format!("role {} does not exist", pair.source()), "mirror from an existing user"))?;
        let target_state = states.get(pair.target().name());

        let clone_exists = states.contains_key(pair.clone.name());
        let mut borrow = Vec::new();
        let reassign = clone_exists && self.owns_objects_here(pair.clone.name()).await?;
        if reassign {
            for role in [&pair.clone, &pair.base] {
                let exists = states.contains_key(role.name());
                if !self.superuser && (!exists || self.must_borrow(role.name()).await?) {
                    borrow.push(role.clone());
                }
            }
        }
        if clone_exists {
            let elsewhere = self.other_databases_of(pair.clone.name(), true).await?;
            if !elsewhere.is_empty() {
                tracing::warn!(clone = %pair.clone, databases = ?elsewhere, "the clone owns objects in other databases; connect to each and mirror again to hand them to the base user");
            }
        }
        let me = self.session_user.clone();
        let plan = mirror::plan(&pair, source_state, target_state, &verifier, &self.caps, reassign.then_some((&me, borrow.as_slice())))?;
        self.script(&format!("mirroring {} to {}", pair.source(), pair.target()), &plan.statements).await?;
        Ok(plan.changes)
    }
}

/// The dry run's plans: the statements the methods above would run, built by the same code from
/// the same catalog reads, never executed.
#[async_trait]
impl crate::dry_run::PlanWrites for PgSession {
    async fn plan_create_database(&mut self, database: &str) -> Result<Vec<String>, DbError> {
        let database = Ident::database("database", database)?;
        let name = database.name();
        let rows = self.rows("looking up the database", "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1::name", &[(&name, Type::TEXT)]).await?;
        if !rows.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![sql::create_database(&database).redacted()])
    }

    async fn plan_create_user(&mut self, user: &str, auth: NewUserAuth<'_>) -> Result<Vec<String>, DbError> {
        let user = Ident::user("user", user)?;
        if self.role_exists(user.name()).await? {
            return Ok(Vec::new());
        }
        let statements = self.new_user_statements(&user, auth).await?;
        Ok(statements.iter().map(Statement::redacted).collect())
    }

    async fn plan_set_password(&mut self, user: &str, password: &SecretString, _user_is_new: bool) -> Result<Vec<String>, DbError> {
        let user = Ident::user("user", user)?;
        Ok(vec![sql::set_password(&user, &ScramVerifier::new(password)?).redacted()])
    }

    async fn plan_privileges(&mut self, user: &str, database: &str, spec: &PrivilegeSpec, user_is_new: bool, database_is_new: bool) -> Result<(Vec<String>, Vec<GrantChange>), DbError> {
        let user = Ident::user("user", user)?;
        let database = Ident::database("database", database)?;
        let wanted = grants::desired_privileges(spec, &self.caps)?;
        if !user_is_new && !self.role_exists(user.name()).await? {
            return Err(input("user", format!("role {user} does not exist"), "create the user first"));
        }
        let rendered = |(statements, changes): (Vec<Statement>, Vec<GrantChange>)| (statements.iter().map(Statement::redacted).collect(), changes);
        if database_is_new {
            // Nothing exists in a database that is still to be created; the master will own it.
            let empty = CurrentAcls { database: Some(Privileges::new()), schema: Some(Privileges::new()), objects: Vec::new(), defaults: Vec::new() };
            let plan = grants::plan(&user, &database, &Ident::from_catalog("public"), &wanted, std::slice::from_ref(&self.session_user), &empty);
            return Ok(rendered((plan.statements, plan.changes)));
        }
        if database.name() == self.database {
            return self.plan_here(&user, &database, &wanted, user_is_new).await.map(rendered);
        }
        let mut other = self.session_on(database.name()).await?;
        let result = other.plan_here(&user, &database, &wanted, user_is_new).await;
        self.keep_elsewhere(other);
        result.map(rendered)
    }

    async fn plan_drop_user(&mut self, user: &str) -> Result<Vec<String>, DbError> {
        let user = Ident::user("user", user)?;
        if !self.role_exists(user.name()).await? {
            return Ok(Vec::new());
        }
        let me = self.session_user.clone();
        let mut out = Vec::new();
        // DROP ROLE ends the borrowed membership: nothing to give back.
        let (lend, _) = sql::borrow_privileges(&me, std::slice::from_ref(&user), &self.caps);
        let borrowed = self.must_borrow(user.name()).await?;
        if borrowed {
            out.extend(lend.iter().map(Statement::redacted));
        }
        for database in self.other_databases_of(user.name(), false).await? {
            for statement in [sql::reassign_owned(&user, &me), sql::drop_owned(&user)] {
                out.push(format!("-- in database {}: {}", sql::quote_ident(&database), statement.redacted()));
            }
        }
        out.extend([sql::reassign_owned(&user, &me), sql::drop_owned(&user), sql::drop_role_if_exists(&user)].iter().map(Statement::redacted));
        Ok(out)
    }
}
