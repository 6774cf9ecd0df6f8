//! Speech barge-in between two sessions on loopback, on tokio's paused clock: session `a`
//! is the gateway playing a prompt, session `b` the caller, whose "voice" is a prompt it
//! plays back (so it arrives paced at 20 ms like a phone's).

use super::*;
use crate::media::onset::OnsetConfig;
use crate::media::prompt::Prompt;
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

async fn pair() -> (MediaSession, MediaSession) {
    let cfg = SessionConfig::new(Duration::from_secs(30));
    let a = MediaSession::spawn(UdpSocket::bind("127.0.0.1:0").await.unwrap(), cfg.clone());
    let b = MediaSession::spawn(UdpSocket::bind("127.0.0.1:0").await.unwrap(), cfg);
    a.start(b.local_addr(), Codec::Pcmu, Some(101));
    b.start(a.local_addr(), Codec::Pcmu, Some(101));
    (a, b)
}

fn tone(freq: f32, ms: u32, amplitude: f32) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            (amplitude * 32767.0 * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

fn prompt(pcm: Vec<i16>) -> SharedPrompt {
    Arc::new(Prompt::from_pcm("test", pcm))
}

/// The demo caller's Mandarin message (real speech, 8 kHz).
fn caller_speech() -> Vec<i16> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/demo/caller_zh.wav");
    Prompt::from_wav_file(&path).unwrap().pcm().to_vec()
}

fn speech_barge_in() -> BargeIn {
    BargeIn {
        dtmf: true,
        speech: Some(SpeechBargeIn {
            onset: OnsetConfig::default(),
            preroll: Duration::from_millis(500),
        }),
    }
}

fn spec(path: std::path::PathBuf) -> RecordSpec {
    RecordSpec {
        path,
        max_duration: Duration::from_secs(30),
        endpointer: None,
        stop_digit: Some('#'),
        utterance_pause: None,
    }
}

async fn event_within(s: &mut MediaSession, d: Duration) -> Option<MediaEvent> {
    timeout(d, s.next_event()).await.ok().flatten()
}

async fn recording(s: &mut MediaSession) -> Arc<[i16]> {
    loop {
        match event_within(s, Duration::from_secs(10)).await {
            Some(MediaEvent::RecordingDone { pcm, .. }) => return pcm,
            Some(_) => continue,
            None => panic!("no RecordingDone"),
        }
    }
}

