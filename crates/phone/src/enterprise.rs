//! An enterprise (CUCM-firmware) phone's boot, as a sans-IO state machine beside the MPP one ([`crate::phone`]): fed
//! `now` (virtual seconds) and fetch results, it returns fetch actions (the same [`Action`]s the MPP core uses) and
//! typed [`Event`]s.
//!
//! What it does (specs.md §5.1–5.4):
//! - the short list: `CTLSEP<MAC>.tlv`, `ITLSEP<MAC>.tlv`, `ITLFile.tlv`, then its config; every file over HTTP on
//!   port 6970 first and over TFTP when HTTP cannot be reached (a 404 over HTTP is "not found"); no User-Agent;
//! - trust: with no trust list it takes the first ITL (trust on first use: one that its own SAST signed) and unsigned
//!   configs; holding one, it takes a new ITL only if a SAST it holds signed it, and only `.sgn` configs that a TFTP
//!   record of its list signed. Every rejection is an event that says why;
//! - a signer-version 1.1 ITL with an EC TFTP certificate: the config comes over HTTPS on port 6971 from that
//!   certificate (the file unsigned; the TLS certificate vouches for it), falling back to the signed file;
//! - a stub with `<encrConfig>true</encrConfig>`: its `certHash` must be the MD5 of the phone's own certificate, then
//!   `SEP<MAC>.cnf.xml.enc.sgn` is fetched, verified and decrypted with the phone's key;
//! - `SEP<MAC>.cnf.xml` → `XMLDefault.cnf.xml`; when both fail, "Programming Error XmlDefault.cnf.xml" and the short
//!   list again every 45 s;
//! - `loadInformation` (or `loadInformationN` whose `model` names its model, in XMLDefault): `<load>.loads`, then the
//!   files it lists, then a reboot into the load; a load it cannot fetch leaves it on the old one.

use std::collections::VecDeque;
use std::fmt;

use provisor_rules::url::{Scheme, Url};
use provisor_trust::signed::SignedFile;
use provisor_trust::{Certificate, PublicKey, Role, TrustList, encrypted};

use crate::phone::{Action, Purpose, Request, Response};

/// How long a phone waits before it tries the short list again after a failure.
pub const RETRY_S: u64 = 45;

/// The phone.
#[derive(Debug, Clone)]
pub struct Device {
    /// MAC, 12 lower-case hex digits.
    pub mac: String,
    /// Model, e.g. `CP-8845`.
    pub model: String,
    /// The load it runs, e.g. `sip8845_65.14-1-1SR1-1`.
    pub load: String,
}

/// What survives a reboot (`--state DIR`): the trust list, the last config, the load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// The trust list held (ITL bytes).
    pub trust_list: Option<Vec<u8>>,
    /// The last config applied.
    pub config: Option<Vec<u8>>,
    /// The load running.
    pub load: Option<String>,
}

/// Where the phone finds its server: DHCP option 150's TFTP server, and the HTTP/HTTPS ports (6970, 6971; others for
/// servers on unprivileged ports).
#[derive(Debug, Clone)]
pub struct Server {
    /// Host.
    pub host: String,
    /// TFTP port (69).
    pub tftp_port: u16,
    /// HTTP port (6970).
    pub http_port: u16,
    /// HTTPS port (6971).
    pub https_port: u16,
}

impl Server {
    /// DHCP's TFTP server (`HOST` or `HOST:PORT`, port 69 by default) with the HTTP and HTTPS ports.
    pub fn from_dhcp(dhcp: &str, http_port: u16, https_port: u16) -> Result<Server, String> {
        let (host, tftp_port) = match dhcp.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                (h.to_string(), p.parse().map_err(|_| format!("bad TFTP port in {dhcp:?}"))?)
            }
            _ => (dhcp.to_string(), 69),
        };
        Ok(Server { host, tftp_port, http_port, https_port })
    }
}

