//! Create, Update and Delete: what each does to the database and the secrets.
//!
//! The ownership model (docs/provisioner.md has the long form):
//! - A resource owns the users its `Users` list names, on the database its physical id names.
//!   Listing a user that already exists adopts it.
//! - **Create** provisions everything; until it starts touching users its failure answers a
//!   "not-created" id (the rollback Delete does nothing), after that an "incomplete" id (the
//!   rollback Delete drops every listed user that exists: no other resource can share them).
//! - **Update** in place reconciles: ensures the listed users and their exact privileges, and
//!   drops the users the old list had and the new one has not.
//! - **Update** with a new identity (engine family, host, port, database) is a replacement: it
//!   provisions the new database under a new id and *moves* the users the old and new lists share
//!   on the same server, by revoking their privileges on the old database. CloudFormation then
//!   deletes the old id.
//! - **Delete** of a created resource revokes each listed user's privileges on its database and
//!   drops the users that held any there. A user holding none there was moved by a replacement
//!   (or stripped by hand), belongs to someone else now, and is left alone. The database and its
//!   data are never dropped; on PostgreSQL the objects a dropped user owned go to the master user.

use crate::error::{ProvisionError, Result};
use crate::identity::{DatabaseIdentity, PhysicalId};
use crate::spec::{self, Authentication, ResourceSpec};
use crate::target::{self, Target};
use crate::users::{self, Purpose, ResolvedUser};
use dbcreds_aws::{AWSCURRENT, SecretStore};
use dbcreds_core::sanitize::for_log;
use dbcreds_core::secret_document::{HOST, PORT};
use dbcreds_core::{ErrorClass, SecretDocument};
use dbcreds_custom_resource::{Context, Failure, Request, Success, is_not_created_physical_id};
use dbcreds_db::dry_run::{DryRun, PlanLog};
use dbcreds_db::{AdminSession, ConnectSpec, NewUserAuth, PrivilegeSpec, TrustStore};
use dbcreds_rotation::EndpointLookup;
use dbcreds_rotation::ports::identity_is;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a master connection is retried when the database refuses or drops it (a database
/// that is rebooting or still warming up), at most half of the invocation's remaining time.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);
/// A single login check (each password user proves it can log in).
const LOGIN_CHECK_TIME: Duration = Duration::from_secs(15);

/// What the lifecycle works with, for one invocation.
pub struct Env<'a> {
    pub store: &'a dyn SecretStore,
    pub rds: &'a dyn EndpointLookup,
    pub trust: Arc<TrustStore>,
    /// A dry run (the operator CLI's `provision --dry-run`): the master session plans its writes
    /// into this log instead of making them (`dbcreds_db::dry_run`), and the logins that would
    /// prove a write are not tried. The caller passes a `store` that records its writes too.
    pub dry_run: Option<PlanLog>,
}

// ---------------------------------------------------------------------------------------------
// Create

pub async fn create(request: &Request, env: &Env<'_>, ctx: &Context) -> Result<Success, Failure> {
    ctx.set_step("reading the properties");
    let spec = ResourceSpec::parse(&request.resource_properties).map_err(|e| ProvisionError::from(e).into_failure(false))?;
    ctx.set_step("reading the master secret and the user secrets");
    let (target, users) = resolve_for_provisioning(&spec, env).await.map_err(|e| e.into_failure(false))?;
    ctx.set_step("connecting to the database as the master user");
    let mut session = connect_master(&target, env, ctx).await.map_err(|e| e.into_failure(false))?;
    let outcome = provision(session.as_mut(), &target, &users, request, env, ctx, Some(&target.identity.incomplete_physical_id(request))).await;
    session.close().await;
    outcome.map_err(|e| e.into_failure(true))?;
    Ok(success(target.identity.physical_id(request), &target, &users, spec.no_echo))
}

// ---------------------------------------------------------------------------------------------
// Update

