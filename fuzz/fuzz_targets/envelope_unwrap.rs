//! Layer detection and removal (Salted__, gzip, -nosalt, aes128gcm), for profiles and for any plaintext, never panics
//! on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_envelope::{Keys, Limits, unwrap, unwrap_plaintext};

fuzz_target!(|data: &[u8]| {
    let keys = Keys { key: Some(b"key".to_vec()), ikm: None, ..Keys::default() };
    let limits = Limits { max_input: 1 << 20, max_output: 1 << 20 };
    let _ = unwrap(data, &keys, &limits);
    let _ = unwrap(data, &Keys::default(), &limits);
    let ikm = Keys { ikm: Some(b"0123456789abcdef".to_vec()), ..Keys::default() };
    let _ = unwrap(data, &ikm, &limits);
    // `profile decrypt`: any plaintext.
    let _ = unwrap_plaintext(data, &keys, &limits);
    let _ = unwrap_plaintext(data, &ikm, &limits);
});
