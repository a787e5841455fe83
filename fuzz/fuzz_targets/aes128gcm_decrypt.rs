//! The RFC 8188 header and record decoder never panics on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = provisor_envelope::aes128gcm::decrypt(data, b"0123456789abcdef");
    let _ = provisor_envelope::aes128gcm::Header::parse(data);
});