pub async fn update(request: &Request, env: &Env<'_>, ctx: &Context) -> Result<Success, Failure> {
    let physical_id = request.physical_resource_id.clone().unwrap_or_default();
    ctx.set_step("reading the properties");
    let spec = ResourceSpec::parse(&request.resource_properties).map_err(|e| ProvisionError::from(e).into_failure(false))?;

    if request.is_noop_update() {
        // Only CloudFormation's own keys changed (a new ServiceToken): nothing to do in the
        // database, but the attributes must be answered again.
        ctx.set_step("reading the secrets for the attributes");
        let target = target::resolve(&spec, env.store, env.rds).await.map_err(|e| e.into_failure(false))?;
        let users = users::resolve(&spec.users, &target, env.store, Purpose::Inspect).await.map_err(|e| e.into_failure(false))?;
        tracing::info!(step = "update", "no property changed: nothing to do");
        return Ok(success(physical_id, &target, &users, spec.no_echo));
    }

    ctx.set_step("reading the master secret and the user secrets");
    let (target, users) = resolve_for_provisioning(&spec, env).await.map_err(|e| e.into_failure(false))?;
    let old = resolve_old(request, env).await;
    let previous = PhysicalId::parse(&physical_id).map(|p| p.identity).or_else(|| old.as_ref().map(|(t, _)| t.identity.clone()));
    let replacing = previous.as_ref().is_some_and(|p| *p != target.identity);
    check_authentication_unchanged(&users, old.as_ref().map(|(_, u)| u.as_slice()).unwrap_or_default(), previous.as_ref(), &target.identity)
        .map_err(|e| e.into_failure(false))?;

    ctx.set_step("connecting to the database as the master user");
    let mut session = connect_master(&target, env, ctx).await.map_err(|e| e.into_failure(false))?;
    let outcome = async {
        provision(session.as_mut(), &target, &users, request, env, ctx, None).await?;
        let wanted = all_names(&users);
        match (&previous, &old) {
            (Some(previous), Some((_, old_users))) if replacing => {
                tracing::info!(step = "update", from = %previous, to = %target.identity, "replacement: new physical id; CloudFormation deletes the old one");
                if previous.same_server(&target.identity) {
                    ctx.set_step("moving shared users off the old database");
                    let shared: Vec<String> = all_names(old_users).into_iter().filter(|n| wanted.contains(n)).collect();
                    move_users(session.as_mut(), &previous.database, &shared).await;
                }
            }
            (_, Some((old_target, old_users))) if old_target.identity == target.identity => {
                ctx.set_step("dropping the users removed from the list");
                let removed: Vec<Vec<String>> = groups(old_users).into_iter().map(|g| g.into_iter().filter(|n| !wanted.contains(n)).collect()).collect();
                release(session.as_mut(), &target, &removed, Ownership::Unconditional, &BTreeSet::new()).await?;
            }
            (_, Some((old_target, old_users))) => {
                // The old properties name another database than the one this id stands for: this
                // Update rolls back a replacement that failed before it got its own id. Clean up
                // what it left (best effort: the resource itself is already as wanted).
                ctx.set_step("cleaning up after a failed replacement");
                tracing::info!(step = "update", abandoned = %old_target.identity, "rolling back a failed replacement: releasing what it provisioned");
                if let Err(err) = clean_abandoned(session.as_mut(), old_target, old_users, &target, &wanted, env, ctx).await {
                    tracing::warn!(step = "update", error_class = err.class.as_str(), error = %err, abandoned = %old_target.identity, "could not clean up after the failed replacement; its users may remain");
                }
            }
            _ => {}
        }
        Ok::<(), ProvisionError>(())
    }
    .await;
    session.close().await;
    outcome.map_err(|e| e.into_failure(true))?;
    let id = if replacing { target.identity.physical_id(request) } else { physical_id };
    Ok(success(id, &target, &users, spec.no_echo))
}

/// The old properties, resolved for their names. Anything unreadable is logged and treated as
/// "no old state": the Update still makes the resource what the new properties say.
async fn resolve_old(request: &Request, env: &Env<'_>) -> Option<(Target, Vec<ResolvedUser>)> {
    let old = request.old_resource_properties.as_ref()?;
    let spec = match ResourceSpec::parse(old) {
        Ok(spec) => spec,
        Err(err) => {
            tracing::warn!(step = "update", error = %err, "the old properties do not parse; users removed from the list cannot be named");
            return None;
        }
    };
    let target = match target::resolve(&spec, env.store, env.rds).await {
        Ok(target) => target,
        Err(err) => {
            tracing::warn!(step = "update", error_class = err.class.as_str(), error = %err, "the old master secret cannot be read; users removed from the list cannot be released");
            return None;
        }
    };
    match users::resolve(&spec.users, &target, env.store, Purpose::Inspect).await {
        Ok(users) => Some((target, users)),
        Err(err) => {
            tracing::warn!(step = "update", error_class = err.class.as_str(), error = %err, "the old users cannot be resolved; users removed from the list cannot be released");
            None
        }
    }
}

