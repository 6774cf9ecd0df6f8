//! The caller's message, accumulated in memory while the call is live.
//!
//! Samples are placed on the sender's RTP timeline: a gap in timestamps (lost packets,
//! silence suppression, a DTMF event replacing audio) is filled with silence, so the WAV
//! keeps real time and the end-pointer sees the silence. Late or duplicate packets (behind
//! the timeline) are not recorded twice. Nothing is written to disk on the media task: the
//! WAV is written by `spawn_blocking` once the recording ends.

use super::{RecordEnd, RecordSpec};
use crate::media::vad::{Endpoint, Endpointer};
use crate::media::{FRAME_SAMPLES, SAMPLE_RATE};
use std::path::{Path, PathBuf};
use tokio::time::Instant;

/// Growth step of the sample buffer: one second, so a long message reallocates once a
/// second at most and a short one does not reserve minutes of memory up front.
const CHUNK: usize = SAMPLE_RATE as usize;
/// A timestamp jump larger than this is a new timeline (re-INVITE, new SSRC), not a gap.
const MAX_GAP_FILL: u32 = SAMPLE_RATE;
/// Wall-clock slack before "no packets at all" counts as no speech.
const NO_SPEECH_SLACK: std::time::Duration = std::time::Duration::from_millis(500);

static ZEROS: [i16; FRAME_SAMPLES] = [0; FRAME_SAMPLES];

pub(super) struct Recorder {
    spec: RecordSpec,
    started: Instant,
    samples: Vec<i16>,
    max_samples: usize,
    endpointer: Option<Endpointer>,
    /// Partial 20 ms frame for the end-pointer (peers may packetize at 10 or 30 ms).
    frame: [i16; FRAME_SAMPLES],
    frame_len: usize,
    /// Timestamp the next in-order packet should carry.
    expected_ts: Option<u32>,
    /// Utterance cutting (`spec.utterance_pause`, in samples; 0 = off).
    pause: u64,
    /// Sample where the next utterance starts (the previous cut).
    utterance_start: usize,
    /// Utterances handed out so far.
    utterances: u32,
    /// A speech frame arrived since the last cut (a pause alone is not an utterance).
    voiced_since_cut: bool,
    /// A cut made by the latest `push_*`, waiting for [`Recorder::take_utterance`].
    cut: Option<Utterance>,
}

/// One utterance of the recording in progress, cut at a pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Utterance {
    pub index: u32,
    /// Sample range in the recording.
    pub start: usize,
    pub end: usize,
}

/// A finished recording, ready to be written.
pub(super) struct Finished {
    pub path: PathBuf,
    pub reason: RecordEnd,
    pub samples: Vec<i16>,
    pub heard_speech: bool,
}

impl Recorder {
    pub fn new(spec: RecordSpec, now: Instant) -> Self {
        let max_samples = (spec.max_duration.as_millis() as usize).saturating_mul(8);
        let endpointer = spec.endpointer.map(Endpointer::new);
        let pause = spec
            .utterance_pause
            .map_or(0, |d| d.as_millis() as u64 * u64::from(SAMPLE_RATE) / 1000);
        Recorder {
            spec,
            started: now,
            samples: Vec::with_capacity(CHUNK.min(max_samples)),
            max_samples,
            endpointer,
            frame: [0; FRAME_SAMPLES],
            frame_len: 0,
            expected_ts: None,
            pause,
            utterance_start: 0,
            utterances: 0,
            voiced_since_cut: false,
            cut: None,
        }
    }

    /// The utterance the latest push completed, with its samples. One allocation per
    /// utterance (the copy handed to the transcriber), none per packet.
    pub fn take_utterance(&mut self) -> Option<(Utterance, std::sync::Arc<[i16]>)> {
        let u = self.cut.take()?;
        Some((u, self.samples[u.start..u.end].into()))
    }

    pub fn stop_digit(&self) -> Option<char> {
        self.spec.stop_digit
    }

    /// Forget the timestamp timeline (new SSRC): the next packet is recorded as is.
    pub fn reset_timeline(&mut self) {
        self.expected_ts = None;
    }

    /// Put audio heard before the recording started (the pre-roll) at its start. Call
    /// before the first packet: it is not placed on the RTP timeline.
    pub fn seed(&mut self, pcm: &[i16]) -> Option<RecordEnd> {
        if pcm.is_empty() {
            return None;
        }
        self.push_samples(pcm)
    }

    /// Record one decoded packet whose first sample has RTP timestamp `timestamp`.
    pub fn push_audio(&mut self, timestamp: u32, pcm: &[i16]) -> Option<RecordEnd> {
        if let Some(expected) = self.expected_ts {
            let ahead = timestamp.wrapping_sub(expected);
            if ahead > u32::MAX / 2 {
                return None; // behind the timeline: late or duplicate
            }
            if ahead > 0 && ahead <= MAX_GAP_FILL {
                let mut gap = ahead as usize;
                while gap > 0 {
                    let n = gap.min(FRAME_SAMPLES);
                    if let Some(end) = self.push_samples(&ZEROS[..n]) {
                        return Some(end);
                    }
                    gap -= n;
                }
            }
        }
        self.expected_ts = Some(timestamp.wrapping_add(pcm.len() as u32));
        self.push_samples(pcm)
    }

