//! One message's transcript from the transcripts of its parts.
//!
//! Live transcription (`docs/per-utterance-asr.md`) decodes a message utterance by utterance
//! while the caller is still talking, and only the rest after hang-up. The parts come back
//! with times relative to their own clip; the ticket wants times in the message, one text,
//! and the same whole-message judgement the engine makes on one clip (all segments doubtful →
//! no text; a segment repeated across the cut is Whisper looping, not the caller).

use super::{guards, EmptyReason, Segment, Transcript};

/// One decoded part: where its clip starts in the message, and its transcript.
pub struct Part {
    pub offset_ms: u64,
    pub transcript: Transcript,
}

/// Join `parts` (in message order) into the message's transcript. `language` and `model`
/// are used when no part says otherwise; `audio_ms` is the whole message's length.
pub fn stitch(
    parts: Vec<Part>,
    language: &str,
    model: &str,
    audio_ms: u64,
    cfg: &guards::GuardConfig,
) -> Transcript {
    let mut out = Transcript {
        language: language.to_string(),
        text: String::new(),
        segments: Vec::new(),
        model: model.to_string(),
        empty_reason: None,
        audio_ms,
        elapsed_ms: 0,
    };
    // The most telling reason a part had no text: anything beats "no speech" (a rejected
    // or failed part says more about the message than a silent one).
    let mut reason: Option<EmptyReason> = None;
    for (i, part) in parts.into_iter().enumerate() {
        let t = part.transcript;
        if i == 0 || !t.segments.is_empty() {
            out.language = t.language.clone();
        }
        if !t.model.is_empty() {
            out.model = t.model.clone();
        }
        out.elapsed_ms += t.elapsed_ms;
        if let Some(r) = t.empty_reason {
            if reason.is_none() || reason == Some(EmptyReason::NoSpeech) {
                reason = Some(r);
            }
        }
        for s in t.segments {
            if out.segments.last().is_some_and(|p| p.text == s.text) {
                continue; // the cross-cut loop the engine drops within one clip
            }
            out.segments.push(Segment {
                start_ms: s.start_ms + part.offset_ms,
                end_ms: s.end_ms + part.offset_ms,
                ..s
            });
        }
    }
    if let Err(r) = guards::check_message(out.segments.iter().map(|s| s.confidence), cfg) {
        out.segments.clear();
        reason = Some(EmptyReason::Rejected(r));
    }
    let joiner = if out.language == "zh" || out.language == "ja" {
        ""
    } else {
        " "
    };
    out.text = out
        .segments
        .iter()
        .map(|s| s.text.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(joiner);
    if out.text.is_empty() {
        out.empty_reason = Some(reason.unwrap_or(EmptyReason::NoText));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: u64, end_ms: u64, text: &str, confidence: f32) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            confidence,
        }
    }

    fn part(offset_ms: u64, segments: Vec<Segment>, reason: Option<EmptyReason>) -> Part {
        Part {
            offset_ms,
            transcript: Transcript {
                language: "zh".into(),
                text: String::new(),
                segments,
                model: "ggml-base.bin".into(),
                empty_reason: reason,
                audio_ms: 0,
                elapsed_ms: 100,
            },
        }
    }

    #[test]
    fn segment_times_move_into_the_message_and_texts_join() {
        let t = stitch(
            vec![
                part(0, vec![seg(200, 2600, "我家楼下的路灯坏了", 0.8)], None),
                part(
                    3100,
                    vec![
                        seg(100, 1800, "晚上很黑", 0.7),
                        seg(1800, 3000, "希望尽快修理", 0.9),
                    ],
                    None,
                ),
                part(7000, vec![], Some(EmptyReason::NoSpeech)),
            ],
            "zh",
            "m",
            9000,
            &guards::GuardConfig::default(),
        );
        assert_eq!(t.text, "我家楼下的路灯坏了晚上很黑希望尽快修理");
        let times: Vec<_> = t.segments.iter().map(|s| (s.start_ms, s.end_ms)).collect();
        assert_eq!(times, [(200, 2600), (3200, 4900), (4900, 6100)]);
        assert_eq!(t.empty_reason, None);
        assert_eq!(t.elapsed_ms, 300);
        assert_eq!(t.audio_ms, 9000);
    }

    #[test]
    fn a_segment_repeated_across_the_cut_is_kept_once() {
        let t = stitch(
            vec![
                part(0, vec![seg(0, 1000, "喂喂", 0.8)], None),
                part(
                    2000,
                    vec![seg(0, 900, "喂喂", 0.8), seg(900, 2000, "你好", 0.8)],
                    None,
                ),
            ],
            "zh",
            "m",
            4000,
            &guards::GuardConfig::default(),
        );
        assert_eq!(t.text, "喂喂你好");
        assert_eq!(t.segments.len(), 2);
    }

    #[test]
    fn all_doubtful_parts_give_no_text_with_the_reason() {
        let cfg = guards::GuardConfig::default();
        let low = cfg.min_message_confidence / 2.0;
        let t = stitch(
            vec![
                part(0, vec![seg(0, 1000, "呃啊", low)], None),
                part(1500, vec![seg(0, 800, "嗯哦", low)], None),
            ],
            "zh",
            "m",
            3000,
            &cfg,
        );
        assert_eq!(t.text, "");
        assert!(t.segments.is_empty());
        assert_eq!(
            t.empty_reason,
            Some(EmptyReason::Rejected(guards::Rejection::LowConfidence))
        );
        // silence everywhere says so
        let t = stitch(
            vec![part(0, vec![], Some(EmptyReason::NoSpeech))],
            "zh",
            "m",
            3000,
            &cfg,
        );
        assert_eq!(t.empty_reason, Some(EmptyReason::NoSpeech));
    }
}
