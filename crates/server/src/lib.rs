//! The provisioning server: inventory, rendering, phone identity, per-device encryption, and the HTTP, HTTPS, TFTP
//! and syslog front ends around one sans-IO-style core ([`provision::Provisioner`]).

#![warn(missing_docs)]

pub mod config;
pub mod content;
pub mod dhcp;
pub mod front;
pub mod identity;
pub mod inventory;
pub mod journal;
pub mod log_line;
pub mod metrics;
pub mod provision;
pub mod render;
pub mod routing;
pub mod serve;
