//! The operator's leg of a bridged transfer: INVITE (with digest credentials when
//! challenged), ringback to the caller, CANCEL on ring timeout or when the caller leaves,
//! the bridge of the two media sessions on answer, and BYE either way.

use super::context::Context;
use super::{LegEvent, LegServices, Outcome};
use crate::call::ivr::CallSignal;
use crate::caller::invite::{build_invite, challenge, with_authorization};
use crate::media::prompt::{Prompt, SharedPrompt};
use crate::media::sdp;
use crate::media::session::conversation::{ConversationRecorder, Recorded};
use crate::media::session::{bridge, MediaEvent, MediaSession};
use crate::sip::dialog::{uri_socket_addr, Dialog};
use crate::sip::message;
use chrono::{DateTime, Utc};
use rsip::headers::UntypedHeader;
use rsip::prelude::HeadersExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What ended the caller's side while the transfer ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerEnd {
    Bye,
    RtpTimeout,
    MaxDuration,
    AckTimeout,
    Shutdown,
}

/// The result of a bridged transfer.
#[derive(Debug)]
pub struct Bridged {
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub talk: Option<Duration>,
    /// `Some` when the caller's side ended (the call is over); `None` when the operator
    /// hung up after talking, or the transfer failed and the flow goes on.
    pub caller_end: Option<CallerEnd>,
    /// The conversation's stereo recording (`record_bridged`), when answered and written.
    pub conversation: Option<Recorded>,
}

/// The caller's side of the call, lent to the leg while it runs.
pub struct CallerSide<'a> {
    pub media: &'a mut MediaSession,
    pub signals: &'a mut mpsc::UnboundedReceiver<CallSignal>,
    pub deadline: Instant,
    /// "正在为您转接", played before the ringback.
    pub connecting: Vec<SharedPrompt>,
    pub caller: String,
    /// Where to write the conversation (caller left, operator right) once answered;
    /// `None`: not recorded.
    pub record_to: Option<std::path::PathBuf>,
}

/// How long to wait for the final answer after our CANCEL.
const AFTER_CANCEL: Duration = Duration::from_secs(4);

