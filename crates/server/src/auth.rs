//! HTTP authentication of profile requests, for profile rules that carry `--uid`/`--pwd` (specs.md §4.3: Basic or
//! Digest, the phone retries up to twice on 401). Digest is RFC 7616 with MD5 and `qop=auth`, the form phones and
//! curl speak; nonces are stateless (a time stamp and an HMAC of it) and expire after five minutes.

use base64::Engine;
use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

const REALM: &str = "provisor";
const NONCE_LIFETIME_S: u64 = 300;

/// The credentials a request must carry.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: String,
    nonce_key: [u8; 32],
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Credentials {
    /// Requires `user`/`password`; nonces are signed with a fresh random key.
    pub fn new(user: &str, password: &str) -> Credentials {
        let mut nonce_key = [0u8; 32];
        // A failing RNG leaves the key zero, which only makes nonces forgeable, not credentials.
        let _ = getrandom::fill(&mut nonce_key);
        Credentials { user: user.into(), password: password.into(), nonce_key }
    }

    fn nonce_mac(&self, stamp: &str) -> String {
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.nonce_key).expect("HMAC takes any key");
        m.update(stamp.as_bytes());
        m.finalize().into_bytes().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The `WWW-Authenticate` values of a 401: Digest first (preferred), then Basic.
    pub fn challenges(&self, now_s: u64) -> [String; 2] {
        let stamp = format!("{now_s:x}");
        let nonce = format!("{stamp}-{}", self.nonce_mac(&stamp));
        [
            format!("Digest realm=\"{REALM}\", qop=\"auth\", algorithm=MD5, nonce=\"{nonce}\""),
            format!("Basic realm=\"{REALM}\""),
        ]
    }

    /// Whether an `Authorization` header value proves the credentials for `method` at `now_s`.
    pub fn verify(&self, header: &str, method: &str, now_s: u64) -> bool {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else { return false };
            let expected = format!("{}:{}", self.user, self.password);
            return constant_time_eq(&decoded, expected.as_bytes());
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return false;
        }
        let params = digest_params(rest);
        let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) =
            (get("username"), get("realm"), get("nonce"), get("uri"), get("response"))
        else {
            return false;
        };
        if user != self.user || realm != REALM {
            return false;
        }
        let Some((stamp, mac)) = nonce.split_once('-') else { return false };
        let Ok(issued) = u64::from_str_radix(stamp, 16) else { return false };
        if !constant_time_eq(mac.as_bytes(), self.nonce_mac(stamp).as_bytes())
            || now_s.saturating_sub(issued) > NONCE_LIFETIME_S
        {
            return false;
        }
        let ha1 = md5_hex(&format!("{}:{REALM}:{}", self.user, self.password));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let expected = match get("qop") {
            Some(qop) => {
                let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else { return false };
                md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
            }
            None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
        };
        constant_time_eq(expected.as_bytes(), response.to_ascii_lowercase().as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `name=value` or `name="value"` pairs, comma separated.
fn digest_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_digest() {
        let c = Credentials::new("phone", "s3cret");
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("phone:s3cret"));
        assert!(c.verify(&basic, "GET", 0));
        assert!(!c.verify("Basic cGhvbmU6d3Jvbmc=", "GET", 0));
        let challenge = &c.challenges(1000)[0];
        let nonce = challenge.split("nonce=\"").nth(1).unwrap().trim_end_matches('"');
        let ha1 = md5_hex("phone:provisor:s3cret");
        let ha2 = md5_hex("GET:/a.xml");
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
        let header = format!(
            "Digest username=\"phone\", realm=\"provisor\", nonce=\"{nonce}\", uri=\"/a.xml\", qop=auth, \
             nc=00000001, cnonce=\"abc\", response=\"{response}\""
        );
        assert!(c.verify(&header, "GET", 1010));
        assert!(!c.verify(&header, "GET", 1000 + NONCE_LIFETIME_S + 1), "expired nonce");
        assert!(!c.verify(&header, "POST", 1010), "wrong method");
        let forged = header.replace(nonce, &format!("{:x}-{}", 1000, "0".repeat(32)));
        assert!(!c.verify(&forged, "GET", 1010));
    }
}
