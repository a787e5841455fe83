//! `Report_Rule` uploads (specs.md §4.5): the phone's configuration as it runs, compared with what was served
//! (drift). A report changes what `device show` says, so it must prove the device: encrypted with the device's key
//! (or IKM), or sent over HTTPS with its verified certificate. Plain reports from anyone else are refused unless
//! `[provisioning] plain_reports` is set.

use bytes::Bytes;
use provisor_envelope::{Keys, Limits, aes128gcm};
use provisor_profile::{ParseOptions, Profile};

use crate::identity::Claims;
use crate::inventory::{Mac, Store};
use crate::journal::Journal;
use crate::provision::parameters::params_json;
use crate::provision::{Body, Outcome, Protocol, ProvisionError, Provisioner, Request, Response};

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// The report `name`.
    pub(crate) async fn report(
        &self,
        req: &Request,
        name: &str,
        ua: Option<&Claims>,
        certificate: Option<Mac>,
        now: i64,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        if !matches!(req.method, "PUT" | "POST" | "WRQ") {
            return Err(ProvisionError::NotAnUpload);
        }
        let named = mac_in(name);
        if let (Some(c), Some(n)) = (&certificate, &named)
            && c != n
        {
            return Err(ProvisionError::OtherDevice {
                certificate: certificate.clone(),
                asked: n.clone(),
                path: req.path.clone(),
            });
        }
        let verified_mac = if req.protocol == Protocol::Https { certificate.clone() } else { None };
        let mac =
            certificate.or(named).or_else(|| ua.and_then(|u| u.mac.clone())).ok_or(ProvisionError::ReportUnnamed)?;
        let verified = verified_mac.as_ref() == Some(&mac);
        if !verified {
            self.guard.name_mac(req.client.ip(), &mac, now).map_err(ProvisionError::Limited)?;
        }
        let device = self.store.device(&mac).await?.ok_or_else(|| ProvisionError::UnknownDevice(mac.clone()))?;
        out.device = Some(mac.clone());
        if req.body.len() > self.config.limits.max_report_bytes {
            return Err(ProvisionError::ReportTooLarge);
        }
        let mut key_sets = vec![(device.secrets.aes_key.clone(), device.secrets.ikm.clone())];
        if let Some(p) = &device.secrets.previous {
            key_sets.push((p.aes_key.clone(), p.ikm.clone()));
        }
        let mut last_error = String::new();
        for (key, ikm) in key_sets {
            let keys = Keys { key: Some(key.into_bytes()), ikm: aes128gcm::ikm_from_hex(&ikm), ..Keys::default() };
            let u = match provisor_envelope::unwrap(&req.body, &keys, &Limits::default()) {
                Ok(u) => u,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            if u.layers.is_empty() && !verified && !self.config.provisioning.plain_reports {
                return Err(ProvisionError::PlainReport(name.to_string()));
            }
            let profile = Profile::parse(&u.plaintext, &ParseOptions::default()).map_err(|e| {
                ProvisionError::BadReport { name: name.to_string(), reason: format!("{}: {}", e.position, e.kind) }
            })?;
            // Counted only once accepted, so garbage cannot use up a device's allowance.
            self.guard.device_event(&mac, now).map_err(ProvisionError::Limited)?;
            let layers: Vec<String> = u.layers.iter().map(|l| format!("{l:?}")).collect();
            let how = if layers.is_empty() { "plain".to_string() } else { layers.join(", ") };
            out.event = Some(("report", format!("{name}: {} parameters ({how})", profile.effective().len())));
            out.report = Some((params_json(&profile), u.plaintext));
            return Ok(Response::ok(Body::Bytes(Bytes::new()), "text/plain"));
        }
        Err(ProvisionError::BadReport { name: name.to_string(), reason: last_error })
    }
}

/// The first run of 12 hex digits in a name that is a MAC.
fn mac_in(name: &str) -> Option<Mac> {
    let b = name.as_bytes();
    (0..b.len().saturating_sub(11)).find_map(|i| {
        let w = &name.get(i..i + 12)?;
        let edge = |j: usize| b.get(j).is_none_or(|c| !c.is_ascii_hexdigit());
        (w.bytes().all(|c| c.is_ascii_hexdigit()) && (i == 0 || edge(i - 1)) && edge(i + 12))
            .then(|| w.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::mac_in;

    #[test]
    fn macs_in_names() {
        assert_eq!(mac_in("001122aabbcc.xml"), "001122aabbcc".parse().ok());
        assert_eq!(mac_in("cfg-001122AABBCC-delta.xml"), "001122aabbcc".parse().ok());
        assert_eq!(mac_in("0001122aabbcc.xml"), None);
        assert_eq!(mac_in("status.xml"), None);
    }
}
