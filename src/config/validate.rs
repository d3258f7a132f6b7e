//! Checks made after parsing: what the types cannot say. One file's checks run in
//! [`check_environment`] and [`check_release`]; those that need a release and the
//! environments together in [`check_release_contexts`] and
//! [`check_release_for_environment`]. Every problem of a file is reported, not only the
//! first.

use super::yaml::{line_of, FieldPath};
use super::{
    ConfigError, Environment, KvConfig, LoadedEnvironment, LoadedRelease, NotifyTarget,
    RecordKeyRef, ReleaseDescriptor, VaultAuth, VaultConfig, DEFAULT_CONTEXT,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const API_VERSION: &str = "flotilla/v1";
pub const KIND: &str = "Release";
/// Helm's limit, for the same reason: charts append suffixes (`-web`) to the release
/// name and the result must stay a valid object name.
pub const MAX_RELEASE_NAME: usize = 53;

/// The problems found in one file, with the line of each where it can be found.
pub(crate) struct Problems {
    file: PathBuf,
    text: Option<String>,
    list: Vec<ConfigError>,
}

impl Problems {
    /// `text` is the file's content if at hand; otherwise it is read again for lines.
    pub fn new(file: &Path, text: Option<&str>) -> Self {
        Problems {
            file: file.to_path_buf(),
            text: text.map(str::to_string),
            list: Vec::new(),
        }
    }

    pub fn add(&mut self, path: &FieldPath, message: impl Into<String>) {
        if self.text.is_none() {
            self.text = std::fs::read_to_string(&self.file).ok();
        }
        let line = self.text.as_deref().and_then(|text| line_of(text, path));
        self.list.push(ConfigError::Invalid {
            file: self.file.clone(),
            line,
            field: path.to_string(),
            message: message.into(),
        });
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        ConfigError::from_list(self.list)
    }
}

/// Why `name` is not a DNS-1123 label (lower-case letters, digits, `-`; at most `max`).
pub fn dns_label_problem(name: &str, max: usize) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    if name.len() > max {
        return Some(format!(
            "{name:?} is {} characters long; at most {max} are allowed",
            name.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !name.chars().all(allowed) || name.starts_with('-') || name.ends_with('-') {
        return Some(format!(
            "{name:?} is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    None
}

/// Why `name` is not a DNS-1123 subdomain (labels joined by `.`, at most 253): the rule
/// for Kubernetes object names such as a Deployment's.
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    if name.len() > 253 {
        return Some(format!(
            "{name:?} is {} characters long; at most 253 are allowed",
            name.len()
        ));
    }
    if name
        .split('.')
        .any(|label| dns_label_problem(label, 63).is_some())
    {
        return Some(format!(
            "{name:?} is not a valid object name (DNS-1123 subdomain): use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    None
}

fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let list: Vec<String> = items.into_iter().map(|s| format!("{s:?}")).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

/// `rollout.waves`: each entry names a wave some cluster is in, once, with settings
/// that can run.
fn check_waves(problems: &mut Problems, at: &FieldPath, env: &Environment) {
    let known: BTreeSet<u32> = env.clusters.iter().map(|c| c.wave).collect();
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, settings) in env.rollout.waves.iter().enumerate() {
        let at = at.index(i);
        if let Some(first) = seen.insert(settings.wave, i) {
            problems.add(
                &at.key("wave"),
                format!(
                    "wave {} already has its settings in rollout.waves[{first}]; give each wave one entry",
                    settings.wave
                ),
            );
        } else if !known.contains(&settings.wave) {
            let waves: Vec<String> = known.iter().map(u32::to_string).collect();
            problems.add(
                &at.key("wave"),
                format!(
                    "{} is not the wave of any cluster (the clusters' waves: {})",
                    settings.wave,
                    waves.join(", ")
                ),
            );
        }
        if settings.concurrency == Some(0) {
            problems.add(
                &at.key("concurrency"),
                "0 would deploy to no cluster of the wave; give the number of its clusters in flight at once (1 or more)",
            );
        }
        if settings.soak.is_some_and(|d| d.is_zero()) {
            problems.add(
                &at.key("soak"),
                "0s watches nothing; give a duration such as 10m, or leave soak out",
            );
        }
        for (j, command) in settings.verify.iter().enumerate() {
            let at = at.key("verify").index(j);
            if command.run.trim().is_empty() {
                problems.add(
                    &at.key("run"),
                    "\"\" is an empty command: it verifies nothing; give a shell command line such as ./scripts/smoke.sh",
                );
            }
            if command.timeout.is_zero() {
                problems.add(
                    &at.key("timeout"),
                    "0s leaves no time for the command; give a duration such as 2m",
                );
            }
        }
    }
}

/// The checks of one environment file on its own.
pub(crate) fn check_environment(
    file: &Path,
    text: &str,
    env: &Environment,
) -> Result<(), ConfigError> {
    let mut problems = Problems::new(file, Some(text));
    let root = FieldPath::root();

    if let Some(why) = dns_label_problem(&env.name, 63) {
        problems.add(&root.key("name"), why);
    } else if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
        if stem != env.name {
            problems.add(
                &root.key("name"),
                format!(
                    "{:?} differs from the file name {stem:?}; an environment is named by its file, so rename one of them",
                    env.name
                ),
            );
        }
    }
    if let Some(branch) = &env.branch {
        if branch.trim().is_empty() || branch.chars().any(char::is_whitespace) {
            problems.add(
                &root.key("branch"),
                format!("{branch:?} is not a git branch name"),
            );
        }
    }

    if let Some(chain) = &env.promotion {
        if chain.from == env.name {
            problems.add(
                &root.key("promotion").key("from"),
                format!(
                    "{:?} is this environment; name the environment whose artifacts come here (dev for staging, staging for prod)",
                    chain.from
                ),
            );
        }
    }

    if let Some(vault) = &env.vault {
        let at = root.key("vault");
        if let Some(address) = &vault.address {
            if !(address.starts_with("http://") || address.starts_with("https://")) {
                problems.add(
                    &at.key("address"),
                    format!("{address:?} is not a URL; write it as https://vault.example:8200"),
                );
            }
        }
        check_kv(&mut problems, &at.key("kv"), &vault.kv);
        check_auth(&mut problems, &at.key("auth"), &vault.auth);
        if let Some(record_key) = &vault.record_key {
            check_record_key(&mut problems, &at.key("record_key"), record_key, vault, env);
        }
    }

    let rollout = root.key("rollout");
    if env.rollout.concurrency == 0 {
        problems.add(
            &rollout.key("concurrency"),
            "0 would deploy to no cluster; give the number of clusters in flight at once (1 or more)",
        );
    }
    if env.rollout.timeout.is_zero() {
        problems.add(
            &rollout.key("timeout"),
            "0s leaves no time for a rollout; give a duration such as 5m",
        );
    }
    if env.rollout.rollback_timeout.is_some_and(|t| t.is_zero()) {
        problems.add(
            &rollout.key("rollback_timeout"),
            "0s leaves no time to put a cluster back; give a duration such as 5m",
        );
    }

    check_notify(&mut problems, &root.key("notify"), &env.notify);
    if let Some(freeze) = &env.freeze {
        check_freeze(&mut problems, &root.key("freeze"), freeze);
    }
    check_waves(&mut problems, &rollout.key("waves"), env);

    let clusters = root.key("clusters");
    if env.clusters.is_empty() {
        problems.add(&clusters, "an environment needs at least one cluster");
    }
    let mut contexts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, cluster) in env.clusters.iter().enumerate() {
        let at = clusters.index(i);
        if cluster.context.trim().is_empty() {
            problems.add(&at.key("context"), "must not be empty");
        } else if cluster.context == DEFAULT_CONTEXT {
            problems.add(
                &at.key("context"),
                format!("{DEFAULT_CONTEXT:?} is reserved: in release descriptors it means every other cluster; rename the kube context"),
            );
        } else if let Some(first) = contexts.get(cluster.context.as_str()) {
            problems.add(
                &at.key("context"),
                format!(
                    "{:?} is already the context of clusters[{first}]",
                    cluster.context
                ),
            );
        } else {
            contexts.insert(&cluster.context, i);
        }
        let global = at.key("global");
        let name = &cluster.global.cluster_name;
        if name.trim().is_empty() {
            problems.add(&global.key("clusterName"), "must not be empty");
        } else if let Some(first) = names.get(name.as_str()) {
            problems.add(
                &global.key("clusterName"),
                format!("{name:?} is already the clusterName of clusters[{first}]"),
            );
        } else {
            names.insert(name, i);
        }
        if cluster.global.env.trim().is_empty() {
            problems.add(&global.key("env"), "must not be empty");
        }
        if cluster.global.region.trim().is_empty() {
            problems.add(&global.key("region"), "must not be empty");
        }
    }
    problems.finish()
}

/// `vault.record_key`: a plain path (no template: one key for the environment) inside
/// the KV mount, and a key.
fn check_record_key(
    problems: &mut Problems,
    at: &FieldPath,
    record_key: &RecordKeyRef,
    vault: &VaultConfig,
    env: &Environment,
) {
    let path = &record_key.path;
    if path.trim().is_empty() {
        problems.add(&at.key("path"), "must not be empty");
    } else if path.contains("{{") || path.contains("}}") {
        problems.add(
            &at.key("path"),
            format!("{path:?} is a template; write the one path of the environment's key, as in \"{}/flotilla/{}/record-key\"", vault.kv.mount, env.name),
        );
    } else if let Some(message) = kv_path_problem(path, &vault.kv, &env.name) {
        problems.add(&at.key("path"), message);
    } else if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "*+?#%\"\\".contains(*c))
    {
        problems.add(
            &at.key("path"),
            format!("{path:?}: a Vault path or policy would misread its {c:?}"),
        );
    }
    if record_key.key.trim().is_empty() {
        problems.add(
            &at.key("key"),
            "must not be empty; name the key of the secret that holds the HMAC key, as in `hmac`",
        );
    }
}

fn check_kv(problems: &mut Problems, at: &FieldPath, kv: &KvConfig) {
    if kv.version != 1 && kv.version != 2 {
        problems.add(
            &at.key("version"),
            format!("{} is not a KV version; use 1 or 2", kv.version),
        );
    }
    let mount = &kv.mount;
    if mount.trim().is_empty() {
        problems.add(&at.key("mount"), "must not be empty");
    } else if mount.starts_with('/') || mount.ends_with('/') || mount.contains("//") {
        problems.add(
            &at.key("mount"),
            format!(
                "{mount:?}: write the mount path without leading or trailing '/', as in \"kv\""
            ),
        );
    }
}

/// Letters, digits and `_`, not starting with a digit.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Each webhook names the variable that holds its URL (never the URL), and an event
/// at most once.
fn check_notify(problems: &mut Problems, at: &FieldPath, targets: &[NotifyTarget]) {
    for (i, target) in targets.iter().enumerate() {
        let at = at.index(i);
        let name = &target.url_env;
        if name.contains("://") {
            problems.add(
                &at.key("url_env"),
                "is a URL; a webhook URL is a credential and never goes in the repo: name the environment variable that holds it (url_env: SLACK_WEBHOOK_URL)",
            );
        } else if !is_env_var_name(name) {
            problems.add(
                &at.key("url_env"),
                format!("{name:?} is not an environment variable name (letters, digits and '_')"),
            );
        }
        let mut seen = BTreeSet::new();
        for (j, event) in target.on.iter().flatten().enumerate() {
            if !seen.insert(*event) {
                problems.add(
                    &at.key("on").index(j),
                    format!("{:?} is listed twice", event.as_str()),
                );
            }
        }
        if target.on.as_ref().is_some_and(Vec::is_empty) {
            problems.add(
                &at.key("on"),
                "an empty list would send nothing; leave `on` out for every event",
            );
        }
    }
}

fn check_freeze(problems: &mut Problems, at: &FieldPath, freeze: &super::FreezeConfig) {
    if let Some(namespace) = &freeze.namespace {
        if let Some(problem) = dns_label_problem(namespace, 63) {
            problems.add(&at.key("namespace"), format!("{namespace:?}: {problem}"));
        }
    }
    for (index, window) in freeze.windows.iter().enumerate() {
        let at = at.key("windows").index(index);
        if window.reason.trim().is_empty() {
            problems.add(
                &at.key("reason"),
                "must not be empty: a refused deploy says it",
            );
        }
        if let Err((field, problem)) = super::freeze::parse_window(window) {
            problems.add(&at.key(field), problem);
        }
    }
}

fn check_auth(problems: &mut Problems, at: &FieldPath, auth: &VaultAuth) {
    match auth {
        VaultAuth::Token => {}
        VaultAuth::AppRole {
            role_id_env,
            role_id_file,
            secret_id_env,
            secret_id_file,
            mount,
        } => {
            match (role_id_env, role_id_file) {
                (None, None) => problems.add(
                    at,
                    "approle needs the role id: give role_id_env (a variable holding it) or role_id_file",
                ),
                (Some(_), Some(_)) => problems.add(
                    &at.key("role_id_file"),
                    "give role_id_env or role_id_file, not both",
                ),
                _ => {}
            }
            if secret_id_env.is_some() && secret_id_file.is_some() {
                problems.add(
                    &at.key("secret_id_file"),
                    "give secret_id_env or secret_id_file, not both",
                );
            }
            for (key, value) in [
                ("role_id_env", role_id_env),
                ("secret_id_env", secret_id_env),
            ] {
                if let Some(name) = value {
                    if !is_env_var_name(name) {
                        problems.add(
                            &at.key(key),
                            format!("{name:?} is not an environment variable name (letters, digits and '_')"),
                        );
                    }
                }
            }
            for (key, value) in [
                ("role_id_file", role_id_file),
                ("secret_id_file", secret_id_file),
                ("mount", mount),
            ] {
                if matches!(value, Some(v) if v.trim().is_empty()) {
                    problems.add(&at.key(key), "must not be empty");
                }
            }
        }
        VaultAuth::Kubernetes {
            role,
            mount,
            jwt_file,
        } => {
            if role.trim().is_empty() {
                problems.add(&at.key("role"), "must not be empty");
            }
            for (key, value) in [("mount", mount), ("jwt_file", jwt_file)] {
                if matches!(value, Some(v) if v.trim().is_empty()) {
                    problems.add(&at.key(key), "must not be empty");
                }
            }
        }
        VaultAuth::Jwt {
            role,
            mount,
            jwt_env,
            jwt_file,
            audience,
        } => {
            if role.trim().is_empty() {
                problems.add(&at.key("role"), "must not be empty");
            }
            if jwt_env.is_some() && jwt_file.is_some() {
                problems.add(
                    &at.key("jwt_file"),
                    "give jwt_env or jwt_file, not both (neither: GitHub Actions' token endpoint)",
                );
            }
            if let Some(name) = jwt_env {
                if !is_env_var_name(name) {
                    problems.add(
                        &at.key("jwt_env"),
                        format!("{name:?} is not an environment variable name (letters, digits and '_')"),
                    );
                }
            }
            for (key, value) in [
                ("mount", mount),
                ("jwt_file", jwt_file),
                ("audience", audience),
            ] {
                if matches!(value, Some(v) if v.trim().is_empty()) {
                    problems.add(&at.key(key), "must not be empty");
                }
            }
        }
    }
}

/// The checks of one release descriptor on its own. `folder` is the folder name under
/// `releases/` when the descriptor was found there (its name must match).
pub(crate) fn check_release(
    file: &Path,
    text: &str,
    release: &ReleaseDescriptor,
    folder: Option<&str>,
) -> Result<(), ConfigError> {
    let mut problems = Problems::new(file, Some(text));
    let root = FieldPath::root();

    if release.api_version != API_VERSION {
        problems.add(
            &root.key("apiVersion"),
            format!(
                "{:?} is not supported; use {API_VERSION:?}",
                release.api_version
            ),
        );
    }
    if release.kind != KIND {
        problems.add(
            &root.key("kind"),
            format!("{:?} is not a flotilla kind; use {KIND:?}", release.kind),
        );
    }

    let meta = root.key("metadata");
    if let Some(why) = dns_label_problem(&release.metadata.name, MAX_RELEASE_NAME) {
        problems.add(&meta.key("name"), why);
    } else if let Some(folder) = folder {
        if folder != release.metadata.name {
            problems.add(
                &meta.key("name"),
                format!(
                    "{:?} differs from its folder releases/{folder}; a release is named by its folder, so rename one of them",
                    release.metadata.name
                ),
            );
        }
    }
    if let Some(why) = dns_label_problem(&release.metadata.namespace, 63) {
        problems.add(&meta.key("namespace"), why);
    }

    let spec = root.key("spec");
    check_version(&mut problems, &spec.key("version"), &release.spec.version);
    if release.spec.chart.trim().is_empty() {
        problems.add(&spec.key("chart"), "must not be empty");
    }
    if !release.spec.values.is_mapping() {
        problems.add(
            &spec.key("values"),
            format!(
                "must be a mapping of values, found {}",
                kind_of(&release.spec.values)
            ),
        );
    }
    for (name, over) in &release.spec.environments {
        if !over.values.is_mapping() {
            problems.add(
                &spec.key("environments").key(name).key("values"),
                format!(
                    "must be a mapping of values, found {}",
                    kind_of(&over.values)
                ),
            );
        }
    }

    let scaling = spec.key("scaling");
    let mut contexts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, entry) in release.spec.scaling.iter().enumerate() {
        let at = scaling.index(i);
        if entry.context.trim().is_empty() {
            problems.add(&at.key("context"), "must not be empty");
        } else if let Some(first) = contexts.get(entry.context.as_str()) {
            problems.add(
                &at.key("context"),
                format!("{:?} already has replica counts in spec.scaling[{first}]; merge the two entries", entry.context),
            );
        } else {
            contexts.insert(&entry.context, i);
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (j, replicas) in entry.replicas.iter().enumerate() {
            let name_at = at.key("replicas").index(j).key("name");
            if let Some(why) = dns_subdomain_problem(&replicas.name) {
                problems.add(&name_at, why);
            } else if let Some(first) = names.get(replicas.name.as_str()) {
                problems.add(
                    &name_at,
                    format!(
                        "{:?} is already counted in replicas[{first}] of this entry",
                        replicas.name
                    ),
                );
            } else {
                names.insert(&replicas.name, j);
            }
        }
    }

    let secrets = spec.key("secrets");
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, secret) in release.spec.secrets.iter().enumerate() {
        let at = secrets.index(i);
        let id = &secret.secret_id;
        let id_ok = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            problems.add(
                &at.key("secret_id"),
                format!("{id:?} is not a valid secret_id: use letters, digits, '-' and '_'"),
            );
        } else if let Some(first) = ids.get(id.as_str()) {
            problems.add(
                &at.key("secret_id"),
                format!("{id:?} is already the secret_id of spec.secrets[{first}]"),
            );
        } else {
            ids.insert(id, i);
        }
        if secret.contexts.is_empty() {
            problems.add(
                &at.key("contexts"),
                "a secret needs at least one source: a context name (or \"default\") with vaultPath and vaultKey",
            );
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (j, source) in secret.contexts.iter().enumerate() {
            let src = at.key("contexts").index(j);
            if source.name.trim().is_empty() {
                problems.add(&src.key("name"), "must not be empty");
            } else if let Some(first) = names.get(source.name.as_str()) {
                problems.add(
                    &src.key("name"),
                    format!(
                        "{:?} already has a source in contexts[{first}] of this secret",
                        source.name
                    ),
                );
            } else {
                names.insert(&source.name, j);
            }
            check_vault_path_syntax(&mut problems, &src.key("vaultPath"), &source.vault_path);
            if source.vault_key.trim().is_empty() {
                problems.add(&src.key("vaultKey"), "must not be empty");
            }
            if source.version == Some(0) {
                problems.add(&src.key("version"), "KV v2 versions start at 1");
            }
        }
    }
    problems.finish()
}

/// The application version is the image tag: the tag grammar of the OCI distribution spec.
fn check_version(problems: &mut Problems, at: &FieldPath, version: &str) {
    if version.is_empty() {
        problems.add(at, "is empty; give the application version (the image tag)");
        return;
    }
    let valid = !version.is_empty()
        && version.len() <= 128
        && version.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    if !valid {
        problems.add(
            at,
            format!("{version:?} cannot be an image tag: use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')"),
        );
    }
}

fn check_vault_path_syntax(problems: &mut Problems, at: &FieldPath, path: &str) {
    if path.trim().is_empty() {
        problems.add(at, "must not be empty");
        return;
    }
    if path.starts_with('/') {
        problems.add(
            at,
            format!("{path:?}: write the path without a leading '/', starting with the KV mount"),
        );
        return;
    }
    if let Err(err) = handlebars::Template::compile(path) {
        let message = match err.reason() {
            handlebars::TemplateErrorReason::InvalidSyntax(_) => format!(
                "{path:?} is not a valid template: an expression between {{{{ and }}}} is malformed or not closed"
            ),
            reason => format!("{path:?} is not a valid template: {reason}"),
        };
        problems.add(at, message);
    }
}

fn kind_of(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// The checks that need every environment: each context a descriptor names (in scaling
/// and secrets) is the context of a cluster of some environment, or `default`; each key of
/// `spec.environments` is an environment.
pub fn check_release_contexts(
    release: &LoadedRelease,
    environments: &[LoadedEnvironment],
) -> Result<(), ConfigError> {
    let mut problems = Problems::new(&release.file, None);
    let known: BTreeSet<&str> = environments
        .iter()
        .flat_map(|e| e.environment.clusters.iter().map(|c| c.context.as_str()))
        .collect();
    let unknown = |context: &str| context != DEFAULT_CONTEXT && !known.contains(context);
    let hint = |context: &str| {
        let mut message = format!(
            "{context:?} is not the context of any cluster in environments/ (nor {DEFAULT_CONTEXT:?})"
        );
        let candidates = known.iter().copied().chain([DEFAULT_CONTEXT]);
        if let Some(near) = nearest(context, candidates) {
            message.push_str(&format!("; did you mean {near:?}?"));
        }
        message
    };
    let spec = FieldPath::root().key("spec");
    let desc = &release.descriptor;
    for (i, entry) in desc.spec.scaling.iter().enumerate() {
        if unknown(&entry.context) {
            problems.add(
                &spec.key("scaling").index(i).key("context"),
                hint(&entry.context),
            );
        }
    }
    for (i, secret) in desc.spec.secrets.iter().enumerate() {
        for (j, source) in secret.contexts.iter().enumerate() {
            if unknown(&source.name) {
                let at = spec
                    .key("secrets")
                    .index(i)
                    .key("contexts")
                    .index(j)
                    .key("name");
                problems.add(&at, hint(&source.name));
            }
        }
    }
    let env_names: Vec<&str> = environments
        .iter()
        .map(|e| e.environment.name.as_str())
        .collect();
    for name in desc.spec.environments.keys() {
        if !env_names.contains(&name.as_str()) {
            problems.add(
                &spec.key("environments").key(name),
                format!(
                    "{name:?} is not an environment; environments/ has {}",
                    quoted_list(env_names.iter().copied())
                ),
            );
        }
    }
    problems.finish()
}

/// The checks of a release for one environment: every secret resolves for every cluster
/// (its own context or `default`) to a Vault path inside the environment's KV mount, and
/// a `version:` pin is only used with KV v2.
pub fn check_release_for_environment<'a>(
    release: &'a LoadedRelease,
    env: &'a LoadedEnvironment,
) -> Result<(), ConfigError> {
    let mut problems = Problems::new(&release.file, None);
    let spec = FieldPath::root().key("spec");
    let environment = &env.environment;
    let kv = environment.vault.as_ref().map(|v| &v.kv);
    if environment.vault.is_none() && !release.descriptor.spec.secrets.is_empty() {
        problems.add(
            &spec.key("secrets"),
            format!(
                "the release reads secrets from Vault but {} has no `vault:` section",
                env.file.display()
            ),
        );
        return problems.finish();
    }
    // A source shared by many clusters usually fails the same way for each: one message
    // names them all. Keyed by field and message, in the order found.
    let mut found: Vec<(FieldPath, String, Vec<&str>)> = Vec::new();
    let mut note = |path: FieldPath, message: String, context: &'a str| match found
        .iter_mut()
        .find(|(p, m, _)| *p == path && *m == message)
    {
        Some((_, _, contexts)) => contexts.push(context),
        None => found.push((path, message, vec![context])),
    };
    for (i, secret) in release.descriptor.spec.secrets.iter().enumerate() {
        let at = spec.key("secrets").index(i);
        for cluster in &environment.clusters {
            let context = cluster.context.as_str();
            let Some(j) = secret
                .contexts
                .iter()
                .position(|s| s.name == context)
                .or_else(|| {
                    secret
                        .contexts
                        .iter()
                        .position(|s| s.name == DEFAULT_CONTEXT)
                })
            else {
                note(
                    at.key("contexts"),
                    format!(
                        "secret {:?} has no source in environment {:?}: add a {DEFAULT_CONTEXT:?} source or one per cluster",
                        secret.secret_id, environment.name
                    ),
                    context,
                );
                continue;
            };
            let source = &secret.contexts[j];
            let src = at.key("contexts").index(j);
            let Some(kv) = kv else { continue };
            if source.version.is_some() && kv.version == 1 {
                note(
                    src.key("version"),
                    format!(
                        "a version pin needs KV v2, but environment {:?} reads KV v1 (vault.kv.version in {})",
                        environment.name,
                        env.file.display()
                    ),
                    context,
                );
            }
            match source.vault_path_for(cluster) {
                Err(message) => note(src.key("vaultPath"), message, context),
                Ok(path) => {
                    if let Some(message) = kv_path_problem(&path, kv, &environment.name) {
                        note(src.key("vaultPath"), message, context);
                    }
                }
            }
        }
    }
    for (path, message, contexts) in found {
        let whom = match contexts.as_slice() {
            [one] => format!("for cluster {one:?}"),
            many => format!("for clusters {}", quoted_list(many.iter().copied())),
        };
        problems.add(&path, format!("{whom}: {message}"));
    }
    problems.finish()
}

/// What is wrong with `path` (rendered, mount included) as the path of a secret in the
/// KV mount `kv` of `environment`: outside the mount, a `.` or `..` segment, the HTTP
/// API path of a KV v2 secret, an empty segment. The one check of every Vault path
/// flotilla reads: the descriptor's mappings, the paths a record says it read, and
/// `vault.record_key`.
pub fn kv_path_problem(path: &str, kv: &KvConfig, environment: &str) -> Option<String> {
    let inside = path
        .strip_prefix(kv.mount.as_str())
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1);
    if !inside {
        Some(format!(
            "the path is {path:?}, which is not under the KV mount {:?} of environment {environment:?}; start it with \"{}/\"",
            kv.mount, kv.mount
        ))
    } else if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        Some(format!(
            "the path is {path:?}, which has a `.` or `..` segment: a path names one secret under the mount, never a way out of it"
        ))
    } else if kv.version == 2 && kv_v2_api_path(path, &kv.mount) {
        Some(format!(
            "the path is {path:?}: with KV v2 write the secret's path without data/ or metadata/ (flotilla adds it), as in \"{}/app/db\"",
            kv.mount
        ))
    } else if path.contains("//") || path.ends_with('/') {
        Some(format!(
            "the path is {path:?}, which has an empty segment (an empty global?)"
        ))
    } else {
        None
    }
}

/// `kv/data/...` or `kv/metadata/...`: the HTTP API path of a KV v2 secret rather than
/// the secret's own path.
fn kv_v2_api_path(path: &str, mount: &str) -> bool {
    let rest = path.strip_prefix(mount).unwrap_or(path);
    rest.starts_with("/data/") || rest.starts_with("/metadata/")
}

/// The known name closest to `name` when it is a likely typo (edit distance at most 2).
pub(crate) fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The checks across environment files: no two environments deploy from the same branch
/// or share a kube context (a cluster belongs to one environment, or a deploy to one
/// would overwrite the other's release there).
pub fn check_environments(environments: &[LoadedEnvironment]) -> Result<(), ConfigError> {
    let mut errors = Vec::new();
    let mut branches: BTreeMap<&str, &LoadedEnvironment> = BTreeMap::new();
    let mut contexts: BTreeMap<&str, &LoadedEnvironment> = BTreeMap::new();
    for env in environments {
        let mut problems = Problems::new(&env.file, None);
        let root = FieldPath::root();
        if let Some(branch) = &env.environment.branch {
            match branches.get(branch.as_str()) {
                Some(first) => problems.add(
                    &root.key("branch"),
                    format!(
                        "{branch:?} is already the branch of environment {:?} ({}); a merge must deploy to one environment",
                        first.environment.name,
                        first.file.display()
                    ),
                ),
                None => {
                    branches.insert(branch, env);
                }
            }
        }
        for (i, cluster) in env.environment.clusters.iter().enumerate() {
            match contexts.get(cluster.context.as_str()) {
                Some(first) if !std::ptr::eq(*first, env) => problems.add(
                    &root.key("clusters").index(i).key("context"),
                    format!(
                        "{:?} is already a cluster of environment {:?} ({}); a cluster belongs to one environment",
                        cluster.context,
                        first.environment.name,
                        first.file.display()
                    ),
                ),
                Some(_) => {}
                None => {
                    contexts.insert(&cluster.context, env);
                }
            }
        }
        if let Some(problem) = chain_problem(env, environments) {
            problems.add(&root.key("promotion").key("from"), problem);
        }
        if let Err(err) = problems.finish() {
            errors.push(err);
        }
    }
    ConfigError::from_list(errors)
}

/// Why `env`'s `promotion.from` is not a chain: an unknown environment, or a loop back
/// to `env`.
fn chain_problem(env: &LoadedEnvironment, environments: &[LoadedEnvironment]) -> Option<String> {
    let name = &env.environment.name;
    let from_of = |n: &str| {
        environments
            .iter()
            .find(|e| e.environment.name == n)
            .map(|e| e.environment.promotion.as_ref().map(|c| c.from.as_str()))
    };
    let first = env.environment.promotion.as_ref()?.from.as_str();
    if first == name {
        return None; // reported with the file's own checks
    }
    let mut chain = vec![name.as_str()];
    let mut next = Some(first);
    while let Some(current) = next {
        match from_of(current) {
            None => {
                let known: Vec<&str> = environments
                    .iter()
                    .map(|e| e.environment.name.as_str())
                    .collect();
                return Some(format!(
                    "{current:?} is not an environment (known: {})",
                    known.join(", ")
                ));
            }
            Some(_) if chain.contains(&current) => {
                chain.push(current);
                return Some(format!("the promotion chain loops: {}", chain.join(" <- ")));
            }
            Some(before) => {
                chain.push(current);
                next = before;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label_problem("app1-web", 63), None);
        assert_eq!(dns_label_problem("a", 63), None);
        for bad in ["", "App", "a_b", "-a", "a-", "a.b"] {
            assert!(dns_label_problem(bad, 63).is_some(), "{bad:?} passed");
        }
        let long = "a".repeat(54);
        assert!(dns_label_problem(&long, MAX_RELEASE_NAME)
            .is_some_and(|m| m.contains("54 characters long; at most 53")));
    }

    #[test]
    fn dns_subdomains() {
        assert_eq!(dns_subdomain_problem("app1-web"), None);
        assert_eq!(dns_subdomain_problem("web.app1"), None);
        for bad in ["", "Web", "a..b", ".a", "a_b"] {
            assert!(dns_subdomain_problem(bad).is_some(), "{bad:?} passed");
        }
    }

    #[test]
    fn nearest_suggests_only_likely_typos() {
        let known = ["prod-europe-west1", "prod-paris-dc1", "default"];
        assert_eq!(
            nearest("prod-europe-wset1", known.iter().copied()),
            Some("prod-europe-west1")
        );
        assert_eq!(nearest("defualt", known.iter().copied()), Some("default"));
        assert_eq!(nearest("staging-us", known.iter().copied()), None);
    }

    #[test]
    fn kv_v2_api_paths() {
        assert!(kv_v2_api_path("kv/data/app/db", "kv"));
        assert!(kv_v2_api_path("kv/metadata/app/db", "kv"));
        assert!(!kv_v2_api_path("kv/app/data/db", "kv"));
    }
}
