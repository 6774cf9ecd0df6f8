//! After hang-up, a live-transcribed message: decode only the rest, stitch. Falls back to the
//! whole message whenever the utterances do not cover its start contiguously or one of them
//! failed, so the result never has a hole.
//!
//! Latency (issue 16, BENCHMARKS.md §6): the rest is queued at once, before the earlier
//! utterances' results are awaited, so a caller whose last utterance is still being decoded
//! has the rest decoded beside it on another worker instead of after it; a rest without
//! speech (the pause before the hang-up) never queues for a worker at all. The rest gets the
//! text of the utterances finished when its decoding starts as context.

use super::aftercall::{record_transcript, transcribe_whole};
use super::live::Partials;
use crate::asr::stitch::{stitch, Part};
use crate::asr::{audio, AsrPool};
use crate::call::record::Transcript;
use std::sync::Arc;
use std::time::Duration;

/// Shorter rests (the cut leaves half a pause) are silence: not worth a Whisper pass.
const MIN_REST_SAMPLES: usize = 1600;

/// The message's transcript, and how many parts were decoded on their own and stitched
/// (0: it was decoded whole after all).
pub(super) async fn finish(
    asr: &AsrPool,
    partials: Partials,
    pcm: Arc<[i16]>,
    language: &str,
) -> (Transcript, usize) {
    let whole = |pcm| async move { (transcribe_whole(asr, pcm, language).await, 0) };
    let covered: usize = partials.utterances.iter().map(|u| u.samples).sum();
    if partials.language != language || covered > pcm.len() {
        // the flow switched language after the message began, or not our recording
        return whole(pcm).await;
    }
    let count = partials.utterances.len();
    let rest: Arc<[i16]> = pcm[covered..].into();
    // Queue the rest first; a full queue means waiting for room, as for a whole message.
    let rest_job = if rest.len() >= MIN_REST_SAMPLES && has_speech(asr, rest.clone()).await {
        let mut audio = rest.clone();
        loop {
            match asr.submit_part(audio, language, &partials.context, count) {
                Ok(rx) => break Some(rx),
                Err(full) => {
                    audio = full.pcm_8k;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    } else {
        None
    };
    let mut parts = Vec::with_capacity(count + 1);
    let mut at = 0usize;
    for u in partials.utterances {
        match u.result.await {
            Ok(t) => parts.push(Part {
                offset_ms: at as u64 / 8,
                transcript: t,
            }),
            Err(_) => return whole(pcm).await,
        }
        at += u.samples;
    }
    if let Some(rx) = rest_job {
        match rx.await {
            Ok(t) => parts.push(Part {
                offset_ms: at as u64 / 8,
                transcript: t,
            }),
            Err(_) => return whole(pcm).await,
        }
    }
    tracing::debug!(
        utterances = count,
        rest_ms = rest.len() / 8,
        "message transcribed live"
    );
    let guards = &asr.config().guards;
    let stitched = parts.len();
    let t = stitch(
        parts,
        language,
        asr.model_name(),
        pcm.len() as u64 / 8,
        guards,
    );
    (record_transcript(t), stitched)
}

/// Whether the rest holds speech by the pool's own VAD (off the runtime's threads: the
/// resampler and the VAD are milliseconds of CPU per second of audio).
async fn has_speech(asr: &AsrPool, pcm: Arc<[i16]>) -> bool {
    let vad = asr.config().vad.clone();
    tokio::task::spawn_blocking(move || audio::has_speech(&pcm, &vad))
        .await
        .unwrap_or(true)
}
