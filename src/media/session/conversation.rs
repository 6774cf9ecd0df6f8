//! The stereo recording of a bridged conversation (issue 14, `[transfer] record_bridged`):
//! the caller on the left channel, the operator on the right.
//!
//! Each bridged session taps what it plays out of the bridge (the other party's voice, as
//! that party was heard) frame by frame on its own 20 ms pacer, and hands the frame to a
//! writer thread through a bounded channel allocated up front: on the media task a frame
//! costs a 320-byte copy and a `try_send`, never a file write, a lock wait or an
//! allocation. A full channel drops the frame (the writer fills the hole with silence by
//! the frames' times, so the channels stay aligned).
//!
//! The writer places each frame by its pacer deadline on a timeline shared by both
//! channels ([`Mixer`], sans-IO), and writes interleaved samples as soon as both channels
//! have them, so memory stays bounded by the skew between the two sessions, not the call.

use crate::media::{FRAME_SAMPLES, SAMPLE_RATE};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames in flight between the media tasks and the writer: 2.5 s of both channels.
const QUEUE: usize = 250;
/// A channel this far ahead of the other has the other one padded with silence (that
/// session stalled or left the bridge): bounds the writer's memory.
const MAX_SKEW: usize = 2 * SAMPLE_RATE as usize;

/// `Left` is the caller, `Right` the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Left = 0,
    Right = 1,
}

struct Frame {
    channel: Channel,
    at: Instant,
    pcm: [i16; FRAME_SAMPLES],
}

/// A session's handle on the recording: give it to the bridge end of the session that
/// plays `channel`'s party (see [`super::bridge::BridgeEnd::recorded`]).
#[derive(Clone)]
pub struct Tap {
    tx: SyncSender<Frame>,
    channel: Channel,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tap({:?})", self.channel)
    }
}

impl Tap {
    /// One frame (at most 20 ms; a shorter one is padded with silence) played at `at`.
    /// Never blocks, never allocates.
    pub(super) fn frame(&self, at: Instant, pcm: &[i16]) {
        let len = pcm.len().min(FRAME_SAMPLES);
        let mut f = Frame {
            channel: self.channel,
            at,
            pcm: [0; FRAME_SAMPLES],
        };
        f.pcm[..len].copy_from_slice(&pcm[..len]);
        match self.tx.try_send(f) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The finished recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub path: PathBuf,
    pub duration: Duration,
}

/// The writer of one conversation: [`start`] it when the bridge is made, [`finish`] it
/// when the bridge ends.
///
/// [`start`]: ConversationRecorder::start
/// [`finish`]: ConversationRecorder::finish
pub struct ConversationRecorder {
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    writer: tokio::task::JoinHandle<Result<Recorded, String>>,
}

impl ConversationRecorder {
    /// Start writing `path` (its folder is created); returns the taps for the caller's
    /// channel (left) and the operator's (right).
    pub fn start(path: PathBuf) -> (ConversationRecorder, Tap, Tap) {
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let flag = stop.clone();
        let writer = tokio::task::spawn_blocking(move || write(&path, rx, t0, &flag));
        let tap = |channel| Tap {
            tx: tx.clone(),
            channel,
            dropped: dropped.clone(),
        };
        let (left, right) = (tap(Channel::Left), tap(Channel::Right));
        (
            ConversationRecorder {
                stop,
                dropped,
                writer,
            },
            left,
            right,
        )
    }

    /// Write what is queued, close the file; `None` when it could not be written.
    pub async fn finish(self) -> Option<Recorded> {
        self.stop.store(true, Ordering::Relaxed);
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "conversation recording: frames dropped (writer behind)"
            );
        }
        match self.writer.await {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "conversation recording failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "conversation recording writer panicked");
                None
            }
        }
    }
}

/// The writer thread: frames in, a stereo WAV out.
fn write(
    path: &Path,
    rx: Receiver<Frame>,
    t0: Instant,
    stop: &AtomicBool,
) -> Result<Recorded, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav =
        hound::WavWriter::create(path, spec).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut mixer = Mixer::default();
    let mut out = Vec::with_capacity(2 * MAX_SKEW);
    let mut put = |mixer: &mut Mixer, f: &Frame| -> Result<(), String> {
        let at = f.at.saturating_duration_since(t0);
        let at = (at.as_micros() as u64 * u64::from(SAMPLE_RATE) / 1_000_000) as usize;
        mixer.push(f.channel, at, &f.pcm);
        out.clear();
        mixer.take(&mut out);
        out.iter()
            .try_for_each(|&s| wav.write_sample(s))
            .map_err(|e| e.to_string())
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(f) => put(&mut mixer, &f)?,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(_) => break,
        }
    }
    while let Ok(f) = rx.try_recv() {
        put(&mut mixer, &f)?;
    }
    out.clear();
    mixer.flush(&mut out);
    for &s in &out {
        wav.write_sample(s).map_err(|e| e.to_string())?;
    }
    let frames = wav.duration();
    wav.finalize().map_err(|e| e.to_string())?;
    Ok(Recorded {
        path: path.to_owned(),
        duration: Duration::from_millis(u64::from(frames) * 1000 / u64::from(SAMPLE_RATE)),
    })
}

/// Lays frames of the two channels on one timeline and hands out interleaved samples as
/// far as both channels reach. Sans-IO: positions are sample offsets from the start.
#[derive(Default)]
pub(crate) struct Mixer {
    /// Samples placed but not yet handed out, per channel.
    pending: [VecDeque<i16>; 2],
    /// Timeline position of each channel's next sample.
    head: [usize; 2],
}

