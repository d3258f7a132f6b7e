//! The engine on small charts written by the tests: value precedence, the render
//! context, documents, partial indentation, scaling, and secrets kept out of errors.

use flotilla::config::{Cluster, Globals, ReleaseDescriptor};
use flotilla::engine::{
    Chart, CommandLineValues, Manifest, ReleaseInfo, RenderError, Renderer, Renders, SecretValues,
    ValueSource,
};
use serde_json::json;
use std::path::Path;

fn write_chart(dir: &Path, values: &str, templates: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("templates")).expect("create templates/");
    std::fs::write(dir.join("Chart.yaml"), "name: demo\nversion: 0.3.0\n")
        .expect("write Chart.yaml");
    std::fs::write(dir.join("values.yaml"), values).expect("write values.yaml");
    for (name, text) in templates {
        std::fs::write(dir.join("templates").join(name), text).expect("write a template");
    }
}

fn descriptor(extra: &str) -> ReleaseDescriptor {
    let text = format!(
        "apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: demo, namespace: ns1 }}\nspec:\n  chart: ./chart\n  version: 2.5.0\n{extra}"
    );
    serde_yaml_ng::from_str(&text).expect("the test descriptor parses")
}

fn cluster(context: &str, region: &str) -> Cluster {
    Cluster {
        context: context.into(),
        wave: 0,
        global: Globals {
            cloud: true,
            env: "dev".into(),
            region: region.into(),
            cluster_name: context.into(),
            extra: Default::default(),
        },
    }
}

fn render(
    values: &str,
    templates: &[(&str, &str)],
    spec: &str,
    sets: &[&str],
    secrets: &SecretValues,
) -> Result<Manifest, RenderError> {
    let dir = tempfile::tempdir().expect("tempdir");
    write_chart(dir.path(), values, templates);
    let chart = Chart::load(dir.path())?;
    let descriptor = descriptor(spec);
    let sources: Vec<_> = sets
        .iter()
        .map(|s| ValueSource::Set(s.to_string()))
        .collect();
    let sets = CommandLineValues::parse(&sources).expect("a valid --set");
    let renderer = Renderer::new(
        &chart,
        ReleaseInfo::from_descriptor(&descriptor, 7),
        &descriptor.spec,
        Path::new("release.yaml"),
        "dev",
        &sets,
    )?;
    renderer.render(&cluster("dev-a", "north"), secrets)
}

const SHOW: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: show\ndata:\n  a: {{quote Values.a}}\n  b: {{quote Values.b}}\n  c: {{quote Values.c}}\n  d: {{quote Values.d}}\n  e: {{quote Values.e.x}}\n  region: {{Values.global.region}}\n  release: {{Release.Name}}/{{Release.Namespace}}/{{Release.Revision}}/{{Release.Version}}\n  chart: {{Chart.Name}}-{{Chart.Version}}\n  replicas: {{quote Values.scaling.[demo-web]}}\n  secret: {{quote Values.secrets.[db-password]}}\n";

#[test]
fn values_merge_in_mission_order_and_the_context_is_complete() {
    let values = "a: chart\nb: chart\nc: chart\nd: chart\ne: { x: chart, list: [1, 2] }\nglobal: { region: from-chart, extra: kept }\n";
    let spec = "  values: { b: spec, c: spec, d: spec, e: { list: [3] } }\n  environments:\n    dev: { values: { c: env, d: env } }\n    prod: { values: { a: prod } }\n  scaling:\n    - context: default\n      replicas: [ { name: demo-web, count: 5 } ]\n";
    let secrets = SecretValues::from([(
        "db-password".to_string(),
        "<secret:db-password>".to_string(),
    )]);
    let web = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: demo-web\n";
    let templates = [("show.yaml", SHOW), ("web.yaml", web)];
    let manifest = render(values, &templates, spec, &["d=set"], &secrets).expect("renders");
    let data = &manifest.objects[0].object["data"];
    assert_eq!(data["a"], "chart");
    assert_eq!(data["b"], "spec");
    assert_eq!(data["c"], "env", "the dev override, not prod's");
    assert_eq!(data["d"], "set");
    assert_eq!(data["e"], "chart", "maps deep-merge");
    assert_eq!(
        data["region"], "north",
        "the cluster's global beats values.yaml"
    );
    assert_eq!(data["release"], "demo/ns1/7/2.5.0");
    assert_eq!(data["chart"], "demo-0.3.0");
    assert_eq!(data["replicas"], "5");
    assert_eq!(data["secret"], "<secret:db-password>");
    assert_eq!(
        manifest.objects[1].object["spec"]["replicas"], 5,
        "scaling adds a missing spec"
    );
}

