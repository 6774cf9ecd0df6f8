//! SDP offer/answer (RFC 3264) with the `sdp` crate: PCMU/PCMA + telephone-event, ptime 20.
//!
//! The `sdp` crate parses and prints the structure; attributes stay strings, so the few we
//! need (`rtpmap`, direction, `ptime`, `fmtp`) are read and written by the helpers below.
//!
//! Limits, on purpose: only the static payload types 0 (PCMU) and 8 (PCMA) are accepted for
//! audio, because the session sends with `Codec::payload_type()`; a caller that maps G.711
//! to a dynamic payload type is answered with another common codec or `NoCommonCodec`.
//! Secure profiles (`RTP/SAVP`, `UDP/TLS/RTP/SAVPF`) are declined, as we do not do SRTP.
//!
//! OWNER: media-rtp helper. Contract below.

use super::Codec;
use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaName, RangedPort};
use sdp::description::session::{Origin, TimeDescription, Timing};
use sdp::{MediaDescription, SessionDescription};
use std::net::{IpAddr, SocketAddr};

/// What both ends agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// Payload type of telephone-event as the caller offered it, if it did.
    pub dtmf_pt: Option<u8>,
    /// Where the caller wants RTP (c= + m= port); may be replaced by symmetric RTP latching.
    pub remote_rtp: SocketAddr,
    /// Direction attribute of the offer (`sendrecv`, `sendonly`, `recvonly`, `inactive`).
    /// An old-style hold (`c=0.0.0.0`, RFC 2543) is folded in: the caller does not want to
    /// receive, so `sendrecv` reads as `SendOnly` and `recvonly` as `Inactive`.
    pub remote_direction: Direction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
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
///
/// The answer has one m-line per offered m-line (RFC 3264 §6): the first usable audio
/// stream is accepted, every other stream is declined with port 0. Its direction mirrors
/// the offer's (`sendonly` → `recvonly`, `inactive` → `inactive`, hold with `c=0.0.0.0`
/// → `recvonly`). telephone-event is answered at the caller's payload type (the 8 kHz one).
pub fn answer(
    offer: &str,
    accepted: &[Codec],
    local_rtp: SocketAddr,
    session_id: u64,
) -> Result<(Negotiated, String), SdpError> {
    let (negotiated, sd) = answer_description(offer, accepted, local_rtp, session_id)?;
    Ok((negotiated, sd.marshal()))
}

/// [`answer`] before printing, so that [`LocalSdp`] can set the version.
fn answer_description(
    offer: &str,
    accepted: &[Codec],
    local_rtp: SocketAddr,
    session_id: u64,
) -> Result<(Negotiated, SessionDescription), SdpError> {
    let sd = parse(offer)?;
    let mut saw_audio = false;
    let mut chosen: Option<(usize, Negotiated)> = None;
    for (i, md) in sd.media_descriptions.iter().enumerate() {
        if md.media_name.media != "audio" || md.media_name.port.value == 0 {
            continue;
        }
        saw_audio = true;
        if !is_plain_rtp(&md.media_name) {
            continue;
        }
        let Some(codec) = pick_codec(md, accepted) else {
            continue;
        };
        let remote_ip = connection_ip(&sd, md)?;
        let remote_rtp = SocketAddr::new(remote_ip, media_port(md)?);
        let remote_direction = fold_hold(direction(&sd, md), remote_ip);
        let dtmf_pt = telephone_event_pt(md);
        chosen = Some((
            i,
            Negotiated {
                codec,
                dtmf_pt,
                remote_rtp,
                remote_direction,
            },
        ));
        break;
    }
    let Some((index, negotiated)) = chosen else {
        return Err(if saw_audio {
            SdpError::NoCommonCodec
        } else {
            SdpError::NoAudio
        });
    };

    let mut out = session_skeleton(local_rtp.ip(), session_id);
    for (i, md) in sd.media_descriptions.iter().enumerate() {
        if i == index {
            let mut ours = audio_media(
                &[negotiated.codec],
                negotiated.dtmf_pt,
                local_rtp.port(),
                mirror(negotiated.remote_direction),
            );
            ours.media_name.protos = md.media_name.protos.clone();
            out.media_descriptions.push(ours);
        } else {
            out.media_descriptions.push(MediaDescription {
                media_name: MediaName {
                    media: md.media_name.media.clone(),
                    port: RangedPort {
                        value: 0,
                        range: None,
                    },
                    protos: md.media_name.protos.clone(),
                    formats: md.media_name.formats.clone(),
                },
                ..Default::default()
            });
        }
    }
    Ok((negotiated, out))
}

