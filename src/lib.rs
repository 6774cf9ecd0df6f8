//! hotline-gateway: the voice front door of a unified citizen-service hotline.
//!
//! A call travels `sip` (transport, transactions, dialogs) → `call` (the IVR flow) →
//! `media` (RTP, codecs, DTMF, end-pointing, recording). See `ARCHITECTURE.md` for the map
//! and the walls between modules.

pub mod admin;
pub mod asr;
pub mod call;
pub mod caller;
pub mod cli;
pub mod config;
pub mod console;
pub mod gateway;
pub mod logmask;
pub mod media;
pub mod sip;
pub mod ticket;
