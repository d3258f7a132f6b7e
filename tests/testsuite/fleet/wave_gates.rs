//! Wave gates on the shared fleet (real kube-apiservers, simulated kubelet): a verify
//! command failing in wave 1 puts wave 0 back too, a soak that sees a crashloop begin
//! after the wave was healthy puts everything back, `--until-wave` then `--resume` is
//! one deployment, and a rollback never waits on a soak or runs a verify command.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use std::path::Path;

/// Two clusters of the fleet: wave 0 and wave 1.
fn two_waves() -> (String, String) {
    let clusters = Fleet::shared().clusters();
    assert!(
        clusters.len() >= 2,
        "the fleet needs two clusters: {clusters:?}"
    );
    (clusters[0].clone(), clusters[1].clone())
}

fn test_repo(name: &str) -> (TestRepo, String, String) {
    let (first, second) = two_waves();
    let waves: &[(&str, u32)] = &[(first.as_str(), 0), (second.as_str(), 1)];
    (repo(name, &[("prod", waves)], "60s"), first, second)
}

/// Sets `rollout.waves` of the prod environment to `yaml` (indented under `rollout:`).
fn set_waves(repo: &TestRepo, yaml: &str) {
    let file = repo.root().join("environments/prod.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let head = text.split("  waves:\n").next().unwrap().to_owned();
    let (before, clusters) = head.split_once("clusters:\n").unwrap_or((&head, ""));
    let (before, clusters) = (before.to_owned(), clusters.to_owned());
    let text = format!("{before}  waves:\n{yaml}clusters:\n{clusters}");
    std::fs::write(file, text).unwrap();
}

fn write_script(root: &Path, name: &str, body: &str) {
    let path = root.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn deploy(repo: &TestRepo, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["deploy", "hello", "--env", "prod", "-o", "json"];
    args.extend_from_slice(extra);
    run(Fleet::shared(), repo, &args)
}

/// The first deploy of a test (no gates yet): its deployment id.
fn deploy_v1(repo: &TestRepo) -> String {
    let v1 = deploy(repo, &[]);
    assert!(v1.status.success(), "{}", describe(&v1));
    json(&v1)["deployment_id"].as_str().unwrap().to_owned()
}

/// Every context runs `id`'s content, version v1, as its deployed revision.
fn assert_back_on(repo: &TestRepo, contexts: &[&String], id: &str) {
    for context in contexts {
        assert_eq!(
            deployed(Fleet::shared(), repo, "prod", context).map(|d| (d.1, d.2)),
            Some((id.to_owned(), "v1".into())),
            "{context}"
        );
    }
}

fn cluster<'a>(report: &'a serde_json::Value, context: &str) -> &'a serde_json::Value {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == context)
        .unwrap()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_verify_failing_in_wave_one_after_wave_zero_succeeded_puts_both_waves_back() {
    let (repo, first, second) = test_repo("verify-fails");
    let fleet = Fleet::shared();
    let good = deploy_v1(&repo);

    write_script(
        repo.root(),
        "smoke.sh",
        &format!(
            "echo \"checking $FLOTILLA_RELEASE in $FLOTILLA_ENV on $FLOTILLA_CONTEXT: version $FLOTILLA_VERSION, deployment $FLOTILLA_DEPLOYMENT_ID\"\n\
             kubectl --kubeconfig \"$KUBECONFIG\" --context \"$FLOTILLA_CONTEXT\" -n {ns} get deployment hello-web -o name\n\
             if [ \"$FLOTILLA_CONTEXT\" = {second} ]; then echo \"smoke test failed: 503 from /healthz\" >&2; exit 4; fi",
            ns = repo.namespace
        ),
    );
    let verify = "      verify:\n        - run: ./smoke.sh\n          timeout: 1m\n";
    set_waves(
        &repo,
        &format!("    - wave: 0\n{verify}    - wave: 1\n{verify}"),
    );
    let summary = repo.root().join("summary.md");
    let junit = repo.root().join("junit.xml");
    let out = run_with_kubectl(
        fleet,
        &repo,
        &[
            "--version",
            "v2",
            "--summary",
            summary.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    let id = report["deployment_id"].as_str().unwrap().to_owned();
    assert_eq!(report["overall"], "rolled-back", "{report:#}");
    assert_ci_summaries(&summary, &junit, &first, &second);
    // Wave 0 passed its gate before wave 1 started, then went back with it.
    let w0 = cluster(&report, &first);
    assert_eq!(w0["gates"][0]["passed"], true, "{report:#}");
    let seen = w0["gates"][0]["output"].to_string();
    assert!(
        seen.contains(&format!(
            "checking hello in prod on {first}: version v2, deployment {id}"
        )),
        "{seen}"
    );
    assert!(seen.contains("deployment.apps/hello-web"), "{seen}");
    for context in [&first, &second] {
        assert_eq!(result_of(&report, context), "rolled-back", "{report:#}");
    }
    assert_back_on(&repo, &[&first, &second], &good);
    let gate = &report["failed_gate"];
    assert_eq!(gate["cluster"], second.as_str(), "{report:#}");
    assert_eq!(gate["gate"], "verify `./smoke.sh`");
    assert_eq!(gate["detail"], "exit code 4");
    assert!(
        gate["output"]
            .to_string()
            .contains("smoke test failed: 503 from /healthz"),
        "{report:#}"
    );
    // The text report names them too, the command once; the last line on stderr
    // points at the report instead of saying the cause again.
    let (text, errors) = run_with_kubectl_text(fleet, &repo);
    assert!(
        text.contains(&format!(
            "cause: gate verify `./smoke.sh` failed on {second}: exit code 4"
        )),
        "{text}"
    );
    assert_eq!(text.matches("./smoke.sh").count(), 1, "{text}");
    let last = errors
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "error: deploy hello: FAILED, every changed cluster rolled back; \
             the cause ({second}) is in the report above"
        ),
        "{errors}"
    );
    assert!(
        text.contains("  | smoke test failed: 503 from /healthz"),
        "{text}"
    );
}

/// What CI shows of the failed two-wave deploy: a Markdown row per cluster with the
/// failed gate, and a JUnit test case per cluster and gate with the failing one.
fn assert_ci_summaries(summary: &Path, junit: &Path, first: &str, second: &str) {
    let text = std::fs::read_to_string(summary).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].starts_with(&format!("| `{first}` | 0 | 1 → 2 → 3 (= 1)")),
        "{text}"
    );
    assert!(
        rows[1].starts_with(&format!("| `{second}` | 1 | 1 → 2 → 3 (= 1)")),
        "{text}"
    );
    assert!(rows.iter().all(|r| r.contains("| rolled back |")), "{text}");
    assert!(text.contains("version `v2`"), "{text}");
    assert!(
        text.contains(&format!(
            "**Failed gate:** verify `./smoke.sh` on `{second}`: exit code 4"
        )),
        "{text}"
    );
    let xml = std::fs::read_to_string(junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let cases: Vec<(String, bool)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            let failed = n.children().any(|c| c.has_tag_name("failure"));
            (n.attribute("name").unwrap_or_default().to_owned(), failed)
        })
        .collect();
    assert_eq!(
        cases,
        [
            (first.to_owned(), true),
            (format!("{first}: verify `./smoke.sh`"), false),
            (second.to_owned(), true),
            (format!("{second}: verify `./smoke.sh`"), true),
        ],
        "{xml}"
    );
}

