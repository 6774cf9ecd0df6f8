//! SIP signalling: message parsing ([`message`]), the sans-IO transaction layer
//! ([`transaction`]), dialogs ([`dialog`]), the scanner/flood [`guard`], [`digest`]
//! authentication, TCP stream [`framing`] and the socket driver ([`endpoint`]).
//!
//! **Architecture invariant:** this module knows nothing about IVR menus, RTP or tickets.
//! Its user (the transaction user, `call::`) sees requests and responses, nothing more.
//! Only [`endpoint`] does I/O or reads the clock; everything else takes `now` as input.

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod guard;
pub mod message;
pub mod stats;
pub mod transaction;
