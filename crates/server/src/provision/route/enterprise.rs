//! `SEP<MAC>.cnf.xml` (specs.md §5.1). Enterprise firmware without per-phone encryption can only get its line
//! passwords this way, in clear text: so only devices of enterprise models get one, only from
//! `[provisioning] trusted_networks` (when set), and naming MACs counts towards the enumeration limits. An MPP
//! device never asks for one and gets the same "not found" as an unknown MAC. `XMLDefault.cnf.xml` is
//! device-independent ([`Provisioner::generic`]).

use crate::inventory::{Mac, Store};
use crate::journal::Journal;
use crate::provision::cache::Variant;
use crate::provision::{Outcome, ProvisionError, Provisioner, Request, Response};

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// `SEP<MAC>.cnf.xml` for `mac`.
    pub(crate) async fn enterprise(
        &self,
        req: &Request,
        path: &str,
        mac: &Mac,
        certificate: Option<Mac>,
        now: i64,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        if certificate.as_ref().is_some_and(|c| c != mac) {
            return Err(ProvisionError::OtherDevice { certificate, asked: mac.clone(), path: path.to_string() });
        }
        if !self.config.provisioning.trusts(req.client.ip()) {
            return Err(ProvisionError::UntrustedNetwork);
        }
        if certificate.as_ref() != Some(mac) {
            self.guard.name_mac(req.client.ip(), mac, now).map_err(ProvisionError::Limited)?;
        }
        match self.store.device(mac).await? {
            Some(d) if d.is_enterprise() => {
                out.device = Some(d.mac.clone());
                self.enrol_phone_certificate(req, mac, certificate.as_ref()).await;
                let full = self.rendered(&d, Variant::Sep, false, out).await?;
                self.plain_enterprise_form(full, mac, out).await
            }
            _ => Err(ProvisionError::NoEnterprisePhone(mac.clone())),
        }
    }
}
