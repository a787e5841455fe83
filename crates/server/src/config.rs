//! `provisor.toml`: what `provisor serve` listens on, where it keeps its data, and how it provisions.
//!
//! Every field has a default, so an empty file (or none at all: [`Config::demo`]) gives a working loopback setup.
//! Errors name the file, the line and column, and the key (`provisor.toml:7:1: [http] listen: invalid socket
//! address`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the inventory, the generated certificates and the logs live (relative paths: to the config file).
    pub data_dir: PathBuf,
    /// The host name or address phones use to reach this server; it is written into the rule URLs of rendered
    /// profiles (`Profile_Rule`, `Upgrade_Rule`, `Report_Rule`).
    pub public_host: String,
    /// Plain HTTP.
    pub http: Listener,
    /// HTTPS.
    pub https: Https,
    /// TFTP.
    pub tftp: Tftp,
    /// The syslog receiver.
    pub syslog: Listener,
    /// The admin listener (`/metrics`, `/healthz`, the admin API): loopback by default, never the ports phones use.
    pub admin: AdminListener,
    /// Templates.
    pub templates: TemplatesConfig,
    /// Firmware.
    pub firmware: Firmware,
    /// How devices are identified, secured and provisioned.
    pub provisioning: Provisioning,
    /// Request limits.
    pub limits: Limits,
    /// How long events and reports are kept.
    pub journal: JournalConfig,
    /// Where the inventory lives (SQLite in `data_dir`, or PostgreSQL) and the master key of its secrets.
    pub inventory: InventoryConfig,
    /// Enterprise (CUCM-firmware) phones' trust chain: signed and encrypted files, ports 6970/6971. Off without it.
    pub enterprise: Option<Enterprise>,
}

/// What an enterprise phone's plain `SEP<MAC>.cnf.xml` may carry (`[enterprise] plain_secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlainSecrets {
    /// Line passwords in the plain file only while the device has no phone certificate to encrypt to; once it has
    /// one, the plain file is the stub and the secrets go only in `.enc.sgn`.
    UntilCertificate,
    /// Never: a device without a certificate gets its config with the passwords left out.
    Never,
    /// Always in the plain file too (anyone who names the MAC from a trusted network can read them).
    Always,
}

/// A load for the `loadInformationN` lines of `XMLDefault.cnf.xml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// The `model` attribute, e.g. `Cisco 7965`.
    pub model: String,
    /// The load name (without `.loads`), e.g. `SIP45.9-4-2SR4-3S`.
    pub load: String,
}

/// `[enterprise]`: serving enterprise phones the way CUCM does (specs.md §5).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enterprise {
    /// The trust directory written by `provisor trust init`: `ITLFile.tlv` (served), `tftp.pem` (signs files),
    /// `tftp-ec.pem` (the HTTPS certificate on `https_listen`), and optionally `CTLFile.tlv`.
    pub trust_dir: PathBuf,
    /// Plain HTTP, which phones try before TFTP; empty: off.
    #[serde(deserialize_with = "optional_addr", default = "default_enterprise_http")]
    pub http_listen: Option<SocketAddr>,
    /// HTTPS with the EC certificate of the trust directory (signer-version 1.1 phones fetch their config here);
    /// empty: off.
    #[serde(deserialize_with = "optional_addr", default = "default_enterprise_https")]
    pub https_listen: Option<SocketAddr>,
    /// What the plain `SEP<MAC>.cnf.xml` may carry.
    #[serde(default = "default_plain_secrets")]
    pub plain_secrets: PlainSecrets,
    /// `loadInformationN` lines of `XMLDefault.cnf.xml`, keyed by the Cisco device-type code N (e.g. `"436" = { model
    /// = "Cisco 7965", load = "SIP45.9-4-2SR4-3S" }`).
    #[serde(default)]
    pub loads: BTreeMap<String, Load>,
}

fn default_enterprise_http() -> Option<SocketAddr> {
    Some(([0, 0, 0, 0], 6970).into())
}

fn default_enterprise_https() -> Option<SocketAddr> {
    Some(([0, 0, 0, 0], 6971).into())
}

fn default_plain_secrets() -> PlainSecrets {
    PlainSecrets::UntilCertificate
}

/// TFTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tftp {
    /// `address:port`, or empty for off.
    #[serde(deserialize_with = "optional_addr")]
    pub listen: Option<SocketAddr>,
    /// Most transfers at once. When the table is full, the oldest transfer that never got an acknowledgement makes
    /// room (a flood of spoofed requests cannot lock phones out); when every transfer is live, "Server busy".
    pub max_sessions: usize,
    /// Most transfers at once from one address (phones behind one NAT share an address: keep it generous).
    pub max_sessions_per_address: usize,
    /// Longest a transfer waits for any acknowledgement before it is dropped, in seconds, whatever `timeout` option
    /// the client asked for (RFC 2349 allows 255 s per retry).
    pub max_stall_s: u64,
}

/// Retention of device events (syslog lines, errors) and reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Events and reports older than this many days are deleted (0: kept forever).
    pub keep_days: u32,
    /// At most this many events and this many reports are kept per device, the newest (0: no limit).
    pub max_rows_per_device: u32,
}

