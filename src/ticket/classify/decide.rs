//! One decision from three kinds of evidence: what the trained model reads in the text, the
//! table's keywords found on word boundaries, and the caller's menu choice.
//!
//! The evidence is added as scores per category and turned into probabilities by one
//! softmax; the winner's probability is the confidence. Keywords and the menu stay strong:
//! one keyword outweighs a hesitant model, but a model that is sure of another department
//! outweighs a menu choice (callers press "complaint" for every kind of problem).

use super::bayes::{self, Bayes, Scores};
use super::words::{Hit, Words};
use super::{CategoryRule, Rules};

/// Score added per keyword of the category found in the text (at most [`KEYWORD_CAP`]).
pub const KEYWORD_WEIGHT: f64 = 4.0;
const KEYWORD_CAP: usize = 3;
/// Score added to the category of the caller's menu choice: below a keyword, enough to
/// outweigh a model that is less than twenty times surer of another category.
pub const MENU_WEIGHT: f64 = 3.0;
/// How far below the weakest trained category a category without examples starts.
const UNTRAINED_GAP: f64 = 2.0;
/// Features listed as evidence.
const TOP_FEATURES: usize = 5;

/// What decided the category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Keywords of the chosen category occurred (with or without the model agreeing).
    Keywords,
    /// The menu choice tipped it: the text alone pointed elsewhere or nowhere.
    Menu,
    /// The trained model read it in the text.
    Model,
    /// Nothing pointed anywhere: the table's default.
    Default,
}

/// The classifier's full answer, self-contained (the ticket keeps a summary).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Assessment {
    pub category_id: String,
    pub category: String,
    pub department: String,
    /// 0..=1: the chosen category's probability.
    pub confidence: f64,
    /// Confidence below the table's `review_threshold`: a person should check.
    pub needs_review: bool,
    pub urgent: bool,
    pub source: Source,
    /// Keywords of the chosen category found in the text (table order).
    pub matched_keywords: Vec<String>,
    /// Urgent words found and not negated (table order).
    pub urgent_keywords: Vec<String>,
    /// Urgent words, and keywords of the chosen category, found only by sound: `(word, what
    /// the text said)`, so that the operator sees "超市" was read from "超时".
    pub heard_as: Vec<(String, String)>,
    /// Urgent words found but negated ("没有漏气").
    pub negated_urgent: Vec<String>,
    /// The text's n-grams that speak most for the chosen category.
    pub top_features: Vec<String>,
    /// The best three categories with their probabilities.
    pub ranking: Vec<(String, f64)>,
}

/// What a listed word of [`Words`] stands for.
#[derive(Clone, Copy, Debug)]
enum Listed {
    /// A keyword of the category with this index.
    Keyword(usize),
    Urgent,
}

/// The trained part of a table: segmenter with the hotline vocabulary, and the model.
#[derive(Clone, Debug)]
pub struct Engine {
    words: Words,
    listed: Vec<Listed>,
    /// `None`: the table has no `[model]`; keywords and menu only.
    bayes: Option<Bayes>,
    /// Examples and corrections the model was trained on.
    pub trained_on: (usize, usize),
}

impl Engine {
    /// Builds the segmenter from `rules` and trains on `examples` (category index, text),
    /// the last `corrections` of which are operators' corrections. A table without
    /// `[model]` gets no model: keywords and menu only.
    pub fn build(rules: &Rules, examples: &[(usize, String)], corrections: usize) -> Engine {
        let cats = rules.all();
        let mut texts = Vec::new();
        let mut listed = Vec::new();
        let mut sound = Vec::new();
        for (i, c) in cats.iter().enumerate() {
            for k in &c.keywords {
                texts.push(k.clone());
                listed.push(Listed::Keyword(i));
                sound.push(false);
            }
        }
        for k in &rules.urgent.keywords {
            texts.push(k.clone());
            listed.push(Listed::Urgent);
            sound.push(true);
        }
        let words = Words::new(&texts, &sound, &rules.segmenter.words);
        let bayes = rules.model.as_ref().map(|_| {
            let docs: Vec<(usize, Vec<String>)> = examples
                .iter()
                .map(|(c, t)| (*c, bayes::features(&words.clauses(t))))
                .collect();
            Bayes::train(&docs, cats.len())
        });
        Engine {
            words,
            listed,
            bayes,
            trained_on: (examples.len() - corrections, corrections),
        }
    }

