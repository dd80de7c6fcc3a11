//! rustls client configuration for the admin helpers: trust exactly the given CA, verify-full.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;

/// mysql_async builds its rustls configuration with the process-wide default provider, so it
/// must be installed before the first MySQL connection. Installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A client configuration whose only root is `ca_pem`.
pub fn trusting(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|err| format!("CA PEM: {err}"))?;
        roots.add(cert).map_err(|err| format!("CA certificate: {err}"))?;
    }
    if roots.is_empty() {
        return Err("the CA PEM holds no certificate".to_string());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS versions: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An error with its whole `source()` chain, so a TLS failure shows its root cause
/// ("invalid peer certificate: UnknownIssuer") rather than just "TLS handshake failed".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
