//! Labelled requests in, figures out: the example file the model trains on, evaluation
//! sets (`expected<TAB>urgent<TAB>text`), accuracy, urgent hits and false alarms, the
//! confusion, and cross-validation on the examples (tune there, never on the held-out set).

use std::collections::BTreeMap;
use std::path::Path;

use super::Rules;
use crate::ticket::TicketError;

/// One labelled request of an evaluation set.
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled {
    pub expected: String,
    pub urgent: bool,
    pub text: String,
}

/// What an evaluation found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub requests: usize,
    pub correct: usize,
    /// `correct / requests`.
    pub accuracy: f64,
    /// Requests labelled urgent, and how many of them were flagged.
    pub urgent: usize,
    pub urgent_flagged: usize,
    /// Requests labelled ordinary, and how many of them were flagged anyway.
    pub ordinary: usize,
    pub false_alarms: usize,
    /// Requests the classifier marked `needs_review`, and how many of those were wrong.
    pub needs_review: usize,
    pub needs_review_wrong: usize,
    /// `(expected, got) → count`, mistakes only.
    pub confusion: BTreeMap<String, usize>,
    /// Every request classified wrongly or flagged wrongly, for reading.
    pub mistakes: Vec<Mistake>,
    /// Mean wall time of one classification (segmentation, model, keywords), microseconds.
    pub micros_per_request: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Mistake {
    pub text: String,
    pub expected: String,
    pub got: String,
    pub expected_urgent: bool,
    pub urgent: bool,
    pub confidence: f64,
}

fn bad_line(path: &Path, line: usize, message: String) -> TicketError {
    TicketError::Rules {
        path: path.to_owned(),
        message: format!("line {line}: {message}"),
    }
}

/// Lines that carry data: not blank, not `#` comments, not the header row.
fn rows<'a>(text: &'a str, header: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(move |(_, l)| !l.trim().is_empty() && !l.starts_with('#') && *l != header)
}

/// Parses an examples file: `category<TAB>text` per line. Every category must be in the
/// table (the error names the file and line).
pub fn parse_examples(
    text: &str,
    path: &Path,
    rules: &Rules,
) -> Result<Vec<(usize, String)>, TicketError> {
    let mut out = Vec::new();
    for (n, line) in rows(text, "category\ttext") {
        let Some((cat, req)) = line.split_once('\t') else {
            return Err(bad_line(path, n, "expected category<TAB>text".into()));
        };
        let Some(i) = rules.index_of(cat.trim()) else {
            return Err(bad_line(path, n, format!("unknown category {cat:?}")));
        };
        if req.trim().is_empty() {
            return Err(bad_line(path, n, "empty text".into()));
        }
        out.push((i, req.trim().to_owned()));
    }
    Ok(out)
}

/// Parses an evaluation set: header `expected<TAB>urgent<TAB>text`, `urgent` 0 or 1.
pub fn parse_labelled(text: &str, path: &Path) -> Result<Vec<Labelled>, TicketError> {
    let mut out = Vec::new();
    for (n, line) in rows(text, "expected\turgent\ttext") {
        let mut parts = line.splitn(3, '\t');
        let (Some(expected), Some(urgent), Some(req)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad_line(
                path,
                n,
                "expected expected<TAB>urgent<TAB>text".into(),
            ));
        };
        let urgent = match urgent.trim() {
            "0" => false,
            "1" => true,
            other => return Err(bad_line(path, n, format!("urgent {other:?} is not 0 or 1"))),
        };
        out.push(Labelled {
            expected: expected.trim().to_owned(),
            urgent,
            text: req.trim().to_owned(),
        });
    }
    Ok(out)
}

