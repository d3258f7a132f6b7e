//! Which secret each cluster needs, from where: a descriptor's `secrets` list applied to
//! an environment's clusters, paths rendered, checked and split from the KV mount. No
//! Vault here: the plan is what `secrets policy` prints and what the reads are made from.

use super::client::api_path;
use super::error::VaultError;
use crate::config::{check_release_for_environment, KvConfig, LoadedEnvironment, LoadedRelease};
use std::collections::{BTreeMap, BTreeSet};

/// One secret for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSecret {
    /// The cluster's kube context.
    pub context: String,
    pub secret_id: String,
    /// The rendered path, mount included, as the descriptor writes it: `kv/prod/app1/db`.
    pub path: String,
    /// The same path under the KV mount: `prod/app1/db`.
    pub relative: String,
    pub key: String,
    /// KV v2 only: the pinned version.
    pub version: Option<u64>,
}

impl PlannedSecret {
    pub fn read_key(&self) -> ReadKey {
        ReadKey {
            relative: self.relative.clone(),
            version: self.version,
        }
    }
}

/// One read from Vault: a path under the mount, at a version or the latest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadKey {
    pub relative: String,
    pub version: Option<u64>,
}

/// Every secret of one release for every cluster of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretPlan {
    pub release: String,
    pub environment: String,
    /// The environment's KV settings; `None` when the release maps no secrets and the
    /// environment has no `vault:` section.
    pub kv: Option<KvConfig>,
    /// In the environment's cluster order, then the descriptor's secret order.
    pub entries: Vec<PlannedSecret>,
    /// The environment's `vault.record_key` path (mount included): read by every run
    /// that writes or checks records, so part of the policy.
    pub record_key: Option<String>,
}

impl SecretPlan {
    /// Applies the release's `secrets` to every cluster of the environment: the entry
    /// named after the cluster's context, else `default`; the path rendered with
    /// Handlebars (strict) over the cluster's globals. The checks a descriptor must pass
    /// anyway (a source for every cluster, paths that render inside the KV mount,
    /// version pins only on KV v2) are the config module's; this adds what only matters
    /// to Vault: characters a read or a policy would misread. Every problem is reported.
    pub fn build(
        release: &LoadedRelease,
        env: &LoadedEnvironment,
    ) -> Result<SecretPlan, VaultError> {
        check_release_for_environment(release, env)?;
        let environment = &env.environment;
        let spec = &release.descriptor.spec;
        let mut plan = SecretPlan {
            release: release.descriptor.metadata.name.clone(),
            environment: environment.name.clone(),
            kv: environment.vault.as_ref().map(|v| v.kv.clone()),
            entries: Vec::new(),
            record_key: environment
                .vault
                .as_ref()
                .and_then(|v| v.record_key.as_ref())
                .map(|k| k.path.clone()),
        };
        let Some(kv) = plan.kv.clone() else {
            // The config check allows no vault section only when nothing is mapped.
            return Ok(plan);
        };
        // (field, message) → the clusters it holds for: a default entry that fails alike
        // in every cluster is said once.
        let mut problems: Vec<(String, String, Vec<&str>)> = Vec::new();
        for cluster in &environment.clusters {
            for (i, mapping) in spec.secrets.iter().enumerate() {
                let Some(source) = mapping.source_for(&cluster.context) else {
                    continue;
                };
                let j = mapping
                    .contexts
                    .iter()
                    .position(|c| std::ptr::eq(c, source))
                    .unwrap_or_default();
                let checked = source.vault_path_for(cluster).and_then(|path| {
                    check_path(&path)?;
                    let relative = path
                        .strip_prefix(kv.mount.as_str())
                        .and_then(|rest| rest.strip_prefix('/'))
                        .filter(|rest| !rest.is_empty())
                        .ok_or_else(|| format!("is not under the KV mount {:?}", kv.mount))?
                        .to_string();
                    Ok((path, relative))
                });
                match checked {
                    Ok((path, relative)) => plan.entries.push(PlannedSecret {
                        context: cluster.context.clone(),
                        secret_id: mapping.secret_id.clone(),
                        path,
                        relative,
                        key: source.vault_key.clone(),
                        version: source.version,
                    }),
                    Err(message) => {
                        let field = format!("spec.secrets[{i}].contexts[{j}].vaultPath");
                        let message = format!(
                            "{:?} (secret_id {}) {message}",
                            source.vault_path, mapping.secret_id
                        );
                        match problems
                            .iter_mut()
                            .find(|(f, m, _)| *f == field && *m == message)
                        {
                            Some((_, _, clusters)) => clusters.push(&cluster.context),
                            None => problems.push((field, message, vec![&cluster.context])),
                        }
                    }
                }
            }
        }
        let errors = problems
            .into_iter()
            .map(|(field, message, clusters)| VaultError::Mapping {
                file: release.file.clone(),
                field,
                message: format!("{message} (for cluster {})", clusters.join(", ")),
            })
            .collect();
        match VaultError::from_many(errors) {
            Some(err) => Err(err),
            None => Ok(plan),
        }
    }

