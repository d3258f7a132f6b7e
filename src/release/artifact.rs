//! The artifact of a revision: what `promote` carries from one environment to the next,
//! byte for byte, and what a promotion chain asks the previous environment to have run.
//!
//! A revision's values come in two kinds (docs/design.md, "Promotion"):
//! - **environment-independent**, the artifact: the chart's files (its `values.yaml`
//!   included), the application version (`spec.version` or `--version`), the
//!   descriptor's `spec.values`, and the command-line values of the deploy (`--set`);
//! - **environment-dependent**, the target's own: `spec.environments.<env>.values`, the
//!   cluster's `global`, `scaling`, and the secrets (their mappings, read in the
//!   target's Vault).
//!
//! The artifact digest covers exactly the first kind: equal digests, equal artifact,
//! whatever environment ran it.

use super::{Promotion, ReleaseRecord};
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything environment-independent a revision was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// The chart's files by path inside its folder.
    pub chart: BTreeMap<String, String>,
    /// The application version.
    pub version: String,
    /// The descriptor's `spec.values` (a map; empty when the descriptor has none).
    pub values: Value,
    /// The command-line values of the deploy (`--set`), merged into one map; empty
    /// when there were none.
    pub command_line: Value,
    /// Where a chart by reference was pulled from, with its package digest; `None` for a
    /// chart folder.
    pub origin: Option<crate::engine::ChartOrigin>,
}

impl Artifact {
    /// `sha256:<hex>` of the artifact. Maps are hashed with their keys sorted, so the
    /// order in which a file wrote them does not matter; every byte of every chart file
    /// does.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut document = serde_json::json!({
            "chart": self.chart,
            "version": self.version,
            "values": layer(&self.values),
            "commandLine": layer(&self.command_line),
        });
        // Only when there is one, so that a chart folder's digest stays what it was.
        if let (Some(origin), Value::Object(map)) = (&self.origin, &mut document) {
            map.insert("origin".into(), serde_json::json!(origin));
        }
        let digest = Sha256::digest(canonical(&document).to_string().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// What differs from `other`, one line per difference, for `promote --check`:
    /// the chart files added, removed or changed, the version, the values.
    pub fn differences(&self, other: &Artifact, this: &str, that: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (path, text) in &self.chart {
            match other.chart.get(path) {
                None => out.push(format!("chart file {path}: only in {this}")),
                Some(theirs) if theirs != text => {
                    out.push(format!("chart file {path}: differs"));
                }
                Some(_) => {}
            }
        }
        for path in other.chart.keys().filter(|p| !self.chart.contains_key(*p)) {
            out.push(format!("chart file {path}: only in {that}"));
        }
        if self.origin != other.origin {
            let shown = |o: &Option<crate::engine::ChartOrigin>| {
                o.as_ref().map_or("a chart folder".to_owned(), |o| {
                    format!("{} ({})", o.shown(), o.digest)
                })
            };
            out.push(format!(
                "chart: {} in {this}, {} in {that}",
                shown(&self.origin),
                shown(&other.origin)
            ));
        }
        if self.version != other.version {
            out.push(format!(
                "version: {} in {this}, {} in {that}",
                self.version, other.version
            ));
        }
        if layer(&self.values) != layer(&other.values) {
            out.push("spec.values: differ".into());
        }
        if layer(&self.command_line) != layer(&other.command_line) {
            out.push(format!(
                "command-line values (--set): {} in {this}, {} in {that}",
                shown(&self.command_line),
                shown(&other.command_line)
            ));
        }
        out
    }
}

/// `--set` values as given (they are never secret: secrets come from Vault).
fn shown(values: &Value) -> String {
    match layer(values) {
        Value::Object(map) if map.is_empty() => "none".into(),
        other => other.to_string(),
    }
}

/// `value` with every map's keys in sorted order (serde_json keeps insertion order
/// here), so that equal content serialises to equal bytes.
pub(super) fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// A values layer as hashed and compared: an absent layer (null) is an empty map.
fn layer(value: &Value) -> Value {
    match value {
        Value::Null => Value::Object(Default::default()),
        other => canonical(other),
    }
}

impl ReleaseRecord {
    /// The artifact this revision ran, when its record holds it (records written before
    /// flotilla recorded `spec.values` and the command-line values apart do not).
    pub fn artifact(&self) -> Option<Artifact> {
        let source = self.source.as_ref()?;
        Some(Artifact {
            chart: source.chart.clone(),
            version: self.app_version.clone(),
            values: source.values.clone()?,
            command_line: source.command_line.clone().unwrap_or(Value::Null),
            origin: source.origin.clone(),
        })
    }

    /// The artifact digest recorded with this revision (empty in older records).
    pub fn artifact_digest(&self) -> &str {
        self.source.as_ref().map_or("", |s| s.artifact.as_str())
    }

    /// Where this revision was promoted from, when it was.
    pub fn promoted_from(&self) -> Option<&Promotion> {
        self.source.as_ref()?.promoted_from.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn artifact() -> Artifact {
        Artifact {
            chart: BTreeMap::from([
                ("Chart.yaml".into(), "name: hello\nversion: 0.1.0\n".into()),
                ("templates/web.yaml".into(), "kind: ConfigMap\n".into()),
            ]),
            version: "v1".into(),
            values: json!({"log": {"level": "info"}, "a": 1}),
            command_line: json!({}),
            origin: None,
        }
    }

    #[test]
    fn the_digest_covers_every_chart_byte_the_version_and_both_value_layers() {
        let base = artifact();
        let digest = base.digest();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        assert_eq!(digest, base.clone().digest());
        let mut edited = base.clone();
        edited
            .chart
            .insert("templates/web.yaml".into(), "kind: ConfigMap \n".into());
        let mut version = base.clone();
        version.version = "v2".into();
        let mut values = base.clone();
        values.values = json!({"log": {"level": "debug"}, "a": 1});
        let mut set = base.clone();
        set.command_line = json!({"a": 2});
        let mut added = base.clone();
        added.chart.insert("templates/x.yaml".into(), String::new());
        for (what, other) in [
            ("chart", edited),
            ("version", version),
            ("values", values),
            ("set", set),
            ("file", added),
        ] {
            assert_ne!(other.digest(), digest, "{what}");
            assert!(
                !base.differences(&other, "dev", "here").is_empty(),
                "{what}"
            );
        }
    }

    #[test]
    fn key_order_and_absent_layers_do_not_change_the_digest() {
        let base = artifact();
        let mut reordered = base.clone();
        reordered.values = serde_json::from_str(r#"{"a": 1, "log": {"level": "info"}}"#).unwrap();
        reordered.command_line = Value::Null;
        assert_eq!(reordered.digest(), base.digest());
        assert!(base.differences(&reordered, "dev", "here").is_empty());
    }

    #[test]
    fn differences_name_the_files_and_layers() {
        let dev = artifact();
        let mut here = dev.clone();
        here.chart
            .insert("templates/web.yaml".into(), "kind: Secret\n".into());
        here.chart
            .insert("templates/new.yaml".into(), String::new());
        here.version = "v2".into();
        here.command_line = json!({});
        let mut dev_set = dev.clone();
        dev_set.command_line = json!({"debug": true});
        assert_eq!(
            dev_set.differences(&here, "dev", "the checkout"),
            [
                "chart file templates/web.yaml: differs",
                "chart file templates/new.yaml: only in the checkout",
                "version: v1 in dev, v2 in the checkout",
                "command-line values (--set): {\"debug\":true} in dev, none in the checkout",
            ]
        );
    }
}
