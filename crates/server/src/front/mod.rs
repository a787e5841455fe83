//! The front ends: sockets only. Each turns what arrives into a [`crate::provision::Request`], hands it to the
//! provisioning core with the time, and sends the [`crate::provision::Response`] back.

pub mod admin;
pub mod api;
pub mod http;
pub mod syslog;
pub mod tftp;
pub mod tls;
pub mod ui;
