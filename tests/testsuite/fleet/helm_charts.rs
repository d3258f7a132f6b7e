//! Helm charts deployed by flotilla to every cluster of the fleet's `dev` environment,
//! rendered by the Helm 4 CLI the fleet builds: the chart `helm create` generates (made
//! at test time, nobody here wrote it) with per-cluster globals, scaling and a Vault
//! secret, upgraded, failed and rolled back everywhere; an umbrella chart with a local
//! `file://` dependency, a CRD and `helm.sh/resource-policy: keep` (charts with hooks:
//! `helm_hooks`).

use crate::support::rollout as rollout_support;

use flate2::read::GzDecoder;
use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use rollout_support::{at_root, ok, output_never_showing};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

const DB_PASSWORD: &str = "fake-dev-hello-db-password-1111";

pub(super) fn helm() -> PathBuf {
    flotilla_fleet::binaries::Binaries::find()
        .ok()
        .and_then(|b| b.helm)
        .expect("the Helm CLI of the fleet (scripts/install-deps.sh builds it)")
}

pub(super) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A deployment repo with the repo's `dev` environment and no release yet.
pub(super) fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let env = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("environments/dev.yaml"),
    )
    .unwrap();
    write(&dir.path().join("environments/dev.yaml"), &env);
    dir
}

/// `helm create NAME` in `releases/<release>/`.
fn helm_create(root: &Path, release: &str, name: &str) -> PathBuf {
    let folder = root.join("releases").join(release);
    std::fs::create_dir_all(&folder).unwrap();
    let output = std::process::Command::new(helm())
        .arg("create")
        .arg(name)
        .current_dir(&folder)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    folder.join(name)
}

/// `flotilla --root ROOT ARGS` on the fleet with its Helm, never printing the password.
pub(super) fn with_helm(fleet: &Fleet, root: &Path, args: &[&str]) -> Output {
    let mut cmd = at_root(fleet, root, args);
    cmd.env("FLOTILLA_HELM", helm());
    output_never_showing(cmd, args, &[DB_PASSWORD])
}

