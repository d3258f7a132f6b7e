//! `flotilla dashboard` against real clusters: after a two-wave deploy the page shows
//! every cluster's version and deployment id and the rollback target; an API server
//! stopped shows as unreachable while the other cluster still shows; beyond loopback
//! the page needs the bearer token. `status -o html` writes the same matrix. A
//! dedicated fleet: a test stops a cluster.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn fleet() -> &'static Fleet {
    crate::support::dedicated_fleet(&["dash-a", "dash-b"])
}

/// One test at a time: one stops a cluster the others deploy to.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn two_waves(test: &str) -> TestRepo {
    repo(test, &[("prod", &[("dash-a", 0), ("dash-b", 1)])], "60s")
}

/// A `flotilla dashboard` running; killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `flotilla dashboard ARGS --listen LISTEN`, with `env` set, and waits for the
/// line naming the address it serves on.
fn serve(repo: &TestRepo, listen: &str, args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut full = vec!["dashboard", "--listen", listen, "--interval", "1s"];
    full.extend_from_slice(args);
    let mut cmd = command(fleet(), repo, &full);
    cmd.envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("start flotilla dashboard");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the dashboard's first line");
    let url = line
        .trim()
        .strip_prefix("flotilla dashboard: ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Served { child, url }
}

/// GET (or `method`) `url`, with a bearer `token`: the status and the body.
fn fetch(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut request = client.request(method.parse().unwrap(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the dashboard answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

/// The matrix row of `cluster` in the page (the first release's).
fn row<'a>(page: &'a str, cluster: &str) -> &'a str {
    let start = page
        .find(&format!("data-cluster=\"{cluster}\""))
        .unwrap_or_else(|| panic!("no row of {cluster} in {page}"));
    let row = &page[..start];
    let open = row.rfind("<tr").unwrap_or(0);
    let end = page[start..]
        .find("</tr>")
        .map_or(page.len(), |e| start + e);
    &page[open..end]
}

/// The timeline row of deployment `id`, with its run's picture.
fn timeline_row<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<td class=\"mono\">{id}"))
        .unwrap_or_else(|| panic!("no deployment {id} in {page}"));
    let open = page[..start].rfind("<tr").unwrap_or(0);
    let end = page[start..]
        .find("</details>")
        .map_or(page.len(), |e| start + e);
    &page[open..end]
}