/// An old-style hold (`c=0.0.0.0`, RFC 2543) folded into the direction: the peer does not
/// want to receive, so `sendrecv` reads as `SendOnly` and `recvonly` as `Inactive`.
fn fold_hold(d: Direction, ip: IpAddr) -> Direction {
    if !ip.is_unspecified() {
        return d;
    }
    match d {
        Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
        Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
    }
}

/// Build an offer (used by the test caller): the codecs in our order + telephone-event/8000 at `dtmf_pt`.
pub fn offer(codecs: &[Codec], dtmf_pt: u8, local_rtp: SocketAddr, session_id: u64) -> String {
    offer_description(codecs, dtmf_pt, local_rtp, session_id, Direction::SendRecv).marshal()
}

fn offer_description(
    codecs: &[Codec],
    dtmf_pt: u8,
    local_rtp: SocketAddr,
    session_id: u64,
    dir: Direction,
) -> SessionDescription {
    let mut sd = session_skeleton(local_rtp.ip(), session_id);
    sd.media_descriptions
        .push(audio_media(codecs, Some(dtmf_pt), local_rtp.port(), dir));
    sd
}

/// Read the answer to our offer (the test caller's INVITE, the gateway's offer in a 2xx to a
/// re-INVITE without SDP). A `c=0.0.0.0` hold is folded into the direction as in [`answer`].
pub fn parse_answer(answer: &str) -> Result<Negotiated, SdpError> {
    let sd = parse(answer)?;
    let mut saw_audio = false;
    for md in &sd.media_descriptions {
        if md.media_name.media != "audio" {
            continue;
        }
        saw_audio = true;
        if md.media_name.port.value == 0 {
            continue; // our stream was declined
        }
        let all = [Codec::Pcmu, Codec::Pcma];
        let Some(codec) = pick_codec(md, &all) else {
            continue;
        };
        let remote_ip = connection_ip(&sd, md)?;
        return Ok(Negotiated {
            codec,
            dtmf_pt: telephone_event_pt(md),
            remote_rtp: SocketAddr::new(remote_ip, media_port(md)?),
            remote_direction: fold_hold(direction(&sd, md), remote_ip),
        });
    }
    Err(if saw_audio {
        SdpError::NoCommonCodec
    } else {
        SdpError::NoAudio
    })
}

