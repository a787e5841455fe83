//! Enterprise phones that hold a trust list (specs.md §5.1, §5.4): they ask for `<file>.sgn` and accept it only if a
//! TFTP-role certificate of their list signed it; with a phone certificate on record they get
//! `SEP<MAC>.cnf.xml.enc.sgn`, the config encrypted to that certificate, and a plain stub without secrets beside it.
//! Signing happens once per content (cached with the inventory's revision); the signer is the trust directory's
//! `tftp.pem`, given to the core by the server ([`Provisioner::set_file_signer`]).

use sha2::{Digest as _, Sha256};

use provisor_trust::encrypted::{self, Randomness};
use provisor_trust::{Certificate, Digest, signed};

use crate::config::PlainSecrets;
use crate::inventory::{Mac, Store};
use crate::journal::Journal;
use crate::provision::cache::{Key, Served, Variant};
use crate::provision::{Body, Outcome, ProvisionError, Provisioner, Request, Response};

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// The signed form of `bytes`, named `name` inside (cached per content).
    pub(crate) fn sign_file(
        &self,
        bytes: &[u8],
        name: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        let signer = self.file_signer().ok_or_else(|| {
            ProvisionError::Unsignable("no file signer: set [enterprise] trust_dir (provisor trust init)".into())
        })?;
        let key = Key::Signed(Sha256::digest(bytes).into(), name.to_string());
        let served = match self.cache.get(&key) {
            Some(s) => s,
            None => {
                let body = signed::sign(bytes, &signer, name, Digest::Sha1, (now_ms / 1000) as u32)
                    .map_err(|e| ProvisionError::Render(format!("signing {name}: {e}")))?;
                let s = std::sync::Arc::new(Served::bytes(body, "application/octet-stream"));
                self.cache.insert(key, s.clone());
                s
            }
        };
        out.form = Some(format!("signed by {}", signer.certificate.subject));
        Ok(Response::served(&served))
    }

    /// `<inner>.sgn`: the file `inner` would be, signed. On the enterprise HTTPS listener a config's `.sgn` is the
    /// unsigned file (the TLS certificate already vouches for it).
    pub(crate) async fn signed(
        &self,
        req: &Request,
        inner: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        let mut plain = req.clone();
        plain.path = inner.to_string();
        let response = Box::pin(self.serve(&plain, None, now_ms, out)).await?;
        if req.enterprise_tls && inner.to_ascii_lowercase().ends_with(".cnf.xml") {
            out.form = Some("unsigned on the enterprise HTTPS listener".into());
            return Ok(response);
        }
        let bytes = match &response.body {
            Body::Bytes(b) => b.clone(),
            Body::File(..) => self.content.read(&response.body).ok_or(ProvisionError::NotFound)?,
        };
        let name = format!("{}.sgn", inner.rsplit('/').next().unwrap_or(inner));
        self.sign_file(&bytes, &name, now_ms, out)
    }

    /// `SEP<MAC>.cnf.xml.enc.sgn`: only for an enterprise device with a phone certificate on record.
    pub(crate) async fn encrypted_config(
        &self,
        req: &Request,
        mac: &Mac,
        certificate: Option<Mac>,
        now_ms: i64,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        if certificate.as_ref().is_some_and(|c| c != mac) {
            return Err(ProvisionError::OtherDevice { certificate, asked: mac.clone(), path: req.path.clone() });
        }
        if certificate.as_ref() != Some(mac) {
            self.guard.name_mac(req.client.ip(), mac, now_ms).map_err(ProvisionError::Limited)?;
        }
        let device = match self.store.device(mac).await? {
            Some(d) if d.is_enterprise() => d,
            _ => return Err(ProvisionError::NoEnterprisePhone(mac.clone())),
        };
        out.device = Some(mac.clone());
        let phone = self.phone_certificate(mac).await?.ok_or_else(|| {
            ProvisionError::Unsignable(format!(
                "{mac} has no phone certificate to encrypt to (provisor device set --cert)"
            ))
        })?;
        let signer = self.file_signer().ok_or_else(|| {
            ProvisionError::Unsignable("no file signer: set [enterprise] trust_dir (provisor trust init)".into())
        })?;
        let key = Key::Encrypted(mac.clone());
        let served = match self.cache.get(&key) {
            Some(s) => s,
            None => {
                let full = self.render(&device, Variant::Sep, false).await?;
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(|e| ProvisionError::Render(format!("random: {e}")))?;
                let r = Randomness::from_bytes(random);
                let name = format!("SEP{}.cnf.xml.enc.sgn", mac.as_str().to_uppercase());
                let body =
                    encrypted::encrypt(&full.body, &signer, &phone, &name, Digest::Sha1, (now_ms / 1000) as u32, r)
                        .map_err(|e| ProvisionError::Render(format!("{mac}: {e}")))?;
                let s = std::sync::Arc::new(Served::bytes(body, "application/octet-stream"));
                self.cache.insert(key, s.clone());
                s
            }
        };
        out.form = Some(format!("encrypted to {}, signed by {}", phone.subject, signer.certificate.subject));
        Ok(Response::served(&served))
    }

    /// Keeps the verified client certificate of an enterprise device that has none on record: its config can then be
    /// encrypted to it (an RSA key only; the first one wins, `provisor device set --cert` replaces it).
    pub(crate) async fn enrol_phone_certificate(&self, req: &Request, mac: &Mac, certificate: Option<&Mac>) {
        if self.config.enterprise.is_none() || certificate != Some(mac) {
            return;
        }
        let Some(der) = &req.client_certificate else { return };
        if !Certificate::from_der(der).is_ok_and(|c| c.rsa_key().is_ok()) {
            return;
        }
        if matches!(self.store.phone_certificate(mac).await, Ok(None))
            && self.store.set_phone_certificate(mac, Some(der)).await.is_ok()
        {
            tracing::info!("{mac}: its verified client certificate is on record: its config goes encrypted to it");
            self.refresh().await;
        }
    }

    /// The phone certificate on record for `mac`.
    async fn phone_certificate(&self, mac: &Mac) -> Result<Option<Certificate>, ProvisionError> {
        match self.store.phone_certificate(mac).await? {
            Some(der) => Certificate::from_der(&der)
                .map(Some)
                .map_err(|e| ProvisionError::Inventory(format!("{mac}: phone certificate: {e}"))),
            None => Ok(None),
        }
    }

    /// What the plain `SEP<MAC>.cnf.xml` of `device` carries, by `[enterprise] plain_secrets`: the full file, the stub
    /// (once a phone certificate is on record), or the file without its passwords.
    pub(crate) async fn plain_enterprise_form(
        &self,
        full: Response,
        mac: &Mac,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        let Some(e) = &self.config.enterprise else { return Ok(full) };
        let Body::Bytes(bytes) = &full.body else { return Ok(full) };
        let certificate = self.phone_certificate(mac).await?;
        match (e.plain_secrets, certificate) {
            (PlainSecrets::Always, _) | (PlainSecrets::UntilCertificate, None) => {
                out.form = Some("plain, line passwords included (no phone certificate to encrypt to)".into());
                Ok(full)
            }
            (_, Some(phone)) => {
                let stub =
                    encrypted::stub(bytes, &phone).map_err(|err| ProvisionError::Render(format!("{mac}: {err}")))?;
                out.form = Some(format!("stub: the config is in SEP{}.cnf.xml.enc.sgn", mac.as_str().to_uppercase()));
                Ok(Response::served(&Served::bytes(stub, "text/xml; charset=utf-8")))
            }
            (PlainSecrets::Never, None) => {
                let text = String::from_utf8_lossy(bytes);
                let blanked = crate::provision::preview::mask_secrets_with(&text, &[], "");
                out.form = Some("without passwords (plain_secrets = \"never\")".into());
                Ok(Response::served(&Served::bytes(blanked.into_bytes(), "text/xml; charset=utf-8")))
            }
        }
    }

    /// A file enterprise phones ask for beside their config: the site's file, or "not found".
    pub(crate) fn static_file(&self, name: &str) -> Result<Response, ProvisionError> {
        self.firmware(name).map_err(|_| ProvisionError::NotFound)
    }
}
