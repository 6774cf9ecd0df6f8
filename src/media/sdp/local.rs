//! Our side of one call's SDP over its whole life: the `o=` version, the offer/answer in
//! progress, and what was last agreed.
//!
//! RFC 3264 §8: every SDP we send in a session carries the same `o=` session id and a version
//! that goes up by exactly one when the description changes, and stays put when it does not
//! (a session refresh answered with the same SDP). Peers that see a new version with the old
//! content, or changed content under the old version, may ignore the change or drop the call,
//! so the version is derived from the printed text rather than counted per message.
//!
//! RFC 3261 §14.2: a re-INVITE without SDP asks *us* to offer; the offer goes in the 2xx and
//! the answer comes in the ACK ([`LocalSdp::offer`], [`LocalSdp::on_ack`]).

use super::{
    answer_description, offer_description, parse_answer, Codec, Direction, Negotiated, SdpError,
};
use sdp::SessionDescription;
use std::net::SocketAddr;

/// Payload type we offer telephone-event at when nothing was agreed on yet.
const DEFAULT_DTMF_PT: u8 = 101;

/// What the ACK to a 2xx meant for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckAnswer {
    /// No offer of ours was waiting (the ACK to a 2xx that carried our answer).
    NotExpected,
    /// The answer to our offer: the media follows it.
    Answer(Negotiated),
    /// Our offer got no answer (an ACK without body). RFC 3261 leaves no way to refuse an
    /// ACK; the session goes on as it was before the re-INVITE.
    Missing,
    /// The answer is unusable (malformed, or a codec we did not offer); the session goes on
    /// as it was.
    Unusable(SdpError),
}

/// The SDP state of one call (see the module docs). Pure: no I/O, no clock.
#[derive(Clone, Debug)]
pub struct LocalSdp {
    session_id: u64,
    version: u64,
    local_rtp: SocketAddr,
    /// The last SDP we sent, as printed: a new one that prints the same keeps the version.
    last: Option<String>,
    /// What the last completed offer/answer agreed on.
    current: Option<Negotiated>,
    /// The codecs of the offer we sent in a 2xx, while its answer is awaited in the ACK.
    pending_offer: Option<Vec<Codec>>,
}

impl LocalSdp {
    /// A new session: `session_id` is also the first version (as `answer()` prints it).
    pub fn new(session_id: u64, local_rtp: SocketAddr) -> Self {
        LocalSdp {
            session_id,
            version: session_id,
            local_rtp,
            last: None,
            current: None,
            pending_offer: None,
        }
    }

    /// The `o=` version of the last SDP we sent.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// What the last completed offer/answer agreed on.
    pub fn current(&self) -> Option<&Negotiated> {
        self.current.as_ref()
    }

    /// Answer an offer (INVITE, re-INVITE, UPDATE), as [`super::answer`] does, with the
    /// version of this session. An offer that fails changes nothing.
    pub fn answer(
        &mut self,
        offer: &str,
        accepted: &[Codec],
    ) -> Result<(Negotiated, String), SdpError> {
        let (negotiated, sd) =
            answer_description(offer, accepted, self.local_rtp, self.session_id)?;
        self.pending_offer = None;
        self.current = Some(negotiated.clone());
        Ok((negotiated, self.stamp(sd)))
    }

    /// Our offer for the 2xx to a re-INVITE without SDP: every accepted codec with the one
    /// in use first, telephone-event at the payload type in use, `sendrecv` (we never hold;
    /// a caller still holding answers `sendonly` or `inactive`). Its answer is expected in
    /// the ACK ([`on_ack`](Self::on_ack)).
    pub fn offer(&mut self, accepted: &[Codec]) -> String {
        let mut codecs: Vec<Codec> = Vec::with_capacity(accepted.len());
        if let Some(c) = self.current.as_ref().map(|n| n.codec) {
            if accepted.contains(&c) {
                codecs.push(c);
            }
        }
        for &c in accepted {
            if !codecs.contains(&c) {
                codecs.push(c);
            }
        }
        let dtmf_pt = self
            .current
            .as_ref()
            .and_then(|n| n.dtmf_pt)
            .unwrap_or(DEFAULT_DTMF_PT);
        let sd = offer_description(
            &codecs,
            dtmf_pt,
            self.local_rtp,
            self.session_id,
            Direction::SendRecv,
        );
        self.pending_offer = Some(codecs);
        self.stamp(sd)
    }

    /// An ACK to one of our 2xx arrived with `body` (`None`: no SDP).
    pub fn on_ack(&mut self, body: Option<&str>) -> AckAnswer {
        let Some(offered) = self.pending_offer.take() else {
            return AckAnswer::NotExpected;
        };
        let Some(body) = body else {
            return AckAnswer::Missing;
        };
        match parse_answer(body) {
            Ok(n) if offered.contains(&n.codec) => {
                self.current = Some(n.clone());
                AckAnswer::Answer(n)
            }
            Ok(_) => AckAnswer::Unusable(SdpError::NoCommonCodec),
            Err(e) => AckAnswer::Unusable(e),
        }
    }

    /// Print `sd` with the version it is owed: the last one when it prints the same as the
    /// last SDP sent, the next one otherwise.
    fn stamp(&mut self, mut sd: SessionDescription) -> String {
        sd.origin.session_version = self.version;
        let mut text = sd.marshal();
        match &self.last {
            Some(last) if *last == text => return text,
            Some(_) => {
                self.version += 1;
                sd.origin.session_version = self.version;
                text = sd.marshal();
            }
            None => {}
        }
        self.last = Some(text.clone());
        text
    }
}