/// A user kept across an in-place update cannot switch between password and IAM
/// authentication: the seam has no operation for it, and dropping and recreating the user
/// would hand its objects to the master user.
fn check_authentication_unchanged(users: &[ResolvedUser], old: &[ResolvedUser], previous: Option<&DatabaseIdentity>, target: &DatabaseIdentity) -> Result<()> {
    if previous.is_some_and(|p| !p.same_server(target)) {
        return Ok(());
    }
    for user in users {
        if let Some(before) = old.iter().find(|o| o.names().iter().any(|n| user.names().contains(n)))
            && before.authentication() != user.authentication()
        {
                return Err(ProvisionError::new(
                    ErrorClass::Input,
                    format!(
                        "{}{}: user {} switches from {} to {} authentication, which cannot be done in place; give the user a new name (the old one is then dropped)",
                        user.spec.path(),
                        spec::AUTHENTICATION,
                        for_log(&user.username),
                        before.authentication().as_str(),
                        user.authentication().as_str()
                    ),
                ));
        }
    }
    Ok(())
}

async fn clean_abandoned(
    session: &mut dyn AdminSession,
    abandoned: &Target,
    old_users: &[ResolvedUser],
    target: &Target,
    wanted: &BTreeSet<String>,
    env: &Env<'_>,
    ctx: &Context,
) -> Result<()> {
    let names = groups(old_users);
    if abandoned.identity.same_server(&target.identity) {
        // The users the new list keeps are only moved off the abandoned database; the others go.
        return release(session, abandoned, &names, Ownership::Unconditional, wanted).await;
    }
    let mut other = connect_master(abandoned, env, ctx).await?;
    let outcome = release(other.as_mut(), abandoned, &names, Ownership::Unconditional, &BTreeSet::new()).await;
    other.close().await;
    outcome
}

// ---------------------------------------------------------------------------------------------
// Delete

pub async fn delete(request: &Request, env: &Env<'_>, ctx: &Context) -> Result<Success, Failure> {
    let physical_id = request.physical_resource_id.clone().unwrap_or_default();
    let done = || Success { physical_resource_id: physical_id.clone(), data: Map::new(), no_echo: false };
    if is_not_created_physical_id(&physical_id) {
        tracing::info!(step = "delete", "the Create under this id failed before changing anything: nothing to delete");
        return Ok(done());
    }
    ctx.set_step("reading the properties");
    let spec = match ResourceSpec::parse(&request.resource_properties) {
        Ok(spec) => spec,
        Err(err) => {
            tracing::warn!(step = "delete", error_class = "input", error = %err, "the properties do not parse, so no user can have been created with them: nothing to delete");
            return Ok(done());
        }
    };
    let issued = PhysicalId::parse(&physical_id);
    ctx.set_step("reading the master secret and the user secrets");
    let mut target = target::resolve(&spec, env.store, env.rds).await.map_err(|e| e.context("finding the users to drop").into_failure(false))?;
    if let Some(issued) = &issued
        && issued.identity != target.identity
    {
            // The id says where the users were created; the master secret may have moved since.
            tracing::warn!(step = "delete", created_in = %issued.identity, properties_say = %target.identity, "the properties no longer match the database this resource was created in; deleting from the one it was created in");
            if issued.identity.family != target.family() {
                return Err(ProvisionError::new(ErrorClass::Input, format!("the physical id names a {} database but the properties a {} one", issued.identity.family, target.family())).into_failure(false));
            }
            target.identity = issued.identity.clone();
            target.master.set_field(HOST, Value::String(issued.identity.host.clone()));
            target.master.set_field(PORT, Value::from(issued.identity.port));
    }
    let users = users::resolve(&spec.users, &target, env.store, Purpose::Inspect).await.map_err(|e| e.into_failure(false))?;
    let names = groups(&users);
    if names.is_empty() {
        return Ok(done());
    }
    let ownership = if issued.as_ref().is_some_and(|i| i.incomplete) { Ownership::Unconditional } else { Ownership::IfHoldsPrivileges };
    ctx.set_step("connecting to the database as the master user");
    let mut session = connect_master(&target, env, ctx).await.map_err(|e| e.context("dropping the users").into_failure(false))?;
    ctx.set_step("dropping the users");
    let outcome = release(session.as_mut(), &target, &names, ownership, &BTreeSet::new()).await;
    session.close().await;
    outcome.map_err(|e| e.into_failure(true))?;
    Ok(done())
}

