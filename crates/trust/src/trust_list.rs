//! Trust lists (`ITLFile.tlv`, `CTLFile.tlv`; specs.md §5.3, §5.4) = header ‖ records. A record describes one
//! certificate and its role; the header's signer must be a SAST record of the list itself, and a phone that already
//! holds a list accepts a new one only if a SAST of the old list signed it.

use crate::TrustError;
use crate::certificate::{Certificate, PublicKey, Signer};
use crate::header::{self, Digest, Fields, Header};
use crate::tlv;

/// Record tags.
pub mod record_tag {
    /// Record length (u16, the whole record).
    pub const LENGTH: u8 = 1;
    /// DNS name.
    pub const DNS_NAME: u8 = 2;
    /// Subject.
    pub const SUBJECT_NAME: u8 = 3;
    /// Role (u16).
    pub const FUNCTION: u8 = 4;
    /// Issuer.
    pub const ISSUER_NAME: u8 = 5;
    /// Serial number.
    pub const SERIAL_NUMBER: u8 = 6;
    /// Public key: PKCS#1 RSA DER or an EC point.
    pub const PUBLIC_KEY: u8 = 7;
    /// The certificate's signature.
    pub const SIGNATURE: u8 = 8;
    /// DER certificate.
    pub const CERTIFICATE: u8 = 9;
    /// IP address.
    pub const IP_ADDRESS: u8 = 10;
    /// Certificate hash.
    pub const CERTIFICATE_HASH: u8 = 11;
    /// Hash algorithm.
    pub const HASH_ALGORITHM: u8 = 12;
}

/// What a certificate in a trust list is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Role {
    /// System Administrator Security Token (0): signs trust lists.
    #[serde(rename = "SAST")]
    Sast,
    /// Call control (1): SIP over TLS.
    #[serde(rename = "CCM")]
    Ccm,
    /// Call control and TFTP (2).
    #[serde(rename = "CCM+TFTP")]
    CcmTftp,
    /// TFTP (3): signs configuration files; an EC one is the HTTPS certificate on port 6971.
    #[serde(rename = "TFTP")]
    Tftp,
    /// Certificate Authority Proxy Function (4).
    #[serde(rename = "CAPF")]
    Capf,
    /// Application server (7): HTTPS services.
    #[serde(rename = "APP-SERVER")]
    AppServer,
    /// Trust Verification Service (21).
    #[serde(rename = "TVS")]
    Tvs,
}

impl Role {
    /// The u16 in the file.
    pub fn code(self) -> u16 {
        match self {
            Role::Sast => 0,
            Role::Ccm => 1,
            Role::CcmTftp => 2,
            Role::Tftp => 3,
            Role::Capf => 4,
            Role::AppServer => 7,
            Role::Tvs => 21,
        }
    }

    /// The role of a code.
    pub fn from_code(code: u16) -> Option<Role> {
        Some(match code {
            0 => Role::Sast,
            1 => Role::Ccm,
            2 => Role::CcmTftp,
            3 => Role::Tftp,
            4 => Role::Capf,
            7 => Role::AppServer,
            21 => Role::Tvs,
            _ => return None,
        })
    }

    /// `SAST`, `CCM`, ...
    pub fn name(self) -> &'static str {
        match self {
            Role::Sast => "SAST",
            Role::Ccm => "CCM",
            Role::CcmTftp => "CCM+TFTP",
            Role::Tftp => "TFTP",
            Role::Capf => "CAPF",
            Role::AppServer => "APP-SERVER",
            Role::Tvs => "TVS",
        }
    }

    /// Whether a certificate of this role verifies signed configuration files.
    pub fn signs_files(self) -> bool {
        matches!(self, Role::Tftp | Role::CcmTftp)
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Offset of the record in the file.
    pub offset: usize,
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Serial number.
    pub serial: Vec<u8>,
    /// The role code as written.
    pub function: u16,
    /// The public key bytes (PKCS#1 RSA DER or an EC point).
    pub public_key: Vec<u8>,
    /// The DER certificate, when the record carries one.
    pub certificate: Option<Vec<u8>>,
    /// DNS name, when given.
    pub dns_name: Option<String>,
}

