//! JSON Schemas of the two file formats, generated from their Rust types (schemars), so
//! an editor's YAML language server flags `replica:` or `wave: -1` as the user types.
//! The schema holds what can be said of one file alone: shapes, unknown keys, types,
//! name patterns, ranges. What needs another file (a context of another environment, a
//! chart folder, a KV mount) or a render stays with `lint`; `tests/testsuite/schema.rs` keeps
//! the schema and the parser in agreement over the good and bad-input corpora.

use super::{Environment, ReleaseDescriptor};

/// Which file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// `releases/<name>/release.yaml`.
    Release,
    /// `environments/<env>.yaml`.
    Environment,
}

/// The JSON Schema of a file format, in draft 7: the draft every YAML language server
/// reads (newer ones are not supported by all of them).
pub fn schema(kind: SchemaKind) -> serde_json::Value {
    let generator = || schemars::generate::SchemaSettings::draft07().into_generator();
    let (mut schema, title) = match kind {
        SchemaKind::Release => (
            generator().into_root_schema_for::<ReleaseDescriptor>(),
            "flotilla release descriptor (releases/<name>/release.yaml)",
        ),
        SchemaKind::Environment => (
            generator().into_root_schema_for::<Environment>(),
            "flotilla environment file (environments/<env>.yaml)",
        ),
    };
    schema.insert("title".to_string(), title.into());
    // Top-level `x-` keys are ignored by the parser: the place for shared anchors.
    schema.insert(
        "patternProperties".to_string(),
        serde_json::json!({ "^x-": {} }),
    );
    schema.to_value()
}
