//! What a server sends a simulated phone never panics it: HTTP responses (head, chunked bodies) and authentication
//! challenges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_auth::answer;
use provisor_phone::drive::parse_response;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_response(data) {
        let _ = answer(&r.challenges, "user", "pass", "GET", "/x.xml", 1);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = answer(&[text.to_string()], "user", "pass", "GET", "/x.xml", 1);
    }
});
