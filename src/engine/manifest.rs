//! What a render produces: the objects of one cluster, each with the template it came
//! from, split from a template's (or `helm template`'s) output text.

use super::error::RenderError;
use super::hooks::{hook_of, Hook, HookEvent};
use crate::config::yaml::{kind_of, yaml_message};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One rendered Kubernetes object and the template it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedObject {
    /// The template's file, for messages.
    pub source: PathBuf,
    pub object: Value,
}

impl RenderedObject {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// The object as kube's `DynamicObject`, for server-side apply.
    pub fn to_dynamic(&self) -> Result<kube::api::DynamicObject, serde_json::Error> {
        serde_json::from_value(self.object.clone())
    }
}

/// A hook object as rendered (`engine::hooks`).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedHook {
    pub hook: Hook,
    pub object: RenderedObject,
}

/// Splits rendered objects into the release's objects and its hooks.
pub(crate) fn split_hooks(
    objects: Vec<RenderedObject>,
) -> Result<(Vec<RenderedObject>, Vec<RenderedHook>), RenderError> {
    let mut kept = Vec::new();
    let mut hooks = Vec::new();
    for object in objects {
        match hook_of(&object.object, &object.source)? {
            Some(hook) => hooks.push(RenderedHook { hook, object }),
            None => kept.push(object),
        }
    }
    Ok((kept, hooks))
}

/// Every object a chart rendered for one cluster, in template order.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub objects: Vec<RenderedObject>,
    /// A Helm chart's hooks (`engine::hooks`): not objects of the release.
    pub hooks: Vec<RenderedHook>,
}

impl Manifest {
    /// Multi-document YAML, each document starting with `---`; `header` (a comment,
    /// without `#`) goes before every document when given.
    pub fn to_yaml(&self, header: Option<&str>) -> String {
        let mut out = String::new();
        // Hooks after the objects, as `helm template` prints them; test hooks are
        // `helm test`'s, not the release's.
        let hooks = self
            .hooks
            .iter()
            .filter(|h| h.hook.events != [HookEvent::Test])
            .map(|h| &h.object);
        for object in self.objects.iter().chain(hooks) {
            out.push_str("---\n");
            if let Some(header) = header {
                out.push_str(&format!("# {header}\n"));
            }
            // A serde_json::Value always serialises to YAML.
            out.push_str(&serde_yaml_ng::to_string(&object.object).unwrap_or_default());
        }
        out
    }
}

/// Split one template's output on `---` lines into objects; empty documents (blank or
/// comments only) are dropped. Errors name the template file and the rendered line.
pub(crate) fn split_documents(
    file: &Path,
    text: &str,
    objects: &mut Vec<RenderedObject>,
) -> Result<(), RenderError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut document = 0;
    for end in 0..=lines.len() {
        let separator = lines.get(end).is_some_and(|line| {
            *line == "---" || line.starts_with("--- ") || line.trim_end() == "---"
        });
        if end < lines.len() && !separator {
            continue;
        }
        let body = &lines[start..end];
        // Line numbers of the document's first line, 1-based, in the rendered text.
        let first_line = start + 1;
        start = end + 1;
        if body
            .iter()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        document += 1;
        let value: Value = serde_yaml_ng::from_str(&body.join("\n")).map_err(|err| {
            let line = first_line + err.location().map(|l| l.line()).unwrap_or(1) - 1;
            RenderError::Yaml {
                file: file.to_path_buf(),
                line,
                text: lines.get(line - 1).unwrap_or(&"").to_string(),
                message: yaml_message(&err),
            }
        })?;
        let error = |message: String| RenderError::Object {
            file: file.to_path_buf(),
            document,
            line: first_line,
            message,
        };
        match &value {
            Value::Null => continue,
            Value::Object(_) => {}
            other => {
                return Err(error(format!(
                    "must be a Kubernetes object (a map), found {}",
                    kind_of(other)
                )))
            }
        }
        for (field, found) in [
            ("apiVersion", &value["apiVersion"]),
            ("kind", &value["kind"]),
            ("metadata.name", &value["metadata"]["name"]),
        ] {
            match found {
                Value::String(s) if !s.trim().is_empty() => {}
                Value::Null => return Err(error(format!("object has no `{field}`"))),
                other => {
                    return Err(error(format!(
                        "`{field}` must be a non-empty string, found {other}"
                    )))
                }
            }
        }
        objects.push(RenderedObject {
            source: file.to_path_buf(),
            object: value,
        });
    }
    Ok(())
}
