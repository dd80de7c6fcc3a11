//! The four steps. Each is one function, commented with the cases it handles. Every step may run
//! any number of times, or after a crash at any point, and converges:
//! - createSecret writes the pending value once and never replaces it;
//! - setSecret first checks whether the pending credentials already work (alternating users still
//!   run the idempotent mirror, see `set_alternating`);
//! - testSecret only reads;
//! - finishSecret moves AWSCURRENT first and then removes AWSPENDING, and a rerun after a crash
//!   between the two finds the token AWSCURRENT and only removes AWSPENDING (in the preamble).
//!
//! Secrets Manager calls (issue 8's budget is 8 for a four-step rotation): each step makes one
//! DescribeSecret (the preamble) and reads values by VersionId through the store, whose version
//! cache answers repeated reads of the same version in a warm process without a call. A
//! single-user rotation makes 8 calls when the process already holds AWSCURRENT's value, 9 when
//! it must read it; the one call over AWS's bare minimum is createSecret's probe of the pending
//! version, which is what lets it never replace a pending value without relying on
//! PutSecretValue refusing a second value (moto, for one, overwrites). Alternating users add the
//! master secret's read, which a warm function saves for `MASTER_SECRET_CACHE_SECONDS` (8 calls
//! again for every rotation of the secrets sharing that master in that window).

use crate::config::Strategy;
use crate::error::RotationError;
use crate::master::MasterRead;
use crate::ports::{Proceed, identity_is, proceed_now};
use crate::rotator::{Invocation, Outcome, StepInfo};
use dbcreds_aws::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, VersionSelector};
use dbcreds_core::sanitize::{field as clean, for_log};
use dbcreds_core::{Engine, ErrorClass, IdentifierKind, InputError, SecretDocument, generate_password, validate_identifier};

/// The alternating-users clone's suffix, as AWS's functions name it.
pub const CLONE_SUFFIX: &str = "_clone";

