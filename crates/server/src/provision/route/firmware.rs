//! `/firmware/<name>` (and bare load file names, as `Upgrade_Rule` and enterprise `.loads` lists ask for them): files
//! from the firmware directory; and trust lists (`ITLFile.tlv`, `CTLSEP<MAC>.tlv`, ...): files the site placed. Both
//! through [`crate::content::Content`].

use crate::inventory::Store;
use crate::journal::Journal;
use crate::provision::{ProvisionError, Provisioner, Response};

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// The firmware file `name`.
    pub(crate) fn firmware(&self, name: &str) -> Result<Response, ProvisionError> {
        let body = self.content.firmware(name).ok_or(ProvisionError::NoFirmware)?;
        Ok(Response::ok(body, "application/octet-stream"))
    }

    /// The trust list at `path`; "not found" when the site has none, so phones without a trust list accept unsigned
    /// files (specs.md §5.1).
    pub(crate) fn trust_list(&self, path: &str) -> Result<Response, ProvisionError> {
        let body = self.content.trust_list(path.trim_start_matches('/')).ok_or(ProvisionError::NoTrustList)?;
        Ok(Response::ok(body, "application/octet-stream"))
    }

    /// `/ca.pem`: the CA of the server certificate, which the bootstrap profile's `Custom_CA_Rule` installs on phones
    /// (none when `[https] public_ca`).
    pub(crate) fn site_ca(&self) -> Result<Response, ProvisionError> {
        let pem = self.site_ca.read().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(Response::ok(super::super::Body::Bytes(pem.ok_or(ProvisionError::NoSiteCa)?), "application/x-pem-file"))
    }
}
