//! `environments/<env>.yaml`: an environment's clusters, their globals, Vault and rollout.

use super::patterns;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An environment file, parsed and checked on its own.
#[derive(Debug, Clone)]
pub struct LoadedEnvironment {
    pub file: PathBuf,
    pub environment: Environment,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The environment's name: a DNS-1123 label, equal to the file name without `.yaml`.
    #[schemars(length(max = 63), regex(pattern = patterns::DNS_LABEL))]
    pub name: String,
    /// The git branch whose merges deploy here (`deploy --branch`).
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub vault: Option<VaultConfig>,
    #[serde(default)]
    pub rollout: Rollout,
    /// Where this environment's artifacts come from (dev → staging → prod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionChain>,
    #[schemars(length(min = 1))]
    pub clusters: Vec<Cluster>,
    /// Where runs against this environment are reported (webhooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyTarget>,
    /// Change freezes: where `flotilla freeze` keeps one, and recurring windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<super::FreezeConfig>,
}

/// A webhook that hears of every run: started, succeeded, failed, rolled back. Its URL
/// is read from an environment variable at run time, never written in the repo (an
/// incoming-webhook URL is a credential).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// `slack` (a Slack-compatible incoming webhook: `{"text": ...}`) or `webhook` (the
    /// run as a JSON document).
    pub kind: NotifyKind,
    /// The environment variable that holds the URL.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub url_env: String,
    /// The events it hears of (default: every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<NotifyEvent>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Slack,
    Webhook,
}

/// What a notification says happened to a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// Prepared (secrets read, every cluster rendered and connected); clusters are
    /// about to change.
    Started,
    Succeeded,
    /// Failed and not every changed cluster is back (halted, rollback incomplete), or
    /// refused before any change.
    Failed,
    /// Failed and every changed cluster was put back; or a `rollback` that succeeded.
    RolledBack,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Started => "started",
            NotifyEvent::Succeeded => "succeeded",
            NotifyEvent::Failed => "failed",
            NotifyEvent::RolledBack => "rolled-back",
        }
    }
}

/// `promotion:` of an environment file: the environment before this one in a chain.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionChain {
    /// The environment this one is promoted from: the default of `promote --from`.
    #[schemars(length(max = 63), regex(pattern = patterns::DNS_LABEL))]
    pub from: String,
    /// When set, `deploy` and `promote` here refuse an artifact (chart and
    /// environment-independent values) that has not run healthy in every cluster of
    /// `from` for at least this long (`0s`: healthy there at all).
    #[serde(
        default,
        with = "humantime_serde_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>", regex(pattern = patterns::DURATION))]
    pub min_soak: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `VAULT_ADDR` overrides it when set.
    #[serde(default)]
    #[schemars(regex(pattern = patterns::URL))]
    pub address: Option<String>,
    /// Vault Enterprise namespace; `VAULT_NAMESPACE` overrides it when set.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub auth: VaultAuth,
    pub kv: KvConfig,
    /// Where the key of this environment's record MACs is kept: a secret under `kv`'s
    /// mount that the deployers (CI, on-call) may read and whoever may write Secrets
    /// in a release's namespace may not. Every record written here is signed with it,
    /// and `promote` and `rollback` refuse a record whose MAC does not verify. Without
    /// it records are not signed (their digests are still checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_key: Option<RecordKeyRef>,
}

/// `vault.record_key`: one key of one secret in the environment's KV mount.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordKeyRef {
    /// The secret's path, mount included, no template: `kv/flotilla/prod/record-key`.
    #[schemars(regex(pattern = patterns::RECORD_KEY_PATH))]
    pub path: String,
    /// The key in that secret whose value (a long random string) is the HMAC key.
    #[schemars(length(min = 1))]
    pub key: String,
}

impl RecordKeyRef {
    /// `kv/flotilla/prod/record-key#hmac`, for messages.
    pub fn origin(&self) -> String {
        format!("{}#{}", self.path, self.key)
    }
}

