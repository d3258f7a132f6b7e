//! What a new user meets in the first hour, without any cluster: the messages are part of
//! the interface (as in the bad-input corpus), so each is pinned here word for word.
//!
//! - no kubeconfig: which file, why that one, what to do;
//! - a typo in the release or the environment is reported before the kubeconfig is
//!   read, by every command that needs one;
//! - a cluster whose API server does not answer (a closed port: a real refusal, no
//!   fake) is named with the verb, the object and the server, exit 3.

use std::path::Path;
use std::process::Output;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `flotilla ARGS` in the project's own deployment repo, with a home of its own (no
/// `~/.kube/config`) and `KUBECONFIG` as given.
fn as_new_user(home: &Path, kubeconfig: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = crate::support::flotilla();
    cmd.current_dir(ROOT).args(args).env("HOME", home);
    if let Some(value) = kubeconfig {
        cmd.env("KUBECONFIG", value);
    }
    cmd.output().expect("flotilla runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every command that reads the kubeconfig, on the example release.
const COMMANDS: [&[&str]; 7] = [
    &["deploy", "hello", "--env", "dev"],
    &["diff", "hello", "--env", "dev"],
    &["status", "hello", "--env", "dev"],
    &["history", "hello", "--env", "dev"],
    &["rollback", "hello", "--env", "dev"],
    &["promote", "hello", "--from", "staging", "--env", "dev"],
    &[
        "uninstall",
        "hello",
        "--env",
        "dev",
        "--cluster",
        "dev-paris-dc1",
    ],
];

#[test]
fn no_kubeconfig_names_the_file_why_it_was_chosen_and_what_to_do() {
    let home = tempfile::tempdir().expect("tempdir");
    let default = home.path().join(".kube/config");
    let missing = home.path().join("elsewhere.yaml");
    let missing = missing.to_str().unwrap();
    for args in COMMANDS {
        let cases = [
            (
                None,
                Vec::new(),
                format!(
                    "{} (the default path, as KUBECONFIG is not set)",
                    default.display()
                ),
            ),
            (
                Some(missing),
                Vec::new(),
                format!("{missing} (from KUBECONFIG={missing})"),
            ),
            (
                None,
                vec!["--kubeconfig", missing],
                format!("{missing} (given by --kubeconfig)"),
            ),
        ];
        for (variable, flag, which) in cases {
            let out = as_new_user(home.path(), variable, &[args, &flag[..]].concat());
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?} {flag:?}: {}",
                stderr(&out)
            );
            assert_eq!(
                stderr(&out),
                format!("error: cannot read the kubeconfig {which}: there is no such file; name the right one with --kubeconfig FILE or KUBECONFIG=FILE\n"),
                "{args:?} {flag:?}"
            );
        }
    }
}

#[test]
fn a_typo_in_the_release_or_environment_comes_before_the_kubeconfig() {
    let home = tempfile::tempdir().expect("tempdir");
    for args in COMMANDS {
        let release = args.iter().position(|a| *a == "hello").unwrap();
        let mut typo = args.to_vec();
        typo[release] = "NOPE";
        let out = as_new_user(home.path(), None, &typo);
        assert_eq!(out.status.code(), Some(2), "{typo:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.starts_with("error: no release \"NOPE\": there is no releases/NOPE/release.yaml (releases: \"hello\")\n"),
            "{typo:?}: {text}"
        );
        assert!(!text.contains("kubeconfig"), "{typo:?}: {text}");

        let env = args.iter().rposition(|a| *a == "dev").unwrap();
        let mut typo = args.to_vec();
        typo[env] = "dve";
        let out = as_new_user(home.path(), None, &typo);
        assert_eq!(out.status.code(), Some(2), "{typo:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "error: no environment \"dve\": there is no environments/dve.yaml (environments: \"dev\", \"prod\", \"staging\"); did you mean \"dev\"?\n",
            "{typo:?}"
        );
    }
    // Bad values too: they need no cluster either.
    for command in ["deploy", "diff"] {
        let out = as_new_user(
            home.path(),
            None,
            &[command, "hello", "--env", "dev", "--set", "log.level"],
        );
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "error: --set \"log.level\": `log.level` has no value: write log.level=VALUE\n",
            "{command}"
        );
    }
}

#[test]
fn a_cluster_that_refuses_connections_is_named_with_verb_object_and_server() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let home = tempfile::tempdir().expect("tempdir");
    let kubeconfig = home.path().join("kubeconfig");
    let contexts: String = ["dev-europe-west1", "dev-us-central1", "dev-paris-dc1"]
        .iter()
        .map(|c| format!("- name: {c}\n  context: {{ cluster: closed, user: someone }}\n"))
        .collect();
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: closed\n  cluster: {{ server: \"https://127.0.0.1:{port}\" }}\nusers:\n- name: someone\n  user: {{ token: not-a-real-token }}\ncontexts:\n{contexts}"),
    )
    .expect("write the kubeconfig");
    let out = as_new_user(
        home.path(),
        Some(kubeconfig.to_str().unwrap()),
        &[
            "history",
            "hello",
            "--env",
            "dev",
            "--clusters",
            "dev-paris-dc1",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let expected = format!("cluster `dev-paris-dc1` is unreachable: cannot list the release records of `hello` (Secrets in namespace `hello`): connection refused (server https://127.0.0.1:{port}/)");
    assert_eq!(
        stderr(&out),
        format!("dev-paris-dc1: history not read: {expected}\nerror: {expected}\n")
    );
}

/// A command asked for `-o json` that fails before its report (no kubeconfig, a typo:
/// exit 2) still prints one JSON document, so that CI's `report.json` parses.
#[test]
fn a_json_command_that_fails_before_its_report_prints_the_error_as_json() {
    let home = tempfile::tempdir().expect("tempdir");
    for (args, code) in [
        (&["deploy", "hello", "--env", "dev", "-o", "json"][..], 2),
        (&["rollback", "NOPE", "--env", "dev", "-o", "json"][..], 2),
        (&["status", "hello", "--env", "dev", "-o", "json"][..], 2),
    ] {
        let out = as_new_user(home.path(), None, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is no JSON document ({e}): {:?}",
                out.stdout
            )
        });
        assert_eq!(doc["exit_code"], code, "{args:?}: {doc}");
        let error = doc["error"].as_str().unwrap_or_default();
        assert!(
            !error.is_empty() && stderr(&out).contains(error),
            "{args:?}: {doc}"
        );
    }
}
