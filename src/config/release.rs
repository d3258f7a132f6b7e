//! `releases/<name>/release.yaml`: one application's chart, version, values per
//! environment, replica counts per context and Vault mappings.

use super::patterns;
use super::Cluster;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The context name that applies where no entry names the cluster's own context.
pub const DEFAULT_CONTEXT: &str = "default";
/// The `apiVersion` and `kind` of a release descriptor.
pub const API_VERSION: &str = "flotilla/v1";
pub const KIND: &str = "Release";

/// A release descriptor, parsed and checked on its own, with its chart folder found.
#[derive(Debug, Clone)]
pub struct LoadedRelease {
    pub file: PathBuf,
    /// The chart folder (it exists and holds a `Chart.yaml`).
    pub chart_dir: PathBuf,
    pub descriptor: ReleaseDescriptor,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseDescriptor {
    /// Must be `flotilla/v1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: String,
    /// Must be `Release`.
    #[schemars(extend("const" = KIND))]
    pub kind: String,
    pub metadata: ReleaseMetadata,
    pub spec: ReleaseSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseMetadata {
    /// The release's name: a DNS-1123 label of at most 53 characters, equal to its folder.
    #[schemars(length(max = 53), regex(pattern = patterns::DNS_LABEL))]
    pub name: String,
    /// The namespace of its objects and records: a DNS-1123 label.
    #[schemars(length(max = 63), regex(pattern = patterns::DNS_LABEL))]
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// Path of the chart folder, relative to the descriptor; or a chart by reference:
    /// `oci://HOST/PATH/NAME` (with `chartVersion`), or a chart's name in
    /// `repository` (docs/helm.md, "Charts by reference").
    pub chart: String,
    /// The version of a chart by reference: exact (`1.4.2`), as published.
    #[serde(
        default,
        rename = "chartVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub chart_version: Option<String>,
    /// A classic chart repository (`https://charts.example.com`): `chart` is then the
    /// name of a chart in its `index.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// How Helm reaches the registry or repository of a chart by reference.
    #[serde(default, rename = "chartPull", skip_serializing_if = "Option::is_none")]
    pub chart_pull: Option<ChartPull>,
    /// The application version; charts use it as the image tag.
    #[schemars(regex(pattern = patterns::IMAGE_TAG))]
    pub version: String,
    /// Base values, over the chart's `values.yaml`.
    #[serde(default = "empty_mapping")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub values: serde_yaml_ng::Value,
    /// Per-environment overrides, keyed by environment name.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentOverride>,
    #[serde(default)]
    pub scaling: Vec<Scaling>,
    #[serde(default)]
    pub secrets: Vec<SecretMapping>,
    /// What kind of chart `chart` is; detected from the chart when absent
    /// (docs/configuration.md).
    #[serde(default, rename = "chartType", skip_serializing_if = "Option::is_none")]
    pub chart_type: Option<ChartType>,
}

/// What `helm pull` is given besides the user's own Helm configuration (registry logins,
/// `repositories.yaml`), for a registry or repository that needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartPull {
    /// The registry speaks HTTP, not HTTPS (`helm pull --plain-http`).
    #[serde(default)]
    pub plain_http: bool,
    /// A CA bundle that signs the server's certificate (`--ca-file`), relative to the
    /// descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Skip the server certificate check (`--insecure-skip-tls-verify`).
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
}

/// A chart by reference, as a checked descriptor names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartReference {
    /// `oci://HOST/PATH/NAME`, or a chart's name in `repository`.
    pub chart: String,
    /// A classic repository's URL.
    pub repository: Option<String>,
    pub version: String,
    pub pull: ChartPull,
}

impl ChartReference {
    /// `oci://registry.example/charts/web:1.4.2`, `web 1.4.2 from https://charts.example`.
    pub fn shown(&self) -> String {
        match &self.repository {
            Some(repository) => format!("{} {} from {repository}", self.chart, self.version),
            None => format!("{}:{}", self.chart, self.version),
        }
    }
}