/// `[inventory]`: which database holds the devices, and the key their secrets are sealed with.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// `postgres://user:password@host/db` for a PostgreSQL inventory shared by several nodes (`PROVISOR_DATABASE_URL`
    /// overrides it); empty: SQLite in `data_dir`.
    pub url: Option<String>,
    /// The site master key (32 bytes as 64 hex digits, mode 0600) that per-device keys, IKMs and passwords are
    /// sealed with at rest (AES-256-GCM). `provisor init` writes one; without it secrets are stored in clear.
    pub secrets_key_file: Option<PathBuf>,
    /// Connections each node opens to PostgreSQL.
    pub max_connections: Option<u32>,
    /// This node's name in the shared audit trail (default: the host name).
    pub node: Option<String>,
}

impl InventoryConfig {
    /// The PostgreSQL URL in use ([`Config::load`] puts `PROVISOR_DATABASE_URL` here when it is set).
    pub fn database_url(&self) -> Option<String> {
        self.url.clone().filter(|u| !u.is_empty())
    }
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig { keep_days: 30, max_rows_per_device: 1000 }
    }
}

impl Default for Tftp {
    fn default() -> Tftp {
        Tftp {
            listen: Some(([127, 0, 0, 1], 6969).into()),
            max_sessions: 10_000,
            max_sessions_per_address: 500,
            max_stall_s: 30,
        }
    }
}

/// A listening address; an empty `listen` turns the front end off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `address:port`, or empty for off.
    #[serde(deserialize_with = "optional_addr")]
    pub listen: Option<SocketAddr>,
}

/// The admin listener: `/metrics`, `/healthz` and the admin API (`/api/v1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminListener {
    /// `address:port`, or empty for off.
    #[serde(deserialize_with = "optional_addr")]
    pub listen: Option<SocketAddr>,
    /// Serve it over HTTPS with the site's server certificate (`[https] cert`, or the generated one). Default: on
    /// when `listen` is not loopback, where bearer tokens must not cross the network in clear; plain HTTP on
    /// loopback. Off on a non-loopback address keeps `/metrics` and `/healthz` and refuses the API.
    #[serde(default)]
    pub tls: Option<bool>,
}

impl AdminListener {
    /// Whether the listener speaks HTTPS: `tls` if set, else whenever `listen` is not loopback.
    pub fn uses_tls(&self) -> bool {
        self.tls.unwrap_or_else(|| self.listen.is_some_and(|a| !a.ip().is_loopback()))
    }
}

/// HTTPS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Https {
    /// `address:port`, or empty for off.
    #[serde(deserialize_with = "optional_addr")]
    pub listen: Option<SocketAddr>,
    /// The server certificate chain (PEM). Without it, a CA and a server certificate are generated in
    /// `data_dir/tls/` on the first start and reused.
    pub cert: Option<PathBuf>,
    /// The server's private key (PEM), with `cert`.
    pub key: Option<PathBuf>,
    /// CA certificates (PEM files) that sign phones' client certificates: the Cisco roots of the phones'
    /// manufacturing certificates, or your own. `identity = "certificate"` needs one (or `test_phone_ca`).
    pub client_ca: Vec<PathBuf>,
    /// The site's own generated CA signs (test) phone certificates (`provisor init --phone-ca test`): for labs, the
    /// simulator and `provisor cert phone`. No real phone carries such a certificate; every start says so.
    pub test_phone_ca: bool,
    /// Refuse TLS connections without a verified client certificate (default: ask for one, accept without).
    pub require_client_cert: bool,
    /// The server certificate chains to a CA phones already trust (a public CA). Otherwise the bootstrap profile
    /// installs the site's CA on the phone with `Custom_CA_Rule` (served at `/ca.pem`).
    pub public_ca: bool,
    /// Take the cipher suite the client prefers most. By default the server chooses, AES-128-GCM with SHA-256
    /// first (see [`crate::front::tls::server_config`]).
    pub client_cipher_order: bool,
}

/// How a device proves who it is before it gets its secrets (Cisco "Provisioning Guide", SEC-PRV-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Identity {
    /// A client certificate that `[https] client_ca` (or the test CA) signed and whose `S` names the device.
    Certificate,
    /// Its MAC: a device's secrets go out once, on its first fetch over HTTPS after it was added or re-armed
    /// (`provisor device arm`), from `trusted_networks` when set; afterwards only as ciphertext under its key.
    Mac,
}

impl Identity {
    /// `certificate` or `mac`.
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::Certificate => "certificate",
            Identity::Mac => "mac",
        }
    }
}

/// Template settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    /// A directory of templates overriding or adding to the built-in ones (`mpp.xml`, `bootstrap.xml`,
    /// `SEP.cnf.xml`, `XMLDefault.cnf.xml`).
    pub dir: Option<PathBuf>,
    /// Template per model (`"CP-8841-3PCC" = "mpp-88xx.xml"`); others use `mpp.xml`.
    pub by_model: BTreeMap<String, String>,
}

