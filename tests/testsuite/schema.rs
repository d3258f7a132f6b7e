//! The JSON Schemas of `flotilla schema` agree with the parser: every file of the good
//! corpus (environments/, releases/, tests/fixtures) and every file the bad-input corpus
//! keeps unbroken passes the schema, and every bad-input case broken in a way one file
//! can show (an unknown key, a wrong type, a missing field, a pattern, a range) is
//! refused by the schema too. What needs another file, a chart or Vault is `lint`'s.

use flotilla::config::{schema, SchemaKind};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The bad-input cases whose broken file the schema refuses on its own.
const REFUSED_BY_SCHEMA: &[&str] = &[
    "env-auth-method-unknown",
    "env-auth-unknown-field",
    "env-cloud-not-a-boolean",
    "env-concurrency-zero",
    "env-context-named-default",
    "env-empty-clusters",
    "env-global-missing-region",
    "env-kv-version-3",
    "env-missing-clusters",
    "env-name-not-dns",
    "env-notify-kind-unknown",
    "env-notify-url-in-file",
    "env-record-key-outside-mount",
    "env-record-key-template",
    "env-on-failure-unknown",
    "env-promotion-min-soak-not-a-duration",
    "env-timeout-not-a-duration",
    "env-vault-address-not-a-url",
    "env-vault-unknown-field",
    "env-wave-concurrency-zero",
    "env-wave-negative",
    "env-wave-not-a-number",
    "env-wave-soak-not-a-duration",
    "env-wave-verify-empty-command",
    "env-wave-verify-unknown-field",
    "release-chart-type-unknown",
    "release-count-negative",
    "release-count-not-a-number",
    "release-empty-file",
    "release-metadata-not-a-mapping",
    "release-missing-namespace",
    "release-missing-vault-key",
    "release-name-too-long",
    "release-namespace-not-dns",
    "release-override-values-not-a-mapping",
    "release-scaling-name-not-dns",
    "release-scaling-not-a-list",
    "release-secret-id-with-dot",
    "release-secret-without-contexts",
    "release-unknown-field-replica",
    "release-unknown-top-level-field",
    "release-values-not-a-mapping",
    "release-vault-path-leading-slash",
    "release-version-not-an-image-tag",
    "release-wrong-api-version",
    "release-wrong-kind",
];

/// Cases the YAML reader itself refuses (syntax, duplicate keys, several documents):
/// an editor shows those as YAML errors before any schema applies.
const NOT_YAML: &[&str] = &[
    "env-duplicate-key",
    "env-tab-indentation",
    "env-two-documents",
    "env-unknown-anchor",
    "release-yaml-syntax-error",
];

struct Validators {
    release: jsonschema::Validator,
    environment: jsonschema::Validator,
}

impl Validators {
    fn new() -> Self {
        let compile = |kind| {
            jsonschema::validator_for(&schema(kind)).unwrap_or_else(|err| panic!("{kind:?}: {err}"))
        };
        Validators {
            release: compile(SchemaKind::Release),
            environment: compile(SchemaKind::Environment),
        }
    }

    /// The schema's complaints about one file, as an editor would list them.
    fn problems(&self, file: &Path) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(file).map_err(|err| err.to_string())?;
        let mut value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|err| err.to_string())?;
        value.apply_merge().map_err(|err| err.to_string())?;
        let json: serde_json::Value =
            serde_json::to_value(&value).map_err(|err| err.to_string())?;
        let validator = if file.file_name().is_some_and(|n| n == "release.yaml") {
            &self.release
        } else {
            &self.environment
        };
        Ok(validator
            .iter_errors(&json)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect())
    }
}

/// environments/*.yaml and releases/*/release.yaml under a repo folder.
fn config_files(repo: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(repo.join("environments")) {
        files.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml")),
        );
    }
    if let Ok(entries) = std::fs::read_dir(repo.join("releases")) {
        files.extend(
            entries
                .flatten()
                .map(|e| e.path().join("release.yaml"))
                .filter(|p| p.is_file()),
        );
    }
    files.sort();
    files
}

fn case_dirs() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("tests/bad_input"))
        .expect("tests/bad_input")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn the_good_corpus_passes_the_schemas() {
    let validators = Validators::new();
    let mut repos = vec![PathBuf::from(ROOT)];
    repos.extend(
        std::fs::read_dir(Path::new(ROOT).join("tests/fixtures"))
            .expect("tests/fixtures")
            .flatten()
            .map(|e| e.path()),
    );
    let mut checked = 0;
    for repo in repos {
        for file in config_files(&repo) {
            let problems = validators.problems(&file).expect("good files are YAML");
            assert!(problems.is_empty(), "{}: {problems:#?}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} files");
}

#[test]
fn the_schemas_refuse_exactly_the_bad_inputs_one_file_can_show() {
    let validators = Validators::new();
    let mut disagreements = Vec::new();
    for case in case_dirs() {
        let case_name = name(&case);
        if NOT_YAML.contains(&case_name.as_str()) {
            continue;
        }
        let mut refused = Vec::new();
        for file in config_files(&case) {
            match validators.problems(&file) {
                Ok(problems) if problems.is_empty() => {}
                Ok(problems) => refused.push(format!("{}: {problems:?}", file.display())),
                Err(err) => refused.push(format!("{}: not YAML: {err}", file.display())),
            }
        }
        let expected = REFUSED_BY_SCHEMA.contains(&case_name.as_str());
        if expected && refused.is_empty() {
            disagreements.push(format!("{case_name}: the schema accepts every file"));
        }
        if !expected && !refused.is_empty() {
            disagreements.push(format!("{case_name}: the schema refuses {refused:?}"));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

/// The lists above name real cases, and the parser refuses each of them (so a case
/// listed as refused by the schema is not a file the parser takes).
#[test]
fn every_listed_case_exists_and_the_parser_refuses_it() {
    let cases: Vec<String> = case_dirs().iter().map(|d| name(d)).collect();
    for listed in REFUSED_BY_SCHEMA.iter().chain(NOT_YAML) {
        assert!(cases.iter().any(|c| c == listed), "no case {listed}");
        let dir = Path::new(ROOT).join("tests/bad_input").join(listed);
        let cmd = std::fs::read_to_string(dir.join("cmd")).expect("cmd");
        let out = crate::support::flotilla()
            .args(cmd.split_whitespace())
            .current_dir(&dir)
            .output()
            .expect("run flotilla");
        assert_eq!(out.status.code(), Some(2), "{listed}");
    }
}

#[test]
fn the_schema_command_prints_each_schema_and_names_the_known_fields() {
    for (file, field) in [("release", "scaling"), ("environment", "clusters")] {
        let out = crate::support::flotilla()
            .args(["schema", file])
            .output()
            .expect("run flotilla");
        assert_eq!(out.status.code(), Some(0));
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let kind = if file == "release" {
            SchemaKind::Release
        } else {
            SchemaKind::Environment
        };
        assert_eq!(printed, schema(kind));
        assert!(printed.to_string().contains(field));
    }
}

#[test]
fn replica_for_count_is_caught_by_the_schema() {
    let validators = Validators::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let good = Path::new(ROOT).join("releases/hello/release.yaml");
    let text = std::fs::read_to_string(good).expect("hello");
    let broken = text.replacen("count: 1", "replica: 1", 1);
    assert_ne!(text, broken);
    let file = dir.path().join("release.yaml");
    std::fs::write(&file, broken).expect("write");
    let problems = validators.problems(&file).expect("YAML");
    assert!(
        problems.iter().any(|p| p.contains("replica")),
        "{problems:?}"
    );
}
