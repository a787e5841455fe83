//! A Cisco MPP phone's provisioning behaviour as a sans-IO state machine: fed `now` (seconds on a virtual clock),
//! timer expiries and fetch results; it returns actions (fetch, upload, syslog line) and the time it next wants to be
//! woken. Drivers ([`crate::drive`]) run it over the network; tests run it with a virtual clock.
//!
//! Cisco "Provisioning Formats" (003): *Profile Rules* (every resync applies `Profile_Rule`, `_B`, `_C`, `_D` in
//! order), *Optional Resync Arguments*, *Macro Expansion*, *Upgrade Rule*, *Triggers*, *Configurable Schedules*; the
//! HTTP status handling of the 7832 AG (specs.md §4.3): 301/302 are followed at once, 401/407 answered with the rule's
//! `--uid/--pwd` at most twice, 404 fails the resync unless `Resync_Fails_On_FNF` is No, any other status is an error;
//! a profile is accepted only if it decrypts and parses.
//!
//! One module per concern: `resync` (rules, fetches, schedules), `upgrade`, `report`, `notify` (SIP),
//! `variables` (macros and parameters); one [`TimerTable`] holds every timer; what happened is a list of typed
//! [`Event`]s (their `Display` is the timeline's sentence), so tests match behaviour, not wording.

use std::collections::{BTreeMap, VecDeque};

use provisor_envelope::{Keys, Limits};
use provisor_profile::{ApplyOptions, Parameter, ParseOptions, PhoneState, Profile};
use provisor_rules::alias::AliasMap;
use provisor_rules::log::{self, Fetch as LogFetch};
use provisor_rules::macros::Variables;
use provisor_rules::rule::{Rule, RuleKind, Selection};
use provisor_rules::schedule::{self, Reason, ResyncParameters, SplitMix64, TimeOfDay};
use provisor_rules::upgrade::Decision;
use provisor_rules::url::{self, Scheme, Url};

mod custom_ca;
mod event;
mod notify;
mod report;
mod resync;
mod timer;
mod upgrade;
mod variables;
pub use event::{Event, Note, RuleName};
pub use timer::{Timer, TimerTable};

/// What the phone is and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// MAC address, 12 lower-case hex digits (`$MA`).
    pub mac: String,
    /// Product name (`$PN`), e.g. `CP-8841-3PCC`.
    pub model: String,
    /// Product series number (`$PSN`), e.g. `8841`.
    pub psn: String,
    /// Serial number (`$SN`).
    pub serial: String,
    /// Running firmware (`$SWVER`), e.g. `sip88xx.12-0-1MPP`.
    pub firmware: String,
    /// Hardware version (`$HWVER`).
    pub hardware: String,
    /// Its IP address (`$IP`).
    pub ip: String,
    /// Whether it carries a client certificate (`$CCERT`).
    pub certificate: bool,
}

impl Device {
    /// A device with sensible values for the rest: PSN from the model, serial from the MAC.
    pub fn new(mac: &str, model: &str, firmware: &str) -> Device {
        let psn = model.trim_start_matches("CP-").split('-').next().unwrap_or(model).to_string();
        Device {
            mac: mac.to_ascii_lowercase(),
            model: model.to_string(),
            psn,
            serial: format!("SIM{}", mac.to_ascii_uppercase().get(6..).unwrap_or("")),
            firmware: firmware.to_string(),
            hardware: "1.0.0".into(),
            ip: "127.0.0.1".into(),
            certificate: false,
        }
    }

    /// The User-Agent the phone sends: `Cisco-CP-7832-3PCC/11.0.1 (00562b043615)` (specs.md §4.3).
    pub fn user_agent(&self) -> String {
        format!("Cisco-{}/{} ({})", self.model, ua_version(&self.firmware), self.mac)
    }
}

/// `sip88xx.12-0-1MPP` → `12.0.1`.
fn ua_version(firmware: &str) -> String {
    let v = firmware.split_once('.').map_or(firmware, |(_, v)| v);
    let v: String = v.chars().take_while(|c| c.is_ascii_digit() || *c == '-' || *c == '.').collect();
    v.trim_end_matches(['-', '.']).replace('-', ".")
}

