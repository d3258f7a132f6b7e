//! `spec.secrets`: each mapping on its own, and for one environment, a source for every
//! cluster whose Vault path is inside the environment's KV mount.

use super::names::quoted_list;
use super::problems::Problems;
use super::vault::{check_vault_path_syntax, kv_path_problem};
use crate::config::yaml::FieldPath;
use crate::config::{
    ConfigError, LoadedEnvironment, LoadedRelease, SecretMapping, DEFAULT_CONTEXT,
};
use std::collections::BTreeMap;

/// `spec.secrets` on its own: ids and sources given once each, with a Vault path that
/// can be rendered, a key and a version that exists.
pub(super) fn check_secrets(problems: &mut Problems, at: &FieldPath, secrets: &[SecretMapping]) {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, secret) in secrets.iter().enumerate() {
        let at = at.index(i);
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
            check_vault_path_syntax(problems, &src.key("vaultPath"), &source.vault_path);
            if source.vault_key.trim().is_empty() {
                problems.add(&src.key("vaultKey"), "must not be empty");
            }
            if source.version == Some(0) {
                problems.add(&src.key("version"), "KV v2 versions start at 1");
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn ids_and_sources_are_given_once_with_a_key_and_a_version_that_exists() {
        let secrets = "  secrets:
    - secret_id: db.password
      contexts: []
    - secret_id: api
      contexts:
        - { name: default, vaultPath: kv/api, vaultKey: \" \", version: 0 }
        - { name: default, vaultPath: /kv/api, vaultKey: token }
    - secret_id: api
      contexts: [ { name: \"\", vaultPath: kv/x, vaultKey: k } ]
";
        let text = APP1.split("  secrets:").next().unwrap().to_string() + secrets;
        assert_eq!(
            release_problems(&text),
            [
                "releases/app1/release.yaml:8: spec.secrets[0].secret_id: \"db.password\" is not a valid secret_id: use letters, digits, '-' and '_'",
                "releases/app1/release.yaml:9: spec.secrets[0].contexts: a secret needs at least one source: a context name (or \"default\") with vaultPath and vaultKey",
                "releases/app1/release.yaml:12: spec.secrets[1].contexts[0].vaultKey: must not be empty",
                "releases/app1/release.yaml:12: spec.secrets[1].contexts[0].version: KV v2 versions start at 1",
                "releases/app1/release.yaml:13: spec.secrets[1].contexts[1].name: \"default\" already has a source in contexts[0] of this secret",
                "releases/app1/release.yaml:13: spec.secrets[1].contexts[1].vaultPath: \"/kv/api\": write the path without a leading '/', starting with the KV mount",
                "releases/app1/release.yaml:14: spec.secrets[2].secret_id: \"api\" is already the secret_id of spec.secrets[1]",
                "releases/app1/release.yaml:15: spec.secrets[2].contexts[0].name: must not be empty",
            ]
        );
    }

    fn for_environment(release: &str, environment: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("release.yaml");
        std::fs::write(&file, release).unwrap();
        let release = LoadedRelease {
            file: file.clone(),
            chart_dir: PathBuf::from("chart"),
            descriptor: super::super::problems::testing::release(release),
        };
        let env = LoadedEnvironment {
            file: PathBuf::from("environments/dev.yaml"),
            environment: super::super::problems::testing::environment(environment),
        };
        let shown = file.display().to_string();
        messages(check_release_for_environment(&release, &env))
            .into_iter()
            .map(|m| m.replace(&shown, "release.yaml"))
            .collect()
    }

    #[test]
    fn every_cluster_has_a_source_inside_the_kv_mount() {
        assert_eq!(for_environment(APP1, DEV), Vec::<String>::new());
        let own = APP1.replace("name: default", "name: dev-west");
        assert_eq!(
            for_environment(&own, DEV),
            ["release.yaml:10: spec.secrets[0].contexts: for cluster \"dev-east\": secret \"db\" has no source in environment \"dev\": add a \"default\" source or one per cluster"]
        );
        let outside = APP1.replace("kv/{{global.env}}", "secret/{{global.env}}");
        assert_eq!(
            for_environment(&outside, DEV),
            ["release.yaml:10: spec.secrets[0].contexts[0].vaultPath: for clusters \"dev-west\", \"dev-east\": the path is \"secret/dev/app1/db\", which is not under the KV mount \"kv\" of environment \"dev\"; start it with \"kv/\""]
        );
        let unknown_global = APP1.replace("global.env", "global.zone");
        assert_eq!(
            for_environment(&unknown_global, DEV),
            ["release.yaml:10: spec.secrets[0].contexts[0].vaultPath: for clusters \"dev-west\", \"dev-east\": {{global.zone}}: there is no such global (the globals are global.cloud, global.env, global.region, global.clusterName)"]
        );
    }

    #[test]
    fn a_version_pin_needs_kv_v2_and_secrets_need_vault() {
        let pinned = APP1.replace("vaultKey: password", "vaultKey: password, version: 3");
        let kv1 = DEV.replace("version: 2", "version: 1");
        assert_eq!(
            for_environment(&pinned, &kv1),
            ["release.yaml:10: spec.secrets[0].contexts[0].version: for clusters \"dev-west\", \"dev-east\": a version pin needs KV v2, but environment \"dev\" reads KV v1 (vault.kv.version in environments/dev.yaml)"]
        );
        let no_vault = DEV.replace(
            "vault:\n  address: https://vault.example:8200\n  kv: { mount: kv, version: 2 }\n",
            "",
        );
        assert_eq!(
            for_environment(APP1, &no_vault),
            ["release.yaml:8: spec.secrets: the release reads secrets from Vault but environments/dev.yaml has no `vault:` section"]
        );
    }
}
