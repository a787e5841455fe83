//! HTTP authentication in both roles, without I/O: Basic (RFC 7617) and Digest (RFC 7616 with MD5, with or without
//! `qop=auth`), the forms phones, curl and SIP proxies speak (specs.md §4.3: a phone answers a 401 for a rule's
//! `--uid`/`--pwd`, at most twice).
//!
//! - The server role, [`Verifier`]: issues challenges and checks answers. Nonces carry their time and a random part
//!   under an HMAC; they expire after [`NONCE_LIFETIME_S`], an answer must name the request's URI, and each nonce's
//!   `nc` must grow, so a captured `Authorization` header cannot be replayed (RFC 7616 §3.4 and §5.10).
//! - The client role, [`answer`]: the `Authorization` value for a phone's challenge.
//! - [`check_digest`]: whether an answer matches one nonce the caller issued (a simulated phone challenging a SIP
//!   NOTIFY).
//!
//! Time comes in as `now_s` (Unix seconds); the only outside input is the operating system's random numbers for
//! nonces and the nonce key.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use hmac::{KeyInit, Mac as _};
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// How long a nonce stays valid, in seconds.
pub const NONCE_LIFETIME_S: u64 = 300;

/// Nonces tracked at once; beyond this, expired ones are dropped, and if none has expired the older half goes.
const MAX_TRACKED_NONCES: usize = 100_000;

/// MD5 of `s`, lower-case hex (Digest's `H`).
pub fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `name=value` and `name="value"` pairs of a challenge or an answer, comma separated; names in lower case.
pub fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            let v = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
            v
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = rest[..end].trim().to_string();
            rest = &rest[end..];
            v
        };
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((name, value));
    }
    out
}

/// The scheme (`basic`, `digest`, ... in lower case) and the rest of an `Authorization` or `WWW-Authenticate`
/// value.
fn scheme(value: &str) -> (String, &str) {
    let v = value.trim();
    let (s, rest) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
    (s.to_ascii_lowercase(), rest)
}

/// A Digest answer's fields.
struct DigestAnswer {
    fields: Vec<(String, String)>,
}

impl DigestAnswer {
    fn parse(authorization: &str) -> Option<DigestAnswer> {
        let (s, rest) = scheme(authorization);
        (s == "digest").then(|| DigestAnswer { fields: params(rest) })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The `response` these fields call for with `password` and `method`, or `None` when a field is missing or the
    /// algorithm or `qop` is not one this crate speaks.
    fn expected(&self, password: &str, method: &str) -> Option<String> {
        let (user, realm, nonce, uri) =
            (self.get("username")?, self.get("realm")?, self.get("nonce")?, self.get("uri")?);
        if self.get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("md5")) {
            return None;
        }
        let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        match self.get("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (nc, cnonce) = (self.get("nc")?, self.get("cnonce")?);
                Some(md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")))
            }
            Some(_) => None,
            None => Some(md5_hex(&format!("{ha1}:{nonce}:{ha2}"))),
        }
    }