/// One thing the enterprise phone did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Powered on.
    Booted {
        /// Model.
        model: String,
        /// Load.
        load: String,
        /// Whether it holds a trust list.
        trust: Option<String>,
    },
    /// The trust list was erased (Settings › Security › Trust List).
    TrustErased,
    /// Asks for a file.
    Fetching(Url),
    /// HTTP did not answer: the rest of the boot goes over TFTP.
    HttpUnreachable(String),
    /// A file was not there.
    NotFound(String),
    /// A fetch failed.
    Failed {
        /// The file.
        file: String,
        /// Why.
        error: String,
    },
    /// A CTL came (kept, not used for signatures here).
    CtlReceived(String),
    /// A trust list was taken.
    TrustListInstalled {
        /// The file.
        file: String,
        /// Its signer.
        signer: String,
        /// Taken on first use (no list was held).
        first_use: bool,
    },
    /// The same trust list as held.
    TrustListUnchanged(String),
    /// A trust list was refused.
    TrustListRejected {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A config was refused.
    ConfigRejected {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The config is taken.
    ConfigApplied {
        /// Which file.
        file: String,
        /// How it came (unsigned, signed by …, encrypted, over HTTPS from …).
        how: String,
    },
    /// Neither `SEP<MAC>.cnf.xml` nor `XMLDefault.cnf.xml`.
    ProgrammingError,
    /// The short list again, after [`RETRY_S`].
    RetryIn(u64),
    /// A new load is named.
    LoadStarted(String),
    /// The load could not be fetched: the phone stays on the old one.
    LoadFailed {
        /// The load.
        load: String,
        /// Why.
        error: String,
    },
    /// The load is in: reboot.
    Upgraded(String),
    /// What the phone ends up with.
    Ready {
        /// Call-control servers.
        servers: Vec<String>,
        /// Lines: (name, auth name).
        lines: Vec<(String, String)>,
        /// Load.
        load: String,
        /// Trust list signers (SAST) and TFTP signers.
        trust: Vec<String>,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Event::*;
        match self {
            Booted { model, load, trust } => write!(
                f,
                "boot: {model} running {load}, {}",
                trust.as_ref().map_or("no trust list".to_string(), |t| format!("trust list signed by {t}"))
            ),
            TrustErased => write!(f, "trust list erased (Settings › Security › Trust List)"),
            Fetching(url) => write!(f, "fetches {url}"),
            HttpUnreachable(e) => write!(f, "HTTP (6970) does not answer ({e}): TFTP from now on"),
            NotFound(file) => write!(f, "{file}: not found"),
            Failed { file, error } => write!(f, "{file}: failed: {error}"),
            CtlReceived(file) => write!(f, "{file}: CTL received"),
            TrustListInstalled { file, signer, first_use } => write!(
                f,
                "{file}: trust list installed, signed by {signer}{}",
                if *first_use { " (trust on first use)" } else { " (a SAST of the list it held)" }
            ),
            TrustListUnchanged(file) => write!(f, "{file}: the trust list it holds"),
            TrustListRejected { file, reason } => write!(f, "{file}: trust list REJECTED: {reason}"),
            ConfigRejected { file, reason } => write!(f, "{file}: config REJECTED: {reason}"),
            ConfigApplied { file, how } => write!(f, "{file}: config applied ({how})"),
            ProgrammingError => write!(f, "\"Programming Error XmlDefault.cnf.xml\": no config and no default"),
            RetryIn(s) => write!(f, "the short list again in {s} s"),
            LoadStarted(load) => write!(f, "load {load}: fetching {load}.loads"),
            LoadFailed { load, error } => write!(f, "load {load}: not fetched ({error}): stays on the old load"),
            Upgraded(load) => write!(f, "load {load}: every file fetched: rebooting into it"),
            Ready { servers, lines, load, trust } => write!(
                f,
                "ready: call control {}; lines {}; load {load}; trusts {}",
                if servers.is_empty() { "none".into() } else { servers.join(", ") },
                if lines.is_empty() {
                    "none".into()
                } else {
                    lines.iter().map(|(n, a)| format!("{n} (auth {a})")).collect::<Vec<_>>().join(", ")
                },
                if trust.is_empty() { "no trust list".into() } else { trust.join("; ") }
            ),
        }
    }
}

/// An event at a virtual time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Virtual seconds.
    pub at: u64,
    /// What happened.
    pub event: Event,
}

/// Which file of the boot a fetch is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Ctl,
    ItlSep,
    Itl,
    /// The config over HTTPS on 6971 (unsigned, TLS-vouched).
    ConfigTls,
    /// `SEP<MAC>.cnf.xml` (`signed`: `.sgn`).
    Config {
        signed: bool,
    },
    Encrypted,
    Default {
        signed: bool,
    },
    Loads(String),
    Image {
        load: String,
        files: Vec<String>,
        index: usize,
    },
}

