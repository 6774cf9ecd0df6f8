//! From text to [`Config`]: parse with spans, apply environment overrides, deserialise.
//!
//! serde stops at the first error, but an admin fixing a file wants them all. So a failed
//! deserialisation is located (error span → dotted key), recorded, the offending key removed
//! from the document, and deserialisation retried; every key has a default, so each round
//! gets further. Spans from the retried text are only used to find the key; the line reported
//! is always the key's line in the original file.

use super::env;
use super::{Config, ConfigError};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use toml_edit::{DocumentMut, ImDocument, Item, TableLike, Value};

/// Where the values of a loaded [`Config`] came from, so that errors found after loading
/// (validation, [`Config::check_files`]) can still name the line or the variable.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The file, when loaded with [`Config::load`].
    pub file: Option<PathBuf>,
    /// Dotted key → 1-based line in the file.
    lines: BTreeMap<String, usize>,
    /// Dotted key → environment variable that set it.
    env: BTreeMap<String, String>,
}

impl ConfigSource {
    /// Line of `key` in the file; for a key not in the file, the line of the nearest
    /// enclosing table that is (so a default that fails validation points at its section).
    /// `None` when the value came from the environment.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        if self.env_var_of(key).is_some() {
            return None;
        }
        let mut k = key;
        loop {
            if let Some(l) = self.lines.get(k) {
                return Some(*l);
            }
            k = parent(k)?;
        }
    }

    /// Whether `key` itself is written in the file (not only an enclosing table).
    pub fn has(&self, key: &str) -> bool {
        self.lines.contains_key(key)
    }

    /// The environment variable that set `key` (or an enclosing key), if one did.
    pub fn env_var_of(&self, key: &str) -> Option<&str> {
        let mut k = key;
        loop {
            if let Some(v) = self.env.get(k) {
                return Some(v);
            }
            k = parent(k)?;
        }
    }

    /// An error about `key`, with its line or variable and the file filled in.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.to_owned(),
            line: self.line_of(key),
            message: message.into(),
            file: self.file.clone(),
            env_var: self.env_var_of(key).map(str::to_owned),
        }
    }
}

/// `menu.option[2].digit` → `menu.option[2]` → `menu.option` → `menu` → none.
fn parent(key: &str) -> Option<&str> {
    let cut = key.rfind(['.', '['])?;
    Some(&key[..cut])
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A key or table in a parsed document and the bytes it covers.
struct Entry {
    path: Vec<Seg>,
    span: Range<usize>,
}

/// Every key (`key = value`, from key start to value end) and table header in `doc`.
fn entries(doc: &ImDocument<&str>) -> Vec<Entry> {
    let mut out = Vec::new();
    walk_table(doc.as_table(), &mut Vec::new(), &mut out);
    out
}

fn walk_table(table: &dyn TableLike, path: &mut Vec<Seg>, out: &mut Vec<Entry>) {
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        path.push(Seg::Key(name.to_owned()));
        walk_item(key.span(), item, path, out);
        path.pop();
    }
}

fn walk_item(
    key_span: Option<Range<usize>>,
    item: &Item,
    path: &mut Vec<Seg>,
    out: &mut Vec<Entry>,
) {
    match item {
        Item::None => {}
        Item::Table(t) => {
            if let Some(span) = t.span() {
                out.push(Entry {
                    path: path.clone(),
                    span,
                });
            }
            walk_table(t, path, out);
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if let Some(span) = t.span() {
                    out.push(Entry {
                        path: path.clone(),
                        span,
                    });
                }
                walk_table(t, path, out);
                path.pop();
            }
        }
        Item::Value(v) => {
            if let (Some(k), Some(vs)) = (key_span, v.span()) {
                out.push(Entry {
                    path: path.clone(),
                    span: k.start..vs.end.max(k.end),
                });
            }
            walk_value(v, path, out);
        }
    }
}

