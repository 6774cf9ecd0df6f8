use super::*;
use crate::media::FRAME_SAMPLES;

const SILENCE: [i16; FRAME_SAMPLES] = [0; FRAME_SAMPLES];

fn cfg(trailing_ms: u64, timeout_ms: u64) -> EndpointerConfig {
    EndpointerConfig {
        speech_threshold_dbfs: -40.0,
        trailing_silence: Duration::from_millis(trailing_ms),
        no_speech_timeout: Duration::from_millis(timeout_ms),
    }
}

/// A sine frame whose RMS is `dbfs`; `index` keeps the phase continuous across frames.
fn tone_frame(dbfs: f32, index: usize) -> [i16; FRAME_SAMPLES] {
    let amp = 32768.0 * 10f64.powf(f64::from(dbfs) / 20.0) * std::f64::consts::SQRT_2;
    let mut f = [0i16; FRAME_SAMPLES];
    for (i, s) in f.iter_mut().enumerate() {
        let t = (index * FRAME_SAMPLES + i) as f64 / 8000.0;
        *s = (amp * (2.0 * std::f64::consts::PI * 440.0 * t).sin()).round() as i16;
    }
    f
}

/// Uniform white noise with RMS `dbfs` (xorshift, deterministic).
struct Noise(u64);

impl Noise {
    fn frame(&mut self, dbfs: f32) -> [i16; FRAME_SAMPLES] {
        // Uniform on [-a, a] has RMS a/√3.
        let a = 32768.0 * 10f64.powf(f64::from(dbfs) / 20.0) * 3f64.sqrt();
        let mut f = [0i16; FRAME_SAMPLES];
        for s in f.iter_mut() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            *s = ((2.0 * u - 1.0) * a).round() as i16;
        }
        f
    }
}

#[test]
fn dbfs_of_reference_signals() {
    assert_eq!(frame_dbfs(&SILENCE), -100.0);
    assert_eq!(frame_dbfs(&[]), -100.0);
    let square: Vec<i16> = (0..160)
        .map(|i| if i % 2 == 0 { i16::MIN } else { i16::MIN + 1 })
        .collect();
    assert!(frame_dbfs(&square).abs() < 0.01, "{}", frame_dbfs(&square));
    for dbfs in [-3.0f32, -20.0, -40.0, -60.0] {
        let got = frame_dbfs(&tone_frame(dbfs, 0));
        assert!((got - dbfs).abs() < 0.1, "{dbfs}: {got}");
    }
    // One LSB of noise is about -90 dBFS, still above the floor.
    let lsb: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { 1 } else { -1 }).collect();
    assert!((frame_dbfs(&lsb) + 90.3).abs() < 0.1);
}

#[test]
fn silence_gives_no_speech_exactly_at_the_timeout_frame() {
    let mut ep = Endpointer::new(cfg(800, 3000)); // 150 frames
    for i in 1..150 {
        assert_eq!(ep.push_frame(&SILENCE), Endpoint::Waiting, "frame {i}");
    }
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::NoSpeech);
    assert!(!ep.heard_speech());
    // Final: even speech afterwards does not revive it.
    for i in 0..10 {
        assert_eq!(ep.push_frame(&tone_frame(-20.0, i)), Endpoint::NoSpeech);
    }
}

#[test]
fn tone_then_silence_ends_after_trailing_silence() {
    let mut ep = Endpointer::new(cfg(800, 5000)); // trailing = 40 frames
    for _ in 0..5 {
        assert_eq!(ep.push_frame(&SILENCE), Endpoint::Waiting);
    }
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 0)), Endpoint::Waiting);
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 1)), Endpoint::Waiting);
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 2)), Endpoint::Speaking);
    assert!(ep.heard_speech());
    assert_eq!(ep.speech_start(), Some(Duration::from_millis(100)));
    for i in 3..50 {
        assert_eq!(ep.push_frame(&tone_frame(-20.0, i)), Endpoint::Speaking);
    }
    for i in 1..40 {
        assert_eq!(ep.push_frame(&SILENCE), Endpoint::Speaking, "silence {i}");
    }
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::EndOfSpeech);
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 0)), Endpoint::EndOfSpeech);
}

#[test]
fn noise_burst_then_silence_ends_after_trailing_silence() {
    let mut ep = Endpointer::new(cfg(500, 5000)); // trailing = 25 frames
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut states = Vec::new();
    for _ in 0..20 {
        states.push(ep.push_frame(&noise.frame(-20.0)));
    }
    assert_eq!(
        &states[..3],
        [Endpoint::Waiting, Endpoint::Waiting, Endpoint::Speaking]
    );
    assert!(states[2..].iter().all(|&s| s == Endpoint::Speaking));
    for i in 1..25 {
        assert_eq!(
            ep.push_frame(&noise.frame(-70.0)),
            Endpoint::Speaking,
            "{i}"
        );
    }
    assert_eq!(ep.push_frame(&noise.frame(-70.0)), Endpoint::EndOfSpeech);
}

