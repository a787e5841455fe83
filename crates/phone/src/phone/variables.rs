//! The phone's parameters as the rules see them: macro variables (Cisco "Macro Expansion"; specs.md §4.1), Yes/No
//! and number parameters, and setting a parameter as a profile would.

use std::sync::Arc;

use super::*;

/// Whether parameter `name` is the source of a macro variable: `GPP_A`..`GPP_P`, `GPP_SA`..`GPP_SD` and
/// `User_ID_n_` (`$UIDn`). A profile that changes none of them leaves the cached variables valid.
pub(super) fn feeds_variables(name: &str) -> bool {
    name.starts_with("GPP_") || name.starts_with("User_ID_")
}

/// The status variables' inputs, which change during a resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Status {
    provisioning_state: i32,
    upgrade_failed: bool,
    upgrade_error: String,
    resync_timer: u64,
}

/// [`Phone::variables`]' last result, with the status it was computed with; `None` after a change to the parameters
/// or the device.
pub(super) type Cache = Option<(Status, Arc<Variables>)>;

impl Phone {
    pub(super) fn parameters(&self) -> Result<ResyncParameters, String> {
        ResyncParameters::from_parameters(|n| self.state.get(n).map(|s| s.value.into_string()))
            .map_err(|e| e.to_string())
    }

    /// Whether a Yes/No parameter is Yes.
    pub(super) fn enabled(&self, name: &str) -> bool {
        self.state.value_str(name).trim().eq_ignore_ascii_case("yes")
    }

    /// A whole number of seconds from a parameter, or `default` when it is empty or not a number.
    pub(super) fn seconds(&self, name: &str, default: u64) -> u64 {
        self.state.value_str(name).trim().parse().unwrap_or(default)
    }

    /// The phone's macro variables from its live state (Cisco "Macro Expansion"; specs.md §4.1).
    ///
    /// A phone evaluates its rules and syslog templates many times per resync; the variables that come from its
    /// parameters and device are computed once per change of either ([`Phone::state_mut`], [`Phone::device_mut`]),
    /// and the status variables (`$PRVST`, `$UPGST`, `$UPGERR`, `$PRVTMR`) whenever one of them changes.
    pub fn variables(&self) -> Arc<Variables> {
        let status = Status {
            provisioning_state: self.provisioning_state,
            upgrade_failed: self.upgrade_failures > 0,
            upgrade_error: self.upgrade_error.clone(),
            resync_timer: self.last_resync_at.map_or(0, |t| self.now.saturating_sub(t)),
        };
        let mut cache = self.variables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, v)) = &*cache
            && *s == status
        {
            return v.clone();
        }
        // Only the status moved: the rest is still right, and the status values are set over the old ones.
        let mut v = match &*cache {
            Some((_, v)) => Variables::clone(v),
            None => self.base_variables(),
        };
        v.set("PRVST", status.provisioning_state.to_string())
            .set("UPGST", if status.upgrade_failed { "2" } else { "1" })
            .set("UPGERR", status.upgrade_error.as_str())
            .set("PRVTMR", status.resync_timer.to_string());
        let v = Arc::new(v);
        *cache = Some((status, v.clone()));
        v
    }

    /// The variables that come from the phone's parameters and device.
    fn base_variables(&self) -> Variables {
        const GENERAL: [(&str, &str); 16] = [
            ("A", "GPP_A"),
            ("B", "GPP_B"),
            ("C", "GPP_C"),
            ("D", "GPP_D"),
            ("E", "GPP_E"),
            ("F", "GPP_F"),
            ("G", "GPP_G"),
            ("H", "GPP_H"),
            ("I", "GPP_I"),
            ("J", "GPP_J"),
            ("K", "GPP_K"),
            ("L", "GPP_L"),
            ("M", "GPP_M"),
            ("N", "GPP_N"),
            ("O", "GPP_O"),
            ("P", "GPP_P"),
        ];
        const SECRET: [(&str, &str); 4] = [("SA", "GPP_SA"), ("SB", "GPP_SB"), ("SC", "GPP_SC"), ("SD", "GPP_SD")];
        let mut v = Variables::new();
        for (name, parameter) in GENERAL.iter().chain(&SECRET) {
            v.set(name, self.state.value_str(parameter));
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
            .set("UPGTMR", "0")
            .set("REGTMR1", "0")
            .set("REGTMR2", "0")
            .set("UPGCOND", "true");
        const UID: [(&str, &str); 16] = [
            ("UID1", "User_ID_1_"),
            ("UID2", "User_ID_2_"),
            ("UID3", "User_ID_3_"),
            ("UID4", "User_ID_4_"),
            ("UID5", "User_ID_5_"),
            ("UID6", "User_ID_6_"),
            ("UID7", "User_ID_7_"),
            ("UID8", "User_ID_8_"),
            ("UID9", "User_ID_9_"),
            ("UID10", "User_ID_10_"),
            ("UID11", "User_ID_11_"),
            ("UID12", "User_ID_12_"),
            ("UID13", "User_ID_13_"),
            ("UID14", "User_ID_14_"),
            ("UID15", "User_ID_15_"),
            ("UID16", "User_ID_16_"),
        ];
        for (name, parameter) in UID {
            v.set(name, self.state.value_str(parameter));
        }
        v
    }

    /// The parameters, to change them: the cached variables are dropped.
    pub(super) fn state_mut(&mut self) -> &mut PhoneState {
        self.variables_changed();
        &mut self.state
    }

    /// The device, to change it (a firmware upgrade): the cached variables are dropped.
    pub(super) fn device_mut(&mut self) -> &mut Device {
        self.variables_changed();
        &mut self.device
    }

    /// Drops the cached variables (after a change to a parameter that [`feeds_variables`]).
    pub(super) fn variables_changed(&mut self) {
        *self.variables.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Sets a parameter as a provisioned profile would (`ua` semantics included).
    pub(super) fn set(&mut self, name: &str, value: &str) {
        self.state_mut().apply(&Profile { parameters: vec![Parameter::text(name, value)] }, &ApplyOptions::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_variables_follow_every_change() {
        let mut p = Phone::new(Device::new("00562b043615", "CP-8841-3PCC", "sip88xx.12-0-1MPP"), None, 1);
        let first = p.variables();
        assert_eq!(first.get("A"), Some(""));
        assert!(Arc::ptr_eq(&first, &p.variables()), "nothing changed: the same variables");
        p.set("GPP_A", "alpha");
        p.set("User_ID_3_", "1003");
        assert_eq!(p.variables().get("A"), Some("alpha"), "a parameter set by a profile");
        assert_eq!(p.variables().get("UID3"), Some("1003"));
        p.device_mut().firmware = "sip88xx.12-0-2MPP".into();
        assert_eq!(p.variables().get("SWVER"), Some("sip88xx.12-0-2MPP"), "the device after an upgrade");
        p.provisioning_state = 2;
        p.upgrade_failures = 1;
        p.upgrade_error = "http_get failed".into();
        p.last_resync_at = Some(10);
        p.now = 25;
        let v = p.variables();
        assert_eq!(
            ["PRVST", "UPGST", "UPGERR", "PRVTMR", "A"].map(|n| v.get(n)),
            [Some("2"), Some("2"), Some("http_get failed"), Some("15"), Some("alpha")]
        );
        p.now = 26;
        assert_eq!(p.variables().get("PRVTMR"), Some("16"), "the timer moves with the clock");
    }
}
