//! The parameters the server adds to what the inventory says: the secure flow's `Profile_Rule`, key and random path
//! (Cisco "Provisioning Guide", SEC-PRV-1/2), `Report_Rule`, `Upgrade_Rule`, `Syslog_Server`, and the facts templates
//! see (`server.host`, ports, the target load, `version_stamp`).

use std::collections::BTreeMap;
use std::sync::Arc;

use provisor_profile::{Profile, Value};

use super::Provisioner;
use super::request::ProvisionError;
use crate::config::ProfileEncryption;
use crate::inventory::{Device, Store, effective_parameters};
use crate::journal::Journal;

/// The ports the front ends actually listen on (they go into rendered URLs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    /// HTTP.
    pub http: Option<u16>,
    /// HTTPS.
    pub https: Option<u16>,
    /// TFTP.
    pub tftp: Option<u16>,
    /// Syslog.
    pub syslog: Option<u16>,
}

/// The firmware version name of a load file: `sip88xx.12-0-1MPP-BN.loads` → `sip88xx.12-0-1MPP`.
pub fn load_name(file: &str) -> &str {
    let stem = file.rsplit_once('.').map_or(file, |(s, ext)| if ext.contains('-') { file } else { s });
    stem.strip_suffix("-BN").unwrap_or(stem)
}

