//! The canary: a release whose secrets are a plain password, a multi-line PEM key and a
//! value with quotes, backslashes and a newline, used in a Secret, an env var, a
//! ConfigMap, an annotation, a checksum and a URL, on the local fleet. `deploy`, `diff`,
//! `status` (its table, JSON and HTML), `history`, `rollback`, a failing deploy (crashloop, rolled back), a rejected
//! apply (the API server's message echoes the value), a chart the value breaks, and
//! `status` and `diff` after an env var added and one removed by hand (`kubectl set
//! env`, a live value no process of theirs has read), all
//! at `-vvv` with every log target asked for: no form of any value is in any stdout,
//! stderr, log or decoded record. The rejected apply's message can only be clean through
//! the scrubber, so the test fails if the scrubber is removed. The CI side
//! (`no_token_or_value_in_a_jwt_login_...`): a `jwt` login's JWT and GitHub's request
//! token, the `--summary` and `--junit` files, a refused login's `-o json` error document
//! and a freeze's line in `status` and `history`.
//!
//! The forms are computed here, independently of `flotilla::redact`, so that a scrubber
//! that forgets a form is caught rather than trusted.

use crate::support::vault as support;

use base64::Engine;
use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use std::collections::HashMap;
use std::io::Read;
use support::{flotilla_with_only, Run, TestRepo};

/// Has `!`: an invalid label value, so the API server rejects it, quoting it.
const PLAIN: &str = "Canary_pw!7f3e9-plain";
const ROTATED: &str = "Canary_pw!rotated-91ad";
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3XQF4m\nb2pKZ1dTdW5hcnlDYW5hcnlDYW5hcnlDYW5hcnk0Y2FuYXJ5Y2FuYXJ5Y2FuYXJ5\n-----END PRIVATE KEY-----";
const QUOTED: &str = "q\"uo'te\\d-canary-3b1\nsecond-line-canary-3b1";

const RELEASE: &str = r#"apiVersion: flotilla/v1
kind: Release
metadata: { name: canary, namespace: NAMESPACE }
spec:
  chart: ./chart
  version: 1.0.0
  secrets:
    - secret_id: db-password
      contexts: [ { name: default, vaultPath: "kv/dev/NAMESPACE/canary", vaultKey: password } ]
    - secret_id: tls-key
      contexts: [ { name: default, vaultPath: "kv/dev/NAMESPACE/canary", vaultKey: pem } ]
    - secret_id: quoted
      contexts: [ { name: default, vaultPath: "kv/dev/NAMESPACE/canary", vaultKey: quoted } ]
"#;

const SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: canary-secrets
type: Opaque
stringData:
  password: {{quote Values.secrets.[db-password]}}
  pem: {{quote Values.secrets.[tls-key]}}
  quoted: {{quote Values.secrets.quoted}}
"#;

const CONFIGMAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: canary-config
  annotations:
    canary/quoted: {{quote Values.secrets.quoted}}