/// Firmware settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Firmware {
    /// Directory served under `/firmware/` over HTTP and TFTP.
    pub dir: Option<PathBuf>,
    /// Target load per model: the file name in `dir`, e.g. `"CP-8841-3PCC" = "sip88xx.12-0-1MPP-BN.loads"`. The
    /// rendered `Upgrade_Rule` asks phones not already running it to fetch it.
    pub targets: BTreeMap<String, String>,
}

/// What to do with a phone that is not in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownDevices {
    /// Serve the generic bootstrap profile (no secrets).
    Bootstrap,
    /// Add it to the inventory (model and serial from its certificate or User-Agent) in `enrol_group`, then provision
    /// it like any other.
    Enrol,
    /// Answer 404.
    Deny,
}

/// How profiles are encrypted for devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileEncryption {
    /// AES-256-CBC, `openssl enc -k` (the key goes to the phone as `[--key $SA]`).
    #[serde(rename = "aes-256-cbc")]
    AesCbc,
    /// RFC 8188 `aes128gcm` over HTTP(S) (`IKM_HTTP_Encrypt_Content`, `Content-Encoding: aes128gcm`); TFTP, which has
    /// no headers, still uses AES-256-CBC.
    Aes128gcm,
}

/// Provisioning behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Provisioning {
    /// File names that identify a device, tried in order. Placeholders: `{mac}` (12 hex digits, any case, or
    /// `SEP`-less), `{model}`, `{any}` (one path segment). Names without `{mac}` identify the device by its client
    /// certificate or User-Agent.
    pub patterns: Vec<String>,
    /// How devices prove who they are.
    pub identity: Identity,
    /// The bootstrap profile's `Resync_Periodic` and `Resync_Error_Retry_Delay` (seconds): how soon a phone on it
    /// tries again for its own profile (a phone's own default is an hour).
    pub bootstrap_retry_s: u32,
    /// Unknown devices.
    pub unknown_devices: UnknownDevices,
    /// Group given to auto-enrolled devices.
    pub enrol_group: Option<String>,
    /// Encryption of per-device profiles.
    pub encryption: ProfileEncryption,
    /// Scheme of the encrypted-profile URL the phone is given (`http` or `tftp`).
    pub resync_scheme: String,
    /// Hand out secrets (full profiles) over plain HTTP and TFTP to a device named only by its MAC. Off by default:
    /// a MAC is guessable, so secrets go only over HTTPS with a verified client certificate, or encrypted.
    pub secrets_without_certificate: bool,
    /// GPP letter that carries the AES pass phrase (`SA`..`SD` are expanded only as `--key` arguments and never shown
    /// by the phone, so `SA` is the default; SEC-PRV-1 uses `A`).
    pub key_gpp: String,
    /// GPP letter that carries the random profile directory (SEC-PRV-2 uses `B`).
    pub path_gpp: String,
    /// The `EVP_BytesToKey` digest per model, for firmware that expects MD5 (`"SPA508G" = "md5"`). Others use the
    /// device's own setting (`provisor device set --digest`), SHA-256 by default.
    pub digest_by_model: BTreeMap<String, String>,
    /// Phones whose User-Agent reports firmware older than this version get MD5 key derivation (HTTP and HTTPS
    /// only: TFTP carries no User-Agent), e.g. `"11.3.1"`; empty: off.
    pub md5_before_firmware: String,
    /// Seconds between periodic resyncs written into profiles (`Resync_Periodic`).
    pub resync_periodic: u32,
    /// The gzip level of encrypted profiles, 0 (stored) to 9; 6 is gzip's default. With the built-in template what a
    /// group and model share is compressed once per revision, so the level costs little per device; a site's own
    /// template gzips every profile whole, where 3 is 2.4 times faster than 6 for about 4 % more bytes
    /// (`BENCHMARKS.md`).
    pub gzip_level: u32,
    /// MiB of rendered responses kept in memory (0: none). When full, about a quarter is dropped at random and
    /// rendered again on the next fetch. Each device takes a few KB per variant it fetches.
    pub cache_mb: u32,
    /// `--uid`/`--pwd` required on profile requests (Basic or Digest); empty: none.
    pub http_user: String,
    /// The password for `http_user`.
    pub http_password: String,
    /// Serve profiles that carry the `--uid`/`--pwd` credentials in clear text over TFTP (which has no
    /// authentication, so anyone who asks gets them). Off by default: such requests get "access violation".
    pub credentials_over_tftp: bool,
    /// Networks (CIDR, e.g. `"10.20.0.0/16"`) from which enterprise phones may fetch `SEP<MAC>.cnf.xml`, which
    /// carries their line passwords in clear text (enterprise firmware without per-phone encryption has no other way
    /// to get them). Empty: from anywhere (with a warning at start). MPP devices never get enterprise files.
    pub trusted_networks: Vec<String>,
    /// Accept reports that are neither encrypted with the device's key nor sent over HTTPS with its verified
    /// certificate. Off by default: anyone could otherwise write any device's reported state.
    pub plain_reports: bool,
}