    /// Keeps the entries of the clusters `keep` accepts (`template --cluster`).
    pub fn retain_contexts(&mut self, keep: impl Fn(&str) -> bool) {
        self.entries.retain(|e| keep(&e.context));
    }

    /// The distinct reads the plan needs: each once, however many clusters use it.
    pub fn reads(&self) -> BTreeSet<ReadKey> {
        self.entries.iter().map(PlannedSecret::read_key).collect()
    }

    /// The secrets of one cluster.
    pub fn for_context<'a>(&'a self, context: &'a str) -> impl Iterator<Item = &'a PlannedSecret> {
        self.entries.iter().filter(move |e| e.context == context)
    }

    /// The minimal Vault policy (HCL) for this plan: `read` on exactly the paths it
    /// reads, KV v2 paths under `data/`, each commented with the secret_ids (and their
    /// contexts) that use it. Reading a pinned version goes through the same `data/` path
    /// (`?version=N`), so no `metadata/` capability is needed.
    pub fn policy(&self) -> String {
        let mut text = format!(
            "# Vault policy for release {} in environment {}, written by `flotilla secrets policy`.\n\
             # Read-only, on exactly the paths the release's secret mappings resolve to for the\n\
             # clusters of {}.\n",
            self.release, self.environment, self.environment
        );
        let Some(kv) = &self.kv else {
            text.push_str("# The release maps no secrets: it needs no access to Vault.\n");
            return text;
        };
        if kv.version == 2 {
            text.push_str(&format!(
                "# KV v2 mount {:?}: secret data is read under {}/data/.\n",
                kv.mount,
                kv.mount.trim_matches('/')
            ));
        }
        if self.entries.is_empty() && self.record_key.is_none() {
            text.push_str("# The release maps no secrets: it needs no access to Vault.\n");
            return text;
        }
        if let Some(path) = &self.record_key {
            let relative = path
                .strip_prefix(kv.mount.as_str())
                .map_or(path.as_str(), |rest| rest.trim_start_matches('/'));
            text.push_str(&format!(
                "\n# vault.record_key: every deploy and rollback signs its records with it, and\n\
                 # promote and rollback check them. Whoever may write Secrets in the release's\n\
                 # namespace must not be able to read it.\npath \"{}\" {{\n  capabilities = [\"read\"]\n}}\n",
                api_path(kv, relative).replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }
        let mut paths: BTreeMap<String, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        for entry in &self.entries {
            paths
                .entry(api_path(kv, &entry.relative))
                .or_default()
                .entry(&entry.secret_id)
                .or_default()
                .insert(&entry.context);
        }
        for (path, users) in paths {
            text.push('\n');
            for (secret_id, contexts) in users {
                let contexts: Vec<&str> = contexts.into_iter().collect();
                text.push_str(&format!("# {secret_id}: {}\n", contexts.join(", ")));
            }
            text.push_str(&format!(
                "path \"{}\" {{\n  capabilities = [\"read\"]\n}}\n",
                path.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }
        text
    }
}

/// What is wrong with a path a record says a secret of it was read from, checked as the
/// descriptor's paths are ([`kv_path_problem`](crate::config::kv_path_problem) and the
/// characters of [`check_path`]): inside the environment's KV mount, `relative` that
/// same path under it, no `.`, `..` or empty segment, nothing a read would misread.
pub fn check_recorded_path(
    path: &str,
    relative: &str,
    kv: &KvConfig,
    environment: &str,
) -> Result<(), String> {
    if let Some(message) = crate::config::kv_path_problem(path, kv, environment) {
        return Err(message);
    }
    check_path(path).map_err(|message| format!("the path {path:?} {message}"))?;
    let under = path
        .strip_prefix(kv.mount.as_str())
        .and_then(|rest| rest.strip_prefix('/'));
    if under != Some(relative) {
        return Err(format!(
            "the path {path:?} is read as {relative:?} under the mount {:?}, which is not that path",
            kv.mount
        ));
    }
    Ok(())
}

/// Characters that would change what a read or a policy means: `*` and `+` are policy
/// wildcards, `?` and `#` end a URL path, quotes and backslashes break the HCL.
fn check_path(path: &str) -> Result<(), String> {
    if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "*+?#%\"\\".contains(*c))
    {
        return Err(format!(
            "renders to {path:?}: a Vault path or policy would misread its {c:?}"
        ));
    }
    if path
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(
            "has an empty, `.` or `..` segment (a leading, trailing or double `/`?)".to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        Cluster, Environment, Globals, ReleaseDescriptor, ReleaseMetadata, ReleaseSpec,
        SecretMapping, SecretSource, VaultAuth, VaultConfig,
    };
    use std::path::PathBuf;

    fn cluster(context: &str, env: &str) -> Cluster {
        Cluster {
            context: context.to_string(),
            wave: 0,
            global: Globals {
                cloud: true,
                env: env.to_string(),
                region: "r1".to_string(),
                cluster_name: context.to_string(),
                extra: Default::default(),
            },
        }
    }

    fn environment(kv_version: u8) -> LoadedEnvironment {
        LoadedEnvironment {
            file: PathBuf::from("environments/prod.yaml"),
            environment: Environment {
                name: "prod".to_string(),
                branch: None,
                vault: Some(VaultConfig {
                    address: None,
                    namespace: None,
                    auth: VaultAuth::Token,
                    kv: KvConfig {
                        mount: "kv".to_string(),
                        version: kv_version,
                    },
                    record_key: None,
                }),
                rollout: Default::default(),
                promotion: None,
                clusters: vec![
                    cluster("prod-a", "prod"),
                    cluster("prod-b", "prod"),
                    cluster("prod-dc", "prod"),
                ],
                notify: Vec::new(),
                freeze: None,
            },
        }
    }

    fn source(name: &str, path: &str, key: &str, version: Option<u64>) -> SecretSource {
        SecretSource {
            name: name.to_string(),
            vault_path: path.to_string(),
            vault_key: key.to_string(),
            version,
        }
    }

    fn mapping(secret_id: &str, contexts: Vec<SecretSource>) -> SecretMapping {
        SecretMapping {
            secret_id: secret_id.to_string(),
            contexts,
        }
    }

    fn release(secrets: Vec<SecretMapping>) -> LoadedRelease {
        LoadedRelease {
            file: PathBuf::from("releases/app1/release.yaml"),
            chart_dir: PathBuf::from("releases/app1/chart"),
            descriptor: ReleaseDescriptor {
                api_version: "flotilla/v1".to_string(),
                kind: "Release".to_string(),
                metadata: ReleaseMetadata {
                    name: "app1".to_string(),
                    namespace: "ns1".to_string(),
                },
                spec: ReleaseSpec {
                    chart: "./chart".to_string(),
                    version: "1.0.0".to_string(),
                    values: serde_yaml_ng::Value::Null,
                    environments: Default::default(),
                    scaling: vec![],
                    secrets,
                    chart_type: None,
                    chart_version: None,
                    repository: None,
                    chart_pull: None,
                },
            },
        }
    }

    fn db_and_api() -> LoadedRelease {
        release(vec![
            mapping(
                "db-password",
                vec![
                    source("default", "kv/{{global.env}}/app1/db", "password", None),
                    source("prod-dc", "kv/prod/app1/db-onprem", "password", None),
                ],
            ),
            mapping(
                "api-token",
                vec![source(
                    "default",
                    "kv/{{global.env}}/app1/api",
                    "token",
                    None,
                )],
            ),
        ])
    }

    #[test]
    fn own_context_entry_wins_over_default_and_paths_render_over_globals() {
        let plan =
            SecretPlan::build(&db_and_api(), &environment(1)).unwrap_or_else(|e| panic!("{e}"));
        let db: Vec<(&str, &str, &str)> = plan
            .entries
            .iter()
            .filter(|e| e.secret_id == "db-password")
            .map(|e| (e.context.as_str(), e.path.as_str(), e.relative.as_str()))
            .collect();
        assert_eq!(
            db,
            vec![
                ("prod-a", "kv/prod/app1/db", "prod/app1/db"),
                ("prod-b", "kv/prod/app1/db", "prod/app1/db"),
                ("prod-dc", "kv/prod/app1/db-onprem", "prod/app1/db-onprem"),
            ]
        );
        assert_eq!(plan.entries.len(), 6);
        let reads: Vec<String> = plan.reads().into_iter().map(|r| r.relative).collect();
        assert_eq!(
            reads,
            vec!["prod/app1/api", "prod/app1/db", "prod/app1/db-onprem"]
        );
    }

    #[test]
    fn descriptor_problems_are_the_config_checks_and_exit_2() {
        let bad = release(vec![
            mapping("only-dc", vec![source("prod-dc", "kv/prod/x", "k", None)]),
            mapping(
                "typo",
                vec![source("default", "kv/{{global.enviroment}}/x", "k", None)],
            ),
            mapping("pinned", vec![source("default", "kv/prod/x", "k", Some(3))]),
        ]);
        let err = SecretPlan::build(&bad, &environment(1))
            .err()
            .unwrap_or_else(|| panic!("no error"));
        assert!(matches!(err, VaultError::Config(_)), "{err:?}");
        assert_eq!(
            crate::exit::Classify::exit_kind(&err),
            crate::exit::ExitKind::UserError
        );
        let text = err.to_string();
        for expected in [
            "releases/app1/release.yaml",
            "spec.secrets[0].contexts",
            "\"prod-a\"",
            "spec.secrets[1].contexts[0].vaultPath",
            "global.enviroment",
            "spec.secrets[2].contexts[0].version",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn paths_a_policy_would_read_as_wildcards_are_refused() {
        let bad = release(vec![
            mapping("wild", vec![source("default", "kv/prod/*", "k", None)]),
            mapping(
                "plus",
                vec![source(
                    "default",
                    "kv/{{global.clusterName}}+x/db",
                    "k",
                    None,
                )],
            ),
        ]);
        let err = SecretPlan::build(&bad, &environment(1))
            .err()
            .unwrap_or_else(|| panic!("no error"));
        assert_eq!(
            crate::exit::Classify::exit_kind(&err),
            crate::exit::ExitKind::UserError
        );
        let text = err.to_string();
        assert!(
            text.contains(
                "releases/app1/release.yaml: spec.secrets[0].contexts[0].vaultPath: \"kv/prod/*\" (secret_id wild) renders to \"kv/prod/*\": a Vault path or policy would misread its '*' (for cluster prod-a, prod-b, prod-dc)"
            ),
            "{text}"
        );
        // Said once: the default entry renders alike in every cluster.
        assert_eq!(text.matches("secret_id wild").count(), 1, "{text}");
        // Said per cluster: the rendered path differs.
        assert_eq!(text.matches("secret_id plus").count(), 3, "{text}");
    }

    #[test]
    fn a_release_without_secrets_needs_no_vault() {
        let mut env = environment(1);
        env.environment.vault = None;
        let plan = SecretPlan::build(&release(vec![]), &env).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.entries.is_empty());
        assert!(plan.policy().contains("needs no access to Vault"));
        let err = SecretPlan::build(&db_and_api(), &env)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("no `vault:` section")),
            "{err:?}"
        );
    }

    #[test]
    fn policy_reads_exactly_the_needed_paths_sorted_with_their_users() {
        let plan =
            SecretPlan::build(&db_and_api(), &environment(1)).unwrap_or_else(|e| panic!("{e}"));
        let expected = "\
# Vault policy for release app1 in environment prod, written by `flotilla secrets policy`.
# Read-only, on exactly the paths the release's secret mappings resolve to for the
# clusters of prod.

# api-token: prod-a, prod-b, prod-dc
path \"kv/prod/app1/api\" {
  capabilities = [\"read\"]
}

# db-password: prod-a, prod-b
path \"kv/prod/app1/db\" {
  capabilities = [\"read\"]
}

# db-password: prod-dc
path \"kv/prod/app1/db-onprem\" {
  capabilities = [\"read\"]
}
";
        pretty_assertions::assert_eq!(plan.policy(), expected);
    }

    #[test]
    fn the_record_key_is_in_the_policy_even_of_a_release_without_secrets() {
        let mut env = environment(2);
        if let Some(vault) = env.environment.vault.as_mut() {
            vault.record_key = Some(crate::config::RecordKeyRef {
                path: "kv/flotilla/prod/record-key".into(),
                key: "hmac".into(),
            });
        }
        let plan = SecretPlan::build(&release(Vec::new()), &env).unwrap_or_else(|e| panic!("{e}"));
        let policy = plan.policy();
        assert!(
            policy.contains(
                "path \"kv/data/flotilla/prod/record-key\" {\n  capabilities = [\"read\"]\n}"
            ) && !policy.contains("needs no access to Vault"),
            "{policy}"
        );
    }

    #[test]
    fn recorded_paths_are_checked_as_descriptor_paths_are() {
        let kv = KvConfig {
            mount: "kv".into(),
            version: 1,
        };
        assert_eq!(
            check_recorded_path("kv/prod/app1/db", "prod/app1/db", &kv, "prod"),
            Ok(())
        );
        for (path, relative, why) in [
            ("secret/prod/db", "prod/db", "not under the KV mount \"kv\""),
            (
                "kv/../sys/raw/core/keyring",
                "../sys/raw/core/keyring",
                "`..` segment",
            ),
            ("kv/prod/./db", "prod/./db", "`..` segment"),
            ("kv/prod//db", "prod//db", "empty segment"),
            ("kv/prod/*", "prod/*", "would misread"),
            (
                "kv/prod/app1/db",
                "other-team/db",
                "is read as \"other-team/db\"",
            ),
        ] {
            let err = check_recorded_path(path, relative, &kv, "prod").unwrap_err();
            assert!(err.contains(why), "{path}: {err}");
        }
        let kv2 = KvConfig {
            mount: "kv".into(),
            version: 2,
        };
        assert!(
            check_recorded_path("kv/data/prod/db", "data/prod/db", &kv2, "prod")
                .unwrap_err()
                .contains("without data/")
        );
    }

    #[test]
    fn kv2_policy_names_data_paths_once_whatever_the_pinned_versions() {
        let pinned = release(vec![
            mapping(
                "old",
                vec![source("default", "kv/prod/app1/db", "password", Some(1))],
            ),
            mapping(
                "new",
                vec![source("default", "kv/prod/app1/db", "password", None)],
            ),
        ]);
        let plan = SecretPlan::build(&pinned, &environment(2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.reads().len(), 2, "two versions, two reads");
        let policy = plan.policy();
        assert_eq!(policy.matches("path \"").count(), 1, "{policy}");
        assert!(policy.contains("path \"kv/data/prod/app1/db\""), "{policy}");
        assert!(
            policy.contains("# new: prod-a, prod-b, prod-dc\n# old: prod-a, prod-b, prod-dc\n"),
            "{policy}"
        );
        assert!(!policy.contains("metadata"), "{policy}");
    }
}
