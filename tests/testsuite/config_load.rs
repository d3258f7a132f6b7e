//! The configuration loader through its public API: what the engine and the actions
//! rely on. Each test writes a small deployment repo into a temporary folder.

use flotilla::config::{
    check_release_for_environment, load_environment, ConfigError, OnFailure, Repo, VaultAuth,
};
use std::path::{Path, PathBuf};

const DEV: &str = "\
name: dev
branch: dev
vault:
  address: http://127.0.0.1:8200
  auth: { method: approle, role_id_env: VAULT_ROLE_ID, secret_id_env: VAULT_SECRET_ID }
  kv: { mount: kv, version: 1 }
clusters:
  - context: dev-europe-west1
    global: { cloud: true,  env: dev, region: europe-west1, clusterName: dev-europe-west1, tier: gold }
  - context: dev-paris-dc1
    global: { cloud: false, env: dev, region: paris, clusterName: dev-paris-dc1 }
";

const PROD: &str = "\
name: prod
branch: prod
vault:
  auth: { method: token }
  kv: { mount: secret, version: 2 }
rollout: { timeout: 90s, concurrency: 1, on_failure: halt }
clusters:
  - context: prod-europe-west1
    global: { cloud: true, env: prod, region: europe-west1, clusterName: prod-europe-west1 }
";

const RELEASE: &str = "\
apiVersion: flotilla/v1
kind: Release
metadata: { name: app1, namespace: ns1 }
spec:
  chart: ./chart
  version: 1.10
  values:
  environments:
    prod: { values: { log: warn } }
  scaling:
    - context: default
      replicas: [ { name: app1-web, count: 2 } ]
  secrets:
    - secret_id: db-password
      contexts:
        - name: default
          vaultPath: \"kv/{{global.env}}/{{global.region}}/db\"
          vaultKey: password
        - name: dev-paris-dc1
          vaultPath: kv/dev/onprem/db
          vaultKey: password
";

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("a file path has a parent"))
        .expect("create folder");
    std::fs::write(file, text).expect("write file");
}

/// A repo with `dev` and `prod` and release `app1`; `edit` may change files first.
fn repo_with(edit: impl FnOnce(&Path)) -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    write(root, "environments/dev.yaml", DEV);
    write(root, "environments/prod.yaml", PROD);
    write(root, "releases/app1/release.yaml", RELEASE);
    write(
        root,
        "releases/app1/chart/Chart.yaml",
        "name: app1\nversion: 0.1.0\n",
    );
    edit(root);
    let repo = Repo::open(root).expect("open repo");
    (dir, repo)
}

fn repo() -> (tempfile::TempDir, Repo) {
    repo_with(|_| {})
}

#[test]
fn loads_environments_with_defaults_and_extra_globals() {
    let (_dir, repo) = repo();
    let envs = repo.environments().expect("environments load");
    let names: Vec<&str> = envs.iter().map(|e| e.environment.name.as_str()).collect();
    assert_eq!(names, ["dev", "prod"]);

    let dev = &envs[0].environment;
    assert_eq!(dev.rollout.concurrency, 10, "default concurrency");
    assert_eq!(dev.rollout.timeout.as_secs(), 300, "default timeout");
    assert_eq!(dev.rollout.on_failure, OnFailure::Rollback);
    assert_eq!(dev.clusters[0].wave, 0);
    assert_eq!(
        dev.clusters[0].global.extra.get("tier"),
        Some(&serde_yaml_ng::Value::from("gold"))
    );
    assert!(matches!(
        dev.vault.as_ref().map(|v| &v.auth),
        Some(VaultAuth::AppRole { role_id_env: Some(r), .. }) if r == "VAULT_ROLE_ID"
    ));

    let prod = &envs[1].environment;
    assert_eq!(prod.rollout.timeout.as_secs(), 90);
    assert_eq!(prod.rollout.concurrency, 1);
    assert_eq!(prod.rollout.on_failure, OnFailure::Halt);
    assert_eq!(envs[1].file, repo.root().join("environments/prod.yaml"));
}