impl Provisioning {
    /// Whether `ip` lies in `trusted_networks` (every address does when none are set).
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.trusted_networks.is_empty()
            || self.trusted_networks.iter().filter_map(|n| n.parse::<ipnet::IpNet>().ok()).any(|n| n.contains(&ip))
    }
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Failed device lookups (404/403) allowed per client address per minute before it gets 429 (MAC enumeration).
    pub failed_lookups_per_minute: u32,
    /// Largest report accepted, in bytes.
    pub max_report_bytes: usize,
    /// Distinct MACs one address may name per minute without a verified certificate proving them (a phone names
    /// only its own; phones behind one NAT share an address).
    pub macs_per_address_per_minute: u32,
    /// Distinct MACs all addresses together may name per minute without proof, on routes whose answer depends on
    /// the device (`SEP<MAC>.cnf.xml`, reports, the `deny` policy); a scan from many addresses stops here.
    pub macs_per_minute: u32,
    /// Reports and syslog lines kept per device per minute; more are dropped (and counted).
    pub device_events_per_minute: u32,
    /// Seconds a client has to send a request's headers (and, on a kept-alive connection, the next request).
    pub http_header_timeout_s: u64,
    /// Seconds a client has to send a request's body.
    pub http_body_timeout_s: u64,
    /// Seconds an idle connection is kept open.
    pub http_idle_timeout_s: u64,
    /// Most HTTP and HTTPS connections at once (each listener); at the limit, new connections wait in the kernel's
    /// backlog (4,096 deep), where they cost the server no memory, and kept-alive idle connections are closed to make
    /// room. Waiting rather than a 503: an MPP phone whose resync fails tries again only after
    /// `Resync_Error_Retry_Delay` (3,600 s by default; specs.md §4.3: a 503 is a failure).
    pub max_connections: usize,
    /// Most connections at once from one address; more are closed at once.
    pub max_connections_per_address: usize,
    /// Most TLS handshakes computed at once (each HTTPS listener); more wait their turn in arrival order, so a
    /// power-restore storm finishes the first phones' handshakes first instead of starting every one at once. A
    /// handshake holds its turn at most 1 s, and only once the client has sent its hello.
    pub max_tls_handshakes: usize,
    /// Reverse proxies or load balancers (networks such as `10.0.0.0/8`) whose `X-Forwarded-For` names the client:
    /// for requests from them, the client is the last address in that header that is not itself a trusted proxy
    /// (rate limits, `trusted_networks` and the audit log then see the phone, not the proxy).
    pub trusted_proxies: Vec<String>,
}

impl Limits {
    /// The client of an HTTP request from `peer` with these `X-Forwarded-For` values: `peer` itself unless it is a
    /// trusted proxy; else the rightmost address the proxies did not add themselves.
    pub fn client_behind_proxies(&self, peer: std::net::IpAddr, forwarded_for: &[&str]) -> std::net::IpAddr {
        let proxies: Vec<ipnet::IpNet> = self.trusted_proxies.iter().filter_map(|n| n.parse().ok()).collect();
        let trusted = |ip: &std::net::IpAddr| proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops = forwarded_for.iter().flat_map(|v| v.split(',')).filter_map(|a| a.trim().parse().ok());
        let hops: Vec<std::net::IpAddr> = hops.collect();
        hops.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer)
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("provisor-data"),
            public_host: "127.0.0.1".into(),
            http: Listener { listen: Some(([127, 0, 0, 1], 8080).into()) },
            https: Https::default(),
            tftp: Tftp::default(),
            syslog: Listener { listen: Some(([127, 0, 0, 1], 5514).into()) },
            admin: AdminListener { listen: Some(([127, 0, 0, 1], 9180).into()), tls: None },
            templates: TemplatesConfig::default(),
            firmware: Firmware::default(),
            provisioning: Provisioning::default(),
            limits: Limits::default(),
            journal: JournalConfig::default(),
            inventory: InventoryConfig::default(),
            enterprise: None,
        }
    }
}

impl Default for Https {
    fn default() -> Https {
        Https {
            listen: Some(([127, 0, 0, 1], 8443).into()),
            cert: None,
            key: None,
            client_ca: Vec::new(),
            test_phone_ca: false,
            require_client_cert: false,
            public_ca: false,
            client_cipher_order: false,
        }
    }
}

