//! What the server would send a device, without a request: `provisor device render` goes through the same rendering,
//! parameters and checks as [`Provisioner::handle`] (the secure flow's `Profile_Rule`, key and random path, the
//! `Report_Rule` and `Upgrade_Rule` the server adds), and nothing is recorded or cached.

use super::Provisioner;
use super::cache::Variant;
use super::request::ProvisionError;
use crate::inventory::{Mac, Store};
use crate::journal::Journal;

/// Which file of a device to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendition {
    /// The device's own file: an MPP phone's full profile, an enterprise phone's `SEP<MAC>.cnf.xml`.
    Own,
    /// The bootstrap profile a client that has not proved it is the device gets (the same for every device).
    Bootstrap,
    /// `XMLDefault.cnf.xml` (the same for every device).
    XmlDefault,
}

/// A rendered file and how the server serves it.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The text, before any gzip or encryption.
    pub text: String,
    /// Where and how it is served, in words.
    pub served_as: String,
    /// The names of the elements in it whose values are secrets (keys, the random path, passwords).
    pub secret_names: Vec<String>,
}

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// `mac`'s file in `rendition`, exactly as [`Provisioner::handle`] renders it.
    pub async fn preview(&self, mac: &Mac, rendition: Rendition) -> Result<Preview, ProvisionError> {
        let device = self.store.device(mac).await?.ok_or_else(|| ProvisionError::UnknownDevice(mac.clone()))?;
        let pv = &self.config.provisioning;
        let (variant, served_as) = match rendition {
            Rendition::Own if device.is_enterprise() => (
                Variant::Sep,
                format!("SEP{}.cnf.xml over TFTP and HTTP, in clear text", device.mac.as_str().to_uppercase()),
            ),
            Rendition::Own => {
                let sealed = match pv.encryption {
                    crate::config::ProfileEncryption::Aes128gcm => "gzip + RFC 8188 aes128gcm with its IKM",
                    _ => "gzip + AES-256-CBC with its key",
                };
                (
                    Variant::Full,
                    format!(
                        "its profile over HTTPS to its verified certificate; resyncs fetch the same text as {sealed} \
                         at /profile/<its random path>/profile.cfg"
                    ),
                )
            }
            Rendition::Bootstrap => {
                (Variant::Bootstrap, "the bootstrap profile, to any client that has not proved its identity".into())
            }
            Rendition::XmlDefault => (Variant::XmlDefault, "XMLDefault.cnf.xml, to any client".into()),
        };
        let text = match variant {
            Variant::Full | Variant::Sep => {
                let served = self.render(&device, variant, false).await?;
                String::from_utf8_lossy(&served.body).into_owned()
            }
            _ => {
                let response = self.generic(variant).await?;
                match response.body {
                    super::Body::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                    super::Body::File(..) => String::new(),
                }
            }
        };
        let mut secret_names =
            vec![format!("GPP_{}", pv.key_gpp), format!("GPP_{}", pv.path_gpp), "IKM_HTTP_Encrypt_Content".to_string()];
        secret_names.extend(self.full_params(&device).await?.into_keys().filter(|n| is_password(n)));
        Ok(Preview { text, served_as, secret_names })
    }
}

/// Whether a parameter or element name holds a password: a name ending in `Password` or `Password_N_`
/// (`Password_1_`, `Admin_Password`, `User_Password`, `authPassword`), or the HTTP password of a rule.
pub fn is_password(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.trim_end_matches('_').trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('_');
    base.ends_with("password") || base.ends_with("passwd")
}

/// `text` with the contents of the elements named in `names` (and of every password element) replaced by
/// `********`, and the `--pwd` and literal `--key` values of rules too.
pub fn mask_secrets(text: &str, names: &[String]) -> String {
    mask_secrets_with(text, names, "********")
}

/// [`mask_secrets`] with another mask (`""` leaves the secrets out).
pub fn mask_secrets_with(text: &str, names: &[String], mask: &str) -> String {
    let secret = |n: &str| is_password(n) || names.iter().any(|s| s == n);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..=close];
        out.push_str(tag);
        rest = &rest[close + 1..];
        let name: String = tag[1..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-').collect();
        if name.is_empty() || tag.ends_with("/>") {
            continue;
        }
        let content_end = rest.find('<').unwrap_or(rest.len());
        let content = &rest[..content_end];
        let closing = format!("</{name}>");
        if rest[content_end..].starts_with(&closing) && !content.is_empty() {
            out.push_str(&if secret(&name) { mask.to_string() } else { mask_rule_options(content, mask) });
            rest = &rest[content_end..];
        }
    }
    out.push_str(rest);
    out
}

/// A rule's `--pwd X` and literal `--key X` (not a `$` macro) with their values masked.
fn mask_rule_options(content: &str, mask: &str) -> String {
    if !content.contains("--pwd") && !content.contains("--key") {
        return content.to_string();
    }
    let mut words: Vec<String> = Vec::new();
    let mut mask_next = false;
    for word in content.split(' ') {
        // A `$` macro names a variable, not a secret.
        if mask_next && !word.is_empty() && !word.starts_with('$') {
            let kept: String = word.chars().rev().take_while(|c| *c == ']').collect();
            words.push(format!("{mask}{kept}"));
            mask_next = false;
            continue;
        }
        mask_next = word.ends_with("--pwd") || word.ends_with("--key");
        words.push(word.to_string());
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_keys_and_rule_credentials_are_masked() {
        let text = "<flat-profile><Password_1_ ua=\"na\">s3cret</Password_1_><User_ID_1_>201</User_ID_1_>\
                    <GPP_SA>k</GPP_SA><Admin_Password/><Profile_Rule>[--uid u --pwd hunter2 --key $SA]https://h/p\
                    </Profile_Rule><authPassword>x&amp;y</authPassword></flat-profile>";
        let masked = mask_secrets(text, &["GPP_SA".into()]);
        for secret in ["s3cret", ">k<", "hunter2", "x&amp;y"] {
            assert!(!masked.contains(secret), "{secret}: {masked}");
        }
        assert!(masked.contains("<User_ID_1_>201</User_ID_1_>") && masked.contains("--key $SA]"), "{masked}");
        assert!(is_password("Password_12_") && is_password("User_Password") && !is_password("Password_Policy"));
    }
}
