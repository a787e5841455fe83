//! One module per route family (see [`crate::routing::Route`]); each looks up what its requests name and serves it.

pub mod encrypted;
pub mod enterprise;
pub mod firmware;
pub mod profile;
pub mod report;
pub mod trust_files;
