//! Process-level tests: the real binary on loopback, called by real SIP clients.
//!
//! Heavy peers (sipp, baresip) run when installed. When they are missing the test says so
//! and passes, unless `HOTLINE_REQUIRE_PEERS=1` (set by `.ci/run`), where a missing peer
//! is a failure: CI must never silently skip them.

mod asr;
mod audio;
mod baresip;
mod barge;
mod call_flow;
mod carrier;
mod console;
mod console_api;
mod desk_harness;
mod fleet;
mod fleet_desk;
mod fleet_lease;
mod flow;
mod hardening;
mod harness;
mod kamailio;
mod live_bench;
mod load;
mod ops;
mod postgres;
mod proxy_routing;
mod reference;
mod security;
mod sip_raw;
mod sipp;
mod spoken_menu;
#[path = "../tickets_common/mod.rs"]
mod tickets_common;
mod torture;
#[path = "../torture_common/mod.rs"]
mod torture_common;
mod transfer;
mod transfer_peers;
mod urgent;
