//! TFTP for boot storms: RFC 1350 with options (RFC 2347), `blksize` (RFC 2348), `timeout` and `tsize` (RFC 2349)
//! and `windowsize` (RFC 7440), as sans-IO state machines fed datagrams and `now`: one sending half (`send`: the
//! server of a read, [`server::ReadTransfer`], and the client of an upload, [`client::WriteClient`]) and one
//! receiving half (`receive`: [`client::ReadClient`] and the server of an upload, [`upload::WriteTransfer`]). The
//! tokio shells — the service (`service`), the client (`fetch`) and their one socket loop — are behind the default
//! `tokio` feature; the protocol modules import no tokio.
//!
//! Behaviour follows tftpd-hpa where the RFCs leave room (`specs.md` §3): block numbers wrap to 0 after 65535 (or to
//! 1 when the client sends `rollover=1`), `blksize` above the limit is clamped, bad option values end the request
//! with ERROR 8, unknown options are ignored, duplicate ACKs never trigger a resend (no Sorcerer's Apprentice).

#![warn(missing_docs)]

pub mod client;
pub mod content;
#[cfg(feature = "tokio")]
pub mod fetch;
pub mod netascii;
pub mod packet;
mod receive;
mod send;
pub mod server;
#[cfg(feature = "tokio")]
pub mod service;
#[cfg(feature = "tokio")]
mod socket;
pub mod upload;

#[cfg(feature = "tokio")]
use std::time::Instant;

/// What the socket loops (`service`, `fetch`) need from a transfer state machine.
#[cfg(feature = "tokio")]
pub(crate) trait Machine {
    fn handle(&mut self, datagram: &[u8], now: Instant);
    fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn is_finished(&self) -> bool;
}

/// Implements [`Machine`] by the type's own methods of the same names.
#[cfg(feature = "tokio")]
macro_rules! machine {
    ($t:ty) => {
        impl $crate::Machine for $t {
            fn handle(&mut self, datagram: &[u8], now: std::time::Instant) {
                <$t>::handle(self, datagram, now)
            }
            fn poll_transmit(&mut self, now: std::time::Instant, out: &mut Vec<u8>) -> bool {
                <$t>::poll_transmit(self, now, out)
            }
            fn poll_timeout(&self) -> Option<std::time::Instant> {
                <$t>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: std::time::Instant) {
                <$t>::handle_timeout(self, now)
            }
            fn is_finished(&self) -> bool {
                <$t>::is_finished(self)
            }
        }
    };
}
#[cfg(feature = "tokio")]
pub(crate) use machine;
