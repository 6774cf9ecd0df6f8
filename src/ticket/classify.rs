//! Classification as the 8890 platform does it: keywords → category → department + deadline.
//!
//! The table is data (TOML), not code, because the city re-assigns departments and deadlines
//! without asking the gateway's developers. Chinese keywords match as substrings (Chinese has
//! no spaces); keywords written in ASCII match case-insensitively on word boundaries so that
//! `fire` does not fire on `fireworks`.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::path::Path;

use super::model::{Classification, ClassificationSource};
use super::TicketError;

/// The default table shipped with the gateway (`config/classification.toml`).
pub const DEFAULT_RULES_TOML: &str = include_str!("../../config/classification.toml");

/// A parsed classification table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Free-form version recorded in every ticket (`classification.rules_version`).
    pub version: String,
    /// Used when neither a keyword nor the menu choice decides.
    pub default: CategoryRule,
    pub urgent: UrgentRule,
    #[serde(rename = "category")]
    pub categories: Vec<CategoryRule>,
}

/// One category: where its tickets go and how fast they must be answered.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    pub id: String,
    pub name: String,
    pub department: String,
    pub deadline_hours: u32,
    /// Every ticket of this category is urgent (e.g. public safety).
    #[serde(default)]
    pub urgent: bool,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Menu option ids that fall back on this category when no keyword matches.
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

impl Rules {
    /// The table shipped in `config/classification.toml`.
    pub fn builtin() -> Rules {
        Rules::parse(DEFAULT_RULES_TOML, Path::new("<builtin>"))
            .expect("the shipped classification table parses (checked by tests)")
    }

    /// Loads and validates a table from a TOML file.
    pub fn load(path: &Path) -> Result<Rules, TicketError> {
        let text = std::fs::read_to_string(path).map_err(|source| TicketError::Io {
            path: path.to_owned(),
            source,
        })?;
        Rules::parse(&text, path)
    }

    /// Parses and validates a table; `origin` only names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Rules, TicketError> {
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
        for c in std::iter::once(&self.default).chain(&self.categories) {
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
        Ok(())
    }

    /// Classifies a transcript (and menu choice) at `created_at`.
    pub fn classify(
        &self,
        text: &str,
        menu_id: Option<&str>,
        created_at: DateTime<Utc>,
    ) -> Classification {
        let haystack = Haystack::new(text);
        let mut best: Option<(&CategoryRule, Vec<String>)> = None;
        for cat in &self.categories {
            let matched: Vec<String> = cat
                .keywords
                .iter()
                .filter(|k| haystack.contains(k))
                .cloned()
                .collect();
            if matched.is_empty() {
                continue;
            }
            let better = match &best {
                None => true,
                Some((b, bm)) => {
                    matched.len() > bm.len()
                        || (matched.len() == bm.len()
                            && menu_matches(cat, menu_id)
                            && !menu_matches(b, menu_id))
                }
            };
            if better {
                best = Some((cat, matched));
            }
        }
        let (cat, matched, source) = match best {
            Some((c, m)) => (c, m, ClassificationSource::Keywords),
            None => match self.categories.iter().find(|c| menu_matches(c, menu_id)) {
                Some(c) => (c, Vec::new(), ClassificationSource::Menu),
                None => (&self.default, Vec::new(), ClassificationSource::Default),
            },
        };
        let urgent_keywords: Vec<String> = self
            .urgent
            .keywords
            .iter()
            .filter(|k| haystack.contains(k))
            .cloned()
            .collect();
        let urgent = cat.urgent || !urgent_keywords.is_empty();
        let hours = if urgent {
            cat.deadline_hours.min(self.urgent.deadline_hours)
        } else {
            cat.deadline_hours
        };
        Classification {
            category_id: cat.id.clone(),
            category: cat.name.clone(),
            department: cat.department.clone(),
            urgent,
            response_deadline_hours: hours,
            due_at: created_at + Duration::hours(i64::from(hours)),
            matched_keywords: matched,
            urgent_keywords,
            source,
            rules_version: self.version.clone(),
            confidence: source_confidence(source),
            // Nothing in the text or the menu pointed anywhere: a person should look.
            needs_review: source == ClassificationSource::Default,
            operator_override: None,
        }
    }
}

/// The keyword table gives no score of its own: a keyword hit is taken as certain, the menu
/// fallback as a fair guess, the default category as no knowledge at all.
fn source_confidence(source: ClassificationSource) -> f64 {
    match source {
        ClassificationSource::Keywords | ClassificationSource::Model => 1.0,
        ClassificationSource::Menu => 0.6,
        ClassificationSource::Default => 0.0,
    }
}

fn menu_matches(cat: &CategoryRule, menu_id: Option<&str>) -> bool {
    menu_id.is_some_and(|id| cat.menu_ids.iter().any(|m| m == id))
}

/// The transcript prepared once for all keyword look-ups.
struct Haystack {
    /// Lower-cased, whitespace removed: for CJK substring matching.
    compact: String,
    /// Lower-cased ASCII words (runs of `[a-z0-9']`), for word-boundary matching.
    words: Vec<String>,
}

impl Haystack {
    fn new(text: &str) -> Haystack {
        let lower = text.to_lowercase();
        let compact = lower.chars().filter(|c| !c.is_whitespace()).collect();
        let words = ascii_words(&lower);
        Haystack { compact, words }
    }

    fn contains(&self, keyword: &str) -> bool {
        let kw = keyword.to_lowercase();
        if kw.is_ascii() {
            let needle = ascii_words(&kw);
            !needle.is_empty()
                && self
                    .words
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
        } else {
            let kw: String = kw.chars().filter(|c| !c.is_whitespace()).collect();
            self.compact.contains(&kw)
        }
    }
}

fn ascii_words(lower: &str) -> Vec<String> {
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}