/// Inline tables and arrays of inline tables nest keys too.
fn walk_value(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Entry>) {
    match v {
        Value::InlineTable(t) => walk_table(t, path, out),
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                if let Value::InlineTable(t) = e {
                    path.push(Seg::Index(i));
                    if let Some(span) = e.span() {
                        out.push(Entry {
                            path: path.clone(),
                            span,
                        });
                    }
                    walk_table(t, path, out);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// The innermost entry covering byte `at`.
fn locate(entries: &[Entry], at: usize) -> Option<&Entry> {
    entries
        .iter()
        .filter(|e| e.span.start <= at && at < e.span.end.max(e.span.start + 1))
        .min_by_key(|e| e.span.len())
}

fn line_at(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Remove the key at `segs` from `doc`; false if it is not there.
fn remove(table: &mut dyn TableLike, segs: &[Seg]) -> bool {
    match segs {
        [Seg::Key(k)] => table.remove(k).is_some(),
        [Seg::Key(k), Seg::Index(i), rest @ ..] => match table.get_mut(k) {
            Some(Item::ArrayOfTables(a)) if rest.is_empty() && *i < a.len() => {
                a.remove(*i);
                true
            }
            Some(Item::ArrayOfTables(a)) => match a.get_mut(*i) {
                Some(t) => remove(t, rest),
                None => false,
            },
            Some(Item::Value(Value::Array(a))) if rest.is_empty() && *i < a.len() => {
                a.remove(*i);
                true
            }
            Some(Item::Value(Value::Array(a))) => match a.get_mut(*i) {
                Some(Value::InlineTable(t)) => remove(t, rest),
                _ => false,
            },
            _ => false,
        },
        [Seg::Key(k), rest @ ..] if !rest.is_empty() => {
            match table.get_mut(k).and_then(Item::as_table_like_mut) {
                Some(t) => remove(t, rest),
                None => false,
            }
        }
        _ => false,
    }
}

/// Set one environment override in `doc`, creating its section if the file has none.
fn apply(doc: &mut DocumentMut, o: &env::Override) -> Result<(), String> {
    let section = doc
        .as_table_mut()
        .entry(o.section)
        .or_insert_with(toml_edit::table);
    let Some(table) = section.as_table_like_mut() else {
        return Err(format!("`{}` in the file is not a table", o.section));
    };
    match &o.value {
        Some(v) => {
            table.insert(o.key, Item::Value(v.clone()));
        }
        None => {
            table.remove(o.key);
        }
    }
    Ok(())
}

/// Parse `text`, apply overrides from `env`, deserialise. Validation is the caller's.
///
/// On failure returns every error found: environment problems plus one per bad key.
pub(super) fn parse(text: &str, env: &[(String, String)]) -> Result<Config, Vec<ConfigError>> {
    let original = ImDocument::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        vec![ConfigError::syntax(line, e.message().trim_end())]
    })?;
    let mut source = ConfigSource::default();
    for e in entries(&original) {
        source
            .lines
            .insert(path_string(&e.path), line_at(text, e.span.start));
    }
    // An array of tables has no span of its own: point it at its first element.
    let firsts: Vec<(String, usize)> = source
        .lines
        .iter()
        .filter_map(|(k, l)| k.strip_suffix("[0]").map(|p| (p.to_owned(), *l)))
        .collect();
    for (k, l) in firsts {
        source.lines.entry(k).or_insert(l);
    }

    let (overrides, mut errors) = env::overrides(env);
    let mut doc = original.into_mut();
    for o in &overrides {
        match apply(&mut doc, o) {
            Ok(()) => {
                source
                    .env
                    .insert(format!("{}.{}", o.section, o.key), o.var.clone());
            }
            Err(m) => errors.push(ConfigError {
                env_var: Some(o.var.clone()),
                ..source.error(o.section, m)
            }),
        }
    }

    // Bounded: every round removes one key, and a file has finitely many.
    for _ in 0..1000 {
        let current = doc.to_string();
        let e = match toml::from_str::<Config>(&current) {
            Ok(mut config) => {
                if !errors.is_empty() {
                    return Err(with_validation(errors, &config, source));
                }
                config.source = source;
                return Ok(config);
            }
            Err(e) => e,
        };
        let message = e.message().trim_end().to_owned();
        let reparsed = ImDocument::parse(current.as_str()).ok();
        let found = reparsed.as_ref().and_then(|d| {
            let all = entries(d);
            let at = e.span()?.start;
            locate(&all, at).map(|en| en.path.clone())
        });
        match found {
            Some(path) if remove(doc.as_table_mut(), &path) => {
                errors.push(source.error(&path_string(&path), message));
            }
            _ => {
                // Cannot pin it to a key: report it as-is and stop, nothing to remove.
                let line = if overrides.is_empty() {
                    e.span().map(|s| line_at(text, s.start))
                } else {
                    None
                };
                errors.push(ConfigError::syntax(line, message));
                return Err(errors);
            }
        }
    }
    Err(errors)
}

/// Parse a part of the configuration kept in a file of its own (the flow file): its keys
/// are named `<prefix>.<key>`, with that file's lines. Stops at the first type error.
pub(super) fn parse_part<T: serde::de::DeserializeOwned>(
    text: &str,
    prefix: &str,
) -> Result<(T, ConfigSource), Vec<ConfigError>> {
    let doc = ImDocument::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        vec![ConfigError::syntax(line, e.message().trim_end())]
    })?;
    let all = entries(&doc);
    let mut source = ConfigSource::default();
    for e in &all {
        source.lines.insert(
            format!("{prefix}.{}", path_string(&e.path)),
            line_at(text, e.span.start),
        );
    }
    match toml::from_str::<T>(text) {
        Ok(v) => Ok((v, source)),
        Err(e) => {
            let key = e
                .span()
                .and_then(|s| locate(&all, s.start))
                .map(|en| format!("{prefix}.{}", path_string(&en.path)))
                .unwrap_or_else(|| prefix.to_owned());
            let mut err = source.error(&key, e.message().trim_end());
            if err.line.is_none() {
                err.line = e.span().map(|s| line_at(text, s.start));
            }
            Err(vec![err])
        }
    }
}