impl Default for Provisioning {
    fn default() -> Provisioning {
        Provisioning {
            patterns: DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
            identity: Identity::Certificate,
            bootstrap_retry_s: 60,
            unknown_devices: UnknownDevices::Bootstrap,
            enrol_group: None,
            encryption: ProfileEncryption::AesCbc,
            resync_scheme: "http".into(),
            secrets_without_certificate: false,
            key_gpp: "SA".into(),
            path_gpp: "B".into(),
            digest_by_model: BTreeMap::new(),
            md5_before_firmware: String::new(),
            resync_periodic: 3600,
            gzip_level: 6,
            cache_mb: 64,
            http_user: String::new(),
            http_password: String::new(),
            credentials_over_tftp: false,
            trusted_networks: Vec::new(),
            plain_reports: false,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            failed_lookups_per_minute: 30,
            max_report_bytes: 4 << 20,
            macs_per_address_per_minute: 16,
            macs_per_minute: 1000,
            device_events_per_minute: 60,
            http_header_timeout_s: 10,
            http_body_timeout_s: 30,
            http_idle_timeout_s: 60,
            max_connections: 256,
            max_connections_per_address: 256,
            max_tls_handshakes: 64,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The default file-name patterns (Cisco guides: `Profile_Rule` default `/$PSN.xml`; `/$MA.cfg` and
/// `/$PN/$MA.cfg`-style examples).
pub const DEFAULT_PATTERNS: &[&str] =
    &["/{mac}.xml", "/{mac}.cfg", "/{model}/{mac}.xml", "/{model}/{mac}.cfg", "/{any}.xml"];

fn optional_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim()
        .parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an address:port (e.g. 127.0.0.1:8080)")))
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", position.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// Line and column (1-based), when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl Config {
    /// The demo configuration: every front end on loopback, data in `data_dir`, the generated CA as the phone CA.
    pub fn demo(data_dir: &Path) -> Config {
        let mut config = Config { data_dir: data_dir.to_path_buf(), ..Config::default() };
        config.https.test_phone_ca = true;
        config
    }

    /// Why this configuration cannot serve phones, if it cannot: `identity = "certificate"` with no CA for phone
    /// certificates (no phone could ever prove who it is, and none would get its lines) or without HTTPS.
    pub fn serving_problem(&self) -> Option<String> {
        if self.provisioning.identity != Identity::Certificate {
            return None;
        }
        if self.https.listen.is_none() {
            return Some(
                "[provisioning] identity = \"certificate\" needs HTTPS ([https] listen): phones prove who they are \
                 with their certificate there"
                    .into(),
            );
        }
        if self.https.client_ca.is_empty() && !self.https.test_phone_ca {
            return Some(
                "[provisioning] identity = \"certificate\" needs [https] client_ca: the CA certificates (PEM) that \
                 sign your phones' client certificates. Cisco phones carry a manufacturing certificate (MIC) signed by \
                 Cisco's manufacturing CAs: download those roots from Cisco's PKI page (https://www.cisco.com/security/pki/) \
                 and list them. For a lab with simulated phones set [https] test_phone_ca = true (provisor init \
                 --phone-ca test); for phones without certificates use identity = \"mac\"."
                    .into(),
            );
        }
        None
    }

    /// Reads and checks `path`; relative paths in it are taken relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            position: None,
            message: e.to_string(),
        })?;
        let mut config = Config::parse(&text, &file)?;
        if let Ok(url) = std::env::var("PROVISOR_DATABASE_URL")
            && !url.is_empty()
        {
            config.inventory.url = Some(url);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let position = e.span().map(|s| line_col(text, s.start));
            let message = e.message().trim().to_string();
            // Name the key: the table header above the error and the key on its line.
            let key = e.span().and_then(|s| key_at(text, s.start));
            ConfigError {
                file: file.into(),
                position,
                message: key.map_or(message.clone(), |k| format!("{k}: {message}")),
            }
        })?;
        config.check().map_err(|(key, message)| {
            let position = find_key(text, &key);
            ConfigError { file: file.into(), position, message: format!("{key}: {message}") }
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let p = &self.provisioning;
        for (i, pattern) in p.patterns.iter().enumerate() {
            crate::routing::Pattern::parse(pattern).map_err(|m| (format!("[provisioning] patterns[{i}]"), m))?;
        }
        let gpp = |name: &str, v: &str, allowed: &[&str]| {
            if allowed.contains(&v) {
                Ok(())
            } else {
                Err((format!("[provisioning] {name}"), format!("{v:?} is not one of {}", allowed.join(", "))))
            }
        };
        let letters: Vec<String> = ('A'..='P').map(|c| c.to_string()).collect();
        let mut key_letters: Vec<&str> = letters.iter().map(String::as_str).collect();
        key_letters.extend(["SA", "SB", "SC", "SD"]);
        gpp("key_gpp", &p.key_gpp, &key_letters)?;
        gpp("path_gpp", &p.path_gpp, &letters.iter().map(String::as_str).collect::<Vec<_>>())?;
        gpp("resync_scheme", &p.resync_scheme, &["http", "tftp", "https"])?;
        for (model, digest) in &p.digest_by_model {
            if !matches!(digest.as_str(), "md5" | "sha256") {
                return Err((
                    "[provisioning] digest_by_model".into(),
                    format!("{model:?} = {digest:?}: expected \"md5\" or \"sha256\""),
                ));
            }
        }
        if !p.md5_before_firmware.is_empty() && provisor_rules::version::Version::parse(&p.md5_before_firmware).is_err()
        {
            return Err((
                "[provisioning] md5_before_firmware".into(),
                format!("{:?} is not a firmware version such as 11.3.1", p.md5_before_firmware),
            ));
        }
        if p.gzip_level > 9 {
            return Err(("[provisioning] gzip_level".into(), format!("{} is not a gzip level 0-9", p.gzip_level)));
        }
        for (i, net) in p.trusted_networks.iter().enumerate() {
            net.parse::<ipnet::IpNet>().map_err(|_| {
                (
                    format!("[provisioning] trusted_networks[{i}]"),
                    format!("{net:?} is not a network such as 10.0.0.0/8"),
                )
            })?;
        }
        for (i, net) in self.limits.trusted_proxies.iter().enumerate() {
            net.parse::<ipnet::IpNet>().map_err(|_| {
                (format!("[limits] trusted_proxies[{i}]"), format!("{net:?} is not a network such as 10.0.0.0/8"))
            })?;
        }
        let l = &self.limits;
        for (name, v) in [
            ("http_header_timeout_s", l.http_header_timeout_s),
            ("http_body_timeout_s", l.http_body_timeout_s),
            ("http_idle_timeout_s", l.http_idle_timeout_s),
            ("max_connections", l.max_connections as u64),
            ("max_connections_per_address", l.max_connections_per_address as u64),
            ("max_tls_handshakes", l.max_tls_handshakes as u64),
        ] {
            if v == 0 {
                return Err((format!("[limits] {name}"), "must be at least 1".into()));
            }
        }
        if self.tftp.max_sessions == 0 || self.tftp.max_sessions_per_address == 0 || self.tftp.max_stall_s == 0 {
            return Err((
                "[tftp] max_sessions".into(),
                "max_sessions, max_sessions_per_address and max_stall_s must be at least 1".into(),
            ));
        }
        if p.key_gpp == p.path_gpp {
            return Err(("[provisioning] path_gpp".into(), "must differ from key_gpp".into()));
        }
        if p.unknown_devices == UnknownDevices::Enrol && p.enrol_group.is_none() {
            // Fine: enrolled devices get no group.
        }
        if self.https.cert.is_some() != self.https.key.is_some() {
            return Err(("[https] cert".into(), "cert and key go together".into()));
        }
        if let Some(url) = self.inventory.url.as_deref().filter(|u| !u.is_empty())
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err((
                "[inventory] url".into(),
                "expected postgres://USER@HOST/DB (leave it out for the embedded SQLite inventory in data_dir)".into(),
            ));
        }
        if self.public_host.trim().is_empty() || self.public_host.contains(['/', ' ']) {
            return Err(("public_host".into(), format!("{:?} is not a host name or address", self.public_host)));
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        // `:memory:` names no directory (the inventory and journal live in memory).
        if self.data_dir != Path::new(crate::serve::MEMORY) {
            fix(&mut self.data_dir);
        }
        for p in [&mut self.https.cert, &mut self.https.key, &mut self.templates.dir, &mut self.firmware.dir]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        self.https.client_ca.iter_mut().for_each(fix);
        if let Some(k) = &mut self.inventory.secrets_key_file {
            fix(k);
        }
        if let Some(e) = &mut self.enterprise {
            fix(&mut e.trust_dir);
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
    (line, col)
}

/// `[table] key` for the key on the line holding `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.split(']').next()).map(|t| format!("[{t}] ")))
        .unwrap_or_default();
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return line.trim().starts_with('[').then(|| line.trim().to_string());
    }
    Some(format!("{table}{key}"))
}

/// Where `[table] key` is set in `text`.
fn find_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, name) = match key.strip_prefix('[').and_then(|k| k.split_once("] ")) {
        Some((t, n)) => (Some(t), n),
        None => (None, key),
    };
    let name = name.split('[').next().unwrap_or(name);
    let mut current: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            current = h.split(']').next();
            continue;
        }
        if current == table && t.split('=').next().is_some_and(|k| k.trim() == name) {
            return Some((i + 1, 1));
        }
    }
    None
}