/// Call `target`, and bridge the caller to it when it answers.
pub async fn bridge_call(
    svc: &LegServices,
    target: &str,
    cx: &Context,
    mut side: CallerSide<'_>,
) -> Bridged {
    let started_at = Utc::now();
    let mut result = Bridged {
        outcome: Outcome::Failed,
        started_at,
        answered_at: None,
        talk: None,
        caller_end: None,
        conversation: None,
    };
    let Ok(uri) = rsip::Uri::try_from(target) else {
        tracing::warn!(%target, "transfer target is not a SIP URI");
        return result;
    };
    let Some(dest) = resolve(&uri).await else {
        tracing::warn!(%target, "cannot resolve the transfer target");
        return result;
    };
    let socket = match svc.ports.bind().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "no RTP port for the transfer leg");
            return result;
        }
    };
    let mut leg_media = MediaSession::spawn(socket, svc.session.clone());
    let local_rtp = SocketAddr::new(svc.advertised_ip, leg_media.local_addr().port());
    let offer = sdp::offer(&svc.codecs, 101, local_rtp, rand::random::<u32>() as u64);
    let local_sip = SocketAddr::new(svc.advertised_ip, svc.endpoint.local_addr().port());
    let call_id = format!("{}@hotline-transfer", uuid::Uuid::new_v4().simple());
    let t = &svc.config;
    let caller_user: String = side
        .caller
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+-_.".contains(*c))
        .take(32)
        .collect();
    let from_user = if t.caller_id == "from" && !caller_user.is_empty() {
        caller_user.as_str()
    } else {
        "hotline"
    };
    let mut invite = build_invite(&uri, from_user, local_sip, &call_id, &offer);
    if t.caller_id == "pai" && !caller_user.is_empty() {
        invite.headers.push(rsip::Header::Other(
            "P-Asserted-Identity".into(),
            format!("<sip:{caller_user}@{}>", svc.advertised_ip),
        ));
    }
    for (name, value) in cx.headers() {
        invite.headers.push(rsip::Header::Other(name.into(), value));
    }
    let (tx, mut events) = mpsc::unbounded_channel();
    (svc.register)(call_id.clone(), Some(tx));
    let _forget = Forget(svc.register.clone(), call_id.clone());
    tracing::info!(%target, %call_id, "transfer: calling the operator");
    let Some(mut invite_key) = svc.endpoint.send_request(invite.clone(), dest).await else {
        let _ = leg_media.close().await;
        return result;
    };

    // Connecting prompt, then ringback (450 Hz, 1 s on, 4 s off: China's) until answered.
    let ring: Vec<SharedPrompt> = vec![
        Arc::new(Prompt::tone("ringback", 450.0, 1000, 0.25)),
        Arc::new(Prompt::from_pcm("ringback_gap", vec![0; 32000])),
    ];
    let mut queued = side.connecting.clone();
    queued.extend(ring.iter().cloned());
    side.media.play(queued, false);

    let mut cseq = 1u32;
    let mut authed = false;
    let ring_deadline = Instant::now() + Duration::from_secs(t.ring_timeout_secs);
    // Set once we CANCELled: the outcome to report, and how long to wait for the 487.
    let mut cancelled: Option<(Outcome, Instant)> = None;
    let mut dialog = loop {
        let wake = match cancelled {
            Some((_, until)) => until,
            None => ring_deadline.min(side.deadline),
        };
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LegEvent::Response(k, resp)) if k == invite_key => {
                    let code = resp.status_code.code();
                    if code < 200 {
                        continue;
                    }
                    if (code == 401 || code == 407) && !authed && !t.username.is_empty() {
                        if let Some(ch) = challenge(&resp) {
                            authed = true;
                            cseq += 1;
                            let header = crate::sip::digest::authorization(
                                &ch, &t.username, &t.password, "INVITE", &uri.to_string(), 1,
                                &uuid::Uuid::new_v4().simple().to_string(),
                            );
                            invite = with_authorization(&invite, cseq, code, header);
                            match svc.endpoint.send_request(invite.clone(), dest).await {
                                Some(k) => { invite_key = k; continue; }
                                None => break None,
                            }
                        }
                    }
                    if code >= 300 {
                        result.outcome = match cancelled {
                            Some((o, _)) => o,
                            None => Outcome::of_status(code),
                        };
                        tracing::info!(code, outcome = result.outcome.as_str(), "transfer: the operator did not answer");
                        break None;
                    }
                    match Dialog::uac(&invite, &resp) {
                        Ok(d) => {
                            let (ack, hop) = d.ack_for_2xx(cseq, &svc.advertised_ip.to_string(), local_sip.port(), rsip::Transport::Udp);
                            svc.endpoint.send(ack, uri_socket_addr(&hop).unwrap_or(dest));
                            if cancelled.is_some() {
                                // Answered across our CANCEL: nobody to talk to any more.
                                let mut d = d;
                                bye(svc, &mut d, dest, local_sip);
                                result.outcome = cancelled.map_or(Outcome::Abandoned, |c| c.0);
                                break None;
                            }
                            match sdp::parse_answer(&String::from_utf8_lossy(&resp.body)) {
                                Ok(n) => leg_media.start(n.remote_rtp, n.codec, n.dtmf_pt),
                                Err(e) => tracing::warn!(error = %e, "transfer: bad SDP answer"),
                            }
                            break Some(d);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "transfer: cannot build the dialog");
                            break None;
                        }
                    }
                }
                Some(LegEvent::Timeout(k)) if k == invite_key => {
                    result.outcome = cancelled.map_or(Outcome::NoAnswer, |c| c.0);
                    break None;
                }
                Some(LegEvent::Request(k, req)) => {
                    svc.endpoint.respond(k, message::response(&req, 481, "Call/Transaction Does Not Exist", None));
                }
                Some(_) => {}
                None => break None,
            },
            sig = side.signals.recv(), if result.caller_end.is_none() => {
                let end = match sig {
                    Some(CallSignal::CallerHangup) => CallerEnd::Bye,
                    Some(CallSignal::AckTimeout) => CallerEnd::AckTimeout,
                    None | Some(CallSignal::Shutdown) => CallerEnd::Shutdown,
                    Some(CallSignal::MediaUpdate(n)) => {
                        side.media.start(n.remote_rtp, n.codec, n.dtmf_pt);
                        continue;
                    }
                    Some(CallSignal::Digit(_) | CallSignal::ReferAnswer(_) | CallSignal::Notify { .. }) => continue,
                };
                result.caller_end = Some(end);
                if cancelled.is_none() {
                    cancel(svc, &invite, dest);
                    cancelled = Some((Outcome::Abandoned, Instant::now() + AFTER_CANCEL));
                }
            },
            ev = side.media.next_event(), if result.caller_end.is_none() => match ev {
                None | Some(MediaEvent::RtpTimeout) => {
                    result.caller_end = Some(CallerEnd::RtpTimeout);
                    if cancelled.is_none() {
                        cancel(svc, &invite, dest);
                        cancelled = Some((Outcome::Abandoned, Instant::now() + AFTER_CANCEL));
                    }
                }
                Some(MediaEvent::PlaybackDone { interrupted: false }) => side.media.play(ring.clone(), false),
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(wake) => {
                if let Some((o, _)) = cancelled {
                    result.outcome = o;
                    break None;
                }
                let now = Instant::now();
                let o = if now >= side.deadline {
                    result.caller_end = Some(CallerEnd::MaxDuration);
                    Outcome::Abandoned
                } else {
                    tracing::info!(secs = t.ring_timeout_secs, "transfer: no answer; cancelling");
                    Outcome::NoAnswer
                };
                cancel(svc, &invite, dest);
                cancelled = Some((o, now + AFTER_CANCEL));
            }
        }
    };
    side.media.stop_playback();
    let Some(dialog) = dialog.as_mut() else {
        let _ = leg_media.close().await;
        return result;
    };

    // Answered: join the media and wait for either side to end.
    let answered = Instant::now();
    result.outcome = Outcome::Answered;
    result.answered_at = Some(Utc::now());
    tracing::info!("transfer: operator answered; bridging");
    let (caller_end, operator_end) = bridge::pair();
    let (caller_end, operator_end, recorder) = match side.record_to.take() {
        // Each session records what it plays: the caller's session plays the operator
        // (right), the operator's leg plays the caller (left).
        Some(path) => {
            let (recorder, left, right) = ConversationRecorder::start(path);
            (
                caller_end.recorded(right),
                operator_end.recorded(left),
                Some(recorder),
            )
        }
        None => (caller_end, operator_end, None),
    };
    side.media.bridge(Some(caller_end));
    leg_media.bridge(Some(operator_end));
    let mut operator_gone = false;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LegEvent::Request(k, req)) => {
                    let bye = req.method == rsip::Method::Bye;
                    let code = if req.method == rsip::Method::Invite { 488 } else { 200 };
                    svc.endpoint.respond(k, message::response(&req, code, message::reason_phrase(code), None));
                    if bye {
                        tracing::info!("transfer: the operator hung up");
                        operator_gone = true;
                        break;
                    }
                }
                Some(LegEvent::Response(_, resp)) if resp.status_code.code() / 100 == 2 && resp.cseq_header().is_ok_and(|c| c.value().ends_with("INVITE")) => {
                    // A retransmitted 2xx: our ACK was lost.
                    let (ack, hop) = dialog.ack_for_2xx(cseq, &svc.advertised_ip.to_string(), local_sip.port(), rsip::Transport::Udp);
                    svc.endpoint.send(ack, uri_socket_addr(&hop).unwrap_or(dest));
                }
                Some(_) => {}
                None => break,
            },
            sig = side.signals.recv() => match sig {
                Some(CallSignal::CallerHangup) => { result.caller_end = Some(CallerEnd::Bye); break; }
                Some(CallSignal::AckTimeout) => { result.caller_end = Some(CallerEnd::AckTimeout); break; }
                None | Some(CallSignal::Shutdown) => { result.caller_end = Some(CallerEnd::Shutdown); break; }
                Some(CallSignal::MediaUpdate(n)) => side.media.start(n.remote_rtp, n.codec, n.dtmf_pt),
                Some(_) => {}
            },
            ev = side.media.next_event() => if let None | Some(MediaEvent::RtpTimeout) = ev {
                result.caller_end = Some(CallerEnd::RtpTimeout);
                break;
            },
            ev = leg_media.next_event() => if let None | Some(MediaEvent::RtpTimeout) = ev {
                tracing::info!("transfer: no RTP from the operator; ending the bridge");
                break;
            },
            _ = tokio::time::sleep_until(side.deadline) => {
                result.caller_end = Some(CallerEnd::MaxDuration);
                break;
            }
        }
    }
    result.talk = Some(answered.elapsed());
    side.media.bridge(None);
    leg_media.bridge(None);
    if !operator_gone {
        bye(svc, dialog, dest, local_sip);
    }
    let _ = leg_media.close().await;
    if let Some(recorder) = recorder {
        result.conversation = recorder.finish().await;
    }
    result
}

