//! Values: the deep merge, the command-line layer (`-f`, `--set` and its kin) and the
//! secret map the chart receives.

use super::error::RenderError;
use super::strvals::{self, Typing};
use crate::config::yaml::{kind_of, yaml_message};
use crate::config::ReleaseSpec;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// secret_id → value, as the chart sees it in `Values.secrets`. Placeholders for
/// `template`, real values (resolved by the vault module) for a deploy.
pub type SecretValues = BTreeMap<String, String>;

/// The visible stand-in for a secret that was not read from Vault.
pub fn placeholder(secret_id: &str) -> String {
    format!("<secret:{secret_id}>")
}

/// A placeholder for every secret that has a source for `context`.
pub fn placeholder_secrets(spec: &ReleaseSpec, context: &str) -> SecretValues {
    spec.secrets
        .iter()
        .filter(|mapping| mapping.source_for(context).is_some())
        .map(|mapping| (mapping.secret_id.clone(), placeholder(&mapping.secret_id)))
        .collect()
}

/// Merge `over` into `base`: maps merge key by key, recursively; anything else
/// (lists included) replaces what was there, as Helm does.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// One source of values on the command line, as Helm takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// `-f/--values FILE`: a YAML map of values.
    File(PathBuf),
    /// `--set a.b=1,c[0]=x`: integers, booleans and null typed, anything else a string.
    Set(String),
    /// `--set-string a.b=1`: every value a string.
    SetString(String),
    /// `--set-json 'a={"b":[1,2]}'`: every value JSON.
    SetJson(String),
}

impl ValueSource {
    /// Helm's order, whatever the order of the flags: files (in the order given), then
    /// `--set-json`, `--set`, `--set-string` (each in the order given); later wins.
    fn rank(&self) -> u8 {
        match self {
            ValueSource::File(_) => 0,
            ValueSource::SetJson(_) => 1,
            ValueSource::Set(_) => 2,
            ValueSource::SetString(_) => 3,
        }
    }

    fn flag(&self) -> &'static str {
        match self {
            ValueSource::File(_) => "--values",
            ValueSource::SetJson(_) => "--set-json",
            ValueSource::Set(_) => "--set",
            ValueSource::SetString(_) => "--set-string",
        }
    }
}

/// The values given on the command line, merged into one layer: above the descriptor's
/// and the environment's values, below `global`, `secrets` and `scaling`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandLineValues(Map<String, Value>);

impl CommandLineValues {
    /// Reads the files and parses the `--set` flags, in Helm's order (see
    /// [`ValueSource`]): a `--set` goes into what the files gave (`list[1]=x` changes
    /// the second item of a file's list).
    pub fn parse(sources: &[ValueSource]) -> Result<CommandLineValues, RenderError> {
        let mut ordered: Vec<&ValueSource> = sources.iter().collect();
        ordered.sort_by_key(|source| source.rank());
        let mut values = Map::new();
        for source in ordered {
            let (arg, typing) = match source {
                ValueSource::File(file) => {
                    let mut layer = Value::Object(std::mem::take(&mut values));
                    deep_merge(&mut layer, values_file(file)?);
                    if let Value::Object(map) = layer {
                        values = map;
                    }
                    continue;
                }
                ValueSource::Set(arg) => (arg, Typing::Typed),
                ValueSource::SetString(arg) => (arg, Typing::String),
                ValueSource::SetJson(arg) => (arg, Typing::Json),
            };
            strvals::parse_into(arg, typing, &mut values).map_err(|message| RenderError::Set {
                flag: source.flag(),
                arg: arg.clone(),
                message,
            })?;
        }
        Ok(CommandLineValues(values))
    }

    /// A whole map of values in the command line's place: the recorded command-line
    /// values of a promoted revision.
    pub fn recorded(values: Map<String, Value>) -> CommandLineValues {
        CommandLineValues(values)
    }

    /// The layer as one JSON map (what an artifact records).
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// Merges this layer over `base`.
    pub fn merge_into(&self, base: &mut Value) {
        if !self.0.is_empty() {
            deep_merge(base, Value::Object(self.0.clone()));
        }
    }
}