impl Record {
    /// The role, if known.
    pub fn role(&self) -> Option<Role> {
        Role::from_code(self.function)
    }

    /// The record's certificate.
    pub fn parsed_certificate(&self) -> Result<Certificate, TrustError> {
        let der = self.certificate.as_deref().ok_or_else(|| {
            TrustError::at(self.offset, format!("the record of {} carries no certificate", self.subject))
        })?;
        Certificate::from_der(der).map_err(|e| TrustError::at(self.offset, e.to_string()))
    }
}

/// A parsed trust list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustList {
    /// The header.
    pub header: Header,
    /// The records.
    pub records: Vec<Record>,
}

impl TrustList {
    /// Parses a `.tlv`.
    pub fn parse(data: &[u8]) -> Result<TrustList, TrustError> {
        let header = Header::parse(data)?;
        let mut records = Vec::new();
        let mut at = header.length;
        while at < data.len() {
            let len = tlv::read_one(data, at, data.len())?;
            if len.tag != record_tag::LENGTH {
                return Err(TrustError::at(at, format!("tag {} where a record (tag 1) starts", len.tag)));
            }
            let record_len = len.u16()? as usize;
            let end = at + record_len;
            if record_len < 5 || end > data.len() {
                return Err(TrustError::at(at, format!("record length {record_len} runs past the end")));
            }
            let mut r = Record {
                offset: at,
                subject: String::new(),
                issuer: String::new(),
                serial: Vec::new(),
                function: u16::MAX,
                public_key: Vec::new(),
                certificate: None,
                dns_name: None,
            };
            let mut i = at + 5;
            while i < end {
                let t = tlv::read_one(data, i, end)?;
                match t.tag {
                    record_tag::SUBJECT_NAME => r.subject = t.text()?,
                    record_tag::ISSUER_NAME => r.issuer = t.text()?,
                    record_tag::SERIAL_NUMBER => r.serial = t.value.to_vec(),
                    record_tag::FUNCTION => r.function = t.u16()?,
                    record_tag::PUBLIC_KEY => r.public_key = t.value.to_vec(),
                    record_tag::CERTIFICATE => r.certificate = Some(t.value.to_vec()),
                    record_tag::DNS_NAME => r.dns_name = Some(t.text()?),
                    record_tag::SIGNATURE
                    | record_tag::IP_ADDRESS
                    | record_tag::CERTIFICATE_HASH
                    | record_tag::HASH_ALGORITHM => {}
                    other => return Err(TrustError::at(i, format!("unknown record tag {other}"))),
                }
                i += 3 + t.value.len();
            }
            if r.function == u16::MAX {
                return Err(TrustError::at(at, "a record without a role (tag 4)"));
            }
            records.push(r);
            at = end;
        }
        Ok(TrustList { header, records })
    }

    /// The record that signed the list: a SAST record with the header's serial number.
    pub fn signer(&self) -> Option<&Record> {
        self.records.iter().find(|r| r.role() == Some(Role::Sast) && r.serial == self.header.serial)
    }

    /// Verifies the list against its own SAST record (what a phone with no list does: trust on first use).
    pub fn verify(&self, data: &[u8]) -> Result<(), TrustError> {
        let signer = self.signer().ok_or_else(|| {
            TrustError::BadSignature(format!(
                "no SAST record with the signer's serial {} in the list",
                header::hex(&self.header.serial)
            ))
        })?;
        self.header.verify(data, &signer.parsed_certificate()?)
    }

    /// Verifies the list as a phone that holds `previous` does: signed by a SAST certificate of `previous`.
    pub fn verify_against(&self, data: &[u8], previous: &TrustList) -> Result<(), TrustError> {
        let signer = previous
            .records
            .iter()
            .find(|r| r.role() == Some(Role::Sast) && r.serial == self.header.serial)
            .ok_or_else(|| {
            TrustError::BadSignature(format!(
                "{}: not a SAST of the trust list the phone holds (a new list must be signed by a SAST it knows)",
                self.header.signer_name
            ))
        })?;
        self.header.verify(data, &signer.parsed_certificate()?)
    }

