//! The phone's parameters as the rules see them: macro variables (Cisco "Macro Expansion"; specs.md §4.1), Yes/No
//! and number parameters, and setting a parameter as a profile would.

use super::*;

impl Phone {
    pub(super) fn parameters(&self) -> Result<ResyncParameters, String> {
        ResyncParameters::from_parameters(|n| self.state.get(n).map(|s| s.value)).map_err(|e| e.to_string())
    }

    /// Whether a Yes/No parameter is Yes.
    pub(super) fn enabled(&self, name: &str) -> bool {
        self.state.value(name).trim().eq_ignore_ascii_case("yes")
    }

    /// A whole number of seconds from a parameter, or `default` when it is empty or not a number.
    pub(super) fn seconds(&self, name: &str, default: u64) -> u64 {
        self.state.value(name).trim().parse().unwrap_or(default)
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

    /// Sets a parameter as a provisioned profile would (`ua` semantics included).
    pub(super) fn set(&mut self, name: &str, value: &str) {
        self.state.apply(&Profile { parameters: vec![Parameter::text(name, value)] }, &ApplyOptions::default());
    }
}