/// `app` <-> `app_clone`.
pub fn alternate_username(username: &str) -> String {
    match username.strip_suffix(CLONE_SUFFIX) {
        Some(base) if !base.is_empty() => base.to_owned(),
        _ => format!("{username}{CLONE_SUFFIX}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and checking documents

/// Reads one version of the rotated secret and parses it. Errors name the version and the field
/// (`AWSCURRENT.username: is missing; set username`).
async fn read_version(inv: &Invocation<'_>, selector: VersionSelector, label: &str) -> Result<SecretDocument, RotationError> {
    let version = inv.rotator.store.get_value(inv.arn(), selector).await.map_err(|e| RotationError::from(e).context(&format!("reading {label}")))?;
    SecretDocument::parse(version.value).map_err(|e| e.within(&format!("{label}.")).into())
}

async fn read_current(inv: &Invocation<'_>) -> Result<SecretDocument, RotationError> {
    let Some(current_id) = inv.metadata.version_with_stage(AWSCURRENT) else {
        return Err(RotationError::state(format!("secret {} has no AWSCURRENT version; store the credentials first", for_log(inv.arn()))));
    };
    read_version(inv, VersionSelector::Id(current_id.to_owned()), AWSCURRENT).await
}

async fn read_pending(inv: &Invocation<'_>) -> Result<SecretDocument, RotationError> {
    read_version(inv, VersionSelector::IdAndStage(inv.token().to_owned(), AWSPENDING.to_owned()), AWSPENDING).await
}

/// What a login document must have: engine, host, username, password, a valid port and `ssl`,
/// a user name that is a plain identifier within the engine's (or the configured) limit, and a
/// plain database name if there is one.
/// Returns the engine. Nothing is called before this passes, so bad input changes nothing.
fn check_login_document(inv: &Invocation<'_>, document: &SecretDocument, label: &str) -> Result<Engine, RotationError> {
    let within = |e: InputError| RotationError::from(e.within(&format!("{label}.")));
    document.require_connection_fields().map_err(within)?;
    document.tls_policy().map_err(within)?;
    let engine = document.engine().map_err(within)?;
    let limit = inv.config().username_limit_for(engine);
    let username = document.username().map_err(within)?;
    validate_identifier(&format!("{label}.username"), username, engine.family(), IdentifierKind::User, Some(limit))?;
    // The database is only a login field, but a name RDS itself would refuse (a quote, a
    // semicolon, a confusable) is a broken secret: refused before anything is written.
    if let Some(dbname) = document.dbname() {
        validate_identifier(&format!("{label}.dbname"), dbname, engine.family(), IdentifierKind::Database, None)?;
    }
    Ok(engine)
}

/// The current document, checked for this strategy: for alternating users the alternate user
/// name must fit the limit too, and `masterarn` must be there.
fn check_current(inv: &Invocation<'_>, current: &SecretDocument, info: &mut StepInfo) -> Result<Engine, RotationError> {
    let engine = check_login_document(inv, current, AWSCURRENT)?;
    info.engine = Some(engine.as_str().to_owned());
    info.host = current.host_opt().map(clean);
    if inv.config().strategy == Strategy::AlternatingUsers {
        let username = current.username()?;
        let alternate = alternate_username(username);
        let limit = inv.config().username_limit_for(engine);
        if alternate.len() > limit {
            return Err(InputError::invalid(
                "AWSCURRENT.username",
                format!("the alternate user {} is {} characters, over the {engine} limit of {limit}", for_log(&alternate), alternate.len()),
                format!("use a user name of at most {} characters so that {CLONE_SUFFIX} fits, or set USERNAME_CHARACTER_LIMIT", limit.saturating_sub(CLONE_SUFFIX.len())),
            )
            .into());
        }
        if current.masterarn().is_none() {
            return Err(InputError::missing(
                "AWSCURRENT.masterarn",
                "alternating-users rotation needs the ARN of the master secret in masterarn (or set ROTATION_STRATEGY=single-user)",
            )
            .into());
        }
    }
    Ok(engine)
}

/// Host names compare like DNS names: without case and a trailing dot.
pub(crate) fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The pending document must describe the same database as the current one, and the user this
/// strategy expects: the same user (single user) or its alternate (alternating users).
fn check_pending(inv: &Invocation<'_>, current: &SecretDocument, pending: &SecretDocument, engine: Engine) -> Result<(), RotationError> {
    let pending_engine = check_login_document(inv, pending, AWSPENDING)?;
    if pending_engine.family() != engine.family() {
        return Err(InputError::invalid("AWSPENDING.engine", format!("is {pending_engine}, but AWSCURRENT's is {engine}"), "cancel this rotation and start again").into());
    }
    let (current_host, pending_host) = (current.host()?, pending.host()?);
    if !same_host(current_host, pending_host) || current.port(engine.family())? != pending.port(engine.family())? {
        return Err(InputError::invalid(
            "AWSPENDING.host",
            format!("{}:{} is not AWSCURRENT's {}:{}", for_log(pending_host), pending.port(engine.family())?, for_log(current_host), current.port(engine.family())?),
            "the pending version must point at the same database; cancel this rotation and start again",
        )
        .into());
    }
    let expected = match inv.config().strategy {
        Strategy::SingleUser => current.username()?.to_owned(),
        Strategy::AlternatingUsers => alternate_username(current.username()?),
    };
    if pending.username()? != expected {
        return Err(InputError::invalid(
            "AWSPENDING.username",
            format!("is {}, but {} rotation expects {}", for_log(pending.username()?), inv.config().strategy.as_str(), for_log(&expected)),
            "check ROTATION_STRATEGY matches the function this secret was rotated with; cancel this rotation and start again",
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// createSecret

/// Stores the new credentials as the token's AWSPENDING value.
///
/// Cases:
/// - the current document is malformed, has a hostile or over-long user name, or (alternating)
///   lacks `masterarn` or has no room for `_clone`: refused, nothing written;
/// - the token's version already holds a value (a retry, or the service calling again): kept as
///   is, never replaced (a value that does not parse is reported, not overwritten);
/// - otherwise: a copy of AWSCURRENT, every key kept as written, with a new password from the
///   engine's policy and (alternating) the other user name, stored with PutSecretValue(token,
///   [AWSPENDING], RotationToken).
pub(crate) async fn create_secret(inv: &Invocation<'_>, info: &mut StepInfo) -> Result<Outcome, RotationError> {
    let current = read_current(inv).await?;
    let engine = check_current(inv, &current, info)?;

    let store = inv.rotator.store;
    let selector = VersionSelector::IdAndStage(inv.token().to_owned(), AWSPENDING.to_owned());
    match store.get_value(inv.arn(), selector).await {
        Ok(existing) => {
            return match SecretDocument::parse(existing.value) {
                Ok(_) => Ok(Outcome::AlreadyCreated),
                Err(err) => Err(RotationError::state(format!(
                    "the AWSPENDING version {} already holds a value, which is not a usable secret ({}); it is left as is: cancel this rotation (aws secretsmanager cancel-rotate-secret) and start again",
                    for_log(inv.token()),
                    err.field
                ))),
            };
        }
        Err(err) if err.is_not_found() => {}
        Err(err) => return Err(RotationError::from(err).context("reading the AWSPENDING version")),
    }

    let mut pending = current;
    if inv.config().strategy == Strategy::AlternatingUsers {
        let alternate = alternate_username(pending.username()?);
        pending.set_username(&alternate);
    }
    pending.set_password(generate_password(&inv.config().policy_for(engine.family()))?);
    inv.check_time("storing the AWSPENDING version")?;
    let rotation_token = inv.event.rotation_token.as_ref().map(|t| t.expose());
    store
        .put_value(inv.arn(), inv.token(), &pending.to_json(), &[AWSPENDING], rotation_token)
        .await
        .map_err(|e| RotationError::from(e).context("storing the AWSPENDING version"))?;
    Ok(Outcome::Created)
}

// ---------------------------------------------------------------------------------------------
// setSecret

/// Makes the database accept the pending credentials.
///
/// Cases common to both strategies:
/// - the current or pending document is malformed or hostile, or the pending one points at
///   another database or the wrong user: refused before any login;
/// - then the strategy's own cases (see [`set_single_user`] and [`set_alternating`]).
pub(crate) async fn set_secret(inv: &Invocation<'_>, info: &mut StepInfo) -> Result<Outcome, RotationError> {
    let current = read_current(inv).await?;
    let engine = check_current(inv, &current, info)?;
    let pending = read_pending(inv).await?;
    check_pending(inv, &current, &pending, engine)?;
    match inv.config().strategy {
        Strategy::SingleUser => set_single_user(inv, &current, &pending, engine).await,
        Strategy::AlternatingUsers => set_alternating(inv, &current, &pending, engine).await,
    }
}

/// Whether the server accepts `document`'s password for its own user. `Ok(false)` when the
/// server refused the credentials (or another account took the login). A `permission` failure
/// (MySQL 1044, PostgreSQL 42501: authenticated, but no access to `dbname`) counts as accepted:
/// it is what a clone looks like after a crash between its password and its grants, and the
/// step must go on to converge the grants, not stop. Other failures (TLS, network, deadline)
/// are errors, because trying other credentials over the same broken path would only hide them.
async fn logs_in(inv: &Invocation<'_>, document: &SecretDocument, engine: Engine, label: &str) -> Result<bool, RotationError> {
    inv.check_time(&format!("logging in with {label}"))?;
    match inv.rotator.databases.check_login(document, inv.deadline).await {
        Ok(identity) => Ok(identity_is(&identity, engine.family(), document.username()?)),
        Err(err) if err.class == ErrorClass::Authentication => Ok(false),
        Err(err) if err.class == ErrorClass::Permission => Ok(true),
        Err(err) => Err(RotationError::from(err).context(&format!("logging in with the {label} credentials"))),
    }
}

/// Single user: the user changes its own password.
///
/// Cases:
/// - the pending credentials already log in (a retry after the change): done;
/// - the current credentials log in: the user sets its own password to the pending one;
/// - the current credentials are refused (someone changed the password, or an earlier rotation
///   finished in the database but not in the secret): AWSPREVIOUS is tried the same way; a
///   malformed AWSPREVIOUS, or one for another user or database, is skipped with a warning;
/// - nothing logs in: "Unable to log into database with previous, current, or pending secret";
/// - any other failure (TLS, network, permission, deadline) stops the step with its class,
///   without trying further credentials.
async fn set_single_user(inv: &Invocation<'_>, current: &SecretDocument, pending: &SecretDocument, engine: Engine) -> Result<Outcome, RotationError> {
    let new_password = pending.password()?;
    // Whether the pending password already logs in (a retry after the change) and the change
    // with the current login do not depend on each other: both run at once, one login's time
    // instead of two (BENCHMARKS.md). Should the change commit before the pending login is
    // checked, the password is the pending one either way.
    let (pending_logs_in, changed) = tokio::join!(logs_in(inv, pending, engine, AWSPENDING), change_own_password(inv, current, new_password, AWSCURRENT));
    match (pending_logs_in, changed) {
        (Ok(true), _) => return Ok(Outcome::AlreadySet),
        (_, Ok(true)) => return Ok(Outcome::PasswordChanged { with: AWSCURRENT }),
        (Err(err), _) | (Ok(false), Err(err)) => return Err(err),
        (Ok(false), Ok(false)) => {
            tracing::info!(secret_arn = %clean(inv.arn()), version = %clean(inv.token()), "the AWSCURRENT credentials were refused");
        }
    }
    if let Some(previous) = read_previous(inv, current, engine).await? {
        if change_own_password(inv, &previous, new_password, AWSPREVIOUS).await? {
            return Ok(Outcome::PasswordChanged { with: AWSPREVIOUS });
        }
        tracing::info!(secret_arn = %clean(inv.arn()), version = %clean(inv.token()), "the AWSPREVIOUS credentials were refused");
    }
    Err(RotationError::new(
        ErrorClass::Authentication,
        format!(
            "Unable to log into database with previous, current, or pending secret of secret {} (user {}); set the user's password in the database to the AWSCURRENT one, then rotate again",
            for_log(inv.arn()),
            for_log(current.username()?)
        ),
    ))
}

/// Logs in with `login` and sets its own password. `Ok(false)` when the login was refused.
async fn change_own_password(inv: &Invocation<'_>, login: &SecretDocument, new_password: &dbcreds_core::SecretString, label: &str) -> Result<bool, RotationError> {
    inv.check_time(&format!("changing the password with the {label} credentials"))?;
    match inv.rotator.databases.set_own_password(login, new_password, inv.deadline).await {
        Ok(()) => Ok(true),
        // The caller says so when it matters (not when the pending password already works).
        Err(err) if err.class == ErrorClass::Authentication => Ok(false),
        Err(err) => Err(RotationError::from(err).context(&format!("changing the password with the {label} credentials"))),
    }
}

/// AWSPREVIOUS when it is usable as a fallback login; `None` (with a warning) when it is absent,
/// malformed, or for another user or database. A malformed AWSPREVIOUS never fails the step.
async fn read_previous(inv: &Invocation<'_>, current: &SecretDocument, engine: Engine) -> Result<Option<SecretDocument>, RotationError> {
    let Some(previous_id) = inv.metadata.version_with_stage(AWSPREVIOUS) else { return Ok(None) };
    let skip = |why: &str| {
        tracing::warn!(secret_arn = %clean(inv.arn()), version = %clean(inv.token()), previous_version = %clean(previous_id), problem = %why, "AWSPREVIOUS skipped as a fallback login");
    };
    inv.check_time("reading AWSPREVIOUS")?;
    let previous = match read_version(inv, VersionSelector::Id(previous_id.to_owned()), AWSPREVIOUS).await {
        Ok(document) => document,
        Err(err) if matches!(err.class, ErrorClass::Input | ErrorClass::State) => {
            skip(&err.message);
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    if let Err(err) = check_login_document(inv, &previous, AWSPREVIOUS) {
        skip(&err.message);
        return Ok(None);
    }
    let same_login = previous.username().ok() == current.username().ok()
        && previous.host_opt().zip(current.host_opt()).is_some_and(|(a, b)| same_host(a, b))
        && previous.port(engine.family()).ok() == current.port(engine.family()).ok();
    if !same_login {
        skip("it is for another user or database");
        return Ok(None);
    }
    Ok(Some(previous))
}

/// Alternating users: with the master secret, make the pending user a copy of the current one.
///
/// Cases:
/// - the current credentials must log in (confused-deputy guard: whoever edited the secret must
///   have known the current password before the master acts on it); refused otherwise. The
///   pending, current and master logins run at once; the master's session changes nothing
///   until the current credentials are proven (the `Proceed` gate of `mirror_user`);
/// - the master secret (`masterarn`) must be for the same database (same engine family, host and
///   port, or the RDS instance or cluster the secret names) and must not be the rotated user;
/// - an RDS-managed master secret (only username and password) gets its host, port and engine
///   from RDS through its `aws:rds:primarydbinstancearn` / `primarydbclusterarn` tag;
/// - a warm function reuses the master it read within `MASTER_SECRET_CACHE_SECONDS` (secrets
///   sharing one master rotate with one read of it); when the database refuses that password
///   (the master was rotated since) it reads the master again and retries once;
/// - then `mirror_user(current user, pending user, pending password)` creates the pending user if
///   missing and makes its password, grants (MySQL) or memberships and attributes (PostgreSQL)
///   match, revoking what the current user no longer has. It runs even when the pending
///   credentials already log in, because the adapters set the password before the grants: a
///   retry after a crash between the two must still converge the grants.
async fn set_alternating(inv: &Invocation<'_>, current: &SecretDocument, pending: &SecretDocument, engine: Engine) -> Result<Outcome, RotationError> {
    let remember_for = inv.rotator.config.master_cache;
    let first_read = if remember_for.is_zero() { MasterRead::Fresh } else { MasterRead::Recent(remember_for) };
    let (source, target, password) = (current.username()?, pending.username()?, pending.password()?);
    let mirror = |master: SecretDocument, proceed: Proceed| async move {
        inv.check_time("mirroring the user with the master secret")?;
        inv.rotator.databases.mirror_user(&master, source, target, password, inv.deadline, proceed).await.map_err(RotationError::from)
    };
    // The three logins (pending, current, master) run at once: the master's session waits at
    // the gate until the current credentials are proven, and changes nothing otherwise.
    let (go, proceed) = tokio::sync::oneshot::channel();
    let checks = async {
        let (pending_logs_in, current_logs_in) = tokio::join!(logs_in(inv, pending, engine, AWSPENDING), logs_in(inv, current, engine, AWSCURRENT));
        let _ = go.send(pending_logs_in.is_ok() && matches!(current_logs_in, Ok(true)));
        (pending_logs_in, current_logs_in)
    };
    let first_mirror = async {
        let master = load_master(inv, current, engine, first_read).await?;
        Ok::<_, RotationError>((master.remembered, mirror(master.document, proceed).await))
    };
    let ((pending_logs_in, current_logs_in), first_mirror) = tokio::join!(checks, first_mirror);
    let pending_already_logged_in = pending_logs_in?;
    if !current_logs_in? {
        return Err(RotationError::new(
            ErrorClass::Authentication,
            format!(
                "the AWSCURRENT credentials of {} (user {}) do not log in, so the master secret is not used (confused-deputy guard); set the user's password in the database to the AWSCURRENT one, then rotate again",
                for_log(inv.arn()),
                for_log(current.username()?)
            ),
        ));
    }
    let (remembered, mirrored) = first_mirror?;
    let mirrored = match mirrored {
        // A master from memory may be out of date (rotated since): read it again and retry once.
        // One just read from Secrets Manager is refused for a reason a second read won't change.
        Err(e) if e.class == ErrorClass::Authentication && remembered => {
            tracing::info!(secret_arn = %clean(inv.arn()), version = %clean(inv.token()), "the remembered master secret was refused; reading it again");
            let master = load_master(inv, current, engine, MasterRead::Fresh).await?;
            mirror(master.document, proceed_now()).await
        }
        other => other,
    };
    let context = || format!("making {} a copy of {} with the master secret", for_log(target), for_log(source));
    let changes = mirrored.map_err(|e| e.context(&context()))?.ok_or_else(|| RotationError::new(ErrorClass::Internal, format!("{}: the checks passed but the mirror did not proceed", context())))?;
    for change in &changes {
        tracing::info!(secret_arn = %clean(inv.arn()), version = %clean(inv.token()), change = ?change, "clone changed");
    }
    Ok(Outcome::Mirrored { changes: changes.len(), pending_already_logged_in })
}

/// The master login for alternating users, checked against the rotated secret
/// ([`crate::master::resolve_master`], shared with the operator CLI).
async fn load_master(inv: &Invocation<'_>, current: &SecretDocument, engine: Engine, read: MasterRead) -> Result<crate::master::Master, RotationError> {
    crate::master::resolve_master(inv.rotator.store, inv.rotator.endpoints, current, engine, read, &|what| inv.check_time(what)).await
}

// ---------------------------------------------------------------------------------------------
// testSecret

/// Proves the pending credentials work: log in and ask the server who we are.
///
/// Cases:
/// - the pending document is malformed: refused;
/// - the login is refused, or another account answers it: failure, nothing changes (Secrets
///   Manager retries, and the next setSecret repairs it);
/// - otherwise: success. Nothing is written.
pub(crate) async fn test_secret(inv: &Invocation<'_>, info: &mut StepInfo) -> Result<Outcome, RotationError> {
    let pending = read_pending(inv).await?;
    let engine = check_login_document(inv, &pending, AWSPENDING)?;
    info.engine = Some(engine.as_str().to_owned());
    info.host = pending.host_opt().map(clean);
    inv.check_time("logging in with the AWSPENDING credentials")?;
    let identity = inv.rotator.databases.check_login(&pending, inv.deadline).await.map_err(|e| RotationError::from(e).context("logging in with the AWSPENDING credentials"))?;
    if !identity_is(&identity, engine.family(), pending.username()?) {
        return Err(RotationError::new(
            ErrorClass::Authentication,
            format!("the AWSPENDING credentials logged in, but the server says we are {}, not {}", for_log(&identity.current_user), for_log(pending.username()?)),
        ));
    }
    Ok(Outcome::Tested)
}

// ---------------------------------------------------------------------------------------------
// finishSecret

/// Makes the pending version current and leaves no AWSPENDING behind.
///
/// Cases:
/// - the token is already AWSCURRENT (handled by the preamble): AWSPENDING is removed from it if
///   still there (a crash between the two calls below), else nothing to do;
/// - the pending value is not a usable document: refused, nothing moved;
/// - otherwise: UpdateSecretVersionStage(AWSCURRENT, MoveTo=token, RemoveFrom=old current) (the
///   service labels the old version AWSPREVIOUS), then remove AWSPENDING from the token, so the
///   next RotateSecret can start. AWS's functions leave AWSPENDING on the new version.
pub(crate) async fn finish_secret(inv: &Invocation<'_>, info: &mut StepInfo) -> Result<Outcome, RotationError> {
    let pending = read_pending(inv).await?;
    let engine = check_login_document(inv, &pending, AWSPENDING)?;
    info.engine = Some(engine.as_str().to_owned());
    info.host = pending.host_opt().map(clean);
    let Some(current_id) = inv.metadata.version_with_stage(AWSCURRENT) else {
        return Err(RotationError::state(format!("secret {} has no AWSCURRENT version to move", for_log(inv.arn()))));
    };
    inv.check_time("moving AWSCURRENT")?;
    inv.rotator
        .store
        .update_stage(inv.arn(), AWSCURRENT, Some(inv.token()), Some(current_id))
        .await
        .map_err(|e| RotationError::from(e).context("moving AWSCURRENT to the new version"))?;
    clear_pending(inv).await?;
    Ok(Outcome::Finished)
}

/// Removes AWSPENDING from the token's version.
pub(crate) async fn clear_pending(inv: &Invocation<'_>) -> Result<(), RotationError> {
    inv.check_time("removing AWSPENDING")?;
    inv.rotator
        .store
        .update_stage(inv.arn(), AWSPENDING, None, Some(inv.token()))
        .await
        .map_err(|e| RotationError::from(e).context("removing AWSPENDING from the new version (AWSCURRENT already moved; a retry finishes it)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_alternate() {
        assert_eq!(alternate_username("app"), "app_clone");
        assert_eq!(alternate_username("app_clone"), "app");
        assert_eq!(alternate_username("_clone"), "_clone_clone");
    }

    #[test]
    fn hosts_compare_like_dns() {
        assert!(same_host("DB.example.com.", "db.example.com"));
        assert!(!same_host("db1.example.com", "db.example.com"));
    }
}
