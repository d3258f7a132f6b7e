//! flotilla on a real terminal, driven through tmux (`send-keys`, `capture-pane`) as a
//! person at a keyboard: `status --watch` redraws in place, coloured, until Ctrl-C, and
//! exits with the code of the last state; with `NO_COLOR`, or into a pipe, no escape
//! code (a pipe appends each state instead); `history` of a release in ten clusters
//! stays within 120 columns. Each tmux server is one of the test's own (`-L`), sized
//! wider than 120 columns so that a long line shows as long rather than wrapped.

use crate::support::rollout::*;
use flotilla_fleet::testing::Fleet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of its own with one pane running a shell command; the pane stays
/// after the command ends, so its exit status and last screen can be read.
/// Dropped: the server is killed.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(name: &str, env: &[(String, String)], command: &str) -> Pane {
        let pane = Pane {
            socket: format!("flotilla-{name}-{}", std::process::id()),
        };
        let mut tmux = pane.tmux();
        // The server's environment is the one it starts with: the fleet's variables,
        // none of the runner's.
        for var in crate::support::RUNNER_VARIABLES {
            tmux.env_remove(var);
        }
        tmux.env_remove("NO_COLOR")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TERM", "xterm-256color")
            .args(["new-session", "-d", "-x", "200", "-y", "60", "-s", "t"])
            // bash goes on after a child that handled SIGINT itself, says its code, and
            // keeps the pane (and its screen) until the server is killed.
            .args([
                "bash",
                "-c",
                &format!("{command}; echo \"flotilla exited $?\"; exec cat"),
            ]);
        pane.check(tmux);
        pane
    }

    fn tmux(&self) -> Command {
        let mut tmux = Command::new("tmux");
        tmux.args(["-L", &self.socket, "-f", "/dev/null"]);
        tmux
    }

    fn check(&self, mut tmux: Command) -> String {
        let out = tmux
            .output()
            .expect("tmux runs (scripts/install-deps.sh installs it)");
        assert!(out.status.success(), "tmux: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen as a person sees it (not the scrollback), escape codes included
    /// (`-e`), wrapped lines joined (`-J`).
    fn screen(&self) -> String {
        let mut tmux = self.tmux();
        tmux.args(["capture-pane", "-p", "-e", "-J", "-t", "t"]);
        self.check(tmux)
    }

    /// Waits (polling, 60 s at most) until the screen satisfies `done`; the screen.
    fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{what} never showed:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &str) {
        let mut tmux = self.tmux();
        tmux.args(["send-keys", "-t", "t", keys]);
        self.check(tmux);
    }

    /// The exit status of the pane's command once it ended (polling, 60 s at most):
    /// the line [`Pane::start`]'s shell writes after it.
    fn exit_status(&self) -> i32 {
        let screen = self.until("the command's end", |s| s.contains("flotilla exited "));
        screen
            .lines()
            .find_map(|l| l.split("flotilla exited ").nth(1))
            .and_then(|code| code.trim().parse().ok())
            .unwrap_or_else(|| panic!("no exit status:\n{screen}"))
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn flotilla_line(repo: &TestRepo, args: &[&str]) -> String {
    let bin = crate::support::flotilla_bin().display().to_string();
    let root = repo.root().display().to_string();
    let mut words = vec![bin.as_str(), "--root", root.as_str()];
    words.extend_from_slice(args);
    quoted(&words)
}

const ESC: char = '\u{1b}';

/// How many states of `status --watch` the screen shows (their heading lines).
fn headings(screen: &str) -> usize {
    screen.lines().filter(|l| l.contains("every 1s: ")).count()
}

/// Escape codes out: what a reader sees of a line.
fn visible(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
            // CSI: ESC [ parameters, then a final byte in @..~.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn status_watch_colour_and_history_width_on_a_real_terminal() {
    let fleet = Fleet::shared();
    let first = fleet.clusters()[0].clone();
    let repo = repo("terminal", &[("prod", &[(first.as_str(), 0)])], "60s");
    let v1 = deploy_ok(fleet, &repo, "prod", "v1");
    let env: Vec<(String, String)> = fleet.env().into_iter().collect();
    let watch = [
        "status",
        "hello",
        "--env",
        "prod",
        "--watch",
        "--interval",
        "1s",
    ];

    // On the terminal: the healthy row in colour, each state drawn over the last (one
    // heading on the screen after two states), Ctrl-C ends it with the state's code.
    let pane = Pane::start("watch", &env, &flotilla_line(&repo, &watch));
    let screen = pane.until("a state", |s| s.contains(&v1) && s.contains("healthy"));
    let row = screen
        .lines()
        .find(|l| l.contains(&first) && l.contains("healthy"))
        .unwrap_or_else(|| panic!("no healthy row for {first}:\n{screen}"));
    assert!(
        row.contains(ESC),
        "the healthy row is not coloured: {row:?}"
    );
    let heading = |s: &str| {
        s.lines()
            .find(|l| l.contains("every 1s: "))
            .map(visible)
            .unwrap_or_default()
    };
    let first_heading = heading(&screen);
    let screen = pane.until("the next state", |s| {
        s.contains("healthy") && heading(s) != first_heading
    });
    assert_eq!(headings(&screen), 1, "not redrawn in place:\n{screen}");
    pane.keys("C-c");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    drop(pane);

    // NO_COLOR on the same terminal: the same table, no escape code in it.
    let mut plain = env.clone();
    plain.push(("NO_COLOR".into(), "1".into()));
    let pane = Pane::start("nocolor", &plain, &flotilla_line(&repo, &watch));
    let screen = pane.until("a state", |s| s.contains("healthy"));
    let row = screen
        .lines()
        .find(|l| l.contains(&first))
        .unwrap_or_default();
    assert!(!row.contains(ESC), "colour with NO_COLOR: {row:?}");
    pane.keys("C-c");
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    drop(pane);

    // Into a pipe, stderr on the terminal: no escape code, each state appended under
    // its time line. The container crashlooping makes each state failing, so the
    // watch, ended by its reader going away (`head`), exits 1.
    // (A release of its own: the image set by hand is a field a deploy would not take.)
    let failing = crate::support::rollout::repo(
        "terminal-failing",
        &[("prod", &[(first.as_str(), 0)])],
        "60s",
    );
    deploy_ok(fleet, &failing, "prod", "v1");
    break_the_container(fleet, &first, &failing.namespace).await;
    let file = failing.root().join("watched.txt");
    let piped = format!(
        "{} | head -n 30 > {}; (exit ${{PIPESTATUS[0]}})",
        flotilla_line(&failing, &watch),
        quoted(&[&file.display().to_string()])
    );
    let pane = Pane::start("pipe", &env, &piped);
    assert_eq!(pane.exit_status(), 1, "{}", pane.screen());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(ESC), "colour in a pipe: {text:?}");
    assert!(
        text.lines()
            .filter(|l| l.starts_with("--- every 1s: "))
            .count()
            >= 2,
        "states not appended:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with(&first)
            && l.contains("failing")
            && l.contains("CrashLoopBackOff")),
        "{text}"
    );
    drop(pane);

    // `history` of ten clusters: records in each (ten contexts of one API server), read
    // on a terminal 200 columns wide; every line within 120.
    deploy_ok(fleet, &repo, "prod", "v2");
    let out = run(
        fleet,
        &repo,
        &["rollback", "hello", "--env", "prod", "--to", &v1],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let (kubeconfig, contexts) = ten_contexts_of(fleet, &first, repo.root());
    write_environment(repo.root(), "wide", &contexts);
    let kubeconfig = kubeconfig.display().to_string();
    let args = [
        "history",
        "hello",
        "--env",
        "wide",
        "--kubeconfig",
        &kubeconfig,
    ];
    let pane = Pane::start("history", &env, &flotilla_line(&repo, &args));
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    let screen = pane.screen();
    let lines: Vec<String> = screen
        .lines()
        .map(visible)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        lines.iter().filter(|l| l.contains(&v1)).count() >= 2,
        "no line per deployment:\n{screen}"
    );
    assert!(
        lines.iter().any(|l| l.contains("10 ")),
        "the ten clusters are not counted:\n{screen}"
    );
    for line in &lines {
        assert!(
            line.trim_end().chars().count() <= 120,
            "{} columns: {line:?}",
            line.trim_end().chars().count()
        );
    }
}