/// How flotilla logs in to Vault.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// `VAULT_TOKEN`, else `~/.vault-token`.
    #[default]
    Token,
    AppRole {
        /// Mount path of the auth method (default `approle`).
        #[serde(default)]
        mount: Option<String>,
        #[serde(default)]
        role_id_env: Option<String>,
        #[serde(default)]
        secret_id_env: Option<String>,
        #[serde(default)]
        role_id_file: Option<String>,
        #[serde(default)]
        secret_id_file: Option<String>,
    },
    Kubernetes {
        role: String,
        /// Mount path of the auth method (default `kubernetes`).
        #[serde(default)]
        mount: Option<String>,
        /// The service-account token (default the in-pod path).
        #[serde(default)]
        jwt_file: Option<String>,
    },
    /// Vault's `jwt` auth method with a JWT the CI issued the job (an OIDC ID token):
    /// from the variable `jwt_env` (GitLab's `id_tokens`), the file `jwt_file`, or,
    /// with neither, GitHub Actions' token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`
    /// and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, set for a job with `id-token: write`).
    Jwt {
        /// The Vault role whose bound claims the JWT must satisfy.
        role: String,
        /// Mount path of the auth method (default `jwt`).
        #[serde(default)]
        mount: Option<String>,
        /// The variable holding the JWT.
        #[serde(default)]
        #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
        jwt_env: Option<String>,
        /// The file holding the JWT.
        #[serde(default)]
        jwt_file: Option<String>,
        /// The audience (`aud`) asked of GitHub's token endpoint, and the one
        /// `secrets policy` binds the role to (default: the issuer's own).
        #[serde(default)]
        audience: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvConfig {
    pub mount: String,
    /// 1 or 2.
    #[schemars(range(min = 1, max = 2))]
    pub version: u8,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Per cluster, for resources to become ready (`5m`, `90s`).
    #[serde(default = "Rollout::default_timeout", with = "humantime_serde_compat")]
    #[schemars(with = "String", regex(pattern = patterns::DURATION))]
    pub timeout: std::time::Duration,
    /// Per cluster, the time budget of putting it back when the run fails: its own,
    /// never what is left of `timeout`. Default: the same as `timeout`.
    #[serde(
        default,
        with = "humantime_serde_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>", regex(pattern = patterns::DURATION))]
    pub rollback_timeout: Option<std::time::Duration>,
    /// Clusters in flight at once.
    #[serde(default = "Rollout::default_concurrency")]
    #[schemars(range(min = 1))]
    pub concurrency: usize,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Settings of single waves (`rollout.waves[].wave` names which): concurrency,
    /// soak and verify commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveSettings>,
}

/// What one wave does besides deploying its clusters: how many of them at once, how
/// long it is watched once healthy (`soak`), and the commands that must pass on each of
/// its clusters (`verify`) before the next wave starts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveSettings {
    /// The wave these settings are for (`clusters[].wave`).
    pub wave: u32,
    /// Clusters of this wave in flight (so unavailable) at once; `rollout.concurrency`
    /// when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<usize>,
    /// Once every cluster of the wave is healthy, keep watching it this long: a pod of
    /// the release crashlooping, a Deployment losing availability or restarts past
    /// `max_restarts` fail the run.
    #[serde(
        default,
        with = "humantime_serde_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>", regex(pattern = patterns::DURATION))]
    pub soak: Option<std::time::Duration>,
    /// Container restarts a cluster's release pods may add up to during the soak.
    #[serde(default)]
    pub max_restarts: u32,
    /// Commands run on each cluster of the wave once it is healthy (and soaked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<VerifyCommand>,
}

/// One verify gate: a shell command line (`sh -c`), run from the repo root, or
/// (`helm_tests: true`) the chart's own Helm test hooks, run in the cluster as `helm
/// test` runs them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCommand {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1))]
    pub run: String,
    /// Runs the `helm.sh/hook: test` Pods and Jobs of the revision deployed in the
    /// cluster, one after the other in weight order, each until it completes; one that
    /// fails fails the gate. Instead of `run`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub helm_tests: bool,
    /// How long it may run before it is killed and fails the gate.
    #[serde(
        default = "VerifyCommand::default_timeout",
        with = "humantime_serde_compat"
    )]
    #[schemars(with = "String", regex(pattern = patterns::DURATION))]
    pub timeout: std::time::Duration,
}

impl VerifyCommand {
    fn default_timeout() -> std::time::Duration {
        std::time::Duration::from_secs(120)
    }
}

impl Rollout {
    /// The settings of wave `wave`, when the file gives any.
    pub fn wave(&self, wave: u32) -> Option<&WaveSettings> {
        self.waves.iter().find(|w| w.wave == wave)
    }
}

impl Rollout {
    fn default_timeout() -> std::time::Duration {
        std::time::Duration::from_secs(300)
    }
    fn default_concurrency() -> usize {
        10
    }
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            timeout: Rollout::default_timeout(),
            rollback_timeout: None,
            concurrency: Rollout::default_concurrency(),
            on_failure: OnFailure::default(),
            waves: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Every cluster this run touched goes back to its previous revision.
    #[default]
    Rollback,
    /// Leave every cluster as it is and say so.
    Halt,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The kubeconfig context name (`default` is reserved for descriptors).
    #[schemars(extend("not" = { "const": "default" }))]
    pub context: String,
    /// Waves go in order; clusters of one wave at once.
    #[serde(default)]
    pub wave: u32,
    pub global: Globals,
}

/// What every chart receives as `Values.global`: the four named fields at least, and
/// any further keys the environment adds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Globals {
    pub cloud: bool,
    pub env: String,
    pub region: String,
    #[serde(rename = "clusterName")]
    pub cluster_name: String,
    #[serde(flatten)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub extra: BTreeMap<String, serde_yaml_ng::Value>,
}

/// `timeout: 5m` through humantime, for serde.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// A duration as the environment files and the command line write it (`90s`, `5m`,
/// `1h30m`), one wording for what is not one (a bare `300` included: seconds or
/// minutes?).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration; write it as 90s, 5m or 1h30m"))
}

/// `rollback_timeout: 5m`, optional.
mod humantime_serde_option {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::humantime_serde_compat::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::humantime_serde_compat::deserialize(d).map(Some)
    }
}