#[test]
fn documents_split_empty_ones_dropped_and_partials_indented() {
    let templates = [
        ("_labels.hbs", "app: {{Release.Name}}\ntier: web\n"),
        (
            "many.yaml",
            "# only a comment\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  labels:\n    {{> labels}}\n---\n{{#if Values.enabled}}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n{{/if}}\n",
        ),
    ];
    let manifest = render(
        "enabled: false\n",
        &templates,
        "",
        &[],
        &SecretValues::new(),
    )
    .expect("renders");
    assert_eq!(
        manifest.objects.len(),
        1,
        "comment-only, empty and if-false documents are dropped"
    );
    assert_eq!(
        manifest.objects[0].object["metadata"]["labels"],
        json!({"app": "demo", "tier": "web"})
    );
    let manifest =
        render("enabled: true\n", &templates, "", &[], &SecretValues::new()).expect("renders");
    assert_eq!(
        manifest
            .objects
            .iter()
            .map(|o| o.name())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
}

#[test]
fn scaling_sets_replicas_after_rendering() {
    let web = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: demo-web\nspec:\n  replicas: 1\n";
    let spec = "  scaling:\n    - context: default\n      replicas: [ { name: demo-web, count: 1 } ]\n    - context: dev-a\n      replicas: [ { name: demo-web, count: 6 } ]\n";
    let manifest =
        render("", &[("web.yaml", web)], spec, &[], &SecretValues::new()).expect("renders");
    assert_eq!(manifest.objects[0].object["spec"]["replicas"], 6);
    let dynamic = manifest.objects[0].to_dynamic().expect("a DynamicObject");
    assert_eq!(dynamic.metadata.name.as_deref(), Some("demo-web"));
    assert_eq!(dynamic.data["spec"]["replicas"], 6);
}

#[test]
fn secret_values_never_appear_in_errors() {
    let secret = "hunter2-very-secret";
    let secrets = SecretValues::from([("db-password".to_string(), secret.to_string())]);
    // Rendered YAML broken on the very line that holds the secret.
    let broken = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: {{Values.secrets.[db-password]}}: x\n";
    let err = render("", &[("secret.yaml", broken)], "", &[], &secrets).expect_err("invalid YAML");
    let message = err.to_string();
    assert!(message.contains("rendered line 6"), "{message}");
    assert!(message.contains("<secret:db-password>"), "{message}");
    assert!(!message.contains(secret), "{message}");

    // A helper complaining about an argument that is the secret.
    let bad_width = "x: {{indent Values.secrets.[db-password] \"a\"}}\n";
    let err = render("", &[("bad.yaml", bad_width)], "", &[], &secrets).expect_err("bad width");
    assert!(!err.to_string().contains(secret), "{err}");
    assert!(err.to_string().contains("<secret:db-password>"), "{err}");
}

#[test]
fn a_template_error_names_the_chart_file_and_line() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{Values.nope.deeper}}\n";
    let err =
        render("", &[("cm.yaml", text)], "", &[], &SecretValues::new()).expect_err("missing value");
    let message = err.to_string();
    assert!(message.contains("templates/cm.yaml:6:"), "{message}");
    assert!(
        message.contains("`Values.nope.deeper` is missing"),
        "{message}"
    );
}

