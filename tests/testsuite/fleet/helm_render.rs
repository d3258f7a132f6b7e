//! Helm charts through the engine, with the Helm 4 CLI the fleet builds (no cluster):
//! the two renders keep secret values out of what is stored and out of Helm's error
//! messages, `.Capabilities` is the cluster's when given and Helm's default without,
//! empty flotilla-only maps are not sent to a chart's values schema. (`helm_render`:
//! a helm too old is refused.)

use crate::helm_render::{chart, write, SECRET_TEMPLATE};
use flotilla::config::{ChartType, Cluster, Globals, ReleaseDescriptor};
use flotilla::engine::{Capabilities, Chart, ReleaseInfo, RenderError, Renderer, SecretValues};
use std::path::Path;

const SECRET: &str = "s3cr3t-helm-value-8842";

/// Points `FLOTILLA_HELM` at the fleet's Helm, once per process: the engine finds its
/// `helm` once per process, and these are the only tests that render a Helm chart in
/// this process (the others run flotilla with `FLOTILLA_HELM` in the child's
/// environment). Set once and never changed, so no test reads a value another replaces.
fn use_fleet_helm() {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        let helm = flotilla_fleet::binaries::Binaries::find()
            .ok()
            .and_then(|b| b.helm)
            .expect("the Helm CLI of the fleet (scripts/install-deps.sh builds it)");
        std::env::set_var("FLOTILLA_HELM", helm);
    });
}

fn descriptor() -> ReleaseDescriptor {
    serde_yaml_ng::from_str(
        "apiVersion: flotilla/v1\nkind: Release\nmetadata: { name: demo, namespace: ns1 }\nspec:\n  chart: ./chart\n  version: 2.5.0\n",
    )
    .unwrap()
}

fn renderer<'a>(chart: &'a Chart, descriptor: &'a ReleaseDescriptor) -> Renderer<'a> {
    Renderer::new(
        chart,
        ReleaseInfo::from_descriptor(descriptor, 1),
        &descriptor.spec,
        Path::new("releases/demo/release.yaml"),
        "dev",
        &Default::default(),
    )
    .unwrap()
}

fn cluster() -> Cluster {
    Cluster {
        context: "eu-1".into(),
        wave: 0,
        global: Globals {
            cloud: true,
            env: "dev".into(),
            region: "europe-west1".into(),
            cluster_name: "eu-1".into(),
            extra: Default::default(),
        },
    }
}

