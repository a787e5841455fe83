//! `Upgrade_Rule` (Cisco "Provisioning Formats", *Upgrade Rule*): whether to upgrade, the download, the reboot into
//! the new load, and the retry of a failed one (`Upgrade_Error_Retry_Delay`).

use super::*;

impl Phone {
    /// Evaluates `Upgrade_Rule`; returns whether a firmware download started.
    pub(super) fn upgrade(&mut self) -> bool {
        let text = self.state.value("Upgrade_Rule");
        if text.trim().is_empty() {
            return false;
        }
        let selection = match Rule::parse(&text, RuleKind::Upgrade).and_then(|r| r.evaluate(&self.variables(), None)) {
            Ok(s) => s,
            Err(e) => {
                self.note(Event::RuleInvalid { rule: "Upgrade_Rule", text, column: e.column, message: e.message });
                return false;
            }
        };
        let enabled = self.state.value("Upgrade_Enable").eq_ignore_ascii_case("yes");
        let limit = self.state.value("Downgrade_Rev_Limit");
        match provisor_rules::upgrade::decide(
            enabled,
            selection.url.as_ref(),
            &self.device.firmware,
            self.last_upgrade.as_ref(),
            &limit,
        ) {
            Decision::Skip(why) => {
                self.note(Event::UpgradeSkipped(why.to_string()));
                false
            }
            Decision::Upgrade { url, load } => {
                self.note(Event::UpgradeStarted { load: load.clone(), url: url.clone() });
                self.syslog("Log_Upgrade_Request_Msg", &url, "");
                self.fetch(Purpose::Upgrade, url, selection, 0);
                true
            }
        }
    }

    pub(super) fn upgrade_response(&mut self, p: Pending, r: Response) {
        if self.retry(&p, &r) {
            return;
        }
        if r.status == 200 && !r.body.is_empty() {
            // Only a completed attempt stops the same URL from being tried again (003, Upgrade Rule).
            self.last_upgrade = Some(p.url.clone());
            self.timers.stop(Timer::Upgrade);
            let load = provisor_rules::upgrade::load_name(&p.url);
            self.upgrade_failures = 0;
            self.upgrade_error.clear();
            self.syslog("Log_Upgrade_Success_Msg", &p.url, "");
            self.note(Event::Upgraded { bytes: r.body.len(), load: load.clone() });
            self.device_mut().firmware = load;
            self.rebooting_after_upgrade = true;
            self.boot(self.now);
        } else {
            let e = r.error.clone().unwrap_or_else(|| format!("http_get failed (status {})", r.status));
            self.upgrade_failures += 1;
            self.upgrade_error = e.clone();
            self.note(Event::UpgradeFailed(e.clone()));
            self.syslog("Log_Upgrade_Failure_Msg", &p.url, &e);
            if let Ok(params) = self.parameters()
                && let Some(delay) = schedule::upgrade_retry(&params, self.upgrade_failures, &mut self.rng)
            {
                self.timers.set(Timer::Upgrade, self.now + delay);
                self.note(Event::UpgradeRetryIn(delay));
            }
            if self.enabled("Resync_After_Upgrade_Attempt") {
                // "whether the device performs a resync operation [...] after each upgrade attempt" (003).
                self.timers.set_resync(self.now, Reason::AfterUpgrade);
                self.note(Event::ResyncAfterUpgrade);
            } else if !self.timers.is_set(Timer::Resync) {
                self.schedule_next();
            }
        }
    }
}
