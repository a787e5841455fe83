//! A resync (Cisco "Provisioning Formats", *Profile Rules*): `Profile_Rule` .. `_D` in order, each evaluated,
//! fetched, decrypted, parsed and applied; redirects and challenges as the 7832 AG handles them (specs.md §4.3);
//! requests from outside and calls in progress (*Triggers*: `Forced_Resync_Delay`); the next resync
//! (*Configurable Schedules*).

use super::variables::feeds_variables;
use super::*;

impl Phone {
    /// The resync timer at `now`: a due resync waits for idle lines (at most `Forced_Resync_Delay`), then starts
    /// unless `Provision_Enable` or the triggers hold it back.
    pub(super) fn resync_timer(&mut self, now: u64) {
        let Some((at, reason)) = self.timers.resync() else { return };
        if now < at {
            return;
        }
        // "If a voice line is active when a resync is due, the phone delays the resync procedure until the line
        // becomes idle again. However, it waits no longer than Forced_Resync_Delay" (002, Triggers).
        if self.line_active {
            let forced = self.parameters().map_or(14_400, |p| schedule::forced_after(&p));
            match self.timers.get(Timer::Forced) {
                None if forced > 0 => {
                    self.timers.set(Timer::Forced, at + forced);
                    self.note(Event::ResyncDeferred(forced));
                    if now < at + forced {
                        return;
                    }
                }
                Some(f) if now < f => return,
                _ => {}
            }
            self.note(Event::ResyncForced);
        }
        self.timers.stop(Timer::Forced);
        self.timers.stop(Timer::Resync);
        if !self.enabled("Provision_Enable") {
            self.note(Event::ProvisioningDisabled);
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
                    self.note(Event::TriggersHoldBack);
                    self.schedule_next();
                    return;
                }
                Err(e) => self.note(Event::TriggersFailed(e)),
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
            self.note(Event::ResyncBusy);
            return;
        }
        self.timers.set_resync(now, Reason::Request);
        self.timers.stop(Timer::Forced);
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
        self.note(Event::LineActive(active));
        if !active && self.timers.stop(Timer::Forced).is_some() {
            self.handle_timeout(now);
        }
    }

    pub(super) fn start_resync(&mut self, why: &'static str) {
        self.in_resync = true;
        self.rule_index = 0;
        self.resync_failed = false;
        self.note(Event::ResyncStarted { reason: why, prvst: self.provisioning_state });
        self.next_rule();
    }

    /// Evaluates the rules from `rule_index` on until one fetches; finishes the resync after `_D`.
    pub(super) fn next_rule(&mut self) {
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
                    self.note(Event::RuleInvalid { rule: name, text, column: e.column, message: e.message });
                    self.resync_failed = true;
                    self.rule_index += 1;
                    continue;
                }
            };
            for (i, e) in &selection.conditions {
                self.note(Event::Condition {
                    rule: name,
                    alternative: i + 1,
                    expanded: e.expanded.clone(),
                    holds: e.holds,
                });
            }
            if !selection.assignments.is_empty() {
                let set = selection.assignments.clone();
                for (param, value) in &set {
                    self.set(param, value);
                }
                self.note(Event::Assignments { rule: name, set });
            }
            let Some(mut url) = selection.url.clone() else {
                self.note(Event::NoAlternative(name));
                self.rule_index += 1;
                continue;
            };
            if selection.options.srv && url.scheme == Scheme::Tftp {
                // The 7832 AG's own message.
                let e = "Error - TFTP Scheme not supported in SRV lookups";
                self.note(Event::Unsupported { rule: name, error: e.into() });
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
            self.note(Event::Fetching {
                rule: name,
                alternative: selection.alternative.map_or(0, |a| a + 1),
                url: url.clone(),
                key: selection.options.key.is_some(),
                srv: srv_name(&url, &selection, 0),
            });
            self.syslog("Log_Request_Msg", &url, "");
            self.fetch(Purpose::Profile(self.rule_index), url, selection, 0);
            return;
        }
        self.finish_resync();
    }

    pub(super) fn fetch(&mut self, purpose: Purpose, url: Url, selection: Selection, redirects: u32) {
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
            custom_ca: self.custom_ca.clone(),
            pinned_ca: false,
        }));
        self.pending = Some(Pending { id, purpose, url, selection, redirects, auth_tries: 0 });
    }

    pub(super) fn syslog(&mut self, template_param: &str, url: &Url, error: &str) {
        let server = self.state.value("Syslog_Server");
        if server.trim().is_empty() {
            return;
        }
        let template = self.state.value(template_param);
        let message = log::message(&template, &self.variables(), &LogFetch { url, server_ip: &url.host, error });
        let severity = if template_param.contains("Failure") { 3 } else { 6 };
        self.actions.push_back(Action::Syslog { server, line: format!("<{}>{message}", 8 + severity) });
    }

    /// Follows a redirect or answers a challenge; returns whether the fetch goes on.
    pub(super) fn retry(&mut self, p: &Pending, r: &Response) -> bool {
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
                        self.note(Event::Redirected { rule: name, status: r.status, to: u.clone() });
                        self.fetch(p.purpose, u, p.selection.clone(), p.redirects + 1);
                        true
                    }
                    Err(e) => {
                        self.note(Event::BadLocation {
                            rule: name,
                            location: location.to_string(),
                            message: e.message,
                        });
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
                self.note(Event::Challenged { rule: name, status: r.status, attempt: p.auth_tries + 1 });
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
                    custom_ca: self.custom_ca.clone(),
                    pinned_ca: false,
                }));
                self.pending = Some(Pending { id, auth_tries: p.auth_tries + 1, ..p.clone() });
                true
            }
            _ => false,
        }
    }

    pub(super) fn describe(&self, purpose: Purpose) -> &'static str {
        match purpose {
            Purpose::Profile(i) => RULES[i.min(3)],
            Purpose::Upgrade => "Upgrade_Rule",
            Purpose::Report => "Report_Rule",
            Purpose::CustomCa => "Custom_CA_Rule",
            Purpose::File => "file",
        }
    }

    pub(super) fn profile_response(&mut self, p: Pending, r: Response) {
        let name = self.describe(p.purpose);
        if self.retry(&p, &r) {
            return;
        }
        let error = match r.status {
            200 => match self.apply_body(&p, &r) {
                Ok(applied) => {
                    self.note(applied);
                    self.syslog("Log_Success_Msg", &p.url, "");
                    None
                }
                Err(e) => Some(e),
            },
            404 if !self.state.value("Resync_Fails_On_FNF").eq_ignore_ascii_case("yes") => {
                self.note(Event::NotFoundIgnored(name));
                None
            }
            0 => Some(r.error.clone().unwrap_or_else(|| "transfer failed".into())),
            404 => Some("file not found".into()),
            s => Some(format!("http_get failed (status {s})")),
        };
        if let Some(e) = error {
            self.syslog("Log_Failure_Msg", &p.url, &e);
            self.note(Event::FetchFailed { rule: name, error: e });
            self.resync_failed = true;
        }
        self.rule_index += 1;
        self.next_rule();
    }

    /// Decrypts, gunzips, parses and applies a profile.
    pub(super) fn apply_body(&mut self, p: &Pending, r: &Response) -> Result<Event, String> {
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
        if report.changed.iter().any(|(name, _, _)| feeds_variables(name)) {
            self.variables_changed();
        }
        let mut names: Vec<String> = report.changed.iter().map(|(n, _, _)| n.to_string()).collect();
        names.truncate(12);
        Ok(Event::Applied {
            rule: self.describe(p.purpose),
            bytes: r.body.len(),
            layers: unwrapped.layers.iter().map(|l| format!("{l:?}")).collect(),
            changed: report.changed.len(),
            names,
        })
    }

    pub(super) fn finish_resync(&mut self) {
        self.in_resync = false;
        self.resyncs += 1;
        self.last_resync_at = Some(self.now);
        if self.resync_failed {
            self.failures += 1;
            self.note(Event::ResyncFailed { in_a_row: self.failures });
        } else {
            self.failures = 0;
            self.successes += 1;
            self.note(Event::ResyncSucceeded);
        }
        if self.custom_ca_due() {
            return;
        }
        self.after_resync();
    }

    /// What follows a resync (after the custom CA's download, if one was due): the upgrade, the next resync, reports.
    pub(super) fn after_resync(&mut self) {
        let upgrading = if self.resync_failed {
            false
        } else if let Some(at) = self.timers.get(Timer::Upgrade) {
            self.note(Event::UpgradeRetryPending(at));
            false
        } else {
            self.upgrade()
        };
        if !upgrading {
            self.schedule_next();
        }
        self.schedule_reports();
    }

    pub(super) fn schedule_next_if_idle(&mut self) {
        if !self.timers.is_set(Timer::Resync) {
            self.schedule_next();
        }
    }

    pub(super) fn schedule_next(&mut self) {
        let p = match self.parameters() {
            Ok(p) => p,
            Err(e) => {
                self.note(Event::CannotSchedule { next: true, error: e });
                return;
            }
        };
        let now = TimeOfDay { seconds: (self.now % 86_400) as u32 };
        match schedule::next_resync(&p, self.failures, self.successes.saturating_sub(1), now, &mut self.rng) {
            Some(n) => {
                self.timers.set_resync(self.now + n.delay, n.reason);
                self.note(Event::NextResyncIn { delay: n.delay, reason: n.reason.as_str() });
            }
            None => {
                self.timers.stop(Timer::Resync);
                self.note(Event::NoFurtherResync);
            }
        }
    }
}
