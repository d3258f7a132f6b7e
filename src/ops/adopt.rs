//! Taking over a release that another tool installed, in one cluster: a Helm release's
//! deployed revision becomes a revision to record ([`imported_revision`]) and, once recorded,
//! its objects stop being Helm's ([`release_from_helm`]).

use super::Rendered;
use crate::cluster::labels::IMPORTED_FROM;
use crate::cluster::{ClusterError, ClusterHandle, HelmRelease, ObjectRef};
use crate::release::{values_without_secrets, ChartRef, RevisionSource};
use serde_json::Value;

/// The deployed revision of Helm release `helm_name` in `namespace`; `None` when the
/// cluster has none.
pub async fn read_helm(
    handle: &ClusterHandle,
    namespace: &str,
    helm_name: &str,
) -> Result<Option<HelmRelease>, ClusterError> {
    handle.helm_release(namespace, helm_name).await
}

/// What a record of an imported revision keeps of each value the Helm release was
/// given (`--set`, `-f`): never the value, which may be a password.
pub const NOT_RECORDED: &str = "<given to Helm: not recorded>";

/// A Helm release's deployed revision as the revision release `release` records: Helm's
/// objects exactly as Helm applied them (each annotated [`IMPORTED_FROM`], so their pod
/// templates stay as they are), the chart's name and versions, and `values` (the chart's
/// merged with [`values_given`]: what the release was given, each value replaced).
///
/// No value Helm was given reaches the record: a rollback to an imported revision
/// never renders it again (Helm's release Secret holds no subchart), it re-applies the
/// recorded objects, Secrets kept as they are live and every field recorded as a digest
/// filled from the live object. So what is stored of the objects is their Secrets'
/// data as digests (as for every revision) and, in every other object, each field
/// holding a value given under a secret-looking key ([`secret_looking_values`]) as a
/// digest too. Those values, and Helm's Secrets' values (of 8 characters or more), are
/// registered with the scrubber: they are applied by this run, and an API server's
/// message may echo them.
pub fn imported_revision(helm: &HelmRelease, release: &str, values: &Value) -> Rendered {
    let origin = format!("helm/{}/{}", helm.name, helm.revision);
    let objects: Vec<Value> = helm
        .objects
        .iter()
        .cloned()
        .map(|mut object| {
            crate::cluster::labels::annotate(&mut object, IMPORTED_FROM, &origin);
            object
        })
        .collect();
    let given = secret_looking_values(&helm.config);
    let mut secrets = crate::redact::Scrubber::new();
    for value in &given {
        crate::redact::register(value);
        secrets.add(value);
    }
    // Not the short ones: a Secret of any chart may hold `true` or a port, and
    // scrubbing those from every line would garble the output (JSON included).
    for object in objects.iter().filter(|o| crate::redact::is_secret(o)) {
        for value in secret_data(object) {
            if value.chars().count() >= crate::redact::MIN_LINE_LEN {
                crate::redact::register(&value);
            }
        }
    }
    let stored = crate::redact::redact_manifest(&objects)
        .into_iter()
        .map(|mut object| {
            if !crate::redact::is_secret(&object) && !secrets.is_empty() {
                digest_fields(&mut object, &secrets);
            }
            object
        })
        .collect();
    Rendered {
        release: release.to_owned(),
        namespace: helm.namespace.clone(),
        chart: ChartRef {
            name: helm.chart_name.clone(),
            version: helm.chart_version.clone(),
        },
        app_version: if helm.app_version.is_empty() {
            helm.chart_version.clone()
        } else {
            helm.app_version.clone()
        },
        objects,
        stored,
        // A Helm release's hooks stay Helm's: `adopt-helm` names them.
        hooks: Vec::new(),
        values: values_without_secrets(values),
        source: Some(RevisionSource {
            imported: Some(origin),
            ..Default::default()
        }),
    }
}

/// What the release was given (Helm's `config`), every value replaced by
/// [`NOT_RECORDED`]: the keys tell what was set, the values stay in Helm's own
/// history (`helm get values`).
pub fn values_given(config: &Value) -> Value {
    match config {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), values_given(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(values_given).collect()),
        Value::Null => Value::Null,
        _ => Value::String(NOT_RECORDED.to_owned()),
    }
}