#[test]
fn a_release_is_found_by_name_by_descriptor_path_and_by_folder_path() {
    let (dir, repo) = repo();
    let by_name = repo.release("app1").expect("by name");
    assert_eq!(by_name.descriptor.metadata.name, "app1");
    assert_eq!(by_name.chart_dir, dir.path().join("releases/app1/chart"));
    assert!(by_name.chart_dir.join("Chart.yaml").is_file());

    let file = dir.path().join("releases/app1/release.yaml");
    let by_file = repo.release(&file.display().to_string()).expect("by file");
    assert_eq!(by_file.descriptor, by_name.descriptor);

    // Relative to the root when it is not relative to the current folder.
    let by_folder = repo.release("releases/app1").expect("by folder");
    assert_eq!(by_folder.descriptor, by_name.descriptor);
}

#[test]
fn scalars_keep_their_text_and_empty_values_are_an_empty_mapping() {
    let (_dir, repo) = repo();
    let release = repo.release("app1").expect("loads");
    // `version: 1.10` is the tag 1.10, not the number 1.1.
    assert_eq!(release.descriptor.spec.version, "1.10");
    assert!(release.descriptor.spec.values.is_mapping());
}

#[test]
fn unknown_names_suggest_the_nearest() {
    let (_dir, repo) = repo();
    let err = repo.release("ap1").expect_err("no such release");
    assert!(matches!(&err, ConfigError::UnknownRelease { near: Some(n), .. } if n == "app1"));
    let err = repo.environment("prd").expect_err("no such environment");
    assert_eq!(
        err.to_string(),
        format!(
            "no environment \"prd\": there is no {}/prd.yaml (environments: \"dev\", \"prod\"); did you mean \"prod\"?",
            repo.root().join("environments").display()
        )
    );
    // A path is not a name: no walking out of environments/.
    assert!(repo.environment("../releases/app1/release").is_err());
}

#[test]
fn the_branch_picks_exactly_one_environment() {
    let (_dir, repo) = repo();
    assert_eq!(
        repo.environment_for_branch("prod")
            .expect("prod branch")
            .environment
            .name,
        "prod"
    );
    let err = repo.environment_for_branch("main").expect_err("no env");
    assert!(matches!(&err, ConfigError::Branch { matches, .. } if matches.is_empty()));
    assert!(
        err.to_string().contains("\"dev\" → dev, \"prod\" → prod"),
        "{err}"
    );
}

#[test]
fn two_environments_on_one_branch_is_an_error_before_any_choice() {
    let (_dir, repo) = repo_with(|root| {
        write(
            root,
            "environments/prod.yaml",
            &PROD.replace("branch: prod", "branch: dev"),
        );
    });
    let err = repo.environment_for_branch("dev").expect_err("ambiguous");
    let text = err.to_string();
    assert!(text.contains("environments/prod.yaml:2: branch:"), "{text}");
    assert!(
        text.contains("already the branch of environment \"dev\""),
        "{text}"
    );
}

#[test]
fn a_release_checks_against_each_environment() {
    let (_dir, repo) = repo();
    let release = repo.release("app1").expect("loads");
    let dev = repo.environment("dev").expect("dev");
    repo.check_release(&release, &dev).expect("fits dev");

    // prod's KV mount is `secret`: the default path `kv/...` is outside it.
    let prod = repo.environment("prod").expect("prod");
    let err = check_release_for_environment(&release, &prod).expect_err("outside the mount");
    let text = err.to_string();
    assert!(
        text.contains("release.yaml:17: spec.secrets[0].contexts[0].vaultPath"),
        "{text}"
    );
    assert!(text.contains("\"kv/prod/europe-west1/db\""), "{text}");
}

