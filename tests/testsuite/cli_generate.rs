//! What flotilla generates from its clap definitions, as a user runs it: completion
//! scripts for every shell, man pages naming every command, and dynamic completion
//! offering the repo's release and environment names.

use crate::support::flotilla_in as flotilla;
use clap::CommandFactory;
use std::path::Path;
use std::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every command's name as the man pages name it: `deploy`, `secrets-check`, ...
fn every_command() -> Vec<String> {
    fn walk(prefix: &str, command: &clap::Command, names: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            let name = if prefix.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{prefix}-{}", sub.get_name())
            };
            walk(&name, sub, names);
            names.push(name);
        }
    }
    let mut names = Vec::new();
    walk("", &flotilla::cli::Cli::command(), &mut names);
    names
}

#[test]
fn every_shell_gets_a_completion_script_naming_the_commands_and_flags() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, marker) in [
        ("bash", "complete -F _flotilla"),
        ("zsh", "#compdef flotilla"),
        ("fish", "complete -c flotilla"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[flotilla]"),
    ] {
        let out = flotilla(here, &["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for word in ["deploy", "rollback", "create-namespace", "completions"] {
            assert!(script.contains(word), "{shell} script lacks {word:?}");
        }
    }
}

#[test]
fn the_bash_script_is_valid_bash() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("flotilla.bash");
    let out = flotilla(here, &["completions", "bash"], &[]);
    std::fs::write(&file, &out.stdout).expect("write script");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("run bash");
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn an_unknown_shell_is_refused_with_the_known_ones() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = flotilla(here, &["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("tcsh") && stderr.contains("powershell"),
        "{stderr}"
    );
}

#[test]
fn the_man_page_names_every_subcommand() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = flotilla(here, &["man"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH flotilla 1"),
        "{page}"
    );
    let top_level: Vec<String> = flotilla::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(top_level.len() >= 13, "{top_level:?}");
    for command in top_level {
        let entry = format!("flotilla\\-{}(1)", command.replace('-', "\\-"));
        assert!(
            page.contains(&entry),
            "the man page does not name {command}"
        );
    }
}

#[test]
fn man_out_writes_one_page_per_command() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("man1");
    let out_arg = out_dir.to_string_lossy().into_owned();
    let out = flotilla(here, &["man", "--out", &out_arg], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out_dir.join("flotilla.1").is_file());
    let commands = every_command();
    assert!(
        commands.contains(&"secrets-check".to_string()),
        "{commands:?}"
    );
    for command in commands {
        let page = out_dir.join(format!("flotilla-{command}.1"));
        let roff = std::fs::read_to_string(&page)
            .unwrap_or_else(|err| panic!("{}: {err}", page.display()));
        assert!(roff.contains(".TH flotilla-"), "{}", page.display());
    }
    // A command with subcommands names them on its page.
    let deploy = std::fs::read_to_string(out_dir.join("flotilla-deploy.1")).expect("page");
    assert!(
        deploy.contains(".SH \"EXIT STATUS\"") && deploy.contains("Bad input or configuration"),
        "{deploy}"
    );
    let secrets = std::fs::read_to_string(out_dir.join("flotilla-secrets.1")).expect("page");
    assert!(
        secrets.contains("flotilla\\-secrets\\-check(1)"),
        "{secrets}"
    );
}

/// A repo with two releases, a folder that is no release, and two environments.
fn names_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for release in ["api", "web", "worker"] {
        let folder = dir.path().join("releases").join(release);
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("release.yaml"), "").expect("write");
    }
    std::fs::create_dir_all(dir.path().join("releases/notes")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("environments")).expect("mkdir");
    for env in ["dev", "prod"] {
        std::fs::write(dir.path().join(format!("environments/{env}.yaml")), "").expect("write");
    }
    dir
}

