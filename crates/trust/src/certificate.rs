//! Certificates and keys, from PEM as the public tools take them: an option that names a certificate takes a PEM
//! holding one; an option that signs takes a PEM holding the certificate and its private key (PKCS#8, PKCS#1 or
//! SEC1), in either order.

use md5::Md5;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha1::Digest as _;

use crate::TrustError;

/// A certificate's public key, as trust-list records carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: the PKCS#1 `RSAPublicKey` DER, and the modulus size in bits.
    Rsa {
        /// DER.
        der: Vec<u8>,
        /// Modulus bits.
        bits: usize,
    },
    /// EC: the uncompressed point (X9.62).
    Ec {
        /// The point.
        point: Vec<u8>,
    },
}

/// A parsed X.509 certificate, with what the formats need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The DER encoding.
    pub der: Vec<u8>,
    /// Subject, as the phones' files write it: `CN=TFTP,O=Example,OU=Test` (in certificate order).
    pub subject: String,
    /// Issuer, the same way.
    pub issuer: String,
    /// Serial number, big-endian, without leading zero bytes.
    pub serial: Vec<u8>,
    /// Public key.
    pub public_key: PublicKey,
    /// The certificate's own signature (the issuer's), as records carry it.
    pub signature: Vec<u8>,
    /// The SubjectPublicKeyInfo DER (to verify with).
    pub spki: Vec<u8>,
}

/// Short names of the attributes the phones' files show; others are left out, as the public tools do.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.6" => "C",
        _ => return None,
    })
}

fn name(n: &x509_parser::x509::X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in n.iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            if let (Some(short), Ok(value)) = (short_name(&oid), attr.as_str()) {
                parts.push(format!("{short}={value}"));
            }
        }
    }
    parts.join(",")
}

impl Certificate {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Certificate, TrustError> {
        let bad = |e: &dyn std::fmt::Display| TrustError::Certificate(format!("not an X.509 certificate: {e}"));
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(&e))?;
        let spki = cert.public_key();
        let key_bits = &spki.subject_public_key.data;
        let algorithm = spki.algorithm.algorithm.to_id_string();
        let public_key = match algorithm.as_str() {
            // rsaEncryption: the BIT STRING holds the PKCS#1 RSAPublicKey.
            "1.2.840.113549.1.1.1" => {
                let key = rsa::PublicKey::from_public_key_der(spki.raw).map_err(|e| bad(&e))?;
                PublicKey::Rsa { der: key_bits.to_vec(), bits: rsa::traits::PublicKeyParts::size(&key) * 8 }
            }
            // id-ecPublicKey: the BIT STRING is the point.
            "1.2.840.10045.2.1" => PublicKey::Ec { point: key_bits.to_vec() },
            other => return Err(TrustError::Certificate(format!("unsupported public key algorithm {other}"))),
        };
        let raw = cert.raw_serial();
        let skip = raw.iter().take_while(|b| **b == 0).count().min(raw.len().saturating_sub(1));
        Ok(Certificate {
            der: der.to_vec(),
            subject: name(cert.subject()),
            issuer: name(cert.issuer()),
            serial: raw[skip..].to_vec(),
            public_key,
            signature: cert.signature_value.data.to_vec(),
            spki: spki.raw.to_vec(),
        })
    }

    /// The first certificate in PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Certificate, TrustError> {
        let der = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| TrustError::Certificate("no certificate in the PEM".into()))?
            .map_err(|e| TrustError::Certificate(format!("PEM: {e}")))?;
        Certificate::from_der(der.as_ref())
    }

    /// The RSA public key, to verify signatures or wrap keys with.
    pub fn rsa_key(&self) -> Result<rsa::PublicKey, TrustError> {
        match self.public_key {
            PublicKey::Rsa { .. } => rsa::PublicKey::from_public_key_der(&self.spki)
                .map_err(|e| TrustError::Certificate(format!("{}: {e}", self.subject))),
            PublicKey::Ec { .. } => {
                Err(TrustError::Certificate(format!("{}: an EC key, where an RSA key is needed", self.subject)))
            }
        }
    }

    /// MD5 of the DER (the `certHash` of an encrypted config's stub).
    pub fn md5(&self) -> [u8; 16] {
        Md5::digest(&self.der).into()
    }

    /// SHA-1 of the DER.
    pub fn sha1(&self) -> [u8; 20] {
        sha1::Sha1::digest(&self.der).into()
    }
}