/// Words that make a key's value a secret: `password`, `db.passwd`, `apiToken`,
/// `aws.credentials.id`, `privateKey`...
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "api_key",
    "api-key",
    "privatekey",
    "private_key",
    "private-key",
    "accesskey",
    "access_key",
    "access-key",
];

/// The values (strings and numbers: `--set password=12345678` is a number to Helm)
/// given under a key that names a secret, the key itself or a parent; not the names of
/// other objects (`existingSecret`, `secretName`, `tokenRef`) nor switches
/// (`auth.enabled`).
pub fn secret_looking_values(config: &Value) -> Vec<String> {
    fn walk(value: &Value, secret: bool, last: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let lower = key.to_ascii_lowercase();
                    let names = SECRET_WORDS.iter().any(|w| lower.contains(w));
                    walk(value, secret || names, &lower, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, secret, last, out)),
            Value::String(_) | Value::Number(_) if secret => {
                let reference = last.starts_with("existing")
                    || ["name", "ref", "enabled", "file", "path"]
                        .iter()
                        .any(|end| last.ends_with(end));
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                if !reference && text.chars().count() >= crate::redact::MIN_VALUE_LEN {
                    out.push(text);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(config, false, "", &mut out);
    out.sort();
    out.dedup();
    out
}

/// The values of a Secret object's `data` (decoded) and `stringData`.
fn secret_data(object: &Value) -> Vec<String> {
    use base64::Engine;
    let mut out = Vec::new();
    if let Some(data) = object.get("data").and_then(Value::as_object) {
        for value in data.values().filter_map(Value::as_str) {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value) {
                out.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    if let Some(data) = object.get("stringData").and_then(Value::as_object) {
        out.extend(data.values().filter_map(Value::as_str).map(str::to_owned));
    }
    out
}

/// Every text field of `object` that holds a form of one of `secrets`, replaced by
/// its digest, as a chart's render records a field a secret changes.
fn digest_fields(object: &mut Value, secrets: &crate::redact::Scrubber) {
    match object {
        Value::Object(map) => map.values_mut().for_each(|v| digest_fields(v, secrets)),
        Value::Array(items) => items.iter_mut().for_each(|v| digest_fields(v, secrets)),
        Value::String(text) if secrets.finds(text) => {
            *text = crate::redact::redacted(text);
        }
        _ => {}
    }
}

/// After the imported revision is recorded: each of its objects loses Helm's ownership
/// annotations and field manager, and with `remove_history` Helm's revision Secrets are
/// deleted. Returns the Secrets deleted.
pub async fn release_from_helm(
    handle: &ClusterHandle,
    rendered: &Rendered,
    helm_name: &str,
    remove_history: bool,
) -> Result<Vec<String>, ClusterError> {
    for object in &rendered.objects {
        let id: ObjectRef = handle.identity(object, &rendered.namespace).await?;
        handle.release_from_helm(&id, &rendered.namespace).await?;
    }
    if remove_history {
        return handle
            .delete_helm_history(&rendered.namespace, helm_name)
            .await;
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::fake::FakeKube;
    use crate::ops::restore::{restore_with, RestoreTo};
    use crate::ops::upgrade::deploy_with;
    use crate::ops::RunOptions;
    use crate::storage::MemoryStore;
    use serde_json::json;
    use std::time::Duration;

    const GIVEN: &str = "adopt-canary-Pa55word";

    /// A release `helm install --set password=GIVEN --set image.tag=1.2.3` made.
    fn helm_release(password: &str) -> HelmRelease {
        HelmRelease {
            name: "web".into(),
            namespace: "ns".into(),
            revision: 3,
            chart_name: "web".into(),
            chart_version: "0.1.0".into(),
            app_version: "1.2.3".into(),
            chart_values: json!({"password": "", "image": {"tag": ""}, "replicaCount": 1}),
            config: json!({"password": password, "image": {"tag": "1.2.3"}, "replicaCount": 2,
                           "db": {"existingSecret": "web-db-secret", "auth": {"enabled": true}}}),
            objects: vec![
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"},
                       "stringData": {"password": password}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                       "spec": {"template": {"spec": {"containers": [{"name": "web",
                           "image": "nginx:1.2.3",
                           "env": [{"name": "DB_PASSWORD", "value": password},
                                   {"name": "DB_SECRET", "value": "web-db-secret"}]}]}}}}),
            ],
            hooks: Vec::new(),
        }
    }

    fn imported(password: &str) -> Rendered {
        let helm = helm_release(password);
        let mut values = helm.chart_values.clone();
        // As the action merges them (engine::deep_merge, for maps).
        if let (Value::Object(values), Value::Object(given)) =
            (&mut values, values_given(&helm.config))
        {
            values.extend(given);
        }
        imported_revision(&helm, "web", &values)
    }

    #[test]
    fn a_value_given_to_helm_is_never_recorded_and_is_scrubbed() {
        let rendered = imported(GIVEN);
        let stored = serde_json::to_string(&(&rendered.stored, &rendered.values)).unwrap();
        assert!(!stored.contains(GIVEN), "{stored}");
        assert_eq!(rendered.values["password"], NOT_RECORDED);
        assert_eq!(rendered.values["image"]["tag"], NOT_RECORDED);
        assert_eq!(rendered.values["replicaCount"], NOT_RECORDED);
        // The env var is a digest; what is not a secret stays as Helm applied it.
        let container = &rendered.stored[1]["spec"]["template"]["spec"]["containers"][0];
        assert!(crate::redact::is_redacted(
            container["env"][0]["value"].as_str().unwrap()
        ));
        assert_eq!(container["env"][1]["value"], "web-db-secret");
        assert_eq!(container["image"], "nginx:1.2.3");
        // What is applied is Helm's own objects, values included.
        assert_eq!(rendered.objects[0]["stringData"]["password"], GIVEN);
        assert!(!crate::redact::scrub(&format!("echo {GIVEN}")).contains(GIVEN));
    }

    #[test]
    fn helms_secret_values_are_scrubbed_but_not_short_ones() {
        let mut helm = helm_release(GIVEN);
        helm.objects
            .push(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "other"},
            "data": {"flag": "ZW5hYmxlZA==", "key": "YWRvcHQtc2VjcmV0LWRhdGEtY2FuYXJ5"}}));
        imported_revision(&helm, "web", &Value::Null);
        assert!(!crate::redact::scrub("adopt-secret-data-canary").contains("canary"));
        assert_eq!(
            crate::redact::scrub("{\"ssl\": enabled}"),
            "{\"ssl\": enabled}"
        );
    }

    #[test]
    fn secret_looking_keys_are_told_from_names_and_switches() {
        let config = json!({
            "password": "p4ssword-1", "db": {"passwd": 12345678, "user": "app-user"},
            "apiToken": "tok-abcdef", "aws": {"credentials": {"id": "AKIA-1234"}},
            "existingSecret": "other-secret", "secretName": "named", "tokenRef": "ref-1",
            "auth": {"enabled": "true"}, "image": {"tag": "1.2.3"}, "secret": "abc",
        });
        assert_eq!(
            secret_looking_values(&config),
            ["12345678", "AKIA-1234", "p4ssword-1", "tok-abcdef"]
        );
    }

    #[tokio::test]
    async fn a_rollback_to_an_imported_revision_puts_back_helms_objects_with_live_secrets() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        let opts = RunOptions::new(Duration::from_secs(5));
        deploy_with(&kube, &store, &imported(GIVEN), "adopted", &opts)
            .await
            .unwrap();
        // A later flotilla revision: another image, the password (rotated) from Vault.
        let mut later = imported("adopt-canary-rotated");
        for objects in [&mut later.objects, &mut later.stored] {
            objects[1]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2.0.0");
        }
        deploy_with(&kube, &store, &later, "later", &opts)
            .await
            .unwrap();

        let to = RestoreTo {
            revision: 1,
            deployment_id: "adopted",
            fresh: &[],
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "web", &to, &opts)
            .await
            .unwrap();
        assert_eq!(back.status, crate::release::Status::Deployed);
        let live = kube.live_text();
        assert!(live.contains("nginx:1.2.3"), "{live}");
        assert!(live.contains("adopt-canary-rotated"), "{live}");
        assert!(!live.contains("<redacted"), "{live}");
        let records = serde_json::to_string(&store.records()).unwrap();
        assert!(!records.contains("adopt-canary"), "{records}");
    }
}