// ---------------------------------------------------------------------------------------------
// The steps

async fn resolve_for_provisioning(spec: &ResourceSpec, env: &Env<'_>) -> Result<(Target, Vec<ResolvedUser>)> {
    let target = target::resolve(spec, env.store, env.rds).await?;
    let users = users::resolve(&spec.users, &target, env.store, Purpose::Provision).await?;
    tracing::info!(step = "resolve", engine = %target.engine, host = %target.identity.host, port = target.identity.port, database = %target.database(), users = users.len(), "target resolved");
    Ok((target, users))
}

async fn connect_master(target: &Target, env: &Env<'_>, ctx: &Context) -> Result<Box<dyn AdminSession>> {
    let budget = ctx.budget();
    let patience = CONNECT_PATIENCE.min(budget.remaining() / 2);
    let give_up = Instant::now() + patience;
    let mut pause = Duration::from_millis(250);
    loop {
        let spec = target.master_connect_spec(Arc::clone(&env.trust), budget.deadline())?;
        let started = Instant::now();
        let connected = match &env.dry_run {
            Some(log) => dbcreds_db::dry_run::connect(&spec).await.map(|session| Box::new(DryRun::new(session, log.clone())) as Box<dyn AdminSession>),
            None => dbcreds_db::connect(&spec).await,
        };
        match connected {
            Ok(session) => {
                tracing::info!(
                    step = "connect",
                    engine = %target.engine,
                    host = %target.identity.host,
                    port = target.identity.port,
                    tls = session.transport().tls_version.as_deref().unwrap_or("none"),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "connected as the master user"
                );
                return Ok(session);
            }
            Err(err) if err.class.is_transient() && Instant::now() + pause < give_up => {
                tracing::warn!(step = "connect", error_class = err.class.as_str(), error = %err, retry_in_ms = pause.as_millis() as u64, "master connection failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            Err(err) => return Err(ProvisionError::from(err).context(&format!("connecting to {} as the master user", target.identity))),
        }
    }
}

/// Creates the database if missing, then each user with exactly its privileges on that
/// database, completes each password user's secret, and proves each password user logs in.
/// `incomplete_id`: a Create answers it from the moment users are touched.
async fn provision(
    session: &mut dyn AdminSession,
    target: &Target,
    users: &[ResolvedUser],
    request: &Request,
    env: &Env<'_>,
    ctx: &Context,
    incomplete_id: Option<&str>,
) -> Result<()> {
    let database = target.database();
    ctx.set_step("creating the database");
    let created = session.create_database_if_missing(database).await.map_err(|e| ProvisionError::from(e).context(&format!("creating database {}", for_log(database))))?;
    tracing::info!(step = "database", database = %database, created, "database ready");
    if let Some(id) = incomplete_id {
        ctx.set_failure_physical_id(id);
    }
    for user in users {
        ctx.set_step("creating the users and granting their privileges");
        ensure_user(session, target, user).await?;
    }
    for user in users.iter().filter(|u| u.authentication() == Authentication::Password) {
        ctx.set_step("completing the user secrets and proving each login");
        complete_secret_and_prove(session, target, user, request, env, ctx).await?;
    }
    Ok(())
}

async fn ensure_user(session: &mut dyn AdminSession, target: &Target, user: &ResolvedUser) -> Result<()> {
    let entry = user.spec.path();
    let entry = entry.trim_end_matches('.');
    let auth = match (&user.secret, user.authentication()) {
        (Some(secret), Authentication::Password) => NewUserAuth::Password(secret.document.password()?),
        _ => NewUserAuth::Iam,
    };
    let created = session.create_user(&user.username, auth).await.map_err(|e| ProvisionError::from(e).context(entry))?;
    for name in user.names() {
        if name != user.username && !session.user_exists(&name).await.map_err(|e| ProvisionError::from(e).context(&format!("{entry}: looking up the clone")))? {
            continue;
        }
        let changes = session
            .apply_privileges(&name, target.database(), &user.privileges)
            .await
            .map_err(|e| ProvisionError::from(e).context(&format!("{entry}: granting privileges to {} on {}", for_log(&name), for_log(target.database()))))?;
        tracing::info!(step = "grant", user = %name, created = created && name == user.username, changes = changes.len(), detail = ?changes, "user has exactly its privileges");
    }
    Ok(())
}

async fn complete_secret_and_prove(session: &mut dyn AdminSession, target: &Target, user: &ResolvedUser, request: &Request, env: &Env<'_>, ctx: &Context) -> Result<()> {
    let Some(secret) = &user.secret else { return Ok(()) };
    let completed = users::completed_document(&secret.document, target, user.spec.strategy);
    let label = format!("{} ({})", for_log(&user.username), user.spec.path().trim_end_matches('.'));
    // The operator reading a failed login needs the database as well as the user.
    let logging_in = format!("logging in as {label} to database {}", for_log(target.database()));

    // A user that already existed may have another password than its secret (an adopted user):
    // the secret is the source of truth, so the password is set to the secret's.
    let mut proven = false;
    match prove_login(&completed, target, env, ctx).await {
        Ok(()) => proven = true,
        Err(err) if err.class == ErrorClass::Authentication => {
            tracing::warn!(step = "secret", user = %user.username, "the user's password is not the one in its secret; setting it to the secret's");
            let password = secret.document.password()?;
            session.set_password(&user.username, password).await.map_err(|e| ProvisionError::from(e).context(&format!("setting the password of {label}")))?;
        }
        // A dry run may plan a database that does not exist yet, where no login can succeed.
        Err(err) if env.dry_run.is_some() => tracing::info!(step = "secret", user = %user.username, error = %err, "dry run: the login cannot be proven before the plan is applied"),
        Err(err) => return Err(err.context(&logging_in)),
    }

    if completed.to_json() != secret.document.to_json() {
        let token = users::version_token(&request.request_id, &secret.arn);
        env.store
            .put_value(&secret.arn, &token, &completed.to_json(), &[AWSCURRENT], None)
            .await
            .map_err(|e| ProvisionError::from(e).context(&format!("completing the secret of {label}")))?;
        tracing::info!(step = "secret", secret_arn = %dbcreds_core::sanitize::field(&secret.arn), version = %token, user = %user.username, "secret completed and made AWSCURRENT");
    } else {
        tracing::info!(step = "secret", secret_arn = %dbcreds_core::sanitize::field(&secret.arn), user = %user.username, "secret already complete");
    }
    // A dry run changed nothing, so there is nothing new to prove.
    if !proven && env.dry_run.is_none() {
        prove_login(&completed, target, env, ctx).await.map_err(|e| e.context(&logging_in))?;
    }
    tracing::info!(step = "login", user = %user.username, "the user logs in with its secret");
    Ok(())
}

/// Logs in with the document and checks the server took it as that user (not an anonymous
/// account that happens to match).
async fn prove_login(document: &SecretDocument, target: &Target, env: &Env<'_>, ctx: &Context) -> Result<()> {
    let deadline = ctx.budget().deadline_for(LOGIN_CHECK_TIME);
    let spec = ConnectSpec::from_document(document, Arc::clone(&env.trust), deadline)?;
    let identity = dbcreds_db::check_login(&spec).await?;
    if !identity_is(&identity, target.family(), &spec.username) {
        return Err(ProvisionError::new(
            ErrorClass::Authentication,
            format!("the server took the login as {} instead (an anonymous account?)", for_log(&identity.current_user)),
        ));
    }
    Ok(())
}

/// Revokes the users' privileges on the old database of a same-server replacement, so the old
/// resource's Delete sees they were moved and leaves them alone. Best effort: a failure is
/// logged (the old database may be gone).
async fn move_users(session: &mut dyn AdminSession, old_database: &str, names: &[String]) {
    for name in names {
        match session.user_exists(name).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(step = "move", user = %name, error = %err, "could not look the user up");
                continue;
            }
        }
        match session.apply_privileges(name, old_database, &nothing()).await {
            Ok(changes) => tracing::info!(step = "move", user = %name, from = %old_database, revoked = changes.len(), "user moved to the new database"),
            Err(err) => tracing::warn!(step = "move", user = %name, from = %old_database, error_class = err.class.as_str(), error = %err, "could not revoke the user's privileges on the old database"),
        }
    }
}

