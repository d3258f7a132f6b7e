//! Golden tests of the example release: `releases/hello` rendered for every cluster of
//! every environment must equal `tests/golden/<env>/<cluster>.yaml`.
//! `FLOTILLA_BLESS=1 cargo test --test testsuite golden::` rewrites them; review the
//! diff by eye.

use flotilla::config::{Cluster, LoadedEnvironment, LoadedRelease, Repo};
use flotilla::engine::{placeholder_secrets, Chart, Manifest, Renderer};
use pretty_assertions::assert_eq;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn golden_file(env: &str, context: &str) -> PathBuf {
    Path::new(ROOT)
        .join("tests/golden")
        .join(env)
        .join(format!("{context}.yaml"))
}

fn load(env: &str) -> (LoadedRelease, LoadedEnvironment, Chart) {
    let repo = Repo::open(Path::new(ROOT)).expect("the repo root opens");
    let release = repo.release("hello").expect("releases/hello loads");
    let env = repo.environment(env).expect("the environment loads");
    let chart = Chart::load(&release.chart_dir).expect("the hello chart loads");
    (release, env, chart)
}

fn render(
    release: &LoadedRelease,
    env: &LoadedEnvironment,
    chart: &Chart,
    cluster: &Cluster,
) -> Manifest {
    let renderer = Renderer::for_release(
        chart,
        release,
        &env.environment.name,
        &Default::default(),
        1,
    )
    .expect("values merge");
    let secrets = placeholder_secrets(&release.descriptor.spec, &cluster.context);
    renderer
        .render(cluster, &secrets)
        .unwrap_or_else(|err| panic!("{}: {err}", cluster.context))
}