fn dynamic_candidates(repo: &Path, words: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let index = (words.len() - 1).to_string();
    let mut args = vec!["--"];
    args.extend_from_slice(words);
    let mut vars = vec![
        ("COMPLETE", "bash"),
        ("_CLAP_COMPLETE_INDEX", index.as_str()),
    ];
    vars.extend_from_slice(env);
    let out = flotilla(repo, &args, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    values_only(&text(&out.stdout))
}

/// The candidates that are values, not flags (an empty word is offered both).
fn values_only(candidates: &str) -> Vec<String> {
    candidates
        .lines()
        .filter(|c| !c.starts_with('-'))
        .map(str::to_string)
        .collect()
}

#[test]
fn release_names_complete_from_the_repo() {
    let repo = names_repo();
    let all = dynamic_candidates(repo.path(), &["flotilla", "deploy", ""], &[]);
    assert_eq!(all, ["api", "web", "worker"]);
    let w = dynamic_candidates(repo.path(), &["flotilla", "status", "w"], &[]);
    assert_eq!(w, ["web", "worker"]);
}

#[test]
fn environment_names_complete_from_the_repo_named_by_flotilla_root() {
    let repo = names_repo();
    let root = repo.path().to_string_lossy().into_owned();
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let envs = dynamic_candidates(
        elsewhere.path(),
        &["flotilla", "diff", "api", "--env", ""],
        &[("FLOTILLA_ROOT", &root)],
    );
    assert_eq!(envs, ["dev", "prod"]);
    let from = dynamic_candidates(
        elsewhere.path(),
        &["flotilla", "promote", "api", "--from", "p"],
        &[("FLOTILLA_ROOT", &root)],
    );
    assert_eq!(from, ["prod"]);
}

#[test]
fn cluster_names_complete_from_the_environments_after_the_last_comma() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let clusters = dynamic_candidates(
        root,
        &[
            "flotilla",
            "status",
            "hello",
            "--env",
            "dev",
            "--clusters",
            "dev-",
        ],
        &[],
    );
    assert_eq!(
        clusters,
        ["dev-europe-west1", "dev-paris-dc1", "dev-us-central1"]
    );
    let second = dynamic_candidates(
        root,
        &[
            "flotilla",
            "template",
            "hello",
            "--env",
            "prod",
            "--clusters",
            "prod-paris-dc1,prod-eu",
        ],
        &[],
    );
    assert_eq!(second, ["prod-paris-dc1,prod-europe-west1"]);
    // `--env` on the line: only that environment's clusters; without it, every one's.
    let of_prod = dynamic_candidates(
        root,
        &[
            "flotilla",
            "status",
            "hello",
            "--env",
            "prod",
            "--clusters",
            "",
        ],
        &[],
    );
    assert!(
        !of_prod.is_empty() && of_prod.iter().all(|c| c.starts_with("prod-")),
        "{of_prod:?}"
    );
    let of_all = dynamic_candidates(
        root,
        &["flotilla", "status", "hello", "--clusters", ""],
        &[],
    );
    for env in ["dev-", "staging-", "prod-"] {
        assert!(
            of_all.iter().any(|c| c.starts_with(env)),
            "{env}: {of_all:?}"
        );
    }
}

#[test]
fn deployment_ids_complete_nothing_when_the_line_names_no_release_or_no_cluster_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // No release before --to: the line does not parse, nothing is offered (no error).
    let none = dynamic_candidates(root, &["flotilla", "rollback", "--to", ""], &[]);
    assert!(none.is_empty(), "{none:?}");
    // A kubeconfig that does not exist: no cluster to ask, nothing offered, exit 0.
    let none = dynamic_candidates(
        root,
        &["flotilla", "rollback", "hello", "--env", "dev", "--to", ""],
        &[("KUBECONFIG", "/nonexistent/kubeconfig")],
    );
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn bash_completes_release_names_through_the_registered_function() {
    let repo = names_repo();
    let bin = crate::support::flotilla_bin();
    let bin_dir = bin.parent().expect("bin dir");
    let script = r#"
        source <(COMPLETE=bash flotilla)
        COMP_WORDS=(flotilla rollback "")
        COMP_CWORD=2
        COMP_TYPE=9
        _clap_complete_flotilla flotilla "" rollback
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(repo.path())
        .env("PATH", path)
        .env_remove("FLOTILLA_ROOT")
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let words = text(&out.stdout);
    assert!(words.contains("--dry-run"), "{words}");
    assert_eq!(values_only(&words), ["api", "web", "worker"]);
}