/// Whether a user is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ownership {
    /// Drop every listed user that exists (no other resource can share them).
    Unconditional,
    /// Drop a user only if it held privileges on the resource's database (see the module docs).
    IfHoldsPrivileges,
}

/// Drops the users of each group (an entry of `Users`: the user, and for alternating users its
/// clone) or, for `protect`ed names, only moves them off `target`'s database. With
/// [`Ownership::IfHoldsPrivileges`] a group is dropped when any of its users held privileges
/// there (a PostgreSQL clone may hold them only through its base user).
async fn release(session: &mut dyn AdminSession, target: &Target, groups: &[Vec<String>], ownership: Ownership, protect: &BTreeSet<String>) -> Result<()> {
    let database = target.database();
    for group in groups {
        let mut present = Vec::new();
        for name in group {
            if *name == target.master_username {
                tracing::warn!(step = "drop", user = %name, "is the master user: never dropped");
            } else if !session.user_exists(name).await.map_err(|e| ProvisionError::from(e).context(&format!("looking up user {}", for_log(name))))? {
                tracing::info!(step = "drop", user = %name, "already gone");
            } else if protect.contains(name) {
                move_users(session, database, std::slice::from_ref(name)).await;
            } else {
                present.push(name.clone());
            }
        }
        if present.is_empty() {
            continue;
        }
        if ownership == Ownership::IfHoldsPrivileges {
            let mut held = false;
            for name in &present {
                let revoked = session
                    .apply_privileges(name, database, &nothing())
                    .await
                    .map_err(|e| ProvisionError::from(e).context(&format!("revoking the privileges of {} on {}", for_log(name), for_log(database))))?;
                held |= !revoked.is_empty();
            }
            if !held {
                tracing::warn!(step = "drop", users = ?present, database = %database, "hold no privileges on the resource's database (another resource took them over, or they were removed by hand): left in place");
                continue;
            }
        }
        for name in &present {
            session.drop_user(name).await.map_err(|e| ProvisionError::from(e).context(&format!("dropping user {}", for_log(name))))?;
            tracing::info!(step = "drop", user = %name, "user dropped");
        }
    }
    Ok(())
}

