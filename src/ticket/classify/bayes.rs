//! The learned half of classification: multinomial naive Bayes over character n-grams.
//!
//! Why this model: it trains in one pass over a few hundred example requests (well under a
//! millisecond per hundred examples), needs no download and no tuning loop, and with
//! character 1–3-grams it generalises past the keyword list: "又脏又臭" and "公共厕所" pull
//! toward sanitation although neither is a keyword. Its raw posteriors are overconfident
//! (hundreds of features each multiply in), so the scores are per-feature averages scaled
//! by one constant, which makes the confidence comparable between short and long requests.

use std::collections::HashMap;

use super::words::Clause;

/// Additive smoothing of the feature counts (chosen by cross-validation on the examples:
/// 0.1–0.3 fit the examples too closely, see BENCHMARKS.md).
const ALPHA: f64 = 1.0;
/// Scale of the per-feature average log-likelihood before the softmax: how fast the
/// confidence grows with the evidence, so how many tickets ask for review (chosen by
/// cross-validation on the examples, as ALPHA).
pub const SHARPNESS: f64 = 6.0;

/// The features of a text: character 1-, 2- and 3-grams of Chinese inside each clause, and
/// the words of two or more characters (prefixed `w:`). Deduplicated: presence, not frequency.
pub fn features(clauses: &[Clause]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for clause in clauses {
        let chars: Vec<char> = clause.concat().chars().collect();
        for n in 1..=3 {
            // Letters and digits carry no meaning one by one: Latin words count as words.
            for w in chars.windows(n).filter(|w| !w.iter().any(char::is_ascii)) {
                out.push(w.iter().collect());
            }
        }
        for word in clause {
            if word.chars().count() >= 2 {
                out.push(format!("w:{word}"));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A trained model. Categories are indices into the caller's category list; a category
/// without examples is never chosen by the model (its score is `-inf`).
#[derive(Clone, Debug, Default)]
pub struct Bayes {
    vocab: HashMap<String, u32>,
    names: Vec<String>,
    /// `log P(feature | category)`, `[category][feature]`; empty rows for untrained ones.
    log_lik: Vec<Vec<f32>>,
}

/// What the model says about one text.
#[derive(Clone, Debug)]
pub struct Scores {
    /// Per category: scaled average log-likelihood; `-inf` for untrained categories.
    pub per_category: Vec<f64>,
    /// Known features of the text (ids), for the evidence.
    known: Vec<u32>,
}

impl Bayes {
    /// Trains on `(category index, features)` pairs over `n_categories` categories.
    pub fn train(docs: &[(usize, Vec<String>)], n_categories: usize) -> Bayes {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        let mut counts = vec![0usize; n_categories];
        let mut hist: Vec<HashMap<u32, u32>> = vec![HashMap::new(); n_categories];
        for (cat, feats) in docs {
            counts[*cat] += 1;
            for f in feats {
                let id = *vocab.entry(f.clone()).or_insert_with(|| {
                    names.push(f.clone());
                    (names.len() - 1) as u32
                });
                *hist[*cat].entry(id).or_default() += 1;
            }
        }
        let v = names.len() as f64;
        let log_lik = hist
            .iter()
            .zip(&counts)
            .map(|(h, &n)| {
                if n == 0 {
                    return Vec::new();
                }
                let total: f64 = h.values().map(|&c| f64::from(c)).sum();
                let denom = (total + ALPHA * v).ln();
                (0..names.len() as u32)
                    .map(|f| {
                        let c = f64::from(h.get(&f).copied().unwrap_or(0));
                        ((c + ALPHA).ln() - denom) as f32
                    })
                    .collect()
            })
            .collect();
        Bayes {
            vocab,
            names,
            log_lik,
        }
    }

    /// Scores a text's features; features never seen in training are ignored.
    pub fn score(&self, feats: &[String]) -> Scores {
        let known: Vec<u32> = feats
            .iter()
            .filter_map(|f| self.vocab.get(f).copied())
            .collect();
        let per_category = self
            .log_lik
            .iter()
            .map(|row| {
                if row.is_empty() {
                    f64::NEG_INFINITY
                } else if known.is_empty() {
                    0.0
                } else {
                    let sum: f64 = known.iter().map(|&f| f64::from(row[f as usize])).sum();
                    SHARPNESS * sum / known.len() as f64
                }
            })
            .collect();
        Scores {
            per_category,
            known,
        }
    }

    /// The text's features that speak most for `cat` over every other trained category,
    /// strongest first (at most `k`; only features that favour `cat`).
    pub fn top_features(&self, scores: &Scores, cat: usize, k: usize) -> Vec<String> {
        let Some(row) = self.log_lik.get(cat).filter(|r| !r.is_empty()) else {
            return Vec::new();
        };
        let mut margins: Vec<(f32, u32)> = scores
            .known
            .iter()
            .map(|&f| {
                let best_other = self
                    .log_lik
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| *i != cat && !r.is_empty())
                    .map(|(_, r)| r[f as usize])
                    .fold(f32::NEG_INFINITY, f32::max);
                (row[f as usize] - best_other, f)
            })
            .filter(|(m, _)| *m > 0.0)
            .collect();
        margins.sort_by(|a, b| b.0.total_cmp(&a.0));
        margins
            .into_iter()
            .take(k)
            .map(|(_, f)| self.names[f as usize].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(words: &[&str]) -> Vec<Clause> {
        vec![words.iter().map(|w| w.to_string()).collect()]
    }

    #[test]
    fn features_are_character_ngrams_within_clauses_and_words() {
        let f = features(&[
            vec!["暖气".to_string(), "不热".to_string()],
            vec!["冷".to_string()],
        ]);
        for want in ["暖", "暖气", "暖气不", "气不热", "w:暖气", "冷"] {
            assert!(f.contains(&want.to_string()), "{want} in {f:?}");
        }
        // No n-gram across the clause break.
        assert!(!f.iter().any(|x| x.contains("热冷")));
    }

    #[test]
    fn the_category_whose_examples_share_the_text_s_ngrams_wins() {
        let docs = vec![
            (0, features(&clause(&["暖气", "不热"]))),
            (0, features(&clause(&["供暖", "温度", "低"]))),
            (1, features(&clause(&["路灯", "坏", "了"]))),
            (1, features(&clause(&["路面", "有", "坑"]))),
        ];
        let m = Bayes::train(&docs, 3);
        let s = m.score(&features(&clause(&["家里", "暖气", "冰凉"])));
        assert!(
            s.per_category[0] > s.per_category[1],
            "{:?}",
            s.per_category
        );
        assert_eq!(s.per_category[2], f64::NEG_INFINITY);
        assert!(m.top_features(&s, 0, 3).contains(&"暖气".to_string()));
        // Nothing known: no category is preferred.
        let none = m.score(&features(&clause(&["hello"])));
        assert_eq!(none.per_category[0], none.per_category[1]);
    }
}