/// The effective parameters of a parsed profile, as a JSON object (what drift compares with a report).
pub fn params_json(profile: &Profile) -> Arc<str> {
    let map: BTreeMap<&str, &str> = profile
        .effective()
        .into_iter()
        .filter_map(|p| match &p.value {
            Value::Text(t) => Some((p.name.as_str(), t.as_str())),
            _ => None,
        })
        .collect();
    serde_json::to_string(&map).unwrap_or_default().into()
}

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// `scheme://host:port` of a front end that listens.
    fn url(&self, scheme: &str) -> Option<String> {
        let port = match scheme {
            "http" => self.ports.http?,
            "https" => self.ports.https?,
            _ => self.ports.tftp?,
        };
        Some(format!("{scheme}://{}:{port}", self.config.public_host))
    }

    /// The bootstrap profile's parameters: where to fetch the full profile, when to retry, where to log. It never
    /// removes the way back (Cisco "Provisioning Guide", *Profile Rules*: `Profile_Rule` .. `_D` run in order, a later
    /// file overriding an earlier one):
    /// - `Profile_Rule` stays the plain bootstrap URL (HTTP, else TFTP), which always answers;
    /// - `Profile_Rule_B` is the HTTPS URL of the device's own profile. A phone that cannot reach it (no certificate
    ///   the site trusts, a server certificate it does not trust) keeps `Profile_Rule` and tries again, and recovers
    ///   once the site is fixed; the full profile replaces both rules;
    /// - `Custom_CA_Rule` installs the site's CA (`/ca.pem`) unless the server certificate is from a public CA;
    /// - `Resync_Periodic` and `Resync_Error_Retry_Delay` are `bootstrap_retry_s`, so a new phone moves on within a
    ///   minute, not an hour.
    pub(super) fn bootstrap_params(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let pv = &self.config.provisioning;
        let plain = self.url("http").or_else(|| self.url("tftp"));
        let secure = self.url("https");
        let rules = [plain, secure].into_iter().flatten();
        for (name, base) in ["Profile_Rule", "Profile_Rule_B"].into_iter().zip(rules) {
            p.insert(name.to_string(), format!("{}{base}/$MA.xml", self.auth_options(false)));
        }
        if self.has_site_ca()
            && let Some(base) = self.url("http")
        {
            p.insert("Custom_CA_Rule".to_string(), format!("{base}/ca.pem"));
        }
        p.insert("Resync_Periodic".to_string(), pv.bootstrap_retry_s.to_string());
        p.insert("Resync_Error_Retry_Delay".to_string(), pv.bootstrap_retry_s.to_string());
        if let Some(port) = self.ports.syslog {
            p.insert("Syslog_Server".to_string(), format!("{}:{port}", self.config.public_host));
        }
        p
    }

    /// `[--uid u --pwd p]`-style options (with the key option when `key`).
    fn auth_options(&self, key: bool) -> String {
        let mut opts = Vec::new();
        if key {
            opts.push(format!("--key ${}", self.config.provisioning.key_gpp));
        }
        let pv = &self.config.provisioning;
        if !pv.http_user.is_empty() {
            opts.push(format!("--uid {} --pwd {}", pv.http_user, pv.http_password));
        }
        if opts.is_empty() { String::new() } else { format!("[{}] ", opts.join(" ")) }
    }

    /// What templates see as `server`.
    pub(super) fn server_facts(&self, device: Option<&Device>) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert("host".to_string(), self.config.public_host.clone());
        for (name, port) in
            [("http_port", self.ports.http), ("https_port", self.ports.https), ("tftp_port", self.ports.tftp)]
        {
            if let Some(p) = port {
                f.insert(name.to_string(), p.to_string());
            }
        }
        if let Some(file) = device.and_then(|d| self.config.firmware.targets.get(&d.model)) {
            f.insert("load".to_string(), load_name(file).to_string());
        }
        f.insert("version_stamp".to_string(), format!("provisor-{}", self.cache.revision()));
        // XMLDefault.cnf.xml's `loadInformationN model="…"` lines (specs.md §5.2), from `[enterprise] loads`.
        if let Some(e) = &self.config.enterprise {
            let esc =
                |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
            let lines: Vec<String> = e
                .loads
                .iter()
                .filter(|(code, _)| code.chars().all(|c| c.is_ascii_digit()))
                .map(|(code, l)| {
                    format!(
                        "<loadInformation{code} model=\"{}\">{}</loadInformation{code}>",
                        esc(&l.model),
                        esc(&l.load)
                    )
                })
                .collect();
            if !lines.is_empty() {
                f.insert("load_information".to_string(), lines.join("\n  "));
            }
        }
        f
    }

    /// The parameters of `device`'s full profile: its effective parameters plus what the secure flow, firmware,
    /// reports and syslog need.
    pub(super) async fn full_params(&self, d: &Device) -> Result<BTreeMap<String, String>, ProvisionError> {
        let mut p = effective_parameters(&self.store, d).await?;
        self.add_server_params(d, &mut p, |_| false);
        Ok(p)
    }

    /// Adds to a device's parameters `p` what the server sets: its key, random path and `Profile_Rule` always, and
    /// defaults for `Resync_Periodic`, `Report_Rule`, `Upgrade_Rule`, `Syslog_Server` and the like unless `p` or
    /// what it `inherits` sets them.
    pub(super) fn add_server_params(
        &self,
        d: &Device,
        p: &mut BTreeMap<String, String>,
        inherits: impl Fn(&str) -> bool,
    ) {
        let pv = &self.config.provisioning;
        p.insert(format!("GPP_{}", pv.key_gpp), d.secrets.aes_key.clone());
        p.insert(format!("GPP_{}", pv.path_gpp), d.secrets.path_token.clone());
        if pv.encryption == ProfileEncryption::Aes128gcm {
            p.insert("IKM_HTTP_Encrypt_Content".into(), d.secrets.ikm.clone());
        }
        if let Some(base) = self.url(&pv.resync_scheme) {
            p.insert(
                "Profile_Rule".into(),
                format!("{}{base}/profile/${}/profile.cfg", self.auth_options(true), pv.path_gpp),
            );
        }
        let mut default = |name: &str, value: &dyn Fn() -> String| {
            if !p.contains_key(name) && !inherits(name) {
                p.insert(name.to_string(), value());
            }
        };
        default("Resync_Periodic", &|| pv.resync_periodic.to_string());
        // What the bootstrap set for its short retries goes back to the site's (or the phone's default): the
        // second rule off, errors retried after an hour.
        default("Profile_Rule_B", &String::new);
        default("Resync_Error_Retry_Delay", &|| "3600".to_string());
        if let Some(base) = self.url("http").or_else(|| self.url("https")) {
            default("Report_Rule", &|| format!("[--key ${}]{base}/report/$MA.xml", pv.key_gpp));
        }
        if let Some(file) = self.config.firmware.targets.get(&d.model)
            && let Some(base) = self.url("http").or_else(|| self.url("tftp"))
        {
            default("Upgrade_Rule", &|| format!("($SWVER ne {})? {base}/firmware/{file}", load_name(file)));
        }
        if let Some(port) = self.ports.syslog {
            default("Syslog_Server", &|| format!("{}:{port}", self.config.public_host));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::load_name;

    #[test]
    fn load_names() {
        assert_eq!(load_name("sip88xx.12-0-1MPP-BN.loads"), "sip88xx.12-0-1MPP");
        assert_eq!(load_name("sip78xx.11-0-1MPP.loads"), "sip78xx.11-0-1MPP");
    }
}
