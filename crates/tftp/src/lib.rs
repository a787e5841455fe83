//! TFTP for boot storms: RFC 1350 with options (RFC 2347), `blksize` (RFC 2348), `timeout` and `tsize` (RFC 2349)
//! and `windowsize` (RFC 7440), as sans-IO state machines fed datagrams and `now` ([`server::ReadTransfer`],
//! [`client::ReadClient`]), with thin tokio shells around them ([`service`], [`fetch`]).
//!
//! Behaviour follows tftpd-hpa where the RFCs leave room (`specs.md` §3): block numbers wrap to 0 after 65535 (or to
//! 1 when the client sends `rollover=1`), `blksize` above the limit is clamped, bad option values end the request
//! with ERROR 8, unknown options are ignored, duplicate ACKs never trigger a resend (no Sorcerer's Apprentice).

pub mod client;
pub mod content;
pub mod fetch;
pub mod netascii;
pub mod packet;
mod receive;
pub mod server;
pub mod service;
pub mod upload;