/// The commented configuration `provisor init` writes.
pub const SAMPLE: &str = r#"# Provisor configuration. Every setting is optional; the values shown are the defaults unless marked "example".
# Relative paths are relative to this file.

# Where the inventory (SQLite), generated certificates and logs live.
data_dir = "data"

# The host name or address phones use to reach this server. It is written into the rule URLs of rendered profiles.
public_host = "127.0.0.1"

[http]
# Plain HTTP. Use "0.0.0.0:80" in production (needs CAP_NET_BIND_SERVICE); "" turns it off.
listen = "127.0.0.1:8080"

[https]
listen = "127.0.0.1:8443"
# Server certificate and key (PEM). Without them a CA and a server certificate are generated in data/tls/.
# cert = "tls/server.pem"
# key = "tls/server.key"
# CAs that sign phones' client certificates (MPP phones carry one: OU = model, L = serial, S = MAC). With
# identity = "certificate" (below) serve needs one: Cisco's manufacturing CA roots, from https://www.cisco.com/security/pki/
# client_ca = ["cisco-manufacturing-ca.pem"]
# The site's generated CA signs test phone certificates (labs, the simulator, provisor cert phone): no real phone.
test_phone_ca = false
require_client_cert = false
# true when the server certificate comes from a CA phones already trust; otherwise the bootstrap profile installs the
# site's CA on phones (Custom_CA_Rule, from /ca.pem).
public_ca = false
# The server picks the cipher suite, AES-128-GCM with SHA-256 first (as secure, and its handshake hashing costs a
# fraction of SHA-384's on CPUs without SHA-512 instructions). true: take the one the phone lists first.
client_cipher_order = false

