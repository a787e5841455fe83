//! What a network client controls in a provisioning request never panics the server: the file name (normalising,
//! routing, patterns), the User-Agent, a syslog line, an `Authorization` header (with the request target it must name), audit lines shown with masked paths, and
//! configuration text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_auth::Verifier;
use provisor_server::config::{Config, DEFAULT_PATTERNS};
use provisor_server::identity::{certificate_claims, parse_user_agent};
use provisor_server::routing::{Pattern, Router, normalise};
use provisor_server::front::syslog::find_mac;

fuzz_target!(|data: &[u8]| {
    let _ = certificate_claims(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let patterns: Vec<String> = DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect();
    let router = Router::new(&patterns).expect("default patterns parse");
    if let Some(path) = normalise(text) {
        assert!(path.starts_with('/') && !path.split('/').any(|s| s == ".."));
        let _ = router.route(&path);
    }
    if let Ok(p) = Pattern::parse(text) {
        let _ = p.matches("/CP-8841-3PCC/000e08aabbcc.cfg");
        let _ = p.matches(text);
    }
    let _ = parse_user_agent(text);
    let _ = find_mac(text);
    let c = Verifier::new("phone", "pw", "provisor");
    let _ = c.verify(text, "GET", "/a.xml", 0);
    let _ = c.verify(text, "GET", text, 0);
    let masked = provisor_server::journal::mask_path_tokens(text);
    assert_eq!(masked, provisor_server::journal::mask_path_tokens(&masked), "masking is idempotent");
    let _ = Config::parse(text, "fuzz.toml");
});

