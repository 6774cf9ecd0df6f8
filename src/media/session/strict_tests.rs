//! Strict RTP source and hold over real UDP sockets on loopback, on tokio's paused clock
//! (see `tests.rs`): a stranger on the port, a caller whose source moves, a caller who
//! puts the call on hold.

use super::tests::{correlation, event_within, prompt, recv_rtp, send_audio, tone, udp};
use super::*;
use crate::media::rtp::RtpSender;
use crate::media::sdp::Direction;
use std::sync::atomic::Ordering;
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

/// Nothing arrives on `sock` for `d` (what did arrive before is drained first).
async fn silent_for(sock: &UdpSocket, d: Duration) -> bool {
    let mut buf = [0u8; 2048];
    while timeout(Duration::ZERO, sock.recv_from(&mut buf))
        .await
        .is_ok()
    {}
    timeout(d, sock.recv_from(&mut buf)).await.is_err()
}

fn strict(relearn: Option<Duration>) -> SessionConfig {
    SessionConfig {
        strict_rtp_relearn: relearn,
        ..SessionConfig::new(Duration::from_secs(30))
    }
}

/// The G.711 round trip of `pcm`, as a recording of it holds it.
fn wire(pcm: &[i16]) -> Vec<i16> {
    pcm.iter()
        .map(|&s| Codec::Pcmu.decode_sample(Codec::Pcmu.encode_sample(s)))
        .collect()
}

/// Best normalised correlation of `needle` anywhere in `hay`.
fn best_correlation(hay: &[i16], needle: &[i16]) -> f64 {
    (0..hay.len().saturating_sub(needle.len()))
        .step_by(4)
        .map(|lag| correlation(&hay[lag..lag + needle.len()], needle))
        .fold(f64::MIN, f64::max)
}