fn secrets() -> SecretValues {
    SecretValues::from([("db".to_owned(), SECRET.to_owned())])
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_helm_chart_renders_twice_and_only_the_apply_holds_the_value() {
    use_fleet_helm();
    let dir = chart(&[("secret.yaml", SECRET_TEMPLATE)]);
    let chart = Chart::load(dir.path()).unwrap();
    assert_eq!(chart.chart_type(), ChartType::Helm);
    let descriptor = descriptor();
    let renderer = renderer(&chart, &descriptor);
    let renders = renderer
        .render_for_apply(&cluster(), &secrets(), 1)
        .unwrap();
    let applied = &renders.applied.objects[0];
    assert_eq!(applied.object["stringData"]["password"], SECRET);
    assert_eq!(applied.object["stringData"]["level"], "info");
    assert_eq!(applied.object["stringData"]["region"], "europe-west1");
    assert_eq!(
        applied.object["stringData"]["version"], "2.5.0",
        "appVersion is the release's version"
    );
    assert_eq!(applied.source, dir.path().join("templates/secret.yaml"));
    let stored = serde_json::to_string(&renders.stored).unwrap();
    assert!(!stored.contains(SECRET), "{stored}");
    assert!(stored.contains("redacted"), "{stored}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn helms_error_messages_never_show_a_secret_value() {
    use_fleet_helm();
    // Fails only with the value (the placeholder render passes), quoting it.
    let failing = r#"{{- if ne .Values.secrets.db "<secret:db>" }}{{ fail (printf "refused %s" .Values.secrets.db) }}{{ end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: x
"#;
    let dir = chart(&[("cm.yaml", failing)]);
    let chart = Chart::load(dir.path()).unwrap();
    let descriptor = descriptor();
    let renderer = renderer(&chart, &descriptor);
    let err = renderer
        .render_for_apply(&cluster(), &secrets(), 1)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RenderError::HelmTemplate { .. }), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("refused <secret:db>"), "{text}");
    assert!(
        !text.contains("flotilla-helm-"),
        "the temporary folder shows: {text}"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn capabilities_are_the_clusters_when_given_and_helms_default_without() {
    use_fleet_helm();
    let template = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: caps
data:
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  widgets: {{ .Capabilities.APIVersions.Has "example.dev/v1/Widget" | quote }}
"#;
    let dir = chart(&[("caps.yaml", template)]);
    let chart = Chart::load(dir.path()).unwrap();
    let descriptor = descriptor();
    let render = |capabilities: Option<Capabilities>| {
        let renderer = renderer(&chart, &descriptor).with_capabilities(capabilities);
        let manifest = renderer.render(&cluster(), &SecretValues::new()).unwrap();
        manifest.objects[0].object["data"].clone()
    };
    let cluster_caps = Capabilities {
        kube_version: "v1.31.4".into(),
        api_versions: vec!["example.dev/v1".into(), "example.dev/v1/Widget".into()],
    };
    let given = render(Some(cluster_caps));
    assert_eq!(given["kube"], "v1.31.4");
    assert_eq!(given["widgets"], "true");
    let default = render(None);
    assert_ne!(default["kube"], "v1.31.4");
    assert_eq!(default["widgets"], "false");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn empty_secrets_and_scaling_do_not_break_a_strict_values_schema() {
    use_fleet_helm();
    let dir = chart(&[(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  level: {{ .Values.level }}\n",
    )]);
    write(
        &dir.path().join("values.schema.json"),
        r#"{"type": "object", "additionalProperties": false,
            "properties": {"level": {"type": "string"}, "global": {"type": "object"}}}"#,
    );
    let chart = Chart::load(dir.path()).unwrap();
    let descriptor = descriptor();
    let renderer = renderer(&chart, &descriptor);
    let manifest = renderer.render(&cluster(), &SecretValues::new()).unwrap();
    assert_eq!(manifest.objects[0].object["data"]["level"], "info");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_packed_subchart_and_a_file_dependency_render_and_survive_a_record() {
    use_fleet_helm();
    let dir = tempfile::tempdir().unwrap();
    let umbrella = dir.path().join("umbrella");
    write(
        &umbrella.join("Chart.yaml"),
        "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n  - { name: local, version: 0.1.0, repository: \"file://../local\" }\n  - { name: packed, version: 0.2.0, repository: \"https://charts.example.com\" }\n",
    );
    let configmap = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  region: {{{{ .Values.global.region }}}}\n")
    };
    for (name, version) in [("local", "0.1.0"), ("packed", "0.2.0")] {
        let sub = dir.path().join(name);
        write(
            &sub.join("Chart.yaml"),
            &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
        );
        write(&sub.join("templates/cm.yaml"), &configmap(name));
    }
    // `helm dependency build` would download `packed`: here `helm package` makes it.
    let packaged = std::process::Command::new(std::env::var_os("FLOTILLA_HELM").unwrap())
        .arg("package")
        .arg(dir.path().join("packed"))
        .arg("--destination")
        .arg(umbrella.join("charts"))
        .output()
        .unwrap();
    assert!(packaged.status.success(), "{packaged:?}");

    let chart = Chart::load(&umbrella).unwrap();
    assert!(chart.files().contains_key("charts/local/templates/cm.yaml"));
    assert!(chart.binary_files().contains_key("charts/packed-0.2.0.tgz"));
    let names = |chart: &Chart| -> Vec<String> {
        let descriptor = descriptor();
        let manifest = renderer(chart, &descriptor)
            .render(&cluster(), &SecretValues::new())
            .unwrap();
        manifest
            .objects
            .iter()
            .map(|o| format!("{}={}", o.name(), o.object["data"]["region"]))
            .collect()
    };
    let rendered = names(&chart);
    assert_eq!(
        rendered,
        ["local=\"europe-west1\"", "packed=\"europe-west1\""],
        "{rendered:?}"
    );
    // What a record keeps renders the same, without the folders.
    let again = Chart::from_files(
        Path::new("<record>"),
        chart.files(),
        chart.binary_files(),
        Some(ChartType::Helm),
    )
    .unwrap();
    drop(dir);
    assert_eq!(names(&again), rendered);
}
