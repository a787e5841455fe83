//! HTTP authentication of profile requests, for profile rules that carry `--uid`/`--pwd` (specs.md §4.3: Basic or
//! Digest, the phone retries up to twice on 401). Digest is RFC 7616 with MD5 and `qop=auth`, the form phones and
//! curl speak. Nonces are a time stamp and an HMAC of it and expire after five minutes; a response must name the URI
//! of the request it comes with, and each nonce's `nc` must grow (a replayed response is refused), as RFC 7616
//! §3.4 and §5.10 ask of a server that wants replay protection.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

const REALM: &str = "provisor";
const NONCE_LIFETIME_S: u64 = 300;

/// The credentials a request must carry.
pub struct Credentials {
    user: String,
    password: String,
    nonce_key: [u8; 32],
    /// The highest `nc` accepted per nonce (0 for a response without `qop`, which may not be used again).
    used: Mutex<HashMap<String, (u64, u32)>>,
}

/// Nonces tracked at once; beyond this, expired ones are dropped, and if none has expired the oldest go.
const MAX_TRACKED_NONCES: usize = 100_000;

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Credentials {
    /// Requires `user`/`password`; nonces are signed with a fresh random key.
    pub fn new(user: &str, password: &str) -> Credentials {
        let mut nonce_key = [0u8; 32];
        // A failing RNG leaves the key zero, which only makes nonces forgeable, not credentials.
        let _ = getrandom::fill(&mut nonce_key);
        Credentials { user: user.into(), password: password.into(), nonce_key, used: Mutex::new(HashMap::new()) }
    }

    fn nonce_mac(&self, stamp: &str) -> String {
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.nonce_key).expect("HMAC takes any key");
        m.update(stamp.as_bytes());
        m.finalize().into_bytes().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The `WWW-Authenticate` values of a 401: Digest first (preferred), then Basic.
    pub fn challenges(&self, now_s: u64) -> [String; 2] {
        // The time stamp dates the nonce; the random part makes each one unique, so that two clients (or two
        // exchanges) in the same second never share a nonce and its `nc` sequence.
        let mut unique = [0u8; 8];
        let _ = getrandom::fill(&mut unique);
        let unique: String = unique.iter().map(|b| format!("{b:02x}")).collect();
        let stamp = format!("{now_s:x}.{unique}");
        let nonce = format!("{stamp}-{}", self.nonce_mac(&stamp));
        [
            format!("Digest realm=\"{REALM}\", qop=\"auth\", algorithm=MD5, nonce=\"{nonce}\""),
            format!("Basic realm=\"{REALM}\""),
        ]
    }

    /// Whether an `Authorization` header value proves the credentials for `method` on `target` (the request target
    /// as sent: path and query) at `now_s`. A Digest response is accepted once per `nc` value.
    pub fn verify(&self, header: &str, method: &str, target: &str, now_s: u64) -> bool {
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
        if user != self.user || realm != REALM || !same_target(uri, target) {
            return false;
        }
        let Some((stamp, mac)) = nonce.split_once('-') else { return false };
        let Ok(issued) = u64::from_str_radix(stamp.split('.').next().unwrap_or(stamp), 16) else { return false };
        if !constant_time_eq(mac.as_bytes(), self.nonce_mac(stamp).as_bytes())
            || now_s.saturating_sub(issued) > NONCE_LIFETIME_S
        {
            return false;
        }
        let ha1 = md5_hex(&format!("{}:{REALM}:{}", self.user, self.password));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let (expected, count) = match get("qop") {
            Some(qop) => {
                let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else { return false };
                let Ok(count) = u32::from_str_radix(nc, 16) else { return false };
                (md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")), count)
            }
            None => (md5_hex(&format!("{ha1}:{nonce}:{ha2}")), 0),
        };
        constant_time_eq(expected.as_bytes(), response.to_ascii_lowercase().as_bytes())
            && self.first_use(nonce, issued, count, now_s)
    }

    /// Records `count` for `nonce`; false if it (or a higher count) was already used.
    fn first_use(&self, nonce: &str, issued: u64, count: u32, now_s: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(_, last)) = used.get(nonce)
            && (count <= last)
        {
            return false;
        }
        if used.len() >= MAX_TRACKED_NONCES {
            used.retain(|_, (at, _)| now_s.saturating_sub(*at) <= NONCE_LIFETIME_S);
            if used.len() >= MAX_TRACKED_NONCES {
                // Every tracked nonce is live: drop the oldest half (their holders get a fresh challenge).
                let mut stamps: Vec<u64> = used.values().map(|(at, _)| *at).collect();
                stamps.sort_unstable();
                let cut = stamps[stamps.len() / 2];
                used.retain(|_, (at, _)| *at > cut);
            }
        }
        used.insert(nonce.to_string(), (issued, count));
        true
    }
}

/// Whether a Digest `uri` names the request target: the same string, or an absolute URI whose path and query are it.
fn same_target(uri: &str, target: &str) -> bool {
    if uri == target {
        return true;
    }
    let rest = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://"));
    let from_absolute = rest.map(|r| r.find('/').map_or("/", |i| &r[i..]));
    let target_path = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .map_or(target, |r| r.find('/').map_or("/", |i| &r[i..]));
    from_absolute.unwrap_or(uri) == target_path
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
        assert!(c.verify(&basic, "GET", "/a.xml", 0));
        assert!(!c.verify("Basic cGhvbmU6d3Jvbmc=", "GET", "/a.xml", 0));
        let challenge = &c.challenges(1000)[0];
        let nonce = challenge.split("nonce=\"").nth(1).unwrap().trim_end_matches('"');
        let ha1 = md5_hex("phone:provisor:s3cret");
        let ha2 = md5_hex("GET:/a.xml");
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
        let header = format!(
            "Digest username=\"phone\", realm=\"provisor\", nonce=\"{nonce}\", uri=\"/a.xml\", qop=auth, \
             nc=00000001, cnonce=\"abc\", response=\"{response}\""
        );
        assert!(!c.verify(&header, "GET", "/b.xml", 1010), "the response names another URI");
        assert!(!c.verify(&header, "GET", "/a.xml", 1000 + NONCE_LIFETIME_S + 1), "expired nonce");
        assert!(!c.verify(&header, "POST", "/a.xml", 1010), "wrong method");
        assert!(c.verify(&header, "GET", "/a.xml", 1010));
        assert!(!c.verify(&header, "GET", "/a.xml", 1011), "a replayed response (same nc) is refused");
        let next = md5_hex(&format!("{ha1}:{nonce}:00000002:abc:auth:{ha2}"));
        let second = header.replace("nc=00000001", "nc=00000002").replace(&response, &next);
        assert!(c.verify(&second, "GET", "/a.xml", 1012), "the next nc of the same nonce is fine");
        assert!(!c.verify(&second, "GET", "/a.xml", 1013));
        let forged = header.replace(nonce, &format!("{:x}.00-{}", 1000, "0".repeat(32)));
        assert_ne!(c.challenges(1000)[0], c.challenges(1000)[0], "every challenge has its own nonce");
        assert!(!c.verify(&forged, "GET", "/a.xml", 1010));
    }

    #[test]
    fn digest_uri_forms() {
        assert!(same_target("/a.xml?x=1", "/a.xml?x=1"));
        assert!(same_target("http://h:8080/a.xml", "/a.xml"));
        assert!(!same_target("/a.xml", "/b.xml"));
        assert!(!same_target("/a.xml", "/a.xml?x=1"));
    }
}