    /// Classifies `text` with the menu choice `menu_id`.
    pub fn assess(&self, rules: &Rules, text: &str, menu_id: Option<&str>) -> Assessment {
        let cats = rules.all();
        let clauses = self.words.clauses(text);
        let hits = self.words.find(&clauses);
        // Per category: (listed index, keyword), so that they can be reported in table order.
        let mut kw: Vec<Vec<(usize, String)>> = vec![Vec::new(); cats.len()];
        let mut kw_heard: Vec<(usize, &Hit)> = Vec::new();
        let mut urgent_hits: Vec<(usize, &Hit)> = Vec::new();
        for (i, hit) in &hits {
            match self.listed[*i] {
                Listed::Keyword(c) => {
                    kw[c].push((*i, hit.word.clone()));
                    if hit.heard.is_some() {
                        kw_heard.push((c, hit));
                    }
                }
                Listed::Urgent => urgent_hits.push((*i, hit)),
            }
        }
        let scores: Option<Scores> = self
            .bayes
            .as_ref()
            .filter(|_| !clauses.is_empty())
            .map(|b| b.score(&super::bayes::features(&clauses)));
        let model_knows = scores
            .as_ref()
            .is_some_and(|s| s.per_category.iter().any(|v| v.is_finite() && *v != 0.0));
        let menu: Vec<bool> = cats.iter().map(|c| menu_matches(c, menu_id)).collect();
        let mut s: Vec<f64> = match &scores {
            Some(sc) => {
                let floor = sc
                    .per_category
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .fold(f64::INFINITY, f64::min)
                    - UNTRAINED_GAP;
                sc.per_category
                    .iter()
                    .map(|&v| if v.is_finite() { v } else { floor })
                    .collect()
            }
            None => vec![0.0; cats.len()],
        };
        for (i, score) in s.iter_mut().enumerate() {
            *score += KEYWORD_WEIGHT * kw[i].len().min(KEYWORD_CAP) as f64;
            if menu[i] {
                *score += MENU_WEIGHT;
            }
        }
        let p = softmax(&s);
        let any_evidence = model_knows || kw.iter().any(|k| !k.is_empty()) || menu.contains(&true);
        let default = cats.len() - 1;
        let best = if any_evidence { argmax(&p) } else { default };
        let model_best = scores.as_ref().map(|sc| argmax(&sc.per_category));
        let source = if !kw[best].is_empty() {
            Source::Keywords
        } else if menu[best] && model_best != Some(best) {
            Source::Menu
        } else if model_knows {
            Source::Model
        } else {
            Source::Default
        };
        let confidence = p[best];
        let cat = cats[best];
        let mut ranked: Vec<usize> = (0..cats.len()).collect();
        ranked.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        urgent_hits.sort_by_key(|(i, _)| *i);
        let live: Vec<&Hit> = urgent_hits
            .iter()
            .map(|(_, h)| *h)
            .filter(|h| !h.negated)
            .collect();
        Assessment {
            category_id: cat.id.clone(),
            category: cat.name.clone(),
            department: cat.department.clone(),
            confidence,
            needs_review: confidence < rules.review_threshold,
            urgent: cat.urgent || !live.is_empty(),
            source,
            matched_keywords: ordered(&kw[best]),
            urgent_keywords: live.iter().map(|h| h.word.clone()).collect(),
            heard_as: live
                .iter()
                .copied()
                .chain(kw_heard.iter().filter(|(c, _)| *c == best).map(|(_, h)| *h))
                .filter_map(|h| h.heard.clone().map(|x| (h.word.clone(), x)))
                .collect(),
            negated_urgent: urgent_hits
                .iter()
                .filter(|(_, h)| h.negated)
                .map(|(_, h)| h.word.clone())
                .collect(),
            top_features: match (&self.bayes, &scores) {
                (Some(b), Some(sc)) => b.top_features(sc, best, TOP_FEATURES),
                _ => Vec::new(),
            },
            ranking: ranked
                .iter()
                .take(3)
                .map(|&i| (cats[i].id.clone(), round3(p[i])))
                .collect(),
        }
    }
}

/// Keywords in table order.
fn ordered(found: &[(usize, String)]) -> Vec<String> {
    let mut v = found.to_vec();
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, k)| k).collect()
}

fn menu_matches(cat: &CategoryRule, menu_id: Option<&str>) -> bool {
    menu_id.is_some_and(|id| cat.menu_ids.iter().any(|m| m == id))
}

fn softmax(s: &[f64]) -> Vec<f64> {
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Index of the largest value; the first on ties (table order).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
