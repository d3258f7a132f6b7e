//! Rendering a chart for one cluster: the render context, the templates, the split into
//! objects (`manifest.rs`) and scaling.

use super::chart::Chart;
use super::error::RenderError;
use super::helm::Capabilities;
use super::manifest::{split_documents, Manifest, RenderedObject};
use super::values::{deep_merge, placeholder, yaml_layer, CommandLineValues, SecretValues};
use crate::config::{ChartType, Cluster, LoadedRelease, ReleaseDescriptor, ReleaseSpec, Replicas};
use handlebars::{Context, RenderErrorReason};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// What the chart sees as `Release`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseInfo {
    pub name: String,
    pub namespace: String,
    /// The application version (`spec.version`, or `--version`).
    pub version: String,
    /// The revision this render will be recorded as in the cluster.
    pub revision: u64,
}

impl ReleaseInfo {
    pub fn from_descriptor(descriptor: &ReleaseDescriptor, revision: u64) -> ReleaseInfo {
        ReleaseInfo {
            name: descriptor.metadata.name.clone(),
            namespace: descriptor.metadata.namespace.clone(),
            version: descriptor.spec.version.clone(),
            revision,
        }
    }
}

/// One cluster's two renders ([`Renderer::render_for_apply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Renders {
    /// With the secret values: for the API server only, never stored or shown.
    pub applied: Manifest,
    /// What records, diff and drift keep of each object of `applied`, in its order: the
    /// fields a secret changes replaced by digests.
    pub stored: Vec<Value>,
    /// The same of each hook of `applied`, in its order.
    pub stored_hooks: Vec<Value>,
}

/// A chart ready to render for every cluster of one environment: the values every
/// cluster shares are merged once.
#[derive(Debug)]
pub struct Renderer<'a> {
    chart: &'a Chart,
    release: ReleaseInfo,
    spec: &'a ReleaseSpec,
    descriptor_file: PathBuf,
    /// chart values ← spec.values ← environment override ← the command line (`-f`,
    /// `--set-json`, `--set`, `--set-string`).
    base: Value,
    /// The key of `secretsum` (the release's key in the cluster); `None` outside a
    /// cluster (`template`, `lint`).
    checksum_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// A Helm chart's `.Capabilities` in the cluster rendered for; `None`: Helm's
    /// defaults (`template`, `lint`).
    capabilities: Option<Capabilities>,
}

