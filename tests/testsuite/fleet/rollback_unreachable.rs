//! What `rollback` says when clusters cannot be reached (their API servers stopped for
//! real, `flotilla-fleet stop-cluster`), and when it is pointed at the wrong namespace:
//! each message names the clusters and the cause, never "no earlier complete
//! deployment" for a cluster it could not ask, never an empty error; its FAILED in red on
//! a terminal, never in a pipe or with `NO_COLOR`. A dedicated fleet:
//! stopping a cluster would disturb other tests; one test, as its steps stop and start
//! the same clusters.

use crate::support::rollout::*;
use flotilla_fleet::testing::Fleet;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The final `error: ...` line of a run's stderr.
fn error_line(out: &std::process::Output) -> String {
    stderr(out)
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap_or_default()
        .to_owned()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_names_unreachable_clusters_and_a_wrong_namespace() {
    let fleet = Fleet::dedicated(&["u-a", "u-b"]);
    let repo = repo("unreach", &[("prod", &[("u-a", 0), ("u-b", 1)])], "30s");
    let good = deploy_ok(&fleet, &repo, "prod", "v1");
    deploy_ok(&fleet, &repo, "prod", "v2");

    // One cluster down: the dry run lists it as unreachable, and exits 3.
    fleet.stop_cluster("u-a");
    let out = run(
        &fleet,
        &repo,
        &[
            "rollback",
            "hello",
            "--env",
            "prod",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let plan = json(&out);
    assert_eq!(plan["target"], good.as_str(), "{plan:#}");
    let row = |name: &str| {
        plan["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cluster"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not in the plan: {plan:#}"))
    };
    assert_eq!(row("u-a")["reachable"], false, "{plan:#}");
    assert!(
        row("u-a")["now"].is_null() && row("u-a")["to"].is_null(),
        "{plan:#}"
    );
    assert!(row("u-a")["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(row("u-b")["reachable"], true, "{plan:#}");
    assert_eq!(row("u-b")["to"]["deployment_id"], good.as_str(), "{plan:#}");
    assert!(
        error_line(&out).contains("u-a cannot be reached"),
        "{}",
        describe(&out)
    );
    let table = run(
        &fleet,
        &repo,
        &["rollback", "hello", "--env", "prod", "--dry-run"],
    );
    assert_eq!(table.status.code(), Some(3), "{}", describe(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("u-a") && l.contains("unreachable")),
        "{text}"
    );

    // The real rollback puts u-b back and ends with an error that says why it is
    // incomplete.
    let out = run(&fleet, &repo, &["rollback", "hello", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let error = error_line(&out);
    assert!(
        error.contains("not reached, nothing changed there: u-a"),
        "{}",
        describe(&out)
    );

    colour_on_a_terminal_only(&fleet, &repo, &good);

    // Every cluster down: exit 3 naming them, with or without --to.
    fleet.stop_cluster("u-b");
    for extra in [&[][..], &["--to", "bogus"][..]] {
        let mut args = vec!["rollback", "hello", "--env", "prod", "-o", "json"];
        args.extend_from_slice(extra);
        let out = run(&fleet, &repo, &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", describe(&out));
        let doc = json(&out);
        let message = doc["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("no cluster could be reached")
                && message.contains("u-a")
                && message.contains("u-b"),
            "{args:?}: {doc:#}"
        );
        assert!(!message.contains("no earlier complete"), "{doc:#}");
        assert_eq!(doc["exit_code"], 3, "{doc:#}");
    }

    // Back up: a wrong --namespace says that no records are there, and where they are.
    fleet.start_cluster("u-a");
    fleet.start_cluster("u-b");
    assert_eq!(
        deployed(&fleet, &repo, "prod", "u-b").map(|d| d.2),
        Some("v1".to_owned()),
        "the rollback with u-a down put u-b back"
    );
    let out = run(
        &fleet,
        &repo,
        &[
            "rollback",
            "hello",
            "--env",
            "prod",
            "--namespace",
            "nowhere",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let error = error_line(&out);
    assert!(
        error.contains("no cluster holds a record of release `hello` in namespace nowhere")
            && error.contains(&format!("its records are in namespace {}", repo.namespace)),
        "{}",
        describe(&out)
    );
}

/// The same incomplete rollback (u-a down) three times: its report's FAILED is red on a
/// terminal, plain with `NO_COLOR` there, and plain in a pipe.
fn colour_on_a_terminal_only(fleet: &Fleet, repo: &TestRepo, good: &str) {
    let root = repo.root().display().to_string();
    let args = [
        "--root", &root, "rollback", "hello", "--env", "prod", "--to", good,
    ];
    let env: Vec<(String, String)> = fleet.env().into_iter().collect();
    let (text, code) = crate::support::flotilla_on_a_terminal(&args, &env);
    assert_eq!(code, Some(1), "{text}");
    let heading = text
        .lines()
        .find(|l| l.contains("FAILED, rollback INCOMPLETE"))
        .unwrap_or_else(|| panic!("no FAILED heading:\n{text}"));
    assert!(
        heading.contains("\u{1b}[1m\u{1b}[31mFAILED"),
        "not red on a terminal: {heading:?}"
    );
    let row = text.lines().find(|l| l.contains("u-a")).unwrap_or_default();
    assert!(row.contains("\u{1b}["), "u-a's row is not red: {row:?}");

    let mut no_colour = env.clone();
    no_colour.push(("NO_COLOR".into(), "1".into()));
    let (text, code) = crate::support::flotilla_on_a_terminal(&args, &no_colour);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAILED, rollback INCOMPLETE"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour with NO_COLOR: {text:?}");

    let out = run(fleet, repo, &args[2..]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED, rollback INCOMPLETE"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour in a pipe: {text:?}");
}
