//! A `helm` that never finishes: `helm template` is bounded by `FLOTILLA_HELM_TIMEOUT`,
//! killed with what it started, and the render fails naming the chart and the cluster.
//! No real Helm hangs on demand, so `FLOTILLA_HELM` names a script that answers
//! `helm version` and then sleeps on `helm template`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The repo of the bad-input case whose release has a Helm chart.
const REPO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/bad_input/chart-helm-without-helm"
);

fn fake_helm(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("helm");
    // The background sleep holds stdout open: only killing the whole process group
    // ends the render at its limit. Without a limit the render ends when both sleeps
    // do, with no objects and no error.
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in version) echo v4.0.0; exit 0;; esac\nsleep 20 & sleep 20\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_helm_template_past_its_limit_is_killed_and_named_fake_helm() {
    let dir = tempfile::tempdir().unwrap();
    let helm = fake_helm(dir.path());
    let output = crate::support::flotilla()
        .args([
            "template",
            "app1",
            "--env",
            "dev",
            "--cluster",
            "dev-paris-dc1",
        ])
        .current_dir(REPO)
        .env("FLOTILLA_HELM", &helm)
        .env("FLOTILLA_HELM_TIMEOUT", "1s")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: releases/app1/chart: helm template: {} did not finish within 1s and was stopped, with what it started (FLOTILLA_HELM_TIMEOUT sets the limit; nothing was changed) [cluster dev-paris-dc1]",
            helm.display()
        )
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_helm_timeout_that_is_no_duration_is_bad_input_fake_helm() {
    let dir = tempfile::tempdir().unwrap();
    let helm = fake_helm(dir.path());
    let output = crate::support::flotilla()
        .args(["template", "app1", "--env", "dev"])
        .current_dir(REPO)
        .env("FLOTILLA_HELM", &helm)
        .env("FLOTILLA_HELM_TIMEOUT", "soon")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("FLOTILLA_HELM_TIMEOUT=\"soon\" is not a duration (`90s`, `5m`)"),
        "{stderr}"
    );
}