impl Mixer {
    /// Put `pcm` at sample position `at` of `channel`: a hole before it is silence; a frame
    /// wholly behind the channel's head (late, after the channel was padded) is dropped.
    pub fn push(&mut self, channel: Channel, at: usize, pcm: &[i16]) {
        let c = channel as usize;
        if at + pcm.len() <= self.head[c] {
            return;
        }
        // Within a frame of the head: a pacer's deadlines wobble by a sample or two.
        if at > self.head[c] + FRAME_SAMPLES / 2 {
            let hole = at - self.head[c];
            self.pending[c].extend(std::iter::repeat_n(0, hole));
            self.head[c] = at;
        }
        self.pending[c].extend(pcm);
        self.head[c] += pcm.len();
        // The other channel is far behind: its session stalled or left; pad it.
        let o = 1 - c;
        if self.head[c] > self.head[o] + MAX_SKEW {
            let pad = self.head[c] - MAX_SKEW - self.head[o];
            self.pending[o].extend(std::iter::repeat_n(0, pad));
            self.head[o] += pad;
        }
    }

    /// Interleaved (left, right) samples both channels have.
    pub fn take(&mut self, out: &mut Vec<i16>) {
        let n = self.pending[0].len().min(self.pending[1].len());
        let [left, right] = &mut self.pending;
        for (l, r) in left.drain(..n).zip(right.drain(..n)) {
            out.push(l);
            out.push(r);
        }
    }

    /// Everything left, the shorter channel padded with silence.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let n = self.pending[0].len().max(self.pending[1].len());
        for p in &mut self.pending {
            p.resize(n, 0);
        }
        self.take(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(out: &[i16]) -> Vec<(i16, i16)> {
        out.chunks(2).map(|c| (c[0], c[1])).collect()
    }

    #[test]
    fn channels_are_interleaved_as_far_as_both_reach() {
        let mut m = Mixer::default();
        let mut out = Vec::new();
        m.push(Channel::Left, 0, &[1; 160]);
        m.take(&mut out);
        assert!(out.is_empty(), "the right channel has nothing yet");
        m.push(Channel::Right, 0, &[2; 100]);
        m.take(&mut out);
        assert_eq!(frames(&out), vec![(1, 2); 100]);
        out.clear();
        m.flush(&mut out);
        assert_eq!(frames(&out), vec![(1, 0); 60], "the rest, padded");
    }

    #[test]
    fn a_hole_is_silence_and_a_wobble_is_not() {
        let mut m = Mixer::default();
        m.push(Channel::Left, 0, &[1; 160]);
        // A deadline a few samples late: appended, no hole.
        m.push(Channel::Left, 163, &[1; 160]);
        // 100 ms lost (a stall, a DTMF event replacing audio): silence in its place.
        m.push(Channel::Left, 320 + 800, &[3; 160]);
        m.push(Channel::Right, 0, &[2; 1280]);
        let mut out = Vec::new();
        m.take(&mut out);
        let left: Vec<i16> = frames(&out).iter().map(|f| f.0).collect();
        assert_eq!(left.len(), 1280);
        assert!(left[..320].iter().all(|&s| s == 1));
        assert!(left[320..1120].iter().all(|&s| s == 0));
        assert!(left[1120..].iter().all(|&s| s == 3));
    }

    #[test]
    fn a_stalled_channel_is_padded_and_its_late_frames_dropped() {
        let mut m = Mixer::default();
        let mut out = Vec::new();
        // The right session says nothing for 3 s while the left talks.
        for k in 0..150 {
            m.push(Channel::Left, k * 160, &[1; 160]);
        }
        m.take(&mut out);
        assert_eq!(
            out.len() / 2,
            150 * 160 - MAX_SKEW,
            "memory bounded by MAX_SKEW"
        );
        assert!(frames(&out).iter().all(|&(l, r)| l == 1 && r == 0));
        // A late right frame for time 0: dropped (its place was already silence).
        m.push(Channel::Right, 0, &[9; 160]);
        out.clear();
        m.flush(&mut out);
        assert!(frames(&out).iter().all(|&(_, r)| r != 9));
        assert_eq!(out.len() / 2, MAX_SKEW);
    }

    #[tokio::test]
    async fn the_writer_makes_a_stereo_wav_with_each_party_on_its_side() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("day/conversation.wav");
        let (rec, left, right) = ConversationRecorder::start(path.clone());
        let t0 = Instant::now();
        for k in 0..50u64 {
            let at = t0 + Duration::from_millis(20 * k);
            left.frame(at, &[1000; FRAME_SAMPLES]);
            right.frame(at, &[-1000; FRAME_SAMPLES]);
        }
        let r = rec.finish().await.expect("written");
        assert_eq!(r.path, path);
        let mut wav = hound::WavReader::open(&path).unwrap();
        assert_eq!(wav.spec().channels, 2);
        assert_eq!(wav.spec().sample_rate, SAMPLE_RATE);
        let s: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
        assert!(s.len() / 2 >= 50 * FRAME_SAMPLES);
        assert!((r.duration.as_millis() as i64 - 1000).abs() <= 40, "{r:?}");
        // Left is the caller's +1000, right the operator's -1000 (leading silence aside).
        let voiced: Vec<&[i16]> = s.chunks(2).filter(|c| c[0] != 0).collect();
        assert_eq!(voiced.len(), 50 * FRAME_SAMPLES);
        assert!(voiced.iter().all(|c| c[0] == 1000 && c[1] == -1000));
    }
}
