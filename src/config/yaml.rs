//! Reading YAML files into the config types with errors that name file, field path and
//! line, and finding the line of a field path after the fact (for checks made after
//! parsing).

use super::ConfigError;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::fmt;
use std::path::Path;

/// A field path such as `spec.scaling[1].replicas[0].count`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path with a mapping key appended.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    /// serde_path_to_error's path; its unknown segments (`?`) are left out.
    pub fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        FieldPath(
            path.iter()
                .filter_map(|segment| match segment {
                    S::Seq { index } => Some(Segment::Index(*index)),
                    S::Map { key } => Some(Segment::Key(key.clone())),
                    S::Enum { variant } => Some(Segment::Key(variant.clone())),
                    S::Unknown => None,
                })
                .collect(),
        )
    }

    /// The last segment when it is a mapping key.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }

    /// This path with a list index appended.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Reads and parses one file.
pub fn read<T: DeserializeOwned>(file: &Path) -> Result<(T, String), ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let value = parse(file, &text)?;
    Ok((value, text))
}

/// Parses YAML text into `T`; an error names the field path serde was at.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    if text.trim().is_empty() || only_comments(text) {
        return Err(ConfigError::Parse {
            file: file.to_path_buf(),
            line: None,
            field: String::new(),
            message: "the file is empty".to_string(),
        });
    }
    deserialize(text).map_err(|(mut field, inner)| {
        let serde_line = inner.location().map(|l| l.line());
        let raw = inner.to_string();
        if is_syntax_error(&raw) {
            let mut message = format!("YAML syntax error: {}", clean_message(&raw));
            let tab = serde_line
                .and_then(|l| text.lines().nth(l.saturating_sub(1)))
                .is_some_and(|l| l.contains('\t'));
            if tab {
                message.push_str(" (this line has a tab: YAML indents with spaces only)");
            }
            return ConfigError::Parse {
                file: file.to_path_buf(),
                line: serde_line,
                field: String::new(),
                message,
            };
        }
        let message = clean_message(&raw);
        // In a mapping serde buffers (an internally tagged enum such as `vault.auth`)
        // the path stops at the mapping: name the unknown key too, for the right line.
        if let Some(key) = unknown_field(&message) {
            if field.last_key() != Some(key) {
                field = field.key(key);
            }
        }
        // Where the node exists its own line beats the parser's position, which is
        // wrong inside buffered mappings.
        let mut line = line_of(text, &field).or(serde_line);
        // serde reports a repeated key at its mapping; point at the repetition.
        if let Some(key) = duplicate_key(&message) {
            line = second_occurrence(text, key, line.unwrap_or(1)).or(line);
            field = field.key(key);
        }
        ConfigError::Parse {
            file: file.to_path_buf(),
            line,
            field: field.to_string(),
            message,
        }
    })
}

/// `T` from YAML text, with the field path of an error. Merge keys (`<<: *base`, common
/// for globals shared by clusters) and top-level `x-` keys (where such anchors live) need
/// the document as a value first, where positions are lost; [`parse`] finds lines again
/// from the field path.
fn deserialize<T: DeserializeOwned>(text: &str) -> Result<T, (FieldPath, serde_yaml_ng::Error)> {
    let with_path = |err: serde_path_to_error::Error<serde_yaml_ng::Error>| {
        (FieldPath::from_serde(err.path()), err.into_inner())
    };
    let extensions = text.lines().any(|l| l.starts_with("x-"));
    if !text.contains("<<") && !extensions {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        return serde_path_to_error::deserialize(deserializer).map_err(with_path);
    }
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|err| (FieldPath::root(), err))?;
    value
        .apply_merge()
        .map_err(|err| (FieldPath::root(), err))?;
    // Top-level `x-...` keys hold anchors for the rest of the file (as in Compose files).
    if let serde_yaml_ng::Value::Mapping(map) = &mut value {
        map.retain(|key, _| !key.as_str().is_some_and(|k| k.starts_with("x-")));
    }
    serde_path_to_error::deserialize(value).map_err(with_path)
}

