//! The login on one connection: the driver's. The layer-by-layer probe (`probe`) opens a
//! connection of its own, so it runs only when the login does not simply succeed or get refused:
//!
//! - **The login succeeds** (the normal case): TCP and TLS are proven by the same connection,
//!   and reported from it (the negotiated TLS version, the verified certificate). One connection
//!   per check, which is what a database's connection limits and a proxy's pool should see.
//! - **The server refuses the login** (wrong password, missing privilege): the server answered
//!   over TLS, so both layers below passed; no probe.
//! - **The driver fails below the login** (refused port, untrusted certificate, no TLS, a
//!   dropped connection): the probe runs to name the layer precisely, on its own connection:
//!   drivers describe these failures vaguely and differently.
//! - **The login is slow** (past [`PROBE_A_SLOW_LOGIN_AFTER`]): the probe runs beside it, so a
//!   dropped SYN or a server that never speaks is named before the invocation's time runs out.
//!   If the layers are healthy the login is given the rest of its time.
//!
//! On a success that did not need the probe, TCP and TLS carry no time of their own: they are
//! inside the authentication phase's time, which is the whole connection's.

use crate::check::{Target, caps, failed, passed, timed};
use crate::probe;
use crate::report::{Diagnostics, Failure, Phase, TlsReport};
use dbcreds_core::{ErrorClass, TlsPolicy};
use dbcreds_db::{AdminSession, ConnectSpec, Credential, DbError, TrustStore};
use dbcreds_runtime::Budget;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a login may run before the probe looks at the layers beside it. A healthy login
/// (TCP, TLS and authentication) takes milliseconds, even across regions well under a second;
/// a slower one is worth a second connection to say where it is stuck. Never more than half of
/// the invocation's remaining time, so the probe has time to report.
pub const PROBE_A_SLOW_LOGIN_AFTER: Duration = Duration::from_secs(1);

/// Logs in with `credential`, recording the TCP, TLS and authentication phases. See the module.
pub async fn login(target: &Target, credential: Credential, trust: &Arc<TrustStore>, addresses: &[SocketAddr], budget: &Budget, d: &mut Diagnostics) -> Result<Box<dyn AdminSession>, Failure> {
    if budget.is_spent() {
        failed(d, Phase::Tcp, Some(Duration::ZERO));
        return Err(Failure::new(Phase::Tcp, ErrorClass::Deadline, "no time was left in the invocation to connect"));
    }
    let is_iam = matches!(credential, Credential::IamToken(_));
    let spec = ConnectSpec {
        family: target.family,
        host: target.host.clone(),
        port: target.port,
        username: target.username.clone(),
        credential,
        database: target.database.clone(),
        tls: target.tls,
        trust: trust.clone(),
        deadline: budget.deadline_for(caps::TCP + caps::TLS + caps::AUTHENTICATION),
    };
    let started = Instant::now();
    let driver = dbcreds_db::connect(&spec);
    tokio::pin!(driver);
    let patience = PROBE_A_SLOW_LOGIN_AFTER.min(budget.remaining() / 2);
    let early = tokio::select! {
        result = &mut driver => Some(result),
        () = tokio::time::sleep(patience) => None,
    };
    let context = ProbeContext::of(d);
    let (result, findings) = match early {
        Some(result) => (result, None),
        None => {
            let probe = probe_layers(target, trust, addresses, budget, &context);
            tokio::pin!(probe);
            tokio::select! {
                result = &mut driver => {
                    // A success or the server's refusal proves the layers: the probe is dropped.
                    let probe_needed = matches!(&result, Err(err) if below_the_login(err.class));
                    let findings = if probe_needed { Some(probe.await) } else { None };
                    (result, findings)
                }
                findings = &mut probe => match findings {
                    Findings { found, outcome: Err(failure) } => {
                        // A layer failed: that is the answer; the driver's attempt is dropped.
                        merge_found(found, d);
                        return Err(failure);
                    }
                    healthy => (driver.await, Some(healthy)),
                },
            }
        }
    };
    let elapsed = started.elapsed();
    match result {
        Ok(session) => {
            match findings {
                Some(findings) => findings.merge_into(d)?,
                None => layers_proven_by_the_login(target, trust, addresses, Some(session.transport()), d),
            }
            if let Some(tls) = d.tls.as_mut() {
                // The probe's version is exact; a driver may only know "TLS" (RDS Proxy's MySQL).
                if tls.version.is_none() {
                    tls.version = session.transport().tls_version.clone();
                }
                tls.certificate_verified &= session.transport().certificate_verified;
            }
            passed(d, Phase::Authentication, Some(elapsed), Some(format!("logged in as {}", spec.username)));
            Ok(session)
        }
        Err(err) => {
            let findings = match findings {
                Some(findings) => Some(findings),
                None if below_the_login(err.class) => Some(probe_layers(target, trust, addresses, budget, &context).await),
                None => None,
            };
            let probed_healthy = findings.is_some();
            match findings {
                Some(findings) => findings.merge_into(d)?,
                // Refused by the server: it answered the login, over TLS when TLS is on.
                None if reached_the_server(err.class) => layers_proven_by_the_login(target, trust, addresses, None, d),
                None => {}
            }
            failed(d, Phase::Authentication, Some(elapsed));
            Err(login_failure(err, is_iam, probed_healthy))
        }
    }
}