/// `deploy` with the fleet's kubectl on PATH (verify commands call it).
fn run_with_kubectl(fleet: &Fleet, repo: &TestRepo, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["deploy", "hello", "--env", "prod", "-o", "json"];
    args.extend_from_slice(extra);
    let mut cmd = command(fleet, repo, &args);
    cmd.env("PATH", path_with_kubectl());
    cmd.output().unwrap()
}

/// The deploy's text report (stdout) and its stderr.
fn run_with_kubectl_text(fleet: &Fleet, repo: &TestRepo) -> (String, String) {
    let mut cmd = command(
        fleet,
        repo,
        &["deploy", "hello", "--env", "prod", "--version", "v3"],
    );
    cmd.env("PATH", path_with_kubectl());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path_with_kubectl() -> String {
    let kubectl = flotilla_fleet::binaries::Binaries::find()
        .ok()
        .and_then(|b| b.kubectl)
        .expect("the fleet's kubectl (scripts/install-deps.sh builds it)");
    let dir = kubectl.parent().unwrap().display().to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_soak_that_sees_a_crashloop_begin_after_the_wave_was_healthy_puts_everything_back() {
    let (repo, first, second) = test_repo("soak-crash");
    let good = deploy_v1(&repo);
    // Wave 1's pod is Ready (the health wait passes), then crashes 15 s after it started.
    set_waves(&repo, "    - wave: 1\n      soak: 5m\n");
    let out = deploy(
        &repo,
        &[
            "--version",
            "v2",
            "--set",
            &format!("breakIn={second}"),
            "--set",
            "breakTag=crashafter-15",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["overall"], "rolled-back", "{report:#}");
    let gate = &report["failed_gate"];
    assert_eq!(gate["cluster"], second.as_str(), "{report:#}");
    assert_eq!(
        gate["gate"], "soak",
        "the soak caught it, not the health wait: {report:#}"
    );
    assert!(
        gate["detail"]
            .as_str()
            .unwrap()
            .contains("CrashLoopBackOff"),
        "{report:#}"
    );
    for context in [&first, &second] {
        assert_eq!(result_of(&report, context), "rolled-back", "{report:#}");
    }
    assert_back_on(&repo, &[&first, &second], &good);
    // Without a terminal the soak's progress is a few lines, not one per sample.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let soak_lines = stderr.matches(&format!("[{second}] soaking")).count();
    assert!(
        (1..=3).contains(&soak_lines),
        "{soak_lines} soak lines:\n{stderr}"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn until_wave_zero_then_resume_is_one_deployment_in_history() {
    let (repo, first, second) = test_repo("resume");
    let fleet = Fleet::shared();
    let good = deploy_v1(&repo);

    let paused = deploy(&repo, &["--version", "v2", "--until-wave", "0"]);
    assert!(paused.status.success(), "{}", describe(&paused));
    let report = json(&paused);
    assert_eq!(report["overall"], "paused", "{report:#}");
    assert_eq!(report["paused_after_wave"], 0);
    let id = report["deployment_id"].as_str().unwrap().to_owned();
    assert_eq!(result_of(&report, &second), "not-started");
    assert_eq!(
        deployed(fleet, &repo, "prod", &first).map(|d| d.1),
        Some(id.clone())
    );
    assert_eq!(
        deployed(fleet, &repo, "prod", &second).map(|d| d.1),
        Some(good.clone())
    );
    // A plain rollback treats it like any other unfinished deploy: what ran before.
    let dry = run(
        fleet,
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
    assert!(dry.status.success(), "{}", describe(&dry));
    assert!(json(&dry).to_string().contains(&good), "{}", describe(&dry));

    // Other content than the first part deployed: refused, nothing changed.
    let break_first = format!("breakIn={first}");
    let other = deploy(
        &repo,
        &["--version", "v2", "--set", &break_first, "--resume", &id],
    );
    assert_eq!(other.status.code(), Some(2), "{}", describe(&other));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("renders other content"),
        "{}",
        describe(&other)
    );
    let resumed = deploy(&repo, &["--version", "v2", "--resume", &id]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let report = json(&resumed);
    assert_eq!(report["overall"], "succeeded", "{report:#}");
    assert_eq!(report["deployment_id"], id.as_str());
    assert_eq!(cluster(&report, &first)["earlier"], true, "{report:#}");
    for context in [&first, &second] {
        assert_eq!(
            deployed(fleet, &repo, "prod", context),
            Some((2, id.clone(), "v2".into())),
            "{context}"
        );
    }
    let ids: std::collections::BTreeSet<String> = history(fleet, &repo, "prod")
        .into_iter()
        .map(|r| r.3)
        .collect();
    assert_eq!(
        ids,
        [good, id.clone()].into_iter().collect(),
        "one deployment id across both runs"
    );

    // It is complete now: nothing to resume.
    let again = deploy(&repo, &["--version", "v2", "--resume", &id]);
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&format!(
            "--resume {id}: deployment {id} is complete, not partial-by-request"
        )),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_rollback_never_waits_on_a_soak_or_runs_a_verify_command() {
    let (repo, first, second) = test_repo("rollback-no-gates");
    let fleet = Fleet::shared();
    let good = deploy_v1(&repo);
    let v2 = deploy(&repo, &["--version", "v2"]);
    assert!(v2.status.success(), "{}", describe(&v2));
    // Gates that would hold a rollback for an hour, or fail it.
    set_waves(
        &repo,
        "    - wave: 0\n      soak: 1h\n      verify:\n        - run: exit 1\n    - wave: 1\n      soak: 1h\n",
    );
    let out = run(
        fleet,
        &repo,
        &["rollback", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let report = json(&out);
    for context in [&first, &second] {
        assert_eq!(result_of(&report, context), "deployed", "{report:#}");
        assert!(
            cluster(&report, context).get("gates").is_none(),
            "{report:#}"
        );
        assert_eq!(
            deployed(fleet, &repo, "prod", context).map(|d| (d.1, d.2)),
            Some((good.clone(), "v1".into()))
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("soaking") && !stderr.contains("verify:"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_resumed_deployment_that_fails_puts_its_earlier_waves_back_too() {
    let (repo, first, second) = test_repo("resume-fails");
    let good = deploy_v1(&repo);
    let paused = deploy(&repo, &["--version", "v2", "--until-wave", "0"]);
    assert!(paused.status.success(), "{}", describe(&paused));
    let id = json(&paused)["deployment_id"].as_str().unwrap().to_owned();

    set_waves(
        &repo,
        "    - wave: 1\n      verify:\n        - run: echo wave 1 is not ready; exit 1\n",
    );
    let out = deploy(&repo, &["--version", "v2", "--resume", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["overall"], "rolled-back", "{report:#}");
    assert_eq!(
        report["failed_gate"]["cluster"],
        second.as_str(),
        "{report:#}"
    );
    // Wave 0 was changed by the first part of this same deployment: it goes back too.
    assert_eq!(result_of(&report, &first), "rolled-back", "{report:#}");
    assert_back_on(&repo, &[&first, &second], &good);
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn the_resume_command_a_pause_prints_goes_on_as_printed() {
    let (repo, first, second) = test_repo("resume-printed");
    let fleet = Fleet::shared();
    deploy_v1(&repo);
    // A version and --set values the checkout does not have: the printed command must
    // take them from the paused deployment's records.
    let set = format!("breakIn={first},breakTag=v3-{first}");
    let paused = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v3",
            "--set",
            &set,
            "--until-wave",
            "0",
        ],
    );
    assert!(paused.status.success(), "{}", describe(&paused));
    let text = String::from_utf8_lossy(&paused.stdout);
    let printed = text
        .lines()
        .skip_while(|l| !l.starts_with("stopped after wave 0"))
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no resume command printed:\n{text}"));
    assert!(
        printed.starts_with("flotilla deploy hello --env prod --resume "),
        "{printed}"
    );
    let id = printed.rsplit(' ').next().unwrap().to_owned();
    // status says the deployment is paused, with the same command.
    let status = run(fleet, &repo, &["status", "hello", "--env", "prod"]);
    assert_eq!(status.status.code(), Some(0), "{}", describe(&status));
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(
        said.contains(&format!("deployment {id} is paused after wave 0")) && said.contains(printed),
        "{said}"
    );
    let args: Vec<&str> = printed.split_whitespace().skip(1).collect();
    let resumed = run(fleet, &repo, &args);
    assert!(
        resumed.status.success(),
        "{printed}: {}",
        describe(&resumed)
    );
    let notice = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        notice.contains(&format!("--resume {id}: version v3")) && notice.contains("breakIn"),
        "{notice}"
    );
    for context in [&first, &second] {
        assert_eq!(
            deployed(fleet, &repo, "prod", context).map(|d| (d.1, d.2)),
            Some((id.clone(), "v3".to_owned())),
            "{context}"
        );
    }
}