fn correlation(a: &[i16], b: &[i16]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn through_pcmu(pcm: &[i16]) -> Vec<i16> {
    pcm.iter()
        .map(|&s| Codec::Pcmu.decode_sample(Codec::Pcmu.encode_sample(s)))
        .collect()
}

/// Where the caller's prompt (the gateway's tone) stops in what the caller heard: the end
/// of the last 20 ms frame with any of it, in samples.
fn end_of_sound(heard: &[i16]) -> usize {
    heard
        .chunks(160)
        .rposition(|f| f.iter().any(|s| s.unsigned_abs() > 1000))
        .map_or(0, |i| (i + 1) * 160)
}

#[tokio::test(start_paused = true)]
async fn speech_stops_playback_and_the_recording_starts_with_the_preroll() {
    let (mut a, mut b) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    // the caller records what it hears, to see when the prompt stopped
    b.start_recording(spec(dir.path().join("heard.wav")));
    a.play_with(vec![prompt(tone(440.0, 6000, 0.3))], speech_barge_in());
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let speech = caller_speech();
    let spoke_at = Instant::now();
    b.play(vec![prompt(speech.clone())], false);
    match event_within(&mut a, Duration::from_secs(3)).await {
        Some(MediaEvent::SpeechStarted) => {}
        other => panic!("SpeechStarted expected, got {other:?}"),
    }
    let onset = Instant::now() - spoke_at;
    assert!(
        onset >= Duration::from_millis(250) && onset <= Duration::from_millis(450),
        "barge-in {onset:?} after the caller started"
    );
    assert!(matches!(
        event_within(&mut a, Duration::from_millis(100)).await,
        Some(MediaEvent::PlaybackDone { interrupted: true })
    ));
    // what the IVR does next: record at once, with the pre-roll
    a.start_recording_with_preroll(spec(dir.path().join("msg.wav")), Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.stop_recording();
    let msg = recording(&mut a).await;
    b.stop_recording();
    let heard = recording(&mut b).await;

    // The caller heard 1 s of prompt before speaking, then the onset time, then nothing:
    // the prompt stopped within a frame or two of the onset.
    let heard_ms = end_of_sound(&heard) as u64 / 8;
    let expected = 1000 + onset.as_millis() as u64;
    assert!(
        heard_ms <= expected + 60 && heard_ms + 100 >= expected,
        "prompt heard for {heard_ms} ms, onset at {expected} ms"
    );

    // The message starts with the caller's first words: the first 200 ms of speech (as
    // PCMU carried them) sit within the recording's first 500 ms.
    let wire = through_pcmu(&speech);
    let first = &wire[..1600];
    let (lag, best) = (0..4000)
        .map(|lag| (lag, correlation(&msg[lag..lag + first.len()], first)))
        .fold((0, f64::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
    assert!(best > 0.999, "first words correlate {best} at {lag}");
    assert_eq!(&msg[lag..lag + first.len()], first, "bit-exact pre-roll");
    // and what follows is the rest of the speech, without a gap or a repeat at the seam
    let rest = msg.len() - lag;
    assert!(
        rest >= 8 * 1500,
        "recording {rest} samples after the speech start"
    );
    assert_eq!(&msg[lag..lag + 8 * 1500], &wire[..8 * 1500]);
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn noise_quiet_audio_and_clicks_do_not_stop_playback() {
    let (mut a, b) = pair().await;
    let mut line = Vec::new();
    // steady noise switching on, 1.5 s (xorshift white noise at about -25 dBFS)
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..8 * 1500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        line.push(((x >> 48) as i16) / 10);
    }
    // comfort-noise-level "speech": real speech 40 dB down
    line.extend(caller_speech()[..8 * 1500].iter().map(|&s| s / 100));
    // clicks: one loud frame every 300 ms
    for _ in 0..5 {
        line.extend([20000i16, -20000].repeat(80));
        line.extend(vec![0i16; 8 * 280]);
    }
    let prompt_ms = 4500;
    a.play_with(vec![prompt(tone(440.0, prompt_ms, 0.3))], speech_barge_in());
    b.play(vec![prompt(line)], false);
    let t0 = Instant::now();
    match event_within(&mut a, Duration::from_secs(6)).await {
        Some(MediaEvent::PlaybackDone { interrupted: false }) => {}
        other => panic!("the prompt must play to its end, got {other:?}"),
    }
    assert!(Instant::now() - t0 >= Duration::from_millis(u64::from(prompt_ms) - 40));
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn without_speech_barge_in_talking_does_not_stop_playback() {
    let (mut a, b) = pair().await;
    a.play(vec![prompt(tone(440.0, 3000, 0.3))], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.play(vec![prompt(caller_speech())], false);
    match event_within(&mut a, Duration::from_secs(4)).await {
        Some(MediaEvent::PlaybackDone { interrupted: false }) => {}
        other => panic!("the prompt must play to its end, got {other:?}"),
    }
    // The next prompt asks for speech barge-in while the caller is still talking: it stops
    // as soon as the detector has heard enough (the caller has been talking all along).
    a.play_with(vec![prompt(tone(440.0, 3000, 0.3))], speech_barge_in());
    let t0 = Instant::now();
    assert!(matches!(
        event_within(&mut a, Duration::from_secs(1)).await,
        Some(MediaEvent::SpeechStarted)
    ));
    assert!(Instant::now() - t0 <= Duration::from_millis(500));
    a.close().await;
    b.close().await;
}
