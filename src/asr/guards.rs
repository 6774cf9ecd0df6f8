//! Hallucination guards: what Whisper says is only kept when it looks like transcription.
//!
//! A ticket with invented text is worse than a ticket with none (an operator listens to the
//! recording anyway), so every doubtful segment is dropped. The thresholds are Whisper's own
//! (`transcribe.py`: compression ratio 2.4, log-prob −1.0, no-speech 0.6), applied per segment
//! because temperature fallback is off (it made latency explode: 95 s for a 9 s clip).

use std::io::Write;

/// Per-segment decoder statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentStats {
    pub text: String,
    pub no_speech_prob: f32,
    /// Mean log-probability of the text tokens.
    pub avg_logprob: f32,
    /// Mean probability of the text tokens (reported as the segment's confidence).
    pub mean_prob: f32,
    pub n_tokens: usize,
}

/// Why a segment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    NoSpeech,
    LowConfidence,
    Repetitive,
    KnownHallucination,
    Empty,
}

/// Guard thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardConfig {
    pub no_speech_prob: f32,
    pub min_avg_logprob: f32,
    pub max_compression_ratio: f32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            no_speech_prob: 0.6,
            min_avg_logprob: -1.0,
            max_compression_ratio: 2.4,
        }
    }
}

/// Phrases Whisper is notorious for producing from silence or music (subtitle credits,
/// video sign-offs). They never occur in a hotline message.
const KNOWN_HALLUCINATIONS: &[&str] = &[
    "字幕",
    "订阅",
    "點贊",
    "点赞",
    "打赏",
    "明镜",
    "amara.org",
    "thanks for watching",
    "thank you for watching",
    "please subscribe",
    "subtitles by",
];

/// gzip-compressed size ratio of the UTF-8 text, as Whisper computes it: looping text
/// compresses far better than speech.
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(text.as_bytes());
    let compressed = enc.finish().map(|v| v.len()).unwrap_or(text.len());
    text.len() as f32 / compressed.max(1) as f32
}

/// Collapse a phrase repeated back-to-back to one occurrence: the greedy decoder's loop
/// ("请尽快修理。请尽快修理。请尽快修理。…"). A long phrase (8+ characters) counts from two
/// repeats, a short one from three, a single character from four (so "看看", "谢谢", "..."
/// stay). A trailing fragment of the looped phrase (where the token cap cut the loop off) is
/// dropped too.
pub fn collapse_loops(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    let mut i = 0;
    'outer: while i < chars.len() {
        // Try the shortest period first so "哈哈哈哈" collapses to "哈".
        for period in 1..=((chars.len() - i) / 2) {
            let unit = &chars[i..i + period];
            let mut reps = 1;
            while i + (reps + 1) * period <= chars.len()
                && &chars[i + reps * period..i + (reps + 1) * period] == unit
            {
                reps += 1;
            }
            let needed = match period {
                1 => 4,
                2..=7 => 3,
                _ => 2,
            };
            if reps >= needed && unit.iter().any(|c| c.is_alphanumeric()) {
                out.extend_from_slice(unit);
                i += reps * period;
                let rest = &chars[i..];
                if rest.len() < period
                    && unit.starts_with(rest)
                    && rest.iter().any(|c| c.is_alphanumeric())
                {
                    i = chars.len();
                }
                continue 'outer;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out.into_iter().collect::<String>().trim().to_string()
}

/// Decide on one segment.
pub fn check(seg: &SegmentStats, cfg: &GuardConfig) -> Result<(), Rejection> {
    let text = seg.text.trim();
    if text.is_empty() || !text.chars().any(|c| c.is_alphanumeric()) {
        return Err(Rejection::Empty);
    }
    if seg.no_speech_prob > cfg.no_speech_prob && seg.avg_logprob < cfg.min_avg_logprob {
        return Err(Rejection::NoSpeech);
    }
    if seg.avg_logprob < cfg.min_avg_logprob {
        return Err(Rejection::LowConfidence);
    }
    if compression_ratio(text) > cfg.max_compression_ratio {
        return Err(Rejection::Repetitive);
    }
    let lower = text.to_lowercase();
    if KNOWN_HALLUCINATIONS.iter().any(|h| lower.contains(h)) {
        return Err(Rejection::KnownHallucination);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str, no_speech: f32, logprob: f32) -> SegmentStats {
        SegmentStats {
            text: text.into(),
            no_speech_prob: no_speech,
            avg_logprob: logprob,
            mean_prob: logprob.exp(),
            n_tokens: text.chars().count(),
        }
    }

    #[test]
    fn a_plain_confident_sentence_passes() {
        let cfg = GuardConfig::default();
        assert_eq!(
            check(&seg("我家楼下的路灯坏了三天了。", 0.01, -0.3), &cfg),
            Ok(())
        );
        assert_eq!(
            check(
                &seg("There is a big pothole on Main Street.", 0.02, -0.2),
                &cfg
            ),
            Ok(())
        );
    }

    #[test]
    fn doubtful_segments_are_rejected_for_the_right_reason() {
        let cfg = GuardConfig::default();
        assert_eq!(
            check(&seg("谢谢观看", 0.9, -1.4), &cfg),
            Err(Rejection::NoSpeech)
        );
        assert_eq!(
            check(&seg("路灯坏了", 0.1, -1.6), &cfg),
            Err(Rejection::LowConfidence)
        );
        let looped = "请尽快修理。".repeat(20);
        assert_eq!(
            check(&seg(&looped, 0.0, -0.1), &cfg),
            Err(Rejection::Repetitive)
        );
        assert_eq!(
            check(
                &seg("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", 0.1, -0.3),
                &cfg
            ),
            Err(Rejection::KnownHallucination)
        );
        assert_eq!(check(&seg(" 。", 0.0, -0.1), &cfg), Err(Rejection::Empty));
    }

    #[test]
    fn loops_collapse_but_natural_doubling_stays() {
        assert_eq!(
            collapse_loops("路灯坏了。请尽快修理。请尽快修理。请尽快修理。"),
            "路灯坏了。请尽快修理。"
        );
        assert_eq!(collapse_loops("请派人来看看。谢谢"), "请派人来看看。谢谢");
        assert_eq!(collapse_loops("the the the the road"), "the road");
        assert_eq!(collapse_loops("wait..."), "wait...");
        // tiny.en on dev_en_03 (the token cap cut the third copy short).
        assert_eq!(
            collapse_loops(
                "There is a big pothole on Main Street near the school. There is a big pothole \
                 on Main Street near the school. There is a big p"
            ),
            "There is a big pothole on Main Street near the school."
        );
    }

    #[test]
    fn compression_ratio_separates_loops_from_speech() {
        assert!(
            compression_ratio("幸福路和建设路的路口有一个大坑，已经有好几辆电动车摔倒了。") < 2.0
        );
        assert!(compression_ratio(&"好的，".repeat(30)) > 2.4);
    }
}