/// Why a fetch is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A profile rule (`Profile_Rule` = 0, `_B` = 1, ...).
    Profile(usize),
    /// The firmware of the upgrade rule.
    Upgrade,
    /// A report upload.
    Report,
    /// The CA of `Custom_CA_Rule`.
    CustomCa,
    /// A file of an enterprise phone's boot ([`crate::enterprise`]).
    File,
}

/// A request the driver must carry out and answer with [`Phone::handle_response`] (uploads need no answer, but
/// may get one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Matches the response to the request.
    pub id: u64,
    /// Why.
    pub purpose: Purpose,
    /// Where.
    pub url: Url,
    /// `GET`, `POST` or `PUT` (TFTP: read, or write for uploads).
    pub method: &'static str,
    /// The body (POST/PUT).
    pub body: Vec<u8>,
    /// `User-Agent`.
    pub user_agent: String,
    /// `Authorization`, when answering a challenge.
    pub authorization: Option<String>,
    /// `--srv`: the DNS SRV name whose target and port replace the URL's host and port
    /// (`_ciscoprov-http._tcp.<host>` or `_ciscoprov-https._tls.<host>`, specs.md §4.2).
    pub srv: Option<String>,
    /// The CA the phone installed with `Custom_CA_Rule` (PEM): trusted for HTTPS beside its built-in public roots.
    pub custom_ca: Option<std::sync::Arc<Vec<u8>>>,
    /// Trust `custom_ca` alone, not the public roots: an enterprise phone on port 6971 trusts only the certificate its
    /// trust list names.
    pub pinned_ca: bool,
}

/// What the phone asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fetch or upload.
    Request(Request),
    /// Send a syslog line (`Syslog_Server`, `host[:port]`).
    Syslog {
        /// `host[:port]`.
        server: String,
        /// The line, with its `<PRI>`.
        line: String,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// HTTP status; TFTP: 200, or 404 for "file not found"; 0 when the transfer failed (then `error` says why).
    pub status: u16,
    /// `Location`.
    pub location: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `WWW-Authenticate` / `Proxy-Authenticate` challenges.
    pub challenges: Vec<String>,
    /// The body.
    pub body: Vec<u8>,
    /// A transport error (connection refused, TFTP timeout, ...).
    pub error: Option<String>,
}

/// `Report_To_Server` (specs.md §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportMode {
    /// Reports go when asked (SIP NOTIFY `Event: report`).
    OnRequest,
    /// After local changes, debounced by `Upload_Delay_On_Local_Change`.
    OnLocalChange,
    /// Every `Periodic_Upload_To_Server` seconds.
    Periodically,
}

/// A fetch in flight.
#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    purpose: Purpose,
    url: Url,
    selection: Selection,
    redirects: u32,
    auth_tries: u32,
}

/// A phone.
pub struct Phone {
    device: Device,
    dhcp_server: Option<String>,
    dhcp_port: Option<u16>,
    state: PhoneState,
    rng: SplitMix64,
    now: u64,
    booted_at: u64,
    timers: TimerTable,
    failures: u32,
    successes: u32,
    provisioning_state: i32,
    last_resync_at: Option<u64>,
    upgrade_failures: u32,
    last_upgrade: Option<Url>,
    upgrade_error: String,
    rule_index: usize,
    resync_failed: bool,
    in_resync: bool,
    pending: Option<Pending>,
    next_id: u64,
    actions: VecDeque<Action>,
    notes: Vec<Note>,
    resyncs: u32,
    line_active: bool,
    reported: Option<BTreeMap<String, String>>,
    rebooting_after_upgrade: bool,
    uploads: BTreeMap<u64, Url>,
    custom_ca: Option<std::sync::Arc<Vec<u8>>>,
    custom_ca_from: String,
    /// The macro variables last computed ([`Phone::variables`]); emptied whenever the state or device changes.
    variables: std::sync::Mutex<variables::Cache>,
}

const RULES: [&str; 4] = ["Profile_Rule", "Profile_Rule_B", "Profile_Rule_C", "Profile_Rule_D"];
const MAX_REDIRECTS: u32 = 5;
const MAX_AUTH_RETRIES: u32 = 2;

