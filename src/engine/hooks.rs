//! Helm hooks: the objects a chart annotates `helm.sh/hook`, which are not objects of
//! the release but run at a point of its life (before or after an install, upgrade,
//! rollback or delete; `test` for `helm test`). Read as Helm reads them: the events of
//! `helm.sh/hook` (comma separated), the integer `helm.sh/hook-weight` (0 when absent)
//! and the policies of `helm.sh/hook-delete-policy` (`before-hook-creation` when none
//! is given). Where Helm silently ignores a value it does not know (an event, a policy)
//! or reads a weight that is not a number as 0, flotilla refuses the chart naming the
//! file, the annotation and the value: a misspelt `pre-upgarde` would otherwise be an
//! ordinary object of the release, applied with the others instead of before them.
//!
//! Must not: run hooks (ops does), talk to a cluster.

use super::error::RenderError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The annotation that makes an object a hook, and its events.
pub const HOOK_ANNOTATION: &str = "helm.sh/hook";
/// The annotation ordering hooks of one event (lowest first).
pub const WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
/// The annotation saying when a hook object is deleted.
pub const DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreRollback,
    PostRollback,
    PreDelete,
    PostDelete,
    /// `helm test` (also written `test-success`); never run by a deploy.
    Test,
}

impl HookEvent {
    /// The event an annotation value names; `test-success` is Helm's older name of
    /// `test`.
    fn parse(text: &str) -> Option<HookEvent> {
        Some(match text {
            "pre-install" => HookEvent::PreInstall,
            "post-install" => HookEvent::PostInstall,
            "pre-upgrade" => HookEvent::PreUpgrade,
            "post-upgrade" => HookEvent::PostUpgrade,
            "pre-rollback" => HookEvent::PreRollback,
            "post-rollback" => HookEvent::PostRollback,
            "pre-delete" => HookEvent::PreDelete,
            "post-delete" => HookEvent::PostDelete,
            "test" | "test-success" => HookEvent::Test,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreInstall => "pre-install",
            HookEvent::PostInstall => "post-install",
            HookEvent::PreUpgrade => "pre-upgrade",
            HookEvent::PostUpgrade => "post-upgrade",
            HookEvent::PreRollback => "pre-rollback",
            HookEvent::PostRollback => "post-rollback",
            HookEvent::PreDelete => "pre-delete",
            HookEvent::PostDelete => "post-delete",
            HookEvent::Test => "test",
        }
    }
}

impl std::fmt::Display for HookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a hook object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeletePolicy {
    /// The object of an earlier run of the hook, before it is created again.
    BeforeHookCreation,
    /// Once the hook succeeded.
    HookSucceeded,
    /// Once the hook failed.
    HookFailed,
}

impl DeletePolicy {
    fn parse(text: &str) -> Option<DeletePolicy> {
        Some(match text {
            "before-hook-creation" => DeletePolicy::BeforeHookCreation,
            "hook-succeeded" => DeletePolicy::HookSucceeded,
            "hook-failed" => DeletePolicy::HookFailed,
            _ => return None,
        })
    }
}

/// What the annotations of one hook object say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub events: Vec<HookEvent>,
    #[serde(default)]
    pub weight: i32,
    pub delete_policies: Vec<DeletePolicy>,
}

impl Hook {
    pub fn runs_at(&self, event: HookEvent) -> bool {
        self.events.contains(&event)
    }

    pub fn deletes(&self, policy: DeletePolicy) -> bool {
        self.delete_policies.contains(&policy)
    }
}

/// The hook an object's annotations make it, `None` for an ordinary object; an error
/// names the file, the annotation and the value that cannot be read.
pub fn hook_of(object: &Value, source: &Path) -> Result<Option<Hook>, RenderError> {
    let annotations = &object["metadata"]["annotations"];
    let Some(events) = annotations.get(HOOK_ANNOTATION) else {
        return Ok(None);
    };
    let bad = |field: &str, value: &serde_json::Value, message: &str| RenderError::HelmHook {
        file: source.to_path_buf(),
        object: format!(
            "{}/{}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        ),
        field: format!("metadata.annotations.{field}"),
        value: match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        },
        message: message.to_owned(),
    };
    let text = |field: &str, value: &serde_json::Value| -> Result<Option<String>, RenderError> {
        match value {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(text) => Ok(Some(text.clone())),
            other => Err(bad(field, other, "an annotation is a string (quote it)")),
        }
    };
    let list = |text: &str| -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let Some(events_text) = text(HOOK_ANNOTATION, events)? else {
        return Ok(None);
    };
    let mut parsed = Vec::new();
    for name in list(&events_text) {
        let Some(event) = HookEvent::parse(&name) else {
            return Err(bad(HOOK_ANNOTATION, events, &format!("`{name}` is not a Helm hook event (pre-install, post-install, pre-upgrade, post-upgrade, pre-rollback, post-rollback, pre-delete, post-delete, test)")));
        };
        if !parsed.contains(&event) {
            parsed.push(event);
        }
    }
    if parsed.is_empty() {
        return Err(bad(HOOK_ANNOTATION, events, "names no hook event"));
    }
    let weight_value = &annotations[WEIGHT_ANNOTATION];
    let weight = match text(WEIGHT_ANNOTATION, weight_value)? {
        None => 0,
        Some(weight) => weight.trim().parse::<i32>().map_err(|_| {
            bad(
                WEIGHT_ANNOTATION,
                weight_value,
                "a hook weight is an integer, as a string (\"-5\", \"10\")",
            )
        })?,
    };
    let policy_value = &annotations[DELETE_POLICY_ANNOTATION];
    let mut delete_policies = Vec::new();
    for name in text(DELETE_POLICY_ANNOTATION, policy_value)?
        .as_deref()
        .map(list)
        .unwrap_or_default()
    {
        let Some(policy) = DeletePolicy::parse(&name) else {
            return Err(bad(DELETE_POLICY_ANNOTATION, policy_value, &format!("`{name}` is not a hook delete policy (before-hook-creation, hook-succeeded, hook-failed)")));
        };
        if !delete_policies.contains(&policy) {
            delete_policies.push(policy);
        }
    }
    // Helm's default: a hook object of an earlier run is replaced, not kept.
    if delete_policies.is_empty() {
        delete_policies.push(DeletePolicy::BeforeHookCreation);
    }
    Ok(Some(Hook {
        events: parsed,
        weight,
        delete_policies,
    }))
}

