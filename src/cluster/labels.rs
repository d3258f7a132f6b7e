//! The labels flotilla puts on every object it applies, and reads back before it deletes
//! anything: an object without both is never pruned or uninstalled.

use serde_json::Value;

/// `app.kubernetes.io/managed-by`, the recommended Kubernetes label.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] (and of the records' `owner` label).
pub const MANAGER: &str = "flotilla";
/// The release an object belongs to.
pub const RELEASE: &str = "flotilla.dev/release";

/// The label selector of every object of a release.
pub fn selector(release: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{RELEASE}={release}")
}

/// Adds our labels to an object (JSON form), keeping the chart's own.
pub fn stamp(object: &mut Value, release: &str) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(MANAGED_BY.into(), MANAGER.into());
        labels.insert(RELEASE.into(), release.into());
    }
}

/// Whether labels (of a live object) say that flotilla owns it for this release.
pub fn owned_by(
    labels: Option<&std::collections::BTreeMap<String, String>>,
    release: &str,
) -> bool {
    labels.is_some_and(|l| {
        l.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
            && l.get(RELEASE).map(String::as_str) == Some(release)
    })
}
