//! Answering an HTTP authentication challenge with a rule's `--uid`/`--pwd` (specs.md §4.3: Basic or Digest), and
//! checking the Digest answer to the phone's own challenge of a SIP NOTIFY ([`crate::sip`]).

use base64::Engine;
use md5::{Digest, Md5};

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `name=value` pairs of a challenge.
fn params(s: &str) -> Vec<(String, String)> {
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
        rest = rest.trim_start().trim_start_matches(',');
        out.push((name, value));
    }
    out
}

/// Whether `authorization` (`Digest username=..., response=...`) answers the challenge with `nonce` for `method`
/// with `user`/`password` (RFC 2617, MD5, with or without `qop=auth`).
pub fn verify(authorization: &str, user: &str, password: &str, method: &str, nonce: &str) -> bool {
    let Some(rest) = authorization
        .trim_start()
        .strip_prefix("Digest ")
        .or_else(|| authorization.trim_start().strip_prefix("digest "))
    else {
        return false;
    };
    let p = params(rest);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(u), Some(realm), Some(n), Some(uri), Some(response)) =
        (get("username"), get("realm"), get("nonce"), get("uri"), get("response"))
    else {
        return false;
    };
    if u != user || n != nonce || get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("md5")) {
        return false;
    }
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let expected = match (get("qop"), get("nc"), get("cnonce")) {
        (Some("auth"), Some(nc), Some(cnonce)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        (None, _, _) => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
        _ => return false,
    };
    expected.eq_ignore_ascii_case(response)
}

/// The `Authorization` value answering `challenges` (Digest preferred over Basic), or `None` if none is understood.
pub fn answer(
    challenges: &[String],
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: u64,
) -> Option<String> {
    let digest = challenges.iter().find(|c| c.trim_start().to_ascii_lowercase().starts_with("digest "));
    if let Some(c) = digest {
        let p = params(&c.trim_start()[7..]);
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
        .any(|c| c.trim_start().to_ascii_lowercase().starts_with("basic"))
        .then(|| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_basic() {
        // RFC 2617 §3.5 example.
        let c = vec![
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#.to_string(),
        ];
        let a = answer(&c, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", 0x0a4f113b).unwrap();
        assert!(a.contains("nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"") && a.contains("qop=auth"), "{a}");
        let b = answer(&["Basic realm=\"x\"".to_string()], "Aladdin", "open sesame", "GET", "/", 1).unwrap();
        assert_eq!(b, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(answer(&["Bearer".to_string()], "a", "b", "GET", "/", 1), None);
    }
}