#[test]
fn each_render_can_carry_its_own_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: r{{Release.Revision}}\n";
    write_chart(dir.path(), "", &[("cm.yaml", text)]);
    let chart = Chart::load(dir.path()).expect("loads");
    let descriptor = descriptor("");
    let info = ReleaseInfo::from_descriptor(&descriptor, 1);
    let renderer = Renderer::new(
        &chart,
        info,
        &descriptor.spec,
        Path::new("r.yaml"),
        "dev",
        &Default::default(),
    )
    .expect("merges");
    let manifest = renderer
        .render_revision(&cluster("dev-a", "north"), &SecretValues::new(), 12)
        .expect("renders");
    assert_eq!(
        manifest.objects[0].name(),
        "r12",
        "each cluster renders its own revision"
    );
}

/// Both renders of a one-template chart.
fn render_both(templates: &[(&str, &str)], secrets: &SecretValues) -> Result<Renders, RenderError> {
    let dir = tempfile::tempdir().expect("tempdir");
    write_chart(dir.path(), "", templates);
    let chart = Chart::load(dir.path())?;
    let descriptor = descriptor("");
    let renderer = Renderer::new(
        &chart,
        ReleaseInfo::from_descriptor(&descriptor, 3),
        &descriptor.spec,
        Path::new("release.yaml"),
        "dev",
        &Default::default(),
    )?;
    renderer.render_for_apply(&cluster("dev-a", "north"), secrets, 3)
}

#[test]
fn two_renders_values_only_in_what_is_applied_wherever_the_chart_puts_them() {
    let secret = "hunter2-two-renders";
    let secrets = SecretValues::from([("db-password".to_string(), secret.to_string())]);
    let web = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    checksum/secrets: {{sha256sum (toJson Values.secrets)}}\n    url: postgres://app:{{Values.secrets.[db-password]}}@db\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          env:\n            - name: DB_PASSWORD\n              value: {{quote Values.secrets.[db-password]}}\n            - name: LEVEL\n              value: info\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  b64: {{b64enc Values.secrets.[db-password]}}\n  plain: text\n";
    let renders = render_both(&[("web.yaml", web)], &secrets).expect("renders");
    let applied = serde_json::to_string(
        &renders
            .applied
            .objects
            .iter()
            .map(|o| &o.object)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(applied.contains(secret), "the apply payload has the value");
    let stored = serde_json::to_string(&renders.stored).unwrap();
    assert!(!stored.contains(secret), "{stored}");
    assert!(
        !stored.contains("aHVudGVy"),
        "no base64 of it either: {stored}"
    );
    let checksum = renders.applied.objects[0].object["metadata"]["annotations"]["checksum/secrets"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !stored.contains(&checksum),
        "nor the checksum made of it: {stored}"
    );
    for (stored, path) in [
        (
            &renders.stored[0],
            "/spec/template/spec/containers/0/env/0/value",
        ),
        (&renders.stored[0], "/metadata/annotations/url"),
        (&renders.stored[1], "/data/b64"),
    ] {
        let field = stored
            .pointer(path)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        assert!(field.starts_with("<redacted sha256:"), "{path}: {field}");
    }
    assert_eq!(
        renders.stored[0]["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"],
        "info"
    );
    assert_eq!(renders.stored[1]["data"]["plain"], "text");
}

#[test]
fn a_value_that_breaks_the_yaml_is_an_error_without_the_value() {
    let secret = "line one: x\n  \"quoted\" \\ back";
    let secrets = SecretValues::from([("db-password".to_string(), secret.to_string())]);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  password: {{Values.secrets.[db-password]}}\n";
    let err = render_both(&[("cm.yaml", cm)], &secrets).expect_err("the value breaks YAML");
    let message = err.to_string();
    assert!(message.contains("templates/cm.yaml"), "{message}");
    assert!(message.contains("quote"), "{message}");
    for part in ["line one", "quoted", "back"] {
        assert!(!message.contains(part), "{message}");
    }
}