impl ReleaseSpec {
    /// The chart by reference, when `chart` is one (an `oci://` URL, or a name with
    /// `repository`); `None` for a chart folder.
    pub fn chart_reference(&self) -> Option<ChartReference> {
        let remote = self.chart.starts_with(OCI_SCHEME) || self.repository.is_some();
        remote.then(|| ChartReference {
            chart: self.chart.clone(),
            repository: self.repository.clone(),
            version: self.chart_version.clone().unwrap_or_default(),
            pull: self.chart_pull.clone().unwrap_or_default(),
        })
    }
}

/// The scheme of a chart in an OCI registry.
pub const OCI_SCHEME: &str = "oci://";

/// The two kinds of chart a release can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChartType {
    /// Handlebars templates, rendered by flotilla (docs/charts.md).
    Flotilla,
    /// Go templates, rendered by the `helm` program (docs/helm.md).
    Helm,
}

fn empty_mapping() -> serde_yaml_ng::Value {
    serde_yaml_ng::Value::Mapping(Default::default())
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentOverride {
    #[serde(default = "empty_mapping")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub values: serde_yaml_ng::Value,
}

/// Replica counts for one kube context (or `default`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    pub context: String,
    pub replicas: Vec<Replicas>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    /// Name of a rendered Deployment.
    #[schemars(length(max = 253), regex(pattern = patterns::DNS_SUBDOMAIN))]
    pub name: String,
    pub count: u32,
}

/// One secret the chart receives as `Values.secrets.<secret_id>`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretMapping {
    /// The chart reads it as `Values.secrets.<secret_id>`: letters, digits, `-`, `_`.
    #[schemars(regex(pattern = patterns::SECRET_ID))]
    pub secret_id: String,
    #[schemars(length(min = 1))]
    pub contexts: Vec<SecretSource>,
}

/// Where a secret comes from for one kube context (or `default`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretSource {
    pub name: String,
    /// Handlebars over the cluster's globals: `kv/{{global.env}}/ns1/app1/db`.
    #[schemars(regex(pattern = patterns::VAULT_PATH))]
    pub vault_path: String,
    pub vault_key: String,
    /// KV v2 only: pin this version of the secret.
    #[serde(default)]
    pub version: Option<u64>,
}

impl ReleaseSpec {
    /// The scaling entry for a context: its own, else `default`.
    pub fn scaling_for(&self, context: &str) -> Option<&Scaling> {
        self.scaling
            .iter()
            .find(|s| s.context == context)
            .or_else(|| self.scaling.iter().find(|s| s.context == DEFAULT_CONTEXT))
    }
}

impl SecretMapping {
    /// The source for a context: its own entry, else `default`.
    pub fn source_for(&self, context: &str) -> Option<&SecretSource> {
        self.contexts
            .iter()
            .find(|s| s.name == context)
            .or_else(|| self.contexts.iter().find(|s| s.name == DEFAULT_CONTEXT))
    }
}

impl SecretSource {
    /// The Vault path for one cluster: `vaultPath` rendered as Handlebars over
    /// `{ global: <the cluster's globals> }`, strictly (a missing global is an error) and
    /// without HTML escaping. The error text says what is wrong, without file or field.
    pub fn vault_path_for(&self, cluster: &Cluster) -> Result<String, String> {
        let mut registry = handlebars::Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        let context = serde_json::json!({ "global": &cluster.global });
        registry
            .render_template(&self.vault_path, &context)
            .map_err(|err| match err.reason() {
                handlebars::RenderErrorReason::MissingVariable(Some(var)) => format!(
                    "{{{{{var}}}}}: there is no such global (the globals are {})",
                    global_names(cluster)
                ),
                other => other.to_string(),
            })
    }
}

fn global_names(cluster: &Cluster) -> String {
    let mut names = vec!["cloud", "env", "region", "clusterName"];
    names.extend(cluster.global.extra.keys().map(String::as_str));
    names
        .iter()
        .map(|n| format!("global.{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