/// serde_yaml_ng's scanner and parser errors, as opposed to type errors.
fn is_syntax_error(message: &str) -> bool {
    [
        "while parsing",
        "while scanning",
        "found character",
        "did not find expected",
        "found unexpected",
        "mapping values are not allowed",
        "found undefined tag",
        "unknown anchor",
        "recursion limit",
        "unexpected end of",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// The key of serde's "duplicate field `KEY`" message (already reworded).
fn duplicate_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("duplicate key `")?;
    rest.split_once('`').map(|(key, _)| key)
}

/// The line of the second `key:` at the indentation of the first, from line `from` on
/// (block mappings; a flow mapping keeps the mapping's line).
fn second_occurrence(text: &str, key: &str, from: usize) -> Option<usize> {
    let mut first_indent = None;
    for (number, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let body = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - body.len();
        if body
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
        {
            match first_indent {
                None => first_indent = Some(indent),
                Some(first) if first == indent => return Some(number + 1),
                Some(_) => {}
            }
        }
    }
    None
}

/// The key of serde's "unknown field `KEY`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(key, _)| key)
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

/// serde_yaml_ng's message without its ` at line L column C` positions: the scanner's
/// messages hold them too ("did not find expected key at line 3 column 5, while parsing
/// ..."), relative to the text it was given, and every error reports the line itself,
/// relative to the right file.
pub fn yaml_message(err: &serde_yaml_ng::Error) -> String {
    without_positions(&err.to_string())
}

fn without_positions(message: &str) -> String {
    let mut message = message.to_string();
    while let Some(at) = message.find(" at line ") {
        let rest = &message[at + " at line ".len()..];
        let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).count();
        let line_len = digits(rest);
        let Some(after) = rest[line_len..].strip_prefix(" column ") else {
            break;
        };
        let end = at + " at line ".len() + line_len + " column ".len() + digits(after);
        message.replace_range(at..end, "");
    }
    message
}

/// The kind of a value read from YAML (or JSON, which users write as YAML too), in the
/// words of every message that says what was found instead: "must be a map of values,
/// found a list".
pub fn kind_of<'a>(value: impl Into<ValueKind<'a>>) -> &'static str {
    use serde_json::Value as J;
    use serde_yaml_ng::Value as Y;
    match value.into() {
        ValueKind::Yaml(Y::Null) | ValueKind::Json(J::Null) => "null",
        ValueKind::Yaml(Y::Bool(_)) | ValueKind::Json(J::Bool(_)) => "a boolean",
        ValueKind::Yaml(Y::Number(_)) | ValueKind::Json(J::Number(_)) => "a number",
        ValueKind::Yaml(Y::String(_)) | ValueKind::Json(J::String(_)) => "a string",
        ValueKind::Yaml(Y::Sequence(_)) | ValueKind::Json(J::Array(_)) => "a list",
        ValueKind::Yaml(Y::Mapping(_)) | ValueKind::Json(J::Object(_)) => "a map",
        ValueKind::Yaml(Y::Tagged(_)) => "a tagged value",
    }
}

/// A value [`kind_of`] can name.
pub enum ValueKind<'a> {
    Yaml(&'a serde_yaml_ng::Value),
    Json(&'a serde_json::Value),
}

impl<'a> From<&'a serde_yaml_ng::Value> for ValueKind<'a> {
    fn from(value: &'a serde_yaml_ng::Value) -> Self {
        ValueKind::Yaml(value)
    }
}

impl<'a> From<&'a serde_json::Value> for ValueKind<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        ValueKind::Json(value)
    }
}

/// serde_yaml_ng's messages hold ` at line L column C` and may start with its own copy of
/// the field path; the error already says both, so keep only the message itself.
fn clean_message(message: &str) -> String {
    let mut message = without_positions(message);
    // serde_yaml_ng prefixes `path: ` when it knows a path; drop it (ours is the same).
    if let Some((head, tail)) = message.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && !head.contains(' ')
            && head
                .chars()
                .all(|c| c.is_alphanumeric() || "._-[]".contains(c));
        if looks_like_path {
            message = tail.to_string();
        }
    }
    friendlier(&message)
}

