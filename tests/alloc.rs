//! Proof that the media path allocates nothing per packet in the steady state.
//!
//! A counting global allocator wraps the system one; a real `MediaSession` plays a prompt
//! to a peer on loopback while the peer streams 20 ms packets back (in the second phase the
//! session records them through the end-pointer; in the third the prompt allows speech
//! barge-in, so every packet also goes through the onset detector and the pre-roll ring; in
//! the fourth a stranger streams at the port too, and every one of its packets is refused by
//! the strict source; in the fifth the session listens for a spoken request while the peer
//! talks in syllables, so every packet goes into the request being captured). After a
//! warm-up, the number
//! of allocations during a window of steady-state traffic is compared with the packets
//! handled. Its own binary (`harness = false`): the libtest harness would allocate on other
//! threads while we count.

use hotline_gateway::media::prompt::Prompt;
use hotline_gateway::media::rtp::{RtpSender, MAX_DATAGRAM};
use hotline_gateway::media::session::conversation::ConversationRecorder;
use hotline_gateway::media::session::{
    BargeIn, ListenSpec, MediaEvent, MediaSession, OnsetConfig, RecordSpec, SessionConfig,
    SpeechBargeIn,
};
use hotline_gateway::media::vad::EndpointerConfig;
use hotline_gateway::media::{Codec, FRAME_SAMPLES};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// The caller: a plain thread that sends a 20 ms RTP frame every 20 ms and drains what the
/// session sends, with buffers allocated before it starts (so it adds nothing to the count).
fn spawn_peer(
    sock: UdpSocket,
    to: std::net::SocketAddr,
    ssrc: u32,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    syllables: bool,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut tx = RtpSender::with_state(ssrc, 1, 0);
        let mut frame = [0u8; FRAME_SAMPLES];
        // a loud tone, so the end-pointer hears speech and keeps recording
        for (i, b) in frame.iter_mut().enumerate() {
            let s = if (i / 10) % 2 == 0 { 12000 } else { -12000 };
            *b = Codec::Pcmu.encode_sample(s);
        }
        // syllables: 120 ms loud, 60 ms quiet, so the onset detector hears a talker
        let mut quiet = [0u8; FRAME_SAMPLES];
        for (i, b) in quiet.iter_mut().enumerate() {
            let s = if (i / 10) % 2 == 0 { 800 } else { -800 };
            *b = Codec::Pcmu.encode_sample(s);
        }
        let mut out = [0u8; MAX_DATAGRAM];
        let mut inbuf = [0u8; MAX_DATAGRAM];
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = start + Duration::from_millis(20 * sent);
            if Instant::now() >= due {
                let now = if syllables && sent % 9 >= 6 {
                    &quiet
                } else {
                    &frame
                };
                let n = tx.build_audio(0, now, &mut out).unwrap();
                sock.send_to(&out[..n], to).unwrap();
                sent += 1;
            }
            if sock.recv_from(&mut inbuf).is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
        sent
    })
}

struct Window {
    allocs: u64,
    packets_out: u64,
    packets_in: u64,
}