    /// The certificates of the records with `role`.
    pub fn certificates(&self, role: Role) -> Vec<Certificate> {
        self.records.iter().filter(|r| r.role() == Some(role)).filter_map(|r| r.parsed_certificate().ok()).collect()
    }

    /// Whether a certificate with this role in the list verifies a signed file's header: what a phone holding the
    /// list does before it accepts a `.sgn`.
    pub fn verifies_file(&self, data: &[u8], file: &Header) -> Result<Certificate, TrustError> {
        let mut tried = Vec::new();
        for r in self.records.iter().filter(|r| r.role().is_some_and(Role::signs_files)) {
            if let Ok(c) = r.parsed_certificate() {
                if c.serial == file.serial && file.verify(data, &c).is_ok() {
                    return Ok(c);
                }
                tried.push(c.subject);
            }
        }
        Err(TrustError::BadSignature(format!(
            "{}: signed by a certificate that no TFTP record of the trust list holds (TFTP records: {})",
            file.signer_name,
            if tried.is_empty() { "none".to_string() } else { tried.join("; ") }
        )))
    }
}

/// What a new trust list holds.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// Signs the list; its certificate is the first record, with the SAST role.
    pub signer: &'a Signer,
    /// The other records, in order.
    pub records: Vec<(Certificate, Role)>,
    /// 1.0 or 1.1 (1.1: phones fetch their config over HTTPS on port 6971).
    pub signer_version: (u8, u8),
    /// The signature's digest.
    pub digest: Digest,
    /// The name inside (`ITLFile.tlv`, `CTLFile.tlv`: per-phone lists keep these names).
    pub filename: &'a str,
    /// Unix time.
    pub timestamp: u32,
}

/// One record's bytes.
fn record(certificate: &Certificate, role: Role) -> Result<Vec<u8>, TrustError> {
    let mut body = Vec::new();
    tlv::put_text(&mut body, record_tag::SUBJECT_NAME, &certificate.subject)?;
    tlv::put_text(&mut body, record_tag::ISSUER_NAME, &certificate.issuer)?;
    tlv::put(&mut body, record_tag::SERIAL_NUMBER, &certificate.serial)?;
    tlv::put(&mut body, record_tag::FUNCTION, &role.code().to_be_bytes())?;
    let key = match &certificate.public_key {
        PublicKey::Rsa { der, .. } => der,
        PublicKey::Ec { point } => point,
    };
    tlv::put(&mut body, record_tag::PUBLIC_KEY, key)?;
    tlv::put(&mut body, record_tag::SIGNATURE, &certificate.signature)?;
    tlv::put(&mut body, record_tag::CERTIFICATE, &certificate.der)?;
    let len = u16::try_from(body.len() + 5).map_err(|_| TrustError::at(0, "a record over 64 KiB"))?;
    let mut out = Vec::with_capacity(body.len() + 5);
    tlv::put(&mut out, record_tag::LENGTH, &len.to_be_bytes())?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Builds and signs a trust list: header version 1.2, the signer's SAST record first.
pub fn build(spec: &Spec<'_>) -> Result<Vec<u8>, TrustError> {
    let mut payload = record(&spec.signer.certificate, Role::Sast)?;
    for (c, role) in &spec.records {
        payload.extend_from_slice(&record(c, *role)?);
    }
    let sasts = 1 + spec.records.iter().filter(|(_, r)| *r == Role::Sast).count();
    if sasts > 2 {
        return Err(TrustError::Certificate(format!("{sasts} SAST certificates: a trust list holds at most 2")));
    }
    if payload.len() > 64 * 1024 {
        return Err(TrustError::Certificate(format!(
            "{} bytes of records: phones fail to register with a trust list over 64 KB",
            payload.len()
        )));
    }
    let fields = Fields {
        version: (1, 2),
        signer_version: Some(spec.signer_version),
        digest: spec.digest,
        filename: spec.filename,
        timestamp: spec.timestamp,
        encryption: None,
    };
    header::sign(&fields, spec.signer, &payload)
}
