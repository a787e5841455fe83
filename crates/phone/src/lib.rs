//! A Cisco MPP phone on the wire: its provisioning behaviour as a sans-IO state machine ([`phone::Phone`]) and a
//! network driver ([`drive`]) that runs it against real servers.

#![warn(missing_docs)]

pub mod drive;
pub mod load;
pub mod phone;
pub mod sip;