#[test]
fn a_pause_shorter_than_trailing_silence_does_not_end_the_message() {
    let mut ep = Endpointer::new(cfg(800, 5000)); // 40 frames
    for i in 0..10 {
        ep.push_frame(&tone_frame(-20.0, i));
    }
    for _ in 0..39 {
        assert_eq!(ep.push_frame(&SILENCE), Endpoint::Speaking);
    }
    // Speech resumes: the silence count starts again from zero.
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 0)), Endpoint::Speaking);
    for _ in 0..39 {
        assert_eq!(ep.push_frame(&SILENCE), Endpoint::Speaking);
    }
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::EndOfSpeech);
}

#[test]
fn a_single_click_does_not_start_speech() {
    let mut ep = Endpointer::new(cfg(800, 2000)); // 100 frames
    let mut click = [0i16; FRAME_SAMPLES];
    click[..8].copy_from_slice(&[30000, -30000, 30000, -30000, 20000, -20000, 9000, -9000]);
    assert!(frame_dbfs(&click) > -40.0, "the click itself is loud");
    for i in 1..=99 {
        let f = if i == 10 || i == 50 { &click } else { &SILENCE };
        assert_eq!(ep.push_frame(f), Endpoint::Waiting, "frame {i}");
    }
    // Two loud frames in a row are still not speech.
    let mut ep2 = Endpointer::new(cfg(800, 2000));
    assert_eq!(ep2.push_frame(&click), Endpoint::Waiting);
    assert_eq!(ep2.push_frame(&click), Endpoint::Waiting);
    assert_eq!(ep2.push_frame(&SILENCE), Endpoint::Waiting);
    assert!(!ep2.heard_speech());
    // And the clicks did not reset the no-speech clock.
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::NoSpeech);
}

#[test]
fn low_level_noise_stays_waiting_then_times_out() {
    let mut ep = Endpointer::new(cfg(800, 4000)); // 200 frames
    let mut noise = Noise(42);
    for i in 1..200 {
        let f = noise.frame(-60.0);
        assert_eq!(ep.push_frame(&f), Endpoint::Waiting, "frame {i}");
    }
    assert_eq!(ep.push_frame(&noise.frame(-60.0)), Endpoint::NoSpeech);
    assert!(!ep.heard_speech());
}

#[test]
fn speech_starting_at_the_deadline_is_not_cut_off() {
    let mut ep = Endpointer::new(cfg(800, 1000)); // 50 frames
    for _ in 1..=48 {
        assert_eq!(ep.push_frame(&SILENCE), Endpoint::Waiting);
    }
    // Frames 49, 50, 51 are speech: the run in progress at frame 50 may confirm.
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 0)), Endpoint::Waiting);
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 1)), Endpoint::Waiting);
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 2)), Endpoint::Speaking);
    // Once speaking, the no-speech timeout no longer applies.
    for i in 3..200 {
        assert_eq!(ep.push_frame(&tone_frame(-20.0, i)), Endpoint::Speaking);
    }
}

#[test]
fn a_run_broken_after_the_deadline_times_out_at_once() {
    let mut ep = Endpointer::new(cfg(800, 1000)); // 50 frames
    for _ in 1..=49 {
        ep.push_frame(&SILENCE);
    }
    assert_eq!(ep.push_frame(&tone_frame(-20.0, 0)), Endpoint::Waiting);
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::NoSpeech);
}

#[test]
fn time_is_counted_in_samples_not_calls() {
    // 10 ms frames (ptime 10): the timeout still falls at 1 s of audio, i.e. call 100.
    let mut ep = Endpointer::new(cfg(800, 1000));
    let half = [0i16; FRAME_SAMPLES / 2];
    for _ in 1..100 {
        assert_eq!(ep.push_frame(&half), Endpoint::Waiting);
    }
    assert_eq!(ep.push_frame(&half), Endpoint::NoSpeech);
    // Empty frames carry no time.
    let mut ep = Endpointer::new(cfg(800, 20));
    assert_eq!(ep.push_frame(&[]), Endpoint::Waiting);
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::NoSpeech);
}

#[test]
fn reset_starts_a_new_message() {
    let mut ep = Endpointer::new(cfg(20, 1000));
    for i in 0..3 {
        ep.push_frame(&tone_frame(-20.0, i));
    }
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::EndOfSpeech);
    ep.reset();
    assert_eq!(ep.state(), Endpoint::Waiting);
    assert!(!ep.heard_speech());
    assert_eq!(ep.push_frame(&SILENCE), Endpoint::Waiting);
}