/// Run `warm` then `window` of two-way traffic; allocations counted in the window only.
/// `speech`: the prompt may be stopped by speech (the peer's flat tone never does).
/// `stranger`: a second peer streams at the session from another port, with its own SSRC,
/// from half-way through the warm-up (after the caller's source is learnt).
/// `listen`: the session listens for a spoken request and the peer talks in syllables.
fn measure(
    record: bool,
    speech: bool,
    stranger: bool,
    listen: bool,
    warm: Duration,
    window: Duration,
) -> Window {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let prompt = Arc::new(Prompt::from_wav_file(&repo.join("prompts/zh/menu.wav")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut session = MediaSession::spawn(sock, SessionConfig::new(Duration::from_secs(30)));
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_addr = peer.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let thread = spawn_peer(
            peer,
            session.local_addr(),
            0x1234,
            stop.clone(),
            received.clone(),
            listen,
        );
        session.start(peer_addr, Codec::Pcmu, Some(101));
        if listen {
            session.listen(Some(ListenSpec {
                speech: SpeechBargeIn {
                    onset: OnsetConfig::default(),
                    preroll: Duration::from_millis(1500),
                },
                endpointer: EndpointerConfig {
                    speech_threshold_dbfs: -40.0,
                    trailing_silence: Duration::from_millis(600),
                    no_speech_timeout: Duration::from_secs(8),
                },
                max_duration: Duration::from_secs(8),
            }));
        }
        // longer than the run: the prompt plays throughout the window
        session.play_with(
            vec![prompt.clone(), prompt.clone()],
            BargeIn {
                dtmf: true,
                speech: speech.then(|| SpeechBargeIn {
                    onset: OnsetConfig::default(),
                    preroll: Duration::from_millis(500),
                }),
            },
        );
        if record {
            session.start_recording(RecordSpec {
                path: dir.path().join("message.wav"),
                max_duration: Duration::from_secs(120),
                endpointer: Some(EndpointerConfig {
                    speech_threshold_dbfs: -40.0,
                    trailing_silence: Duration::from_millis(1500),
                    no_speech_timeout: Duration::from_secs(8),
                }),
                stop_digit: Some('#'),
                // the utterance cutter runs on every frame too (the flat tone never pauses)
                utterance_pause: Some(Duration::from_millis(600)),
            });
        }
        tokio::time::sleep(warm / 2).await;
        let stranger_received = Arc::new(AtomicU64::new(0));
        let stranger = stranger.then(|| {
            spawn_peer(
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                session.local_addr(),
                0x5757,
                stop.clone(),
                stranger_received.clone(),
                false,
            )
        });
        tokio::time::sleep(warm / 2).await;
        let (a0, in0) = (allocs(), received.load(Ordering::Relaxed));
        tokio::time::sleep(window).await;
        let (a1, in1) = (allocs(), received.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        let peer_sent = thread.join().unwrap();
        let stranger_sent = stranger.map(|t| t.join().unwrap());
        // listening really captured: the talker was heard starting
        let mut heard_start = false;
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(5), session.next_event()).await
        {
            heard_start |= matches!(ev, MediaEvent::HeardStart);
        }
        assert!(
            !listen || heard_start,
            "the listener never heard the talker"
        );
        let stats = session.close().await;
        assert!(stats.packets_received > 0 && peer_sent > 0);
        if let Some(sent) = stranger_sent {
            assert!(sent > 0 && stats.packets_dropped >= sent / 2, "{stats:?}");
            assert_eq!(stranger_received.load(Ordering::Relaxed), 0);
        }
        Window {
            allocs: a1 - a0,
            packets_out: in1 - in0,
            packets_in: (window.as_millis() / 20) as u64,
        }
    })
}

/// Two sessions bridged (`MediaSession::bridge`), each streaming with its own peer; with
/// `recorded`, the conversation is written too (`record_bridged`: the taps and the writer
/// thread, which is counted as well).
fn measure_bridge(recorded: bool, warm: Duration, window: Duration) -> Window {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (end_a, end_b) = hotline_gateway::media::session::bridge::pair();
        let path =
            std::env::temp_dir().join(format!("alloc-conversation-{}.wav", std::process::id()));
        let (end_a, end_b, recorder) = if recorded {
            let (recorder, left, right) = ConversationRecorder::start(path.clone());
            (end_a.recorded(right), end_b.recorded(left), Some(recorder))
        } else {
            (end_a, end_b, None)
        };
        let mut sessions = Vec::new();
        let mut peers = Vec::new();
        for (ssrc, end) in [(0xa1u32, end_a), (0xb2, end_b)] {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let session = MediaSession::spawn(sock, SessionConfig::new(Duration::from_secs(30)));
            let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
            session.start(peer.local_addr().unwrap(), Codec::Pcmu, Some(101));
            session.bridge(Some(end));
            peers.push(spawn_peer(
                peer,
                session.local_addr(),
                ssrc,
                stop.clone(),
                received.clone(),
                false,
            ));
            sessions.push(session);
        }
        tokio::time::sleep(warm).await;
        let (a0, in0) = (allocs(), received.load(Ordering::Relaxed));
        tokio::time::sleep(window).await;
        let (a1, in1) = (allocs(), received.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        for p in peers {
            assert!(p.join().unwrap() > 0);
        }
        for s in sessions {
            let stats = s.close().await;
            assert!(stats.packets_received > 0, "{stats:?}");
        }
        if let Some(recorder) = recorder {
            let written = recorder
                .finish()
                .await
                .expect("the conversation is written");
            assert!(written.duration >= window, "{written:?}");
            let _ = std::fs::remove_file(&path);
        }
        Window {
            allocs: a1 - a0,
            packets_out: in1 - in0,
            packets_in: 2 * (window.as_millis() / 20) as u64,
        }
    })
}

