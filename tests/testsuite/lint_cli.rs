//! `flotilla lint` as a user runs it: the table on stdout, `-o json`, exit codes.
//! (Each broken input and its message is in the bad-input corpus.)

use crate::support::flotilla_in;
use std::path::Path;
use std::process::Command;

const GOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/good-repo");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_good_repo_lints_clean_with_one_row_per_release_and_environment() {
    let out = flotilla_in(Path::new(GOOD), &["lint"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let stdout = text(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // Only the columns this test is about; other levels of lint may add their own.
    let header = &rows[0];
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let wanted = ["RELEASE", "ENVIRONMENT", "CLUSTERS", "RESULT"].map(column);
    let picked: Vec<Vec<&str>> = rows
        .iter()
        .map(|row| wanted.iter().map(|&i| row[i]).collect())
        .collect();
    assert_eq!(
        picked,
        [
            vec!["RELEASE", "ENVIRONMENT", "CLUSTERS", "RESULT"],
            vec!["app1", "dev", "2", "ok"],
            vec!["app1", "prod", "2", "ok"],
        ]
    );
    assert!(stdout.lines().all(|l| l == l.trim_end()), "trailing blanks");
}

#[test]
fn scope_by_release_environment_and_branch() {
    let dir = Path::new(GOOD);
    let by_env = text(&flotilla_in(dir, &["lint", "app1", "--env", "prod"], &[]).stdout);
    let by_branch = text(&flotilla_in(dir, &["lint", "--branch", "prod"], &[]).stdout);
    assert_eq!(by_env, by_branch);
    assert_eq!(by_env.lines().count(), 2, "{by_env}");
    assert!(by_env.contains("prod"), "{by_env}");
    // --root works from anywhere.
    let elsewhere = flotilla_in(
        &std::env::temp_dir(),
        &["--root", GOOD, "lint", "--env", "prod"],
        &[],
    );
    assert_eq!(text(&elsewhere.stdout), by_env);
}

#[test]
fn json_output_lists_checks_and_problems() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy(Path::new(GOOD), dir.path());
    let release = dir.path().join("releases/app1/release.yaml");
    let text_before = std::fs::read_to_string(&release).expect("read");
    std::fs::write(&release, text_before.replace("count: 2", "count: -2")).expect("write");

    let out = flotilla_in(dir.path(), &["lint", "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is JSON even when lint fails");
    assert_eq!(report["checks"][0]["release"], "app1");
    assert_eq!(report["checks"][0]["result"], "1 problem");
    let problems = report["problems"].as_array().expect("a list");
    assert_eq!(problems.len(), 1);
    // An object of fields, not a string to split.
    let problem = &problems[0];
    assert_eq!(problem["severity"], "error", "{problem:#}");
    assert_eq!(
        problem["field"], "spec.scaling[0].replicas[0].count",
        "{problem:#}"
    );
    assert_eq!(problem["value"], -2, "{problem:#}");
    assert_eq!(problem["release"], "app1", "{problem:#}");
    assert!(
        problem["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("releases/app1/release.yaml")),
        "{problem:#}"
    );
    assert!(problem["line"].is_u64(), "{problem:#}");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.scaling[0].replicas[0].count")),
        "{problem:#}"
    );
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A copy of the good repo with one more template.
fn good_repo_with(template: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(format!("{GOOD}/."))
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(copy.success());
    std::fs::write(
        dir.path()
            .join("releases/app1/chart/templates")
            .join(template),
        text,
    )
    .expect("write the template");
    dir
}

#[test]
fn a_secret_outside_a_secret_is_a_warning_naming_object_field_and_fix_and_an_error_under_strict() {
    let dir = good_repo_with(
        "leaky.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app1-leaky\ndata:\n  dsn: postgres://app:{{Values.secrets.[db-password]}}@db\n  encoded: {{b64enc Values.secrets.[db-password]}}\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: app1-migrate\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: example/app1:1.4.2\n          env:\n            - name: DB_PASSWORD\n              value: {{quote Values.secrets.[db-password]}}\n",
    );
    let out = flotilla_in(dir.path(), &["lint", "app1", "--env", "dev"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a warning only: {stderr}");
    for expected in [
        "warning: ",
        "ConfigMap/app1-leaky: data.dsn: holds the value of secret `db-password` outside a Secret",
        "ConfigMap/app1-leaky: data.encoded: holds the base64 of the value of secret `db-password`",
        "Job/app1-migrate: spec.template.spec.containers[0].env[0].value: holds the value of secret `db-password`",
        "secretKeyRef",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    let strict = flotilla_in(
        dir.path(),
        &["lint", "app1", "--env", "dev", "--strict"],
        &[],
    );
    let stderr = text(&strict.stderr);
    assert_eq!(strict.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains("ConfigMap/app1-leaky: data.dsn"),
        "{stderr}"
    );
    // The table never says `ok` for what fails the command.
    let table = text(&strict.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("app1"))
        .unwrap_or_default();
    assert!(
        row.ends_with("3 warnings (--strict: problems)") && !row.contains(" ok"),
        "{table}"
    );
    let lenient = text(&out.stdout);
    assert!(lenient.contains("ok, 3 warnings"), "{lenient}");
    // The example chart keeps its secrets in Secrets: strict passes.
    let good = flotilla_in(Path::new(GOOD), &["lint", "--strict"], &[]);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
}

/// `lint` renders with the values a deploy would be given: a `--set` that breaks an
/// object is found before any cluster sees it.
#[test]
fn lint_renders_with_the_command_line_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = flotilla_in(
        root,
        &["lint", "hello", "--env", "dev", "--set", "web.port=8081"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let out = flotilla_in(
        root,
        &["lint", "hello", "--env", "dev", "--set", "web.port=http"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("containerPort: invalid type: string \"http\""),
        "{}",
        text(&out.stderr)
    );
}