    fn push_samples(&mut self, pcm: &[i16]) -> Option<RecordEnd> {
        let room = self.max_samples - self.samples.len();
        let take = pcm.len().min(room);
        if self.samples.capacity() - self.samples.len() < take {
            self.samples.reserve_exact(CHUNK.max(take).min(room));
        }
        self.samples.extend_from_slice(&pcm[..take]);
        if let Some(ep) = self.endpointer.as_mut() {
            let mut rest = &pcm[..take];
            while !rest.is_empty() {
                let n = rest.len().min(FRAME_SAMPLES - self.frame_len);
                self.frame[self.frame_len..self.frame_len + n].copy_from_slice(&rest[..n]);
                self.frame_len += n;
                rest = &rest[n..];
                if self.frame_len == FRAME_SAMPLES {
                    self.frame_len = 0;
                    match ep.push_frame(&self.frame) {
                        Endpoint::EndOfSpeech => return Some(RecordEnd::EndOfSpeech),
                        Endpoint::NoSpeech => return Some(RecordEnd::NoSpeech),
                        Endpoint::Waiting => {}
                        Endpoint::Speaking => {
                            let silence = ep.silence_run();
                            if silence == 0 {
                                self.voiced_since_cut = true;
                            } else if self.pause > 0
                                && silence >= self.pause
                                && self.voiced_since_cut
                                && self.cut.is_none()
                            {
                                // Cut in the middle of the pause: the frame just fed ends
                                // at `samples.len() - rest.len()`.
                                let here = self.samples.len() - rest.len();
                                let end = here.saturating_sub((silence / 2) as usize);
                                let end = end.max(self.utterance_start);
                                self.cut = Some(Utterance {
                                    index: self.utterances,
                                    start: self.utterance_start,
                                    end,
                                });
                                self.utterances += 1;
                                self.utterance_start = end;
                                self.voiced_since_cut = false;
                            }
                        }
                    }
                }
            }
        }
        (self.samples.len() >= self.max_samples).then_some(RecordEnd::MaxDuration)
    }

    /// The next wall-clock instant at which the recording may have to end on its own.
    pub fn deadline(&self) -> Instant {
        let max = self.started + self.spec.max_duration;
        match &self.spec.endpointer {
            Some(cfg) if !self.heard_speech() => {
                max.min(self.started + cfg.no_speech_timeout + NO_SPEECH_SLACK)
            }
            _ => max,
        }
    }

    /// Wall-clock limits, for callers that stop sending packets altogether: the cap, and
    /// no speech when not a single voiced frame arrived within the no-speech timeout.
    pub fn on_tick(&self, now: Instant) -> Option<RecordEnd> {
        if now >= self.started + self.spec.max_duration {
            return Some(RecordEnd::MaxDuration);
        }
        match &self.spec.endpointer {
            Some(cfg)
                if !self.heard_speech()
                    && now >= self.started + cfg.no_speech_timeout + NO_SPEECH_SLACK =>
            {
                Some(RecordEnd::NoSpeech)
            }
            _ => None,
        }
    }

    fn heard_speech(&self) -> bool {
        self.endpointer.as_ref().is_some_and(|e| e.heard_speech())
    }

    pub fn finish(self, reason: RecordEnd) -> Finished {
        let heard_speech = self.heard_speech();
        Finished {
            path: self.spec.path,
            reason,
            samples: self.samples,
            heard_speech,
        }
    }
}

