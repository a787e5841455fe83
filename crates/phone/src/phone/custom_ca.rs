//! `Custom_CA_Rule` (Cisco MPP administration guides, *Custom Certificate Authority*): the URL of a CA certificate
//! the phone downloads and adds to the CAs it trusts for HTTPS. A phone out of the box trusts only its built-in
//! public roots; a site whose server certificate comes from its own CA has to install that CA this way before any
//! HTTPS rule can work.
//!
//! Modelled conservatively, so the simulator is never more lenient than a phone: the CA is fetched after the resync
//! in which the rule appeared (an HTTPS rule later in that same resync still fails), it must be a PEM certificate,
//! and it counts from the next connection on. A failed download is tried again after the next resync.

use std::sync::Arc;

use super::*;

impl Phone {
    /// After a resync: starts the download of the custom CA when `Custom_CA_Rule` names one not installed yet.
    /// Returns whether it started (the resync's follow-up then waits for [`Phone::custom_ca_response`]).
    pub(super) fn custom_ca_due(&mut self) -> bool {
        let rule = self.state.value("Custom_CA_Rule").trim().to_string();
        if rule.is_empty() || rule == self.custom_ca_from {
            return false;
        }
        let selection = Rule::parse(&rule, RuleKind::Profile)
            .and_then(|r| r.evaluate(&self.variables(), self.dhcp_server.as_deref()));
        let Ok(selection) = selection else {
            self.note(Event::RuleInvalid {
                rule: "Custom_CA_Rule",
                text: rule,
                column: 0,
                message: "not a URL the phone can fetch".into(),
            });
            return false;
        };
        let Some(url) = selection.url.clone() else { return false };
        self.note(Event::CustomCaFetching(url.clone()));
        self.fetch(Purpose::CustomCa, url, selection, 0);
        true
    }

    /// The custom CA's download ended: installed if it is a PEM certificate; then the resync's follow-up (upgrade,
    /// next resync) goes on.
    pub(super) fn custom_ca_response(&mut self, p: Pending, r: Response) {
        if self.retry(&p, &r) {
            return;
        }
        let is_pem = String::from_utf8_lossy(&r.body).contains("-----BEGIN CERTIFICATE-----");
        match (r.status, is_pem) {
            (200, true) => {
                self.custom_ca = Some(Arc::new(r.body));
                self.custom_ca_from = self.state.value("Custom_CA_Rule").trim().to_string();
                self.note(Event::CustomCaInstalled(p.url));
            }
            (200, false) => self.note(Event::CustomCaFailed { url: p.url, error: "not a PEM certificate".into() }),
            (0, _) => self
                .note(Event::CustomCaFailed { url: p.url, error: r.error.unwrap_or_else(|| "transfer failed".into()) }),
            (status, _) => self.note(Event::CustomCaFailed { url: p.url, error: format!("status {status}") }),
        }
        self.after_resync();
    }

    /// The CA installed with `Custom_CA_Rule` (PEM), if any.
    pub fn custom_ca(&self) -> Option<&Arc<Vec<u8>>> {
        self.custom_ca.as_ref()
    }
}