/// Deserialisation or environment errors exist, but the rest of the file parsed (with the bad
/// keys at their defaults): validate it too, so the admin sees everything at once. Sections
/// that already have an error are skipped, since their defaults stand in for bad values and
/// could only produce confusing follow-on errors.
fn with_validation(
    mut errors: Vec<ConfigError>,
    config: &Config,
    source: ConfigSource,
) -> Vec<ConfigError> {
    let section = |k: &str| -> String { k.split(['.', '[']).next().unwrap_or_default().to_owned() };
    let bad: Vec<String> = errors.iter().map(|e| section(&e.key)).collect();
    let mut config = config.clone();
    config.source = source;
    for v in super::validate::validate(&config) {
        if !bad.contains(&section(&v.key)) {
            errors.push(v);
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_walks_up_dotted_and_indexed_keys() {
        assert_eq!(parent("menu.option[2].digit"), Some("menu.option[2]"));
        assert_eq!(parent("menu.option[2]"), Some("menu.option"));
        assert_eq!(parent("menu.option"), Some("menu"));
        assert_eq!(parent("menu"), None);
    }

    #[test]
    fn entries_cover_keys_tables_and_inline_tables() {
        let text =
            "[sip]\nlisten = \"x\"\n\n[[number]]\nnumber = \"1\"\n\n[media]\nx = { a = 1 }\n";
        let doc = ImDocument::parse(text).unwrap();
        let got: Vec<(String, usize)> = entries(&doc)
            .iter()
            .map(|e| (path_string(&e.path), line_at(text, e.span.start)))
            .collect();
        for want in [
            ("sip", 1),
            ("sip.listen", 2),
            ("number[0]", 4),
            ("number[0].number", 5),
            ("media.x", 8),
            ("media.x.a", 8),
        ] {
            assert!(
                got.contains(&(want.0.to_owned(), want.1)),
                "{want:?} not in {got:?}"
            );
        }
    }

    #[test]
    fn remove_reaches_into_arrays_of_tables() {
        let mut doc: DocumentMut = "[[number]]\nnumber = \"1\"\nbogus = 2\n".parse().unwrap();
        let path = [
            Seg::Key("number".into()),
            Seg::Index(0),
            Seg::Key("bogus".into()),
        ];
        assert!(remove(doc.as_table_mut(), &path));
        assert!(!doc.to_string().contains("bogus"));
        assert!(!remove(doc.as_table_mut(), &path));
    }
}