/// No privileges at all on a database: `apply_privileges` revokes whatever is there.
fn nothing() -> PrivilegeSpec {
    PrivilegeSpec::List(Vec::new())
}

/// The database users of each entry.
fn groups(users: &[ResolvedUser]) -> Vec<Vec<String>> {
    users.iter().map(ResolvedUser::names).collect()
}

fn all_names(users: &[ResolvedUser]) -> BTreeSet<String> {
    users.iter().flat_map(ResolvedUser::names).collect()
}

/// The resource's attributes for `Fn::GetAtt`. Never a secret.
fn success(physical_resource_id: String, target: &Target, users: &[ResolvedUser], no_echo: bool) -> Success {
    let mut data = Map::new();
    data.insert("DatabaseName".into(), Value::String(target.database().into()));
    data.insert("Engine".into(), Value::String(target.engine.as_str().into()));
    data.insert("Host".into(), Value::String(target.identity.host.clone()));
    data.insert("Port".into(), Value::String(target.identity.port.to_string()));
    let names: Vec<String> = users.iter().map(ResolvedUser::base_name).collect();
    data.insert("Usernames".into(), Value::String(names.join(",")));
    for user in users {
        data.insert(format!("Username{}", user.spec.index), Value::String(user.base_name()));
    }
    Success { physical_resource_id, data, no_echo }
}
