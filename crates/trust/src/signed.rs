//! `.sgn`: a signed file (specs.md §5.3) = header ‖ the file's bytes. A phone that holds a trust list asks for
//! `<name>.sgn` and accepts it only if a TFTP-role certificate of that list verifies the signature.

use crate::TrustError;
use crate::certificate::{Certificate, Signer};
use crate::header::{self, Digest, Fields, Header};

/// A parsed `.sgn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedFile {
    /// The header.
    pub header: Header,
}

impl SignedFile {
    /// Parses a `.sgn` (or `.enc.sgn`: the same header, with encryption fields).
    pub fn parse(data: &[u8]) -> Result<SignedFile, TrustError> {
        Ok(SignedFile { header: Header::parse(data)? })
    }

    /// The file inside (for `.enc.sgn`: the ciphertext).
    pub fn content<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.header.length..]
    }

    /// Verifies the signature with `certificate` (a TFTP-role certificate of the phone's trust list).
    pub fn verify(&self, data: &[u8], certificate: &Certificate) -> Result<(), TrustError> {
        self.header.verify(data, certificate)
    }
}

/// Signs `content` as `<filename>` (the name inside the header, e.g. `SEP001122334455.cnf.xml.sgn`): header version
/// 1.0, as CUCM and the public tools write it.
pub fn sign(
    content: &[u8],
    signer: &Signer,
    filename: &str,
    digest: Digest,
    timestamp: u32,
) -> Result<Vec<u8>, TrustError> {
    let fields = Fields { version: (1, 0), signer_version: None, digest, filename, timestamp, encryption: None };
    header::sign(&fields, signer, content)
}

/// The file inside a `.sgn`, without checking the signature.
pub fn strip(data: &[u8]) -> Result<&[u8], TrustError> {
    let h = Header::parse(data)?;
    Ok(&data[h.length..])
}
