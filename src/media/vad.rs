//! Energy end-pointer: decides when a caller's message has started and ended.
//!
//! Deliberately simple (frame energy against a threshold with hangover); real VAD for ASR
//! lives elsewhere. Runs per 20 ms frame on the media task, so it must not allocate.
//!
//! OWNER: media-dsp helper.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct EndpointerConfig {
    /// Frame energy above this (dBFS) counts as speech.
    pub speech_threshold_dbfs: f32,
    /// Silence after speech that ends the message.
    pub trailing_silence: Duration,
    /// No speech at all for this long ends the message as empty.
    pub no_speech_timeout: Duration,
}

/// What the end-pointer thinks after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// No speech yet.
    Waiting,
    /// Speech heard, not ended.
    Speaking,
    /// Speech was heard and then enough silence followed.
    EndOfSpeech,
    /// No speech within `no_speech_timeout`.
    NoSpeech,
}

pub struct Endpointer {
    cfg: EndpointerConfig,
}

impl Endpointer {
    pub fn new(cfg: EndpointerConfig) -> Self {
        Endpointer { cfg }
    }

    /// Feed one 20 ms frame of 8 kHz samples.
    pub fn push_frame(&mut self, frame: &[i16]) -> Endpoint {
        let _ = (frame, &self.cfg);
        todo!("media-dsp helper")
    }

    /// Whether any speech has been heard so far.
    pub fn heard_speech(&self) -> bool {
        todo!("media-dsp helper")
    }
}

/// Energy of a frame in dBFS (0 dBFS = full-scale square wave); -inf-safe (floors at -100).
pub fn frame_dbfs(frame: &[i16]) -> f32 {
    let _ = frame;
    todo!("media-dsp helper")
}