[tftp]
# Phones use UDP port 69; "" turns TFTP off.
listen = "127.0.0.1:6969"
# Transfers at once, in all and per address. A full table drops the oldest transfer never acknowledged.
max_sessions = 10000
max_sessions_per_address = 500
# A transfer with no acknowledgement for this many seconds is dropped, whatever timeout the client asked for.
max_stall_s = 30

[syslog]
# Set the phones' Syslog_Server to this address (RFC 3164 and 5424 are understood).
listen = "127.0.0.1:5514"

[admin]
# Prometheus metrics (/metrics), a health check (/healthz) and the admin API (/api/v1, bearer tokens from
# `provisor token create`), for operators: keep it on loopback or a management network, never where phones reach
# it. "" turns it off.
listen = "127.0.0.1:9180"
# HTTPS with the site's server certificate. Default: on when listen is not loopback (tokens never cross a network
# in clear); plain HTTP on loopback.
# tls = true

[templates]
# Templates that override or add to the built-in ones (mpp.xml, bootstrap.xml, SEP.cnf.xml, XMLDefault.cnf.xml).
dir = "templates"
# Template per model (example):
# by_model = { "CP-7832-3PCC" = "mpp-7832.xml" }

[firmware]
# Served under /firmware/ over HTTP (with Range) and TFTP.
dir = "firmware"
# Target load per model (example). Phones not running it get an Upgrade_Rule for it.
# targets = { "CP-8841-3PCC" = "sip88xx.12-0-1MPP-BN.loads" }

[provisioning]
# How a phone proves who it is before it gets its secrets:
#   "certificate": its client certificate over HTTPS, signed by [https] client_ca (Cisco phones carry one);
#   "mac": only its MAC. Its secrets go out once, on its first fetch over HTTPS after it was added or re-armed
#          (provisor device arm MAC), from trusted_networks when set; then only as ciphertext under its key.
#          Anyone who names the MAC before the phone does gets them: the audit log says who took them.
identity = "certificate"
# How soon a phone on the bootstrap profile tries again for its own profile (seconds).
bootstrap_retry_s = 60
# File names that identify a device, tried in order: {mac}, {model}, {any} (one path segment).
patterns = ["/{mac}.xml", "/{mac}.cfg", "/{model}/{mac}.xml", "/{model}/{mac}.cfg", "/{any}.xml"]
# Phones not in the inventory: "bootstrap" (generic profile, no secrets), "enrol" (add them), or "deny" (404).
unknown_devices = "bootstrap"
# enrol_group = "new-phones"
# Per-device profile encryption: "aes-256-cbc" or "aes128gcm" (RFC 8188 over HTTP; TFTP still uses AES-256-CBC).
encryption = "aes-256-cbc"
# Scheme of the encrypted resync URL handed to phones: "http" or "tftp".
resync_scheme = "http"
# Secrets only over HTTPS with a verified client certificate, or encrypted. true also serves them over plain
# HTTP/TFTP to anyone who names the MAC: for labs only.
secrets_without_certificate = false
# GPP parameters carrying the AES key and the random profile directory (SEC-PRV-1/2).
key_gpp = "SA"
path_gpp = "B"
# Key-derivation digest per model, for firmware that expects openssl's old MD5 default (example):
# digest_by_model = { "SPA508G" = "md5" }
# ... and per firmware: phones whose User-Agent reports an older version get MD5 (example):
# md5_before_firmware = "11.3.1"
resync_periodic = 3600
# gzip level of encrypted profiles, 0-9. The built-in template compresses what devices share once; with a template of
# your own every profile is gzipped whole, and 3 is 2.4x faster than 6 for ~4 % more bytes.
gzip_level = 6
# MiB of rendered responses kept in memory (0: none). When full, about a quarter is dropped at random and rendered
# again on the next fetch (a fraction of a millisecond each with the built-in template). A device takes a few KB per
# variant it fetches (~8 KB for a phone that fetches the full profile over HTTPS and the encrypted one over HTTP).
cache_mb = 64
# HTTP authentication required of phones (their Profile_Rule gets --uid/--pwd); empty: none.
http_user = ""
http_password = ""
# TFTP has no authentication: profiles that carry the credentials above are refused over it unless this is true.
credentials_over_tftp = false
# Enterprise (CUCM-firmware) phones get their line passwords in the plain SEP<MAC>.cnf.xml: only from these networks
# (CIDR). Empty: from anywhere, with a warning. MPP phones never get enterprise files.
trusted_networks = []
# Reports must be encrypted with the device's key or come over HTTPS with its certificate; true also takes plain ones.
plain_reports = false