impl Phone {
    /// A factory-fresh phone; `dhcp_server` is the TFTP server from DHCP option 66/150/160/159 (`host[:port]`).
    ///
    /// A port (`host:port`) is a simulator convenience for servers on unprivileged ports: TFTP URLs on that host with
    /// the standard port 69 use it instead.
    pub fn new(device: Device, dhcp_server: Option<String>, seed: u64) -> Phone {
        let (dhcp_server, dhcp_port) = match dhcp_server.as_deref().and_then(|d| d.rsplit_once(':')) {
            Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => (Some(h.to_string()), p.parse().ok()),
            _ => (dhcp_server, None),
        };
        Phone {
            device,
            dhcp_server,
            dhcp_port,
            state: PhoneState::new(),
            rng: SplitMix64(seed),
            now: 0,
            booted_at: 0,
            timers: TimerTable::default(),
            failures: 0,
            successes: 0,
            provisioning_state: 0,
            last_resync_at: None,
            upgrade_failures: 0,
            last_upgrade: None,
            upgrade_error: String::new(),
            rule_index: 0,
            resync_failed: false,
            in_resync: false,
            pending: None,
            next_id: 1,
            actions: VecDeque::new(),
            notes: Vec::new(),
            resyncs: 0,
            line_active: false,
            reported: None,
            rebooting_after_upgrade: false,
            uploads: BTreeMap::new(),
            custom_ca: None,
            custom_ca_from: String::new(),
            variables: Default::default(),
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The phone's parameters.
    pub fn state(&self) -> &PhoneState {
        &self.state
    }

    /// Everything that happened so far.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Completed resyncs (successful or not).
    pub fn resyncs(&self) -> u32 {
        self.resyncs
    }

    /// Consecutive failed resyncs.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether a resync or upgrade is in progress.
    pub fn busy(&self) -> bool {
        self.in_resync || self.pending.is_some()
    }

    fn note(&mut self, event: Event) {
        self.notes.push(Note { at: self.now, event });
    }

    /// Applies a profile before the first boot: the phone's saved state (`provisor phone explain --state FILE`).
    pub fn preload(&mut self, profile: &Profile) {
        self.state_mut().apply(profile, &ApplyOptions::default());
    }

    /// Sets a parameter as a profile would (e.g. `Profile_Rule` for `--server URL`).
    pub fn preset(&mut self, name: &str, value: &str) {
        self.set(name, value);
    }

    /// Powers the phone on at `now` (also a reboot: what was in flight is dropped). `Resync_On_Reset` schedules the
    /// first resync after up to `Resync_Random_Delay` seconds; after a firmware upgrade,
    /// `Resync_After_Upgrade_Attempt` resyncs even when `Resync_On_Reset` is No.
    pub fn boot(&mut self, now: u64) {
        self.now = now;
        self.booted_at = now;
        self.provisioning_state = 0;
        self.pending = None;
        self.uploads.clear();
        self.in_resync = false;
        self.line_active = false;
        self.timers.stop(Timer::Forced);
        self.timers.stop(Timer::Resync);
        self.timers.stop(Timer::Report);
        let after_upgrade = std::mem::take(&mut self.rebooting_after_upgrade);
        self.note(Event::Booted {
            model: self.device.model.clone(),
            mac: self.device.mac.clone(),
            firmware: self.device.firmware.clone(),
        });
        match self.parameters() {
            Ok(p) => match schedule::after_boot(&p, &mut self.rng) {
                Some(n) => {
                    self.timers.set_resync(now + n.delay, n.reason);
                    self.note(Event::FirstResyncIn(n.delay));
                }
                None if after_upgrade && self.enabled("Resync_After_Upgrade_Attempt") => {
                    self.timers.set_resync(now, Reason::AfterUpgrade);
                    self.note(Event::ResyncAfterUpgrade);
                }
                None => self.schedule_next(),
            },
            Err(error) => self.note(Event::CannotSchedule { next: false, error }),
        }
        self.schedule_reports();
    }

    /// When the phone next wants [`Phone::handle_timeout`] (virtual seconds). Resyncs and upgrade retries wait while
    /// a resync or upgrade is in progress; a resync deferred by an active line waits until `Forced_Resync_Delay` has
    /// passed (or the line goes idle: [`Phone::set_line_active`]).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next(self.busy())
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Time passes: a due report goes out, a due upgrade retry or resync starts.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        if self.timers.is_due(Timer::Report, now) {
            self.timers.stop(Timer::Report);
            self.note(Event::ReportDue(self.state.value("Report_To_Server")));
            self.report(now);
            self.schedule_reports();
        }
        if self.busy() {
            return;
        }
        // A failed upgrade is retried after Upgrade_Error_Retry_Delay, on its own timer.
        if self.timers.is_due(Timer::Upgrade, now) && !self.timers.is_due(Timer::Resync, now) {
            self.timers.stop(Timer::Upgrade);
            self.note(Event::UpgradeRetry { attempt: self.upgrade_failures + 1 });
            if !self.upgrade() {
                self.schedule_next_if_idle();
            }
            return;
        }
        self.resync_timer(now);
    }

    /// The driver's answer to request `id`.
    pub fn handle_response(&mut self, id: u64, response: Response, now: u64) {
        self.now = now;
        if let Some(url) = self.uploads.remove(&id) {
            match (response.status, &response.error) {
                (200..=299, _) => self.note(Event::ReportTaken { url, status: response.status }),
                (_, Some(e)) => self.note(Event::ReportFailed { url, error: e.clone() }),
                (status, None) => self.note(Event::ReportRefused { url, status }),
            }
            return;
        }
        let Some(p) = self.pending.take_if(|p| p.id == id) else { return };
        match p.purpose {
            Purpose::Profile(_) => self.profile_response(p, response),
            Purpose::Upgrade => self.upgrade_response(p, response),
            Purpose::Report => {}
            Purpose::CustomCa => self.custom_ca_response(p, response),
            Purpose::File => {}
        }
    }
}

/// The SRV name that `--srv` looks up for a URL, first fetch only (a redirect's Location is used as given).
fn srv_name(url: &Url, selection: &Selection, redirects: u32) -> Option<String> {
    if !selection.options.srv || redirects > 0 {
        return None;
    }
    match url.scheme {
        Scheme::Https => Some(format!("_ciscoprov-https._tls.{}", url.host)),
        Scheme::Http => Some(format!("_ciscoprov-http._tcp.{}", url.host)),
        Scheme::Tftp => None,
    }
}

/// A foreign XML document turned into a flat profile through an alias map (SPA provisioning guide, `--alias`): every
/// element with text whose path the map resolves becomes that parameter.
pub fn aliased(xml: &[u8], map: &AliasMap) -> Result<String, String> {
    use quick_xml::XmlVersion;
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut out = String::from("<flat-profile>");
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                stack.push(e.name().as_ref().to_string());
                text.clear();
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml_content(XmlVersion::Implicit1_0)),
            Ok(Event::GeneralRef(r)) => text.push_str(&format!("&{};", r.xml_content(XmlVersion::Implicit1_0))),
            Ok(Event::CData(t)) => {
                let raw = t.xml_content(XmlVersion::Implicit1_0);
                text.push_str(&raw.replace('&', "&amp;").replace('<', "&lt;"));
            }
            Ok(Event::End(_)) => {
                let value = text.trim();
                if !value.is_empty()
                    && let Some(param) = map.resolve(&stack)
                {
                    // The text is still escaped as in the source document, which is what the profile needs.
                    out.push_str(&format!("<{param}>{value}</{param}>"));
                }
                text.clear();
                stack.pop();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("--alias document at byte {}: {e}", reader.error_position())),
        }
        buf.clear();
    }
    out.push_str("</flat-profile>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_maps_rename_foreign_elements() {
        let map = AliasMap::parse("/auth-secret = /flat-profile/Password_1_ ; /CPE/user = /flat-profile/User_ID_1_ ;")
            .unwrap();
        let doc = b"<CPE><user>2001</user><SIP-Credentials><auth-secret>a&amp;b</auth-secret></SIP-Credentials><x>1</x></CPE>";
        let flat = aliased(doc, &map).unwrap();
        let p = Profile::parse_str(&flat, &ParseOptions::default()).unwrap();
        assert_eq!(p.get("User_ID_1_").unwrap().value.text(), Some("2001"));
        assert_eq!(p.get("Password_1_").unwrap().value.text(), Some("a&b"));
        assert_eq!(p.parameters.len(), 2);
    }

    #[test]
    fn user_agent_version() {
        assert_eq!(ua_version("sip88xx.12-0-1MPP"), "12.0.1");
        assert_eq!(ua_version("sip78xx.11-0-1MPP-312"), "11.0.1");
        let d = Device::new("00562b043615", "CP-7832-3PCC", "sip78xx.11-0-1MPP");
        assert_eq!(d.user_agent(), "Cisco-CP-7832-3PCC/11.0.1 (00562b043615)");
        assert_eq!(d.psn, "7832");
    }
}
