//! What the phone did and why, as typed events: tests match on them, and `Display` gives the sentence the timeline
//! (`provisor phone explain` / `simulate`) prints.

use std::fmt;

use provisor_rules::url::Url;

/// Which rule or upload an event is about: `Profile_Rule` .. `Profile_Rule_D`, `Upgrade_Rule`, `Report_Rule`.
pub type RuleName = &'static str;

/// One thing the phone did, with what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Powered on (or rebooted).
    Booted {
        /// `$PN`.
        model: String,
        /// `$MA`.
        mac: String,
        /// `$SWVER`.
        firmware: String,
    },
    /// `Resync_On_Reset`: the first resync after boot, after the random delay.
    FirstResyncIn(u64),
    /// `Resync_After_Upgrade_Attempt`: a resync at once.
    ResyncAfterUpgrade,
    /// The resync parameters do not parse, so nothing can be scheduled (`next`: after a resync, not at boot).
    CannotSchedule {
        /// After a resync (`true`) or at boot.
        next: bool,
        /// Why.
        error: String,
    },
    /// The next resync.
    NextResyncIn {
        /// Seconds from now.
        delay: u64,
        /// `periodic`, `error_retry`, `resync_at`, ...
        reason: &'static str,
    },
    /// No resync is scheduled (periodic resyncs are off).
    NoFurtherResync,
    /// A resync starts.
    ResyncStarted {
        /// Why (`boot`, `periodic`, `request`, `after_upgrade`, ...).
        reason: &'static str,
        /// `$PRVST`.
        prvst: i32,
    },
    /// A resync was requested while one is in progress.
    ResyncBusy,
    /// A resync came due during a call: it waits for idle lines, at most this many seconds.
    ResyncDeferred(u64),
    /// `Forced_Resync_Delay` passed: the resync runs although a line is active.
    ResyncForced,
    /// A resync came due, but `Provision_Enable` is No.
    ProvisioningDisabled,
    /// A resync came due, but `Resync_Trigger_1`/`_2` do not allow it.
    TriggersHoldBack,
    /// The triggers could not be evaluated.
    TriggersFailed(String),
    /// A call started (`true`) or every line is idle again.
    LineActive(bool),
    /// A rule does not parse.
    RuleInvalid {
        /// The rule.
        rule: RuleName,
        /// Its text.
        text: String,
        /// The column of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A condition of a rule's alternative was evaluated.
    Condition {
        /// The rule.
        rule: RuleName,
        /// The alternative, 1-based.
        alternative: usize,
        /// The condition with its macros expanded.
        expanded: String,
        /// Whether it holds.
        holds: bool,
    },
    /// A rule's assignments were applied.
    Assignments {
        /// The rule.
        rule: RuleName,
        /// (parameter, value).
        set: Vec<(String, String)>,
    },
    /// No alternative of a rule applies.
    NoAlternative(RuleName),
    /// A rule's URL cannot be used.
    Unsupported {
        /// The rule.
        rule: RuleName,
        /// The phone's message.
        error: String,
    },
    /// A rule fetches a URL.
    Fetching {
        /// The rule.
        rule: RuleName,
        /// The alternative, 1-based (0 when the rule has one).
        alternative: usize,
        /// The URL.
        url: Url,
        /// Whether `--key` applies.
        key: bool,
        /// The SRV name looked up (`--srv`).
        srv: Option<String>,
    },
    /// A 301/302 was followed.
    Redirected {
        /// The rule.
        rule: RuleName,
        /// The status.
        status: u16,
        /// Where to.
        to: Url,
    },
    /// A redirect's `Location` could not be used.
    BadLocation {
        /// The rule.
        rule: RuleName,
        /// The header.
        location: String,
        /// Why.
        message: String,
    },
    /// A 401/407 was answered with the rule's `--uid`/`--pwd`.
    Challenged {
        /// The rule.
        rule: RuleName,
        /// The status.
        status: u16,
        /// The attempt, 1-based.
        attempt: u32,
    },
    /// A profile was decrypted, parsed and applied.
    Applied {
        /// The rule.
        rule: RuleName,
        /// Bytes received.
        bytes: usize,
        /// The layers removed (gzip, encryption).
        layers: Vec<String>,
        /// How many parameters changed.
        changed: usize,
        /// The first of them (at most 12).
        names: Vec<String>,
    },
    /// A 404 that counts as success (`Resync_Fails_On_FNF` = No).
    NotFoundIgnored(RuleName),
    /// A fetch failed.
    FetchFailed {
        /// The rule.
        rule: RuleName,
        /// Why (the phone's words: `file not found`, `http_get failed (status 500)`, ...).
        error: String,
    },
    /// The resync ended with a failure.
    ResyncFailed {
        /// Consecutive failures.
        in_a_row: u32,
    },
    /// The resync ended well.
    ResyncSucceeded,
    /// `Custom_CA_Rule` named a CA not installed yet: the phone fetches it.
    CustomCaFetching(Url),
    /// The custom CA is installed: HTTPS servers it signed are trusted from the next connection on.
    CustomCaInstalled(Url),
    /// The custom CA could not be installed (the phone tries again after its next resync).
    CustomCaFailed {
        /// Where from.
        url: Url,
        /// Why.
        error: String,
    },
    /// `Upgrade_Rule` is not evaluated: a retry of a failed upgrade is pending.
    UpgradeRetryPending(u64),
    /// A retry of a failed upgrade starts.
    UpgradeRetry {
        /// The attempt, 1-based.
        attempt: u32,
    },
    /// `Upgrade_Rule` decided not to upgrade.
    UpgradeSkipped(String),
    /// A firmware download starts.
    UpgradeStarted {
        /// The load.
        load: String,
        /// From where.
        url: Url,
    },
    /// The firmware arrived; the phone reboots into it.
    Upgraded {
        /// Its size.
        bytes: usize,
        /// The load.
        load: String,
    },
    /// The firmware download failed.
    UpgradeFailed(String),
    /// The next upgrade attempt.
    UpgradeRetryIn(u64),
    /// `Report_To_Server` says a report is due.
    ReportDue(String),
    /// A report goes out this many seconds after a local change.
    ReportIn(u64),
    /// `Report_Rule` is empty.
    NoReportRule,
    /// A report could not be encrypted.
    ReportUnwrapped(String),
    /// A report goes out.
    ReportSent {
        /// `POST`, `PUT` or `TFTP write`.
        verb: &'static str,
        /// `configuration`, `delta` or `status`.
        kind: &'static str,
        /// Its fields.
        fields: usize,
        /// Its size.
        bytes: usize,
        /// Where.
        url: Url,
    },
    /// The server took a report.
    ReportTaken {
        /// Where.
        url: Url,
        /// The status.
        status: u16,
    },
    /// A report upload failed (not retried).
    ReportFailed {
        /// Where.
        url: Url,
        /// Why.
        error: String,
    },
    /// The server answered a report with an error status (not retried).
    ReportRefused {
        /// Where.
        url: Url,
        /// The status.
        status: u16,
    },
    /// A SIP NOTIFY with this `Event:` arrived.
    SipNotify(String),
    /// A NOTIFY was ignored: `Resync_From_SIP` is No (`true`), or the event is not one the phone knows.
    SipIgnored {
        /// Whether it was a resync refused by `Resync_From_SIP`.
        resync_off: bool,
    },
    /// The SIP agent's account of a datagram (challenge, authenticated NOTIFY, refusal).
    Sip(String),
    /// The administrator changed a parameter on the phone.
    LocalChange {
        /// The parameter.
        name: String,
        /// Its new value.
        value: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Event::*;
        match self {
            Booted { model, mac, firmware } => write!(f, "boot: {model} {mac} running {firmware}"),
            FirstResyncIn(d) => write!(f, "Resync_On_Reset: first resync in {d} s"),
            ResyncAfterUpgrade => write!(f, "Resync_After_Upgrade_Attempt: resync now"),
            CannotSchedule { next: false, error } => write!(f, "cannot schedule: {error}"),
            CannotSchedule { next: true, error } => write!(f, "cannot schedule the next resync: {error}"),
            NextResyncIn { delay, reason } => write!(f, "next resync in {delay} s ({reason})"),
            NoFurtherResync => write!(f, "no further resync scheduled"),
            ResyncStarted { reason, prvst } => write!(f, "resync ({reason}), $PRVST={prvst}"),
            ResyncBusy => write!(f, "resync requested, but one is in progress"),
            ResyncDeferred(forced) => write!(
                f,
                "resync due while a line is active: waiting for idle lines, at most Forced_Resync_Delay ({forced} s)"
            ),
            ResyncForced => write!(f, "Forced_Resync_Delay has passed: resyncing although a line is active"),
            ProvisioningDisabled => {
                write!(f, "resync due, but Provision_Enable is No: no resync until it is Yes again")
            }
            TriggersHoldBack => write!(f, "resync due, but Resync_Trigger_1/2 do not allow it"),
            TriggersFailed(e) => write!(f, "triggers: {e}"),
            LineActive(true) => write!(f, "a line is active (call)"),
            LineActive(false) => write!(f, "all lines idle"),
            RuleInvalid { rule, text, column, message } => write!(f, "{rule} {text:?}: column {column}: {message}"),
            Condition { rule, alternative, expanded, holds } => {
                write!(f, "{rule}: alternative {alternative} condition {expanded:?} is {holds}")
            }
            Assignments { rule, set } => write!(f, "{rule}: assignments {set:?}"),
            NoAlternative(rule) => write!(f, "{rule}: no alternative applies"),
            Unsupported { rule, error } => write!(f, "{rule}: {error}"),
            Fetching { rule, alternative, url, key, srv } => {
                write!(f, "{rule}: alternative {alternative} fetches {url}")?;
                if *key {
                    write!(f, " (--key)")?;
                }
                if let Some(n) = srv {
                    write!(f, " at the SRV target of {n}")?;
                }
                Ok(())
            }
            Redirected { rule, status, to } => write!(f, "{rule}: {status} redirects to {to}"),
            BadLocation { rule, location, message } => write!(f, "{rule}: bad Location {location:?}: {message}"),
            Challenged { rule, status, attempt } => {
                write!(f, "{rule}: {status} answered with --uid/--pwd (try {attempt})")
            }
            Applied { rule, bytes, layers, changed, names } => {
                write!(f, "{rule}: 200, {bytes} bytes")?;
                if !layers.is_empty() {
                    write!(f, " ({})", layers.join(", "))?;
                }
                write!(f, ", {changed} parameter(s) changed")?;
                if !names.is_empty() {
                    write!(f, ": {}", names.join(", "))?;
                }
                Ok(())
            }
            NotFoundIgnored(rule) => write!(f, "{rule}: 404, and Resync_Fails_On_FNF is No: counts as success"),
            FetchFailed { rule, error } => write!(f, "{rule}: failed: {error}"),
            ResyncFailed { in_a_row } => write!(f, "resync failed ({in_a_row} in a row)"),
            ResyncSucceeded => write!(f, "resync succeeded"),
            CustomCaFetching(url) => write!(f, "Custom_CA_Rule: fetching the custom CA from {url}"),
            CustomCaInstalled(url) => write!(f, "Custom_CA_Rule: custom CA from {url} installed: trusted for HTTPS"),
            CustomCaFailed { url, error } => write!(f, "Custom_CA_Rule: {url}: not installed: {error}"),
            UpgradeRetryPending(at) => {
                write!(f, "Upgrade_Rule: a retry is due at {at} s (Upgrade_Error_Retry_Delay)")
            }
            UpgradeRetry { attempt } => write!(f, "upgrade retry ($UPGST=2, attempt {attempt})"),
            UpgradeSkipped(why) => write!(f, "Upgrade_Rule: no upgrade: {why}"),
            UpgradeStarted { load, url } => write!(f, "Upgrade_Rule: upgrading to {load} from {url}"),
            Upgraded { bytes, load } => write!(f, "Upgrade_Rule: {bytes} bytes of {load}; rebooting into it"),
            UpgradeFailed(e) => write!(f, "Upgrade_Rule: failed: {e}"),
            UpgradeRetryIn(d) => write!(f, "upgrade retry in {d} s (Upgrade_Error_Retry_Delay)"),
            ReportDue(mode) => write!(f, "Report_To_Server is {mode}: report due"),
            ReportIn(d) => write!(f, "report in {d} s (Upload_Delay_On_Local_Change)"),
            NoReportRule => write!(f, "Report_Rule is empty: nothing to report"),
            ReportUnwrapped(e) => write!(f, "Report_Rule: {e}"),
            ReportSent { verb, kind, fields, bytes, url } => {
                write!(f, "Report_Rule: {verb} of the {kind} report ({fields} fields, {bytes} bytes) to {url}")
            }
            ReportTaken { url, status } => write!(f, "Report_Rule: {url} took the report ({status})"),
            ReportFailed { url, error } => write!(f, "Report_Rule: upload to {url} failed: {error} (not retried)"),
            ReportRefused { url, status } => write!(f, "Report_Rule: {url} answered {status} (not retried)"),
            SipNotify(event) => write!(f, "SIP NOTIFY Event: {event}"),
            SipIgnored { resync_off: true } => write!(f, "ignored: Resync_From_SIP is No"),
            SipIgnored { resync_off: false } => {
                write!(f, "ignored: the phone knows the events resync, report, reboot_now and restart_now")
            }
            Sip(text) => f.write_str(text),
            LocalChange { name, value } => write!(f, "local change: {name} = {value:?}"),
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

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.event.fmt(f)
    }
}