/// Fetches the page until `ready` holds of it (the dashboard reads the fleet again
/// each second), or fails with the last page after `within`.
fn page_until(url: &str, within: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (status, page) = fetch("GET", url, None);
        assert_eq!(status, 200, "{page}");
        if ready(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "never as expected: {page}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn the_page_shows_every_cluster_then_a_stopped_one_as_unreachable() {
    let _serial = serial();
    let repo = two_waves("dashboard");
    let first = deploy_ok(fleet(), &repo, "prod", "v1");
    let second = deploy_ok(fleet(), &repo, "prod", "v2");
    let served = serve(&repo, "127.0.0.1:0", &[], &[]);

    let (status, page) = fetch("GET", &served.url, None);
    assert_eq!(status, 200, "{page}");
    for cluster in ["dash-a", "dash-b"] {
        let row = row(&page, cluster);
        assert!(row.contains("class=\"cell healthy\""), "{cluster}: {row}");
        assert!(row.contains(">v2<"), "{cluster} runs v2: {row}");
        assert!(row.contains(&second), "{cluster} runs {second}: {row}");
    }
    assert!(
        page.contains(&format!("<span class=\"mono target\">{first}</span>")),
        "rollback goes back to {first}: {page}"
    );
    // Read-only: nothing but GET.
    let (status, _) = fetch("POST", &served.url, None);
    assert_eq!(status, 405);
    let (status, text) = fetch("GET", &format!("{}view.json", served.url), None);
    assert_eq!(status, 200);
    let view: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        view["environments"][0]["releases"][0]["rollback_target"],
        first.as_str()
    );

    // A crashlooping deploy left as it is (`on_failure: halt`): the failing cluster and
    // its diagnosis appear without a new page being asked for by hand.
    let env_file = repo.root().join("environments/prod.yaml");
    let text = std::fs::read_to_string(&env_file).unwrap();
    std::fs::write(
        &env_file,
        text.replace("on_failure: rollback", "on_failure: halt"),
    )
    .unwrap();
    let out = run(
        fleet(),
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v3",
            "--set",
            "breakIn=dash-b",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let broken = json(&out)["deployment_id"].as_str().unwrap().to_owned();
    let page = page_until(&served.url, Duration::from_secs(60), |page| {
        row(page, "dash-b").contains("class=\"cell failing\"")
    });
    let b = row(&page, "dash-b");
    assert!(b.contains("<summary>diagnosis</summary>"), "{b}");
    assert!(b.contains("CrashLoopBackOff"), "{b}");
    let picture = timeline_row(&page, &broken);
    assert!(picture.contains("state-failed"), "{picture}");
    // The run's picture: each cluster's revision of it, dash-b's failed.
    assert!(picture.contains("<summary>the run</summary>"), "{picture}");
    assert!(
        picture.contains("<tr class=\"run-failed\"><td>dash-b</td>"),
        "{picture}"
    );
    assert!(
        picture.contains("<tr class=\"run-deployed\"><td>dash-a</td>"),
        "{picture}"
    );

    let out = run(fleet(), &repo, &["rollback", "hello", "--env", "prod"]);
    assert!(out.status.success(), "{}", describe(&out));
    let page = page_until(&served.url, Duration::from_secs(60), |page| {
        timeline_row(page, &broken).contains("state-rolled-back")
    });
    for cluster in ["dash-a", "dash-b"] {
        let row = row(&page, cluster);
        assert!(
            row.contains("class=\"cell healthy\"") && row.contains(">v2<"),
            "{cluster}: {row}"
        );
    }

    fleet().stop_cluster("dash-b");
    let page = page_until(&served.url, Duration::from_secs(60), |page| {
        row(page, "dash-b").contains("class=\"cell unreachable\"")
    });
    fleet().start_cluster("dash-b");
    let a = row(&page, "dash-a");
    assert!(
        a.contains("class=\"cell healthy\"") && a.contains(&second),
        "dash-a still shows: {a}"
    );
    assert!(row(&page, "dash-b").contains("unreachable"), "{page}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn status_html_is_the_matrix_in_one_file() {
    let _serial = serial();
    let repo = two_waves("dashboard-html");
    let id = deploy_ok(fleet(), &repo, "prod", "v1");
    let out = run(
        fleet(),
        &repo,
        &["status", "hello", "--env", "prod", "-o", "html"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(!page.contains("<script"), "no script: {page}");
    for cluster in ["dash-a", "dash-b"] {
        let row = row(&page, cluster);
        assert!(
            row.contains(&id) && row.contains(">v1<"),
            "{cluster}: {row}"
        );
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn beyond_loopback_the_page_needs_the_token() {
    let _serial = serial();
    let repo = two_waves("dashboard-token");
    let out = run(fleet(), &repo, &["dashboard", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--token-env"),
        "{}",
        describe(&out)
    );

    let token = "dashboard-token-7c1d";
    let served = serve(
        &repo,
        "0.0.0.0:0",
        &["--token-env", "DASHBOARD_TOKEN"],
        &[("DASHBOARD_TOKEN", token)],
    );
    let url = served.url.replace("0.0.0.0", "127.0.0.1");
    let (status, body) = fetch("GET", &url, None);
    assert_eq!(status, 401, "{body}");
    let (status, _) = fetch("GET", &url, Some("not-the-token"));
    assert_eq!(status, 401);
    let (status, page) = fetch("GET", &url, Some(token));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-cluster=\"dash-a\""), "{page}");
    assert!(!page.contains(token), "the token never shows");
}
