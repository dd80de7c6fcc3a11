//! The trust store: which certificate authorities a database server may chain to.
//!
//! Built once per cold start and shared by every connection, for both engines, so MySQL and
//! PostgreSQL trust exactly the same roots:
//! - the system's roots (on Lambda's provided.al2023, /etc/pki/tls/certs), which cover RDS Proxy
//!   (its ACM certificates chain to public Amazon roots);
//! - the Amazon RDS certificate authorities (certs/rds-global-bundle.pem, compiled in), so
//!   direct RDS and Aurora endpoints verify out of the box without shipping a file;
//! - the PEM bundle named by `DB_CA_BUNDLE`, for a private CA or a newer RDS bundle.
//!
//! There is no option to skip verification. Plaintext exists only as `TlsPolicy::Disabled`, which
//! only a secret's explicit `"ssl": false` produces.

use crate::error::DbError;
use dbcreds_core::{ErrorClass, InputError};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::{Arc, OnceLock};

pub const CA_BUNDLE_ENV: &str = "DB_CA_BUNDLE";

/// The RDS certificate authorities (see certs/README.md for provenance and how to refresh).
const RDS_CA_BUNDLE: &[u8] = include_bytes!("../../../certs/rds-global-bundle.pem");

pub struct TrustStore {
    roots: Vec<CertificateDer<'static>>,
    client_config: Arc<rustls::ClientConfig>,
    /// Where the roots came from, for diagnostics ("system (146)", "DB_CA_BUNDLE /opt/ca.pem (108)").
    sources: Vec<String>,
    /// The MySQL driver's options carrying these roots, made on the first MySQL connection. The
    /// driver builds its TLS connector (parsing every root, twice) once per options object and
    /// caches it inside, so connections made from copies of this one share a single connector
    /// instead of rebuilding it each time (see `mysql::session`).
    mysql_tls: OnceLock<mysql_async::Opts>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore").field("sources", &self.sources).finish()
    }
}

/// Installs aws-lc-rs as the process-wide rustls provider. The MySQL driver builds its rustls
/// configuration with the process default, so this must run before the first MySQL connection.
/// Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl TrustStore {
    /// System roots, the RDS CAs, plus `DB_CA_BUNDLE` (read through `lookup`). A bundle that is named but
    /// unreadable or holds no certificate is an error naming the variable: silently trusting
    /// fewer roots than the operator configured would surface later as a confusing TLS failure.
    pub fn load(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DbError> {
        let mut roots = Vec::new();
        let mut sources = Vec::new();
        let native = rustls_native_certs::load_native_certs();
        if !native.certs.is_empty() {
            sources.push(format!("system ({})", native.certs.len()));
        }
        roots.extend(native.certs);
        let rds = parse_pem_bundle(RDS_CA_BUNDLE).expect("the compiled-in RDS CA bundle is valid PEM (checked by a unit test)");
        sources.push(format!("RDS CA bundle ({})", rds.len()));
        roots.extend(rds);
        if let Some(path) = lookup(CA_BUNDLE_ENV).filter(|p| !p.trim().is_empty()) {
            let pem = std::fs::read(&path).map_err(|err| {
                DbError::from(InputError::invalid(CA_BUNDLE_ENV, format!("cannot read {}: {err}", dbcreds_core::sanitize::for_log(&path)), "point it at a readable PEM file of CA certificates"))
            })?;
            let certs = parse_pem_bundle(&pem).map_err(|problem| DbError::from(InputError::invalid(CA_BUNDLE_ENV, format!("{}: {problem}", dbcreds_core::sanitize::for_log(&path)), "point it at a PEM file of CA certificates")))?;
            sources.push(format!("{CA_BUNDLE_ENV} {path} ({})", certs.len()));
            roots.extend(certs);
        }
        Self::from_roots(roots, sources)
    }

    /// Only the given PEM roots: for tests and for operators who pin a private CA.
    pub fn from_pem(pem: &[u8]) -> Result<Self, DbError> {
        let certs = parse_pem_bundle(pem).map_err(|problem| DbError::new(ErrorClass::Input, format!("CA bundle: {problem}")))?;
        let sources = vec![format!("pem ({})", certs.len())];
        Self::from_roots(certs, sources)
    }

    fn from_roots(roots: Vec<CertificateDer<'static>>, sources: Vec<String>) -> Result<Self, DbError> {
        install_crypto_provider();
        let mut store = RootCertStore::empty();
        // System stores carry the odd certificate rustls cannot parse; skip those rather than fail.
        let (_added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
        if store.is_empty() {
            return Err(DbError::from(InputError::invalid(CA_BUNDLE_ENV, "no trusted certificate authority was found (no system roots and no bundle)", "set DB_CA_BUNDLE to a PEM file of CA certificates")));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| DbError::new(ErrorClass::Internal, format!("TLS configuration: {err}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Self { roots, client_config: Arc::new(client_config), sources, mysql_tls: OnceLock::new() })
    }

    /// A rustls client configuration that verifies the chain and the host name.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client_config.clone()
    }

    /// The roots as DER, for drivers that build their own rustls configuration (mysql_async).
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Where the MySQL adapter keeps its driver options with these roots.
    pub(crate) fn mysql_tls(&self) -> &OnceLock<mysql_async::Opts> {
        &self.mysql_tls
    }
}

fn parse_pem_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|err| format!("not a PEM certificate bundle ({err:?})"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_rds_bundle_parses_and_is_trusted_by_default() {
        let rds = parse_pem_bundle(RDS_CA_BUNDLE).unwrap();
        assert!(rds.len() >= 20, "{} RDS CAs", rds.len());
        let store = TrustStore::load(|_| None).unwrap();
        assert!(store.sources().iter().any(|s| s.starts_with("RDS CA bundle")), "{:?}", store.sources());
        assert!(store.roots().len() >= rds.len());
    }

    #[test]
    fn a_named_but_unreadable_bundle_is_an_error_naming_the_variable() {
        let err = TrustStore::load(|name| (name == CA_BUNDLE_ENV).then(|| "/nonexistent/ca.pem".to_string())).unwrap_err();
        assert!(err.message.contains(CA_BUNDLE_ENV), "{err}");
        let dir = std::env::temp_dir().join(format!("dbcreds-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"not a certificate").unwrap();
        let err = TrustStore::load(|name| (name == CA_BUNDLE_ENV).then(|| empty.display().to_string())).unwrap_err();
        assert!(err.message.contains("no PEM certificate"), "{err}");
    }
}
