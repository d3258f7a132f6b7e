//! Chart rendering: loading a chart, merging values in the documented precedence, and
//! rendering Handlebars templates (with Helm-style helpers) into Kubernetes objects,
//! once per cluster.
//!
//! The flow, as Helm's `pkg/chart` + `pkg/engine` split it:
//! - [`Chart::load`] reads `Chart.yaml`, `values.yaml`, `templates/*.yaml` and the
//!   `templates/_*.hbs` partials, and compiles them once into a Handlebars registry
//!   (strict mode, no HTML escaping, the helpers of [`helpers`]).
//! - [`Renderer::new`] merges the layers every cluster of an environment shares (chart
//!   values, `spec.values`, the environment's override, the command line's
//!   [`CommandLineValues`]: `-f`, `--set-json`, `--set`, `--set-string`) once.
//! - [`Renderer::render`] adds one cluster's layers (`global`, `secrets`, `scaling`),
//!   renders every template, splits the output into objects and applies scaling.
//! - [`check`] holds the stricter checks `lint` runs on rendered objects.
//!
//! Secrets are an input: a map secret_id → value given to [`Renderer::render`]. `template`
//! passes [`placeholder_secrets`]; a deploy passes the values the vault module resolved.
//! The engine never reads Vault, and every error it returns has the secret values it was
//! given replaced by their placeholders.
//!
//! A Helm chart ([`crate::config::ChartType::Helm`]) is loaded with every file and
//! rendered by the `helm` program instead of Handlebars (`helm.rs`), with the same
//! merged values and, per cluster, its [`Capabilities`]; scaling and the two renders
//! are the same for both types.
//!
//! A Helm chart's hooks (`helm.sh/hook`) are not objects of the release: [`hooks`]
//! reads their annotations and [`Manifest::hooks`] holds them apart, for ops to run.
//!
//! Must not: read Vault or talk to a cluster; read anything but the chart's files and
//! flotilla's chart cache (and run anything but `helm template`, `helm version`, and,
//! for charts by reference and dependencies from repositories, `helm pull` and `helm
//! dependency build`, in `fetch.rs`).

mod chart;
pub mod check;
mod error;
mod fetch;
mod helm;
mod helmignore;
pub mod helpers;
pub mod hooks;
mod manifest;
mod recorded;
mod render;
mod strvals;
mod values;

pub use chart::{Chart, ChartMetadata};
pub use error::RenderError;
pub use fetch::{cache_base, changed_tag, fetch, fetch_recorded, ChartOrigin, Fetched};
pub use helm::{Capabilities, HELM_VARIABLE, MINIMUM_HELM};
pub use hooks::{DeletePolicy, Hook, HookEvent};
pub use manifest::{Manifest, RenderedHook, RenderedObject};
pub use recorded::{render_recorded, ClusterFacts};
pub use render::{ReleaseInfo, Renderer, Renders};
pub(crate) use values::yaml_layer;
pub use values::{
    deep_merge, placeholder, placeholder_secrets, CommandLineValues, SecretValues, ValueSource,
};