/// Forgets the leg's Call-ID with the manager however the leg ends.
struct Forget(super::Register, String);

impl Drop for Forget {
    fn drop(&mut self) {
        (self.0)(std::mem::take(&mut self.1), None);
    }
}

async fn resolve(uri: &rsip::Uri) -> Option<SocketAddr> {
    if let Some(a) = uri_socket_addr(uri) {
        return Some(a);
    }
    let port = uri.port().map(|p| *p.value()).unwrap_or(5060);
    tokio::net::lookup_host((uri.host().to_string(), port))
        .await
        .ok()?
        .next()
}

fn bye(svc: &LegServices, dialog: &mut Dialog, dest: SocketAddr, local: SocketAddr) {
    let (req, hop) = dialog.new_request(
        rsip::Method::Bye,
        &local.ip().to_string(),
        local.port(),
        rsip::Transport::Udp,
    );
    svc.endpoint
        .send(req, uri_socket_addr(&hop).unwrap_or(dest));
}

/// CANCEL (RFC 3261 §9.1): the INVITE's Request-URI, Call-ID, From, To, top Via and CSeq
/// number, method CANCEL.
pub(super) fn cancel_request(invite: &rsip::Request) -> rsip::Request {
    let mut headers = rsip::Headers::default();
    let mut via_done = false;
    for h in invite.headers.iter() {
        match h {
            rsip::Header::Via(_) if !via_done => {
                via_done = true;
                headers.push(h.clone());
            }
            rsip::Header::From(_) | rsip::Header::To(_) | rsip::Header::CallId(_) => {
                headers.push(h.clone())
            }
            rsip::Header::CSeq(c) => {
                let n = c.value().split_whitespace().next().unwrap_or("1");
                headers.push(rsip::headers::CSeq::new(format!("{n} CANCEL")).into());
            }
            _ => {}
        }
    }
    headers.push(rsip::headers::MaxForwards::new("70").into());
    headers.push(rsip::headers::ContentLength::new("0").into());
    rsip::Request {
        method: rsip::Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

fn cancel(svc: &LegServices, invite: &rsip::Request, dest: SocketAddr) {
    svc.endpoint.send(cancel_request(invite), dest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_matches_the_invite_transaction() {
        let invite = build_invite(
            &rsip::Uri::try_from("sip:8000@127.0.0.1:5090").unwrap(),
            "hotline",
            "127.0.0.1:5060".parse().unwrap(),
            "leg-1@h",
            "v=0\r\n",
        );
        let c = cancel_request(&invite);
        assert_eq!(c.method, rsip::Method::Cancel);
        assert_eq!(c.uri, invite.uri);
        assert_eq!(
            c.via_header().unwrap().value(),
            invite.via_header().unwrap().value()
        );
        assert_eq!(c.cseq_header().unwrap().value(), "1 CANCEL");
        assert_eq!(
            c.from_header().unwrap().value(),
            invite.from_header().unwrap().value()
        );
    }
}