    /// Whether `response` is the one expected, compared in constant time.
    fn proves(&self, password: &str, method: &str) -> bool {
        match (self.expected(password, method), self.get("response")) {
            (Some(e), Some(r)) => constant_time_eq(e.as_bytes(), r.to_ascii_lowercase().as_bytes()),
            _ => false,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `authorization` (`Digest username=..., response=...`) answers the challenge with `nonce` for `method`
/// with `user`/`password` (MD5, with or without `qop=auth`).
pub fn check_digest(authorization: &str, user: &str, password: &str, method: &str, nonce: &str) -> bool {
    let Some(a) = DigestAnswer::parse(authorization) else { return false };
    a.get("username") == Some(user) && a.get("nonce") == Some(nonce) && a.proves(password, method)
}

/// The `Authorization` value answering `challenges` (`WWW-Authenticate` values; Digest preferred over Basic) for
/// `method` on `uri`, or `None` if none is understood. `cnonce` makes the client nonce (a counter will do).
pub fn answer(
    challenges: &[String],
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: u64,
) -> Option<String> {
    let digest = challenges.iter().map(|c| scheme(c)).find(|(s, _)| s == "digest");
    if let Some((_, rest)) = digest {
        let p = params(rest);
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let realm = get("realm").unwrap_or("");
        let nonce = get("nonce")?;
        let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let cnonce = format!("{cnonce:016x}");
        let auth_qop = get("qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth"));
        let (response, qop_part) = if auth_qop {
            let r = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
            (r, format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""))
        } else {
            (md5_hex(&format!("{ha1}:{nonce}:{ha2}")), String::new())
        };
        let opaque = get("opaque").map(|o| format!(", opaque=\"{o}\"")).unwrap_or_default();
        return Some(format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5, \
             response=\"{response}\"{qop_part}{opaque}"
        ));
    }
    challenges
        .iter()
        .any(|c| scheme(c).0 == "basic")
        .then(|| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
}

/// The server role: the credentials a request must carry, the challenges that ask for them, and replay tracking.
pub struct Verifier {
    user: String,
    password: String,
    realm: String,
    nonce_key: [u8; 32],
    /// The highest `nc` accepted per nonce (0 for an answer without `qop`, which may not be used again).
    used: Mutex<HashMap<String, (u64, u32)>>,
}

impl Verifier {
    /// Requires `user`/`password` in `realm`; nonces are signed with a fresh random key.
    pub fn new(user: &str, password: &str, realm: &str) -> Verifier {
        let mut nonce_key = [0u8; 32];
        // A failing RNG leaves the key zero, which only makes nonces forgeable, not the credentials.
        let _ = getrandom::fill(&mut nonce_key);
        Verifier {
            user: user.into(),
            password: password.into(),
            realm: realm.into(),
            nonce_key,
            used: Mutex::new(HashMap::new()),
        }
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
            format!("Digest realm=\"{}\", qop=\"auth\", algorithm=MD5, nonce=\"{nonce}\"", self.realm),
            format!("Basic realm=\"{}\"", self.realm),
        ]
    }

    /// Whether an `Authorization` value proves the credentials for `method` on `target` (the request target as sent:
    /// path and query) at `now_s`. A Digest answer is accepted once per `nc` value.
    pub fn verify(&self, authorization: &str, method: &str, target: &str, now_s: u64) -> bool {
        let (s, rest) = scheme(authorization);
        if s == "basic" {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else { return false };
            return constant_time_eq(&decoded, format!("{}:{}", self.user, self.password).as_bytes());
        }
        let Some(a) = DigestAnswer::parse(authorization) else { return false };
        let (Some(user), Some(realm), Some(nonce), Some(uri)) =
            (a.get("username"), a.get("realm"), a.get("nonce"), a.get("uri"))
        else {
            return false;
        };
        if user != self.user || realm != self.realm || !same_target(uri, target) {
            return false;
        }
        let Some((stamp, mac)) = nonce.split_once('-') else { return false };
        let Ok(issued) = u64::from_str_radix(stamp.split('.').next().unwrap_or(stamp), 16) else { return false };
        if !constant_time_eq(mac.as_bytes(), self.nonce_mac(stamp).as_bytes())
            || now_s.saturating_sub(issued) > NONCE_LIFETIME_S
        {
            return false;
        }
        let count = match a.get("nc") {
            Some(nc) => match u32::from_str_radix(nc, 16) {
                Ok(n) => n,
                Err(_) => return false,
            },
            None => 0,
        };
        a.proves(&self.password, method) && self.first_use(nonce, issued, count, now_s)
    }

