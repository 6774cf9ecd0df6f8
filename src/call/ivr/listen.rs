//! The shell's side of the spoken menu: the engine's `Listen` turned into the media
//! session's listening, each utterance the media hands out passed to the gateway's
//! [`MenuListener`] (which transcribes it on the Whisper pool and classifies it, never on
//! this task or the media's), and the answer fed back to the engine as `Event::Speech`.

use super::Shell;
use crate::call::flow::{BargePolicy, Heard};
use crate::media::session::ListenSpec;
use crate::media::vad::EndpointerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The longest spoken request: a caller who never pauses is cut here (the menu is for
/// "我要投诉", not for the message itself).
const MAX_REQUEST: Duration = Duration::from_secs(8);
/// How far back before the onset a request starts. Longer than the message's barge-in
/// pre-roll: over a loud prompt the onset detector takes the caller's first syllables for
/// echo, and a request is short enough that each one counts ("我要投诉，也要报修" lost its
/// first half with 500 ms). Whisper's VAD trims the silence this adds.
const PREROLL: Duration = Duration::from_millis(1500);
/// The pause that ends a request when `[recording] utterance_pause_ms` is 0.
const DEFAULT_PAUSE: Duration = Duration::from_millis(600);

/// One spoken request, as plain data: the call layer forwards it and knows nothing of how
/// it is heard.
#[derive(Clone, Debug)]
pub struct SpokenRequest {
    pub call_id: String,
    /// The language to hear it in (the flow's, after a language menu).
    pub language: String,
    /// 8 kHz mono samples, from just before the caller started to the pause after.
    pub pcm: Arc<[i16]>,
}

/// Hears a [`SpokenRequest`]: returns at once, answers later. Must not block (it runs on
/// the call's task); a dropped sender counts as nothing heard.
pub type MenuListener = Box<dyn Fn(SpokenRequest) -> oneshot::Receiver<Heard> + Send + Sync>;

/// The words of the utterance being heard (nothing heard when the gateway gave up).
pub(super) async fn words(hearing: &mut Option<oneshot::Receiver<Heard>>) -> Heard {
    match hearing.as_mut() {
        Some(rx) => rx.await.unwrap_or_default(),
        None => std::future::pending().await,
    }
}

impl Shell {
    /// `Listen`: on in `language` (when the gateway can hear), or off.
    pub(super) fn listen(&mut self, language: Option<String>) {
        let language = language.filter(|_| self.settings.on_menu_speech.is_some());
        let spec = language.as_ref().map(|_| {
            let rec = &self.settings.recording;
            let pause = match rec.utterance_pause_ms {
                0 => DEFAULT_PAUSE,
                ms => Duration::from_millis(ms),
            };
            let barge_in = self.barge_in(BargePolicy {
                dtmf: false,
                speech: true,
            });
            let mut speech = barge_in.speech.expect("asked for speech barge-in");
            speech.preroll = speech.preroll.max(PREROLL);
            ListenSpec {
                speech,
                endpointer: EndpointerConfig {
                    speech_threshold_dbfs: rec.speech_threshold_dbfs,
                    trailing_silence: pause,
                    no_speech_timeout: MAX_REQUEST,
                },
                max_duration: MAX_REQUEST,
            }
        });
        if language.is_none() {
            self.hearing = None;
        }
        self.listening = language;
        self.media.listen(spec);
    }

    /// An utterance from the media: off to be heard (a later one replaces it).
    pub(super) fn heard(&mut self, pcm: Arc<[i16]>) {
        let (Some(language), Some(listener)) = (
            self.listening.clone(),
            self.settings.on_menu_speech.as_ref(),
        ) else {
            return;
        };
        tracing::debug!(ms = pcm.len() / 8, "spoken request heard");
        self.hearing = Some(listener(SpokenRequest {
            call_id: self.info.call_id.clone(),
            language,
            pcm,
        }));
    }
}