/// The order hooks of one event run in: weight (lowest first), then kind, then name,
/// as `(weight, kind, name)` of each; the indices of `hooks` that run at `event`.
pub fn run_order<'a>(
    hooks: impl IntoIterator<Item = (&'a Hook, &'a str, &'a str)>,
    event: HookEvent,
) -> Vec<usize> {
    let mut selected: Vec<(usize, i32, &str, &str)> = hooks
        .into_iter()
        .enumerate()
        .filter(|(_, (hook, _, _))| hook.runs_at(event))
        .map(|(index, (hook, kind, name))| (index, hook.weight, kind, name))
        .collect();
    selected.sort_by(|a, b| (a.1, a.2, a.3).cmp(&(b.1, b.2, b.3)));
    selected.into_iter().map(|(index, ..)| index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook_of(object: Value) -> Result<Option<Hook>, RenderError> {
        super::hook_of(&object, Path::new("chart/templates/hooks.yaml"))
    }

    fn object(kind: &str, name: &str, annotations: Value) -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": kind,
            "metadata": { "name": name, "annotations": annotations },
        })
    }

    #[test]
    fn hook_annotations_read_as_helm_reads_them() {
        let hook = hook_of(object(
            "Job",
            "migrate",
            json!({ "helm.sh/hook": " pre-install, pre-upgrade ", "helm.sh/hook-weight": "-5",
                    "helm.sh/hook-delete-policy": "hook-succeeded,hook-failed" }),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(hook.events, [HookEvent::PreInstall, HookEvent::PreUpgrade]);
        assert_eq!(hook.weight, -5);
        assert_eq!(
            hook.delete_policies,
            [DeletePolicy::HookSucceeded, DeletePolicy::HookFailed]
        );
        // Without a policy: Helm's default.
        let plain = hook_of(object(
            "Job",
            "j",
            json!({ "helm.sh/hook": "post-upgrade" }),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(plain.weight, 0);
        assert_eq!(plain.delete_policies, [DeletePolicy::BeforeHookCreation]);
        let test = hook_of(object(
            "Pod",
            "t",
            json!({ "helm.sh/hook": "test-success" }),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(test.events, [HookEvent::Test]);
        assert_eq!(
            hook_of(object("Job", "j", json!({ "other": "x" }))).unwrap(),
            None
        );
    }

    #[test]
    fn malformed_hook_annotations_name_file_field_and_value() {
        let cases = [
            (
                json!({ "helm.sh/hook": "pre-upgarde" }),
                "chart/templates/hooks.yaml: Job/m: metadata.annotations.helm.sh/hook \"pre-upgarde\": `pre-upgarde` is not a Helm hook event",
            ),
            (
                json!({ "helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": "high" }),
                "chart/templates/hooks.yaml: Job/m: metadata.annotations.helm.sh/hook-weight \"high\": a hook weight is an integer",
            ),
            (
                json!({ "helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": 5 }),
                "metadata.annotations.helm.sh/hook-weight \"5\": an annotation is a string",
            ),
            (
                json!({ "helm.sh/hook": "pre-upgrade", "helm.sh/hook-delete-policy": "always" }),
                "metadata.annotations.helm.sh/hook-delete-policy \"always\": `always` is not a hook delete policy",
            ),
            (
                json!({ "helm.sh/hook": " , " }),
                "metadata.annotations.helm.sh/hook \" , \": names no hook event",
            ),
        ];
        for (annotations, expected) in cases {
            let err = hook_of(object("Job", "m", annotations)).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn hooks_run_by_weight_then_kind_then_name_and_only_at_their_event() {
        let hook = |events: &[HookEvent], weight| Hook {
            events: events.to_vec(),
            weight,
            delete_policies: vec![DeletePolicy::BeforeHookCreation],
        };
        let up = [HookEvent::PreUpgrade];
        let hooks = [
            (hook(&up, 5), "Job", "b"),
            (hook(&up, -1), "Job", "z"),
            (hook(&[HookEvent::PostUpgrade], -10), "Job", "post"),
            (hook(&up, 5), "ConfigMap", "c"),
            (hook(&up, 5), "Job", "a"),
            (hook(&[HookEvent::Test], 0), "Pod", "t"),
        ];
        let order = run_order(
            hooks.iter().map(|(h, k, n)| (h, *k, *n)),
            HookEvent::PreUpgrade,
        );
        let names: Vec<&str> = order.iter().map(|&i| hooks[i].2).collect();
        assert_eq!(names, ["z", "c", "a", "b"]);
        let post = run_order(
            hooks.iter().map(|(h, k, n)| (h, *k, *n)),
            HookEvent::PostUpgrade,
        );
        assert_eq!(post, [2]);
    }
}
