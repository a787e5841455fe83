//! Reports (specs.md §4.5): `Report_Rule` uploads of the configuration, the changes since the last report
//! (`--delta`) or the status (`--status`), when `Report_To_Server` says so or when asked.

use super::*;

impl Phone {
    /// The administrator changes a parameter on the phone itself (its web page or keypad). With
    /// `Report_To_Server` = On Local Change, the reports go `Upload_Delay_On_Local_Change` seconds (10–900) after the
    /// last such change.
    pub fn local_change(&mut self, now: u64, name: &str, value: &str) {
        self.now = now;
        self.set(name, value);
        self.note(Event::LocalChange { name: name.to_string(), value: value.to_string() });
        if self.report_mode() == ReportMode::OnLocalChange {
            let delay = self.seconds("Upload_Delay_On_Local_Change", 60).clamp(10, 900);
            self.timers.set(Timer::Report, now + delay);
            self.note(Event::ReportIn(delay));
        }
        if name == "Provision_Enable" && !self.timers.is_set(Timer::Resync) && !self.busy() {
            self.schedule_next();
        }
        self.schedule_reports();
    }

    pub(super) fn report_mode(&self) -> ReportMode {
        let v = self.state.value("Report_To_Server").to_ascii_lowercase().replace(['_', ' '], "");
        match v.as_str() {
            "onlocalchange" => ReportMode::OnLocalChange,
            "periodically" => ReportMode::Periodically,
            _ => ReportMode::OnRequest,
        }
    }

    /// Keeps the report timer in line with `Report_To_Server`: `Periodically` every `Periodic_Upload_To_Server`
    /// seconds (at least 600), `On Request` never on its own.
    pub(super) fn schedule_reports(&mut self) {
        match self.report_mode() {
            ReportMode::Periodically if !self.timers.is_set(Timer::Report) => {
                let period = self.seconds("Periodic_Upload_To_Server", 3600).max(600);
                self.timers.set(Timer::Report, self.now + period);
            }
            ReportMode::OnRequest => {
                self.timers.stop(Timer::Report);
            }
            _ => {}
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
            self.note(Event::NoReportRule);
            return;
        }
        let selections =
            match Rule::parse(&text, RuleKind::Report).and_then(|r| r.evaluate_each(&self.variables(), None)) {
                Ok(s) => s,
                Err(e) => {
                    self.note(Event::RuleInvalid { rule: "Report_Rule", text, column: e.column, message: e.message });
                    return;
                }
            };
        let method = if self.state.value("HTTP_Report_Method").eq_ignore_ascii_case("put") { "PUT" } else { "POST" };
        let configuration: BTreeMap<String, String> = self
            .state
            .settings()
            .into_iter()
            .filter(|(name, _)| *name != "IKM_HTTP_Encrypt_Content") // never reported (003)
            .map(|(name, setting)| (name.to_string(), setting.value.to_string()))
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
                    self.note(Event::ReportUnwrapped(e.to_string()));
                    continue;
                }
            };
            let (method, verb) = match url.scheme {
                Scheme::Tftp => ("PUT", "TFTP write"),
                _ => (method, method),
            };
            let id = self.next_id;
            self.next_id += 1;
            self.note(Event::ReportSent { verb, kind, fields: fields.len(), bytes: body.len(), url: url.clone() });
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
                custom_ca: self.custom_ca.clone(),
                pinned_ca: false,
            }));
        }
        self.reported = Some(configuration);
    }

    /// The status report. Its schema is not documented (specs.md §4.5); these are the fields of the phone's
    /// *Info > Status* page, named as flat-profile elements.
    pub(super) fn status_fields(&self) -> BTreeMap<String, String> {
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
}
