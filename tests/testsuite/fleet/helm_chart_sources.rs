//! Charts by reference, on a dedicated fleet with its OCI registry (the CNCF distribution
//! registry) and its chart repository (a folder made with `helm package` + `helm repo
//! index`, served over HTTP): a chart pulled from each deployed to every cluster of dev,
//! rolled back with the source gone and an empty chart cache (from the records alone),
//! promoted to prod with its package digest checked; a tag moved under a version that
//! ran is refused; an umbrella chart whose dependency comes from the repository, built
//! in a copy (the release's folder is left as it is) and pinned by its `Chart.lock`.

use super::helm_charts::helm;
use crate::support::rollout::ok;

use flotilla_fleet::state::State;
use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DEV: &[&str] = &["cs-dev1", "cs-dev2"];
const PROD: &[&str] = &["cs-prod1"];

fn fleet() -> &'static Fleet {
    crate::support::dedicated_fleet(&["cs-dev1", "cs-dev2", "cs-prod1"])
}

/// Held by each test for its whole run: they stop and start the one registry and
/// rewrite the one repository's `index.yaml`.
static SOURCES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn state(fleet: &Fleet) -> State {
    State::load(fleet.dir()).unwrap().expect("the fleet is up")
}

/// `host:port` of the fleet's registry.
fn registry(fleet: &Fleet) -> String {
    let port = state(fleet).registry_port;
    assert!(
        port > 0,
        "the fleet runs no registry (scripts/install-deps.sh builds it)"
    );
    format!("127.0.0.1:{port}")
}

fn chart_repo_url(fleet: &Fleet) -> String {
    format!("http://127.0.0.1:{}", state(fleet).chart_repo_port)
}