fn images(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .template
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

async fn deployment(fleet: &Fleet, context: &str, namespace: &str, name: &str) -> Deployment {
    Api::<Deployment>::namespaced(fleet.client(context).await, namespace)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{context}: Deployment {namespace}/{name}: {e}"))
}

/// `rollback` with the namespace only (the runbook's way, no descriptor needed): the
/// target revision must be rendered again from its record, not merely re-applied.
fn rollback_from_records(fleet: &Fleet, root: &Path, release: &str, namespace: &str) {
    let rollback = with_helm(
        fleet,
        root,
        &[
            "rollback",
            release,
            "--env",
            "dev",
            "--namespace",
            namespace,
        ],
    );
    let said = String::from_utf8_lossy(&rollback.stderr).into_owned();
    ok(rollback);
    assert!(
        !said.contains("not rendered again"),
        "not re-rendered from its record: {said}"
    );
}

/// The region the dev environment gives a cluster (`global.region`).
fn region_of(context: &str) -> &str {
    context.trim_start_matches("dev-").trim_end_matches("-dc1")
}

/// The database password in Secret `web-db` of `namespace`.
async fn db_password(fleet: &Fleet, context: &str, namespace: &str) -> String {
    let secret = Api::<Secret>::namespaced(fleet.client(context).await, namespace)
        .get("web-db")
        .await
        .unwrap();
    let password = &secret.data.unwrap()["password"];
    String::from_utf8_lossy(&password.0).into_owned()
}

/// Every record of the release in `namespace`, decoded.
pub(super) async fn records(fleet: &Fleet, context: &str, namespace: &str) -> Vec<String> {
    let secrets = Api::<Secret>::namespaced(fleet.client(context).await, namespace)
        .list(&ListParams::default().labels("owner=flotilla"))
        .await
        .unwrap();
    secrets
        .items
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("release").cloned())
        .map(|bytes| {
            let mut text = String::new();
            GzDecoder::new(bytes.0.as_slice())
                .read_to_string(&mut text)
                .unwrap();
            text
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn the_chart_helm_create_makes_deploys_everywhere_upgrades_fails_and_rolls_back() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("helm").await;
    let repo = repo();
    let root = repo.path();
    let chart = helm_create(root, "web", "web");
    // What a team adds to its chart to use flotilla's per-cluster values: the cluster's
    // globals, its `.Capabilities`, and a secret from Vault in a Secret.
    write(
        &chart.join("templates/cluster.yaml"),
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "web.fullname" . }}-cluster
data:
  region: {{ .Values.global.region | quote }}
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  hasDeployments: {{ .Capabilities.APIVersions.Has "apps/v1/Deployment" | quote }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "web.fullname" . }}-db
stringData:
  password: {{ index .Values.secrets "db-password" | quote }}
"#,
    );
    write(
        &root.join("releases/web/release.yaml"),
        &format!(
            r#"apiVersion: flotilla/v1
kind: Release
metadata: {{ name: web, namespace: {namespace} }}
spec:
  chart: ./web
  version: "1.16.0"
  values:
    podLabels: {{ team: payments }}
  scaling:
    - context: default
      replicas: [ {{ name: web, count: 2 }} ]
    - context: dev-paris-dc1
      replicas: [ {{ name: web, count: 1 }} ]
  secrets:
    - secret_id: db-password
      contexts:
        - {{ name: default, vaultPath: "kv/{{{{global.env}}}}/hello/db", vaultKey: password }}
"#
        ),
    );
    let contexts = ["dev-europe-west1", "dev-us-central1", "dev-paris-dc1"];

    // `template` renders offline, every cluster, with placeholders.
    let shown = ok(with_helm(fleet, root, &["template", "web", "--env", "dev"]));
    assert!(shown.contains("<secret:db-password>"), "{shown}");
    assert!(
        !shown.contains("test-connection"),
        "a test hook was rendered: {shown}"
    );

    ok(with_helm(fleet, root, &["deploy", "web", "--env", "dev"]));
    for context in contexts {
        let client = fleet.client(context).await;
        let web = deployment(fleet, context, &namespace, "web").await;
        let replicas = if context == "dev-paris-dc1" { 1 } else { 2 };
        assert_eq!(web.spec.replicas, Some(replicas), "{context}");
        assert_eq!(images(&web), ["nginx:1.16.0"], "{context}");
        let labels = web.spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["team"], "payments");
        let version = client.apiserver_version().await.unwrap().git_version;
        let cm = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("web-cluster")
            .await
            .unwrap()
            .data
            .unwrap();
        let region = region_of(context);
        assert_eq!(cm["region"], region, "{context}");
        assert_eq!(cm["kubeVersion"], version, "{context}: .Capabilities");
        assert_eq!(cm["hasDeployments"], "true", "{context}");
        assert_eq!(db_password(fleet, context, &namespace).await, DB_PASSWORD);
        // The test hook of `helm create` is Helm's `helm test`, not part of a deploy.
        let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .unwrap();
        assert!(
            pods.items
                .iter()
                .all(|p| !p.metadata.name.as_deref().unwrap_or("").contains("test")),
            "{context}"
        );
        for record in records(fleet, context, &namespace).await {
            assert!(
                !record.contains(DB_PASSWORD),
                "{context}: a record holds the value"
            );
            assert!(
                record.contains("templates/_helpers.tpl"),
                "{context}: no chart recorded"
            );
        }
    }

    ok(with_helm(
        fleet,
        root,
        &["deploy", "web", "--env", "dev", "--version", "1.17.0"],
    ));
    for context in contexts {
        let web = deployment(fleet, context, &namespace, "web").await;
        assert_eq!(images(&web), ["nginx:1.17.0"], "{context}");
    }

    // A tag the simulated kubelet crashloops: the run fails and puts every cluster back.
    let failed = with_helm(
        fleet,
        root,
        &["deploy", "web", "--env", "dev", "--version", "crashloop"],
    );
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    for context in contexts {
        let web = deployment(fleet, context, &namespace, "web").await;
        assert_eq!(images(&web), ["nginx:1.17.0"], "{context}: not restored");
    }

    // And the on-call runbook: back to what ran before 1.17.0, from the records alone
    // (the checkout's chart is gone, and with it the loadable descriptor).
    std::fs::remove_dir_all(&chart).unwrap();
    rollback_from_records(fleet, root, "web", &namespace);
    for context in contexts {
        let web = deployment(fleet, context, &namespace, "web").await;
        assert_eq!(images(&web), ["nginx:1.16.0"], "{context}: not rolled back");
        assert_eq!(db_password(fleet, context, &namespace).await, DB_PASSWORD);
    }
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.flotilla.dev
spec:
  group: example.flotilla.dev
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: { type: object, x-kubernetes-preserve-unknown-fields: true }
"#;

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn an_umbrella_chart_with_a_local_dependency_a_crd_and_a_kept_object() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("helm-umbrella").await;
    let repo = repo();
    let root = repo.path();
    let release = root.join("releases/shop");
    write(
        &release.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n  - name: cache\n    version: 0.1.0\n    repository: file://../cache\n",
    );
    write(
        &release.join("chart/values.yaml"),
        "widget: true\nlegacy: true\ncache:\n  size: small\n",
    );
    write(&release.join("chart/crds/widgets.yaml"), CRD);
    write(
        &release.join("chart/templates/widget.yaml"),
        "{{- if .Values.widget }}\napiVersion: example.flotilla.dev/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}-widget\nspec:\n  region: {{ .Values.global.region }}\n{{- end }}\n",
    );
    write(
        &release.join("chart/templates/legacy.yaml"),
        "{{- if .Values.legacy }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-legacy\n  annotations:\n    helm.sh/resource-policy: keep\ndata: {}\n{{- end }}\n",
    );
    write(
        &release.join("chart/templates/NOTES.txt"),
        "Thank you for installing {{ .Chart.Name }}.\n",
    );
    write(
        &release.join("cache/Chart.yaml"),
        "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    );
    write(&release.join("cache/values.yaml"), "size: large\n");
    write(
        &release.join("cache/templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cache\ndata:\n  size: {{ .Values.size }}\n  region: {{ .Values.global.region }}\n",
    );
    write(
        &release.join("release.yaml"),
        &format!("apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: shop, namespace: {namespace} }}\nspec:\n  chart: ./chart\n  version: 1.0.0\n"),
    );
    let contexts = ["dev-europe-west1", "dev-us-central1", "dev-paris-dc1"];
    let widgets = |client: kube::Client| {
        let gvk = GroupVersionKind::gvk("example.flotilla.dev", "v1", "Widget");
        Api::<DynamicObject>::namespaced_with(client, &namespace, &ApiResource::from_gvk(&gvk))
    };

    ok(with_helm(fleet, root, &["deploy", "shop", "--env", "dev"]));
    for context in contexts {
        let client = fleet.client(context).await;
        let cache = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("shop-cache")
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(cache["size"], "small", "{context}: the parent's values");
        let region = region_of(context);
        assert_eq!(
            cache["region"], region,
            "{context}: globals reach the subchart"
        );
        let widget = widgets(client.clone()).get("shop-widget").await.unwrap();
        assert_eq!(widget.data["spec"]["region"], region);
        Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("shop-legacy")
            .await
            .unwrap();
    }

    // The next revision drops the Widget and the kept ConfigMap: the Widget is pruned,
    // the ConfigMap kept (helm.sh/resource-policy: keep), the CRD never pruned.
    ok(with_helm(
        fleet,
        root,
        &[
            "deploy",
            "shop",
            "--env",
            "dev",
            "--set",
            "widget=false",
            "--set",
            "legacy=false",
        ],
    ));
    for context in contexts {
        let client = fleet.client(context).await;
        assert!(widgets(client.clone())
            .get_opt("shop-widget")
            .await
            .unwrap()
            .is_none());
        assert!(Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get_opt("shop-legacy")
            .await
            .unwrap()
            .is_some());
        assert!(Api::<CustomResourceDefinition>::all(client)
            .get_opt("widgets.example.flotilla.dev")
            .await
            .unwrap()
            .is_some());
    }

    // The record holds the subchart: a rollback renders it without the checkout.
    std::fs::remove_dir_all(release.join("cache")).unwrap();
    std::fs::remove_dir_all(release.join("chart")).unwrap();
    rollback_from_records(fleet, root, "shop", &namespace);
    for context in contexts {
        let client = fleet.client(context).await;
        assert!(widgets(client)
            .get_opt("shop-widget")
            .await
            .unwrap()
            .is_some());
    }
}

/// `helm install` of `chart` as `name` in `namespace` of `context`.
fn helm_install(fleet: &Fleet, context: &str, name: &str, chart: &Path, namespace: &str) {
    let output = std::process::Command::new(helm())
        .args(["install", name])
        .arg(chart)
        .args(["--namespace", namespace, "--kube-context", context])
        .args(["--set", "replicaCount=2"])
        .arg("--kubeconfig")
        .arg(fleet.kubeconfig())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{context}: helm install: {output:?}"
    );
}