/// serde's standard texts, reworded for people who write YAML rather than Rust: no Rust
/// type names, YAML's words for YAML's kinds.
fn friendlier(message: &str) -> String {
    if message == "unknown anchor" {
        return "an alias (*name) refers to no anchor (&name) defined before it".to_string();
    }
    if message.contains("more than one document") {
        return "the file holds several YAML documents (separated by ---); it must hold one"
            .to_string();
    }
    let mut message = message.to_string();
    // "expected struct ReleaseMetadata", "expected internally tagged enum VaultAuth"
    for rust in ["expected struct ", "expected internally tagged enum "] {
        if let Some(at) = message.find(rust) {
            message.replace_range(at.., "expected a mapping");
        }
    }
    for (from, to) in [
        ("invalid type: ", "wrong type: "),
        ("type: map,", "type: a mapping,"),
        ("type: sequence,", "type: a list,"),
        ("type: unit value,", "type: nothing (null),"),
        ("expected a sequence", "expected a list"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected u8", "expected a small non-negative integer"),
        ("expected a boolean", "expected true or false"),
        ("duplicate field", "duplicate key"),
    ] {
        message = message.replace(from, to);
    }
    message
}

/// The line (1-based) of the node at `path` in YAML `text`, if the path exists.
///
/// serde_yaml_ng only reveals positions in errors, so this walks the document with a seed
/// that follows the path and fails on purpose at the target node: the error carries the
/// node's line.
pub fn line_of(text: &str, path: &FieldPath) -> Option<usize> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    match (Navigate { path: &path.0 }).deserialize(deserializer) {
        Ok(()) => None,
        Err(err) => {
            if err.to_string().contains(FOUND) {
                err.location().map(|l| l.line())
            } else {
                None
            }
        }
    }
}

const FOUND: &str = "flotilla-found-node";

struct Navigate<'a> {
    path: &'a [Segment],
}

impl<'de> DeserializeSeed<'de> for Navigate<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Navigate<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            let matches = match (first, &key) {
                (Segment::Key(want), serde_yaml_ng::Value::String(got)) => want == got,
                (Segment::Key(want), other) => serde_yaml_ng::to_string(other)
                    .map(|s| s.trim() == want)
                    .unwrap_or(false),
                (Segment::Index(_), _) => false,
            };
            if matches {
                return map.next_value_seed(Navigate { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let mut index = 0;
        loop {
            if matches!(first, Segment::Index(want) if *want == index) {
                return seq.next_element_seed(Navigate { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Navigate<'_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a: 1\nb:\n  c:\n    - x\n    - name: y\n      d: true\n";

    #[test]
    fn field_path_display() {
        let p = FieldPath::root()
            .key("spec")
            .key("scaling")
            .index(1)
            .key("replicas")
            .index(0)
            .key("count");
        assert_eq!(p.to_string(), "spec.scaling[1].replicas[0].count");
        assert_eq!(FieldPath::root().to_string(), "");
    }

    #[test]
    fn line_of_finds_scalars_maps_and_list_items() {
        assert_eq!(line_of(DOC, &FieldPath::root().key("a")), Some(1));
        assert_eq!(
            line_of(DOC, &FieldPath::root().key("b").key("c").index(0)),
            Some(4)
        );
        let d = FieldPath::root().key("b").key("c").index(1).key("d");
        assert_eq!(line_of(DOC, &d), Some(6));
        let item = FieldPath::root().key("b").key("c").index(1);
        assert_eq!(line_of(DOC, &item), Some(5));
    }

    #[test]
    fn line_of_a_missing_path_is_none() {
        assert_eq!(line_of(DOC, &FieldPath::root().key("zz")), None);
        assert_eq!(
            line_of(DOC, &FieldPath::root().key("b").key("c").index(7)),
            None
        );
        assert_eq!(line_of("a: [\nb: 1\n", &FieldPath::root().key("b")), None);
    }
}
