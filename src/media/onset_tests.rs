use super::*;
use crate::media::FRAME_SAMPLES;

/// Uniform white noise with RMS `dbfs` (xorshift, deterministic).
struct Noise(u64);

impl Noise {
    fn samples(&mut self, dbfs: f32, n: usize) -> Vec<i16> {
        let a = 32768.0 * 10f64.powf(f64::from(dbfs) / 20.0) * 3f64.sqrt();
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
                ((2.0 * u - 1.0) * a).round() as i16
            })
            .collect()
    }
}

/// Speech-like audio: a 160 Hz buzz with harmonics in "syllables" of 200 ms at `dbfs`
/// (RMS, roughly) separated by 60 ms dips 10 dB down, as words rise and fall.
pub(crate) fn syllables(dbfs: f32, ms: usize) -> Vec<i16> {
    let amp = 32768.0 * 10f64.powf(f64::from(dbfs) / 20.0) * 1.2;
    (0..ms * 8)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let in_syllable = (i / 8) % 260 < 200;
            let env = if in_syllable { 1.0 } else { 0.316 };
            let w = 2.0 * std::f64::consts::PI * 160.0 * t;
            let v = w.sin() + 0.5 * (2.0 * w).sin() + 0.3 * (3.0 * w).sin();
            (amp * env * v / 1.2).round() as i16
        })
        .collect()
}

fn feed(d: &mut OnsetDetector, pcm: &[i16], packet: usize) -> Option<usize> {
    // the sample count after which the detector first said "talking"
    let mut fed = 0;
    for p in pcm.chunks(packet) {
        fed += p.len();
        if d.push(p) {
            return Some(fed);
        }
    }
    None
}

fn ms(samples: usize) -> usize {
    samples / 8
}

#[test]
fn speech_after_silence_is_an_onset_after_min_speech_not_before() {
    for packet in [160, 80, 240] {
        let mut d = OnsetDetector::default();
        let mut audio = vec![0i16; 8 * 1000];
        audio.extend(syllables(-20.0, 1000));
        let at = feed(&mut d, &audio, packet).expect("onset");
        let after_start = ms(at) - 1000;
        assert!(
            (250..=300).contains(&after_start),
            "onset {after_start} ms into the speech (packets of {packet})"
        );
    }
}

#[test]
fn real_speech_is_detected_within_a_third_of_a_second() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/demo/caller_zh.wav");
    let speech = crate::media::prompt::Prompt::from_wav_file(&path).unwrap();
    let pcm: Vec<i16> = speech.pcm().to_vec();
    let first_loud = pcm
        .chunks(FRAME_SAMPLES)
        .position(|f| frame_dbfs(f) > -35.0)
        .unwrap()
        * FRAME_SAMPLES;
    let mut d = OnsetDetector::default();
    // a quiet line before the caller speaks
    let mut audio = Noise(7).samples(-60.0, 8 * 800);
    audio.extend(&pcm);
    let at = feed(&mut d, &audio, 160).expect("onset") - 8 * 800;
    let latency = ms(at.saturating_sub(first_loud));
    assert!(
        (240..=400).contains(&latency),
        "{latency} ms after the first loud frame"
    );
}

#[test]
fn clicks_and_short_bursts_are_not_speech() {
    let mut d = OnsetDetector::default();
    let mut audio = Vec::new();
    for i in 0..30 {
        audio.extend(vec![0i16; 8 * 300]);
        // a click: one or two loud frames, then a burst of 120 ms
        let click: Vec<i16> = (0..(i % 2 + 1) * FRAME_SAMPLES)
            .map(|k| if k % 2 == 0 { 20000 } else { -20000 })
            .collect();
        audio.extend(click);
        audio.extend(vec![0i16; 8 * 300]);
        audio.extend(syllables(-15.0, 120));
    }
    assert_eq!(feed(&mut d, &audio, 160), None);
}