fn chart_repo_dir(fleet: &Fleet) -> PathBuf {
    flotilla_fleet::charts::chart_repo_dir(fleet.dir())
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn run_helm(args: &[&str], dir: &Path) -> String {
    let output = Command::new(helm())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    ok(output)
}

/// A Helm chart `name` at `version` in `dir/name`: one ConfigMap that says its edition.
fn chart(dir: &Path, name: &str, version: &str, edition: &str) -> PathBuf {
    let folder = dir.join(name);
    let _ = std::fs::remove_dir_all(&folder);
    write(
        &folder.join("Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    );
    write(
        &folder.join("values.yaml"),
        &format!("edition: {edition}\n"),
    );
    write(
        &folder.join("templates/edition.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  edition: {{ .Values.edition | quote }}\n",
    );
    folder
}

/// `helm package` of `chart` into `into`; the package's path and `sha256:<hex>`.
fn package(chart: &Path, into: &Path) -> (PathBuf, String) {
    std::fs::create_dir_all(into).unwrap();
    let out = run_helm(
        &[
            "package",
            &chart.display().to_string(),
            "--destination",
            &into.display().to_string(),
        ],
        into,
    );
    let path = PathBuf::from(out.trim().rsplit(": ").next().unwrap());
    let digest = format!("sha256:{:x}", Sha256::digest(std::fs::read(&path).unwrap()));
    (path, digest)
}

/// A chart `name`, `version`, `edition` pushed to `oci://REGISTRY/<path>`; its digest.
fn push(
    fleet: &Fleet,
    work: &Path,
    path: &str,
    name: &str,
    version: &str,
    edition: &str,
) -> String {
    let source = chart(&work.join("src"), name, version, edition);
    let (tgz, digest) = package(&source, &work.join("packages"));
    run_helm(
        &[
            "push",
            &tgz.display().to_string(),
            &format!("oci://{}/{path}", registry(fleet)),
            "--plain-http",
        ],
        work,
    );
    digest
}

/// A chart published in the fleet's chart repository (index regenerated); its digest.
fn publish(fleet: &Fleet, work: &Path, name: &str, version: &str, edition: &str) -> String {
    let source = chart(&work.join("src"), name, version, edition);
    let (_, digest) = package(&source, &chart_repo_dir(fleet));
    run_helm(
        &[
            "repo",
            "index",
            &chart_repo_dir(fleet).display().to_string(),
            "--url",
            &chart_repo_url(fleet),
        ],
        work,
    );
    digest
}

/// A deployment repo: `dev` and `prod` on the dedicated fleet, release `web` in a
/// namespace of its own with `chart_lines` as its chart.
struct Repo {
    dir: tempfile::TempDir,
    namespace: String,
    /// Variables for Helm that every `flotilla` run gets (`HELM_REPOSITORY_CONFIG`).
    helm_env: Vec<(&'static str, PathBuf)>,
}

impl Repo {
    fn new(test: &str, chart_lines: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let namespace = format!("{test}-{}", std::process::id() % 100000);
        for (env, clusters) in [("dev", DEV), ("prod", PROD)] {
            let mut text = format!(
                "name: {env}\nvault:\n  address: http://127.0.0.1:1\n  auth: {{ method: token }}\n  kv: {{ mount: kv, version: 1 }}\nrollout: {{ timeout: 60s, concurrency: 10, on_failure: rollback }}\nclusters:\n"
            );
            for context in clusters {
                text.push_str(&format!(
                    "  - context: {context}\n    global: {{ cloud: true, env: {env}, region: r, clusterName: {context} }}\n"
                ));
            }
            write(&dir.path().join(format!("environments/{env}.yaml")), &text);
        }
        let repo = Repo {
            dir,
            namespace,
            helm_env: Vec::new(),
        };
        repo.set_chart(chart_lines);
        repo
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn set_chart(&self, chart_lines: &str) {
        write(
            &self.root().join("releases/web/release.yaml"),
            &format!(
                "apiVersion: flotilla/v1\nkind: Release\nmetadata:\n  name: web\n  namespace: {}\nspec:\n  version: \"1.0.0\"\n{chart_lines}",
                self.namespace
            ),
        );
    }

    /// `flotilla ARGS` on the fleet with its Helm and `cache` as flotilla's cache.
    fn flotilla(&self, fleet: &Fleet, cache: &Path, args: &[&str]) -> Output {
        let mut cmd = crate::support::flotilla();
        cmd.arg("--root").arg(self.root()).args(args);
        if matches!(args.first(), Some(&"deploy" | &"promote")) {
            cmd.arg("--create-namespace");
        }
        cmd.envs(fleet.env())
            .env("FLOTILLA_HELM", helm())
            .env("FLOTILLA_CACHE_DIR", cache)
            .envs(self.helm_env.iter().cloned());
        cmd.output().unwrap()
    }

    /// The `edition` of ConfigMap `web-<chart>` in `context`.
    async fn edition(&self, fleet: &Fleet, context: &str, chart: &str) -> String {
        let api = Api::<ConfigMap>::namespaced(fleet.client(context).await, &self.namespace);
        let map = api
            .get(&format!("web-{chart}"))
            .await
            .unwrap_or_else(|e| panic!("{context}: ConfigMap web-{chart}: {e}"));
        map.data
            .unwrap_or_default()
            .get("edition")
            .cloned()
            .unwrap_or_default()
    }

    /// The chart digests of the release's records in `context`, newest revision last.
    async fn recorded_digests(&self, fleet: &Fleet, context: &str) -> Vec<String> {
        let mut records: Vec<serde_json::Value> =
            super::helm_charts::records(fleet, context, &self.namespace)
                .await
                .iter()
                .map(|text| serde_json::from_str(text).unwrap())
                .collect();
        records.sort_by_key(|r| r["revision"].as_u64());
        records
            .iter()
            .map(|r| {
                r["source"]["origin"]["digest"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh, empty chart cache.
fn empty_cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn an_oci_chart_deploys_everywhere_rolls_back_without_its_registry_and_is_promoted_by_digest()
{
    let _sources = SOURCES.lock().await;
    let fleet = fleet();
    let work = tempfile::tempdir().unwrap();
    let path = format!("charts-{}", std::process::id());
    let one = push(fleet, work.path(), &path, "web", "0.1.0", "one");
    let two = push(fleet, work.path(), &path, "web", "0.2.0", "two");
    let reference = format!("oci://{}/{path}/web", registry(fleet));
    let lines = |version: &str| {
        format!(
            "  chart: {reference}\n  chartVersion: {version}\n  chartPull: {{ plainHttp: true }}\n"
        )
    };
    let repo = Repo::new("oci", &lines("0.1.0"));
    let cache = empty_cache();

    ok(repo.flotilla(fleet, cache.path(), &["deploy", "web", "--env", "dev"]));
    for context in DEV {
        assert_eq!(
            repo.edition(fleet, context, "web").await,
            "one",
            "{context}"
        );
        assert_eq!(repo.recorded_digests(fleet, context).await, [one.as_str()]);
    }
    // The same reference again: read from the cache by digest, no registry needed.
    ok(fleet.command(&["stop-registry"]));
    repo.set_chart(&lines("0.1.0"));
    let template = repo.flotilla(fleet, cache.path(), &["template", "web", "--env", "dev"]);
    ok(fleet.command(&["start-registry"]));
    let rendered = ok(template);
    assert!(
        rendered.contains("edition: one") || rendered.contains("edition: \"one\""),
        "{rendered}"
    );

    repo.set_chart(&lines("0.2.0"));
    ok(repo.flotilla(fleet, cache.path(), &["deploy", "web", "--env", "dev"]));
    for context in DEV {
        assert_eq!(
            repo.edition(fleet, context, "web").await,
            "two",
            "{context}"
        );
        assert_eq!(
            repo.recorded_digests(fleet, context).await,
            [one.clone(), two.clone()]
        );
    }

    // The incident: the registry is down and this machine has never pulled the chart.
    ok(fleet.command(&["stop-registry"]));
    let fresh = empty_cache();
    let rollback = repo.flotilla(
        fleet,
        fresh.path(),
        &[
            "rollback",
            "web",
            "--env",
            "dev",
            "--namespace",
            &repo.namespace,
        ],
    );
    ok(fleet.command(&["start-registry"]));
    let said = stderr(&rollback);
    ok(rollback);
    assert!(!said.contains("not rendered again"), "{said}");
    for context in DEV {
        assert_eq!(
            repo.edition(fleet, context, "web").await,
            "one",
            "{context}"
        );
        assert_eq!(
            repo.recorded_digests(fleet, context).await.last(),
            Some(&one),
            "{context}: the rollback's record keeps the origin"
        );
    }

    // Promotion takes the package dev ran, by digest: pulled afresh and checked.
    let fresh = empty_cache();
    ok(repo.flotilla(
        fleet,
        fresh.path(),
        &["promote", "web", "--from", "dev", "--to", "prod"],
    ));
    for context in PROD {
        assert_eq!(
            repo.edition(fleet, context, "web").await,
            "one",
            "{context}"
        );
        assert_eq!(repo.recorded_digests(fleet, context).await, [one.as_str()]);
    }

    // Version 0.1.0 published again with other content: refused, naming both digests.
    let moved = push(fleet, work.path(), &path, "web", "0.1.0", "three");
    assert_ne!(moved, one);
    repo.set_chart(&lines("0.1.0"));
    let fresh = empty_cache();
    let deploy = repo.flotilla(fleet, fresh.path(), &["deploy", "web", "--env", "dev"]);
    let said = stderr(&deploy);
    assert_eq!(deploy.status.code(), Some(2), "{said}");
    assert!(
        said.contains("spec.chartVersion: \"0.1.0\"")
            && said.contains("changed under the same version")
            && said.contains(&one)
            && said.contains(&moved),
        "{said}"
    );
    // A promotion of what dev ran pulls the moved tag and refuses it too.
    let promote = repo.flotilla(
        fleet,
        fresh.path(),
        &["promote", "web", "--from", "dev", "--to", "prod"],
    );
    let said = stderr(&promote);
    assert_eq!(promote.status.code(), Some(2), "{said}");
    assert!(said.contains("changed under the same version"), "{said}");
    for context in DEV.iter().chain(PROD) {
        assert_eq!(
            repo.edition(fleet, context, "web").await,
            "one",
            "{context}: changed"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn bad_or_unreachable_chart_references_change_nothing() {
    let _sources = SOURCES.lock().await;
    let fleet = fleet();
    let work = tempfile::tempdir().unwrap();
    let path = format!("bad-{}", std::process::id());
    push(fleet, work.path(), &path, "web", "0.1.0", "one");
    let reference = format!("oci://{}/{path}/web", registry(fleet));
    let repo = Repo::new("bad", "  chart: ./nowhere\n");
    let cache = empty_cache();
    let cases = [
        (
            format!("  chart: {reference}\n  chartVersion: 9.9.9\n  chartPull: {{ plainHttp: true }}\n"),
            2,
            "spec.chartVersion: \"9.9.9\": helm pull",
        ),
        (
            format!("  chart: {reference}\n  chartPull: {{ plainHttp: true }}\n"),
            2,
            "spec.chartVersion: is required",
        ),
        (
            "  chart: oci://registry.invalid/charts/web\n  chartVersion: 0.1.0\n".into(),
            2,
            "spec.chart: \"oci://registry.invalid/charts/web\": helm pull",
        ),
        (
            "  chart: oci://127.0.0.1:1/charts/web\n  chartVersion: 0.1.0\n  chartPull: { plainHttp: true }\n".into(),
            3,
            "cannot be reached",
        ),
    ];
    for (lines, code, expected) in cases {
        repo.set_chart(&lines);
        let deploy = repo.flotilla(fleet, cache.path(), &["deploy", "web", "--env", "dev"]);
        let said = stderr(&deploy);
        assert_eq!(deploy.status.code(), Some(code), "{lines}: {said}");
        assert!(
            said.contains("releases/web/release.yaml") && said.contains(expected),
            "{lines}: expected {expected:?} in {said}"
        );
    }
    for context in DEV {
        let api = Api::<ConfigMap>::namespaced(fleet.client(context).await, &repo.namespace);
        assert!(
            api.get_opt("web-web").await.ok().flatten().is_none(),
            "{context}: changed"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_chart_from_the_chart_repository_deploys_rolls_back_from_its_records_and_is_promoted() {
    let _sources = SOURCES.lock().await;
    let fleet = fleet();
    let work = tempfile::tempdir().unwrap();
    let name = format!("repoweb{}", std::process::id());
    let one = publish(fleet, work.path(), &name, "0.1.0", "one");
    let two = publish(fleet, work.path(), &name, "0.2.0", "two");
    let lines = |version: &str| {
        format!(
            "  chart: {name}\n  repository: {}\n  chartVersion: {version}\n",
            chart_repo_url(fleet)
        )
    };
    let repo = Repo::new("repo", &lines("0.1.0"));
    let cache = empty_cache();
    ok(repo.flotilla(fleet, cache.path(), &["deploy", "web", "--env", "dev"]));
    repo.set_chart(&lines("0.2.0"));
    ok(repo.flotilla(fleet, cache.path(), &["deploy", "web", "--env", "dev"]));
    for context in DEV {
        assert_eq!(
            repo.edition(fleet, context, &name).await,
            "two",
            "{context}"
        );
        assert_eq!(
            repo.recorded_digests(fleet, context).await,
            [one.clone(), two.clone()]
        );
    }

    // The packages gone from the repository, nothing cached: the records are enough.
    let packages: Vec<PathBuf> = std::fs::read_dir(chart_repo_dir(fleet))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
        })
        .collect();
    let hidden = work.path().join("hidden");
    std::fs::create_dir_all(&hidden).unwrap();
    for package in &packages {
        std::fs::rename(package, hidden.join(package.file_name().unwrap())).unwrap();
    }
    let fresh = empty_cache();
    ok(repo.flotilla(
        fleet,
        fresh.path(),
        &[
            "rollback",
            "web",
            "--env",
            "dev",
            "--namespace",
            &repo.namespace,
        ],
    ));
    for context in DEV {
        assert_eq!(
            repo.edition(fleet, context, &name).await,
            "one",
            "{context}"
        );
    }
    for package in &packages {
        std::fs::rename(hidden.join(package.file_name().unwrap()), package).unwrap();
    }

    let fresh = empty_cache();
    ok(repo.flotilla(
        fleet,
        fresh.path(),
        &["promote", "web", "--from", "dev", "--to", "prod"],
    ));
    for context in PROD {
        assert_eq!(
            repo.edition(fleet, context, &name).await,
            "one",
            "{context}"
        );
        assert_eq!(repo.recorded_digests(fleet, context).await, [one.as_str()]);
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn an_umbrella_chart_gets_its_repository_dependency_as_its_chart_lock_pins_it() {
    let _sources = SOURCES.lock().await;
    let fleet = fleet();
    let work = tempfile::tempdir().unwrap();
    let dep = format!("dep{}", std::process::id());
    publish(fleet, work.path(), &dep, "0.1.0", "locked");
    let mut repo = Repo::new("umbrella", "  chart: ./umbrella\n");
    // With a `Chart.lock`, `helm dependency build` wants the repository added, as a team
    // does once: `helm repo add` into a Helm configuration of this test's own.
    let helm_home = work.path().join("helm");
    repo.helm_env = vec![
        (
            "HELM_REPOSITORY_CONFIG",
            helm_home.join("repositories.yaml"),
        ),
        ("HELM_REPOSITORY_CACHE", helm_home.join("cache")),
    ];
    let mut add = Command::new(helm());
    add.args(["repo", "add", "fleet", &chart_repo_url(fleet)])
        .envs(repo.helm_env.iter().cloned());
    ok(add.output().unwrap());
    let umbrella = repo.root().join("releases/web/umbrella");
    write(
        &umbrella.join("Chart.yaml"),
        &format!(
            "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n  - name: {dep}\n    version: \"~0.1\"\n    repository: {}\n",
            chart_repo_url(fleet)
        ),
    );
    write(
        &umbrella.join("templates/own.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-own\ndata:\n  edition: {{ .Chart.Name | quote }}\n",
    );
    // Chart.lock made while 0.1.0 was the newest, as a team commits it.
    let scratch = work.path().join("lock");
    crate::support::rollout::copy_dir(&umbrella, &scratch.join("umbrella"));
    run_helm(&["dependency", "update", "umbrella"], &scratch);
    std::fs::copy(
        scratch.join("umbrella/Chart.lock"),
        umbrella.join("Chart.lock"),
    )
    .unwrap();
    // A newer version inside the range: the lock keeps 0.1.0.
    publish(fleet, work.path(), &dep, "0.1.5", "unlocked");

    let cache = empty_cache();
    ok(repo.flotilla(fleet, cache.path(), &["deploy", "web", "--env", "dev"]));
    for context in DEV {
        assert_eq!(
            repo.edition(fleet, context, "own").await,
            "umbrella",
            "{context}"
        );
        assert_eq!(
            repo.edition(fleet, context, &dep).await,
            "locked",
            "{context}"
        );
    }
    // The release's folder is as it was: no charts/ folder written into it.
    let mut names: Vec<String> = std::fs::read_dir(&umbrella)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Chart.lock", "Chart.yaml", "templates"]);

    // The packed dependency is recorded: a rollback with the repository gone needs none.
    write(
        &umbrella.join("templates/own.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-own\ndata:\n  edition: \"second\"\n",
    );
    ok(repo.flotilla(fleet, cache.path(), &["deploy", "web", "--env", "dev"]));
    let fresh = empty_cache();
    let index = chart_repo_dir(fleet).join("index.yaml");
    let kept = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, "apiVersion: v1\nentries: {}\n").unwrap();
    let rollback = repo.flotilla(
        fleet,
        fresh.path(),
        &[
            "rollback",
            "web",
            "--env",
            "dev",
            "--namespace",
            &repo.namespace,
        ],
    );
    std::fs::write(&index, kept).unwrap();
    ok(rollback);
    for context in DEV {
        assert_eq!(
            repo.edition(fleet, context, "own").await,
            "umbrella",
            "{context}"
        );
        assert_eq!(
            repo.edition(fleet, context, &dep).await,
            "locked",
            "{context}"
        );
    }
}