data:
  pem: {{quote Values.secrets.[tls-key]}}
  dsn: "postgres://app@db/app?password={{Values.secrets.[db-password]}}"
  level: info
{{#if Values.reject}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: canary-rejected
  labels:
    canary/password: {{quote Values.secrets.[db-password]}}
{{/if}}
"#;

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: canary-web
spec:
  replicas: 1
  selector:
    matchLabels: { app: canary-web }
  template:
    metadata:
      labels: { app: canary-web }
      annotations:
        checksum/secrets: {{sha256sum (toJson Values.secrets)}}
        checksum/keyed: {{secretsum Values.secrets}}
        canary/password: {{quote Values.secrets.[db-password]}}
    spec:
      containers:
        - name: web
          image: "example.com/canary:{{Values.tag}}"
          env:
            - name: DB_PASSWORD
              value: {{quote Values.secrets.[db-password]}}
            - name: QUOTED
              value: {{quote Values.secrets.quoted}}
"#;

/// Every form a value can take in text: raw, base64 (standard and URL-safe), JSON- and
/// debug-escaped, YAML single-quoted, URL-encoded, and each line of a multi-line value.
fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![
        value.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(value),
        base64::engine::general_purpose::URL_SAFE.encode(value),
    ];
    let json = serde_json::to_string(value).unwrap_or_default();
    forms.push(json.trim_matches('"').to_owned());
    forms.push(value.escape_debug().to_string());
    forms.push(value.replace('\'', "''"));
    let url: String = value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    forms.push(url);
    for line in value.lines().filter(|l| l.trim().len() >= 8) {
        forms.push(line.trim().to_owned());
    }
    forms
}

struct Canary {
    forbidden: Vec<(String, String)>,
}

impl Canary {
    fn new(values: &[&str]) -> Canary {
        let mut forbidden = Vec::new();
        for value in values {
            for form in forms(value) {
                forbidden.push((value.lines().next().unwrap_or_default().to_owned(), form));
            }
        }
        Canary { forbidden }
    }

    fn assert_clean(&self, what: &str, text: &str) {
        for (value, form) in &self.forbidden {
            assert!(
                !text.contains(form.as_str()),
                "{what}: a form ({form:?}) of the value starting {value:?} appears in:\n{text}"
            );
        }
    }

    fn assert_run(&self, what: &str, run: &Run) {
        self.assert_clean(what, &run.both());
        for line in run.stderr.lines() {
            for krate in [" handlebars", " vaultrs", " rustify"] {
                assert!(
                    !line.contains(&format!("{krate}::")) && !line.contains(&format!("{krate}:")),
                    "{what}: a log line of a silenced crate:\n{line}"
                );
            }
        }
    }
}

/// Every release record in the namespace, decoded (gunzipped JSON).
async fn records(fleet: &Fleet, cluster: &str, namespace: &str) -> String {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(fleet.client(cluster).await, namespace);
    let list = secrets
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("{cluster}: {e}"));
    let mut out = String::new();
    let mut count = 0;
    for secret in list.items {
        let name = secret.metadata.name.clone().unwrap_or_default();
        if !name.starts_with("flotilla.") {
            continue;
        }
        let Some(data) = secret.data.as_ref().and_then(|d| d.get("release")) else {
            continue;
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(&data.0[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push_str(&text);
        out.push('\n');
        count += 1;
    }
    assert!(count > 0, "{cluster}: no record in {namespace}");
    out
}

/// A repo of release `canary` (its Secret, ConfigMap and Deployment put the values
/// everywhere a chart may) in `namespace`, environment `dev` of every cluster of the
/// shared fleet (token auth), reading `kv/dev/<namespace>/canary`.
fn canary_repo(clusters: &[String], namespace: &str) -> TestRepo {
    let mut environment = support::ENVIRONMENT
        .split("clusters:\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    environment.push_str("clusters:\n");
    for (i, cluster) in clusters.iter().enumerate() {
        environment.push_str(&format!(
            "  - context: {cluster}\n    global: {{ cloud: true, env: dev, region: r{i}, clusterName: {cluster} }}\n"
        ));
    }
    let release = RELEASE.replace("NAMESPACE", namespace);
    let repo = TestRepo::new(1, &environment, &release);
    let root = repo.root();
    std::fs::rename(root.join("releases/hello"), root.join("releases/canary"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(root.join("releases/canary/chart/templates/secret.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    write_template(root, "secret.yaml", SECRET);
    write_template(root, "configmap.yaml", CONFIGMAP);
    write_template(root, "web.yaml", WEB);
    std::fs::write(
        root.join("releases/canary/chart/values.yaml"),
        "tag: \"1.0\"\nreject: false\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    repo
}

fn write_template(root: &std::path::Path, name: &str, text: &str) {
    std::fs::write(
        root.join("releases/canary/chart/templates").join(name),
        text,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn no_form_of_any_secret_value_leaves_vault_and_the_clusters_secrets() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let namespace = fleet.namespace("canary").await;
    let repo = canary_repo(&clusters, &namespace);
    let root = repo.root();
    let write = |name: &str, text: &str| write_template(root, name, text);

    let vars: Vec<(String, String)> = fleet.env().into_iter().collect();
    let mut loud: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Every target at trace, the silenced crates asked for by name, more specific than
    // anything flotilla sets: none of it may turn them on.
    loud.push((
        "FLOTILLA_LOG",
        "trace,handlebars=trace,handlebars::render=trace,vaultrs=trace,vaultrs::api=trace,rustify=trace",
    ));
    let canary = Canary::new(&[PLAIN, PEM, QUOTED, ROTATED, fleet.vault_token()]);

    let admin = crate::support::rollout::vault_admin(fleet);
    let path = format!("dev/{namespace}/canary");
    let write_secrets = |password: &'static str| {
        let admin = &admin;
        let path = path.clone();
        async move {
            vaultrs::kv1::set(
                admin,
                "kv",
                &path,
                &HashMap::from([("password", password), ("pem", PEM), ("quoted", QUOTED)]),
            )
            .await
            .unwrap_or_else(|e| panic!("writing {path}: {e}"));
        }
    };
    write_secrets(PLAIN).await;
    let run = |args: &'static [&'static str]| {
        let loud = loud.clone();
        async move { flotilla_with_only(root, args, &loud).await }
    };

    let deployed = run(&["-vvv", "deploy", "canary", "--env", "dev"]).await;
    assert_eq!(deployed.code, Some(0), "deploy: {}", deployed.both());
    canary.assert_run("deploy", &deployed);

    // The values did reach every cluster, wherever the chart put them: the checks are
    // not vacuous.
    for cluster in &clusters {
        let client = fleet.client(cluster).await;
        let web: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), &namespace);
        let web = serde_json::to_string(
            &web.get("canary-web")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_default();
        assert!(web.contains(PLAIN), "{cluster}: the env var has the value");
        let config: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &namespace);
        let config = config
            .get("canary-config")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config
                .data
                .unwrap_or_default()
                .get("pem")
                .map(String::as_str),
            Some(PEM),
            "{cluster}"
        );
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client, &namespace);
        let secret = secrets
            .get("canary-secrets")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let quoted = secret
            .data
            .unwrap_or_default()
            .get("quoted")
            .map(|v| v.0.clone());
        assert_eq!(quoted.as_deref(), Some(QUOTED.as_bytes()), "{cluster}");
        canary.assert_clean(
            &format!("{cluster} records"),
            &records(fleet, cluster, &namespace).await,
        );

        // The keyed checksum: HMAC under the release's key in this cluster, not the
        // sha256 anyone reading the pod could recompute from a guess.
        let key = secrets
            .get("flotilla.canary.checksum-key")
            .await
            .unwrap_or_else(|e| panic!("{cluster}: no checksum key: {e}"))
            .data
            .unwrap_or_default()
            .remove("key")
            .map(|k| k.0)
            .unwrap_or_default();
        assert_eq!(key.len(), 32, "{cluster}");
        let values = serde_json::to_string(&serde_json::json!({
            "db-password": PLAIN, "quoted": QUOTED, "tls-key": PEM
        }))
        .unwrap_or_default();
        let web: kube::Api<Deployment> =
            kube::Api::namespaced(fleet.client(cluster).await, &namespace);
        let web = serde_json::to_value(
            web.get("canary-web")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_default();
        assert_eq!(
            web.pointer("/spec/template/metadata/annotations/checksum~1keyed")
                .and_then(|v| v.as_str()),
            Some(flotilla::engine::helpers::hmac_sha256_hex(&key, values.as_bytes()).as_str()),
            "{cluster}"
        );
    }

    // Rotated in Vault: diff and status have secret fields to show, live and new.
    write_secrets(ROTATED).await;
    for args in [
        &["-vvv", "diff", "canary", "--env", "dev"][..],
        &["diff", "canary", "--env", "dev", "-o", "json"],
        &["-vvv", "status", "canary", "--env", "dev"],
        &["status", "canary", "--env", "dev", "-o", "json"],
        &["status", "canary", "--env", "dev", "-o", "html"],
        &["-vvv", "history", "canary", "--env", "dev"],
        &["history", "canary", "--env", "dev", "-o", "json"],
        &["-vvv", "get", "values", "canary", "--env", "dev"],
        &["get", "values", "canary", "--env", "dev", "-o", "json"],
        &["-vvv", "get", "manifest", "canary", "--env", "dev"],
        &["get", "manifest", "canary", "--env", "dev", "-o", "json"],
    ] {
        let out = flotilla_with_only(root, args, &loud).await;
        assert!(
            matches!(out.code, Some(0 | 1)),
            "{}: {}",
            args.join(" "),
            out.both()
        );
        canary.assert_run(&args.join(" "), &out);
    }
    let diff = flotilla_with_only(
        root,
        &["diff", "canary", "--env", "dev", "-o", "json"],
        &loud,
    )
    .await;
    assert!(
        diff.stdout.contains("<redacted>") && !diff.stdout.contains("<redacted sha256:"),
        "the rotated secret shows as a change, without its digest: {}",
        diff.stdout
    );

    let second = run(&[
        "-vvv", "deploy", "canary", "--env", "dev", "--set", "tag=2.0",
    ])
    .await;
    assert_eq!(second.code, Some(0), "second deploy: {}", second.both());
    canary.assert_run("second deploy", &second);

    let back = run(&["-vvv", "rollback", "canary", "--env", "dev"]).await;
    assert_eq!(back.code, Some(0), "rollback: {}", back.both());
    canary.assert_run("rollback", &back);
    for cluster in &clusters {
        let web: kube::Api<Deployment> =
            kube::Api::namespaced(fleet.client(cluster).await, &namespace);
        let web = serde_json::to_string(
            &web.get("canary-web")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_default();
        assert!(
            web.contains("canary:1.0"),
            "{cluster}: back on the first revision"
        );
        assert!(
            web.contains(ROTATED) && !web.contains(PLAIN),
            "{cluster}: a rollback reads the secret afresh, the rotated value does not come back"
        );
    }

    // A failing deploy: the pods crash, every cluster is rolled back.
    let crash = run(&[
        "-vvv",
        "deploy",
        "canary",
        "--env",
        "dev",
        "--set",
        "tag=crashloop",
    ])
    .await;
    assert_eq!(crash.code, Some(1), "crashing deploy: {}", crash.both());
    canary.assert_run("crashing deploy", &crash);

    // A rejected apply: the API server refuses the label and quotes its value.
    let rejected = run(&[
        "-vvv",
        "deploy",
        "canary",
        "--env",
        "dev",
        "--set",
        "reject=true",
    ])
    .await;
    assert_eq!(
        rejected.code,
        Some(1),
        "rejected apply: {}",
        rejected.both()
    );
    assert!(
        rejected.stderr.contains("canary-rejected"),
        "the rejection is reported: {}",
        rejected.stderr
    );
    canary.assert_run("rejected apply", &rejected);
    // The same in the JSON report: the API server's message, its value scrubbed.
    let rejected = run(&[
        "-vvv",
        "deploy",
        "canary",
        "--env",
        "dev",
        "--set",
        "reject=true",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(rejected.code, Some(1), "{}", rejected.both());
    assert!(
        rejected.stdout.contains("canary-rejected") && rejected.stdout.contains("<redacted>"),
        "the rejection is in the JSON report, its value scrubbed: {}",
        rejected.both()
    );
    serde_json::from_str::<serde_json::Value>(&rejected.stdout)
        .unwrap_or_else(|e| panic!("the scrubbed report is still JSON: {e}"));
    canary.assert_run("rejected apply, JSON report", &rejected);
    for cluster in &clusters {
        canary.assert_clean(
            &format!("{cluster} records"),
            &records(fleet, cluster, &namespace).await,
        );
    }

    // A chart that the value breaks: exit 2, nothing changed, no value in the message.
    write(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: canary-broken\ndata:\n  quoted: {{Values.secrets.quoted}}\n",
    );
    let broken = run(&["-vvv", "deploy", "canary", "--env", "dev"]).await;
    assert_eq!(broken.code, Some(2), "broken chart: {}", broken.both());
    assert!(broken.stderr.contains("broken.yaml"), "{}", broken.stderr);
    canary.assert_run("broken chart", &broken);
    std::fs::remove_file(root.join("releases/canary/chart/templates/broken.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));

    // Drift by a changed list, the most common hand edit there is: an env var added
    // in one cluster, one removed in another. `status` reads nothing from Vault and
    // `diff` reads what Vault holds now (the old value again): neither process knows
    // the value live, so only the masking keeps it out.
    write_secrets(PLAIN).await;
    let (added, removed) = (&clusters[0], clusters.last().unwrap_or(&clusters[0]));
    kubectl(
        fleet,
        added,
        &namespace,
        &["set", "env", "deploy/canary-web", "DEBUG=1"],
    );
    kubectl(
        fleet,
        removed,
        &namespace,
        &["set", "env", "deploy/canary-web", "QUOTED-"],
    );
    let live = serde_json::to_string(
        &kube::Api::<Deployment>::namespaced(fleet.client(added).await, &namespace)
            .get("canary-web")
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_default();
    assert!(
        live.contains(ROTATED) && live.contains("DEBUG"),
        "{added}: the value that must not be shown is live, with the hand edit"
    );
    for args in [
        &["-vvv", "status", "canary", "--env", "dev"][..],
        &["status", "canary", "--env", "dev", "-o", "json"],
        &["-vvv", "diff", "canary", "--env", "dev"],
        &["diff", "canary", "--env", "dev", "-o", "json"],
    ] {
        let out = flotilla_with_only(root, args, &loud).await;
        let what = format!("{} after a changed env list", args.join(" "));
        assert!(matches!(out.code, Some(0 | 1)), "{what}: {}", out.both());
        canary.assert_run(&what, &out);
        // The edits show, entry by entry, named by key: both as drift; in the diff,
        // the removed one that a deploy puts back (the added one is another field
        // manager's, which a deploy leaves).
        let entries: &[&str] = if args.contains(&"status") {
            &["DEBUG", "QUOTED"]
        } else {
            &["QUOTED"]
        };
        for entry in entries {
            let shown = [
                format!("env[name=\"{entry}\"]"),
                format!("env[name=\\\"{entry}\\\"]"),
            ];
            assert!(
                shown.iter().any(|s| out.stdout.contains(s.as_str())),
                "{what}: no entry {entry}: {}",
                out.stdout
            );
        }
    }
}

/// `kubectl --context CONTEXT -n NAMESPACE ARGS` with the fleet's kubeconfig, as an
/// on-call engineer would run it; it must succeed.
fn kubectl(fleet: &Fleet, context: &str, namespace: &str, args: &[&str]) {
    let kubectl = flotilla_fleet::binaries::Binaries::find()
        .ok()
        .and_then(|b| b.kubectl)
        .unwrap_or_else(|| panic!("the fleet's kubectl (scripts/install-deps.sh builds it)"));
    let out = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(fleet.kubeconfig())
        .args(["--context", context, "-n", namespace])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Helm's values, `.helmignore`'d files and verify commands: no value leaves either.

/// The Helm CLI the fleet builds.
fn helm_cli() -> std::path::PathBuf {
    flotilla_fleet::binaries::Binaries::find()
        .ok()
        .and_then(|b| b.helm)
        .expect("the Helm CLI of the fleet (scripts/install-deps.sh builds it)")
}

/// `PATH` with the fleet's kubectl first (verify commands call it).
fn path_with_kubectl() -> String {
    let kubectl = flotilla_fleet::binaries::Binaries::find()
        .ok()
        .and_then(|b| b.kubectl)
        .expect("the fleet's kubectl (scripts/install-deps.sh builds it)");
    let dir = kubectl.parent().map(|d| d.display().to_string());
    format!(
        "{}:{}",
        dir.unwrap_or_default(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn write_file(path: &std::path::Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// An environment file `name` of `clusters` of the fleet (token auth: the fleet's
/// VAULT_TOKEN), with `extra` top-level settings.
fn environment_of(name: &str, clusters: &[String], extra: &str) -> String {
    let mut text = format!(
        "name: {name}\nvault:\n  address: http://127.0.0.1:9\n  auth: {{ method: token }}\n  kv: {{ mount: kv, version: 1 }}\n{extra}clusters:\n"
    );
    for (i, cluster) in clusters.iter().enumerate() {
        text.push_str(&format!(
            "  - context: {cluster}\n    global: {{ cloud: true, env: {name}, region: r{i}, clusterName: {cluster} }}\n"
        ));
    }
    text
}

/// Writes `pairs` at `path` of the fleet Vault's KV v1 mount `kv`.
async fn vault_write(fleet: &Fleet, path: &str, pairs: &[(&str, &str)]) {
    let admin = crate::support::rollout::vault_admin(fleet);
    let data: HashMap<&str, &str> = pairs.iter().copied().collect();
    vaultrs::kv1::set(&admin, "kv", path, &data)
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

/// The fleet's variables, flotilla's every log target at trace, the Helm CLI and
/// kubectl: what the runs below are given.
fn loud_vars(fleet: &Fleet) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = fleet.env().into_iter().collect();
    vars.push((
        "FLOTILLA_LOG".into(),
        "trace,handlebars=trace,vaultrs=trace,rustify=trace".into(),
    ));
    vars.push(("FLOTILLA_HELM".into(), helm_cli().display().to_string()));
    vars.push(("PATH".into(), path_with_kubectl()));
    vars
}

async fn run_loud(root: &std::path::Path, args: &[&str], vars: &[(String, String)]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    flotilla_with_only(root, args, &vars).await
}

/// A Helm chart whose password (given to Helm with `--set password=`, or to flotilla
/// from Vault as `db-password`) goes into a Secret and, as charts often do, an env var.
const HELM_WEB: &[(&str, &str)] = &[
    (
        "Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    ),
    ("values.yaml", "password: \"\"\n"),
    (
        "templates/_helpers.tpl",
        "{{- define \"web.password\" -}}\n{{ .Values.password | default (index (.Values.secrets | default dict) \"db-password\") }}\n{{- end -}}\n",
    ),
    (
        "templates/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-db\nstringData:\n  password: {{ include \"web.password\" . | quote }}\n",
    ),
    (
        "templates/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: { app: {{ .Release.Name }} }\n  template:\n    metadata:\n      labels: { app: {{ .Release.Name }} }\n    spec:\n      containers:\n        - name: web\n          image: \"example.com/canary-web:{{ .Chart.AppVersion }}\"\n          env:\n            - name: DB_PASSWORD\n              value: {{ include \"web.password\" . | quote }}\n",
    ),
];

/// The env var DB_PASSWORD of Deployment `web` in `namespace` of `cluster`.
async fn db_password_env(fleet: &Fleet, cluster: &str, namespace: &str) -> String {
    db_password_env_of(fleet, cluster, namespace, "web").await
}

/// The first env var (DB_PASSWORD) of Deployment `name` in `namespace` of `cluster`.
async fn db_password_env_of(fleet: &Fleet, cluster: &str, namespace: &str, name: &str) -> String {
    let web: kube::Api<Deployment> = kube::Api::namespaced(fleet.client(cluster).await, namespace);
    let web = web
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{cluster}: {e}"));
    let web = serde_json::to_value(web).unwrap_or_default();
    web.pointer("/spec/template/spec/containers/0/env/0/value")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn adopt_helm_records_no_value_given_to_helm_with_set() {
    const GIVEN: &str = "HelmSet_canary-pw-5c1e9d";
    const FROM_VAULT: &str = "Vault_canary-pw-0b7f21";
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let namespace = fleet.namespace("canary-adopt").await;
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = repo.path();
    write_file(
        &root.join("environments/dev.yaml"),
        &environment_of("dev", &clusters, ""),
    );
    write_file(
        &root.join("releases/web/release.yaml"),
        &format!("apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: web, namespace: {namespace} }}\nspec:\n  chart: ./web\n  version: \"1.0\"\n  secrets:\n    - secret_id: db-password\n      contexts: [ {{ name: default, vaultPath: \"kv/dev/{namespace}/web\", vaultKey: password }} ]\n"),
    );
    let chart = root.join("releases/web/web");
    for (name, text) in HELM_WEB {
        write_file(&chart.join(name), text);
    }
    vault_write(
        fleet,
        &format!("dev/{namespace}/web"),
        &[("password", FROM_VAULT)],
    )
    .await;
    for cluster in &clusters {
        let output = std::process::Command::new(helm_cli())
            .args(["install", "web"])
            .arg(&chart)
            .args(["--namespace", &namespace, "--kube-context", cluster])
            .args(["--set", &format!("password={GIVEN}")])
            .arg("--kubeconfig")
            .arg(fleet.kubeconfig())
            .output()
            .unwrap_or_else(|e| panic!("helm: {e}"));
        assert!(
            output.status.success(),
            "{cluster}: helm install: {output:?}"
        );
    }
    let vars = loud_vars(fleet);
    let canary = Canary::new(&[GIVEN, FROM_VAULT, fleet.vault_token()]);

    let planned = run_loud(
        root,
        &[
            "-vvv",
            "adopt-helm",
            "web",
            "--env",
            "dev",
            "--dry-run",
            "-o",
            "json",
        ],
        &vars,
    )
    .await;
    assert_eq!(
        planned.code,
        Some(0),
        "adopt-helm --dry-run: {}",
        planned.both()
    );
    canary.assert_run("adopt-helm --dry-run", &planned);

    let adopted = run_loud(
        root,
        &[
            "-vvv",
            "adopt-helm",
            "web",
            "--env",
            "dev",
            "--remove-helm-secrets",
        ],
        &vars,
    )
    .await;
    assert_eq!(adopted.code, Some(0), "adopt-helm: {}", adopted.both());
    canary.assert_run("adopt-helm", &adopted);
    for cluster in &clusters {
        // Not vacuous: Helm's value runs there, and the record has the values' keys.
        assert_eq!(db_password_env(fleet, cluster, &namespace).await, GIVEN);
        let records = records(fleet, cluster, &namespace).await;
        canary.assert_clean(&format!("{cluster} records after adopt-helm"), &records);
        assert!(
            records.contains("given to Helm: not recorded"),
            "{cluster}: {records}"
        );
    }

    for args in [
        &["-vvv", "history", "web", "--env", "dev"][..],
        &["history", "web", "--env", "dev", "-o", "json"],
        &["-vvv", "status", "web", "--env", "dev"],
        &["status", "web", "--env", "dev", "-o", "json"],
        &["-vvv", "diff", "web", "--env", "dev"],
        &["diff", "web", "--env", "dev", "-o", "json"],
        &["-vvv", "get", "values", "web", "--env", "dev"],
        &["get", "manifest", "web", "--env", "dev", "-o", "json"],
    ] {
        let out = run_loud(root, args, &vars).await;
        assert!(
            matches!(out.code, Some(0 | 1)),
            "{}: {}",
            args.join(" "),
            out.both()
        );
        canary.assert_run(&args.join(" "), &out);
    }

    // A deploy (the password from Vault now), then back to the imported revision: the
    // live password stays, nothing shows or is recorded.
    let deployed = run_loud(root, &["-vvv", "deploy", "web", "--env", "dev"], &vars).await;
    assert_eq!(deployed.code, Some(0), "deploy: {}", deployed.both());
    canary.assert_run("deploy after adopt-helm", &deployed);
    let back = run_loud(root, &["-vvv", "rollback", "web", "--env", "dev"], &vars).await;
    assert_eq!(back.code, Some(0), "rollback: {}", back.both());
    canary.assert_run("rollback to the imported revision", &back);
    for cluster in &clusters {
        assert_eq!(
            db_password_env(fleet, cluster, &namespace).await,
            FROM_VAULT
        );
        canary.assert_clean(
            &format!("{cluster} records after rollback"),
            &records(fleet, cluster, &namespace).await,
        );
    }
}

/// Helm hooks of [`HELM_WEB`] that hold the Vault password inline, as charts' migration
/// Jobs and test Pods often do: a `pre-install,pre-upgrade` Job (failing where
/// `migrateTag` is `jobfail`) and a `test` Pod.
const HELM_HOOKS: (&str, &str) = (
    "templates/hooks.yaml",
    "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-migrate\n  annotations: { \"helm.sh/hook\": \"pre-install,pre-upgrade\" }\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: \"example.com/canary-migrate:{{ .Values.migrateTag | default .Chart.AppVersion }}\"\n          env:\n            - name: DB_PASSWORD\n              value: {{ include \"web.password\" . | quote }}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-smoke\n  annotations: { \"helm.sh/hook\": test }\nspec:\n  restartPolicy: Never\n  containers:\n    - name: smoke\n      image: \"example.com/canary-smoke:{{ .Chart.AppVersion }}\"\n      env:\n        - name: DB_PASSWORD\n          value: {{ include \"web.password\" . | quote }}\n",
);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_helm_hook_holding_a_secret_runs_with_it_and_never_shows_or_records_it() {
    const FROM_VAULT: &str = "Hook_canary-pw-6a93d0";
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let namespace = fleet.namespace("canary-hooks").await;
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = repo.path();
    write_file(
        &root.join("environments/dev.yaml"),
        &environment_of(
            "dev",
            &clusters,
            "rollout:\n  timeout: 60s\n  waves:\n    - wave: 0\n      verify: [ { helm_tests: true, timeout: 1m } ]\n",
        ),
    );
    write_file(
        &root.join("releases/web/release.yaml"),
        &format!("apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: web, namespace: {namespace} }}\nspec:\n  chart: ./web\n  version: \"1.0\"\n  secrets:\n    - secret_id: db-password\n      contexts: [ {{ name: default, vaultPath: \"kv/dev/{namespace}/web\", vaultKey: password }} ]\n"),
    );
    let chart = root.join("releases/web/web");
    for (name, text) in HELM_WEB.iter().chain([&HELM_HOOKS]) {
        write_file(&chart.join(name), text);
    }
    vault_write(
        fleet,
        &format!("dev/{namespace}/web"),
        &[("password", FROM_VAULT)],
    )
    .await;
    let vars = loud_vars(fleet);
    let canary = Canary::new(&[FROM_VAULT, fleet.vault_token()]);

    for args in [
        &["-vvv", "deploy", "web", "--env", "dev", "--dry-run"][..],
        &["deploy", "web", "--env", "dev", "--dry-run", "-o", "json"],
    ] {
        let out = run_loud(root, args, &vars).await;
        assert_eq!(out.code, Some(0), "{}: {}", args.join(" "), out.both());
        canary.assert_run(&args.join(" "), &out);
        assert!(out.both().contains("web-migrate"), "{}", out.both());
    }
    let deployed = run_loud(root, &["-vvv", "deploy", "web", "--env", "dev"], &vars).await;
    assert_eq!(deployed.code, Some(0), "deploy: {}", deployed.both());
    canary.assert_run("deploy with hooks", &deployed);
    // The test Pod's recorded object holds a digest: the gate does not run it, and says
    // why without the value.
    assert!(
        deployed.both().contains("holds a secret value"),
        "{}",
        deployed.both()
    );
    for cluster in &clusters {
        // Not vacuous: the migration ran with the value.
        let job: kube::Api<k8s_openapi::api::batch::v1::Job> =
            kube::Api::namespaced(fleet.client(cluster).await, &namespace);
        let job = serde_json::to_value(
            job.get("web-migrate")
                .await
                .unwrap_or_else(|e| panic!("{cluster}: {e}")),
        )
        .unwrap_or_default();
        assert_eq!(
            job.pointer("/spec/template/spec/containers/0/env/0/value")
                .and_then(|v| v.as_str()),
            Some(FROM_VAULT),
            "{cluster}"
        );
        let records = records(fleet, cluster, &namespace).await;
        canary.assert_clean(&format!("{cluster} records with hooks"), &records);
        assert!(records.contains("web-migrate"), "{cluster}: {records}");
    }
    for args in [
        &["-vvv", "diff", "web", "--env", "dev"][..],
        &["diff", "web", "--env", "dev", "-o", "json"],
    ] {
        let out = run_loud(root, args, &vars).await;
        assert!(
            matches!(out.code, Some(0 | 1)),
            "{}: {}",
            args.join(" "),
            out.both()
        );
        canary.assert_run(&args.join(" "), &out);
    }
    // A migration that fails: its report and diagnosis, text and JSON, hold no value.
    for args in [
        &[
            "-vvv",
            "deploy",
            "web",
            "--env",
            "dev",
            "--version",
            "2.0",
            "--set",
            "migrateTag=jobfail",
        ][..],
        &[
            "deploy",
            "web",
            "--env",
            "dev",
            "--version",
            "2.0",
            "--set",
            "migrateTag=jobfail",
            "-o",
            "json",
        ],
    ] {
        let out = run_loud(root, args, &vars).await;
        assert_eq!(out.code, Some(1), "{}: {}", args.join(" "), out.both());
        canary.assert_run(&args.join(" "), &out);
        assert!(
            out.both().contains("web-migrate (pre-upgrade hook)"),
            "{}",
            out.both()
        );
    }
    for cluster in &clusters {
        canary.assert_clean(
            &format!("{cluster} records after the failed hook"),
            &records(fleet, cluster, &namespace).await,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_helmignored_secrets_file_and_a_link_out_of_the_chart_never_reach_a_record() {
    const IGNORED: &str = "Helmignored_canary-dec-8e41aa";
    const LINKED: &str = "hvs.Linked-canary-token-3f09";
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    assert!(clusters.len() >= 2, "dev and staging need a cluster each");
    let (dev, staging) = clusters.split_at(1);
    let namespace = fleet.namespace("canary-ignore").await;
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = repo.path();
    write_file(
        &root.join("environments/dev.yaml"),
        &environment_of("dev", dev, ""),
    );
    write_file(
        &root.join("environments/staging.yaml"),
        &environment_of("staging", staging, "promotion: { from: dev }\n"),
    );
    write_file(
        &root.join("releases/web/release.yaml"),
        &format!("apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: web, namespace: {namespace} }}\nspec:\n  chart: ./web\n  version: \"1.16.0\"\n"),
    );
    let folder = root.join("releases/web");
    let created = std::process::Command::new(helm_cli())
        .args(["create", "web"])
        .current_dir(&folder)
        .output()
        .unwrap_or_else(|e| panic!("helm create: {e}"));
    assert!(created.status.success(), "{created:?}");
    // What helm-secrets leaves next to the chart, listed in the chart's .helmignore.
    let chart = folder.join("web");
    let ignore = chart.join(".helmignore");
    let mut rules = std::fs::read_to_string(&ignore).unwrap_or_else(|e| panic!("{e}"));
    if !rules.ends_with('\n') {
        rules.push('\n');
    }
    rules.push_str("secrets.yaml.dec\n");
    write_file(&ignore, &rules);
    write_file(
        &chart.join("secrets.yaml.dec"),
        &format!("password: {IGNORED}\n"),
    );
    let vars = loud_vars(fleet);
    let canary = Canary::new(&[IGNORED, LINKED, fleet.vault_token()]);

    let deployed = run_loud(root, &["-vvv", "deploy", "web", "--env", "dev"], &vars).await;
    assert_eq!(deployed.code, Some(0), "deploy: {}", deployed.both());
    canary.assert_run("deploy", &deployed);
    for cluster in dev {
        let records = records(fleet, cluster, &namespace).await;
        assert!(
            records.contains("templates/_helpers.tpl"),
            "{cluster}: no chart recorded"
        );
        assert!(
            !records.contains("secrets.yaml.dec"),
            "{cluster}: {records}"
        );
        canary.assert_clean(&format!("{cluster} records"), &records);
    }

    let promoted = run_loud(
        root,
        &["-vvv", "promote", "web", "--from", "dev", "--to", "staging"],
        &vars,
    )
    .await;
    assert_eq!(promoted.code, Some(0), "promote: {}", promoted.both());
    canary.assert_run("promote", &promoted);
    for cluster in staging {
        let records = records(fleet, cluster, &namespace).await;
        assert!(
            records.contains("templates/_helpers.tpl"),
            "{cluster}: no chart recorded"
        );
        assert!(
            !records.contains("secrets.yaml.dec"),
            "{cluster}: {records}"
        );
        canary.assert_clean(&format!("{cluster} records after promote"), &records);
    }

    // A link to a token outside the chart: refused, naming it, before any change.
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token = outside.path().join("vault-token");
    write_file(&token, LINKED);
    let link = chart.join("files/t");
    std::fs::create_dir_all(chart.join("files")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&token, &link).unwrap_or_else(|e| panic!("{e}"));
    let before = records(fleet, &dev[0], &namespace).await;
    let refused = run_loud(root, &["-vvv", "deploy", "web", "--env", "dev"], &vars).await;
    assert_eq!(
        refused.code,
        Some(2),
        "deploy with the link: {}",
        refused.both()
    );
    assert!(
        refused.stderr.contains(&format!(
            "{}: a symbolic link to {}, outside the chart folder",
            link.display(),
            token.display()
        )),
        "{}",
        refused.stderr
    );
    canary.assert_run("deploy with a link out of the chart", &refused);
    assert_eq!(
        records(fleet, &dev[0], &namespace).await,
        before,
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_verify_command_printing_a_secret_is_scrubbed_and_never_sees_a_webhook_url() {
    const PASSWORD: &str = "Verify_canary-pw-1d4e6b";
    const TOKEN: &str = "Verify_canary-token-9a02c7";
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let cluster = &clusters[..1];
    let namespace = fleet.namespace("canary-verify").await;
    let environment = environment_of(
        "dev",
        cluster,
        "rollout:\n  timeout: 60s\n  waves:\n    - wave: 0\n      verify:\n        - run: ./verify.sh\n          timeout: 1m\nnotify:\n  - kind: webhook\n    url_env: CANARY_HOOK_URL\n",
    );
    let release = format!("apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: hello, namespace: {namespace} }}\nspec:\n  chart: ./chart\n  version: 1.0.0\n  secrets:\n    - secret_id: db-password\n      contexts: [ {{ name: default, vaultPath: \"kv/dev/{namespace}/verify\", vaultKey: password }} ]\n    - secret_id: api-token\n      contexts: [ {{ name: default, vaultPath: \"kv/dev/{namespace}/verify\", vaultKey: token }} ]\n");
    let repo = TestRepo::new(1, &environment, &release);
    let root = repo.root();
    // A smoke test that prints what it reads, as smoke tests do when they fail.
    let script = root.join("verify.sh");
    write_file(
        &script,
        &format!("#!/bin/sh\npassword=$(kubectl --context \"$FLOTILLA_CONTEXT\" -n {namespace} get secret hello-credentials -o jsonpath='{{.data.password}}' | base64 -d)\necho \"password=$password\"\necho \"encoded=$(printf %s \"$password\" | base64)\"\necho \"hook=${{CANARY_HOOK_URL:-unset}}\"\nexit 3\n"),
    );
    let mut permissions = std::fs::metadata(&script)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).unwrap_or_else(|e| panic!("{e}"));
    vault_write(
        fleet,
        &format!("dev/{namespace}/verify"),
        &[("password", PASSWORD), ("token", TOKEN)],
    )
    .await;
    let hook = flotilla_fleet::testing::HookReceiver::refusing_url();
    let mut vars = loud_vars(fleet);
    vars.push(("CANARY_HOOK_URL".into(), hook.clone()));
    let canary = Canary::new(&[PASSWORD, TOKEN, hook.as_str(), fleet.vault_token()]);

    let failed = run_loud(root, &["-vvv", "deploy", "hello", "--env", "dev"], &vars).await;
    assert_eq!(
        failed.code,
        Some(1),
        "the verify command fails: {}",
        failed.both()
    );
    canary.assert_run("deploy with a verify command", &failed);
    // Not vacuous: the command did read and print the value (scrubbed in the report).
    assert!(
        failed.stdout.contains("| password=<redacted>")
            && failed.stdout.contains("| encoded=<redacted>"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stdout.contains("| hook=unset"),
        "the verify command saw the webhook URL's variable: {}",
        failed.stdout
    );
}

/// The CI side of the canary: `canary` deployed through a `jwt` login (the JWT from a
/// variable, then from GitHub's token endpoint, played by a local server), with the
/// report files CI shows (`--summary`, `--junit`), a crashing deploy's files and JSON
/// report, a refused login's `-o json` error document, a freeze (its reason free text
/// with a newline and an escape sequence) in `status` and `history` and a deploy through
/// it: at `-vvv` with every log target, no form of any value, of either JWT or of the
/// request token is in any output, file or record, and the freeze line stays one line.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn no_token_or_value_in_a_jwt_login_a_freeze_the_ci_report_files_or_a_json_error() {
    use crate::support::rollout::jwt::{fake_token_endpoint, JwtIssuer};
    const AUDIENCE: &str = "canary-audience";
    const REQUEST_TOKEN: &str = "canary-request-token-0d9e41";
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let namespace = fleet.namespace("canary-ci").await;
    let repo = canary_repo(&clusters, &namespace);
    let root = repo.root();
    let issuer = JwtIssuer::start(fleet, &namespace, AUDIENCE).await;
    let env_file = root.join("environments/dev.yaml");
    let token_env = std::fs::read_to_string(&env_file).unwrap_or_else(|e| panic!("{e}"));
    let jwt_env = |source: &str| {
        let auth = format!(
            "auth: {{ method: jwt, role: deploy-dev, mount: {}, audience: {AUDIENCE}{source} }}",
            issuer.mount
        );
        assert!(token_env.contains("auth: { method: token }"), "{token_env}");
        write_file(
            &env_file,
            &token_env.replace("auth: { method: token }", &auth),
        );
    };
    jwt_env(", jwt_env: VAULT_ID_TOKEN");
    vault_write(
        fleet,
        &format!("dev/{namespace}/canary"),
        &[("password", PLAIN), ("pem", PEM), ("quoted", QUOTED)],
    )
    .await;
    let jwt = issuer.token("dev", AUDIENCE);
    let refused_jwt = issuer.token("feature-canary", AUDIENCE);
    let canary = Canary::new(&[
        PLAIN,
        PEM,
        QUOTED,
        &jwt,
        &refused_jwt,
        REQUEST_TOKEN,
        fleet.vault_token(),
        fleet.vault_role_id(),
        fleet.vault_secret_id(),
    ]);
    // No static Vault credential: the login is the JWT's.
    let mut base = loud_vars(fleet);
    base.retain(|(k, _)| !k.starts_with("VAULT_") || k == "VAULT_ADDR");
    let with = |extra: &[(&str, &str)]| {
        let mut vars = base.clone();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        vars
    };
    let summary = root.join("summary.md");
    let junit = root.join("junit.xml");
    let (summary_arg, junit_arg) = (summary.display().to_string(), junit.display().to_string());
    let files = ["--summary", &summary_arg, "--junit", &junit_arg];
    // The report files: clean, and about the run (each cluster has its row and case).
    let assert_files = |what: &str| {
        for file in [&summary, &junit] {
            let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}"));
            canary.assert_clean(&format!("{what}: {}", file.display()), &text);
            for cluster in &clusters {
                assert!(text.contains(cluster.as_str()), "{what}: {text}");
            }
        }
    };
    let by_jwt = with(&[("VAULT_ID_TOKEN", jwt.as_str())]);

    let deploy: Vec<&str> = ["-vvv", "deploy", "canary", "--env", "dev"]
        .into_iter()
        .chain(files)
        .collect();
    let out = run_loud(root, &deploy, &by_jwt).await;
    assert_eq!(out.code, Some(0), "deploy: {}", out.both());
    canary.assert_run("deploy through a jwt login", &out);
    assert_files("deploy");
    assert_eq!(
        db_password_env_of(fleet, &clusters[0], &namespace, "canary-web").await,
        PLAIN,
        "the value did reach the cluster"
    );

    // A crashing deploy: the files and the JSON report say why, the values stay out.
    let crash: Vec<&str> = deploy
        .iter()
        .copied()
        .chain(["--set", "tag=crashloop", "-o", "json"])
        .collect();
    let out = run_loud(root, &crash, &by_jwt).await;
    assert_eq!(out.code, Some(1), "crashing deploy: {}", out.both());
    canary.assert_run("crashing deploy", &out);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("the report is JSON: {e}: {}", out.stdout));
    assert_files("crashing deploy");
    let summary_text = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(summary_text.contains("rolled back"), "{summary_text}");

    // A refused login, `-o json`: the error document names the claim, not the token;
    // so do the report files, which hold the error then.
    let refused = with(&[("VAULT_ID_TOKEN", refused_jwt.as_str())]);
    let refused_deploy: Vec<&str> = deploy.iter().copied().chain(["-o", "json"]).collect();
    let out = run_loud(root, &refused_deploy, &refused).await;
    assert_eq!(out.code, Some(3), "refused login: {}", out.both());
    canary.assert_run("refused login", &out);
    for file in [&summary, &junit] {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}"));
        canary.assert_clean(&format!("refused login: {}", file.display()), &text);
        assert!(text.contains("role deploy-dev"), "{text}");
    }
    let error: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("the error document is JSON: {e}: {}", out.stdout));
    assert_eq!(error["exit_code"], 3, "{error:#}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("claim \"ref\"") && e.contains("role deploy-dev")),
        "{error:#}"
    );

    // A freeze whose reason is free text: a newline and an escape sequence in it.
    let reason = "incident 4711\nfake: line \u{1b}[31mred";
    let out = run_loud(
        root,
        &["-vvv", "freeze", "--env", "dev", "--reason", reason],
        &by_jwt,
    )
    .await;
    assert_eq!(out.code, Some(0), "freeze: {}", out.both());
    canary.assert_run("freeze", &out);
    for args in [
        &["-vvv", "status", "canary", "--env", "dev"][..],
        &["status", "canary", "--env", "dev", "-o", "json"],
        &["-vvv", "history", "canary", "--env", "dev"],
        &["history", "canary", "--env", "dev", "-o", "json"],
    ] {
        let out = run_loud(root, args, &by_jwt).await;
        let what = format!("{} while frozen", args.join(" "));
        assert!(matches!(out.code, Some(0 | 1)), "{what}: {}", out.both());
        canary.assert_run(&what, &out);
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("freeze: dev is frozen by "))
            .unwrap_or_else(|| panic!("{what}: no freeze line: {}", out.stderr));
        assert!(
            line.contains(r#""incident 4711\nfake: line \u{1b}[31mred""#),
            "{what}: the reason is shown escaped, on the freeze's one line: {line}"
        );
        assert!(
            !out.both().contains('\u{1b}') && !out.stderr.contains("\nfake: line"),
            "{what}: {}",
            out.both()
        );
    }
    let through: Vec<&str> = deploy
        .iter()
        .copied()
        .chain([
            "--override-freeze",
            "--reason",
            "hotfix 4711",
            "--set",
            "tag=2.0",
        ])
        .collect();
    let out = run_loud(root, &through, &by_jwt).await;
    assert_eq!(
        out.code,
        Some(0),
        "deploy through the freeze: {}",
        out.both()
    );
    canary.assert_run("deploy through the freeze", &out);
    assert_files("deploy through the freeze");
    let out = run_loud(root, &["unfreeze", "--env", "dev"], &by_jwt).await;
    assert_eq!(out.code, Some(0), "unfreeze: {}", out.both());

    // The JWT from GitHub's token endpoint: neither it nor the request token shows, a
    // wrong request token neither.
    jwt_env("");
    let (url, seen) = fake_token_endpoint(REQUEST_TOKEN, jwt.clone());
    let github = with(&[
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    ]);
    for args in [
        &["-vvv", "secrets", "check", "canary", "--env", "dev"][..],
        &deploy,
    ] {
        let out = run_loud(root, args, &github).await;
        let what = format!("{} through GitHub's token endpoint", args.join(" "));
        assert_eq!(out.code, Some(0), "{what}: {}", out.both());
        canary.assert_run(&what, &out);
    }
    assert_files("deploy through GitHub's token endpoint");
    assert_eq!(
        seen.lock().unwrap_or_else(|p| p.into_inner()).len(),
        2,
        "each command asked the endpoint once"
    );
    let wrong = with(&[
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "canary-wrong-request-token-77",
        ),
    ]);
    let out = run_loud(
        root,
        &["-vvv", "deploy", "canary", "--env", "dev", "-o", "json"],
        &wrong,
    )
    .await;
    assert_eq!(out.code, Some(3), "wrong request token: {}", out.both());
    canary.assert_run("wrong request token", &out);
    assert!(
        !out.both().contains("canary-wrong-request-token-77"),
        "{}",
        out.both()
    );

    for cluster in &clusters {
        canary.assert_clean(
            &format!("{cluster} records"),
            &records(fleet, cluster, &namespace).await,
        );
    }
    // Every login of these commands was revoked when its command ended.
    assert_eq!(issuer.live_logins(fleet).await, 0);
}
