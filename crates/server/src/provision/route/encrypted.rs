//! `/profile/<random>/...`: the encrypted resync of the secure flow (Cisco "Provisioning Guide", SEC-PRV-2). The
//! random path finds the device; the body is sealed with its key, or with the key a rotation replaced when the phone
//! still uses the old path, until it has fetched the new one.

use provisor_rules::version::Version;

use crate::config::ProfileEncryption;
use crate::identity::Claims;
use crate::inventory::{Mac, Store};
use crate::journal::Journal;
use crate::provision::cache::{Key, PathKey, Variant};
use crate::provision::{Outcome, Protocol, ProvisionError, Provisioner, Request, Response};

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// The profile at random path `token`.
    pub(crate) async fn encrypted(
        &self,
        req: &Request,
        token: &str,
        ua: Option<&Claims>,
        certificate: Option<Mac>,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        let variant = self.sealed_variant(req.protocol, ua);
        if let Some(s) = self.cache.get(&PathKey(token, variant))
            && (certificate.is_none() || certificate == s.device)
        {
            out.device = s.device.clone();
            out.served_params = s.params.clone();
            return Ok(Response::served(&s));
        }
        let (device, previous) = self.store.device_by_path_token(token).await?.ok_or(ProvisionError::NotFound)?;
        if certificate.as_ref().is_some_and(|c| *c != device.mac) {
            return Err(ProvisionError::OtherDevice { certificate, asked: device.mac, path: req.path.clone() });
        }
        out.device = Some(device.mac.clone());
        if !previous && device.secrets.previous.is_some() {
            // The phone uses its new secrets: the old ones can go.
            if let Err(e) = self.store.forget_previous_secrets(&device.mac).await {
                tracing::error!("{}: dropping rotated secrets: {e}", device.mac);
            } else {
                out.event = Some(("rotated", "the phone now uses its new key and path".into()));
            }
        }
        let s = self.rendering(&device, variant, previous, out).await?;
        // Only a device that is not mid-rotation is found by its path alone (see the rotation above).
        if !previous && device.secrets.previous.is_none() {
            self.cache.insert(Key::Path(token.to_string(), variant), s.clone());
        }
        Ok(Response::served(&s))
    }

    /// The sealing a phone whose User-Agent is `ua` gets at its random path over `protocol`.
    pub(crate) fn sealed_variant(&self, protocol: Protocol, ua: Option<&Claims>) -> Variant {
        match (self.config.provisioning.encryption, protocol) {
            (ProfileEncryption::Aes128gcm, Protocol::Http | Protocol::Https) => Variant::Gcm,
            _ if self.old_firmware(ua) => Variant::CbcMd5,
            _ => Variant::Cbc,
        }
    }

    /// Whether the request's User-Agent reports firmware older than `md5_before_firmware`.
    fn old_firmware(&self, ua: Option<&Claims>) -> bool {
        let limit = &self.config.provisioning.md5_before_firmware;
        if limit.is_empty() {
            return false;
        }
        let firmware = ua.and_then(|c| c.firmware.as_deref());
        match (firmware.map(Version::parse), Version::parse(limit)) {
            (Some(Ok(v)), Ok(l)) => v.compare(&l).is_ok_and(|o| o == std::cmp::Ordering::Less),
            _ => false,
        }
    }
}