#[test]
fn every_cluster_of_every_environment_renders_its_golden_file() {
    let bless = std::env::var_os("FLOTILLA_BLESS").is_some_and(|v| v == "1");
    let mut compared = 0;
    for env_name in ["dev", "staging", "prod"] {
        let (release, env, chart) = load(env_name);
        assert_eq!(
            env.environment.clusters.len(),
            3,
            "{env_name} has three clusters"
        );
        for cluster in &env.environment.clusters {
            let yaml = render(&release, &env, &chart, cluster).to_yaml(None);
            let file = golden_file(env_name, &cluster.context);
            if bless {
                std::fs::create_dir_all(file.parent().expect("golden files live in a folder"))
                    .expect("create the golden folder");
                std::fs::write(&file, &yaml).expect("write the golden file");
            }
            let expected = std::fs::read_to_string(&file).unwrap_or_else(|err| {
                panic!("{}: {err} (FLOTILLA_BLESS=1 writes it)", file.display())
            });
            assert_eq!(
                yaml,
                expected,
                "{} differs from the rendering",
                file.display()
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 9);
}

/// The documents that differ between two manifests, as `Kind/name`.
fn changed(before: &Manifest, after: &Manifest) -> Vec<String> {
    assert_eq!(before.objects.len(), after.objects.len());
    before
        .objects
        .iter()
        .zip(&after.objects)
        .filter(|(a, b)| a.object != b.object)
        .map(|(a, _)| format!("{}/{}", a.kind(), a.name()))
        .collect()
}

#[test]
fn changing_the_region_changes_exactly_the_documents_that_use_it() {
    let (release, env, chart) = load("dev");
    let cluster = env.environment.clusters[0].clone();
    assert_eq!(cluster.global.region, "europe-west1");
    let before = render(&release, &env, &chart, &cluster);

    let mut moved = cluster.clone();
    moved.global.region = "asia-east1".into();
    let after = render(&release, &env, &chart, &moved);
    // The ConfigMap holds REGION and DB_HOST; the web pods carry a region label; both
    // Deployments carry the checksum of the config. The Service and Secret do not use it.
    assert_eq!(
        changed(&before, &after),
        [
            "ConfigMap/hello-config",
            "Deployment/hello-web",
            "Deployment/hello-worker"
        ]
    );
    let worker = |m: &Manifest| {
        m.objects
            .iter()
            .find(|o| o.name() == "hello-worker")
            .map(|o| o.object["spec"]["replicas"].clone())
    };
    assert_eq!(
        worker(&before),
        worker(&after),
        "asia-east1 is not the busy region"
    );

    // The busy region gets the worker's higher replica floor.
    let mut busy = cluster.clone();
    busy.global.region = "us-central1".into();
    let busy = render(&release, &env, &chart, &busy);
    assert_eq!(worker(&before), Some(serde_json::json!(1)));
    assert_eq!(worker(&busy), Some(serde_json::json!(2)));
}

/// `flotilla --root ROOT template ARGS...`: its stdout, after checking that it succeeded.
fn template(args: &[&str]) -> String {
    let output = crate::support::flotilla()
        .args(["--root", ROOT, "template"])
        .args(args)
        .output()
        .expect("flotilla runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn template_prints_one_cluster_and_nothing_else() {
    let text = template(&["hello", "--env", "prod", "--cluster", "prod-paris-dc1"]);
    // Compared with the rendering, not the golden file, so blessing does not race it.
    let (release, env, chart) = load("prod");
    let cluster = env
        .environment
        .clusters
        .iter()
        .find(|c| c.context == "prod-paris-dc1")
        .expect("prod-paris-dc1");
    let expected = render(&release, &env, &chart, cluster).to_yaml(None);
    assert_eq!(text, expected);
}

#[test]
fn template_without_cluster_names_the_cluster_of_every_document() {
    let text = template(&["hello", "--env", "staging"]);
    let documents: Vec<&str> = text.split("---\n").filter(|d| !d.is_empty()).collect();
    assert_eq!(documents.len(), 15, "5 objects × 3 clusters");
    for (index, document) in documents.iter().enumerate() {
        let context = [
            "staging-europe-west1",
            "staging-us-central1",
            "staging-paris-dc1",
        ][index / 5];
        assert!(
            document.starts_with(&format!("# cluster: {context}\n")),
            "document {index}: {document}"
        );
    }
}

#[test]
fn set_and_version_override_values_with_types() {
    let text = template(&[
        "hello",
        "--env",
        "dev",
        "--cluster",
        "dev-us-central1",
        "--set",
        "web.port=9090",
        "--set",
        "log.level=error",
        "--version",
        "2.0.1",
    ]);
    assert!(
        text.contains("containerPort: 9090\n"),
        "a number stays a number"
    );
    assert!(
        text.contains("LOG_LEVEL: error\n"),
        "--set beats the environment override"
    );
    assert!(text.contains("image: registry.example.com/hello:2.0.1\n"));
    assert!(!text.contains(":1.0.0"));
}

/// `-f` files (later wins), then `--set-json`, `--set`, `--set-string`, as Helm orders
/// them; `--set` types as Helm does, so `1.10` stays the string it was written as.
#[test]
fn values_files_and_every_set_flag_override_in_helm_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first.yaml");
    let second = dir.path().join("second.yaml");
    std::fs::write(&first, "log: { level: warn }\nweb: { port: 7070 }\n").expect("write");
    std::fs::write(&second, "web: { port: 7171 }\n").expect("write");
    let one_cluster = |extra: &[&str]| {
        template(
            &[
                &["hello", "--env", "dev", "--cluster", "dev-us-central1"],
                extra,
            ]
            .concat(),
        )
    };
    let files = [
        "-f",
        first.to_str().unwrap(),
        "--values",
        second.to_str().unwrap(),
    ];
    let text = one_cluster(&files);
    assert!(text.contains("LOG_LEVEL: warn\n"), "the first file: {text}");
    assert!(
        text.contains("containerPort: 7171\n"),
        "the later file wins"
    );

    let text = one_cluster(&[&files[..], &["--set", "log.level=1.10"]].concat());
    assert!(
        text.contains("LOG_LEVEL: '1.10'\n"),
        "a version is not 1.1: {text}"
    );

    // Whatever the order on the line: --set-string over --set over --set-json.
    let text = one_cluster(&[
        "--set-string",
        "log.level=from-set-string",
        "--set",
        "log.level=from-set,web.port=9191",
        "--set-json",
        r#"log={"level":"from-json"},web.port=9292"#,
    ]);
    assert!(text.contains("LOG_LEVEL: from-set-string\n"), "{text}");
    assert!(text.contains("containerPort: 9191\n"), "{text}");
}