#[test]
fn steady_noise_is_not_speech_whenever_it_starts() {
    // Line noise from the start: the floor is the noise.
    let mut d = OnsetDetector::default();
    let audio = Noise(1).samples(-25.0, 8 * 10_000);
    assert_eq!(feed(&mut d, &audio, 160), None);
    // Noise switching on mid-call, 50 dB above a quiet line and far faster than the floor
    // rises: loud enough, above the floor, but flat.
    let mut d = OnsetDetector::default();
    let mut audio = Noise(2).samples(-75.0, 8 * 2000);
    audio.extend(Noise(3).samples(-25.0, 8 * 10_000));
    assert_eq!(feed(&mut d, &audio, 160), None);
    // meanwhile the floor is learning the new noise (2.5 dB/s)
    assert!(d.noise_floor().unwrap() > -55.0, "{:?}", d.noise_floor());
    // A hum (a pure tone) likewise.
    let mut d = OnsetDetector::default();
    let mut audio = vec![0i16; 8 * 500];
    audio.extend((0..8 * 5000).map(|i| {
        let t = i as f64 / 8000.0;
        (8000.0 * (2.0 * std::f64::consts::PI * 50.0 * t).sin()) as i16
    }));
    assert_eq!(feed(&mut d, &audio, 160), None);
}

#[test]
fn speech_over_steady_noise_is_detected() {
    let mut d = OnsetDetector::default();
    let mut noise = Noise(4);
    let mut audio = noise.samples(-45.0, 8 * 2000);
    let speech = syllables(-18.0, 1000);
    let bed = noise.samples(-45.0, speech.len());
    audio.extend(speech.iter().zip(&bed).map(|(&s, &n)| s.saturating_add(n)));
    let at = feed(&mut d, &audio, 160).expect("onset") - 8 * 2000;
    assert!((250..=320).contains(&ms(at)), "{} ms", ms(at));
}

#[test]
fn comfort_noise_level_speech_is_too_quiet() {
    let mut d = OnsetDetector::default();
    let mut audio = vec![0i16; 8 * 500];
    audio.extend(syllables(-55.0, 3000));
    assert_eq!(feed(&mut d, &audio, 160), None);
}

#[test]
fn echo_of_our_prompt_is_ignored_but_the_caller_over_it_is_not() {
    let loud_prompt = [Codec::Pcmu.encode_sample(9000); FRAME_SAMPLES]; // about -11 dBFS
    let run = |caller_dbfs: f32, prompt_playing: bool| {
        let mut d = OnsetDetector::default();
        d.push(&vec![0i16; 8 * 500]);
        let speech = syllables(caller_dbfs, 2000);
        for f in speech.chunks(FRAME_SAMPLES) {
            if prompt_playing {
                d.on_output_frame(Codec::Pcmu, &loud_prompt);
            } else {
                d.on_output_frame(Codec::Pcmu, &[0xff; FRAME_SAMPLES]);
            }
            if d.push(f) {
                return true;
            }
        }
        false
    };
    // echo returned about 22 dB down: ignored
    assert!(!run(-32.0, true));
    // the same level with nothing playing is a (quiet) caller
    assert!(run(-32.0, false));
    // a caller as loud as a normal talker over the prompt
    assert!(run(-20.0, true));
}

#[test]
fn short_gaps_do_not_end_a_run_and_longer_ones_do() {
    // 100 ms of speech, 60 ms gap, 200 ms of speech: one run of 300 ms
    let tone = |ms: usize| syllables(-20.0, ms);
    let mut d = OnsetDetector::default();
    let mut audio = vec![0i16; 8 * 500];
    audio.extend(tone(100));
    audio.extend(vec![0i16; 8 * 60]);
    audio.extend(tone(200));
    assert!(feed(&mut d, &audio, 160).is_some());
    // with 100 ms gaps between 100 ms pieces, runs never reach 250 ms
    let mut d = OnsetDetector::default();
    let mut audio = vec![0i16; 8 * 500];
    for _ in 0..20 {
        audio.extend(tone(100));
        audio.extend(vec![0i16; 8 * 100]);
    }
    assert_eq!(feed(&mut d, &audio, 160), None);
}

#[test]
fn min_speech_is_configurable() {
    let mut audio = vec![0i16; 8 * 500];
    audio.extend(syllables(-20.0, 1500));
    let mut d = OnsetDetector::new(OnsetConfig {
        min_speech: Duration::from_millis(600),
        ..OnsetConfig::default()
    });
    let at = ms(feed(&mut d, &audio, 160).unwrap()) - 500;
    assert!((600..=700).contains(&at), "{at} ms");
    assert_eq!(d.config().min_speech, Duration::from_millis(600));
    d.set_config(OnsetConfig::default());
    assert_eq!(d.config().min_speech, Duration::from_millis(250));
}