impl<'a> Renderer<'a> {
    pub fn new(
        chart: &'a Chart,
        release: ReleaseInfo,
        spec: &'a ReleaseSpec,
        descriptor_file: &Path,
        environment: &str,
        overrides: &CommandLineValues,
    ) -> Result<Renderer<'a>, RenderError> {
        let mut base = chart.values.clone();
        deep_merge(
            &mut base,
            yaml_layer(&spec.values, descriptor_file, "spec.values")?,
        );
        if let Some(over) = spec.environments.get(environment) {
            let field = format!("spec.environments.{environment}.values");
            deep_merge(
                &mut base,
                yaml_layer(&over.values, descriptor_file, &field)?,
            );
        }
        overrides.merge_into(&mut base);
        Ok(Renderer {
            chart,
            release,
            spec,
            descriptor_file: descriptor_file.to_path_buf(),
            base,
            checksum_key: None,
            capabilities: None,
        })
    }

    /// Renders with this key for `secretsum` (the release's key kept in the cluster).
    pub fn with_checksum_key(mut self, key: Option<&[u8]>) -> Renderer<'a> {
        self.checksum_key = key.map(|k| zeroize::Zeroizing::new(k.to_vec()));
        self
    }

    /// Renders a Helm chart with this cluster's version and API versions (its
    /// `.Capabilities`); without, Helm's own defaults. No effect on flotilla charts.
    pub fn with_capabilities(mut self, capabilities: Option<Capabilities>) -> Renderer<'a> {
        self.capabilities = capabilities;
        self
    }

    /// [`Renderer::new`] for a loaded release at its descriptor's version.
    pub fn for_release(
        chart: &'a Chart,
        release: &'a LoadedRelease,
        environment: &str,
        overrides: &CommandLineValues,
        revision: u64,
    ) -> Result<Renderer<'a>, RenderError> {
        Renderer::new(
            chart,
            ReleaseInfo::from_descriptor(&release.descriptor, revision),
            &release.descriptor.spec,
            &release.file,
            environment,
            overrides,
        )
    }

    /// The merged values for one cluster, as the chart sees them in `Values`.
    pub fn values(&self, cluster: &Cluster, secrets: &SecretValues) -> Value {
        let mut values = self.base.clone();
        // Globals is plain data: serialising it cannot fail.
        let global = serde_json::to_value(&cluster.global).unwrap_or(Value::Null);
        let secrets: Map<String, Value> = secrets
            .iter()
            .map(|(id, value)| (id.clone(), Value::String(value.clone())))
            .collect();
        let scaling: Map<String, Value> = self
            .replicas(&cluster.context)
            .iter()
            .map(|r| (r.name.clone(), Value::from(r.count)))
            .collect();
        deep_merge(&mut values, json!({ "global": global }));
        deep_merge(
            &mut values,
            json!({ "secrets": secrets, "scaling": scaling }),
        );
        values
    }

    fn replicas(&self, context: &str) -> &[Replicas] {
        self.spec
            .scaling_for(context)
            .map(|s| s.replicas.as_slice())
            .unwrap_or_default()
    }

    /// Render every template for `cluster` with these secret values, as the revision
    /// given in [`ReleaseInfo`].
    pub fn render(
        &self,
        cluster: &Cluster,
        secrets: &SecretValues,
    ) -> Result<Manifest, RenderError> {
        self.render_revision(cluster, secrets, self.release.revision)
    }

    /// [`Renderer::render`] as another revision: each cluster numbers its own revisions,
    /// so a deploy renders every cluster with the revision that cluster will record.
    pub fn render_revision(
        &self,
        cluster: &Cluster,
        secrets: &SecretValues,
        revision: u64,
    ) -> Result<Manifest, RenderError> {
        let redactions: Vec<(&str, String)> = secrets
            .iter()
            .map(|(id, value)| (value.as_str(), placeholder(id)))
            .collect();
        self.render_inner(cluster, secrets, revision)
            .map_err(|err| err.redacted(&redactions))
    }

    /// The two renders of one cluster: with the secret placeholders
    /// ([`placeholder`]) for everything stored or shown, and with the values for the
    /// API server only. What is stored is [`crate::redact::stored_form`] of each object:
    /// the placeholder render, where every field the values change (the secret itself, a
    /// checksum or a base64 text of it, a URL holding it) is a digest. Errors come from
    /// the placeholder render when it fails, so they cannot quote a value; a chart whose
    /// objects depend on a secret's value (a different set of objects, a YAML that only
    /// the value breaks) is an error that shows no value either.
    pub fn render_for_apply(
        &self,
        cluster: &Cluster,
        secrets: &SecretValues,
        revision: u64,
    ) -> Result<Renders, RenderError> {
        let placeholders: SecretValues = secrets
            .keys()
            .map(|id| (id.clone(), placeholder(id)))
            .collect();
        let shown = self.render_inner(cluster, &placeholders, revision)?;
        // Without secrets both renders are the same: one is enough (a Helm chart's
        // render is a `helm` run).
        let applied = if secrets.is_empty() {
            Ok(shown.clone())
        } else {
            self.render_revision(cluster, secrets, revision)
        };
        let applied = applied
            .map_err(|err| match err {
                RenderError::Yaml { file, line, .. } => RenderError::SecretShape {
                    file,
                    message: format!(
                        "invalid YAML after rendering with the secret values (rendered line {line}, not shown: it holds a value), while the render with placeholders parses: a value breaks the YAML there; quote it with `quote`, or better, reference the Secret (`secretKeyRef`)"
                    ),
                },
                other => other,
            })?;
        let same = |s: &RenderedObject, a: &RenderedObject| {
            s.api_version() == a.api_version() && s.kind() == a.kind() && s.name() == a.name()
        };
        let same_objects = shown.objects.len() == applied.objects.len()
            && shown
                .objects
                .iter()
                .zip(&applied.objects)
                .all(|(s, a)| same(s, a))
            && shown.hooks.len() == applied.hooks.len()
            && shown
                .hooks
                .iter()
                .zip(&applied.hooks)
                .all(|(s, a)| same(&s.object, &a.object) && s.hook == a.hook);
        if !same_objects {
            let file = applied
                .objects
                .first()
                .or(shown.objects.first())
                .map(|o| o.source.clone())
                .unwrap_or_else(|| self.descriptor_file.clone());
            return Err(RenderError::SecretShape {
                file,
                message: "the chart renders other objects (or other names) with the secret values than with placeholders: which objects a chart renders must not depend on a secret".into(),
            });
        }
        let stored = shown
            .objects
            .iter()
            .zip(&applied.objects)
            .map(|(s, a)| crate::redact::stored_form(&s.object, &a.object))
            .collect();
        let stored_hooks = shown
            .hooks
            .iter()
            .zip(&applied.hooks)
            .map(|(s, a)| crate::redact::stored_form(&s.object.object, &a.object.object))
            .collect();
        Ok(Renders {
            applied,
            stored,
            stored_hooks,
        })
    }

    fn render_inner(
        &self,
        cluster: &Cluster,
        secrets: &SecretValues,
        revision: u64,
    ) -> Result<Manifest, RenderError> {
        if self.chart.chart_type() == ChartType::Helm {
            let values = self.values(cluster, secrets);
            let (objects, hooks) = super::helm::render(&super::helm::Invocation {
                dir: self.chart.dir(),
                files: self.chart.files(),
                binary: self.chart.binary_files(),
                release: &self.release.name,
                namespace: &self.release.namespace,
                app_version: &self.release.version,
                values: &values,
                capabilities: self.capabilities.as_ref(),
                context: &cluster.context,
            })?;
            let mut manifest = Manifest { objects, hooks };
            self.apply_scaling(&cluster.context, &mut manifest)?;
            return Ok(manifest);
        }
        let context = json!({
            "Release": {
                "Name": self.release.name,
                "Namespace": self.release.namespace,
                "Revision": revision,
                "Version": self.release.version,
            },
            "Chart": {
                "Name": self.chart.metadata.name,
                "Version": self.chart.metadata.version,
            },
            "Values": self.values(cluster, secrets),
        });
        let context = Context::wraps(context).map_err(|err| RenderError::Values {
            file: self.descriptor_file.clone(),
            field: "values".into(),
            message: err.to_string(),
        })?;

        let mut objects = Vec::new();
        for template in self.chart.templates() {
            let text = super::helpers::with_checksum_key(
                self.checksum_key.as_deref().map(|k| k.as_slice()),
                || self.chart.registry.render_with_context(template, &context),
            )
            .map_err(|err| self.template_error(template, &cluster.context, err))?;
            split_documents(&self.chart.file_of(template), &text, &mut objects)?;
        }
        let mut manifest = Manifest {
            objects,
            hooks: Vec::new(),
        };
        self.apply_scaling(&cluster.context, &mut manifest)?;
        Ok(manifest)
    }

    fn template_error(
        &self,
        template: &str,
        context: &str,
        err: handlebars::RenderError,
    ) -> RenderError {
        let file = self
            .chart
            .file_of(err.template_name.as_deref().unwrap_or(template));
        let message = match err.reason() {
            // The chart asks for a replica count that spec.scaling does not give this
            // cluster: most often a typo in spec.scaling, which the template cannot see.
            RenderErrorReason::MissingVariable(Some(path))
                if path.starts_with("Values.scaling.") =>
            {
                let given: Vec<String> = self
                    .replicas(context)
                    .iter()
                    .map(|r| r.name.clone())
                    .collect();
                format!(
                    "`{path}` is missing (strict mode): spec.scaling of {} gives this cluster replicas for {}; a name there may be misspelt, or guard it with `default`",
                    self.descriptor_file.display(),
                    if given.is_empty() { "no Deployment".to_owned() } else { given.join(", ") }
                )
            }
            RenderErrorReason::MissingVariable(Some(path)) => format!(
                "`{path}` is missing (strict mode); give it a value or guard it with `default`"
            ),
            RenderErrorReason::MissingVariable(None) => {
                "a helper returned no value (strict mode)".to_string()
            }
            RenderErrorReason::HelperNotFound(name) => format!("unknown helper `{name}`"),
            RenderErrorReason::PartialNotFound(name) => {
                format!("unknown partial `{name}` (partials are templates/_{name}.hbs)")
            }
            reason => reason.to_string(),
        };
        RenderError::Template {
            file,
            line: err.line_no,
            column: err.column_no,
            message,
        }
    }

    /// Set `spec.replicas` of every Deployment the scaling entry names; a name that
    /// matches no rendered Deployment is an error, so a typo cannot pass silently.
    fn apply_scaling(&self, context: &str, manifest: &mut Manifest) -> Result<(), RenderError> {
        for replicas in self.replicas(context) {
            let error = |message: String| RenderError::Scaling {
                file: self.descriptor_file.clone(),
                context: context.to_string(),
                message,
            };
            let deployment = manifest
                .objects
                .iter_mut()
                .find(|o| o.kind() == "Deployment" && o.name() == replicas.name);
            let Some(deployment) = deployment else {
                // The object is there under another kind: a typo in its `kind`, not in
                // spec.scaling.
                if let Some(other) = manifest
                    .objects
                    .iter()
                    .find(|o| o.name() == replicas.name && o.kind() != "Deployment")
                {
                    return Err(RenderError::Template {
                        file: other.source.clone(),
                        line: None,
                        column: None,
                        message: format!(
                            "{:?} has kind {:?}, which spec.scaling of {} takes for a Deployment (replicas: {}): is `kind` misspelt?",
                            replicas.name,
                            other.kind(),
                            self.descriptor_file.display(),
                            replicas.count
                        ),
                    });
                }
                let rendered: Vec<&str> = manifest
                    .objects
                    .iter()
                    .filter(|o| o.kind() == "Deployment")
                    .map(|o| o.name())
                    .collect();
                return Err(error(format!(
                    "replicas for Deployment {:?}, but the chart renders no Deployment of that name (it renders: {})",
                    replicas.name,
                    if rendered.is_empty() { "none".to_string() } else { rendered.join(", ") }
                )));
            };
            let source = deployment.source.display().to_string();
            let object = deployment.object.as_object_mut();
            let spec = object.map(|o| o.entry("spec").or_insert_with(|| json!({})));
            match spec.and_then(Value::as_object_mut) {
                Some(spec) => {
                    spec.insert("replicas".into(), Value::from(replicas.count));
                }
                None => {
                    return Err(error(format!(
                        "Deployment {:?} (from {source}) has a `spec` that is not a map",
                        replicas.name
                    )))
                }
            }
        }
        Ok(())
    }
}