/// A private key.
#[derive(Clone)]
pub enum KeyKind {
    /// RSA (signs files and trust lists, unwraps config keys).
    Rsa(Box<rsa::PrivateKey>),
    /// EC (the HTTPS certificate on port 6971), kept as its PEM DER form.
    Ec(Vec<u8>),
}

impl std::fmt::Debug for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyKind::Rsa(_) => write!(f, "Rsa(..)"),
            KeyKind::Ec(_) => write!(f, "Ec(..)"),
        }
    }
}

/// The private key in PEM text (PKCS#8, PKCS#1 or SEC1), wherever it is among other blocks.
pub fn private_key(pem: &[u8]) -> Result<KeyKind, TrustError> {
    let key = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| TrustError::Certificate(format!("no private key in the PEM ({e})")))?;
    let bad = |e: &dyn std::fmt::Display| TrustError::Certificate(format!("private key: {e}"));
    match key {
        PrivateKeyDer::Pkcs1(k) => {
            Ok(KeyKind::Rsa(Box::new(rsa::PrivateKey::from_pkcs1_der(k.secret_pkcs1_der()).map_err(|e| bad(&e))?)))
        }
        PrivateKeyDer::Sec1(k) => Ok(KeyKind::Ec(k.secret_sec1_der().to_vec())),
        PrivateKeyDer::Pkcs8(k) => match rsa::PrivateKey::from_pkcs8_der(k.secret_pkcs8_der()) {
            Ok(rsa) => Ok(KeyKind::Rsa(Box::new(rsa))),
            // Not RSA: an EC key in PKCS#8.
            Err(_) => Ok(KeyKind::Ec(k.secret_pkcs8_der().to_vec())),
        },
        _ => Err(TrustError::Certificate("unsupported private key format".into())),
    }
}

/// A certificate with its RSA private key: what signs `.sgn` files and trust lists.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The certificate.
    pub certificate: Certificate,
    key: Box<rsa::PrivateKey>,
}

impl Signer {
    /// From PEM text holding the certificate and its RSA private key, in either order.
    pub fn from_pem(pem: &[u8]) -> Result<Signer, TrustError> {
        let certificate = Certificate::from_pem(pem)?;
        let key = match private_key(pem)? {
            KeyKind::Rsa(k) => k,
            KeyKind::Ec(_) => {
                return Err(TrustError::Certificate(format!(
                    "{}: an EC key cannot sign files or trust lists (phones verify RSA signatures)",
                    certificate.subject
                )));
            }
        };
        let public = rsa::PublicKey::from(&*key);
        if certificate.rsa_key()? != public {
            return Err(TrustError::Certificate(format!(
                "{}: the private key is not the certificate's",
                certificate.subject
            )));
        }
        Ok(Signer { certificate, key })
    }

    /// The signature length in bytes (the modulus size).
    pub fn signature_len(&self) -> usize {
        rsa::traits::PublicKeyParts::size(&rsa::PublicKey::from(&*self.key))
    }

    /// RSA PKCS#1 v1.5 over `data` with `digest`.
    pub fn sign(&self, data: &[u8], digest: crate::Digest) -> Result<Vec<u8>, TrustError> {
        let r = match digest {
            crate::Digest::Sha1 => self.key.pkcs1v15_sign::<sha1::Sha1>(data),
            crate::Digest::Sha256 => self.key.pkcs1v15_sign::<sha2::Sha256>(data),
            crate::Digest::Sha512 => self.key.pkcs1v15_sign::<sha2::Sha512>(data),
        };
        r.map_err(|e| TrustError::Crypto(format!("signing: {e}")))
    }

    /// The private key (to unwrap keys with, when the signer is also a phone).
    pub fn key(&self) -> &rsa::PrivateKey {
        &self.key
    }
}

/// Verifies an RSA PKCS#1 v1.5 signature over `data`.
pub fn verify(
    certificate: &Certificate,
    data: &[u8],
    signature: &[u8],
    digest: crate::Digest,
) -> Result<(), TrustError> {
    let key = certificate.rsa_key()?;
    let r = match digest {
        crate::Digest::Sha1 => key.pkcs1v15_verify::<sha1::Sha1>(data, signature),
        crate::Digest::Sha256 => key.pkcs1v15_verify::<sha2::Sha256>(data, signature),
        crate::Digest::Sha512 => key.pkcs1v15_verify::<sha2::Sha512>(data, signature),
    };
    r.map_err(|_| TrustError::BadSignature(certificate.subject.clone()))
}
