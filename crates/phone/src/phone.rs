//! A Cisco MPP phone's provisioning behaviour as a sans-IO state machine: fed `now` (seconds on a virtual clock),
//! timer expiries and fetch results; it returns actions (fetch, upload, syslog line) and the time it next wants to be
//! woken. Drivers ([`crate::drive`]) run it over the network; tests run it with a virtual clock.
//!
//! Cisco "Provisioning Formats" (003): *Profile Rules* (every resync applies `Profile_Rule`, `_B`, `_C`, `_D` in
//! order), *Optional Resync Arguments*, *Macro Expansion*, *Upgrade Rule*, *Triggers*, *Configurable Schedules*; the
//! HTTP status handling of the 7832 AG (specs.md §4.3): 301/302 are followed at once, 401/407 answered with the rule's
//! `--uid/--pwd` at most twice, 404 fails the resync unless `Resync_Fails_On_FNF` is No, any other status is an error;
//! a profile is accepted only if it decrypts and parses.

use std::collections::{BTreeMap, VecDeque};

use provisor_envelope::{Keys, Limits};
use provisor_profile::{ApplyOptions, Parameter, ParseOptions, PhoneState, Profile};
use provisor_rules::alias::AliasMap;
use provisor_rules::log::{self, Fetch as LogFetch};
use provisor_rules::macros::Variables;
use provisor_rules::rule::{Rule, RuleKind, Selection};
use provisor_rules::schedule::{self, Reason, ResyncParameters, SplitMix64, TimeOfDay};
use provisor_rules::upgrade::{self, Decision};
use provisor_rules::url::{self, Scheme, Url};

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

