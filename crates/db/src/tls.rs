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
        let system = system_roots();
        if !system.is_empty() {
            sources.push(format!("system ({})", system.len()));
        }
        roots.extend(system);
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

/// The bundle files of the distributions, as openssl-probe lists them, in its order: Debian and
/// Ubuntu, then Amazon Linux (Lambda's provided.al2023), Fedora and RHEL, and the others.
const SYSTEM_BUNDLE_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system's roots. `SSL_CERT_FILE` or `SSL_CERT_DIR`, when set, are read exactly as
/// rustls-native-certs reads them. Otherwise only the distribution's bundle file is read: the
/// hashed directory beside it (/etc/ssl/certs) holds the same certificates again, one file each,
/// and reading both, as rustls-native-certs does, doubles the work for the same set: about 300
/// files and 5 ms of every cold start (BENCHMARKS.md, "Init"). (What only the directory has is
/// what the distribution's CA package did not put there, like Debian's self-signed "snakeoil"
/// certificate, which no database connection should trust.) No bundle file: the directory.
///
/// Read and decoded once per process: the provisioner asks twice at every cold start (its
/// trust store, and the client that answers CloudFormation, which must not trust the RDS CAs
/// and `DB_CA_BUNDLE` the trust store adds).
pub fn system_roots() -> Vec<CertificateDer<'static>> {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(read_system_roots).clone()
}

fn read_system_roots() -> Vec<CertificateDer<'static>> {
    if !dbcreds_core::env::environment_names_system_certificates() {
        for path in SYSTEM_BUNDLE_FILES {
            if let Ok(pem) = std::fs::read(path)
                && let Ok(certs) = parse_pem_bundle(&pem)
            {
                return certs;
            }
        }
    }
    rustls_native_certs::load_native_certs().certs
}

/// The `CERTIFICATE` blocks of a PEM bundle, as DER. Other blocks and text between blocks are
/// ignored, as rustls-pki-types ignores them. Decoded with the general-purpose base64 engine
/// rather than rustls-pki-types' constant-time one: these are public certificates, and the
/// constant-time decoder is the hottest function of a cold start (BENCHMARKS.md, "Init").
fn parse_pem_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use base64::Engine as _;
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).position(|window| window == needle);
    let mut certs = Vec::new();
    let mut rest = pem;
    let mut body = Vec::new();
    while let Some(start) = find(rest, BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let end = find(after_begin, END).ok_or_else(|| format!("not a PEM certificate bundle (certificate {} has no END line)", certs.len() + 1))?;
        body.clear();
        body.extend(after_begin[..end].iter().copied().filter(|byte| !byte.is_ascii_whitespace()));
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .map_err(|err| format!("not a PEM certificate bundle (certificate {} is not base64: {err})", certs.len() + 1))?;
        certs.push(CertificateDer::from(der));
        rest = &after_begin[end + END.len()..];
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls::pki_types::pem::PemObject;

    /// What rustls-pki-types' own PEM reader makes of a bundle.
    fn reference_parse(pem: &[u8]) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().expect("valid PEM")
    }

    #[test]
    fn the_pem_reader_agrees_with_rustls_pki_types_on_real_bundles() {
        assert_eq!(parse_pem_bundle(RDS_CA_BUNDLE).unwrap(), reference_parse(RDS_CA_BUNDLE));
        // The system's bundle, where this machine has one.
        for path in SYSTEM_BUNDLE_FILES {
            if let Ok(pem) = std::fs::read(path) {
                let ours = parse_pem_bundle(&pem).unwrap();
                assert!(ours.len() > 50, "{path}: {} roots", ours.len());
                assert_eq!(ours, reference_parse(&pem), "{path}");
            }
        }
    }

    #[test]
    fn the_bundle_file_holds_every_root_the_directory_beside_it_was_given_by_ca_certificates() {
        // Debian's layout; on a machine without it there is nothing to compare.
        use std::collections::BTreeSet;
        let (file, dir) = (std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"), std::path::Path::new("/etc/ssl/certs"));
        let Ok(pem) = std::fs::read(file) else { return };
        let der = |certs: Vec<CertificateDer<'static>>| certs.iter().map(|c| c.to_vec()).collect::<BTreeSet<Vec<u8>>>();
        let ours = der(parse_pem_bundle(&pem).unwrap());
        let both = der(rustls_native_certs::load_certs_from_paths(Some(file), Some(dir)).certs);
        assert!(ours.is_subset(&both));
        // What the directory adds must come from files ca-certificates did not put there
        // (Debian's ssl-cert package leaves its self-signed "snakeoil" certificate there, which
        // no database should be trusted with); every CA it manages is in the bundle.
        let mut unmanaged = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let managed = std::fs::canonicalize(&path).is_ok_and(|target| target.starts_with("/usr/share/ca-certificates") || target == file);
            if !managed && let Ok(pem) = std::fs::read(&path) && let Ok(certs) = parse_pem_bundle(&pem) {
                unmanaged.extend(der(certs));
            }
        }
        let added: BTreeSet<Vec<u8>> = both.difference(&ours).cloned().collect();
        assert!(added.is_subset(&unmanaged), "{} roots are only in the directory, from files ca-certificates manages", added.difference(&unmanaged).count());
    }

    #[test]
    fn the_pem_reader_skips_other_blocks_and_text_and_refuses_broken_certificates() {
        let one = &RDS_CA_BUNDLE[..RDS_CA_BUNDLE.windows(25).position(|w| w == b"-----END CERTIFICATE-----").unwrap() + 25];
        let start = one.windows(27).position(|w| w == b"-----BEGIN CERTIFICATE-----").unwrap();
        let one = &one[start..];
        let mut mixed = b"# a comment\r\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec();
        mixed.extend_from_slice(one);
        mixed.extend_from_slice(b"\r\ntrailing text\n");
        assert_eq!(parse_pem_bundle(&mixed).unwrap(), reference_parse(one));
        assert!(parse_pem_bundle(b"no certificate here").unwrap_err().contains("no PEM certificate"));
        let truncated = &one[..one.len() - 10];
        assert!(parse_pem_bundle(truncated).unwrap_err().contains("no END line"));
        let mut corrupt = one.to_vec();
        corrupt[40] = b'*';
        assert!(parse_pem_bundle(&corrupt).unwrap_err().contains("not base64"));
    }

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