/// The release's container crashlooping in `context`, as a bad image does: the
/// Deployment's image set by hand to the tag the fleet's simulated kubelet crashloops.
async fn break_the_container(fleet: &Fleet, context: &str, namespace: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    let deployments = kube::Api::<Deployment>::namespaced(fleet.client(context).await, namespace);
    let patch = serde_json::json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "web", "image": "registry.local/hello:crashloop" }
    ] } } } });
    deployments
        .patch(
            "hello-web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(patch),
        )
        .await
        .unwrap();
}

/// A copy of the fleet's kubeconfig with ten more contexts, all of `context`'s API
/// server and user, named as a large fleet names its clusters; and their names.
fn ten_contexts_of(fleet: &Fleet, context: &str, dir: &Path) -> (PathBuf, Vec<String>) {
    let text = std::fs::read_to_string(fleet.kubeconfig()).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let existing = config["contexts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some(context))
        .cloned()
        .unwrap();
    let names: Vec<String> = (1..=10)
        .map(|n| format!("prod-europe-west{n}-cluster-{n:02}"))
        .collect();
    for name in &names {
        let mut entry = existing.clone();
        entry["name"] = name.as_str().into();
        config["contexts"].as_sequence_mut().unwrap().push(entry);
    }
    let file = dir.join("kubeconfig-ten");
    std::fs::write(&file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    (file, names)
}

/// `environments/NAME.yaml` with these clusters, one wave.
fn write_environment(root: &Path, name: &str, contexts: &[String]) {
    let prod = std::fs::read_to_string(root.join("environments/prod.yaml")).unwrap();
    let head = prod.split("clusters:\n").next().unwrap();
    let mut text = head.replace("name: prod", &format!("name: {name}"));
    text = text.replace("branch: prod", &format!("branch: {name}"));
    text.push_str("clusters:\n");
    for context in contexts {
        text.push_str(&format!(
            "  - context: {context}\n    wave: 0\n    global: {{ cloud: true, env: {name}, region: r, clusterName: {context} }}\n"
        ));
    }
    std::fs::write(root.join(format!("environments/{name}.yaml")), text).unwrap();
}

/// Tab after `rollback hello --env prod --to`: the deployment ids of the release's
/// records in the environment's clusters, newest first, those that start with what was
/// typed; `get values --to` the same.
#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_to_completes_the_deployment_ids_of_the_records() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let list: Vec<(&str, u32)> = clusters.iter().map(|c| (c.as_str(), 0)).collect();
    let repo = repo("complete-to", &[("prod", &list)], "60s");
    let v1 = deploy_ok(fleet, &repo, "prod", "v1");
    let v2 = deploy_ok(fleet, &repo, "prod", "v2");
    let complete = |words: &[&str]| {
        let mut args = vec!["--".to_owned(), "flotilla".to_owned()];
        args.push("--root".into());
        args.push(repo.root().display().to_string());
        args.extend(words.iter().map(|w| w.to_string()));
        let out = command(fleet, &repo, &[])
            .args(&args[..])
            .env("COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", (args.len() - 2).to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout)
            .split(|c: char| c.is_whitespace() || c == '\u{b}')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let ids = complete(&["rollback", "hello", "--env", "prod", "--to", ""]);
    assert_eq!(ids, [v2.clone(), v1.clone()], "newest first");
    let typed = &v1[..v1.len() - 2];
    let narrowed = complete(&["rollback", "hello", "--env", "prod", "--to", typed]);
    assert!(narrowed.contains(&v1), "{narrowed:?}");
    let get = complete(&["get", "values", "hello", "--env", "prod", "--to", ""]);
    assert_eq!(get, [v2, v1]);
}
