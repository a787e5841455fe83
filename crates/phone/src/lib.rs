//! A Cisco phone on the wire: an MPP phone's provisioning behaviour as a sans-IO state machine ([`phone::Phone`]), an
//! enterprise phone's boot beside it ([`enterprise::EnterprisePhone`]), and a network driver ([`drive`]) that runs them
//! against real servers.

#![warn(missing_docs)]

pub mod drive;
pub mod enterprise;
pub mod load;
pub mod phone;
pub mod sip;
