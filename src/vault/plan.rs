//! Which secret each cluster needs, from where: a descriptor's `secrets` list applied to
//! an environment's clusters, paths rendered, checked and split from the KV mount. No
//! Vault here: the plan is what `secrets policy` prints and what the reads are made from.

use super::client::api_path;
use super::error::VaultError;
use crate::config::{Environment, KvConfig, ReleaseSpec, DEFAULT_CONTEXT};
use handlebars::Handlebars;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

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
}

impl SecretPlan {
    /// Applies `spec.secrets` to every cluster of `environment`: the entry named after the
    /// cluster's context, else `default`; the path rendered with Handlebars (strict) over
    /// the cluster's globals. Every problem found is reported, each naming the
    /// descriptor, the field and the cluster.
    pub fn build(
        release_name: &str,
        release_file: &Path,
        spec: &ReleaseSpec,
        env_file: &Path,
        environment: &Environment,
    ) -> Result<SecretPlan, VaultError> {
        let mut plan = SecretPlan {
            release: release_name.to_string(),
            environment: environment.name.clone(),
            kv: environment.vault.as_ref().map(|v| v.kv.clone()),
            entries: Vec::new(),
        };
        if spec.secrets.is_empty() {
            return Ok(plan);
        }
        let Some(kv) = plan.kv.clone() else {
            return Err(VaultError::NotConfigured {
                file: env_file.to_path_buf(),
                env: environment.name.clone(),
            });
        };
        let mount = kv.mount.trim_matches('/');
        let mut errors = duplicate_errors(release_file, spec);
        if kv.version != 1 && kv.version != 2 {
            errors.push(VaultError::Setting {
                origin: format!("{}: vault.kv.version", env_file.display()),
                message: format!("{} is not a KV version: write 1 or 2", kv.version),
            });
        }
        let mut templates = Handlebars::new();
        templates.set_strict_mode(true);
        templates.register_escape_fn(handlebars::no_escape);
        let mapping_error = |field: String, message: String| VaultError::Mapping {
            file: release_file.to_path_buf(),
            field,
            message,
        };

        for cluster in &environment.clusters {
            let data = serde_json::json!({ "global": &cluster.global });
            for (i, mapping) in spec.secrets.iter().enumerate() {
                let Some(source) = mapping.source_for(&cluster.context) else {
                    errors.push(mapping_error(
                        format!("spec.secrets[{i}] ({})", mapping.secret_id),
                        format!(
                            "no entry for context {:?} of environment {:?} and no {DEFAULT_CONTEXT:?} entry",
                            cluster.context, environment.name
                        ),
                    ));
                    continue;
                };
                let j = mapping
                    .contexts
                    .iter()
                    .position(|c| std::ptr::eq(c, source))
                    .unwrap_or_default();
                let field = format!("spec.secrets[{i}].contexts[{j}]");
                let path = match templates.render_template(&source.vault_path, &data) {
                    Ok(path) => path,
                    Err(err) => {
                        errors.push(mapping_error(
                            format!("{field}.vaultPath"),
                            format!(
                                "{:?} does not render for context {:?} (secret_id {}): {}",
                                source.vault_path,
                                cluster.context,
                                mapping.secret_id,
                                one_line(&err.to_string())
                            ),
                        ));
                        continue;
                    }
                };
                if let Err(message) = check_path(&path) {
                    errors.push(mapping_error(
                        format!("{field}.vaultPath"),
                        format!(
                            "{path:?} (context {:?}, secret_id {}) {message}",
                            cluster.context, mapping.secret_id
                        ),
                    ));
                    continue;
                }
                let Some(relative) = path
                    .strip_prefix(mount)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .filter(|rest| !rest.is_empty())
                else {
                    errors.push(mapping_error(
                        format!("{field}.vaultPath"),
                        format!(
                            "{path:?} (context {:?}, secret_id {}) is not under the KV mount {mount:?} \
                             that {} configures (vault.kv.mount); write it as {mount}/<path>",
                            cluster.context,
                            mapping.secret_id,
                            env_file.display()
                        ),
                    ));
                    continue;
                };
                if source.vault_key.is_empty() {
                    errors.push(mapping_error(
                        format!("{field}.vaultKey"),
                        "is empty: name the key of the secret to use".to_string(),
                    ));
                    continue;
                }
                if source.version.is_some() && kv.version == 1 {
                    errors.push(mapping_error(
                        format!("{field}.version"),
                        format!(
                            "pins version {} but environment {:?} uses KV v1, which has no versions",
                            source.version.unwrap_or_default(),
                            environment.name
                        ),
                    ));
                    continue;
                }
                plan.entries.push(PlannedSecret {
                    context: cluster.context.clone(),
                    secret_id: mapping.secret_id.clone(),
                    relative: relative.to_string(),
                    path,
                    key: source.vault_key.clone(),
                    version: source.version,
                });
            }
        }
        // One message per problem: a bad default entry fails the same way in every cluster.
        let mut seen = HashSet::new();
        errors.retain(|e| seen.insert(e.to_string()));
        match VaultError::from_many(errors) {
            Some(err) => Err(err),
            None => Ok(plan),
        }
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
        if self.entries.is_empty() {
            text.push_str("# The release maps no secrets: it needs no access to Vault.\n");
            return text;
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

/// A secret_id twice, or a context named twice in one mapping: the second would be
/// silently ignored.
fn duplicate_errors(release_file: &Path, spec: &ReleaseSpec) -> Vec<VaultError> {
    let file = PathBuf::from(release_file);
    let mut errors = Vec::new();
    let mut ids = HashSet::new();
    for (i, mapping) in spec.secrets.iter().enumerate() {
        if !ids.insert(mapping.secret_id.as_str()) {
            errors.push(VaultError::Mapping {
                file: file.clone(),
                field: format!("spec.secrets[{i}].secret_id"),
                message: format!("{:?} is mapped twice", mapping.secret_id),
            });
        }
        let mut names = HashSet::new();
        for (j, source) in mapping.contexts.iter().enumerate() {
            if !names.insert(source.name.as_str()) {
                errors.push(VaultError::Mapping {
                    file: file.clone(),
                    field: format!("spec.secrets[{i}].contexts[{j}].name"),
                    message: format!(
                        "context {:?} appears twice for secret_id {}",
                        source.name, mapping.secret_id
                    ),
                });
            }
        }
    }
    errors
}

/// Characters that would change what a read or a policy means: `*` and `+` are policy
/// wildcards, `?` and `#` end a URL path, quotes and backslashes break the HCL.
fn check_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("renders empty".to_string());
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "*+?#%\"\\".contains(*c))
    {
        return Err(format!(
            "holds {c:?}, which a Vault path or policy would misread"
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

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cluster, Globals, SecretMapping, SecretSource, VaultAuth, VaultConfig};

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

    fn environment(kv_version: u8) -> Environment {
        Environment {
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
            }),
            rollout: Default::default(),
            clusters: vec![
                cluster("prod-a", "prod"),
                cluster("prod-b", "prod"),
                cluster("prod-dc", "prod"),
            ],
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

    fn spec(secrets: Vec<SecretMapping>) -> ReleaseSpec {
        ReleaseSpec {
            chart: "./chart".to_string(),
            version: "1.0.0".to_string(),
            values: serde_yaml::Value::Null,
            environments: Default::default(),
            scaling: vec![],
            secrets,
        }
    }

    fn db_and_api() -> ReleaseSpec {
        spec(vec![
            SecretMapping {
                secret_id: "db-password".to_string(),
                contexts: vec![
                    source("default", "kv/{{global.env}}/app1/db", "password", None),
                    source("prod-dc", "kv/prod/app1/db-onprem", "password", None),
                ],
            },
            SecretMapping {
                secret_id: "api-token".to_string(),
                contexts: vec![source(
                    "default",
                    "kv/{{global.env}}/app1/api",
                    "token",
                    None,
                )],
            },
        ])
    }

    fn build(spec: &ReleaseSpec, env: &Environment) -> Result<SecretPlan, VaultError> {
        SecretPlan::build(
            "app1",
            Path::new("releases/app1/release.yaml"),
            spec,
            Path::new("environments/prod.yaml"),
            env,
        )
    }

    #[test]
    fn own_context_entry_wins_over_default_and_paths_render_over_globals() {
        let plan = build(&db_and_api(), &environment(1)).unwrap_or_else(|e| panic!("{e}"));
        let db: Vec<(&str, &str)> = plan
            .entries
            .iter()
            .filter(|e| e.secret_id == "db-password")
            .map(|e| (e.context.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            db,
            vec![
                ("prod-a", "kv/prod/app1/db"),
                ("prod-b", "kv/prod/app1/db"),
                ("prod-dc", "kv/prod/app1/db-onprem"),
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
    fn every_mapping_problem_is_reported_with_file_field_and_context() {
        let bad = spec(vec![
            SecretMapping {
                secret_id: "only-dc".to_string(),
                contexts: vec![source("prod-dc", "kv/prod/x", "k", None)],
            },
            SecretMapping {
                secret_id: "typo".to_string(),
                contexts: vec![source("default", "kv/{{global.enviroment}}/x", "k", None)],
            },
            SecretMapping {
                secret_id: "outside".to_string(),
                contexts: vec![source("default", "secret/prod/x", "k", None)],
            },
            SecretMapping {
                secret_id: "pinned".to_string(),
                contexts: vec![source("default", "kv/prod/x", "k", Some(3))],
            },
            SecretMapping {
                secret_id: "wild".to_string(),
                contexts: vec![source("default", "kv/prod/*", "k", None)],
            },
        ]);
        let err = build(&bad, &environment(1))
            .err()
            .unwrap_or_else(|| panic!("no error"));
        assert_eq!(err.exit_kind(), crate::error::ExitKind::UserError);
        let text = err.to_string();
        for expected in [
            "releases/app1/release.yaml: spec.secrets[0] (only-dc): no entry for context \"prod-a\" of environment \"prod\" and no \"default\" entry",
            "releases/app1/release.yaml: spec.secrets[1].contexts[0].vaultPath: \"kv/{{global.enviroment}}/x\" does not render for context \"prod-a\" (secret_id typo)",
            "spec.secrets[2].contexts[0].vaultPath: \"secret/prod/x\" (context \"prod-a\", secret_id outside) is not under the KV mount \"kv\"",
            "spec.secrets[3].contexts[0].version: pins version 3 but environment \"prod\" uses KV v1",
            "spec.secrets[4].contexts[0].vaultPath: \"kv/prod/*\" (context \"prod-a\", secret_id wild) holds '*'",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        // A default entry that fails fails alike in every cluster: said once per cluster
        // only where the message differs.
        assert_eq!(text.matches("spec.secrets[3]").count(), 1, "{text}");
    }

    #[test]
    fn no_vault_section_with_secrets_is_a_configuration_error() {
        let mut env = environment(1);
        env.vault = None;
        let err = build(&db_and_api(), &env).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("environments/prod.yaml: the release maps secrets, but environment \"prod\" has no `vault:` section (address, auth, kv)")
        );
        let plan = build(&spec(vec![]), &env).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.entries.is_empty());
    }

    #[test]
    fn policy_reads_exactly_the_needed_paths_sorted_with_their_users() {
        let plan = build(&db_and_api(), &environment(1)).unwrap_or_else(|e| panic!("{e}"));
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
    fn kv2_policy_names_data_paths_once_whatever_the_pinned_versions() {
        let pinned = spec(vec![
            SecretMapping {
                secret_id: "old".to_string(),
                contexts: vec![source("default", "kv/prod/app1/db", "password", Some(1))],
            },
            SecretMapping {
                secret_id: "new".to_string(),
                contexts: vec![source("default", "kv/prod/app1/db", "password", None)],
            },
        ]);
        let plan = build(&pinned, &environment(2)).unwrap_or_else(|e| panic!("{e}"));
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
