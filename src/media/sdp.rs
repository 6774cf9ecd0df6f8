//! SDP offer/answer (RFC 3264) with the `sdp` crate: PCMU/PCMA + telephone-event, ptime 20.
//!
//! OWNER: media-rtp helper. Contract below.

use super::Codec;
use std::net::SocketAddr;

/// What both ends agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// Payload type of telephone-event as the caller offered it, if it did.
    pub dtmf_pt: Option<u8>,
    /// Where the caller wants RTP (c= + m= port); may be replaced by symmetric RTP latching.
    pub remote_rtp: SocketAddr,
    /// Direction attribute of the offer (`sendrecv`, `sendonly`, `recvonly`, `inactive`).
    pub remote_direction: Direction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("no codec in common")]
    NoCommonCodec,
}

/// Answer an offer: pick the first codec of the caller's list that we accept.
/// Returns the negotiated parameters and the SDP answer text.
pub fn answer(
    offer: &str,
    accepted: &[Codec],
    local_rtp: SocketAddr,
    session_id: u64,
) -> Result<(Negotiated, String), SdpError> {
    let _ = (offer, accepted, local_rtp, session_id);
    todo!("media-rtp helper")
}

/// Build an offer (used by the test caller): the codecs in our order + telephone-event/8000 at `dtmf_pt`.
pub fn offer(codecs: &[Codec], dtmf_pt: u8, local_rtp: SocketAddr, session_id: u64) -> String {
    let _ = (codecs, dtmf_pt, local_rtp, session_id);
    todo!("media-rtp helper")
}

/// Read the answer to our offer (test caller side).
pub fn parse_answer(answer: &str) -> Result<Negotiated, SdpError> {
    let _ = answer;
    todo!("media-rtp helper")
}