[limits]
# Failed device lookups per client address per minute before answers become 429 (MAC enumeration).
failed_lookups_per_minute = 30
max_report_bytes = 4194304
# Distinct MACs named without a verified certificate, per address and by everyone together, per minute.
macs_per_address_per_minute = 16
macs_per_minute = 1000
# Reports and syslog lines per device per minute.
device_events_per_minute = 60
# HTTP(S): seconds to send the headers, the body, and how long an idle connection stays open.
http_header_timeout_s = 10
http_body_timeout_s = 30
http_idle_timeout_s = 60
# HTTP(S) connections at once, per listener and per address. Past max_connections, phones wait in the kernel's
# backlog and idle kept-alive connections are closed for them.
max_connections = 256
max_connections_per_address = 256
# TLS handshakes computed at once per HTTPS listener; more wait their turn, first come first served.
max_tls_handshakes = 64
# Reverse proxies whose X-Forwarded-For names the phone (e.g. ["10.0.0.0/8"]); none by default.
trusted_proxies = []

# Enterprise (CUCM-firmware) phones with a trust list: `provisor trust init trust` makes the trust directory; this
# section turns on signed (.sgn) and per-phone encrypted (.enc.sgn) files and the ports 6970 (HTTP) and 6971 (HTTPS).
# [enterprise]
# trust_dir = "trust"
# http_listen = "0.0.0.0:6970"
# https_listen = "0.0.0.0:6971"
# Line passwords in the plain SEP<MAC>.cnf.xml: "until-certificate" (until the device has a phone certificate to
# encrypt to), "never", or "always".
# plain_secrets = "until-certificate"
# loadInformationN lines of XMLDefault.cnf.xml, by Cisco device-type code (example):
# loads = { "436" = { model = "Cisco 7965", load = "SIP45.9-4-2SR4-3S" } }

[journal]
# Events (syslog lines, errors) and reports: kept this many days, and at most this many per device.
keep_days = 30
max_rows_per_device = 1000

[inventory]
# The site master key (64 hex digits, mode 0600) that per-device keys, IKMs and every password parameter are sealed
# with at rest (AES-256-GCM): a copy of the database alone yields no secret. `provisor init` writes one. Keep a copy
# of it apart from the database backups: without it the inventory's secrets cannot be opened.
# secrets_key_file = "secrets.key"
# A PostgreSQL inventory shared by several nodes (PROVISOR_DATABASE_URL overrides it; example). Without it: SQLite in
# data_dir. `provisor db copy --from sqlite:data --to postgres://...` moves an existing inventory.
# url = "postgres://provisor@db.example.net/provisor"
# Connections each node opens to PostgreSQL, and this node's name in the shared audit trail (default: host name).
# max_connections = 16
# node = "prov-1"
"#;

#[cfg(test)]
mod tests {

    #[test]
    fn the_client_behind_trusted_proxies_is_the_last_address_they_did_not_add() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mut l = Limits::default();
        // No trusted proxies: the header is ignored (anyone can send it).
        assert_eq!(l.client_behind_proxies(ip("10.0.0.9"), &["203.0.113.7"]), ip("10.0.0.9"));
        l.trusted_proxies = vec!["10.0.0.0/8".into()];
        assert_eq!(l.client_behind_proxies(ip("10.0.0.9"), &["203.0.113.7"]), ip("203.0.113.7"));
        // A client-supplied first hop does not count: the rightmost untrusted address does.
        assert_eq!(l.client_behind_proxies(ip("10.0.0.9"), &["1.2.3.4, 203.0.113.7", "10.0.0.8"]), ip("203.0.113.7"));
        assert_eq!(l.client_behind_proxies(ip("10.0.0.9"), &["garbage"]), ip("10.0.0.9"));
        // A request straight from the internet is its own client whatever it claims.
        assert_eq!(l.client_behind_proxies(ip("198.51.100.1"), &["10.0.0.1"]), ip("198.51.100.1"));
        let bad = Config::parse("[limits]\ntrusted_proxies = [\"nope\"]\n", "p.toml").unwrap_err();
        assert!(bad.message.contains("trusted_proxies[0]"), "{}", bad.message);
    }

    use super::*;

    #[test]
    fn sample_and_empty_configs_parse() {
        let c = Config::parse(SAMPLE, "provisor.toml").unwrap();
        assert_eq!(c.http.listen, Some(([127, 0, 0, 1], 8080).into()));
        assert_eq!(c.provisioning.patterns.len(), DEFAULT_PATTERNS.len());
        let e = Config::parse("", "x.toml").unwrap();
        assert_eq!(e.provisioning.key_gpp, "SA");
        let off = Config::parse("[tftp]\nlisten = \"\"\n", "x.toml").unwrap();
        assert_eq!(off.tftp.listen, None);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = Config::parse("public_host = \"a\"\n\n[http]\nlisten = \"nonsense\"\n", "p.toml").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("p.toml:4:"), "{s}");
        assert!(s.contains("[http] listen"), "{s}");
        let e = Config::parse("[https]\nlisen = \"127.0.0.1:1\"\n", "p.toml").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:2:") && e.contains("lisen"), "{e}");
        let e = Config::parse("[provisioning]\nkey_gpp = \"Q\"\n", "p.toml").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:2:1: [provisioning] key_gpp"), "{e}");
        let e = Config::parse("[provisioning]\npatterns = [\"/{mac\"]\n", "p.toml").unwrap_err().to_string();
        assert!(e.contains("patterns[0]"), "{e}");
    }
}
