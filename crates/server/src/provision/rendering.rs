//! Rendering a device's profile in one [`Variant`]: from the cache, or rendered with its parameters, checked the way
//! a phone parses it, and sealed ([`super::seal`]).

use std::sync::Arc;

use bytes::Bytes;
use provisor_envelope::openssl_enc::Digest as KdfDigest;
use sha2::{Digest as _, Sha256};

use super::cache::{Key, PathKey, Served, Variant};
use super::parameters::params_json;
use super::request::{Outcome, ProvisionError, Response};
use super::seal::{hex, seal};
use super::{Provisioner, Request};
use crate::inventory::{Device, Mac, Secrets, Store, inherited_parameters};
use crate::journal::Journal;
use crate::render::{self, Inherited, ServedParams, SplicedProfile, Templates};
use provisor_envelope::gzip;

/// A device's profile as rendered and checked, before it is sealed for a variant.
struct RenderedText {
    text: String,
    params: Option<Arc<ServedParams>>,
    /// Which runs are inherited lines, when the template was spliced (their compression is reused).
    layout: Option<render::Layout>,
}

impl<S: Store, J: Journal> Provisioner<S, J> {
    fn loaded_templates(&self) -> Result<Arc<Templates>, ProvisionError> {
        self.templates.read().unwrap_or_else(|p| p.into_inner()).clone().map_err(ProvisionError::Templates)
    }

    /// A device's rendering in `variant`, from the cache or made now. With `previous`, encrypted with the secrets
    /// a rotation replaced (never cached).
    pub(super) async fn rendered(
        &self,
        d: &Device,
        variant: Variant,
        previous: bool,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        self.rendering(d, variant, previous, out).await.map(|s| Response::served(&s))
    }

    /// Like [`Provisioner::rendered`], keeping the shared rendering.
    pub(super) async fn rendering(
        &self,
        d: &Device,
        variant: Variant,
        previous: bool,
        out: &mut Outcome,
    ) -> Result<Arc<Served>, ProvisionError> {
        let key = Key::Device(Some(d.mac.clone()), variant);
        if !previous && let Some(s) = self.cache.get(&key) {
            metrics::counter!("provisor_cache_hits_total").increment(1);
            out.served_params = s.params.clone();
            return Ok(s);
        }
        let s = Arc::new(self.render(d, variant, previous).await?);
        if !previous {
            self.cache.insert(key, s.clone());
        }
        out.served_params = s.params.clone();
        Ok(s)
    }

    pub(super) async fn render(&self, d: &Device, variant: Variant, previous: bool) -> Result<Served, ProvisionError> {
        let mut rendered = self.render_text(d, variant).await?;
        let plain = std::mem::take(&mut rendered.text).into_bytes();
        self.sealed(d, variant, previous, &rendered, plain)
    }

    /// The text of `d`'s profile for `variant`, rendered and checked, before it is sealed.
    async fn render_text(&self, d: &Device, variant: Variant) -> Result<RenderedText, ProvisionError> {
        metrics::counter!("provisor_renders_total", "kind" => variant.name()).increment(1);
        let templates = self.loaded_templates()?;
        let template = match variant {
            Variant::Sep => render::SEP,
            _ => self.config.templates.by_model.get(&d.model).map_or(render::MPP, String::as_str),
        };
        let spliced = match templates.splices(template) {
            true => self.spliced(&templates, d).await?,
            false => None,
        };
        Ok(match spliced {
            Some((profile, params)) => {
                RenderedText { text: profile.text, params: Some(Arc::new(params)), layout: Some(profile.layout) }
            }
            None => {
                let params = self.full_params(d).await?;
                let (text, profile) = templates
                    .render_checked(template, d, &params, &self.server_facts(Some(d)))
                    .map_err(|e| ProvisionError::Render(e.to_string()))?;
                let params = profile.as_ref().map(|p| Arc::new(ServedParams::Json(params_json(p))));
                RenderedText { text, params, layout: None }
            }
        })
    }

    /// `plain` (the bytes of `rendered`'s text) sealed for `variant`.
    fn sealed(
        &self,
        d: &Device,
        variant: Variant,
        previous: bool,
        rendered: &RenderedText,
        plain: Vec<u8>,
    ) -> Result<Served, ProvisionError> {
        let level = self.config.provisioning.gzip_level;
        // A spliced profile reuses the compression of what its group and model share.
        let gzip = |plain: &[u8]| match &rendered.layout {
            Some(layout) => layout.gzip(plain, level),
            None => gzip::compress_at(plain, level),
        };
        // The device's own digest if it is not the default, else the model's, else SHA-256.
        let by_model = self.config.provisioning.digest_by_model.get(&d.model);
        let digest_name = if d.secrets.aes_digest == "md5" || variant == Variant::CbcMd5 {
            "md5"
        } else {
            by_model.map_or("sha256", String::as_str)
        };
        let digest: KdfDigest = digest_name.parse().unwrap_or(KdfDigest::Sha256);
        let (body, content_encoding) = seal(plain, gzip, variant, &d.secrets, previous, digest)
            .map_err(|e| ProvisionError::Render(format!("{}: {e}", d.mac)))?;
        let content_type = if variant.is_sealed() { "application/octet-stream" } else { "text/xml; charset=utf-8" };
        Ok(Served {
            hash: hex(&Sha256::digest(&body)).into(),
            body: Bytes::from(body),
            device: Some(d.mac.clone()),
            content_type,
            content_encoding,
            params: rendered.params.clone(),
        })
    }