#[test]
fn vault_paths_render_over_each_clusters_globals() {
    let (_dir, repo) = repo();
    let release = repo.release("app1").expect("loads");
    let dev = repo.environment("dev").expect("dev");
    let secret = &release.descriptor.spec.secrets[0];
    let paths: Vec<String> = dev
        .environment
        .clusters
        .iter()
        .map(|c| {
            let source = secret.source_for(&c.context).expect("a source");
            source.vault_path_for(c).expect("renders")
        })
        .collect();
    assert_eq!(paths, ["kv/dev/europe-west1/db", "kv/dev/onprem/db"]);
}

#[test]
fn every_problem_of_a_file_is_reported_with_its_line() {
    let (_dir, repo) = repo_with(|root| {
        let broken = DEV
            .replace("context: dev-paris-dc1", "context: dev-europe-west1")
            .replace("version: 1 }", "version: 3 }");
        write(root, "environments/dev.yaml", &broken);
    });
    let err = repo.environment("dev").expect_err("two problems");
    let problems: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].ends_with("dev.yaml:6: vault.kv.version: 3 is not a KV version; use 1 or 2"),
        "{problems:?}"
    );
    assert!(problems[1].contains("dev.yaml:10: clusters[1].context: \"dev-europe-west1\" is already the context of clusters[0]"), "{problems:?}");
}

#[test]
fn parse_errors_name_field_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file: PathBuf = dir.path().join("dev.yaml");
    std::fs::write(
        &file,
        DEV.replace(
            "  - context: dev-paris-dc1\n",
            "  - context: dev-paris-dc1\n    wave: -1\n",
        ),
    )
    .expect("write");
    match load_environment(&file) {
        Err(ConfigError::Parse {
            line,
            field,
            message,
            ..
        }) => {
            assert_eq!(line, Some(11));
            assert_eq!(field, "clusters[1].wave");
            assert_eq!(
                message,
                "wrong type: integer `-1`, expected a non-negative integer"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_folder_without_releases_or_environments_is_not_a_repo() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("releases")).expect("mkdir");
    let err = Repo::open(dir.path()).expect_err("not a repo");
    assert!(err.to_string().contains("no environments/ folder"), "{err}");
}

#[test]
fn the_example_environments_load_and_fit_together() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("environments");
    let mut envs = Vec::new();
    for name in ["dev", "staging", "prod"] {
        let env = load_environment(&dir.join(format!("{name}.yaml"))).expect("example loads");
        assert_eq!(env.environment.clusters.len(), 3, "{name}: three clusters");
        assert!(
            env.environment.clusters.iter().any(|c| !c.global.cloud),
            "{name}: a data centre"
        );
        envs.push(env);
    }
    flotilla::config::check_environments(&envs).expect("no shared branch or context");
    let waves: Vec<u32> = envs[2]
        .environment
        .clusters
        .iter()
        .map(|c| c.wave)
        .collect();
    assert_eq!(waves, [0, 1, 1], "prod goes in two waves");
}

#[test]
fn merge_keys_and_top_level_x_keys_share_globals_between_clusters() {
    let (_dir, repo) = repo_with(|root| {
        let shared = DEV
            .replace(
                "clusters:\n",
                "x-dev: &dev { cloud: true, env: dev }\nclusters:\n",
            )
            .replace("global: { cloud: true,  env: dev,", "global: { <<: *dev,");
        write(root, "environments/dev.yaml", &shared);
    });
    let dev = repo.environment("dev").expect("merge keys load");
    let global = &dev.environment.clusters[0].global;
    assert!(global.cloud);
    assert_eq!(global.env, "dev");
    assert_eq!(global.region, "europe-west1");

    // Errors keep their line although the document went through a value first.
    let (_dir, repo) = repo_with(|root| {
        let broken = DEV
            .replace(
                "clusters:\n",
                "x-dev: &dev { cloud: true, env: dev }\nclusters:\n",
            )
            .replace("cloud: false", "cloud: nope");
        write(root, "environments/dev.yaml", &broken);
    });
    let err = repo.environment("dev").expect_err("wrong type");
    assert!(
        err.to_string().ends_with(
            "dev.yaml:12: clusters[1].global.cloud: wrong type: string \"nope\", expected true or false"
        ),
        "{err}"
    );
}
