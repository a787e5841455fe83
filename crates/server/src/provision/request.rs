//! What goes in and out of the provisioning core: [`Request`] (as every front end describes it), [`Response`] (as
//! every front end sends it), [`ProvisionError`] (why a request was not served; each variant knows its HTTP status and
//! its TFTP error code) and [`Outcome`] (what the audit entry says besides the response).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use provisor_tftp::packet::ErrorCode;

use super::cache::Served;
use super::guard::Limited;
use crate::identity::Claims;
use crate::inventory::Mac;

/// The protocol a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TFTP (no headers: no User-Agent, no content encoding, no authentication).
    Tftp,
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
}

impl Protocol {
    /// `tftp`, `http`, `https`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tftp => "tftp",
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// A request, as every front end describes it.
#[derive(Debug, Clone)]
pub struct Request {
    /// How it came.
    pub protocol: Protocol,
    /// `GET`, `HEAD`, `POST`, `PUT` (HTTP) or `RRQ`, `WRQ` (TFTP).
    pub method: &'static str,
    /// The file name or URL path as sent (without the query).
    pub path: String,
    /// The request target as sent, when it is not `path` (HTTP: with a query, or in absolute form); what a Digest
    /// `uri` must match ([`Request::target`]).
    pub target: Option<String>,
    /// The client.
    pub client: SocketAddr,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Claims of a client certificate that a configured CA signed (HTTPS only).
    pub certificate: Option<Claims>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The request body (reports).
    pub body: Bytes,
    /// It came on the enterprise HTTPS listener (port 6971), where a phone's `….cnf.xml.sgn` gets the unsigned file
    /// (specs.md §5.1).
    pub enterprise_tls: bool,
    /// The verified client certificate (DER), whose claims are in `certificate`: an enterprise device's config can be
    /// encrypted to it.
    pub client_certificate: Option<Bytes>,
}

impl Request {
    /// The request target as sent (HTTP: path and query, or the absolute form; TFTP: the file name).
    pub fn target(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.path)
    }

    /// A GET-like request with no headers.
    pub fn get(protocol: Protocol, path: &str, client: SocketAddr) -> Request {
        Request {
            protocol,
            method: if protocol == Protocol::Tftp { "RRQ" } else { "GET" },
            path: path.to_string(),
            target: None,
            client,
            user_agent: None,
            certificate: None,
            authorization: None,
            body: Bytes::new(),
            enterprise_tls: false,
            client_certificate: None,
        }
    }
}

/// A response body.
#[derive(Debug, Clone)]
pub enum Body {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file (firmware), with its length.
    File(PathBuf, u64),
}