    /// `d`'s full profile (HTTPS), from the cache or rendered now. A fresh rendering is also sealed for the resync
    /// that follows it (`resync`: the variant the phone's `Profile_Rule` will fetch from its random path), from the
    /// same text: a phone fetches that path right after its full profile has set the rule, and this saves the
    /// second inventory read and rendering. Not for a device mid-rotation, whose old path still answers.
    pub(super) async fn full_and_resync(
        &self,
        d: &Device,
        resync: Variant,
        out: &mut Outcome,
    ) -> Result<Response, ProvisionError> {
        let key = Key::Device(Some(d.mac.clone()), Variant::Full);
        if let Some(s) = self.cache.get(&key) {
            metrics::counter!("provisor_cache_hits_total").increment(1);
            out.served_params = s.params.clone();
            return Ok(Response::served(&s));
        }
        let mut rendered = self.render_text(d, Variant::Full).await?;
        let token = d.secrets.path_token.as_str();
        if !token.is_empty() && d.secrets.previous.is_none() && self.cache.get(&PathKey(token, resync)).is_none() {
            metrics::counter!("provisor_renders_total", "kind" => resync.name()).increment(1);
            let s = Arc::new(self.sealed(d, resync, false, &rendered, rendered.text.clone().into_bytes())?);
            self.cache.insert(Key::Device(Some(d.mac.clone()), resync), s.clone());
            self.cache.insert(Key::Path(token.to_string(), resync), s);
        }
        let plain = std::mem::take(&mut rendered.text).into_bytes();
        let s = Arc::new(self.sealed(d, Variant::Full, false, &rendered, plain)?);
        self.cache.insert(key, s.clone());
        out.served_params = s.params.clone();
        Ok(Response::served(&s))
    }

    /// The built-in MPP template for `d`, from what its group and model inherit (rendered and checked once per
    /// revision) and its own lines; `None` if a check fails (the template engine then names the place).
    async fn spliced(
        &self,
        templates: &Templates,
        d: &Device,
    ) -> Result<Option<(SplicedProfile, ServedParams)>, ProvisionError> {
        let inherited = match self.cache.inherited(d.group.as_deref(), &d.model) {
            Some(i) => i,
            None => {
                let revision = self.cache.revision();
                let params = inherited_parameters(&self.store, d.group.as_deref(), &d.model).await?;
                let i = Arc::new(Inherited::new(&params));
                self.cache.keep_inherited(d.group.as_deref(), &d.model, revision, i.clone());
                i
            }
        };
        let mut own = d.params.clone();
        self.add_server_params(d, &mut own, |name| inherited.contains(name));
        Ok(templates.splice(d, &inherited, &own))
    }

    /// A device-independent file (bootstrap profile, `XMLDefault.cnf.xml`), cached.
    pub(super) async fn generic(&self, variant: Variant) -> Result<Response, ProvisionError> {
        let key = Key::Device(None, variant);
        if let Some(s) = self.cache.get(&key) {
            metrics::counter!("provisor_cache_hits_total").increment(1);
            return Ok(Response::served(&s));
        }
        metrics::counter!("provisor_renders_total", "kind" => variant.name()).increment(1);
        let device = Device::blank(Mac::placeholder(), Secrets::none());
        let (template, params) = match variant {
            // The call-control servers of the site: the `defaults` group.
            Variant::XmlDefault => {
                (render::XMLDEFAULT, self.store.group("defaults").await?.map(|g| g.params).unwrap_or_default())
            }
            _ => (render::BOOTSTRAP, self.bootstrap_params()),
        };
        let (text, _) = self
            .loaded_templates()?
            .render_checked(template, &device, &params, &self.server_facts(None))
            .map_err(|e| ProvisionError::Render(e.to_string()))?;
        let s = Arc::new(Served {
            hash: hex(&Sha256::digest(text.as_bytes())).into(),
            body: Bytes::from(text),
            device: None,
            content_type: "text/xml; charset=utf-8",
            content_encoding: None,
            params: None,
        });
        self.cache.insert(key, s.clone());
        Ok(Response::served(&s))
    }

    /// The bootstrap profile, unless it would carry HTTP credentials over TFTP.
    pub(super) async fn bootstrap(&self, req: &Request) -> Result<Response, ProvisionError> {
        self.credentials_over_tftp(req)?;
        self.generic(Variant::Bootstrap).await
    }
}