/// A driver error that comes from the server's answer to the login.
fn reached_the_server(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::Authentication | ErrorClass::Permission | ErrorClass::Sql)
}

/// A driver error the probe can place in a layer (anything but the server's answer, or a
/// login refused before any connection: bad input, a bug).
fn below_the_login(class: ErrorClass) -> bool {
    !reached_the_server(class) && !matches!(class, ErrorClass::Input | ErrorClass::Internal)
}

/// TCP and TLS, as the login's own connection proved them. The connected address is known when
/// DNS gave one (the driver tries them in order and does not say which answered).
fn layers_proven_by_the_login(target: &Target, trust: &TrustStore, addresses: &[SocketAddr], transport: Option<&dbcreds_db::Transport>, d: &mut Diagnostics) {
    const INSIDE: &str = "on the login's connection; its time is in the authentication phase";
    let address = match addresses {
        [only] => Some(only.to_string()),
        _ => None,
    };
    let reached = address.as_deref().map(|a| format!("connected to {a}")).unwrap_or_else(|| "connected".to_owned());
    passed(d, Phase::Tcp, None, Some(format!("{reached}, {INSIDE}")));
    d.connected_address = address;
    match target.tls {
        TlsPolicy::VerifyFull => {
            let version = transport.and_then(|t| t.tls_version.clone());
            let detail = match &version {
                Some(version) => format!("{version}, certificate verified for {}, {INSIDE}", target.host),
                None => format!("certificate verified for {} before the login was sent, {INSIDE}", target.host),
            };
            passed(d, Phase::Tls, None, Some(detail));
            // With TLS on, the drivers send no credential before the chain and name verified.
            d.tls = Some(TlsReport { version, certificate_verified: true, trust_store: trust.sources().to_vec() });
        }
        TlsPolicy::Disabled => plaintext(d),
    }
}

fn plaintext(d: &mut Diagnostics) {
    d.skipped(Phase::Tls, "plaintext: the secret sets \"ssl\": false");
    d.tls = Some(TlsReport { version: None, certificate_verified: false, trust_store: Vec::new() });
}

/// What the logs of the probe's phases carry, copied so the probe can run beside the login.
struct ProbeContext {
    engine: Option<String>,
    endpoint: Option<String>,
    secret_arn: Option<String>,
}

impl ProbeContext {
    fn of(d: &Diagnostics) -> Self {
        Self { engine: d.engine.clone(), endpoint: d.endpoint.clone(), secret_arn: d.secret_arn.clone() }
    }
}

/// The probe's TCP and TLS phases, recorded apart so a probe that turns out not to be needed
/// leaves no trace in the report.
struct Findings {
    found: Diagnostics,
    outcome: Result<(), Failure>,
}

impl Findings {
    /// Adds the probe's phases and what it learnt to `d`; its failure, if any, is the check's.
    fn merge_into(self, d: &mut Diagnostics) -> Result<(), Failure> {
        merge_found(self.found, d);
        self.outcome
    }
}

fn merge_found(found: Diagnostics, d: &mut Diagnostics) {
    d.phases.extend(found.phases);
    d.connected_address = found.connected_address.or(d.connected_address.take());
    d.tls = found.tls.or(d.tls.take());
    d.server_version = found.server_version.or(d.server_version.take());
}