impl Direction {
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(key: &str) -> Option<Direction> {
        match key {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// The direction an answer takes towards an offer of direction `d` (RFC 3264 §6.1).
pub fn mirror(d: Direction) -> Direction {
    match d {
        Direction::SendRecv => Direction::SendRecv,
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    }
}

fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut reader = std::io::Cursor::new(text.as_bytes());
    SessionDescription::unmarshal(&mut reader).map_err(|e| SdpError::Malformed(e.to_string()))
}

/// `RTP/AVP` or `RTP/AVPF` (we ignore feedback): what a plain RTP session can serve.
fn is_plain_rtp(name: &MediaName) -> bool {
    let p: Vec<&str> = name.protos.iter().map(String::as_str).collect();
    matches!(p.as_slice(), ["RTP", "AVP"] | ["RTP", "AVPF"])
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]` → (name, rate).
fn rtpmap(md: &MediaDescription, pt: u8) -> Option<(&str, u32)> {
    md.attributes
        .iter()
        .filter(|a| a.key == "rtpmap")
        .filter_map(|a| a.value.as_deref())
        .find_map(|v| {
            let (p, enc) = v.trim().split_once(char::is_whitespace)?;
            if p.parse::<u8>().ok()? != pt {
                return None;
            }
            let mut parts = enc.trim().split('/');
            let name = parts.next()?;
            let rate = parts.next()?.parse().ok()?;
            Some((name, rate))
        })
}

fn payload_types(md: &MediaDescription) -> impl Iterator<Item = u8> + '_ {
    md.media_name.formats.iter().filter_map(|f| f.parse().ok())
}

/// First format in the offerer's order that is G.711 at a static PT and in `accepted`.
fn pick_codec(md: &MediaDescription, accepted: &[Codec]) -> Option<Codec> {
    payload_types(md).find_map(|pt| {
        let codec = match rtpmap(md, pt) {
            Some((name, 8000)) => Codec::from_name(name)?,
            Some(_) => return None,
            None => [Codec::Pcmu, Codec::Pcma]
                .into_iter()
                .find(|c| c.payload_type() == pt)?,
        };
        (codec.payload_type() == pt && accepted.contains(&codec)).then_some(codec)
    })
}

fn telephone_event_pt(md: &MediaDescription) -> Option<u8> {
    payload_types(md).find(|&pt| {
        matches!(rtpmap(md, pt), Some((name, 8000)) if name.eq_ignore_ascii_case("telephone-event"))
    })
}

fn direction(sd: &SessionDescription, md: &MediaDescription) -> Direction {
    let find = |attrs: &[Attribute]| {
        attrs
            .iter()
            .find_map(|a| Direction::from_attribute(a.key.as_str()))
    };
    find(&md.attributes)
        .or_else(|| find(&sd.attributes))
        .unwrap_or(Direction::SendRecv)
}

fn connection_ip(sd: &SessionDescription, md: &MediaDescription) -> Result<IpAddr, SdpError> {
    let c = md
        .connection_information
        .as_ref()
        .or(sd.connection_information.as_ref())
        .ok_or_else(|| SdpError::Malformed("no c= line for the audio stream".into()))?;
    let addr = c
        .address
        .as_ref()
        .ok_or_else(|| SdpError::Malformed("c= line without address".into()))?;
    // multicast TTL / range suffixes (`224.2.1.1/127`) are not ours to serve
    let host = addr.address.split('/').next().unwrap_or_default();
    host.parse()
        .map_err(|_| SdpError::Malformed(format!("c= address {host:?} is not an IP address")))
}

fn media_port(md: &MediaDescription) -> Result<u16, SdpError> {
    u16::try_from(md.media_name.port.value)
        .map_err(|_| SdpError::Malformed(format!("bad port {}", md.media_name.port.value)))
}

fn address_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn session_skeleton(ip: IpAddr, session_id: u64) -> SessionDescription {
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "hotline".into(),
            session_id,
            session_version: session_id,
            network_type: "IN".into(),
            address_type: address_type(ip).into(),
            unicast_address: ip.to_string(),
        },
        session_name: "hotline-gateway".into(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: address_type(ip).into(),
            address: Some(Address {
                address: ip.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: vec![],
        }],
        ..Default::default()
    }
}

fn attr(key: &str, value: Option<String>) -> Attribute {
    Attribute::new(key.to_string(), value)
}

fn audio_media(
    codecs: &[Codec],
    dtmf_pt: Option<u8>,
    port: u16,
    dir: Direction,
) -> MediaDescription {
    let mut formats: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    let mut attributes: Vec<Attribute> = codecs
        .iter()
        .map(|c| {
            attr(
                "rtpmap",
                Some(format!("{} {}/8000", c.payload_type(), c.encoding_name())),
            )
        })
        .collect();
    if let Some(pt) = dtmf_pt {
        formats.push(pt.to_string());
        attributes.push(attr("rtpmap", Some(format!("{pt} telephone-event/8000"))));
        // The events we act on (digits, *, #, A-D): what callers offer (0-15 or 0-16) covers it.
        attributes.push(attr("fmtp", Some(format!("{pt} 0-15"))));
    }
    attributes.push(attr("ptime", Some("20".into())));
    attributes.push(attr(dir.attribute(), None));
    MediaDescription {
        media_name: MediaName {
            media: "audio".into(),
            port: RangedPort {
                value: port as isize,
                range: None,
            },
            protos: vec!["RTP".into(), "AVP".into()],
            formats,
        },
        attributes,
        ..Default::default()
    }
}

mod local;
pub use local::{AckAnswer, LocalSdp};

#[cfg(test)]
mod tests;