/// Write 8 kHz 16-bit mono; blocking, run it off the media task.
pub(super) fn write_wav(path: &Path, pcm: &[i16]) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    {
        let mut w16 = w.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            w16.write_sample(s);
        }
        w16.flush()?;
    }
    w.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn spec(max_ms: u64) -> RecordSpec {
        RecordSpec {
            path: PathBuf::from("/nonexistent/never-written.wav"),
            max_duration: Duration::from_millis(max_ms),
            endpointer: None,
            stop_digit: Some('#'),
            utterance_pause: None,
        }
    }

    #[test]
    fn gaps_are_filled_and_late_packets_ignored() {
        let mut r = Recorder::new(spec(10_000), Instant::now());
        let a = [1i16; 160];
        assert_eq!(r.push_audio(1000, &a), None);
        // packet 1160 lost; 1320 arrives
        assert_eq!(r.push_audio(1320, &a), None);
        // the lost packet arrives late: not inserted, not duplicated
        assert_eq!(r.push_audio(1160, &a), None);
        let f = r.finish(RecordEnd::Stopped);
        assert_eq!(f.samples.len(), 480);
        assert!(f.samples[..160].iter().all(|&s| s == 1));
        assert!(f.samples[160..320].iter().all(|&s| s == 0));
        assert!(f.samples[320..].iter().all(|&s| s == 1));
    }

    #[test]
    fn caps_at_max_duration_exactly() {
        let mut r = Recorder::new(spec(100), Instant::now()); // 800 samples
        let a = [5i16; 160];
        let mut end = None;
        for i in 0..10u32 {
            end = end.or(r.push_audio(i * 160, &a));
        }
        assert_eq!(end, Some(RecordEnd::MaxDuration));
        assert_eq!(r.finish(RecordEnd::MaxDuration).samples.len(), 800);
    }

    #[test]
    fn wall_clock_cap_without_packets() {
        let t0 = Instant::now();
        let r = Recorder::new(spec(1000), t0);
        assert_eq!(r.deadline(), t0 + Duration::from_secs(1));
        assert_eq!(r.on_tick(t0 + Duration::from_millis(999)), None);
        assert_eq!(
            r.on_tick(t0 + Duration::from_secs(1)),
            Some(RecordEnd::MaxDuration)
        );
    }

    fn tone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| if (i / 8) % 2 == 0 { 8000 } else { -8000 })
            .collect()
    }

    fn endpointed_spec(pause_ms: Option<u64>) -> RecordSpec {
        RecordSpec {
            endpointer: Some(crate::media::vad::EndpointerConfig {
                speech_threshold_dbfs: -40.0,
                trailing_silence: Duration::from_millis(1500),
                no_speech_timeout: Duration::from_secs(8),
            }),
            utterance_pause: pause_ms.map(Duration::from_millis),
            ..spec(60_000)
        }
    }

    /// Feed `pcm` as 20 ms packets; collect the utterances cut along the way.
    fn feed(r: &mut Recorder, pcm: &[i16], ts: &mut u32) -> Vec<(Utterance, Arc<[i16]>)> {
        let mut cuts = Vec::new();
        for chunk in pcm.chunks(160) {
            assert_eq!(r.push_audio(*ts, chunk), None);
            *ts += chunk.len() as u32;
            cuts.extend(r.take_utterance());
        }
        cuts
    }

    #[test]
    fn a_pause_cuts_an_utterance_and_the_parts_make_the_whole() {
        let mut r = Recorder::new(endpointed_spec(Some(600)), Instant::now());
        let mut ts = 0;
        let mut message = vec![0i16; 2400]; // 300 ms before speech
        message.extend(tone(16_000)); // 2 s of speech
        message.extend(vec![0; 5600]); // 700 ms pause
        message.extend(tone(8_000)); // 1 s of speech
        message.extend(vec![0; 2400]); // 300 ms, then the caller hangs up
        let cuts = feed(&mut r, &message, &mut ts);
        assert_eq!(cuts.len(), 1, "one pause long enough, one cut");
        let (u, pcm) = &cuts[0];
        assert_eq!(u.index, 0);
        assert_eq!(u.start, 0);
        // cut in the middle of the first 600 ms of the pause
        assert_eq!(u.end, 2400 + 16_000 + 2400);
        let done = r.finish(RecordEnd::Stopped);
        assert_eq!(done.samples, message);
        let mut joined = pcm.to_vec();
        joined.extend_from_slice(&done.samples[u.end..]);
        assert_eq!(
            joined, done.samples,
            "utterance + rest is the recording, bit-exact"
        );
    }

    #[test]
    fn short_pauses_and_silence_alone_cut_nothing() {
        let mut r = Recorder::new(endpointed_spec(Some(600)), Instant::now());
        let mut ts = 0;
        let mut message = vec![0i16; 8000]; // 1 s before any speech: not an utterance
        message.extend(tone(8_000));
        message.extend(vec![0; 4000]); // 500 ms: shorter than the pause
        message.extend(tone(8_000));
        assert!(feed(&mut r, &message, &mut ts).is_empty());
        // and without utterance_pause, even a long pause cuts nothing
        let mut r = Recorder::new(endpointed_spec(None), Instant::now());
        let mut message = tone(8_000);
        message.extend(vec![0; 8000]);
        message.extend(tone(8_000));
        assert!(feed(&mut r, &message, &mut 0).is_empty());
    }

    #[test]
    fn wav_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wav");
        let pcm: Vec<i16> = (0..1000).map(|i| (i * 31 - 15000) as i16).collect();
        write_wav(&path, &pcm).unwrap();
        let mut rd = hound::WavReader::open(&path).unwrap();
        assert_eq!(rd.spec().sample_rate, 8000);
        assert_eq!(rd.spec().channels, 1);
        assert_eq!(rd.spec().bits_per_sample, 16);
        let back: Vec<i16> = rd.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, pcm);
    }
}
