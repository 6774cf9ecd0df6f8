//! Classification as the 8890 platform does it: a request → category → department + deadline.
//!
//! The table is data (TOML), not code, because the city re-assigns departments and deadlines
//! without asking the gateway's developers. Three kinds of evidence decide ([`decide`]): a
//! naive Bayes model over character n-grams trained at load time on labelled example
//! requests ([`bayes`], `config/classification/examples.tsv`, plus the operators'
//! corrections from the ticket store), the table's keywords matched on word boundaries
//! ([`words`]: jieba with the hotline vocabulary, so "打不着火" is not "着火"), and the
//! caller's menu choice. The answer carries a confidence and its evidence; below the table's
//! `review_threshold` the ticket asks for a person's review. A table without `[model]`
//! classifies by keywords and menu alone, as tables written before the model did.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::model::{Classification, ClassificationSource};
use super::TicketError;

mod bayes;
pub mod corrections;
mod decide;
pub mod evaluate;
mod misheard;
mod words;

pub use corrections::Correction;
pub use decide::{Assessment, Source};

/// The default table shipped with the gateway (`config/classification.toml`).
pub const DEFAULT_RULES_TOML: &str = include_str!("../../../config/classification.toml");
/// The example requests shipped beside it (`config/classification/examples.tsv`).
pub const DEFAULT_EXAMPLES_TSV: &str = include_str!("../../../config/classification/examples.tsv");

/// A parsed classification table, with its trained classifier.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Free-form version recorded in every ticket (`classification.rules_version`).
    pub version: String,
    /// Below this confidence (0..1) a ticket says `needs_review = true`.
    #[serde(default = "default_review_threshold")]
    pub review_threshold: f64,
    /// Used when neither the text nor the menu choice decides.
    pub default: CategoryRule,
    pub urgent: UrgentRule,
    #[serde(rename = "category")]
    pub categories: Vec<CategoryRule>,
    /// The learned classifier; absent: keywords and menu only.
    #[serde(default)]
    pub model: Option<ModelConfig>,
    #[serde(default)]
    pub segmenter: SegmenterConfig,
    /// Built after parsing (never from the file).
    #[serde(skip)]
    engine: Option<Arc<decide::Engine>>,
    /// The examples the engine was trained on, kept to retrain with corrections.
    #[serde(skip)]
    examples: Arc<Vec<(usize, String)>>,
}

fn default_review_threshold() -> f64 {
    0.5
}

/// One category: where its tickets go and how fast they must be answered.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    pub id: String,
    pub name: String,
    pub department: String,
    pub deadline_hours: u32,
    /// Every ticket of this category is urgent.
    #[serde(default)]
    pub urgent: bool,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Menu option ids whose choice counts as evidence for this category.
    #[serde(default)]
    pub menu_ids: Vec<String>,
}

/// Words that make any ticket urgent, whatever its category.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrgentRule {
    pub keywords: Vec<String>,
    /// Deadline of urgent tickets (the category's own deadline applies when shorter).
    pub deadline_hours: u32,
}

/// `[model]`: the trained classifier.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Labelled examples (`category<TAB>text` per line), relative to the table's folder.
    pub examples: PathBuf,
}

/// `[segmenter]`: vocabulary beyond the keywords and urgent words (which are added anyway).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmenterConfig {
    /// Compounds that contain a listed word but do not mean it ("打不着火" holds "着火").
    #[serde(default)]
    pub words: Vec<String>,
}

impl Rules {
    /// The table shipped in `config/classification.toml`, trained on the shipped examples.
    pub fn builtin() -> Rules {
        let origin = Path::new("<builtin>");
        let mut rules = Rules::parse_table(DEFAULT_RULES_TOML, origin)
            .expect("the shipped classification table parses (checked by tests)");
        let examples = evaluate::parse_examples(DEFAULT_EXAMPLES_TSV, origin, &rules)
            .expect("the shipped examples parse (checked by tests)");
        rules.train(examples, &[]);
        rules
    }

    /// Loads and validates a table from a TOML file, with its `[model] examples`.
    pub fn load(path: &Path) -> Result<Rules, TicketError> {
        let text = read(path)?;
        Rules::parse(&text, path)
    }

    /// Parses and validates a table and trains its model; `origin` names it in errors and
    /// locates the examples file (relative to its folder).
    pub fn parse(text: &str, origin: &Path) -> Result<Rules, TicketError> {
        let mut rules = Rules::parse_table(text, origin)?;
        let examples = match &rules.model {
            Some(m) => {
                let path = origin.parent().unwrap_or(Path::new(".")).join(&m.examples);
                evaluate::parse_examples(&read(&path)?, &path, &rules)?
            }
            None => Vec::new(),
        };
        rules.train(examples, &[]);
        Ok(rules)
    }

