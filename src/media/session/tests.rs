//! Sessions talking over real UDP sockets on 127.0.0.1, on tokio's paused clock: the
//! runtime only advances virtual time when every task is idle and the sockets have
//! nothing to read, so loopback traffic is delivered before any timer fires.

use super::*;
use crate::media::prompt::Prompt;
use crate::media::rtp::{self, RtpSender};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

const DTMF_PT: u8 = 101;

fn cfg(inactivity: Duration) -> SessionConfig {
    SessionConfig::new(inactivity)
}

pub(super) async fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn session() -> MediaSession {
    MediaSession::spawn(udp().await, cfg(Duration::from_secs(30)))
}

/// Two sessions sending to each other, PCMU + telephone-event 101.
async fn pair() -> (MediaSession, MediaSession) {
    let a = session().await;
    let b = session().await;
    a.start(b.local_addr(), Codec::Pcmu, Some(DTMF_PT));
    b.start(a.local_addr(), Codec::Pcmu, Some(DTMF_PT));
    (a, b)
}

pub(super) async fn event_within(s: &mut MediaSession, d: Duration) -> Option<MediaEvent> {
    timeout(d, s.next_event()).await.ok().flatten()
}

pub(super) struct Rx {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

pub(super) async fn recv_rtp(sock: &UdpSocket) -> Rx {
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("an RTP packet within 2 s")
        .unwrap();
    let p = rtp::parse(&buf[..n]).expect("valid RTP");
    Rx {
        pt: p.payload_type,
        marker: p.marker,
        seq: p.sequence,
        ts: p.timestamp,
        ssrc: p.ssrc,
        payload: p.payload.to_vec(),
    }
}

pub(super) fn tone(freq: f32, ms: u32, amplitude: f32) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            (amplitude * 32767.0 * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

pub(super) fn prompt(pcm: Vec<i16>) -> SharedPrompt {
    Arc::new(Prompt::from_pcm("test", pcm))
}

/// Audio packets from a raw socket to a session, 20 ms apart on the virtual clock.
pub(super) async fn send_audio(sock: &UdpSocket, to: SocketAddr, tx: &mut RtpSender, pcm: &[i16]) {
    let mut payload = [0u8; 160];
    let mut buf = [0u8; 200];
    for chunk in pcm.chunks(160) {
        Codec::Pcmu.encode(chunk, &mut payload[..chunk.len()]);
        let n = tx
            .build_audio(0, &payload[..chunk.len()], &mut buf)
            .unwrap();
        sock.send_to(&buf[..n], to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn prompt_is_received_bit_exact_in_order() {
    let peer = udp().await;
    let s = session().await;
    let mut s = s;
    s.start(peer.local_addr().unwrap(), Codec::Pcmu, Some(DTMF_PT));
    // pseudo-random content so any reordering or slip shows
    let pcm: Vec<i16> = (0..50 * 160u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as i16)
        .collect();
    let p = prompt(pcm);
    let expected = p.encoded(Codec::Pcmu).to_vec();
    s.play(vec![p], false);

    let first = recv_rtp(&peer).await;
    assert!(
        first.marker,
        "first packet of the stream carries the marker"
    );
    assert_eq!(first.pt, 0);
    let mut got = vec![first];
    while got.len() < 55 {
        got.push(recv_rtp(&peer).await);
    }
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(160));
        assert_eq!(w[1].ssrc, w[0].ssrc);
        assert!(!w[1].marker);
        assert_eq!(w[1].payload.len(), 160);
    }
    // the prompt starts at the first frame whose payload is its first 160 bytes
    let start = got
        .iter()
        .position(|r| r.payload == expected[..160])
        .expect("prompt start");
    assert!(got[..start].iter().all(|r| r.payload == [0xff; 160]));
    let played: Vec<u8> = got[start..start + 50]
        .iter()
        .flat_map(|r| r.payload.clone())
        .collect();
    assert_eq!(played, expected);
    assert!(
        got[start + 50..].iter().all(|r| r.payload == [0xff; 160]),
        "comfort silence after"
    );
    assert!(matches!(
        event_within(&mut s, Duration::from_secs(1)).await,
        Some(MediaEvent::PlaybackDone { interrupted: false })
    ));
    let stats = s.close().await;
    assert!(stats.packets_sent >= 55);
}

#[tokio::test(start_paused = true)]
async fn packets_leave_every_20ms_on_the_clock() {
    let peer = udp().await;
    let s = session().await;
    s.start(peer.local_addr().unwrap(), Codec::Pcma, None);
    let t0 = Instant::now();
    let first = recv_rtp(&peer).await;
    assert_eq!(first.pt, 8);
    assert_eq!(first.payload, vec![0xd5; 160], "A-law comfort silence");
    for n in 1..=100u64 {
        recv_rtp(&peer).await;
        // virtual clock: a wake-up is at most the timer's 1 ms granularity late
        let late = Instant::now() - (t0 + Duration::from_millis(20 * n));
        assert!(
            late < Duration::from_millis(2),
            "frame {n} late by {late:?}"
        );
    }
    s.close().await;
}

#[tokio::test(start_paused = true)]
async fn dtmf_between_sessions_is_one_event_per_press() {
    let (a, mut b) = pair().await;
    a.send_dtmf('5', Duration::from_millis(100));
    a.send_dtmf('5', Duration::from_millis(100));
    a.send_dtmf('#', Duration::from_millis(60));
    let mut digits = String::new();
    while let Some(ev) = event_within(&mut b, Duration::from_secs(1)).await {
        match ev {
            MediaEvent::Dtmf(d) => digits.push(d),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(digits, "55#");
    let sa = a.close().await;
    let sb = b.close().await;
    assert_eq!(sb.packets_dropped, 0);
    assert!(sa.packets_sent > 0);
}

#[tokio::test(start_paused = true)]
async fn dtmf_barge_in_stops_playback() {
    let (mut a, b) = pair().await;
    a.play(vec![prompt(tone(440.0, 3000, 0.3))], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.send_dtmf('1', Duration::from_millis(80));
    let t0 = Instant::now();
    assert!(matches!(
        event_within(&mut a, Duration::from_secs(1)).await,
        Some(MediaEvent::Dtmf('1'))
    ));
    assert!(matches!(
        event_within(&mut a, Duration::from_secs(1)).await,
        Some(MediaEvent::PlaybackDone { interrupted: true })
    ));
    assert!(Instant::now() - t0 < Duration::from_millis(100));
    a.close().await;
    b.close().await;
}

pub(super) fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[tokio::test(start_paused = true)]
async fn recording_holds_the_peers_tone_and_ends_on_stop_digit() {
    let (mut a, b) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.wav");
    a.start_recording(RecordSpec {
        path: path.clone(),
        max_duration: Duration::from_secs(10),
        endpointer: None,
        stop_digit: Some('#'),
        utterance_pause: None,
    });
    let t = tone(700.0, 1000, 0.5);
    b.play(vec![prompt(t.clone())], false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.send_dtmf('#', Duration::from_millis(100));

    assert!(matches!(
        event_within(&mut a, Duration::from_secs(1)).await,
        Some(MediaEvent::Dtmf('#'))
    ));
    let Some(MediaEvent::RecordingDone {
        path: p,
        reason,
        duration,
        heard_speech,
        pcm,
    }) = event_within(&mut a, Duration::from_secs(5)).await
    else {
        panic!("RecordingDone expected");
    };
    assert_eq!(p, path);
    assert_eq!(reason, RecordEnd::StopDigit);
    assert!(!heard_speech, "no end-pointer, no speech verdict");
    assert!(duration >= Duration::from_millis(1000) && duration < Duration::from_millis(1300));
    // the tone as it went over the wire (G.711 round trip)
    let wire: Vec<i16> = t
        .iter()
        .map(|&s| Codec::Pcmu.decode_sample(Codec::Pcmu.encode_sample(s)))
        .collect();
    let (best_lag, best) = (0..pcm.len() - wire.len())
        .map(|lag| (lag, correlation(&pcm[lag..lag + wire.len()], &wire)))
        .fold((0, f64::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
    assert!(best > 0.999, "correlation {best} at lag {best_lag}");
    assert_eq!(&pcm[best_lag..best_lag + wire.len()], &wire[..]);
    // the WAV holds exactly the same samples
    let back: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(&back[..], &pcm[..]);
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn recording_stops_on_request_and_at_max_duration() {
    let (mut a, b) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = |name: &str, max_ms| RecordSpec {
        path: dir.path().join(name),
        max_duration: Duration::from_millis(max_ms),
        endpointer: None,
        stop_digit: None,
        utterance_pause: None,
    };
    a.start_recording(spec("cap.wav", 300));
    let t0 = Instant::now();
    match event_within(&mut a, Duration::from_secs(2)).await {
        Some(MediaEvent::RecordingDone {
            reason, duration, ..
        }) => {
            assert_eq!(reason, RecordEnd::MaxDuration);
            assert!(duration <= Duration::from_millis(300));
            assert!(duration >= Duration::from_millis(260), "{duration:?}");
            let waited = Instant::now() - t0;
            assert!(waited >= Duration::from_millis(280) && waited <= Duration::from_millis(320));
        }
        other => panic!("unexpected {other:?}"),
    }
    a.start_recording(spec("stop.wav", 10_000));
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.stop_recording();
    match event_within(&mut a, Duration::from_secs(1)).await {
        Some(MediaEvent::RecordingDone {
            reason, duration, ..
        }) => {
            assert_eq!(reason, RecordEnd::Stopped);
            assert!(
                duration >= Duration::from_millis(160) && duration <= Duration::from_millis(220)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(dir.path().join("stop.wav").exists());
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn rtp_timeout_when_the_peer_is_silent() {
    let peer = udp().await; // never sends
    let mut s = MediaSession::spawn(udp().await, cfg(Duration::from_millis(500)));
    // not started: no timer, no timeout
    assert!(event_within(&mut s, Duration::from_secs(2)).await.is_none());
    s.start(peer.local_addr().unwrap(), Codec::Pcmu, None);
    let t0 = Instant::now();
    assert!(matches!(
        event_within(&mut s, Duration::from_secs(2)).await,
        Some(MediaEvent::RtpTimeout)
    ));
    let waited = Instant::now() - t0;
    assert!(waited >= Duration::from_millis(500) && waited < Duration::from_millis(520));
    // reported once, not every frame
    assert!(event_within(&mut s, Duration::from_secs(1)).await.is_none());
    s.close().await;

    // a peer that sends comfort silence never times out
    let a = MediaSession::spawn(udp().await, cfg(Duration::from_millis(500)));
    let mut b = MediaSession::spawn(udp().await, cfg(Duration::from_millis(500)));
    a.start(b.local_addr(), Codec::Pcmu, None);
    b.start(a.local_addr(), Codec::Pcmu, None);
    assert!(event_within(&mut b, Duration::from_secs(3)).await.is_none());
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn garbage_datagrams_are_counted_not_fatal() {
    let peer = udp().await;
    let s = session().await;
    let to = s.local_addr();
    s.start(peer.local_addr().unwrap(), Codec::Pcmu, Some(DTMF_PT));
    let mut bad_pt = [0u8; 172];
    bad_pt[0] = 0x80;
    bad_pt[1] = 96;
    let mut short_dtmf = [0u8; 14];
    short_dtmf[0] = 0x80;
    short_dtmf[1] = DTMF_PT;
    let garbage: [&[u8]; 6] = [
        b"",
        b"hello",
        &[0x40; 40],
        &[0xbf; 30],
        &bad_pt,
        &short_dtmf,
    ];
    for g in garbage {
        peer.send_to(g, to).await.unwrap();
    }
    let mut caller = RtpSender::new();
    send_audio(&peer, to, &mut caller, &[0; 320]).await;
    recv_rtp(&peer).await; // still alive and sending
    let stats = s.close().await;
    assert_eq!(stats.packets_dropped, 6);
    assert_eq!(stats.packets_received, 2);
}

#[tokio::test]
async fn port_pool_hands_out_even_free_ports_and_wraps() {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    // find a free stretch of 6 ports starting even
    let base = loop {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        if p < 65000 && (p..p + 6).all(|q| std::net::UdpSocket::bind((ip, q)).is_ok()) {
            break p;
        }
    };
    let pool = PortPool::new(ip, base + 1, base + 5); // even ports: base+2, base+4
    let busy = std::net::UdpSocket::bind((ip, base + 2)).unwrap();
    let a = pool.bind().await.unwrap();
    assert_eq!(
        a.local_addr().unwrap().port(),
        base + 4,
        "busy port skipped"
    );
    let err = pool.bind().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "exhausted");
    drop(busy);
    let b = pool.bind().await.unwrap();
    assert_eq!(b.local_addr().unwrap().port(), base + 2, "wrapped around");
    drop(a);
    let c = pool.bind().await.unwrap();
    assert_eq!(c.local_addr().unwrap().port(), base + 4);
    drop((b, c));
    let empty = PortPool::new(ip, base + 1, base + 1);
    assert_eq!(
        empty.bind().await.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

fn endpointed(path: std::path::PathBuf, no_speech_ms: u64) -> RecordSpec {
    RecordSpec {
        path,
        max_duration: Duration::from_secs(30),
        endpointer: Some(crate::media::vad::EndpointerConfig {
            speech_threshold_dbfs: -35.0,
            trailing_silence: Duration::from_millis(500),
            no_speech_timeout: Duration::from_millis(no_speech_ms),
        }),
        stop_digit: Some('#'),
        utterance_pause: None,
    }
}

async fn recording_done(s: &mut MediaSession) -> (RecordEnd, Duration, bool, Arc<[i16]>) {
    match event_within(s, Duration::from_secs(10)).await {
        Some(MediaEvent::RecordingDone {
            reason,
            duration,
            heard_speech,
            pcm,
            ..
        }) => (reason, duration, heard_speech, pcm),
        other => panic!("RecordingDone expected, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn recording_ends_after_speech_and_trailing_silence() {
    let (mut a, b) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    a.start_recording(endpointed(dir.path().join("speech.wav"), 3000));
    let mut talk = vec![0i16; 8 * 300];
    talk.extend(tone(300.0, 800, 0.3));
    b.play(vec![prompt(talk)], false);
    let (reason, duration, heard_speech, pcm) = recording_done(&mut a).await;
    assert_eq!(reason, RecordEnd::EndOfSpeech);
    assert!(heard_speech);
    // 300 ms silence + 800 ms speech + 500 ms trailing silence
    assert!(
        duration >= Duration::from_millis(1550) && duration <= Duration::from_millis(1700),
        "{duration:?}"
    );
    let loud = pcm.iter().filter(|s| s.unsigned_abs() > 3000).count();
    assert!(loud > 8 * 400, "the speech is in the recording");
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn recording_ends_with_no_speech_on_comfort_silence() {
    let (mut a, b) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    a.start_recording(endpointed(dir.path().join("silence.wav"), 1000));
    let (reason, duration, heard_speech, pcm) = recording_done(&mut a).await;
    assert_eq!(reason, RecordEnd::NoSpeech);
    assert!(!heard_speech);
    assert!(
        duration >= Duration::from_millis(960) && duration <= Duration::from_millis(1040),
        "{duration:?}"
    );
    assert!(pcm.iter().all(|&s| s == 0));
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn recording_ends_with_no_speech_when_no_packets_arrive() {
    let peer = udp().await; // never sends
    let mut s = session().await;
    s.start(peer.local_addr().unwrap(), Codec::Pcmu, None);
    let dir = tempfile::tempdir().unwrap();
    s.start_recording(endpointed(dir.path().join("none.wav"), 1000));
    let t0 = Instant::now();
    let (reason, duration, heard_speech, _) = recording_done(&mut s).await;
    assert_eq!(reason, RecordEnd::NoSpeech);
    assert!(!heard_speech);
    assert_eq!(duration, Duration::ZERO);
    let waited = Instant::now() - t0;
    assert!(waited >= Duration::from_millis(1000) && waited <= Duration::from_millis(1600));
    s.close().await;
}

/// The same path on the real clock and a multi-threaded runtime, as in production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_prompt_and_dtmf_between_sessions() {
    let (mut a, mut b) = pair().await;
    let started = std::time::Instant::now();
    a.play(vec![prompt(tone(500.0, 400, 0.3))], false);
    assert!(matches!(
        event_within(&mut a, Duration::from_secs(2)).await,
        Some(MediaEvent::PlaybackDone { interrupted: false })
    ));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(370) && took < Duration::from_millis(700),
        "{took:?}"
    );
    a.send_dtmf('9', Duration::from_millis(60));
    assert!(matches!(
        event_within(&mut b, Duration::from_secs(1)).await,
        Some(MediaEvent::Dtmf('9'))
    ));
    let sa = a.close().await;
    let sb = b.close().await;
    assert!(
        sa.packets_sent >= 20 && sb.packets_received >= 20,
        "{sa:?} {sb:?}"
    );
    assert_eq!(sb.packets_dropped, 0);
}
