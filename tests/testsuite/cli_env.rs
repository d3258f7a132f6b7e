//! `FLOTILLA_*` environment variables stand for the common flags; a flag on the command
//! line wins.

use crate::support::flotilla_in as flotilla;
use std::path::Path;

const GOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/good-repo");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn flotilla_output_and_root_stand_for_their_flags() {
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let vars = [("FLOTILLA_ROOT", GOOD), ("FLOTILLA_OUTPUT", "json")];
    let out = flotilla(elsewhere.path(), &["lint"], &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["checks"][0]["release"], "app1");
    // The flag wins.
    let out = flotilla(elsewhere.path(), &["lint", "-o", "table"], &vars);
    let table = text(&out.stdout);
    assert!(table.trim_start().starts_with("RELEASE"), "{table}");
    // A bad value is refused as a bad flag would be, naming the variable it came from.
    let out = flotilla(Path::new(GOOD), &["lint"], &[("FLOTILLA_OUTPUT", "xml")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("'xml'") && stderr.contains("comes from the variable FLOTILLA_OUTPUT"),
        "{stderr}"
    );
}

#[test]
fn output_yaml_is_the_json_document_as_yaml_errors_included() {
    let dir = Path::new(GOOD);
    let json = flotilla(dir, &["lint", "-o", "json"], &[]);
    let yaml = flotilla(dir, &["lint"], &[("FLOTILLA_OUTPUT", "yaml")]);
    assert_eq!(yaml.status.code(), Some(0), "{}", text(&yaml.stderr));
    let from_json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let from_yaml: serde_json::Value = serde_yaml_ng::from_slice(&yaml.stdout).expect("YAML");
    assert_eq!(from_json, from_yaml);
    assert!(
        !text(&yaml.stdout).trim_start().starts_with('{'),
        "{}",
        text(&yaml.stdout)
    );
    // A command that fails before its own document still prints one, as YAML.
    let out = flotilla(
        dir,
        &["history", "nosuch", "--env", "dev", "-o", "yaml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_yaml_ng::from_slice(&out.stdout).expect("YAML");
    assert_eq!(doc["exit_code"], 2, "{doc:#}");
    assert!(
        doc["error"].as_str().is_some_and(|e| e.contains("nosuch")),
        "{doc:#}"
    );
}

#[test]
fn flotilla_env_names_the_environment_unless_the_command_line_does() {
    let dir = Path::new(GOOD);
    let dev = [("FLOTILLA_ENV", "dev")];
    let from_var = flotilla(dir, &["template", "app1"], &dev);
    assert_eq!(
        from_var.status.code(),
        Some(0),
        "{}",
        text(&from_var.stderr)
    );
    let by_flag = flotilla(dir, &["template", "app1", "--env", "dev"], &[]);
    assert_eq!(text(&from_var.stdout), text(&by_flag.stdout));
    let prod = flotilla(dir, &["template", "app1", "--env", "prod"], &dev);
    assert_eq!(
        text(&prod.stdout),
        text(&flotilla(dir, &["template", "app1", "--env", "prod"], &[]).stdout)
    );
    assert_ne!(text(&prod.stdout), text(&by_flag.stdout));
}

#[test]
fn branch_on_the_command_line_wins_over_flotilla_env_and_flotilla_kubeconfig_is_read() {
    let vars = [
        ("FLOTILLA_ENV", "dev"),
        ("FLOTILLA_KUBECONFIG", "/nonexistent/kubeconfig"),
    ];
    let out = flotilla(
        Path::new(GOOD),
        &["status", "app1", "--branch", "prod"],
        &vars,
    );
    let stderr = text(&out.stderr);
    // Past the command line (no conflict between --branch and the variable), to the
    // kubeconfig the variable names.
    assert!(!stderr.contains("cannot be used with"), "{stderr}");
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
    // Neither flag nor variable: the environment is asked for.
    let out = flotilla(Path::new(GOOD), &["status", "app1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("give --env ENV or --branch BRANCH"),
        "{}",
        text(&out.stderr)
    );
}