impl Body {
    /// Its length.
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response, as every front end sends it.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Body,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Encoding` (`aes128gcm` for RFC 8188 bodies).
    pub content_encoding: Option<&'static str>,
    /// Why the request was not served (`None` for a 200).
    pub error: Option<ProvisionError>,
    /// The device the request was for or from, when known (for the front ends' access logs).
    pub device: Option<Mac>,
    /// SHA-256 of a rendered body, computed once per rendering.
    pub(crate) hash: Option<Arc<str>>,
}

impl Response {
    pub(crate) fn ok(body: Body, content_type: &'static str) -> Response {
        Response { status: 200, body, content_type, content_encoding: None, error: None, device: None, hash: None }
    }

    pub(crate) fn served(s: &Served) -> Response {
        Response {
            status: 200,
            body: Body::Bytes(s.body.clone()),
            content_type: s.content_type,
            content_encoding: s.content_encoding,
            error: None,
            device: None,
            hash: Some(s.hash.clone()),
        }
    }

    /// The `WWW-Authenticate` challenges of a 401.
    pub fn challenges(&self) -> &[String] {
        match &self.error {
            Some(ProvisionError::Unauthenticated { challenges }) => challenges,
            _ => &[],
        }
    }

    /// Why, for the audit log (empty for a 200).
    pub fn note(&self) -> String {
        self.error.as_ref().map(ToString::to_string).unwrap_or_default()
    }

    /// The TFTP error to send instead of this response, if it is not a 200.
    pub fn tftp_error(&self) -> Option<(ErrorCode, String)> {
        let e = self.error.as_ref()?;
        let message = if e.http_status() == 404 { "File not found".to_string() } else { e.client_message() };
        Some((e.tftp_code(), message))
    }
}

impl From<ProvisionError> for Response {
    fn from(e: ProvisionError) -> Response {
        Response {
            status: e.http_status(),
            body: Body::Bytes(Bytes::from(format!("{}\n", e.client_message()))),
            content_type: "text/plain; charset=utf-8",
            content_encoding: None,
            error: Some(e),
            device: None,
            hash: None,
        }
    }
}

/// Why the provisioning core did not serve a request. [`ProvisionError::http_status`] and
/// [`ProvisionError::tftp_code`] say what each front end sends; `Display` is the audit note, and
/// [`ProvisionError::client_message`] what the client is told (never more than it already knows).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProvisionError {
    /// A rate guard refused the client (429).
    #[error("{}", .0.note())]
    Limited(Limited),
    /// The file name is not one a phone could ask for (`..`, control characters).
    #[error("illegal file name")]
    IllegalName,
    /// Nothing is served under that name, or no device has that random path.
    #[error("not found")]
    NotFound,
    /// A profile name that names no device, with `unknown_devices = "deny"`.
    #[error("device not identified (no MAC in the name, certificate or User-Agent)")]
    Unidentified,
    /// The device named is not in the inventory.
    #[error("device {0} is not in the inventory")]
    UnknownDevice(Mac),
    /// `SEP<MAC>.cnf.xml` for a MAC that is no enterprise phone.
    #[error("no enterprise phone {0} in the inventory (the phone falls back to XMLDefault.cnf.xml)")]
    NoEnterprisePhone(Mac),
    /// A report whose name, certificate and User-Agent name no device.
    #[error("report names no device")]
    ReportUnnamed,
    /// No such firmware file.
    #[error("no such firmware file")]
    NoFirmware,
    /// A trust list (`.tlv`): none is served yet.
    #[error("no trust list: phones without one accept unsigned files")]
    NoTrustList,
    /// A signed (`.sgn`) or encrypted (`.enc.sgn`) enterprise file, and the site has no file signer
    /// (`[enterprise] trust_dir`), or the device no phone certificate to encrypt to.
    #[error("{0}")]
    Unsignable(String),
    /// `/ca.pem` when the server certificate is from a public CA (or HTTPS is off): nothing to install.
    #[error("no site CA to install: the server certificate is from a public CA, or HTTPS is off")]
    NoSiteCa,
    /// HTTP authentication is configured and the request did not pass it (401).
    #[error("authentication required")]
    Unauthenticated {
        /// The `WWW-Authenticate` challenges to send.
        challenges: Vec<String>,
    },
    /// A verified certificate of one device asked for another device's file (403).
    #[error("certificate of {} asked for {asked}'s file {path}", .certificate.as_ref().map_or("-", Mac::as_str))]
    OtherDevice {
        /// The device the certificate names.
        certificate: Option<Mac>,
        /// The device asked for.
        asked: Mac,
        /// The file.
        path: String,
    },
    /// `SEP<MAC>.cnf.xml` from outside `[provisioning] trusted_networks` (403).
    #[error("SEP<MAC>.cnf.xml goes only to [provisioning] trusted_networks")]
    UntrustedNetwork,
    /// A clear-text profile with `--uid`/`--pwd` over TFTP (403).
    #[error(
        "this profile carries HTTP credentials and TFTP has no authentication ([provisioning] credentials_over_tftp)"
    )]
    CredentialsOverTftp,
    /// A plain report from a client that did not prove the device (403).
    #[error(
        "report {0}: refused a plain report; it must be encrypted with the device's key or sent over HTTPS with its \
         certificate ([provisioning] plain_reports)"
    )]
    PlainReport(String),
    /// A report that was not uploaded (405).
    #[error("reports are uploaded with PUT or POST (HTTP) or a write request (TFTP)")]
    NotAnUpload,
    /// A report over `[limits] max_report_bytes` (413).
    #[error("report too large")]
    ReportTooLarge,
    /// A report that could not be decrypted or parsed (400).
    #[error("report {name}: {reason}")]
    BadReport {
        /// The file name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The templates do not load (500).
    #[error("templates: {0}")]
    Templates(String),
    /// Rendering, checking or encrypting a profile failed (500).
    #[error("{0}")]
    Render(String),
    /// The inventory failed (500).
    #[error("inventory: {0}")]
    Inventory(String),
    /// The inventory's database cannot be reached (503, `Retry-After`): the phone retries, and is never given a
    /// wrong or empty profile meanwhile.
    #[error("inventory unavailable: {0}")]
    Unavailable(String),
    /// An unknown device could not be enrolled (500).
    #[error("enrolling {0}: {1}")]
    Enrol(Mac, String),
}

impl From<crate::inventory::StoreError> for ProvisionError {
    fn from(e: crate::inventory::StoreError) -> ProvisionError {
        if e.is_unavailable() {
            ProvisionError::Unavailable(e.to_string())
        } else {
            ProvisionError::Inventory(e.to_string())
        }
    }
}

impl ProvisionError {
    /// The HTTP status it is answered with.
    pub fn http_status(&self) -> u16 {
        use ProvisionError::*;
        match self {
            Limited(_) => 429,
            IllegalName | NotFound | Unidentified | UnknownDevice(_) | NoEnterprisePhone(_) | ReportUnnamed
            | NoFirmware | NoTrustList | NoSiteCa | Unsignable(_) => 404,
            Unauthenticated { .. } => 401,
            OtherDevice { .. } | UntrustedNetwork | CredentialsOverTftp | PlainReport(_) => 403,
            NotAnUpload => 405,
            ReportTooLarge => 413,
            BadReport { .. } => 400,
            Templates(_) | Render(_) | Inventory(_) | Enrol(..) => 500,
            Unavailable(_) => 503,
        }
    }

    /// The TFTP error code it is answered with (RFC 1350): "file not found" where HTTP says 404, "disk full" for a
    /// report too large, "illegal operation" for a read of an upload path, "access violation" otherwise.
    pub fn tftp_code(&self) -> ErrorCode {
        match self.http_status() {
            404 => ErrorCode::FileNotFound,
            413 => ErrorCode::DiskFull,
            405 => ErrorCode::IllegalOperation,
            500 | 503 => ErrorCode::NotDefined,
            _ => ErrorCode::AccessViolation,
        }
    }

    /// What the client is told: the audit note, except where that would tell it whose file it asked for.
    pub fn client_message(&self) -> String {
        match self {
            ProvisionError::OtherDevice { .. } => "forbidden: the client certificate names another device".into(),
            // One answer for every kind of "not found", so a client cannot tell which it met.
            e if e.http_status() == 404 => "not found".into(),
            ProvisionError::Unavailable(_) => "temporarily unavailable: retry later".into(),
            e => e.to_string(),
        }
    }

    /// Whether the request named something that does not exist or is not the client's (counted by the guard's
    /// failed-lookup limit).
    pub fn failed_lookup(&self) -> bool {
        use ProvisionError::*;
        matches!(
            self,
            IllegalName
                | NotFound
                | Unidentified
                | UnknownDevice(_)
                | NoEnterprisePhone(_)
                | ReportUnnamed
                | OtherDevice { .. }
                | UntrustedNetwork
        )
    }
}

/// What the audit entry says besides the response.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The device the request was for or from.
    pub device: Option<Mac>,
    /// The parameters of the full profile served (JSON), for drift.
    pub served_params: Option<Arc<crate::render::ServedParams>>,
    /// An event for the device's history: (kind, text).
    pub event: Option<(&'static str, String)>,
    /// A report: its parameters (JSON) and its body.
    pub report: Option<(Arc<str>, Vec<u8>)>,
    /// Which form was served, for the audit line (plain, signed by whom, encrypted to whom).
    pub form: Option<String>,
}
