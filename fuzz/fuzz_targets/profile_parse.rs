//! The flat-profile parser never panics, and what it accepts survives a write and a re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_profile::{ParseOptions, Profile};

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions::default();
    if let Ok(profile) = Profile::parse(data, &options) {
        if let Ok(text) = profile.write(&options) {
            let back = Profile::parse_str(&text, &options).expect("written profile must parse");
            assert_eq!(back.parameters.len(), profile.parameters.len());
        }
    }
});
