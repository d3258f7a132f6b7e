//! Helm charts without the Helm CLI: a helm too old is refused (a script answers
//! `helm version`), and every command of docs/helm.md parses. `fleet::helm_render`
//! renders charts with the fleet's Helm.

use std::path::Path;

pub(crate) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub(crate) fn chart(templates: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 0.3.0\nappVersion: \"0.0.1\"\n",
    );
    write(&dir.path().join("values.yaml"), "level: info\n");
    for (name, text) in templates {
        write(&dir.path().join("templates").join(name), text);
    }
    dir
}

pub(crate) const SECRET_TEMPLATE: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
  namespace: {{ .Release.Namespace }}
stringData:
  password: {{ .Values.secrets.db | quote }}
  level: {{ .Values.level }}
  region: {{ .Values.global.region }}
  version: {{ .Chart.AppVersion | quote }}
"#;

#[test]
fn a_helm_too_old_is_refused_with_exit_2_fake_helm() {
    // No Helm 3.9 is built here: a script answers `helm version` as one would.
    let dir = tempfile::tempdir().unwrap();
    let helm = dir.path().join("helm");
    write(&helm, "#!/bin/sh\necho v3.9.4\n");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&helm)
        .status()
        .unwrap();
    let root = dir.path().join("repo");
    write(
        &root.join("environments/dev.yaml"),
        "name: dev\nclusters:\n  - context: eu-1\n    global: { cloud: true, env: dev, region: eu, clusterName: eu-1 }\n",
    );
    write(
        &root.join("releases/demo/release.yaml"),
        "apiVersion: flotilla/v1\nkind: Release\nmetadata: { name: demo, namespace: ns1 }\nspec:\n  chart: ./chart\n  version: 2.5.0\n",
    );
    let chart = chart(&[("secret.yaml", SECRET_TEMPLATE)]);
    for name in ["Chart.yaml", "values.yaml", "templates/secret.yaml"] {
        let text = std::fs::read_to_string(chart.path().join(name)).unwrap();
        write(&root.join("releases/demo/chart").join(name), &text);
    }
    let output = crate::support::flotilla()
        .arg("--root")
        .arg(&root)
        .args(["template", "demo", "--env", "dev", "--cluster", "eu-1"])
        .env("FLOTILLA_HELM", &helm)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is Helm v3.9.4; Helm charts need Helm 3.10 or later"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn every_concrete_command_of_the_helm_page_parses() {
    use clap::Parser;
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/helm.md"))
        .unwrap();
    // `flotilla COMMAND ARGS...` in backticks, without placeholders (`RELEASE`,
    // `[--cluster CTX]`); a bare `flotilla adopt-helm` names the command in prose.
    let commands: Vec<&str> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("flotilla ") && s.split_whitespace().count() > 2)
        .filter(|s| {
            !s.contains('[')
                && !s
                    .split_whitespace()
                    .any(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase()))
        })
        .collect();
    assert!(commands.len() >= 4, "{commands:?}");
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        if let Err(err) = flotilla::cli::Cli::try_parse_from(&words) {
            panic!("docs/helm.md: `{command}` does not parse:\n{err}");
        }
    }
}
