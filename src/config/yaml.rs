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
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let field = field_of(err.path());
        let inner = err.into_inner();
        let line = inner.location().map(|l| l.line());
        ConfigError::Parse {
            file: file.to_path_buf(),
            line,
            field,
            message: clean_message(&inner.to_string()),
        }
    })
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

/// serde_path_to_error writes `.` for the top and `?` for a segment it does not know.
fn field_of(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." {
        String::new()
    } else {
        text
    }
}

/// serde_yaml's messages end in ` at line L column C` and may start with its own copy of
/// the field path; the error already says both, so keep only the message itself.
fn clean_message(message: &str) -> String {
    let mut message = message;
    if let Some(at) = message.rfind(" at line ") {
        if message[at..].contains(" column ") {
            message = &message[..at];
        }
    }
    // serde_yaml prefixes `path: ` when it knows a path; drop it (ours is the same).
    if let Some((head, tail)) = message.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && !head.contains(' ')
            && head
                .chars()
                .all(|c| c.is_alphanumeric() || "._-[]".contains(c));
        if looks_like_path {
            message = tail;
        }
    }
    friendlier(message)
}

/// serde's standard texts, reworded for people who write YAML rather than Rust.
fn friendlier(message: &str) -> String {
    message
        .replace("expected u32", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected u8", "expected a small non-negative integer")
        .replace("expected a boolean", "expected true or false")
        .replace("invalid type: ", "wrong type: ")
}

/// The line (1-based) of the node at `path` in YAML `text`, if the path exists.
///
/// serde_yaml only reveals positions in errors, so this walks the document with a seed
/// that follows the path and fails on purpose at the target node: the error carries the
/// node's line.
pub fn line_of(text: &str, path: &FieldPath) -> Option<usize> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
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

/// The line of `path` in `file`, read again (checks run after the text is gone).
pub fn line_in_file(file: &Path, path: &FieldPath) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    line_of(&text, path)
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
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            let matches = match (first, &key) {
                (Segment::Key(want), serde_yaml::Value::String(got)) => want == got,
                (Segment::Key(want), other) => serde_yaml::to_string(other)
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
        assert_eq!(line_of("a: [", &FieldPath::root().key("a")), None);
    }
}