/// Classifies every request of `set` (no menu choice: the text alone) and counts.
pub fn evaluate(rules: &Rules, set: &[Labelled]) -> Report {
    let mut r = Report {
        requests: set.len(),
        ..Report::default()
    };
    let mut spent = std::time::Duration::ZERO;
    for l in set {
        let started = std::time::Instant::now();
        let a = rules.assess(&l.text, None);
        spent += started.elapsed();
        let right = a.category_id == l.expected;
        r.correct += usize::from(right);
        if l.urgent {
            r.urgent += 1;
            r.urgent_flagged += usize::from(a.urgent);
        } else {
            r.ordinary += 1;
            r.false_alarms += usize::from(a.urgent);
        }
        if a.needs_review {
            r.needs_review += 1;
            r.needs_review_wrong += usize::from(!right);
        }
        if !right {
            *r.confusion
                .entry(format!("{} → {}", l.expected, a.category_id))
                .or_default() += 1;
        }
        if !right || a.urgent != l.urgent {
            r.mistakes.push(Mistake {
                text: l.text.clone(),
                expected: l.expected.clone(),
                got: a.category_id.clone(),
                expected_urgent: l.urgent,
                urgent: a.urgent,
                confidence: a.confidence,
            });
        }
    }
    r.accuracy = r.correct as f64 / r.requests.max(1) as f64;
    r.micros_per_request = spent.as_secs_f64() * 1e6 / r.requests.max(1) as f64;
    r
}

/// `k`-fold cross-validation on the table's own examples: models trained without each
/// fold, evaluated on that fold, the counts summed. The figures to tune against.
/// `misheard` > 0 passes each evaluated example through [`super::misheard::Channel`] at
/// that rate (homophones of the training folds' characters): transcripts, not clean text.
pub fn cross_validate(rules: &Rules, k: usize, misheard: f64) -> Report {
    let examples = rules.examples.as_ref();
    let ids: Vec<String> = rules.all().iter().map(|c| c.id.clone()).collect();
    let k = k.max(2);
    let mut total = Report::default();
    for fold in 0..k {
        let (test, train): (Vec<_>, Vec<_>) = examples
            .iter()
            .enumerate()
            .partition(|(i, _)| i % k == fold);
        let mut channel = super::misheard::Channel::new(
            train.iter().map(|(_, (_, t))| t.as_str()),
            misheard,
            fold as u64 + 1,
        );
        let mut r = rules.clone();
        r.train(train.into_iter().map(|(_, e)| e.clone()).collect(), &[]);
        let set: Vec<Labelled> = test
            .into_iter()
            .map(|(_, (cat, text))| Labelled {
                expected: ids[*cat].clone(),
                urgent: false,
                text: channel.mishear(text),
            })
            .collect();
        total.add(evaluate(&r, &set));
    }
    total
}

impl Report {
    /// Adds another report's counts (the urgent counts are not meaningful for examples).
    fn add(&mut self, other: Report) {
        self.requests += other.requests;
        self.correct += other.correct;
        self.urgent += other.urgent;
        self.urgent_flagged += other.urgent_flagged;
        self.ordinary += other.ordinary;
        self.false_alarms += other.false_alarms;
        self.needs_review += other.needs_review;
        self.needs_review_wrong += other.needs_review_wrong;
        for (k, v) in other.confusion {
            *self.confusion.entry(k).or_default() += v;
        }
        self.mistakes.extend(other.mistakes);
        self.accuracy = self.correct as f64 / self.requests.max(1) as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_sets_parse_and_bad_lines_are_named() {
        let p = Path::new("set.tsv");
        let set = parse_labelled(
            "expected\turgent\ttext\nnoise\t0\t楼上太吵\n\n# note\nutilities\t1\t煤气味很大\n",
            p,
        )
        .unwrap();
        assert_eq!(set.len(), 2);
        assert!(set[1].urgent);
        let err = parse_labelled("expected\turgent\ttext\nnoise\tyes\t吵\n", p).unwrap_err();
        assert!(
            err.to_string().contains("set.tsv") && err.to_string().contains("line 2"),
            "{err}"
        );
        let rules = Rules::builtin();
        let err = parse_examples("nowhere\t某事\n", p, &rules).unwrap_err();
        assert!(
            err.to_string().contains("line 1") && err.to_string().contains("nowhere"),
            "{err}"
        );
    }
}
