//! The flat-profile parser never panics, what it accepts survives a write and a re-parse, and its fast path for
//! plain profiles never answers differently from the XML reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_profile::{ParseOptions, Profile};

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions::default();
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(fast) = Profile::parse_plain(text, &options)
    {
        assert_eq!(Ok(fast), Profile::parse_xml(text, &options), "the fast path disagrees on {text:?}");
    }
    if let Ok(profile) = Profile::parse(data, &options)
        && let Ok(text) = profile.write(&options)
    {
        let back = Profile::parse_str(&text, &options).expect("written profile must parse");
        assert_eq!(back.parameters.len(), profile.parameters.len());
    }
});
