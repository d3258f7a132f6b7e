//! Vault: the environment's `vault` section (address, KV mount, auth, record key) and
//! the one check of every Vault path flotilla reads ([`kv_path_problem`]).

use super::names::is_env_var_name;
use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::{KvConfig, RecordKeyRef, VaultAuth, VaultConfig};

/// `vault`: an address that is a URL, a KV mount and version, an auth method with what
/// it needs, and the record key's path.
pub(super) fn check_vault(
    problems: &mut Problems,
    at: &FieldPath,
    vault: &VaultConfig,
    environment: &str,
) {
    if let Some(address) = &vault.address {
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            problems.add(
                &at.key("address"),
                format!("{address:?} is not a URL; write it as https://vault.example:8200"),
            );
        }
    }
    check_kv(problems, &at.key("kv"), &vault.kv);
    check_auth(problems, &at.key("auth"), &vault.auth);
    if let Some(record_key) = &vault.record_key {
        check_record_key(
            problems,
            &at.key("record_key"),
            record_key,
            vault,
            environment,
        );
    }
}

/// `vault.record_key`: a plain path (no template: one key for the environment) inside
/// the KV mount, and a key.
fn check_record_key(
    problems: &mut Problems,
    at: &FieldPath,
    record_key: &RecordKeyRef,
    vault: &VaultConfig,
    environment: &str,
) {
    let path = &record_key.path;
    if path.trim().is_empty() {
        problems.add(&at.key("path"), "must not be empty");
    } else if path.contains("{{") || path.contains("}}") {
        problems.add(
            &at.key("path"),
            format!("{path:?} is a template; write the one path of the environment's key, as in \"{}/flotilla/{}/record-key\"", vault.kv.mount, environment),
        );
    } else if let Some(message) = kv_path_problem(path, &vault.kv, environment) {
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

/// A descriptor's `vaultPath` as written: relative to no `/`, a template that compiles.
pub(super) fn check_vault_path_syntax(problems: &mut Problems, at: &FieldPath, path: &str) {
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

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;
    use super::*;

    fn with_vault(from: &str, to: &str) -> Vec<String> {
        let text = DEV.replace(from, to);
        assert_ne!(text, DEV, "{from:?} is not in the environment");
        environment_problems(&text)
    }

    #[test]
    fn the_address_is_a_url_and_the_kv_engine_is_one_vault_has() {
        assert_eq!(
            with_vault("https://vault.example:8200", "vault.example:8200"),
            ["environments/dev.yaml:3: vault.address: \"vault.example:8200\" is not a URL; write it as https://vault.example:8200"]
        );
        assert_eq!(
            with_vault("{ mount: kv, version: 2 }", "{ mount: /kv/, version: 3 }"),
            [
                "environments/dev.yaml:4: vault.kv.version: 3 is not a KV version; use 1 or 2",
                "environments/dev.yaml:4: vault.kv.mount: \"/kv/\": write the mount path without leading or trailing '/', as in \"kv\"",
            ]
        );
        assert_eq!(
            with_vault("{ mount: kv,", "{ mount: \" \","),
            ["environments/dev.yaml:4: vault.kv.mount: must not be empty"]
        );
    }

    #[test]
    fn approle_needs_one_source_of_each_id() {
        let auth = |fields: &str| {
            with_vault(
                "  kv:",
                &format!("  auth: {{ method: approle{fields} }}\n  kv:"),
            )
        };
        assert_eq!(
            auth(""),
            ["environments/dev.yaml:4: vault.auth: approle needs the role id: give role_id_env (a variable holding it) or role_id_file"]
        );
        assert_eq!(
            auth(", role_id_env: ROLE, role_id_file: /r, secret_id_env: S-ID, secret_id_file: /s, mount: \"\""),
            [
                "environments/dev.yaml:4: vault.auth.role_id_file: give role_id_env or role_id_file, not both",
                "environments/dev.yaml:4: vault.auth.secret_id_file: give secret_id_env or secret_id_file, not both",
                "environments/dev.yaml:4: vault.auth.secret_id_env: \"S-ID\" is not an environment variable name (letters, digits and '_')",
                "environments/dev.yaml:4: vault.auth.mount: must not be empty",
            ]
        );
    }

    #[test]
    fn kubernetes_auth_needs_a_role() {
        assert_eq!(
            with_vault(
                "  kv:",
                "  auth: { method: kubernetes, role: \" \", jwt_file: \"\" }\n  kv:"
            ),
            [
                "environments/dev.yaml:4: vault.auth.role: must not be empty",
                "environments/dev.yaml:4: vault.auth.jwt_file: must not be empty",
            ]
        );
    }

    #[test]
    fn the_record_key_is_one_plain_path_in_the_mount() {
        let key = |path: &str, key: &str| {
            with_vault(
                "clusters:",
                &format!("  record_key: {{ path: {path}, key: {key} }}\nclusters:"),
            )
        };
        assert_eq!(
            key("kv/flotilla/dev/record-key", "hmac"),
            Vec::<String>::new()
        );
        assert_eq!(
            key("\"kv/{{global.env}}/key\"", "\" \""),
            [
                "environments/dev.yaml:5: vault.record_key.path: \"kv/{{global.env}}/key\" is a template; write the one path of the environment's key, as in \"kv/flotilla/dev/record-key\"",
                "environments/dev.yaml:5: vault.record_key.key: must not be empty; name the key of the secret that holds the HMAC key, as in `hmac`",
            ]
        );
        assert_eq!(
            key("secret/flotilla/key", "hmac"),
            ["environments/dev.yaml:5: vault.record_key.path: the path is \"secret/flotilla/key\", which is not under the KV mount \"kv\" of environment \"dev\"; start it with \"kv/\""]
        );
        assert_eq!(
            key("\"kv/flotilla/key*\"", "hmac"),
            ["environments/dev.yaml:5: vault.record_key.path: \"kv/flotilla/key*\": a Vault path or policy would misread its '*'"]
        );
    }

    fn kv(version: u8) -> KvConfig {
        KvConfig {
            mount: "kv".to_string(),
            version,
        }
    }

    #[test]
    fn a_vault_path_names_one_secret_inside_the_mount() {
        assert_eq!(kv_path_problem("kv/app/db", &kv(2), "dev"), None);
        let problem = |path: &str, version: u8| {
            kv_path_problem(path, &kv(version), "dev").unwrap_or_default()
        };
        assert_eq!(
            problem("kvx/app", 2),
            "the path is \"kvx/app\", which is not under the KV mount \"kv\" of environment \"dev\"; start it with \"kv/\""
        );
        assert_eq!(
            problem("kv/app/../other", 2),
            "the path is \"kv/app/../other\", which has a `.` or `..` segment: a path names one secret under the mount, never a way out of it"
        );
        assert_eq!(
            problem("kv/data/app/db", 2),
            "the path is \"kv/data/app/db\": with KV v2 write the secret's path without data/ or metadata/ (flotilla adds it), as in \"kv/app/db\""
        );
        assert_eq!(kv_path_problem("kv/data/app/db", &kv(1), "dev"), None);
        assert_eq!(
            problem("kv/app//db", 2),
            "the path is \"kv/app//db\", which has an empty segment (an empty global?)"
        );
    }

    #[test]
    fn kv_v2_api_paths() {
        assert!(kv_v2_api_path("kv/data/app/db", "kv"));
        assert!(kv_v2_api_path("kv/metadata/app/db", "kv"));
        assert!(!kv_v2_api_path("kv/app/data/db", "kv"));
    }

    #[test]
    fn a_written_vault_path_is_relative_and_a_template_that_compiles() {
        let problems = |path: &str| {
            let mut problems =
                Problems::new(std::path::Path::new("releases/app1/release.yaml"), Some(""));
            check_vault_path_syntax(&mut problems, &FieldPath::root().key("vaultPath"), path);
            messages(problems.finish())
        };
        assert_eq!(problems("kv/{{global.env}}/db"), Vec::<String>::new());
        assert_eq!(
            problems(" "),
            ["releases/app1/release.yaml: vaultPath: must not be empty"]
        );
        assert_eq!(
            problems("/kv/db"),
            ["releases/app1/release.yaml: vaultPath: \"/kv/db\": write the path without a leading '/', starting with the KV mount"]
        );
        assert_eq!(
            problems("kv/{{global.env"),
            ["releases/app1/release.yaml: vaultPath: \"kv/{{global.env\" is not a valid template: an expression between {{ and }} is malformed or not closed"]
        );
    }
}
