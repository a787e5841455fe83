//! Secrets at rest: a key file's text and a stored (sealed) value, as read back from a database someone may have
//! tampered with, never panic; only what the key sealed for that place opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_server::inventory::at_rest::{AtRest, SiteKey};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = SiteKey::parse(&text);
    let key = SiteKey::from_bytes([7; 32]);
    let _ = key.open("device:001122334455:aes_key", &text);
    let at_rest = AtRest::sealed(SiteKey::from_bytes([7; 32]));
    let _ = at_rest.open_param("device:001122334455", "Password_1_", &text);
    if let Ok(sealed) = key.seal("device:001122334455:ikm", &text) {
        assert_eq!(key.open("device:001122334455:ikm", &sealed).ok().as_deref(), Some(&*text));
        assert!(key.open("device:001122334456:ikm", &sealed).is_err());
    }
});