fn main() {
    // `cargo test -- --list` (and IDEs) ask for the test names without running them.
    if std::env::args().any(|a| a == "--list") {
        println!("steady_state_media_is_allocation_free: test");
        return;
    }
    let window = Duration::from_secs(3);
    let warm = Duration::from_millis(1500);

    // Playing a prompt and receiving audio: nothing at all may allocate.
    let w = measure(false, false, false, false, warm, window);
    println!(
        "play + receive: {} allocations for {} packets sent and ~{} received",
        w.allocs, w.packets_out, w.packets_in
    );
    assert!(
        w.packets_out >= 100,
        "the session must have sent audio ({})",
        w.packets_out
    );
    assert_eq!(w.allocs, 0, "allocations in the steady state");

    // Recording as well: the message buffer grows by one second of audio at a time
    // (recorder.rs), so at most one allocation per 50 packets received, none per packet.
    let w = measure(true, false, false, false, warm, window);
    println!(
        "play + record: {} allocations for {} packets sent and ~{} received",
        w.allocs, w.packets_out, w.packets_in
    );
    let seconds = window.as_secs() + 1;
    assert!(w.packets_out >= 100);
    assert!(
        w.allocs <= seconds,
        "{} allocations in {} s of recording: more than the 1-per-second buffer growth",
        w.allocs,
        window.as_secs()
    );

    // Speech barge-in armed: the onset detector and the pre-roll ring (allocated when the
    // play command arrived) see every packet, and allocate nothing.
    let w = measure(false, true, false, false, warm, window);
    println!(
        "play with speech barge-in + receive: {} allocations for {} packets sent and ~{} received",
        w.allocs, w.packets_out, w.packets_in
    );
    assert!(w.packets_out >= 100);
    assert_eq!(
        w.allocs, 0,
        "allocations in the steady state with speech barge-in"
    );

    // A stranger streams at the port: each of its packets is judged and dropped, and
    // nothing allocates for it.
    let w = measure(false, false, true, false, warm, window);
    println!(
        "play + receive with a stranger refused: {} allocations for {} packets sent",
        w.allocs, w.packets_out
    );
    assert!(w.packets_out >= 100);
    assert_eq!(w.allocs, 0, "allocations while refusing a stranger");

    // Listening for a spoken request (the spoken menu) while the caller talks: the capture
    // buffer was allocated by the listen command; a request is handed out (one copy) when
    // the caller pauses or after 8 s, so at most one allocation in the window.
    let w = measure(false, false, false, true, warm, window);
    println!(
        "play + listening to a talker: {} allocations for {} packets sent",
        w.allocs, w.packets_out
    );
    assert!(w.packets_out >= 100);
    assert!(w.allocs <= 1, "{} allocations while listening", w.allocs);

    // A transfer's bridge (issue 14): two sessions, each with its peer, relaying each
    // other's audio both ways; nothing allocates per packet.
    for recorded in [false, true] {
        let w = measure_bridge(recorded, warm, window);
        println!(
            "bridge, both ways (recorded: {recorded}): {} allocations for {} packets relayed to the peers",
            w.allocs, w.packets_out
        );
        assert!(
            w.packets_out >= 200,
            "both peers hear the bridge ({})",
            w.packets_out
        );
        assert_eq!(
            w.allocs, 0,
            "allocations while bridging (recorded: {recorded})"
        );
    }
    println!("test alloc::steady_state_media_is_allocation_free ... ok");
}