/// One `-f` file: a YAML map (an empty file is no values).
fn values_file(file: &Path) -> Result<Value, RenderError> {
    let error = |line: Option<usize>, message: String| RenderError::ValuesFile {
        file: file.to_path_buf(),
        line,
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|err| {
        let why = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => err.to_string(),
        };
        error(None, format!("cannot read: {why}"))
    })?;
    let parsed: Value = serde_yaml_ng::from_str(&text)
        .map_err(|err| error(err.location().map(|l| l.line()), yaml_message(&err)))?;
    match parsed {
        Value::Null => Ok(Value::Object(Map::new())),
        map @ Value::Object(_) => Ok(map),
        other => Err(error(
            None,
            format!("must be a map of values, found {}", kind_of(&other)),
        )),
    }
}

/// A values layer from a descriptor (serde_yaml_ng) as JSON; it must be a map.
pub(crate) fn yaml_layer(
    value: &serde_yaml_ng::Value,
    file: &std::path::Path,
    field: &str,
) -> Result<Value, RenderError> {
    let error = |message: String| RenderError::Values {
        file: file.to_path_buf(),
        field: field.to_string(),
        message,
    };
    match serde_json::to_value(value) {
        Ok(Value::Null) => Ok(Value::Object(Map::new())),
        Ok(map @ Value::Object(_)) => Ok(map),
        Ok(other) => Err(error(format!(
            "must be a map of values, found {}",
            kind_of(&other)
        ))),
        Err(err) => Err(error(format!("cannot be used as values: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_and_lists_replace() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        deep_merge(
            &mut base,
            json!({"a": {"c": [3], "e": true}, "d": {"now": "map"}}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 1, "c": [3], "e": true}, "d": {"now": "map"}})
        );
    }

    #[test]
    fn files_then_json_then_set_then_set_string_whatever_the_flag_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.yaml");
        let second = dir.path().join("second.yaml");
        std::fs::write(
            &first,
            "log: { level: info, format: json }\nhosts: [a, b, c]\n",
        )
        .unwrap();
        std::fs::write(&second, "log: { level: warn }\n").unwrap();
        let sources = [
            ValueSource::SetString("tag=10".into()),
            ValueSource::Set("tag=1.10,hosts[1]=x,replicas=3".into()),
            ValueSource::File(first),
            ValueSource::SetJson(r#"replicas=2,extra={"a":[1]}"#.into()),
            ValueSource::File(second),
        ];
        let layer = CommandLineValues::parse(&sources).unwrap();
        let mut base = json!({"log": {"level": "debug", "color": true}, "tag": "latest"});
        layer.merge_into(&mut base);
        assert_eq!(
            base,
            json!({
                "log": {"level": "warn", "format": "json", "color": true},
                "hosts": ["a", "x", "c"],
                "tag": "10",
                "replicas": 3,
                "extra": {"a": [1]},
            })
        );
    }

    #[test]
    fn a_bad_file_or_flag_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.yaml");
        let list = dir.path().join("list.yaml");
        let broken = dir.path().join("broken.yaml");
        std::fs::write(&list, "- a\n").unwrap();
        std::fs::write(&broken, "log:\n  level: [\n").unwrap();
        let message = |source: ValueSource| {
            CommandLineValues::parse(&[source])
                .unwrap_err()
                .to_string()
                .replace(&dir.path().display().to_string(), "DIR")
        };
        assert_eq!(
            message(ValueSource::File(missing)),
            "--values DIR/missing.yaml: cannot read: no such file"
        );
        assert_eq!(
            message(ValueSource::File(list)),
            "--values DIR/list.yaml: must be a map of values, found a list"
        );
        assert!(
            message(ValueSource::File(broken)).starts_with("--values DIR/broken.yaml:3: "),
            "{}",
            message(ValueSource::File(dir.path().join("broken.yaml")))
        );
        assert_eq!(
            message(ValueSource::SetJson("a={nope".into())),
            r#"--set-json "a={nope": the value is not JSON: key must be a string at line 1 column 2"#
        );
        assert_eq!(
            message(ValueSource::SetString("a".into())),
            r#"--set-string "a": `a` has no value: write a=VALUE"#
        );
    }
}
