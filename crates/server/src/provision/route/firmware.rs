//! `/firmware/<name>` (and bare load file names, as `Upgrade_Rule` and enterprise `.loads` lists ask for them): files
//! from the firmware directory, through [`crate::content::Content`].

use crate::inventory::Store;
use crate::journal::Journal;
use crate::provision::{ProvisionError, Provisioner, Response};

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// The firmware file `name`.
    pub(crate) fn firmware(&self, name: &str) -> Result<Response, ProvisionError> {
        let body = self.content.firmware(name).ok_or(ProvisionError::NoFirmware)?;
        Ok(Response::ok(body, "application/octet-stream"))
    }
}