    fn parse_table(text: &str, origin: &Path) -> Result<Rules, TicketError> {
        let rules: Rules = toml::from_str(text).map_err(|e| TicketError::Rules {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        rules.validate().map_err(|message| TicketError::Rules {
            path: origin.to_owned(),
            message,
        })?;
        Ok(rules)
    }

    fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for c in self.all() {
            if c.id.trim().is_empty() || c.name.trim().is_empty() || c.department.trim().is_empty()
            {
                return Err(format!(
                    "category {:?}: id, name and department must be set",
                    c.id
                ));
            }
            if !seen.insert(c.id.as_str()) {
                return Err(format!("category id {:?} appears twice", c.id));
            }
            if c.deadline_hours == 0 {
                return Err(format!("category {:?}: deadline_hours must be > 0", c.id));
            }
            if let Some(k) = c.keywords.iter().find(|k| k.trim().is_empty()) {
                return Err(format!("category {:?}: empty keyword {k:?}", c.id));
            }
        }
        if self.urgent.deadline_hours == 0 {
            return Err("urgent.deadline_hours must be > 0".into());
        }
        if !(0.0..=1.0).contains(&self.review_threshold) {
            return Err(format!(
                "review_threshold = {} must be between 0 and 1",
                self.review_threshold
            ));
        }
        Ok(())
    }

    /// Every category, the default last: the index space of the classifier.
    pub fn all(&self) -> Vec<&CategoryRule> {
        self.categories
            .iter()
            .chain(std::iter::once(&self.default))
            .collect()
    }

    /// Index of a category id in [`Self::all`].
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.all().iter().position(|c| c.id == id)
    }

    /// The category with this id (the default included).
    pub fn category(&self, id: &str) -> Option<&CategoryRule> {
        self.all().into_iter().find(|c| c.id == id)
    }

    fn train(&mut self, examples: Vec<(usize, String)>, corrections: &[(usize, String)]) {
        let mut all = examples.clone();
        all.extend_from_slice(corrections);
        self.engine = Some(Arc::new(decide::Engine::build(
            self,
            &all,
            corrections.len(),
        )));
        self.examples = Arc::new(examples);
    }

    /// The same table retrained on its examples plus operators' `corrections` (each a
    /// labelled request). Corrections naming a category the table no longer has, or without
    /// text, are left out; the second value counts them.
    pub fn with_corrections(&self, corrections: &[Correction]) -> (Rules, usize) {
        let mut used = Vec::new();
        let mut skipped = 0;
        for c in corrections {
            match self.index_of(&c.category_id) {
                Some(i) if !c.text.trim().is_empty() => used.push((i, c.text.clone())),
                _ => skipped += 1,
            }
        }
        let mut rules = self.clone();
        if rules.model.is_some() {
            rules.train(self.examples.as_ref().clone(), &used);
        } else {
            skipped = corrections.len();
        }
        (rules, skipped)
    }

    /// The same table without its model: what keywords and the menu alone decide.
    pub fn rules_only(&self) -> Rules {
        let mut rules = self.clone();
        rules.model = None;
        rules.train(Vec::new(), &[]);
        rules
    }

    /// The table's words, one group per category in table order, the urgent words last: the
    /// vocabulary of `[asr] initial_prompt = "auto"` (`asr::prompt::with_vocabulary`).
    pub fn vocabulary(&self) -> Vec<Vec<String>> {
        let mut groups: Vec<Vec<String>> =
            self.categories.iter().map(|c| c.keywords.clone()).collect();
        groups.push(self.urgent.keywords.clone());
        groups
    }

    /// `(examples, corrections)` the model was trained on.
    pub fn trained_on(&self) -> (usize, usize) {
        self.engine().trained_on
    }

    fn engine(&self) -> &decide::Engine {
        self.engine
            .as_deref()
            .expect("Rules are only made through parse/load/builtin, which train")
    }

    /// The classifier's full answer for a text and menu choice.
    pub fn assess(&self, text: &str, menu_id: Option<&str>) -> Assessment {
        self.engine().assess(self, text, menu_id)
    }

    /// Classifies a transcript (and menu choice) at `created_at`, for the ticket.
    pub fn classify(
        &self,
        text: &str,
        menu_id: Option<&str>,
        created_at: DateTime<Utc>,
    ) -> Classification {
        let a = self.assess(text, menu_id);
        let cat = self
            .category(&a.category_id)
            .expect("the assessment names a category of this table");
        let hours = if a.urgent {
            cat.deadline_hours.min(self.urgent.deadline_hours)
        } else {
            cat.deadline_hours
        };
        let source = match a.source {
            Source::Keywords => ClassificationSource::Keywords,
            Source::Menu => ClassificationSource::Menu,
            Source::Model => ClassificationSource::Model,
            Source::Default => ClassificationSource::Default,
        };
        Classification {
            category_id: a.category_id,
            category: a.category,
            department: a.department,
            urgent: a.urgent,
            response_deadline_hours: hours,
            due_at: created_at + Duration::hours(i64::from(hours)),
            matched_keywords: a.matched_keywords,
            urgent_keywords: a.urgent_keywords,
            source,
            rules_version: self.version.clone(),
            // Three decimals, like the transcript's confidences.
            confidence: (a.confidence * 1000.0).round() / 1000.0,
            needs_review: a.needs_review,
            operator_override: None,
        }
    }
}

fn read(path: &Path) -> Result<String, TicketError> {
    std::fs::read_to_string(path).map_err(|source| TicketError::Io {
        path: path.to_owned(),
        source,
    })
}
