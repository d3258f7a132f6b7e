//! Values: the deep merge, `--set` parsing and the secret map the chart receives.

use super::error::RenderError;
use crate::config::ReleaseSpec;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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

/// One `--set path.to.key=value`: a dotted path and a typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct SetValue {
    /// The argument as given, for errors.
    pub arg: String,
    pub path: Vec<String>,
    pub value: Value,
}

impl SetValue {
    /// A whole map of values merged where `--set` goes: the recorded command-line
    /// values of a promoted revision. `arg` names it in messages.
    pub fn layer(arg: &str, values: Map<String, Value>) -> SetValue {
        SetValue {
            arg: arg.to_owned(),
            path: Vec::new(),
            value: Value::Object(values),
        }
    }

    /// The value as a nested map, ready to merge.
    pub fn as_layer(&self) -> Value {
        self.path
            .iter()
            .rev()
            .fold(self.value.clone(), |inner, key| {
                let mut map = Map::new();
                map.insert(key.clone(), inner);
                Value::Object(map)
            })
    }
}

/// Parse `a.b.c=value`. The value is typed as Helm's `--set` types it: `true`/`false`,
/// `null`, integers and decimals become those; anything else is a string. A dot inside a
/// key is written `\.`.
pub fn parse_set(arg: &str) -> Result<SetValue, RenderError> {
    let error = |message: &str| RenderError::Set {
        arg: arg.to_string(),
        message: message.to_string(),
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| error("expected KEY=VALUE, e.g. image.tag=1.2.3"))?;
    let mut path = Vec::new();
    let mut segment = String::new();
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                segment.push('.');
                chars.next();
            }
            '.' => path.push(std::mem::take(&mut segment)),
            c => segment.push(c),
        }
    }
    path.push(segment);
    if path.iter().any(|s| s.trim().is_empty()) {
        return Err(error("the key has an empty part; write it as a.b.c=value"));
    }
    Ok(SetValue {
        arg: arg.to_string(),
        path,
        value: typed(raw),
    })
}

fn typed(raw: &str) -> Value {
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" => return Value::Null,
        _ => {}
    }
    // Leading zeros and `+` stay text: `007` is an id, not seven.
    let leading_zero = raw.len() > 1 && raw.starts_with('0') && !raw.starts_with("0.");
    let looks_numeric = !(raw.is_empty() || raw.starts_with('+') || leading_zero);
    if looks_numeric {
        if let Ok(n) = raw.parse::<i64>() {
            return Value::from(n);
        }
        if raw.contains('.') && !raw.ends_with('.') {
            if let Some(n) = raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                return Value::Number(n);
            }
        }
    }
    Value::String(raw.to_string())
}

/// A values layer from a descriptor (serde_yaml) as JSON; it must be a map.
pub(crate) fn yaml_layer(
    value: &serde_yaml::Value,
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
            super::chart::kind_of(&other)
        ))),
        Err(err) => Err(error(format!("cannot be used as values: {err}"))),
    }
}

/// serde_yaml's message without its own " at line L column C" suffix (we report the
/// line ourselves, relative to the right file).
pub(crate) fn yaml_message(err: &serde_yaml::Error) -> String {
    let mut text = err.to_string();
    // The scanner's messages hold positions too ("did not find expected key at line 3
    // column 5, while parsing ..."), relative to the text it was given.
    while let Some(at) = text.find(" at line ") {
        let rest = &text[at + " at line ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let line_len = digits(rest);
        let Some(after_column) = rest[line_len..].strip_prefix(" column ") else {
            break;
        };
        let end = at + " at line ".len() + line_len + " column ".len() + digits(after_column);
        text.replace_range(at..end, "");
    }
    text
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
    fn set_values_are_typed() {
        let cases = [
            ("a=1", json!(1)),
            ("a=-3", json!(-3)),
            ("a=1.5", json!(1.5)),
            ("a=true", json!(true)),
            ("a=null", json!(null)),
            ("a=007", json!("007")),
            ("a=1.2.3", json!("1.2.3")),
            ("a=", json!("")),
            ("a=x=y", json!("x=y")),
        ];
        for (arg, value) in cases {
            assert_eq!(parse_set(arg).unwrap().value, value, "{arg}");
        }
        let set = parse_set(r"log.level\.x=warn").unwrap();
        assert_eq!(set.as_layer(), json!({"log": {"level.x": "warn"}}));
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("a..b=1").is_err());
    }
}
