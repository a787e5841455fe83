//! New self-signed certificates for a site's own trust chain (`provisor trust init`): RSA-2048 for the SASTs and the
//! file signer (phones verify RSA signatures), EC P-256 for the HTTPS certificate on port 6971 (what phones with a
//! signer-version 1.1 trust list want). The caller gives the random source for RSA keys.

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use rsa::pkcs8::EncodePrivateKey;
use rsa::rand_core::TryCryptoRng;

use crate::TrustError;

/// A certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub certificate_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl Issued {
    /// Key first, then certificate: one PEM file, as the public tools write them.
    pub fn combined(&self) -> String {
        format!("{}{}", self.key_pem, self.certificate_pem)
    }
}

fn params(
    common_name: &str,
    organization: &str,
    purposes: Vec<ExtendedKeyUsagePurpose>,
) -> Result<CertificateParams, TrustError> {
    let err = |e: rcgen::Error| TrustError::Crypto(format!("certificate: {e}"));
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.distinguished_name.push(DnType::OrganizationName, organization);
    p.distinguished_name.push(DnType::OrganizationalUnitName, "Provisor");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = purposes;
    Ok(p)
}

/// A self-signed RSA-2048 certificate (SHA-256) named `CN=<common_name>,O=<organization>,OU=Provisor`.
pub fn rsa_identity<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    common_name: &str,
    organization: &str,
) -> Result<Issued, TrustError> {
    let key = rsa::PrivateKey::new(rng, 2048).map_err(|e| TrustError::Crypto(format!("RSA key generation: {e}")))?;
    let der = key.to_pkcs8_der().map_err(|e| TrustError::Crypto(format!("RSA key: {e}")))?;
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| TrustError::Crypto(format!("RSA key: {e}")))?;
    issue(pair, params(common_name, organization, vec![ExtendedKeyUsagePurpose::ServerAuth])?)
}

/// A self-signed EC P-256 certificate for HTTPS, naming `hosts` (DNS names or addresses).
pub fn ec_identity(common_name: &str, organization: &str, hosts: &[String]) -> Result<Issued, TrustError> {
    let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TrustError::Crypto(format!("EC key generation: {e}")))?;
    let mut p = params(common_name, organization, vec![ExtendedKeyUsagePurpose::ServerAuth])?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    for h in hosts {
        p.subject_alt_names.push(match h.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(
                h.clone().try_into().map_err(|e| TrustError::Crypto(format!("host name {h:?}: {e}")))?,
            ),
        });
    }
    issue(pair, p)
}

fn issue(pair: KeyPair, params: CertificateParams) -> Result<Issued, TrustError> {
    let cert = params.self_signed(&pair).map_err(|e| TrustError::Crypto(format!("certificate: {e}")))?;
    Ok(Issued { certificate_pem: cert.pem(), key_pem: pair.serialize_pem() })
}