/// How a config file came: signed (to verify), plain (no trust list), or over HTTPS from the list's certificate.
enum Source {
    Signed,
    Plain,
    Tls(String),
}

#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    what: What,
    file: String,
    scheme: Scheme,
}

/// The enterprise phone.
pub struct EnterprisePhone {
    device: Device,
    server: Server,
    saved: Saved,
    trust: Option<TrustList>,
    certificate: Option<Certificate>,
    key: Option<rsa::PrivateKey>,
    http_down: bool,
    now: u64,
    next_id: u64,
    pending: Option<Pending>,
    actions: VecDeque<Action>,
    notes: Vec<Note>,
    retry_at: Option<u64>,
    reboot_at: Option<u64>,
    ready: bool,
}

impl EnterprisePhone {
    /// A phone with its saved state, and its certificate and key when it has an LSC/MIC to decrypt configs with.
    pub fn new(
        device: Device,
        server: Server,
        saved: Saved,
        certificate: Option<Certificate>,
        key: Option<rsa::PrivateKey>,
    ) -> EnterprisePhone {
        let trust = saved.trust_list.as_deref().and_then(|b| TrustList::parse(b).ok());
        let mut device = device;
        if let Some(load) = &saved.load {
            device.load.clone_from(load);
        }
        EnterprisePhone {
            device,
            server,
            saved,
            trust,
            certificate,
            key,
            http_down: false,
            now: 0,
            next_id: 1,
            pending: None,
            actions: VecDeque::new(),
            notes: Vec::new(),
            retry_at: None,
            reboot_at: None,
            ready: false,
        }
    }

    /// Erases the trust list, as the phone's menu does.
    pub fn erase_trust(&mut self) {
        self.trust = None;
        self.saved.trust_list = None;
        self.note(Event::TrustErased);
    }

    /// What survives a reboot.
    pub fn saved(&self) -> &Saved {
        &self.saved
    }

    /// The events so far.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Whether it reached a config and stopped.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The load it runs.
    pub fn load(&self) -> &str {
        &self.device.load
    }

    fn note(&mut self, event: Event) {
        self.notes.push(Note { at: self.now, event });
    }

    fn upper(&self) -> String {
        self.device.mac.to_uppercase()
    }

