//! After hang-up, a live-transcribed message: await its utterances, decode only the rest,
//! stitch. Falls back to the whole message whenever the utterances do not cover its start
//! contiguously or one of them failed, so the result never has a hole.

use super::aftercall::{record_transcript, submit_waiting, transcribe_whole};
use super::live::Partials;
use crate::asr::stitch::{stitch, Part};
use crate::asr::AsrPool;
use crate::call::record::Transcript;
use std::sync::Arc;

/// Shorter rests (the cut leaves half a pause) are silence: not worth a Whisper pass.
const MIN_REST_SAMPLES: usize = 1600;

pub(super) async fn finish(
    asr: &AsrPool,
    partials: Partials,
    pcm: Arc<[i16]>,
    language: &str,
) -> Transcript {
    let covered: usize = partials.utterances.iter().map(|u| u.samples).sum();
    if partials.language != language || covered > pcm.len() {
        // the flow switched language after the message began, or not our recording
        return transcribe_whole(asr, pcm, language).await;
    }
    let count = partials.utterances.len();
    let mut parts = Vec::with_capacity(count + 1);
    let mut at = 0usize;
    for u in partials.utterances {
        match u.result.await {
            Ok(t) => parts.push(Part {
                offset_ms: at as u64 / 8,
                transcript: t,
            }),
            Err(_) => return transcribe_whole(asr, pcm, language).await,
        }
        at += u.samples;
    }
    let rest = &pcm[at..];
    if rest.len() >= MIN_REST_SAMPLES {
        match submit_waiting(asr, rest.into(), language).await {
            Some(t) => parts.push(Part {
                offset_ms: at as u64 / 8,
                transcript: t,
            }),
            None => return transcribe_whole(asr, pcm, language).await,
        }
    }
    tracing::debug!(
        utterances = count,
        rest_ms = rest.len() / 8,
        "message transcribed live"
    );
    let guards = &asr.config().guards;
    record_transcript(stitch(
        parts,
        language,
        asr.model_name(),
        pcm.len() as u64 / 8,
        guards,
    ))
}
