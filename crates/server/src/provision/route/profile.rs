//! MPP profiles by name (`/$MA.xml`, `/$PSN.xml`, `[provisioning] patterns`): the bootstrap profile for a client that
//! has not proved it is the device, the full profile for one that has (Cisco "Provisioning Guide", SEC-PRV-1), and
//! the unknown-device policies (`deny`, `bootstrap`, `enrol`).

use std::collections::BTreeMap;

use crate::config::{Identity, UnknownDevices};
use crate::identity::Claims;
use crate::inventory::{Device, Mac, Secrets, Store, StoreError};
use crate::journal::Journal;
use crate::provision::{Outcome, Protocol, ProvisionError, Provisioner, Request, Response};
use crate::routing::Captures;

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// An MPP profile by name. Only a client that proved it is the device (a verified certificate naming it, over
    /// HTTPS) gets the full profile; everyone else gets the bootstrap profile, which holds no secret.
    /// `secrets_without_certificate` is the documented lab exception.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn profile(
        &self,
        req: &Request,
        path: &str,
        captures: Captures,
        ua: Option<&Claims>,
        certificate: Option<Mac>,
        now: i64,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        let pv = &self.config.provisioning;
        let policy = pv.unknown_devices;
        if let (Some(c), Some(named)) = (&certificate, &captures.mac)
            && c != named
        {
            return Err(ProvisionError::OtherDevice {
                certificate: certificate.clone(),
                asked: named.clone(),
                path: path.to_string(),
            });
        }
        let named = captures.mac.or(certificate.clone()).or_else(|| ua.and_then(|u| u.mac.clone()));
        let Some(mac) = named else {
            return match policy {
                UnknownDevices::Deny => Err(ProvisionError::Unidentified),
                _ => self.bootstrap(req).await,
            };
        };
        let verified = req.protocol == Protocol::Https && certificate.as_ref() == Some(&mac);
        // Only where the answer depends on the device does naming a MAC count towards the enumeration limits: `deny`
        // tells known from unknown MACs (`enrol` does not: without a certificate both get the bootstrap profile).
        let revealing =
            policy == UnknownDevices::Deny || pv.secrets_without_certificate || pv.identity == Identity::Mac;
        if !verified && revealing {
            self.guard.name_mac(req.client.ip(), &mac, now).map_err(ProvisionError::Limited)?;
        }
        out.device = Some(mac.clone());
        let device = match self.store.device(&mac).await? {
            Some(d) => d,
            None => match policy {
                UnknownDevices::Deny => return Err(ProvisionError::UnknownDevice(mac)),
                UnknownDevices::Bootstrap => return self.bootstrap(req).await,
                // Enrolment takes only a phone that proved its identity: otherwise anyone could add devices.
                UnknownDevices::Enrol if !verified => {
                    out.device = None;
                    return self.bootstrap(req).await;
                }
                UnknownDevices::Enrol => {
                    // Boxed: enrolment's future (the store's add, PostgreSQL's above all) is ~15 KB, and every
                    // request's future would otherwise carry that much, copied as hyper moves it.
                    let d = Box::pin(self.enrol(&mac, captures.model, req.certificate.as_ref(), ua)).await?;
                    out.event = Some(("enrolled", format!("auto-enrolled as {}", d.model)));
                    d
                }
            },
        };
        // The phone's next fetch is its random path, by the `Profile_Rule` its full profile sets.
        let resync = match pv.resync_scheme.as_str() {
            "tftp" => Protocol::Tftp,
            _ => Protocol::Http,
        };
        let resync = self.sealed_variant(resync, ua);
        if verified || pv.secrets_without_certificate {
            self.credentials_over_tftp(req)?;
            self.full_and_resync(&device, resync, out).await
        } else if pv.identity == Identity::Mac && self.may_take_secrets(req) && self.store.is_armed(&mac).await? {
            // Rendered before the device is disarmed: a failed render leaves it armed.
            let full = self.full_and_resync(&device, resync, out).await?;
            if self.store.take_armed(&mac).await? {
                out.event = Some((
                    "secrets",
                    format!(
                        "secrets taken by {} over {} (identity = mac: the first fetch since the device was armed); \
                         from now on only ciphertext at its random path",
                        req.client,
                        req.protocol.name()
                    ),
                ));
                Ok(full)
            } else {
                // Another request took them first.
                self.bootstrap(req).await
            }
        } else {
            self.bootstrap(req).await
        }
    }

    /// `identity = "mac"`: whether this request may take an armed device's secrets: over HTTPS (plain HTTP only
    /// when the site has no HTTPS; never TFTP), and from `trusted_networks` when set.
    fn may_take_secrets(&self, req: &Request) -> bool {
        let protocol = match req.protocol {
            Protocol::Https => true,
            Protocol::Http => self.ports.https.is_none(),
            Protocol::Tftp => false,
        };
        protocol && self.config.provisioning.trusts(req.client.ip())
    }

    /// Refuses a TFTP request of a clear-text profile that carries `--uid`/`--pwd` (TFTP has no authentication),
    /// unless `[provisioning] credentials_over_tftp` allows it.
    pub(crate) fn credentials_over_tftp(&self, req: &Request) -> Result<(), ProvisionError> {
        let pv = &self.config.provisioning;
        if req.protocol == Protocol::Tftp && !pv.http_user.is_empty() && !pv.credentials_over_tftp {
            return Err(ProvisionError::CredentialsOverTftp);
        }
        Ok(())
    }

    /// Adds a device that proved its identity (`unknown_devices = "enrol"`), to `[provisioning] enrol_group`.
    async fn enrol(
        &self,
        mac: &Mac,
        model: Option<String>,
        cert: Option<&Claims>,
        ua: Option<&Claims>,
    ) -> Result<Device, ProvisionError> {
        let model = cert.and_then(|c| c.model.clone()).or(model).or_else(|| ua.and_then(|u| u.model.clone()));
        let serial = cert.and_then(|c| c.serial.clone()).or_else(|| ua.and_then(|u| u.serial.clone()));
        let failed = |e: StoreError| ProvisionError::Enrol(mac.clone(), e.to_string());
        let device = Device {
            mac: mac.clone(),
            model: model.unwrap_or_default(),
            serial: serial.unwrap_or_default(),
            description: "auto-enrolled".into(),
            group: self.config.provisioning.enrol_group.clone(),
            params: BTreeMap::new(),
            secrets: Secrets::generate().map_err(failed)?,
        };
        match self.store.add_device(&device).await {
            Ok(()) => Ok(device),
            // Another request enrolled it first.
            Err(StoreError::DeviceExists(_)) => {
                self.store.device(mac).await.map_err(failed)?.ok_or_else(|| failed(StoreError::NoDevice(mac.clone())))
            }
            Err(e) => Err(failed(e)),
        }
    }
}