    /// Powers on at `now`: the short list from the start.
    pub fn boot(&mut self, now: u64) {
        self.now = now;
        self.pending = None;
        self.retry_at = None;
        self.reboot_at = None;
        self.ready = false;
        self.http_down = false;
        let trust = self.trust.as_ref().map(|t| t.header.signer_name.clone());
        self.note(Event::Booted { model: self.device.model.clone(), load: self.device.load.clone(), trust });
        self.fetch(What::Ctl, format!("CTLSEP{}.tlv", self.upper()));
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the phone next wants [`EnterprisePhone::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.pending.is_some() {
            return None;
        }
        self.reboot_at.or(self.retry_at)
    }

    /// Time passes: a reboot or a retry of the short list.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        if self.reboot_at.is_some_and(|t| t <= now) || self.retry_at.is_some_and(|t| t <= now) {
            self.boot(now);
        }
    }

    fn fetch(&mut self, what: What, file: String) {
        let scheme = if what == What::ConfigTls {
            Scheme::Https
        } else if self.http_down {
            Scheme::Tftp
        } else {
            Scheme::Http
        };
        self.request(what, file, scheme);
    }

    fn request(&mut self, what: What, file: String, scheme: Scheme) {
        let port = match scheme {
            Scheme::Tftp => self.server.tftp_port,
            Scheme::Http => self.server.http_port,
            Scheme::Https => self.server.https_port,
        };
        let url = Url { scheme, host: self.server.host.clone(), port, path: format!("/{file}") };
        self.note(Event::Fetching(url.clone()));
        let id = self.next_id;
        self.next_id += 1;
        // Over 6971 the phone trusts the ITL's EC TFTP certificate.
        let custom_ca =
            (scheme == Scheme::Https).then(|| self.tls_certificate_pem()).flatten().map(std::sync::Arc::new);
        self.actions.push_back(Action::Request(Request {
            id,
            purpose: Purpose::File,
            url,
            method: "GET",
            body: Vec::new(),
            user_agent: String::new(),
            authorization: None,
            srv: None,
            // Over 6971 only the trust list's certificate counts, not the public roots.
            pinned_ca: custom_ca.is_some(),
            custom_ca,
        }));
        self.pending = Some(Pending { id, what, file, scheme });
    }

    /// The EC TFTP certificate of a signer-version 1.1 trust list, as PEM (what the phone verifies 6971 with).
    fn tls_certificate_pem(&self) -> Option<Vec<u8>> {
        let t = self.trust.as_ref()?;
        if t.header.signer_version != Some((1, 1)) {
            return None;
        }
        let c = t.certificates(Role::Tftp).into_iter().find(|c| matches!(c.public_key, PublicKey::Ec { .. }))?;
        Some(pem(&c.der).into_bytes())
    }

    /// The driver's answer to request `id`.
    pub fn handle_response(&mut self, id: u64, response: Response, now: u64) {
        self.now = now;
        let Some(p) = self.pending.take_if(|p| p.id == id) else { return };
        // HTTP that does not answer at all: TFTP, for this file and the rest of the boot.
        if p.scheme == Scheme::Http && response.status == 0 {
            self.http_down = true;
            self.note(Event::HttpUnreachable(response.error.clone().unwrap_or_default()));
            return self.request(p.what, p.file, Scheme::Tftp);
        }
        let body = match response.status {
            200 => Some(response.body),
            404 => {
                self.note(Event::NotFound(p.file.clone()));
                None
            }
            0 => {
                let error = response.error.unwrap_or_else(|| "no answer".into());
                self.note(Event::Failed { file: p.file.clone(), error });
                None
            }
            s => {
                self.note(Event::Failed { file: p.file.clone(), error: format!("status {s}") });
                None
            }
        };
        match p.what {
            What::Ctl => {
                if body.is_some() {
                    self.note(Event::CtlReceived(p.file));
                }
                self.fetch(What::ItlSep, format!("ITLSEP{}.tlv", self.upper()));
            }
            What::ItlSep => match body.map(|b| self.take_trust_list(&p.file, b)) {
                // A list of its own overrides the site's.
                Some(true) => self.config(),
                _ => self.fetch(What::Itl, "ITLFile.tlv".into()),
            },
            What::Itl => {
                if let Some(b) = body {
                    self.take_trust_list(&p.file, b);
                }
                self.config();
            }
            What::ConfigTls => match body {
                Some(b) => {
                    let how =
                        format!("over HTTPS from the trust list's EC certificate, port {}", self.server.https_port);
                    self.config_file(&p.file, b, Source::Tls(how));
                }
                // Over HTTPS it failed: the signed file over HTTP/TFTP.
                None => self.fetch(What::Config { signed: true }, format!("SEP{}.cnf.xml.sgn", self.upper())),
            },
            What::Config { signed } => match body {
                Some(b) => self.config_file(&p.file, b, if signed { Source::Signed } else { Source::Plain }),
                None => self.default(),
            },
            What::Encrypted => match body {
                Some(b) => self.encrypted(&p.file, b),
                None => self.fail(),
            },
            What::Default { signed } => match body {
                Some(b) => self.config_file(&p.file, b, if signed { Source::Signed } else { Source::Plain }),
                None => {
                    self.note(Event::ProgrammingError);
                    self.fail();
                }
            },
            What::Loads(load) => match body {
                Some(b) => {
                    let files = image_files(&b, &load);
                    if files.is_empty() {
                        self.upgraded(load);
                    } else {
                        let first = files[0].clone();
                        self.fetch(What::Image { load, files, index: 0 }, first);
                    }
                }
                None => {
                    self.note(Event::LoadFailed { load, error: format!("{} not fetched", p.file) });
                    self.finish();
                }
            },
            What::Image { load, files, index } => match body {
                Some(_) if index + 1 < files.len() => {
                    let next = files[index + 1].clone();
                    self.fetch(What::Image { load, files, index: index + 1 }, next);
                }
                Some(_) => self.upgraded(load),
                None => {
                    self.note(Event::LoadFailed { load, error: format!("{} not fetched", p.file) });
                    self.finish();
                }
            },
        }
    }

    /// Takes a trust list by the phone's rules; returns whether it was taken (or is the one held).
    fn take_trust_list(&mut self, file: &str, bytes: Vec<u8>) -> bool {
        let list = match TrustList::parse(&bytes) {
            Ok(l) => l,
            Err(e) => {
                self.note(Event::TrustListRejected { file: file.into(), reason: format!("not a trust list: {e}") });
                return false;
            }
        };
        if self.saved.trust_list.as_deref() == Some(&bytes[..]) {
            self.note(Event::TrustListUnchanged(file.into()));
            return true;
        }
        let verdict = match &self.trust {
            None => list.verify(&bytes),
            Some(held) => list.verify_against(&bytes, held),
        };
        match verdict {
            Ok(()) => {
                let first_use = self.trust.is_none();
                self.note(Event::TrustListInstalled {
                    file: file.into(),
                    signer: list.header.signer_name.clone(),
                    first_use,
                });
                self.trust = Some(list);
                self.saved.trust_list = Some(bytes);
                true
            }
            Err(e) => {
                let reason = match &self.trust {
                    None => format!("not signed by a SAST of its own: {e}"),
                    Some(_) => format!("signed by {}: {e}", list.header.signer_name),
                };
                self.note(Event::TrustListRejected { file: file.into(), reason });
                false
            }
        }
    }

    fn config(&mut self) {
        let upper = self.upper();
        if self.tls_certificate_pem().is_some() {
            return self.fetch(What::ConfigTls, format!("SEP{upper}.cnf.xml.sgn"));
        }
        let signed = self.trust.is_some();
        let file = if signed { format!("SEP{upper}.cnf.xml.sgn") } else { format!("SEP{upper}.cnf.xml") };
        self.fetch(What::Config { signed }, file);
    }

    fn default(&mut self) {
        let signed = self.trust.is_some();
        let file = if signed { "XMLDefault.cnf.xml.sgn" } else { "XMLDefault.cnf.xml" };
        self.fetch(What::Default { signed }, file.into());
    }

    /// A config file: verified when signed; a stub leads to the encrypted file.
    fn config_file(&mut self, file: &str, bytes: Vec<u8>, source: Source) {
        let (content, how) = match source {
            Source::Signed => match self.verify_signed(file, &bytes) {
                Some(signer) => (
                    bytes[SignedFile::parse(&bytes).map_or(0, |f| f.header.length)..].to_vec(),
                    format!("signed by {signer}"),
                ),
                None => return self.fail(),
            },
            Source::Plain => (bytes, "unsigned; no trust list".to_string()),
            Source::Tls(how) => (bytes, how),
        };
        let text = String::from_utf8_lossy(&content).to_string();
        if text.contains("<encrConfig>true</encrConfig>") {
            let Some(cert) = &self.certificate else {
                self.note(Event::ConfigRejected {
                    file: file.into(),
                    reason: "the config is encrypted and the phone has no certificate and key to decrypt it".into(),
                });
                return self.fail();
            };
            let hash = element(&text, "certHash").unwrap_or_default();
            let own = cert.md5().iter().map(|b| format!("{b:02x}")).collect::<String>();
            if !hash.eq_ignore_ascii_case(&own) {
                self.note(Event::ConfigRejected {
                    file: file.into(),
                    reason: format!("encrypted to another certificate (certHash {hash}, this phone's is {own})"),
                });
                return self.fail();
            }
            return self.fetch(What::Encrypted, format!("SEP{}.cnf.xml.enc.sgn", self.upper()));
        }
        self.take_config(file, content, how);
    }

    /// Verifies a `.sgn` against the trust list; `None` (and an event) when it does not hold.
    fn verify_signed(&mut self, file: &str, bytes: &[u8]) -> Option<String> {
        let reason = match (SignedFile::parse(bytes), &self.trust) {
            (Err(e), _) => format!("not a signed file: {e}"),
            (Ok(_), None) => "signed, but the phone holds no trust list".into(),
            (Ok(f), Some(t)) => match t.verifies_file(bytes, &f.header) {
                Ok(c) => return Some(c.subject),
                Err(_) => format!("signed by {}, not a TFTP certificate of the trust list", f.header.signer_name),
            },
        };
        self.note(Event::ConfigRejected { file: file.into(), reason });
        None
    }

    fn encrypted(&mut self, file: &str, bytes: Vec<u8>) {
        let Some(signer) = self.verify_signed(file, &bytes) else { return self.fail() };
        let Some(key) = &self.key else {
            self.note(Event::ConfigRejected { file: file.into(), reason: "no phone key to decrypt with".into() });
            return self.fail();
        };
        match encrypted::decrypt(&bytes, key) {
            Ok(plain) => self.take_config(file, plain, format!("encrypted to this phone, signed by {signer}")),
            Err(e) => {
                self.note(Event::ConfigRejected { file: file.into(), reason: format!("does not decrypt: {e}") });
                self.fail();
            }
        }
    }

    fn take_config(&mut self, file: &str, content: Vec<u8>, how: String) {
        self.note(Event::ConfigApplied { file: file.into(), how });
        self.saved.config = Some(content.clone());
        let text = String::from_utf8_lossy(&content).to_string();
        match self.named_load(&text) {
            Some(load) if load != self.device.load => {
                self.note(Event::LoadStarted(load.clone()));
                self.fetch(What::Loads(load.clone()), format!("{load}.loads"));
            }
            _ => self.finish(),
        }
    }

    /// `loadInformation` of the device's config, or the `loadInformationN` of XMLDefault whose model names this phone.
    fn named_load(&self, text: &str) -> Option<String> {
        if let Some(l) = element(text, "loadInformation").filter(|l| !l.is_empty()) {
            return Some(l);
        }
        let digits: String = self.device.model.chars().filter(char::is_ascii_digit).collect();
        let mut rest = text;
        while let Some(i) = rest.find("<loadInformation") {
            rest = &rest[i + 16..];
            let Some(close) = rest.find('>') else { break };
            let attrs = &rest[..close];
            let model = attrs.split("model=\"").nth(1).and_then(|m| m.split('"').next()).unwrap_or("");
            let value = rest[close + 1..].split('<').next().unwrap_or("").trim();
            if !digits.is_empty() && model.contains(&digits) && !value.is_empty() {
                return Some(value.to_string());
            }
        }
        None
    }

    fn upgraded(&mut self, load: String) {
        self.note(Event::Upgraded(load.clone()));
        self.device.load = load.clone();
        self.saved.load = Some(load);
        self.reboot_at = Some(self.now + 1);
    }

    /// The config is in (and the load, or it stays on the old one): what the phone ends up with.
    fn finish(&mut self) {
        let text = self.saved.config.as_deref().map(|c| String::from_utf8_lossy(c).to_string()).unwrap_or_default();
        let servers = elements(&text, "processNodeName");
        let names = elements(&text, "name");
        let auths = elements(&text, "authName");
        let lines =
            names.into_iter().enumerate().map(|(i, n)| (n, auths.get(i).cloned().unwrap_or_default())).collect();
        let trust = self
            .trust
            .as_ref()
            .map(|t| {
                t.records
                    .iter()
                    .filter(|r| matches!(r.role(), Some(Role::Sast | Role::Tftp)))
                    .map(|r| format!("{} {}", r.role().map_or("", Role::name), r.subject))
                    .collect()
            })
            .unwrap_or_default();
        self.note(Event::Ready { servers, lines, load: self.device.load.clone(), trust });
        self.ready = true;
    }

    fn fail(&mut self) {
        self.retry_at = Some(self.now + RETRY_S);
        self.note(Event::RetryIn(RETRY_S));
    }
}

/// The text of the first `<name>…</name>`.
fn element(text: &str, name: &str) -> Option<String> {
    elements(text, name).into_iter().next()
}

/// The texts of every `<name>…</name>` (attributes allowed on the start tag).
fn elements(text: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    let open = format!("<{name}");
    let close = format!("</{name}>");
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        // `<name>` or `<name attr=…>`, not `<nameOther>`.
        if !after.starts_with('>') && !after.starts_with(' ') {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push(body[..end].trim().to_string());
        rest = &body[end..];
    }
    out
}

/// The image files a `.loads` file lists: every token that looks like a file name, other than the load itself.
fn image_files(loads: &[u8], load: &str) -> Vec<String> {
    String::from_utf8_lossy(loads)
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '=' | ','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && t.contains('.')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                && !t.eq_ignore_ascii_case(&format!("{load}.loads"))
                && t.rsplit('.').next().is_some_and(|ext| ext.chars().any(|c| c.is_ascii_alphabetic()))
        })
        .map(str::to_string)
        .collect()
}

/// A DER certificate as PEM.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", body.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_files_and_elements() {
        assert_eq!(
            image_files(b"sip8845.14-2.loads\nkern.sbn rootfs.zz\n# x\n", "sip8845.14-2"),
            ["kern.sbn", "rootfs.zz"]
        );
        assert_eq!(elements("<a><name>1</name><nameX>n</nameX><name x=\"y\">2</name></a>", "name"), ["1", "2"]);
        let p = pem(b"abc");
        assert!(p.contains("YWJj"), "{p}");
    }
}
