//! The transaction user: what the gateway does with each SIP request ([`manager`]) and
//! the IVR that runs for each answered call ([`ivr`]), ending in a [`record::CallRecord`].
//!
//! **Architecture invariant:** `call` is the only module that knows both SIP and media; it
//! translates between them. The IVR itself sees media events and call signals, not SIP.

pub mod checks;
pub mod flow;
pub mod ivr;
pub mod manager;
pub mod prompts;
pub mod record;
mod sip_msg;
pub mod stats;
pub mod trunks;
