//! Certificates and keys from PEM (what `provisor trust` options take): any bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_trust::{Certificate, Signer, certificate};

fuzz_target!(|data: &[u8]| {
    let _ = Certificate::from_pem(data);
    let _ = Certificate::from_der(data);
    let _ = certificate::private_key(data);
    let _ = Signer::from_pem(data);
});
