//! The test PKI, generated at test time: nothing is checked in, nothing expires under our feet.
//!
//! - the test CA, which every client in the tests trusts;
//! - a server certificate for `localhost` and 127.0.0.1, signed by the test CA (verify-full passes);
//! - a server certificate signed by the same CA whose only name is `wrong.example`, so the chain
//!   verifies but hostname verification must fail;
//! - a second, unrelated CA, for clients that trust the wrong authority.
//!
//! One PKI per test process: every server of a test chains to the same CA, as the servers of one
//! RDS region chain to one bundle.

use crate::options::TlsMode;
use crate::system_user::SystemUser;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const SERVER_NAME: &str = "localhost";
pub const WRONG_SERVER_NAME: &str = "wrong.example";

pub struct Pki {
    ca_pem: String,
    localhost: IssuedCertificate,
    wrong_name: IssuedCertificate,
    unrelated_ca_pem: String,
}

struct IssuedCertificate {
    cert_pem: String,
    key_pem: String,
}

/// The PEM files a server was given, in its own directory.
#[derive(Clone, Debug)]
pub struct ServerTlsFiles {
    /// The test CA (written even when the server has TLS off, so clients can still be built).
    pub ca: PathBuf,
    /// The unrelated CA, for "client trusts the wrong CA" tests.
    pub unrelated_ca: PathBuf,
    /// Server certificate and key; `None` when TLS is off.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Pki {
    /// The PKI of this test process, generated on first use (a few milliseconds: ECDSA P-256).
    pub fn shared() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(Pki::generate)
    }

    pub fn generate() -> Pki {
        let (ca_params, ca_key, ca_pem) = certificate_authority("dbcreds test CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let localhost = server_certificate(&issuer, SERVER_NAME, vec![SanType::DnsName(SERVER_NAME.try_into().expect("valid DNS name")), SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))]);
        let wrong_name = server_certificate(&issuer, WRONG_SERVER_NAME, vec![SanType::DnsName(WRONG_SERVER_NAME.try_into().expect("valid DNS name"))]);
        let (_, _, unrelated_ca_pem) = certificate_authority("unrelated test CA");
        Pki { ca_pem, localhost, wrong_name, unrelated_ca_pem }
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn unrelated_ca_pem(&self) -> &str {
        &self.unrelated_ca_pem
    }

    /// Writes the CA files and, unless TLS is off, the server certificate and key chosen by
    /// `tls` into `dir`. The key is 0600 and, when `owner` is given, owned by that user:
    /// PostgreSQL refuses a key that others can read or that belongs to someone else.
    pub fn write_server_files(&self, dir: &Path, tls: TlsMode, owner: Option<&SystemUser>) -> io::Result<ServerTlsFiles> {
        let ca = write_file(dir, "ca.pem", &self.ca_pem, 0o644, owner)?;
        let unrelated_ca = write_file(dir, "unrelated-ca.pem", &self.unrelated_ca_pem, 0o644, owner)?;
        let issued = match tls {
            TlsMode::Verified => Some(&self.localhost),
            TlsMode::WrongName => Some(&self.wrong_name),
            TlsMode::Off => None,
        };
        let (cert, key) = match issued {
            Some(issued) => (
                Some(write_file(dir, "server-cert.pem", &issued.cert_pem, 0o644, owner)?),
                Some(write_file(dir, "server-key.pem", &issued.key_pem, 0o600, owner)?),
            ),
            None => (None, None),
        };
        Ok(ServerTlsFiles { ca, unrelated_ca, cert, key })
    }
}

fn certificate_authority(common_name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("generate CA key");
    let pem = params.self_signed(&key).expect("self-sign CA").pem();
    (params, key, pem)
}

fn server_certificate(issuer: &Issuer<'_, KeyPair>, common_name: &str, names: Vec<SanType>) -> IssuedCertificate {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.subject_alt_names = names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("generate server key");
    let cert = params.signed_by(&key, issuer).expect("sign server certificate");
    IssuedCertificate { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "dbcreds tests");
    name.push(DnType::CommonName, common_name);
    name
}

fn write_file(dir: &Path, name: &str, contents: &str, mode: u32, owner: Option<&SystemUser>) -> io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, contents)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    if let Some(owner) = owner {
        owner.chown(&path)?;
    }
    Ok(path)
}
