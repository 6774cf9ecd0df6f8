//! Duplicate hints: the same problem reported again (重复投诉).
//!
//! Chinese has no word boundaries, so similarity is measured on character n-grams of the
//! normalised text (punctuation and spaces removed, lower-cased). The cosine of the n-gram
//! sets (Ochiai coefficient, |A∩B| / √(|A|·|B|)) is robust to the small wording changes between
//! two callers describing the same broken street light, and needs no segmenter or model;
//! unlike Jaccard it does not punish a repeat for adding a few words ("...好几天了").

use std::collections::HashSet;
use uuid::Uuid;

use super::model::{DuplicateHint, DuplicateReason};

/// Settings of the duplicate look-up.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DuplicateConfig {
    /// How far back (from the new call's start) earlier tickets are compared. Default 72 h.
    pub window_secs: u64,
    /// Texts at least this similar (0..=1) count as a repeat even from another caller.
    pub similarity_threshold: f64,
    /// n of the character n-grams. Default 2 (bigrams suit Chinese).
    pub ngram: usize,
}

impl Default for DuplicateConfig {
    fn default() -> Self {
        DuplicateConfig {
            window_secs: 72 * 3600,
            similarity_threshold: 0.5,
            ngram: 2,
        }
    }
}

/// Text reduced to what matters for comparison: letters and digits, lower-cased.
pub fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn ngrams(norm: &str, n: usize) -> HashSet<&str> {
    let n = n.max(1);
    let idx: Vec<usize> = norm
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(norm.len()))
        .collect();
    let chars = idx.len() - 1;
    if chars == 0 {
        return HashSet::new();
    }
    if chars < n {
        return std::iter::once(norm).collect();
    }
    (0..=chars - n).map(|i| &norm[idx[i]..idx[i + n]]).collect()
}

/// Cosine similarity of the character n-gram sets of two normalised texts (0 when either is
/// empty: silence is not a repeat of silence).
pub fn similarity(a_norm: &str, b_norm: &str, n: usize) -> f64 {
    let a = ngrams(a_norm, n);
    let b = ngrams(b_norm, n);
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let inter = a.intersection(&b).count();
    inter as f64 / ((a.len() * b.len()) as f64).sqrt()
}

/// An earlier ticket inside the window, as the store returns it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub ticket_id: Uuid,
    pub caller: String,
    pub norm_text: String,
    pub started_at_ms: i64,
}

/// Caller ids that say nothing about who called.
fn caller_is_identifying(caller: &str) -> bool {
    let c = caller.trim().to_ascii_lowercase();
    !(c.is_empty() || c == "anonymous" || c == "unknown" || c == "restricted" || c == "private")
}

/// Picks the earlier ticket this one most likely repeats: the most similar text at or above
/// the threshold, else the most recent ticket of the same (identifying) caller.
pub fn find_duplicate(
    caller: &str,
    norm_text: &str,
    candidates: &[Candidate],
    cfg: &DuplicateConfig,
) -> Option<DuplicateHint> {
    let same_caller_possible = caller_is_identifying(caller);
    let mut best_text: Option<(&Candidate, f64)> = None;
    let mut latest_same_caller: Option<(&Candidate, f64)> = None;
    for c in candidates {
        let sim = similarity(norm_text, &c.norm_text, cfg.ngram);
        if sim >= cfg.similarity_threshold
            && best_text
                .is_none_or(|(b, s)| sim > s || (sim == s && c.started_at_ms > b.started_at_ms))
        {
            best_text = Some((c, sim));
        }
        if same_caller_possible
            && c.caller == caller
            && latest_same_caller.is_none_or(|(b, _)| c.started_at_ms > b.started_at_ms)
        {
            latest_same_caller = Some((c, sim));
        }
    }
    let (c, sim, reason) = match (best_text, latest_same_caller) {
        (Some((c, s)), _) if same_caller_possible && c.caller == caller => {
            (c, s, DuplicateReason::SameCallerSimilarText)
        }
        (Some((c, s)), _) => (c, s, DuplicateReason::SimilarText),
        (None, Some((c, s))) => (c, s, DuplicateReason::SameCaller),
        (None, None) => return None,
    };
    Some(DuplicateHint {
        duplicate_of: c.ticket_id,
        similarity: (sim * 1000.0).round() / 1000.0,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_of_chinese_and_english_texts() {
        let s = |a: &str, b: &str| similarity(&normalise(a), &normalise(b), 2);
        assert_eq!(
            s("路灯坏了", "路灯坏了。"),
            1.0,
            "punctuation does not count"
        );
        assert_eq!(
            s("Street Light", "street  light!"),
            1.0,
            "case and spaces do not count"
        );
        assert!(s("人民路的路灯坏了", "人民路路灯坏了好几天") > 0.6);
        assert!(s("人民路的路灯坏了", "医院挂号太难") < 0.05);
        assert_eq!(s("", ""), 0.0, "silence is not a repeat of silence");
        assert_eq!(s("灯", "灯"), 1.0, "texts shorter than n still compare");
    }

    #[test]
    fn anonymous_callers_are_not_the_same_caller() {
        let c = Candidate {
            ticket_id: Uuid::nil(),
            caller: "anonymous".into(),
            norm_text: normalise("出租车拒载"),
            started_at_ms: 0,
        };
        let cfg = DuplicateConfig::default();
        assert!(find_duplicate(
            "anonymous",
            &normalise("路灯坏了"),
            std::slice::from_ref(&c),
            &cfg
        )
        .is_none());
        let hint = find_duplicate("anonymous", &normalise("出租车拒载了"), &[c], &cfg).unwrap();
        assert_eq!(hint.reason, DuplicateReason::SimilarText);
    }
}
