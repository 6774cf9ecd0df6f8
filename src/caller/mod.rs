//! The built-in test caller (`hotline-gateway dial`): a small SIP UAC that reuses the
//! gateway's own endpoint, transaction layer, dialogs and media sessions to place a real
//! call, press digits, speak a WAV file, and record what it hears.
//!
//! It prints every step, so it doubles as a diagnostic for admins ("does the trunk answer,
//! what codec, do I hear the greeting?") and as the engine of the integration tests.

use crate::media::prompt::Prompt;
use crate::media::sdp;
use crate::media::session::{MediaEvent, MediaSession, PortPool, RecordSpec, SessionConfig};
use crate::media::Codec;
use crate::sip::dialog::Dialog;
use crate::sip::endpoint;
use crate::sip::message;
use crate::sip::transaction::{TimerConfig, TransactionEvent};
use rsip::headers::UntypedHeader;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What to do on the call.
#[derive(Clone, Debug)]
pub struct DialOptions {
    /// e.g. `sip:8890@127.0.0.1:5060`.
    pub target: String,
    /// Caller number put in From.
    pub from_user: String,
    /// Local address for SIP and RTP.
    pub bind_ip: IpAddr,
    /// RTP port range for the caller's media.
    pub rtp_ports: (u16, u16),
    /// Codecs to offer, in order.
    pub codecs: Vec<Codec>,
    /// WAV to speak after the digits.
    pub play: Option<PathBuf>,
    /// Digits to press after `dtmf_delay`.
    pub dtmf: String,
    pub dtmf_delay: Duration,
    /// Wait after the digits before speaking (lets the "speak after the tone" prompt finish).
    pub speak_delay: Duration,
    /// Digit to press after speaking (e.g. `#`), if any.
    pub end_digit: Option<char>,
    /// Record what the caller hears to this WAV.
    pub record: Option<PathBuf>,
    /// Hang up ourselves after this long.
    pub max_duration: Duration,
    /// Print steps to stdout.
    pub verbose: bool,
    /// Digest credentials (user, password) to answer a 401/407 with, for a trunk that
    /// requires authentication.
    pub auth: Option<(String, String)>,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            target: "sip:8890@127.0.0.1:5060".into(),
            from_user: "13800000000".into(),
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            rtp_ports: (40000, 40999),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            play: None,
            dtmf: String::new(),
            dtmf_delay: Duration::from_secs(1),
            speak_delay: Duration::from_secs(5),
            end_digit: None,
            record: None,
            max_duration: Duration::from_secs(60),
            verbose: true,
            auth: None,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DialReport {
    pub call_id: String,
    /// Final status of our INVITE (200 when answered).
    pub status: u16,
    /// INVITE sent → final response.
    pub setup_ms: u64,
    pub codec: Option<String>,
    /// `gateway` when the gateway sent BYE, `caller` when we did.
    pub hung_up_by: Option<&'static str>,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub recorded: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("bad target URI {0}")]
    Target(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot read audio to play: {0}")]
    Audio(String),
    #[error("no answer: {0}")]
    NoAnswer(String),
}

struct Printer {
    start: Instant,
    verbose: bool,
}

impl Printer {
    fn step(&self, what: impl std::fmt::Display) {
        if self.verbose {
            let t = self.start.elapsed().as_secs_f64();
            println!("[{t:7.3}s] {what}");
        }
    }
}

/// Place one call and run it to the end.
pub async fn dial(opts: DialOptions) -> Result<DialReport, DialError> {
    let p = Printer {
        start: Instant::now(),
        verbose: opts.verbose,
    };
    let target = rsip::Uri::try_from(opts.target.as_str())
        .map_err(|_| DialError::Target(opts.target.clone()))?;
    let dest = crate::call::manager::uri_socket_addr(&target)
        .ok_or_else(|| DialError::Target(opts.target.clone()))?;
    let caller_audio = match &opts.play {
        Some(path) => Some(Arc::new(
            Prompt::from_wav_file(path).map_err(|e| DialError::Audio(e.to_string()))?,
        )),
        None => None,
    };

    let (ep, mut events) =
        endpoint::start(SocketAddr::new(opts.bind_ip, 0), TimerConfig::default()).await?;
    let local = ep.local_addr();
    let pool = PortPool::new(opts.bind_ip, opts.rtp_ports.0, opts.rtp_ports.1);
    let mut media = MediaSession::spawn(pool.bind().await?, SessionConfig::new(opts.max_duration));
    let local_rtp = media.local_addr();

    let call_id = format!("{}@{}", uuid::Uuid::new_v4().simple(), opts.bind_ip);
    let offer = sdp::offer(&opts.codecs, 101, local_rtp, rand::random::<u32>() as u64);
    let mut invite = build_invite(&target, &opts.from_user, local, &call_id, &offer);
    p.step(format!(
        "INVITE {target} from {} (SIP {local}, RTP {local_rtp})",
        opts.from_user
    ));
    let sent_at = Instant::now();
    let Some(mut invite_key) = ep.send_request(invite.clone(), dest).await else {
        ep.shutdown();
        return Err(DialError::NoAnswer("could not send INVITE".into()));
    };

    let mut report = DialReport {
        call_id: call_id.clone(),
        status: 0,
        setup_ms: 0,
        codec: None,
        hung_up_by: None,
        packets_received: 0,
        packets_sent: 0,
        recorded: None,
    };
    let mut invite_cseq: u32 = 1;
    // Authenticated attempts without a stale nonce; a second refusal means wrong credentials.
    let mut auth_failures = 0;

    // Wait for the final answer.
    let mut dialog = loop {
        let ev = tokio::time::timeout(Duration::from_secs(40), events.recv()).await;
        match ev {
            Ok(Some(TransactionEvent::Response { key, response })) if key == invite_key => {
                let code = u16::from(response.status_code.clone());
                p.step(format!("<- {}", response.status_code));
                if code < 200 {
                    continue;
                }
                report.status = code;
                report.setup_ms = sent_at.elapsed().as_millis() as u64;
                if code == 401 || code == 407 {
                    let challenge = response.headers.iter().find_map(|h| match h {
                        rsip::Header::WwwAuthenticate(v) => {
                            crate::sip::digest::Challenge::parse(v.value())
                        }
                        rsip::Header::ProxyAuthenticate(v) => {
                            crate::sip::digest::Challenge::parse(v.value())
                        }
                        _ => None,
                    });
                    let retry = match (&opts.auth, challenge) {
                        (Some((user, pass)), Some(ch)) if ch.stale || auth_failures == 0 => {
                            if !ch.stale {
                                auth_failures += 1;
                            }
                            Some((user, pass, ch))
                        }
                        _ => None,
                    };
                    if let Some((user, pass, ch)) = retry {
                        invite_cseq += 1;
                        let header = crate::sip::digest::authorization(
                            &ch,
                            user,
                            pass,
                            "INVITE",
                            &target.to_string(),
                            1,
                            &uuid::Uuid::new_v4().simple().to_string(),
                        );
                        invite = with_authorization(&invite, invite_cseq, code, header);
                        p.step(format!(
                            "-> INVITE with {} credentials for {}{}",
                            ch.algorithm.name(),
                            user,
                            if ch.stale { " (stale nonce)" } else { "" }
                        ));
                        match ep.send_request(invite.clone(), dest).await {
                            Some(k) => invite_key = k,
                            None => {
                                ep.shutdown();
                                let _ = media.close().await;
                                return Err(DialError::NoAnswer("could not send INVITE".into()));
                            }
                        }
                        continue;
                    }
                }
                if code >= 300 {
                    ep.shutdown();
                    let _ = media.close().await;
                    return Ok(report);
                }
                let dialog = Dialog::uac(&invite, &response)
                    .map_err(|e| DialError::NoAnswer(e.to_string()))?;
                let (ack, hop) = dialog.ack_for_2xx(
                    invite_cseq,
                    &local.ip().to_string(),
                    local.port(),
                    rsip::Transport::Udp,
                );
                ep.send(
                    ack,
                    crate::call::manager::uri_socket_addr(&hop).unwrap_or(dest),
                );
                p.step("-> ACK");
                let answer = String::from_utf8_lossy(&response.body).into_owned();
                match sdp::parse_answer(&answer) {
                    Ok(n) => {
                        p.step(format!(
                            "media: {} to {}, telephone-event {:?}",
                            n.codec.encoding_name(),
                            n.remote_rtp,
                            n.dtmf_pt
                        ));
                        report.codec = Some(n.codec.encoding_name().to_string());
                        media.start(n.remote_rtp, n.codec, n.dtmf_pt.or(Some(101)));
                    }
                    Err(e) => p.step(format!("bad SDP answer: {e}")),
                }
                break dialog;
            }
            Ok(Some(TransactionEvent::Timeout { .. })) | Ok(None) | Err(_) => {
                ep.shutdown();
                let _ = media.close().await;
                return Err(DialError::NoAnswer("INVITE timed out".into()));
            }
            Ok(Some(_)) => continue,
        }
    };

    if let Some(path) = &opts.record {
        media.start_recording(RecordSpec {
            path: path.clone(),
            max_duration: opts.max_duration,
            endpointer: None,
            stop_digit: None,
        });
    }

    // The script: digits, then speech, then the end digit, each at its time.
    let answered = Instant::now();
    let mut script: Vec<(Instant, Action)> = Vec::new();
    let mut t = answered + opts.dtmf_delay;
    for d in opts.dtmf.chars() {
        script.push((t, Action::Digit(d)));
        t += Duration::from_millis(250);
    }
    if !opts.dtmf.is_empty() {
        t += opts.speak_delay;
    }
    if let Some(a) = caller_audio.clone() {
        script.push((t, Action::Speak(a)));
    } else if let Some(d) = opts.end_digit {
        script.push((t, Action::Digit(d)));
    }
    script.reverse();
    let hard_stop = answered + opts.max_duration;

    let mut gateway_hung_up = false;
    loop {
        let next_at = script
            .last()
            .map(|(t, _)| *t)
            .unwrap_or(hard_stop)
            .min(hard_stop);
        tokio::select! {
            _ = tokio::time::sleep_until(next_at) => {
                if Instant::now() >= hard_stop {
                    p.step("max duration reached: hanging up");
                    break;
                }
                if let Some((_, action)) = script.pop() {
                    match action {
                        Action::Digit(d) => {
                            p.step(format!("-> DTMF {d}"));
                            media.send_dtmf(d, Duration::from_millis(100));
                        }
                        Action::Speak(a) => {
                            p.step(format!("-> speaking {} ({:.1} s)", a.name(), a.duration().as_secs_f32()));
                            media.play(vec![a], false);
                        }
                    }
                }
            }
            ev = media.next_event() => match ev {
                Some(MediaEvent::PlaybackDone { .. }) => {
                    p.step("   finished speaking");
                    if let Some(d) = opts.end_digit {
                        script.push((Instant::now() + Duration::from_millis(300), Action::Digit(d)));
                    }
                }
                Some(MediaEvent::RtpTimeout) => {
                    p.step("no RTP from the gateway: hanging up");
                    break;
                }
                Some(_) => {}
                None => break,
            },
            ev = events.recv() => match ev {
                Some(TransactionEvent::Request { key, request, .. }) if request.method == rsip::Method::Bye => {
                    p.step("<- BYE");
                    ep.respond(key, message::response(&request, 200, "OK", None));
                    p.step("-> 200 OK");
                    gateway_hung_up = true;
                    break;
                }
                Some(TransactionEvent::Request { key, request, .. }) if request.method != rsip::Method::Ack => {
                    ep.respond(key, message::response(&request, 200, "OK", None));
                }
                Some(TransactionEvent::Response { response, .. }) if u16::from(response.status_code.clone()) == 200 => {
                    // A retransmitted 2xx: our ACK was lost; ACK again.
                    let (ack, hop) = dialog.ack_for_2xx(invite_cseq, &local.ip().to_string(), local.port(), rsip::Transport::Udp);
                    ep.send(ack, crate::call::manager::uri_socket_addr(&hop).unwrap_or(dest));
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    if !gateway_hung_up {
        let (bye, hop) = dialog.new_request(
            rsip::Method::Bye,
            &local.ip().to_string(),
            local.port(),
            rsip::Transport::Udp,
        );
        p.step("-> BYE");
        if let Some(key) = ep
            .send_request(
                bye,
                crate::call::manager::uri_socket_addr(&hop).unwrap_or(dest),
            )
            .await
        {
            let until = Instant::now() + Duration::from_secs(5);
            while let Ok(Some(ev)) = tokio::time::timeout_at(until, events.recv()).await {
                if let TransactionEvent::Response { key: k, response } = ev {
                    if k == key && u16::from(response.status_code.clone()) >= 200 {
                        p.step(format!("<- {}", response.status_code));
                        break;
                    }
                }
            }
        }
    }
    report.hung_up_by = Some(if gateway_hung_up { "gateway" } else { "caller" });

    if opts.record.is_some() {
        media.stop_recording();
        let until = Instant::now() + Duration::from_secs(3);
        while let Ok(Some(ev)) = tokio::time::timeout_at(until, media.next_event()).await {
            if let MediaEvent::RecordingDone { path, duration, .. } = ev {
                p.step(format!(
                    "heard audio saved to {} ({:.1} s)",
                    path.display(),
                    duration.as_secs_f32()
                ));
                report.recorded = Some(path);
                break;
            }
        }
    }
    let stats = media.close().await;
    report.packets_received = stats.packets_received;
    report.packets_sent = stats.packets_sent;
    ep.shutdown();
    p.step(format!(
        "call ended ({} hung up); RTP sent {}, received {}",
        report.hung_up_by.unwrap_or("?"),
        stats.packets_sent,
        stats.packets_received
    ));
    Ok(report)
}

enum Action {
    Digit(char),
    Speak(Arc<Prompt>),
}

/// The INVITE again with credentials: a new branch (a new transaction), the next CSeq,
/// `Authorization` (or `Proxy-Authorization` after a 407) replacing any earlier one.
fn with_authorization(
    invite: &rsip::Request,
    cseq: u32,
    status: u16,
    authorization: String,
) -> rsip::Request {
    let mut next = invite.clone();
    next.headers = rsip::Headers::default();
    for h in invite.headers.iter() {
        match h {
            rsip::Header::Via(v) => {
                let value = v.value();
                let head = value.split(";branch=").next().unwrap_or(value);
                next.headers.push(
                    rsip::headers::Via::new(format!(
                        "{head};branch={};rport",
                        message::new_branch()
                    ))
                    .into(),
                );
            }
            rsip::Header::CSeq(_) => next
                .headers
                .push(rsip::headers::CSeq::new(format!("{cseq} INVITE")).into()),
            rsip::Header::Authorization(_) | rsip::Header::ProxyAuthorization(_) => {}
            other => next.headers.push(other.clone()),
        }
    }
    next.headers.push(if status == 407 {
        rsip::headers::ProxyAuthorization::new(authorization).into()
    } else {
        rsip::headers::Authorization::new(authorization).into()
    });
    next
}

fn build_invite(
    target: &rsip::Uri,
    from_user: &str,
    local: SocketAddr,
    call_id: &str,
    sdp: &str,
) -> rsip::Request {
    let host = match local.ip() {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let port = local.port();
    let mut headers = rsip::Headers::default();
    headers.push(
        rsip::headers::Via::new(format!(
            "SIP/2.0/UDP {host}:{port};branch={};rport",
            message::new_branch()
        ))
        .into(),
    );
    headers.push(rsip::headers::MaxForwards::new("70").into());
    headers.push(
        rsip::headers::From::new(format!(
            "<sip:{from_user}@{host}>;tag={}",
            message::new_tag()
        ))
        .into(),
    );
    headers.push(rsip::headers::To::new(format!("<{target}>")).into());
    headers.push(rsip::headers::CallId::new(call_id).into());
    headers.push(rsip::headers::CSeq::new("1 INVITE").into());
    headers.push(rsip::headers::Contact::new(format!("<sip:{from_user}@{host}:{port}>")).into());
    headers.push(
        rsip::headers::UserAgent::new(concat!("hotline-gateway-dial/", env!("CARGO_PKG_VERSION")))
            .into(),
    );
    headers.push(rsip::headers::ContentType::new("application/sdp").into());
    headers.push(rsip::headers::ContentLength::new(sdp.len().to_string()).into());
    rsip::Request {
        method: rsip::Method::Invite,
        uri: target.clone(),
        version: rsip::Version::V2,
        headers,
        body: sdp.as_bytes().to_vec(),
    }
}
