//! Issue 11: the edge and the hand-off against the running daemon, over real sockets.
//!
//! Each part is its own file so the SIP edge, the media edge and the ticket hand-off can be
//! read (and changed) apart: a peer that lies in Via/received/transport (`edge_sip`), a
//! stranger's RTP and re-offers (`edge_media`), a store or an intake that misbehaves
//! (`handoff`).

mod edge_media;
mod edge_sip;
pub(crate) mod handoff;