/// The ReplicaSets of `namespace` (name → uid) once Deployment `name` is available.
async fn replica_sets_when_available(
    fleet: &Fleet,
    context: &str,
    namespace: &str,
    name: &str,
) -> Vec<(String, String)> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let client = fleet.client(context).await;
    flotilla_fleet::testing::wait_for(
        Api::<Deployment>::namespaced(client.clone(), namespace),
        name,
        std::time::Duration::from_secs(60),
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.available_replicas == Some(2) && s.replicas == Some(2))
        },
    )
    .await
    .unwrap();
    let mut sets: Vec<(String, String)> = Api::<ReplicaSet>::namespaced(client, namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|rs| {
            (
                rs.metadata.name.unwrap_or_default(),
                rs.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();
    sets.sort();
    sets
}

/// The uids of the pods of `namespace`, sorted.
async fn pod_uids(fleet: &Fleet, context: &str, namespace: &str) -> Vec<String> {
    let mut uids: Vec<String> =
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(fleet.client(context).await, namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.uid)
            .collect();
    uids.sort();
    uids
}

fn web_release(root: &Path, namespace: &str) {
    write(
        &root.join("releases/web/release.yaml"),
        &format!("apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: web, namespace: {namespace} }}\nspec:\n  chart: ./web\n  version: \"1.16.0\"\n  values: {{ replicaCount: 2 }}\n"),
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_helm_release_in_three_clusters_is_taken_over_without_a_restart_and_rolled_back_to() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("helm-adopt").await;
    let repo = repo();
    let root = repo.path();
    let chart = helm_create(root, "web", "web");
    web_release(root, &namespace);
    let contexts = ["dev-europe-west1", "dev-us-central1", "dev-paris-dc1"];
    let mut before = Vec::new();
    for context in contexts {
        helm_install(fleet, context, "web", &chart, &namespace);
        let sets = replica_sets_when_available(fleet, context, &namespace, "web").await;
        let web = deployment(fleet, context, &namespace, "web").await;
        before.push((sets, web.spec.template));
    }

    // `diff` (what a deploy of the checkout would do): the chart and values are Helm's,
    // so only ownership labels of the objects' metadata change, never a pod template.
    let deploy_diff: serde_json::Value = serde_json::from_str(&ok(with_helm(
        fleet,
        root,
        &["diff", "web", "--env", "dev", "-o", "json"],
    )))
    .unwrap();
    for context in contexts {
        for change in deploy_diff[context]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["changes"].as_array().unwrap())
        {
            let path = change["path"].as_str().unwrap();
            assert!(
                path.starts_with("metadata.labels."),
                "{context}: a deploy would change {path}"
            );
        }
    }

    // What the takeover changes: ownership labels and annotations, nothing else.
    let planned: serde_json::Value = serde_json::from_str(&ok(with_helm(
        fleet,
        root,
        &[
            "adopt-helm",
            "web",
            "--env",
            "dev",
            "--dry-run",
            "-o",
            "json",
        ],
    )))
    .unwrap();
    for context in contexts {
        let diffs = planned[context].as_array().unwrap();
        assert_eq!(diffs.len(), 3, "{context}: {planned}");
        for change in diffs.iter().flat_map(|d| d["changes"].as_array().unwrap()) {
            let path = change["path"].as_str().unwrap();
            assert!(
                path.starts_with("metadata.labels.") || path.starts_with("metadata.annotations."),
                "{context}: the takeover would change {path}"
            );
        }
    }

    ok(with_helm(
        fleet,
        root,
        &["adopt-helm", "web", "--env", "dev"],
    ));
    for (context, (sets, template)) in contexts.iter().zip(&before) {
        let after = replica_sets_when_available(fleet, context, &namespace, "web").await;
        assert_eq!(
            &after, sets,
            "{context}: a ReplicaSet came or went at the takeover"
        );
        let web = deployment(fleet, context, &namespace, "web").await;
        assert_eq!(
            &web.spec.template, template,
            "{context}: the pod template changed"
        );
        let annotations = web.metadata.annotations.unwrap_or_default();
        assert!(
            annotations.keys().all(|k| !k.starts_with("meta.helm.sh/")),
            "{context}: still Helm's: {annotations:?}"
        );
        let managers: Vec<String> = web
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert!(
            !managers.iter().any(|m| m == "helm"),
            "{context}: {managers:?}"
        );
        // Helm's own records stay unless asked.
        let helm_secrets = Api::<Secret>::namespaced(fleet.client(context).await, &namespace)
            .list(&ListParams::default().labels("owner=helm,name=web"))
            .await
            .unwrap();
        assert_eq!(helm_secrets.items.len(), 1, "{context}");
    }

    // The first flotilla deploy of the same content restarts nothing: the release's
    // pods are found through the Deployment's selector, not a label in its template.
    let mut pods_before = Vec::new();
    for context in contexts {
        pods_before.push(pod_uids(fleet, context, &namespace).await);
    }
    ok(with_helm(fleet, root, &["deploy", "web", "--env", "dev"]));
    for ((context, (sets, template)), pods) in contexts.iter().zip(&before).zip(&pods_before) {
        let after = replica_sets_when_available(fleet, context, &namespace, "web").await;
        assert_eq!(
            &after, sets,
            "{context}: the deploy made or removed a ReplicaSet"
        );
        let web = deployment(fleet, context, &namespace, "web").await;
        assert_eq!(
            &web.spec.template, template,
            "{context}: the deploy changed the pod template"
        );
        assert_eq!(
            &pod_uids(fleet, context, &namespace).await,
            pods,
            "{context}: a pod was recreated"
        );
    }
    // `status` finds the release's pods through the selector too: healthy everywhere.
    let status: serde_json::Value = serde_json::from_str(&ok(with_helm(
        fleet,
        root,
        &["status", "web", "--env", "dev", "-o", "json"],
    )))
    .unwrap();
    for context in contexts {
        assert_eq!(status[context]["health"], "healthy", "{status:#}");
    }

    ok(with_helm(
        fleet,
        root,
        &["deploy", "web", "--env", "dev", "--version", "1.17.0"],
    ));
    for context in contexts {
        let web = deployment(fleet, context, &namespace, "web").await;
        assert_eq!(images(&web), ["nginx:1.17.0"], "{context}");
    }

    // Back to the migrated revision: Helm's spec, on Helm's own ReplicaSet.
    ok(with_helm(fleet, root, &["rollback", "web", "--env", "dev"]));
    for (context, (sets, template)) in contexts.iter().zip(&before) {
        let web = deployment(fleet, context, &namespace, "web").await;
        assert_eq!(&web.spec.template, template, "{context}: not Helm's spec");
        let after = replica_sets_when_available(fleet, context, &namespace, "web").await;
        for (name, uid) in sets {
            assert!(
                after.contains(&(name.clone(), uid.clone())),
                "{context}: Helm's ReplicaSet {name} is gone: {after:?}"
            );
        }
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn adopt_helm_refuses_a_missing_or_unsettled_helm_release_and_can_remove_helms_records() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("helm-adopt-one").await;
    let repo = repo();
    let root = repo.path();
    let chart = helm_create(root, "web", "web");
    web_release(root, &namespace);
    helm_install(fleet, "dev-paris-dc1", "legacy-web", &chart, &namespace);
    replica_sets_when_available(fleet, "dev-paris-dc1", &namespace, "legacy-web").await;

    // Two clusters have no such Helm release: nothing changes anywhere.
    let refused = with_helm(
        fleet,
        root,
        &[
            "adopt-helm",
            "web",
            "--env",
            "dev",
            "--helm-release",
            "legacy-web",
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("cluster `dev-europe-west1`: no deployed revision of Helm release `legacy-web` in namespace `{namespace}`"))
            && stderr.contains("(nothing was changed)"),
        "{stderr}"
    );
    assert!(records(fleet, "dev-paris-dc1", &namespace).await.is_empty());

    // A failed `helm upgrade` on top: what runs is neither revision, so it is refused
    // until Helm settles it.
    let helm_in_paris = |args: &[&str]| {
        let output = std::process::Command::new(helm())
            .args(args)
            .args(["--namespace", &namespace, "--kube-context", "dev-paris-dc1"])
            .arg("--kubeconfig")
            .arg(fleet.kubeconfig())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    helm_in_paris(&[
        "upgrade",
        "legacy-web",
        chart.to_str().unwrap(),
        "--reuse-values",
        "--set",
        "image.tag=never",
        "--wait",
        "--timeout",
        "3s",
    ]);
    let unsettled = with_helm(
        fleet,
        root,
        &[
            "adopt-helm",
            "web",
            "--env",
            "dev",
            "--clusters",
            "dev-paris-dc1",
            "--helm-release",
            "legacy-web",
        ],
    );
    assert_eq!(unsettled.status.code(), Some(2), "{unsettled:?}");
    let stderr = String::from_utf8_lossy(&unsettled.stderr);
    assert!(
        stderr.contains("its newest revision 2 is `failed`, not deployed"),
        "{stderr}"
    );
    helm_in_paris(&["rollback", "legacy-web", "1", "--wait", "--timeout", "60s"]);

    ok(with_helm(
        fleet,
        root,
        &[
            "adopt-helm",
            "web",
            "--env",
            "dev",
            "--clusters",
            "dev-paris-dc1",
            "--helm-release",
            "legacy-web",
            "--remove-helm-secrets",
        ],
    ));
    let helm_secrets = Api::<Secret>::namespaced(fleet.client("dev-paris-dc1").await, &namespace)
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .unwrap();
    assert!(
        helm_secrets.items.is_empty(),
        "Helm's records are still there"
    );
    assert_eq!(records(fleet, "dev-paris-dc1", &namespace).await.len(), 1);
}