/// TCP to the first address that accepts, then the protocol's TLS negotiation and a verified
/// handshake (see `probe`), each on its own deadline.
async fn probe_layers(target: &Target, trust: &Arc<TrustStore>, addresses: &[SocketAddr], budget: &Budget, context: &ProbeContext) -> Findings {
    let mut found = Diagnostics { engine: context.engine.clone(), endpoint: context.endpoint.clone(), secret_arn: context.secret_arn.clone(), ..Default::default() };
    let outcome = probe_into(target, trust, addresses, budget, &mut found).await;
    Findings { found, outcome }
}

async fn probe_into(target: &Target, trust: &Arc<TrustStore>, addresses: &[SocketAddr], budget: &Budget, d: &mut Diagnostics) -> Result<(), Failure> {
    let (stream, address) = timed(d, Phase::Tcp, budget, caps::TCP, |deadline| async move {
        let (stream, address) = probe::connect_tcp(addresses, deadline).await?;
        Ok(((stream, address), Some(format!("connected to {address}"))))
    })
    .await?;
    d.connected_address = Some(address.to_string());
    match target.tls {
        TlsPolicy::VerifyFull => {
            let probed = timed(d, Phase::Tls, budget, caps::TLS, |deadline| async move {
                let probed = probe::negotiate_tls(target.family, stream, &target.host, trust, deadline).await?;
                let detail = format!("{}, certificate verified for {}", probed.version, target.host);
                Ok((probed, Some(detail)))
            })
            .await?;
            d.tls = Some(TlsReport { version: Some(probed.version), certificate_verified: true, trust_store: trust.sources().to_vec() });
            d.server_version = probed.server_version;
        }
        TlsPolicy::Disabled => {
            drop(stream);
            plaintext(d);
        }
    }
    Ok(())
}

/// The driver's failure as the check's, with what to look at. `probed_healthy`: the probe found
/// TCP and TLS working, so a timeout is the login's, not the network's.
fn login_failure(err: DbError, is_iam: bool, probed_healthy: bool) -> Failure {
    let failure = Failure::new(Phase::Authentication, err.class, err.message);
    match (err.class, is_iam) {
        (ErrorClass::TcpTimeout | ErrorClass::Deadline, _) if probed_healthy => failure.with_hint(
            "TCP and TLS answered the probe, but the login did not finish in time: the server or proxy accepts connections and then stalls. \
             Check its load and connection limits (max_connections; for RDS Proxy the pool's MaxConnectionsPercent and ConnectionBorrowTimeout, and its target's health), \
             and for Aurora Serverless a paused cluster that is resuming (try again in a minute)",
        ),
        (ErrorClass::Authentication, true) => failure.with_hint(
            "the server refused the IAM token: check the assumed role's policy allows rds-db:connect on arn:aws:rds-db:<region>:<account>:dbuser:<prx-... or DbiResourceId>/<user>, \
             that the user is IAM-enabled (PostgreSQL: GRANT rds_iam; MySQL: IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'), \
             that the proxy or database has IAM authentication enabled, and that the token's host, port and region match the endpoint",
        ),
        (ErrorClass::Authentication, false) => failure.with_hint(
            "the server refused the secret's user name and password: check the user exists and may connect from this address, and that the secret's AWSCURRENT password is the one the database has \
             (a rotation that stopped half-way leaves an AWSPENDING version: finish or cancel it)",
        ),
        _ => failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_below_the_login_are_probed() {
        for class in [ErrorClass::Authentication, ErrorClass::Permission, ErrorClass::Sql, ErrorClass::Input, ErrorClass::Internal] {
            assert!(!below_the_login(class), "{class}");
        }
        for class in [ErrorClass::Dns, ErrorClass::TcpTimeout, ErrorClass::ConnectionRefused, ErrorClass::TlsVerification, ErrorClass::TlsUnavailable, ErrorClass::ConnectionLost, ErrorClass::Deadline] {
            assert!(below_the_login(class), "{class}");
        }
        assert!(reached_the_server(ErrorClass::Authentication) && !reached_the_server(ErrorClass::Input));
    }
}
