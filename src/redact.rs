//! Secret values replaced by digests in everything flotilla stores or shows: a digest
//! tells a change or a drift, and is useless to recover the value. Used by the records
//! (what a revision keeps of its manifest) and by the cluster layer (what diff and
//! drift compare), so it sits below both.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The digest that replaces a secret value in stored manifests: enough to tell a drift
/// or a change, useless to recover the value.
pub fn redacted(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("<redacted sha256:{hex}>")
}

pub fn is_redacted(text: &str) -> bool {
    text.starts_with("<redacted sha256:") && text.ends_with('>')
}

/// Whether a manifest object is a core `Secret` (whose data never goes into a record).
pub fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// A copy of the manifest with every `Secret`'s `data` and `stringData` values replaced
/// by [`redacted`] digests.
pub fn redact_manifest(manifest: &[Value]) -> Vec<Value> {
    manifest
        .iter()
        .map(|object| {
            let mut object = object.clone();
            if is_secret(&object) {
                redact_secret_object(&mut object);
            }
            object
        })
        .collect()
}

/// Replaces, in place, every value of a `Secret` object's `data` and `stringData`.
/// `stringData` is first folded into `data` (base64), as the API server does, so the
/// digests of a recorded Secret and of the live one compare equal when the values do.
pub fn redact_secret_object(object: &mut Value) {
    use base64::Engine;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(data) = data {
            for (key, value) in strings {
                let text = value.as_str().unwrap_or_default();
                let folded = if is_redacted(text) {
                    text.to_owned()
                } else {
                    base64::engine::general_purpose::STANDARD.encode(text)
                };
                data.insert(key, Value::String(folded));
            }
        }
    }
    if let Some(Value::Object(data)) = map.get_mut("data") {
        for value in data.values_mut() {
            let text = value.as_str().unwrap_or_default().to_owned();
            // Idempotent: a recorded manifest is redacted already.
            if !is_redacted(&text) {
                *value = Value::String(redacted(&text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_data_is_redacted_and_other_objects_kept() {
        let manifest = vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t0ps3cret"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"password": "not-a-secret"}}),
        ];
        let stored = redact_manifest(&manifest);
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("aHVudGVyMg=="));
        assert!(!text.contains("t0ps3cret"));
        assert_eq!(stored[1], manifest[1]);
        // stringData is folded into data as the API server does: same digest as live.
        assert_eq!(stored[0]["data"]["token"], json!(redacted("dDBwczNjcmV0")));
        assert!(stored[0].get("stringData").is_none());
        assert_eq!(
            stored[0]["data"]["password"],
            json!(redacted("aHVudGVyMg=="))
        );
    }
}