    /// Records `count` for `nonce`; false if it (or a higher count) was already used.
    fn first_use(&self, nonce: &str, issued: u64, count: u32, now_s: u64) -> bool {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.get(nonce).is_some_and(|&(_, last)| count <= last) {
            return false;
        }
        if used.len() >= MAX_TRACKED_NONCES {
            used.retain(|_, (at, _)| now_s.saturating_sub(*at) <= NONCE_LIFETIME_S);
            if used.len() >= MAX_TRACKED_NONCES {
                // Every tracked nonce is live: drop the older half (their holders get a fresh challenge).
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
    let path = |u: &str| -> String {
        match u.strip_prefix("http://").or_else(|| u.strip_prefix("https://")) {
            Some(r) => r.find('/').map_or("/".to_string(), |i| r[i..].to_string()),
            None => u.to_string(),
        }
    };
    uri == target || path(uri) == path(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's example, answered and checked.
    #[test]
    fn the_rfc_example_both_ways() {
        let c = vec![
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#.to_string(),
        ];
        let a = answer(&c, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", 0x0a4f113b).unwrap();
        assert!(a.contains("nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"") && a.contains("qop=auth"), "{a}");
        assert!(check_digest(&a, "Mufasa", "Circle Of Life", "GET", "dcd98b7102dd2f0e8b11d0f600bfb0c093"));
        assert!(!check_digest(&a, "Mufasa", "wrong", "GET", "dcd98b7102dd2f0e8b11d0f600bfb0c093"));
        assert!(!check_digest(&a, "Mufasa", "Circle Of Life", "GET", "another-nonce"));
        let b = answer(&["Basic realm=\"x\"".to_string()], "Aladdin", "open sesame", "GET", "/", 1).unwrap();
        assert_eq!(b, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(answer(&["Bearer".to_string()], "a", "b", "GET", "/", 1), None);
    }

    /// The server role against the client role: Basic, Digest, URI binding, expiry, replay, forgery.
    #[test]
    fn verifier_and_answer_agree_and_replays_are_refused() {
        let v = Verifier::new("phone", "s3cret", "provisor");
        assert!(v.verify("Basic cGhvbmU6czNjcmV0", "GET", "/a.xml", 0));
        assert!(!v.verify("Basic cGhvbmU6d3Jvbmc=", "GET", "/a.xml", 0));
        let challenges = v.challenges(1000);
        assert_ne!(challenges, v.challenges(1000), "every challenge has its own nonce");
        let header = answer(&challenges, "phone", "s3cret", "GET", "/a.xml", 7).unwrap();
        assert!(!v.verify(&header, "GET", "/b.xml", 1010), "the answer names another URI");
        assert!(!v.verify(&header, "GET", "/a.xml", 1000 + NONCE_LIFETIME_S + 1), "expired nonce");
        assert!(!v.verify(&header, "POST", "/a.xml", 1010), "wrong method");
        assert!(v.verify(&header, "GET", "/a.xml", 1010));
        assert!(!v.verify(&header, "GET", "/a.xml", 1011), "a replayed answer (same nc) is refused");
        let nonce = header.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
        let ha1 = md5_hex("phone:provisor:s3cret");
        let ha2 = md5_hex("GET:/a.xml");
        let cnonce = header.split("cnonce=\"").nth(1).unwrap().split('"').next().unwrap();
        let next = md5_hex(&format!("{ha1}:{nonce}:00000002:{cnonce}:auth:{ha2}"));
        let old = header.split("response=\"").nth(1).unwrap().split('"').next().unwrap();
        let second = header.replace("nc=00000001", "nc=00000002").replace(old, &next);
        assert!(v.verify(&second, "GET", "/a.xml", 1012), "the next nc of the same nonce is fine");
        let forged = header.replace(nonce, &format!("{:x}.00-{}", 1000, "0".repeat(32)));
        assert!(!v.verify(&forged, "GET", "/a.xml", 1010));
        assert!(!v.verify(&answer(&challenges, "phone", "wrong", "GET", "/a.xml", 8).unwrap(), "GET", "/a.xml", 1010));
    }

    #[test]
    fn digest_uri_forms() {
        assert!(same_target("/a.xml?x=1", "/a.xml?x=1"));
        assert!(same_target("http://h:8080/a.xml", "/a.xml"));
        assert!(!same_target("/a.xml", "/b.xml"));
        assert!(!same_target("/a.xml", "/a.xml?x=1"));
    }
}
