//! HTTPS: the server certificate (configured, or generated with a CA on first start), and client-certificate
//! verification against the CAs that sign phones' certificates (8800 MPP AG, "HTTPS and client certificates").
//!
//! rustls with the ring provider only (`crates.md`: two providers in the graph make `ServerConfig::builder` panic).
//! A client certificate is asked for but optional unless configured as required; only a certificate that chains to a
//! configured CA is accepted, so a request's certificate claims ([`crate::identity::certificate_claims`]) are
//! verified claims.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A PEM file holds nothing usable.
    #[error("{0}: {1}")]
    Pem(String, String),
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// The files of the generated CA and server certificate.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The CA certificate (give it to curl as `--cacert`; it also signs demo client certificates).
    pub ca_cert: PathBuf,
    /// The CA's private key.
    pub ca_key: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TlsError::Io(path.display().to_string(), e))?;
    f.write_all(text.as_bytes()).map_err(|e| TlsError::Io(path.display().to_string(), e))
}

/// Makes sure `dir` holds a CA and a server certificate for `hosts` (names or addresses), generating them on the
/// first call and reusing them afterwards.
pub fn ensure_generated(dir: &Path, hosts: &[String]) -> Result<Generated, TlsError> {
    let g = Generated {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    if g.ca_cert.exists() && g.ca_key.exists() && g.server_cert.exists() && g.server_key.exists() {
        return Ok(g);
    }
    // Private like the rest of the data directory (certificates are public, but nobody else needs to read them).
    crate::inventory::make_private_dir(dir).map_err(|e| TlsError::Io(dir.display().to_string(), e))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "Provisor generated CA");
    ca.distinguished_name.push(DnType::OrganizationName, "Provisor");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut names = hosts.to_vec();
    for n in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|h| h == n) {
            names.push(n.to_string());
        }
    }
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names)?;
    server.distinguished_name.push(DnType::CommonName, hosts.first().map_or("localhost", String::as_str));
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;

    write_private(&g.ca_cert, &ca_cert.pem())?;
    write_private(&g.ca_key, &ca_key.serialize_pem())?;
    write_private(&g.server_cert, &server_cert.pem())?;
    write_private(&g.server_key, &server_key.serialize_pem())?;
    Ok(g)
}

/// Issues a phone-style client certificate (`OU` = model, `L` = serial, `S` = MAC) signed by the CA in `g`, and
/// writes `<stem>.pem` and `<stem>.key`: for demos, tests and lab phones.
pub fn issue_phone_certificate(
    g: &Generated,
    stem: &Path,
    mac: &str,
    model: &str,
    serial: &str,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| TlsError::Io(p.display().to_string(), e));
    let ca_key = KeyPair::from_pem(&read(&g.ca_key)?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&g.ca_cert)?, &ca_key)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::OrganizationalUnitName, model);
    p.distinguished_name.push(DnType::LocalityName, serial);
    p.distinguished_name.push(DnType::StateOrProvinceName, mac);
    p.distinguished_name.push(DnType::CommonName, format!("{model}-{mac}"));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (stem.with_extension("pem"), stem.with_extension("key"));
    std::fs::write(&cert_path, cert.pem()).map_err(|e| TlsError::Io(cert_path.display().to_string(), e))?;
    write_private(&key_path, &key.serialize_pem())?;
    Ok((cert_path, key_path))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let name = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Pem(name.clone(), e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(name.clone(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(name, "no certificate in the file".into()));
    }
    Ok(certs)
}

/// The cipher suites the server offers, in its order of preference: ring's (every one AEAD with forward secrecy),
/// those with AES-128-GCM and SHA-256 first, the rest in ring's order.
///
/// Phones (and OpenSSL's defaults) list AES-256-GCM with SHA-384 first. Both are secure; the difference is the
/// handshake's hashing. TLS 1.3 hashes the transcript and derives every key with the suite's hash, TLS 1.2's PRF
/// likewise, and SHA-384 is SHA-512, which x86 CPUs run without hardware help while they have SHA-256
/// instructions. In a 10,000-phone boot storm, SHA-512 was the largest single item of the server's CPU time (7.7 %
/// of it; `BENCHMARKS.md`). `[https] client_cipher_order = true` lets the client choose instead.
pub fn cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    let mut suites = rustls::crypto::ring::default_provider().cipher_suites;
    // A stable sort keeps ring's order within each group.
    suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    suites
}

/// A rustls server configuration: `cert`/`key` as the server's identity; client certificates verified against
/// `client_cas` (asked for, and required only if `require`). The server chooses the cipher suite by
/// [`cipher_suites`], unless `client_order`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_cas: &[PathBuf],
    require: bool,
    client_order: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: cipher_suites(),
        ..rustls::crypto::ring::default_provider()
    });
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem(key.display().to_string(), e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in client_cas {
        for c in certificates(ca)? {
            roots.add(c).map_err(|e| TlsError::Pem(ca.display().to_string(), e.to_string()))?;
        }
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if require { verifier } else { verifier.allow_unauthenticated() };
        builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Rustls(e.to_string()))?)
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.ignore_client_order = !client_order;
    // Phones speak HTTP/1.0 and 1.1 (specs.md §4.3); h2 is offered to clients that want it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite;

    /// A full handshake in memory with a client that lists the suites in ring's order (AES-256-GCM first, as
    /// phones and OpenSSL do); the suite they agree on.
    fn negotiated(
        server: rustls::ServerConfig,
        ca: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> CipherSuite {
        let mut roots = rustls::RootCertStore::empty();
        for c in certificates(ca).unwrap() {
            roots.add(c).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut client = rustls::ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        assert!(!client.is_handshaking(), "the handshake did not finish");
        let suite = server.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(client.negotiated_cipher_suite().unwrap().suite(), suite);
        suite
    }

    #[test]
    fn the_server_chooses_aes_128_gcm_with_sha_256_unless_told_to_follow_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let g = ensure_generated(dir.path(), &["localhost".into()]).unwrap();
        let config = |client_order| server_config(&g.server_cert, &g.server_key, &[], false, client_order).unwrap();
        let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
        assert_eq!(negotiated(config(false), &g.ca_cert, tls13), CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(negotiated(config(true), &g.ca_cert, tls13), CipherSuite::TLS13_AES_256_GCM_SHA384);
        assert_eq!(negotiated(config(false), &g.ca_cert, tls12), CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
        assert_eq!(negotiated(config(true), &g.ca_cert, tls12), CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
        // Only the order changed: the same suites as ring offers.
        let mut ours: Vec<_> = cipher_suites().iter().map(|s| s.suite()).collect();
        let mut ring: Vec<_> =
            rustls::crypto::ring::default_provider().cipher_suites.iter().map(|s| s.suite()).collect();
        ours.sort_by_key(|s| u16::from(*s));
        ring.sort_by_key(|s| u16::from(*s));
        assert_eq!(ours, ring);
    }
}