#[tokio::test(start_paused = true)]
async fn a_stranger_with_its_own_ssrc_neither_takes_the_call_nor_is_recorded() {
    let cfg = strict(Some(Duration::from_secs(2)));
    let counters = cfg.counters.clone();
    let mut s = MediaSession::spawn(udp().await, cfg);
    let to = s.local_addr();
    let (caller, stranger) = (udp().await, udp().await);
    s.start(caller.local_addr().unwrap(), Codec::Pcmu, None);
    let dir = tempfile::tempdir().unwrap();
    s.start_recording(RecordSpec {
        path: dir.path().join("msg.wav"),
        max_duration: Duration::from_secs(30),
        endpointer: None,
        stop_digit: None,
        utterance_pause: None,
    });
    // the caller talks (300 Hz) and the stranger streams its own SSRC (1 kHz) at the
    // same port from another one, both paced at 20 ms, for 2 s
    let voice = tone(300.0, 2000, 0.4);
    let noise = tone(1000.0, 2000, 0.4);
    let mut tx_caller = RtpSender::with_state(1111, 0, 0);
    let mut tx_stranger = RtpSender::with_state(2222, 9000, 9000);
    tokio::join!(send_audio(&caller, to, &mut tx_caller, &voice), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        send_audio(&stranger, to, &mut tx_stranger, &noise).await
    });
    // our packets still go to the caller, none ever to the stranger
    let first = recv_rtp(&caller).await;
    assert_eq!(first.pt, 0);
    let mut buf = [0u8; 2048];
    assert!(
        timeout(Duration::from_millis(200), stranger.recv_from(&mut buf))
            .await
            .is_err()
    );
    s.stop_recording();
    let Some(MediaEvent::RecordingDone { pcm, .. }) =
        event_within(&mut s, Duration::from_secs(5)).await
    else {
        panic!("RecordingDone expected");
    };
    assert!(
        best_correlation(&pcm, &wire(&voice[4000..4800])) > 0.99,
        "the caller is in the recording"
    );
    assert!(
        best_correlation(&pcm, &wire(&noise[4000..4800])) < 0.2,
        "the stranger is not"
    );
    let stats = s.close().await;
    assert_eq!(stats.packets_received, 100);
    assert_eq!(stats.packets_dropped, 100);
    assert_eq!(counters.packets_wrong_source.load(Ordering::Relaxed), 100);
    assert_eq!(counters.sources_relearned.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_source_silent_past_the_relearn_time_gives_way_after_probation() {
    let cfg = strict(Some(Duration::from_secs(2)));
    let counters = cfg.counters.clone();
    let s = MediaSession::spawn(udp().await, cfg);
    let to = s.local_addr();
    let (old, new) = (udp().await, udp().await);
    s.start(old.local_addr().unwrap(), Codec::Pcmu, None);
    let mut tx_old = RtpSender::with_state(1, 0, 0);
    send_audio(&old, to, &mut tx_old, &[0; 160 * 5]).await;
    recv_rtp(&old).await;
    // the caller falls silent (its NAT binding moved); the new source sends 1 s too early
    let mut tx_new = RtpSender::with_state(1, 5, 800);
    send_audio(&new, to, &mut tx_new, &[0; 160 * 20]).await;
    assert!(silent_for(&new, Duration::from_millis(100)).await);
    // after 2 s of silence: PROBATION consecutive packets and the new source is learnt
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send_audio(
        &new,
        to,
        &mut tx_new,
        &[0; 160 * source::PROBATION as usize],
    )
    .await;
    recv_rtp(&new).await;
    assert!(silent_for(&old, Duration::from_millis(200)).await);
    s.close().await;
    assert_eq!(counters.sources_relearned.load(Ordering::Relaxed), 1);
    assert_eq!(
        counters.packets_wrong_source.load(Ordering::Relaxed),
        20 + u64::from(source::PROBATION) - 1
    );
}

#[tokio::test(start_paused = true)]
async fn without_relearning_a_silent_source_keeps_the_call() {
    let s = MediaSession::spawn(udp().await, strict(None));
    let to = s.local_addr();
    let (old, new) = (udp().await, udp().await);
    s.start(old.local_addr().unwrap(), Codec::Pcmu, None);
    send_audio(&old, to, &mut RtpSender::with_state(1, 0, 0), &[0; 160]).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    send_audio(&new, to, &mut RtpSender::new(), &[0; 160 * 50]).await;
    assert!(silent_for(&new, Duration::from_millis(200)).await);
    recv_rtp(&old).await;
    s.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_re_offer_relearns_only_when_it_moves_the_address() {
    let s = MediaSession::spawn(udp().await, strict(Some(Duration::from_secs(2))));
    let to = s.local_addr();
    let (sdp_addr, nat, moved) = (udp().await, udp().await, udp().await);
    s.start(sdp_addr.local_addr().unwrap(), Codec::Pcmu, None);
    recv_rtp(&sdp_addr).await; // before anything arrived: the SDP address
    let mut caller = RtpSender::with_state(7, 0, 0);
    send_audio(&nat, to, &mut caller, &[0; 160]).await;
    recv_rtp(&nat).await; // learnt: towards where the packets come from
                          // a session refresh at the same address keeps the source: another sender is refused
    s.start(sdp_addr.local_addr().unwrap(), Codec::Pcmu, None);
    send_audio(&moved, to, &mut RtpSender::new(), &[0; 160]).await;
    assert!(silent_for(&moved, Duration::from_millis(200)).await);
    recv_rtp(&nat).await;
    // a re-offer with a new address: the next sender is learnt
    s.start(moved.local_addr().unwrap(), Codec::Pcmu, None);
    recv_rtp(&moved).await; // the new SDP address, at once
    send_audio(&moved, to, &mut RtpSender::new(), &[0; 160]).await;
    assert!(silent_for(&nat, Duration::from_millis(200)).await);
    s.close().await;
}

#[tokio::test(start_paused = true)]
async fn on_hold_nothing_is_sent_the_prompt_waits_and_silence_is_no_timeout() {
    let peer = udp().await; // the caller sends nothing at all
    let mut s = MediaSession::spawn(udp().await, SessionConfig::new(Duration::from_secs(3)));
    s.start(peer.local_addr().unwrap(), Codec::Pcmu, None);
    s.play(vec![prompt(tone(440.0, 1000, 0.3))], false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for held in [Direction::SendOnly, Direction::Inactive] {
        s.set_direction(held);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // held for longer than the RTP timeout: not a packet, no timeout, no end of prompt
        assert!(silent_for(&peer, Duration::from_secs(5)).await, "{held:?}");
        assert!(event_within(&mut s, Duration::ZERO).await.is_none());
    }
    s.set_direction(Direction::SendRecv);
    let resumed = Instant::now();
    let first = recv_rtp(&peer).await;
    assert!(first.marker, "a new talkspurt after the hold");
    // the prompt goes on where it stopped: ~800 ms of it were left
    assert!(matches!(
        event_within(&mut s, Duration::from_secs(2)).await,
        Some(MediaEvent::PlaybackDone { interrupted: false })
    ));
    let left = Instant::now() - resumed;
    assert!(
        left >= Duration::from_millis(700) && left <= Duration::from_millis(900),
        "{left:?}"
    );
    // the dead-line clock started over at the resume, not at the start of the call
    assert!(matches!(
        event_within(&mut s, Duration::from_secs(5)).await,
        Some(MediaEvent::RtpTimeout)
    ));
    let at = Instant::now() - resumed;
    assert!(
        at >= Duration::from_millis(3000) && at < Duration::from_millis(3100),
        "{at:?}"
    );
    s.close().await;
}

#[tokio::test(start_paused = true)]
async fn music_on_hold_is_not_recorded() {
    let (caller, mut s) = (udp().await, MediaSession::spawn(udp().await, strict(None)));
    let to = s.local_addr();
    s.start(caller.local_addr().unwrap(), Codec::Pcmu, None);
    let dir = tempfile::tempdir().unwrap();
    s.start_recording(RecordSpec {
        path: dir.path().join("m.wav"),
        max_duration: Duration::from_secs(30),
        endpointer: None,
        stop_digit: None,
        utterance_pause: None,
    });
    let mut tx = RtpSender::with_state(5, 0, 0);
    let voice = tone(300.0, 500, 0.4);
    send_audio(&caller, to, &mut tx, &voice).await;
    s.set_direction(Direction::SendOnly);
    let music = tone(1200.0, 1000, 0.4);
    send_audio(&caller, to, &mut tx, &music).await;
    s.set_direction(Direction::SendRecv);
    send_audio(&caller, to, &mut tx, &voice).await;
    s.stop_recording();
    let Some(MediaEvent::RecordingDone { pcm, duration, .. }) =
        event_within(&mut s, Duration::from_secs(5)).await
    else {
        panic!("RecordingDone expected");
    };
    assert!(best_correlation(&pcm, &wire(&voice[800..1600])) > 0.99);
    assert!(best_correlation(&pcm, &wire(&music[800..1600])) < 0.2);
    assert!(duration < Duration::from_millis(1100), "{duration:?}");
    s.close().await;
}
