//! Lint (dictionary lookups, data-type validators, suggestions) never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisor_profile::{ParseOptions, lint};

fuzz_target!(|data: &[u8]| {
    let _ = lint::lint(data, &ParseOptions::default());
});
