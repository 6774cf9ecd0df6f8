//! One call of the test caller, start to end: INVITE (answering a digest challenge when
//! given credentials), ACK, the script of digits and speech, BYE either way.

use super::invite::{build_invite, challenge, with_authorization};
use super::{Caller, DialError, DialOptions, DialReport, Printer};
use crate::media::prompt::{Prompt, SharedPrompt};
use crate::media::sdp;
use crate::media::session::{MediaEvent, MediaSession, RecordSpec, SessionConfig};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::transaction::TransactionEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

impl Caller {
    pub(super) async fn run_call(
        &self,
        opts: &DialOptions,
        caller_audio: Option<SharedPrompt>,
        track_arrivals: bool,
        call_id: &str,
        mut events: mpsc::UnboundedReceiver<TransactionEvent>,
    ) -> Result<DialReport, DialError> {
        let p = Printer {
            start: Instant::now(),
            verbose: opts.verbose,
        };
        let ep = &self.ep;
        let local = self.local;
        let target = rsip::Uri::try_from(opts.target.as_str())
            .map_err(|_| DialError::Target(opts.target.clone()))?;
        let dest = crate::sip::dialog::uri_socket_addr(&target)
            .ok_or_else(|| DialError::Target(opts.target.clone()))?;
        let mut media = MediaSession::spawn(
            self.pool.bind().await?,
            SessionConfig::new(opts.max_duration),
        );
        if track_arrivals {
            media.track_arrivals();
        }
        let local_rtp = media.local_addr();

        let offer = sdp::offer(&opts.codecs, 101, local_rtp, rand::random::<u32>() as u64);
        let mut invite = build_invite(&target, &opts.from_user, local, call_id, &offer);
        p.step(format!(
            "INVITE {target} from {} (SIP {local}, RTP {local_rtp})",
            opts.from_user
        ));
        let sent_at = Instant::now();
        let Some(mut invite_key) = ep.send_request(invite.clone(), dest).await else {
            let _ = media.close().await;
            return Err(DialError::NoAnswer("could not send INVITE".into()));
        };

        let mut report = DialReport {
            call_id: call_id.to_string(),
            status: 0,
            setup_ms: 0,
            setup: Duration::ZERO,
            codec: None,
            hung_up_by: None,
            packets_received: 0,
            packets_sent: 0,
            recorded: None,
            digits_heard: String::new(),
            arrivals: None,
        };
        let mut invite_cseq: u32 = 1;
        // Authenticated attempts without a stale nonce; a second refusal means wrong
        // credentials, so it is the final answer.
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
                    report.setup = sent_at.elapsed();
                    report.setup_ms = report.setup.as_millis() as u64;
                    if code == 401 || code == 407 {
                        let retry = match (&opts.auth, challenge(&response)) {
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
                                    let _ = media.close().await;
                                    return Err(DialError::NoAnswer(
                                        "could not send INVITE".into(),
                                    ));
                                }
                            }
                            continue;
                        }
                    }
                    if code >= 300 {
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
                        crate::sip::dialog::uri_socket_addr(&hop).unwrap_or(dest),
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
                Ok(Some(TransactionEvent::Timeout { key })) if key == invite_key => {
                    let _ = media.close().await;
                    return Err(DialError::NoAnswer("INVITE timed out".into()));
                }
                Ok(None) | Err(_) => {
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
                utterance_pause: None,
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
                    Some(MediaEvent::Dtmf(d)) => {
                        p.step(format!("<- DTMF {d}"));
                        report.digits_heard.push(d);
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
                        ep.send(ack, crate::sip::dialog::uri_socket_addr(&hop).unwrap_or(dest));
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
                    crate::sip::dialog::uri_socket_addr(&hop).unwrap_or(dest),
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
        report.arrivals = stats.arrivals;
        p.step(format!(
            "call ended ({} hung up); RTP sent {}, received {}",
            report.hung_up_by.unwrap_or("?"),
            stats.packets_sent,
            stats.packets_received
        ));
        Ok(report)
    }
}

enum Action {
    Digit(char),
    Speak(Arc<Prompt>),
}