/// One line of the phone's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Virtual seconds.
    pub at: u64,
    /// What happened.
    pub text: String,
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
    next_resync: Option<(u64, Reason)>,
    next_upgrade: Option<u64>,
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
    forced_at: Option<u64>,
    next_report: Option<u64>,
    reported: Option<BTreeMap<String, String>>,
    rebooting_after_upgrade: bool,
    uploads: BTreeMap<u64, Url>,
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
            next_resync: None,
            next_upgrade: None,
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
            forced_at: None,
            next_report: None,
            reported: None,
            rebooting_after_upgrade: false,
            uploads: BTreeMap::new(),
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

    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(Note { at: self.now, text: text.into() });
    }

    fn parameters(&self) -> Result<ResyncParameters, String> {
        ResyncParameters::from_parameters(|n| self.state.get(n).map(|s| s.value)).map_err(|e| e.to_string())
    }

    /// Applies a profile before the first boot: the phone's saved state (`provisor phone explain --state FILE`).
    pub fn preload(&mut self, profile: &Profile) {
        self.state.apply(profile, &ApplyOptions::default());
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
        self.forced_at = None;
        self.next_resync = None;
        self.next_report = None;
        let after_upgrade = std::mem::take(&mut self.rebooting_after_upgrade);
        self.note(format!("boot: {} {} running {}", self.device.model, self.device.mac, self.device.firmware));
        match self.parameters() {
            Ok(p) => match schedule::after_boot(&p, &mut self.rng) {
                Some(n) => {
                    self.next_resync = Some((now + n.delay, n.reason));
                    self.note(format!("Resync_On_Reset: first resync in {} s", n.delay));
                }
                None if after_upgrade && self.enabled("Resync_After_Upgrade_Attempt") => {
                    self.next_resync = Some((now, Reason::AfterUpgrade));
                    self.note("Resync_After_Upgrade_Attempt: resync now");
                }
                None => self.schedule_next(),
            },
            Err(e) => self.note(format!("cannot schedule: {e}")),
        }
        self.schedule_reports();
    }

    /// Whether a Yes/No parameter is Yes.
    fn enabled(&self, name: &str) -> bool {
        self.state.value(name).trim().eq_ignore_ascii_case("yes")
    }

    /// When the phone next wants [`Phone::handle_timeout`] (virtual seconds). Resyncs and upgrade retries wait while
    /// a resync or upgrade is in progress; a resync deferred by an active line waits until `Forced_Resync_Delay` has
    /// passed (or the line goes idle: [`Phone::set_line_active`]).
    pub fn poll_timeout(&self) -> Option<u64> {
        let resync = if self.busy() {
            None
        } else {
            self.forced_at.or(self.next_resync.map(|(t, _)| t)).into_iter().chain(self.next_upgrade).min()
        };
        resync.into_iter().chain(self.next_report).min()
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Time passes: a due report goes out, a due upgrade retry or resync starts.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        if let Some(at) = self.next_report
            && now >= at
        {
            self.next_report = None;
            self.note(format!("Report_To_Server is {}: report due", self.state.value("Report_To_Server")));
            self.report(now);
            self.schedule_reports();
        }
        if self.busy() {
            return;
        }
        // A failed upgrade is retried after Upgrade_Error_Retry_Delay, on its own timer.
        if let Some(at) = self.next_upgrade
            && now >= at
            && self.next_resync.is_none_or(|(r, _)| r > now)
        {
            self.next_upgrade = None;
            self.note(format!("upgrade retry ($UPGST=2, attempt {})", self.upgrade_failures + 1));
            if !self.upgrade() {
                self.schedule_next_if_idle();
            }
            return;
        }
        let Some((at, reason)) = self.next_resync else { return };
        if now < at {
            return;
        }
        // "If a voice line is active when a resync is due, the phone delays the resync procedure until the line
        // becomes idle again. However, it waits no longer than Forced_Resync_Delay" (002, Triggers).
        if self.line_active {
            let forced = self.parameters().map_or(14_400, |p| schedule::forced_after(&p));
            match self.forced_at {
                None if forced > 0 => {
                    self.forced_at = Some(at + forced);
                    self.note(format!(
                        "resync due while a line is active: waiting for idle lines, at most Forced_Resync_Delay \
                         ({forced} s)"
                    ));
                    if now < at + forced {
                        return;
                    }
                }
                Some(f) if now < f => return,
                _ => {}
            }
            self.note("Forced_Resync_Delay has passed: resyncing although a line is active");
        }
        self.forced_at = None;
        self.next_resync = None;
        if !self.enabled("Provision_Enable") {
            self.note("resync due, but Provision_Enable is No: no resync until it is Yes again");
            return;
        }
        self.provisioning_state = match reason {
            Reason::Boot => 0,
            Reason::ErrorRetry => 2,
            Reason::Request => -1,
            _ => 1,
        };
        if matches!(reason, Reason::Periodic | Reason::ResyncAt | Reason::ErrorRetry) {
            let vars = self.variables();
            let allowed =
                self.parameters().and_then(|p| schedule::triggers_allow(&p, &vars).map_err(|e| e.to_string()));
            match allowed {
                Ok(false) => {
                    self.note("resync due, but Resync_Trigger_1/2 do not allow it");
                    self.schedule_next();
                    return;
                }
                Err(e) => self.note(format!("triggers: {e}")),
                Ok(true) => {}
            }
        }
        self.start_resync(reason.as_str());
    }

    /// A resync requested from outside (the phone's `/admin/resync`): `$PRVST` = -1. Like every resync it waits
    /// for idle lines (at most `Forced_Resync_Delay`).
    pub fn resync_now(&mut self, now: u64) {
        self.now = now;
        if self.busy() {
            self.note("resync requested, but one is in progress");
            return;
        }
        self.next_resync = Some((now, Reason::Request));
        self.forced_at = None;
        self.handle_timeout(now);
    }

    /// A call starts (`true`) or every line goes idle again (`false`). A resync that came due during the call runs
    /// as soon as the lines are idle.
    pub fn set_line_active(&mut self, now: u64, active: bool) {
        self.now = now;
        if self.line_active == active {
            return;
        }
        self.line_active = active;
        self.note(if active { "a line is active (call)" } else { "all lines idle" });
        if !active && self.forced_at.take().is_some() {
            self.handle_timeout(now);
        }
    }

    /// A SIP NOTIFY from the proxy, already authenticated (the phone challenges it with a 401 first: 003, *Enable
    /// Parameters*). `Event: resync` resyncs when `Resync_From_SIP` is Yes; `report` uploads the `Report_Rule`
    /// reports; `reboot_now` and `restart_now` restart the phone. Returns whether the phone acted on it.
    pub fn sip_notify(&mut self, now: u64, event: &str) -> bool {
        self.now = now;
        let event = event.trim().to_ascii_lowercase();
        self.note(format!("SIP NOTIFY Event: {event}"));
        match event.as_str() {
            "resync" if self.enabled("Resync_From_SIP") => {
                self.resync_now(now);
                true
            }
            "resync" => {
                self.note("ignored: Resync_From_SIP is No");
                false
            }
            "report" => {
                self.report(now);
                true
            }
            "reboot_now" | "restart_now" => {
                self.boot(now);
                true
            }
            _ => {
                self.note("ignored: the phone knows the events resync, report, reboot_now and restart_now");
                false
            }
        }
    }

    /// A SIP datagram arrives for the phone's line (`--sip ADDR`): answered by `agent` with line 1's credentials
    /// (`Auth_ID_1_`, or `User_ID_1_`, and `Password_1_`); an authenticated NOTIFY goes on to
    /// [`Phone::sip_notify`]. Returns the SIP response to send back.
    pub fn sip_datagram(&mut self, now: u64, datagram: &[u8], agent: &mut crate::sip::NotifyAgent) -> Option<String> {
        self.now = now;
        let auth_id = self.state.value("Auth_ID_1_");
        let user = if auth_id.trim().is_empty() { self.state.value("User_ID_1_") } else { auth_id };
        let answer = agent.handle(datagram, &user, &self.state.value("Password_1_"))?;
        self.note(answer.note);
        if let Some(event) = answer.event {
            self.sip_notify(now, &event);
        }
        Some(answer.response)
    }

    /// The administrator changes a parameter on the phone itself (its web page or keypad). With
    /// `Report_To_Server` = On Local Change, the reports go `Upload_Delay_On_Local_Change` seconds (10–900) after the
    /// last such change.
    pub fn local_change(&mut self, now: u64, name: &str, value: &str) {
        self.now = now;
        self.set(name, value);
        self.note(format!("local change: {name} = {value:?}"));
        if self.report_mode() == ReportMode::OnLocalChange {
            let delay = self.seconds("Upload_Delay_On_Local_Change", 60).clamp(10, 900);
            self.next_report = Some(now + delay);
            self.note(format!("report in {delay} s (Upload_Delay_On_Local_Change)"));
        }
        if name == "Provision_Enable" && self.next_resync.is_none() && !self.busy() {
            self.schedule_next();
        }
        self.schedule_reports();
    }

    /// A whole number of seconds from a parameter, or `default` when it is empty or not a number.
    fn seconds(&self, name: &str, default: u64) -> u64 {
        self.state.value(name).trim().parse().unwrap_or(default)
    }

    fn report_mode(&self) -> ReportMode {
        let v = self.state.value("Report_To_Server").to_ascii_lowercase().replace(['_', ' '], "");
        match v.as_str() {
            "onlocalchange" => ReportMode::OnLocalChange,
            "periodically" => ReportMode::Periodically,
            _ => ReportMode::OnRequest,
        }
    }

    /// Keeps the report timer in line with `Report_To_Server`: `Periodically` every `Periodic_Upload_To_Server`
    /// seconds (at least 600), `On Request` never on its own.
    fn schedule_reports(&mut self) {
        match self.report_mode() {
            ReportMode::Periodically if self.next_report.is_none() => {
                let period = self.seconds("Periodic_Upload_To_Server", 3600).max(600);
                self.next_report = Some(self.now + period);
            }
            ReportMode::OnRequest => self.next_report = None,
            _ => {}
        }
    }
    /// The phone's macro variables from its live state (Cisco "Macro Expansion"; specs.md §4.1).
    pub fn variables(&self) -> Variables {
        let mut v = Variables::new();
        for c in 'A'..='P' {
            v.set(&c.to_string(), self.state.value(&format!("GPP_{c}")));
        }
        for s in ["SA", "SB", "SC", "SD"] {
            v.set(s, self.state.value(&format!("GPP_{s}")));
        }
        let d = &self.device;
        let colons: Vec<&str> = (0..6).filter_map(|i| d.mac.get(i * 2..i * 2 + 2)).collect();
        v.set("MA", d.mac.as_str())
            .set("MAU", d.mac.to_ascii_uppercase())
            .set("MAC", colons.join(":"))
            .set("PN", d.model.as_str())
            .set("PSN", d.psn.as_str())
            .set("SN", d.serial.as_str())
            .set("SWVER", d.firmware.as_str())
            .set("HWVER", d.hardware.as_str())
            .set("IP", d.ip.as_str())
            .set("EXTIP", d.ip.as_str())
            .set("CCERT", if d.certificate { "Installed" } else { "Not Installed" })
            .set("PRVST", self.provisioning_state.to_string())
            .set("UPGST", if self.upgrade_failures > 0 { "2" } else { "1" })
            .set("UPGERR", self.upgrade_error.as_str())
            .set("PRVTMR", self.last_resync_at.map_or(0, |t| self.now.saturating_sub(t)).to_string())
            .set("UPGTMR", "0")
            .set("REGTMR1", "0")
            .set("REGTMR2", "0")
            .set("UPGCOND", "true");
        for n in 1..=16 {
            v.set(&format!("UID{n}"), self.state.value(&format!("User_ID_{n}_")));
        }
        v
    }

    fn start_resync(&mut self, why: &str) {
        self.in_resync = true;
        self.rule_index = 0;
        self.resync_failed = false;
        self.note(format!("resync ({why}), $PRVST={}", self.provisioning_state));
        self.next_rule();
    }

    /// Evaluates the rules from `rule_index` on until one fetches; finishes the resync after `_D`.
    fn next_rule(&mut self) {
        while self.rule_index < RULES.len() {
            let name = RULES[self.rule_index];
            let text = self.state.value(name);
            if text.trim().is_empty() {
                self.rule_index += 1;
                continue;
            }
            let selection = Rule::parse(&text, RuleKind::Profile)
                .and_then(|r| r.evaluate(&self.variables(), self.dhcp_server.as_deref()));
            let selection = match selection {
                Ok(s) => s,
                Err(e) => {
                    self.note(format!("{name} {text:?}: column {}: {}", e.column, e.message));
                    self.resync_failed = true;
                    self.rule_index += 1;
                    continue;
                }
            };
            for (i, e) in &selection.conditions {
                self.note(format!("{name}: alternative {} condition {:?} is {}", i + 1, e.expanded, e.holds));
            }
            if !selection.assignments.is_empty() {
                let set = selection.assignments.clone();
                for (param, value) in &set {
                    self.set(param, value);
                }
                self.note(format!("{name}: assignments {set:?}"));
            }
            let Some(mut url) = selection.url.clone() else {
                self.note(format!("{name}: no alternative applies"));
                self.rule_index += 1;
                continue;
            };
            if selection.options.srv && url.scheme == Scheme::Tftp {
                // The 7832 AG's own message.
                let e = "Error - TFTP Scheme not supported in SRV lookups";
                self.note(format!("{name}: {e}"));
                self.syslog("Log_Failure_Msg", &url, e);
                self.resync_failed = true;
                self.rule_index += 1;
                continue;
            }
            if let (Some(host), Some(port)) = (&self.dhcp_server, self.dhcp_port)
                && url.scheme == Scheme::Tftp
                && url.host == *host
                && url.port == 69
            {
                url.port = port;
            }
            self.note(format!(
                "{name}: alternative {} fetches {url}{}{}",
                selection.alternative.map_or(0, |a| a + 1),
                if selection.options.key.is_some() { " (--key)" } else { "" },
                srv_name(&url, &selection, 0).map_or(String::new(), |n| format!(" at the SRV target of {n}"))
            ));
            self.syslog("Log_Request_Msg", &url, "");
            self.fetch(Purpose::Profile(self.rule_index), url, selection, 0);
            return;
        }
        self.finish_resync();
    }

    /// Sets a parameter as a provisioned profile would (`ua` semantics included).
    fn set(&mut self, name: &str, value: &str) {
        self.state.apply(&Profile { parameters: vec![Parameter::text(name, value)] }, &ApplyOptions::default());
    }

    fn fetch(&mut self, purpose: Purpose, url: Url, selection: Selection, redirects: u32) {
        let id = self.next_id;
        self.next_id += 1;
        let srv = srv_name(&url, &selection, redirects);
        let (method, body) = match (&selection.options.post_body, url.scheme) {
            (Some(b), Scheme::Http | Scheme::Https) if purpose != Purpose::Upgrade => ("POST", b.clone().into_bytes()),
            _ => ("GET", Vec::new()),
        };
        self.actions.push_back(Action::Request(Request {
            id,
            purpose,
            url: url.clone(),
            method,
            body,
            user_agent: self.device.user_agent(),
            authorization: None,
            srv,
        }));
        self.pending = Some(Pending { id, purpose, url, selection, redirects, auth_tries: 0 });
    }

    fn syslog(&mut self, template_param: &str, url: &Url, error: &str) {
        let server = self.state.value("Syslog_Server");
        if server.trim().is_empty() {
            return;
        }
        let template = self.state.value(template_param);
        let message = log::message(&template, &self.variables(), &LogFetch { url, server_ip: &url.host, error });
        let severity = if template_param.contains("Failure") { 3 } else { 6 };
        self.actions.push_back(Action::Syslog { server, line: format!("<{}>{message}", 8 + severity) });
    }

    /// The driver's answer to request `id`.
    pub fn handle_response(&mut self, id: u64, response: Response, now: u64) {
        self.now = now;
        if let Some(url) = self.uploads.remove(&id) {
            match (response.status, &response.error) {
                (200..=299, _) => self.note(format!("Report_Rule: {url} took the report ({})", response.status)),
                (_, Some(e)) => self.note(format!("Report_Rule: upload to {url} failed: {e} (not retried)")),
                (s, None) => self.note(format!("Report_Rule: {url} answered {s} (not retried)")),
            }
            return;
        }
        let Some(p) = self.pending.take_if(|p| p.id == id) else { return };
        match p.purpose {
            Purpose::Profile(_) => self.profile_response(p, response),
            Purpose::Upgrade => self.upgrade_response(p, response),
            Purpose::Report => {}
        }
    }

    /// Follows a redirect or answers a challenge; returns whether the fetch goes on.
    fn retry(&mut self, p: &Pending, r: &Response) -> bool {
        let name = self.describe(p.purpose);
        match r.status {
            301 | 302 if p.redirects < MAX_REDIRECTS => {
                let Some(location) = r.location.as_deref() else { return false };
                let target = if location.starts_with('/') {
                    format!("{}://{}:{}{location}", p.url.scheme.as_str(), p.url.host, p.url.port)
                } else {
                    location.to_string()
                };
                match url::parse(&target, self.dhcp_server.as_deref()) {
                    Ok(u) => {
                        self.note(format!("{name}: {} redirects to {u}", r.status));
                        self.fetch(p.purpose, u, p.selection.clone(), p.redirects + 1);
                        true
                    }
                    Err(e) => {
                        self.note(format!("{name}: bad Location {location:?}: {}", e.message));
                        false
                    }
                }
            }
            401 | 407 if p.auth_tries < MAX_AUTH_RETRIES => {
                let (Some(uid), Some(pwd)) = (&p.selection.options.uid, &p.selection.options.pwd) else {
                    return false;
                };
                let Some(authorization) =
                    provisor_auth::answer(&r.challenges, uid, pwd, "GET", &p.url.path, self.next_id)
                else {
                    return false;
                };
                self.note(format!("{name}: {} answered with --uid/--pwd (try {})", r.status, p.auth_tries + 1));
                let id = self.next_id;
                self.next_id += 1;
                self.actions.push_back(Action::Request(Request {
                    id,
                    purpose: p.purpose,
                    url: p.url.clone(),
                    method: "GET",
                    body: Vec::new(),
                    user_agent: self.device.user_agent(),
                    authorization: Some(authorization),
                    srv: srv_name(&p.url, &p.selection, p.redirects),
                }));
                self.pending = Some(Pending { id, auth_tries: p.auth_tries + 1, ..p.clone() });
                true
            }
            _ => false,
        }
    }

    fn describe(&self, purpose: Purpose) -> &'static str {
        match purpose {
            Purpose::Profile(i) => RULES[i.min(3)],
            Purpose::Upgrade => "Upgrade_Rule",
            Purpose::Report => "Report_Rule",
        }
    }

    fn profile_response(&mut self, p: Pending, r: Response) {
        let name = self.describe(p.purpose);
        if self.retry(&p, &r) {
            return;
        }
        let error = match r.status {
            200 => match self.apply_body(&p, &r) {
                Ok(summary) => {
                    self.note(format!("{name}: 200, {summary}"));
                    self.syslog("Log_Success_Msg", &p.url, "");
                    None
                }
                Err(e) => Some(e),
            },
            404 if !self.state.value("Resync_Fails_On_FNF").eq_ignore_ascii_case("yes") => {
                self.note(format!("{name}: 404, and Resync_Fails_On_FNF is No: counts as success"));
                None
            }
            0 => Some(r.error.clone().unwrap_or_else(|| "transfer failed".into())),
            404 => Some("file not found".into()),
            s => Some(format!("http_get failed (status {s})")),
        };
        if let Some(e) = error {
            self.note(format!("{name}: failed: {e}"));
            self.syslog("Log_Failure_Msg", &p.url, &e);
            self.resync_failed = true;
        }
        self.rule_index += 1;
        self.next_rule();
    }

    /// Decrypts, gunzips, parses and applies a profile.
    fn apply_body(&mut self, p: &Pending, r: &Response) -> Result<String, String> {
        let rfc8188 = r.content_encoding.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("aes128gcm"));
        let ikm = if rfc8188 {
            provisor_envelope::aes128gcm::ikm_from_hex(&self.state.value("IKM_HTTP_Encrypt_Content"))
        } else {
            None
        };
        let keys = Keys { key: p.selection.options.key.clone().map(String::into_bytes), ikm, ..Keys::default() };
        let unwrapped = provisor_envelope::unwrap(&r.body, &keys, &Limits::default()).map_err(|e| e.to_string())?;
        let text = match &p.selection.options.alias {
            // `--alias`: a foreign XML document whose elements the map in that GPP renames to parameters.
            Some(param) => {
                let map = AliasMap::parse(&self.state.value(param))
                    .map_err(|e| format!("--alias {param}: column {}: {}", e.column, e.message))?;
                aliased(&unwrapped.plaintext, &map)?.into_bytes()
            }
            None => unwrapped.plaintext.clone(),
        };
        let profile = Profile::parse(&text, &ParseOptions::default())
            .map_err(|e| format!("profile corrupt at {}: {}", e.position, e.kind))?;
        let report = self.state.apply(&profile, &ApplyOptions::default());
        let layers: Vec<String> = unwrapped.layers.iter().map(|l| format!("{l:?}")).collect();
        let mut changed: Vec<&str> = report.changed.iter().map(|(n, _, _)| n.as_str()).collect();
        changed.truncate(12);
        Ok(format!(
            "{} bytes{}, {} parameter(s) changed{}",
            r.body.len(),
            if layers.is_empty() { String::new() } else { format!(" ({})", layers.join(", ")) },
            report.changed.len(),
            if changed.is_empty() { String::new() } else { format!(": {}", changed.join(", ")) }
        ))
    }

    fn finish_resync(&mut self) {
        self.in_resync = false;
        self.resyncs += 1;
        self.last_resync_at = Some(self.now);
        if self.resync_failed {
            self.failures += 1;
            self.note(format!("resync failed ({} in a row)", self.failures));
        } else {
            self.failures = 0;
            self.successes += 1;
            self.note("resync succeeded");
        }
        let upgrading = if self.resync_failed {
            false
        } else if let Some(at) = self.next_upgrade {
            self.note(format!("Upgrade_Rule: a retry is due at {at} s (Upgrade_Error_Retry_Delay)"));
            false
        } else {
            self.upgrade()
        };
        if !upgrading {
            self.schedule_next();
        }
        self.schedule_reports();
    }

    /// Evaluates `Upgrade_Rule`; returns whether a firmware download started.
    fn upgrade(&mut self) -> bool {
        let text = self.state.value("Upgrade_Rule");
        if text.trim().is_empty() {
            return false;
        }
        let selection = match Rule::parse(&text, RuleKind::Upgrade).and_then(|r| r.evaluate(&self.variables(), None)) {
            Ok(s) => s,
            Err(e) => {
                self.note(format!("Upgrade_Rule {text:?}: column {}: {}", e.column, e.message));
                return false;
            }
        };
        let enabled = self.state.value("Upgrade_Enable").eq_ignore_ascii_case("yes");
        let limit = self.state.value("Downgrade_Rev_Limit");
        match upgrade::decide(
            enabled,
            selection.url.as_ref(),
            &self.device.firmware,
            self.last_upgrade.as_ref(),
            &limit,
        ) {
            Decision::Skip(why) => {
                self.note(format!("Upgrade_Rule: no upgrade: {why}"));
                false
            }
            Decision::Upgrade { url, load } => {
                self.note(format!("Upgrade_Rule: upgrading to {load} from {url}"));
                self.syslog("Log_Upgrade_Request_Msg", &url, "");
                self.fetch(Purpose::Upgrade, url, selection, 0);
                true
            }
        }
    }

    fn upgrade_response(&mut self, p: Pending, r: Response) {
        if self.retry(&p, &r) {
            return;
        }
        if r.status == 200 && !r.body.is_empty() {
            // Only a completed attempt stops the same URL from being tried again (003, Upgrade Rule).
            self.last_upgrade = Some(p.url.clone());
            self.next_upgrade = None;
            let load = upgrade::load_name(&p.url);
            self.upgrade_failures = 0;
            self.upgrade_error.clear();
            self.syslog("Log_Upgrade_Success_Msg", &p.url, "");
            self.note(format!("Upgrade_Rule: {} bytes of {load}; rebooting into it", r.body.len()));
            self.device.firmware = load;
            self.rebooting_after_upgrade = true;
            self.boot(self.now);
        } else {
            let e = r.error.clone().unwrap_or_else(|| format!("http_get failed (status {})", r.status));
            self.upgrade_failures += 1;
            self.upgrade_error = e.clone();
            self.note(format!("Upgrade_Rule: failed: {e}"));
            self.syslog("Log_Upgrade_Failure_Msg", &p.url, &e);
            if let Ok(params) = self.parameters()
                && let Some(delay) = schedule::upgrade_retry(&params, self.upgrade_failures, &mut self.rng)
            {
                self.next_upgrade = Some(self.now + delay);
                self.note(format!("upgrade retry in {delay} s (Upgrade_Error_Retry_Delay)"));
            }
            if self.enabled("Resync_After_Upgrade_Attempt") {
                // "whether the device performs a resync operation [...] after each upgrade attempt" (003).
                self.next_resync = Some((self.now, Reason::AfterUpgrade));
                self.note("Resync_After_Upgrade_Attempt: resync now");
            } else if self.next_resync.is_none() {
                self.schedule_next();
            }
        }
    }

    /// Uploads the reports of `Report_Rule` now (SIP NOTIFY `Event: report`, or the `Report_To_Server` timer): per
    /// item the full configuration as a flat profile, `--delta` only what changed since the last report, `--status`
    /// the status report; encrypted with `--key` (AES-256-CBC) or, without one, with the IKM if the phone has one
    /// (RFC 8188). HTTP(S) uploads use `HTTP_Report_Method` (POST by default); TFTP URLs are written (WRQ).
    pub fn report(&mut self, now: u64) {
        self.now = now;
        let text = self.state.value("Report_Rule");
        if text.trim().is_empty() {
            self.note("Report_Rule is empty: nothing to report");
            return;
        }
        let selections =
            match Rule::parse(&text, RuleKind::Report).and_then(|r| r.evaluate_each(&self.variables(), None)) {
                Ok(s) => s,
                Err(e) => {
                    self.note(format!("Report_Rule {text:?}: column {}: {}", e.column, e.message));
                    return;
                }
            };
        let method = if self.state.value("HTTP_Report_Method").eq_ignore_ascii_case("put") { "PUT" } else { "POST" };
        let configuration: BTreeMap<String, String> = self
            .state
            .settings()
            .into_iter()
            .filter(|(name, _)| *name != "IKM_HTTP_Encrypt_Content") // never reported (003)
            .map(|(name, setting)| (name.to_string(), setting.value.clone()))
            .collect();
        for s in selections {
            let Some(url) = s.url.clone() else { continue };
            let (kind, fields) = if s.options.status {
                ("status", self.status_fields())
            } else if s.options.delta {
                let since = self.reported.as_ref();
                let changed = configuration
                    .iter()
                    .filter(|(n, v)| since.is_none_or(|r| r.get(*n) != Some(*v)))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                ("delta", changed)
            } else {
                ("configuration", configuration.clone())
            };
            let mut xml = String::from("<flat-profile>\n");
            for (name, value) in &fields {
                let ua = self.state.get(name).map_or("na".to_string(), |s| s.ua.to_string());
                let v = value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                if s.options.status {
                    xml.push_str(&format!("  <{name}>{v}</{name}>\n"));
                } else {
                    xml.push_str(&format!("  <{name} ua=\"{ua}\">{v}</{name}>\n"));
                }
            }
            xml.push_str("</flat-profile>\n");
            let encryption = match (
                &s.options.key,
                provisor_envelope::aes128gcm::ikm_from_hex(&self.state.value("IKM_HTTP_Encrypt_Content")),
            ) {
                (Some(k), _) => Some(provisor_envelope::Encryption::AesCbc {
                    key: k.clone().into_bytes(),
                    kdf: provisor_envelope::openssl_enc::Kdf::BytesToKey(
                        provisor_envelope::openssl_enc::Digest::Sha256,
                    ),
                    salted: true,
                }),
                (None, Some(ikm)) => Some(provisor_envelope::Encryption::Aes128Gcm {
                    ikm,
                    rs: provisor_envelope::aes128gcm::DEFAULT_RECORD_SIZE,
                    keyid: Vec::new(),
                }),
                (None, None) => None,
            };
            let spec = provisor_envelope::WrapSpec { gzip: false, encryption };
            let body = match provisor_envelope::wrap(xml.as_bytes(), &spec) {
                Ok(b) => b,
                Err(e) => {
                    self.note(format!("Report_Rule: {e}"));
                    continue;
                }
            };
            let (method, verb) = match url.scheme {
                Scheme::Tftp => ("PUT", "TFTP write"),
                _ => (method, method),
            };
            let id = self.next_id;
            self.next_id += 1;
            self.note(format!(
                "Report_Rule: {verb} of the {kind} report ({} fields, {} bytes) to {url}",
                fields.len(),
                body.len()
            ));
            let srv = srv_name(&url, &s, 0);
            self.uploads.insert(id, url.clone());
            self.actions.push_back(Action::Request(Request {
                id,
                purpose: Purpose::Report,
                url,
                method,
                body,
                user_agent: self.device.user_agent(),
                authorization: None,
                srv,
            }));
        }
        self.reported = Some(configuration);
    }

    /// The status report. Its schema is not documented (specs.md §4.5); these are the fields of the phone's
    /// *Info > Status* page, named as flat-profile elements.
    fn status_fields(&self) -> BTreeMap<String, String> {
        let d = &self.device;
        let last = |t: Option<u64>| t.map_or("never".to_string(), |t| format!("{t}"));
        [
            ("Product_Name", d.model.clone()),
            ("Serial_Number", d.serial.clone()),
            ("Software_Version", d.firmware.clone()),
            ("Hardware_Version", d.hardware.clone()),
            ("MAC_Address", d.mac.clone()),
            ("Client_Certificate", if d.certificate { "Installed" } else { "Not Installed" }.to_string()),
            ("Current_IP", d.ip.clone()),
            ("Elapsed_Time", format!("{}", self.now.saturating_sub(self.booted_at))),
            ("Last_Resync_Time", last(self.last_resync_at)),
            ("Resync_Status", if self.failures == 0 { "OK" } else { "Failed" }.to_string()),
            ("Upgrade_Status", if self.upgrade_failures == 0 { "OK".to_string() } else { self.upgrade_error.clone() }),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
    }
    fn schedule_next_if_idle(&mut self) {
        if self.next_resync.is_none() {
            self.schedule_next();
        }
    }

    fn schedule_next(&mut self) {
        let p = match self.parameters() {
            Ok(p) => p,
            Err(e) => {
                self.note(format!("cannot schedule the next resync: {e}"));
                return;
            }
        };
        let now = TimeOfDay { seconds: (self.now % 86_400) as u32 };
        match schedule::next_resync(&p, self.failures, self.successes.saturating_sub(1), now, &mut self.rng) {
            Some(n) => {
                self.next_resync = Some((self.now + n.delay, n.reason));
                self.note(format!("next resync in {} s ({})", n.delay, n.reason.as_str()));
            }
            None => {
                self.next_resync = None;
                self.note("no further resync scheduled");
            }
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
