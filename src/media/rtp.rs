//! RTP packet parsing and building (RFC 3550) on top of `rtp-rs`.
//!
//! OWNER: media-rtp helper.
