//! `flotilla dashboard` against real clusters, in a real headless browser (Debian's
//! chromium through chromedriver): after a two-wave deploy the page shows every
//! cluster's version and deployment id and the rollback target; a crashlooping deploy
//! brings the failing cluster with its diagnosis, a rollback the rolled-back state,
//! and a stopped API server an unreachable cell beside the other cluster, all without
//! a reload, as a freeze does in each cell; the failing cluster's page and the run's
//! picture; screenshots of each
//! (`screenshots()`). Beyond loopback the page needs the bearer token. `status -o
//! html` writes the same matrix. A dedicated fleet: a test stops a cluster.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

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

/// Where the screenshots go: `$FLOTILLA_ARTIFACTS/dashboard`, else the target dir's
/// `tmp/dashboard-screenshots` (kept with the build, as CI keeps the target dir).
fn screenshots() -> std::path::PathBuf {
    let dir = std::env::var_os("FLOTILLA_ARTIFACTS")
        .map(|d| std::path::PathBuf::from(d).join("dashboard"))
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
        });
    std::fs::create_dir_all(&dir).expect("the screenshots folder");
    dir
}

/// chromedriver (Debian's chromium-driver, `scripts/install-deps.sh`) driving a
/// headless chromium; both stopped when dropped.
struct Browser {
    driver: Child,
    client: fantoccini::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn program(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).is_file(),
        "{path} is missing: scripts/install-deps.sh installs Debian's chromium and chromium-driver (or set {variable})"
    );
    path
}

impl Browser {
    async fn start() -> Browser {
        let chromium = program("FLOTILLA_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("FLOTILLA_CHROMEDRIVER", "/usr/bin/chromedriver");
        // A free port for chromedriver, which cannot be told to pick one and say it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut driver = std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chromedriver");
        // Its lines up to "started successfully", then the rest drained: a pipe
        // closed under it would end it at its next line.
        let mut lines = BufReader::new(driver.stdout.take().expect("piped stdout")).lines();
        let mut said = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            said.push_str(&line);
            said.push('\n');
            if line.contains("started successfully") {
                break;
            }
        }
        assert!(
            said.contains("started successfully"),
            "chromedriver: {said}"
        );
        std::thread::spawn(move || lines.for_each(drop));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                // --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|err| panic!("no session of chromedriver: {err}"));
        Browser { driver, client }
    }

    async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The text of the first element `css` selects, `""` when none does.
    async fn text(&self, css: &str) -> String {
        let script = format!(
            "var e = document.querySelector({}); return e ? e.innerText : '';",
            serde_json::Value::String(css.to_owned())
        );
        self.eval(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits (polling the page, at most `within`) until the element `css` selects
    /// exists; fails with the page's text.
    async fn wait_for(&self, css: &str, within: Duration) {
        let found = self
            .client
            .wait()
            .at_most(within)
            .every(Duration::from_millis(200))
            .for_element(fantoccini::Locator::Css(css))
            .await;
        if let Err(err) = found {
            panic!("{css} never shown ({err}): {}", self.text("body").await);
        }
    }

    /// Marks the page: the mark survives anything but a reload.
    async fn mark(&self) {
        self.eval("window.flotillaMark = 'not reloaded'; return true;")
            .await;
    }

    async fn assert_not_reloaded(&self, what: &str) {
        let mark = self.eval("return window.flotillaMark || null;").await;
        assert_eq!(mark, "not reloaded", "{what}: the page was reloaded");
    }

    async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let path = screenshots().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

#[test]
#[ignore = "needs the local fleet and chromium: scripts/test.sh runs it"]
fn in_a_browser_the_fleet_updates_itself_from_deploy_to_failure_rollback_and_a_lost_cluster() {
    let _serial = serial();
    let repo = two_waves("dashboard");
    let first = deploy_ok(fleet(), &repo, "prod", "v1");
    let second = deploy_ok(fleet(), &repo, "prod", "v2");
    let served = serve(&repo, "127.0.0.1:0", &[], &[]);

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

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        let wait = Duration::from_secs(90);
        browser
            .client
            .goto(&served.url)
            .await
            .expect("open the page");
        for cluster in ["dash-a", "dash-b"] {
            let css = format!("tr.cell.healthy[data-cluster=\"{cluster}\"]");
            browser.wait_for(&css, wait).await;
            let row = browser.text(&css).await;
            assert!(
                row.contains("v2") && row.contains(&second),
                "{cluster}: {row}"
            );
        }
        let target = browser.text(".target").await;
        assert_eq!(target, first, "rollback goes back to {first}");
        // The live script follows the stream: readings arrive without a reload.
        browser.mark().await;
        browser.wait_for("body[data-readings]", wait).await;
        browser.assert_not_reloaded("after a reading").await;
        browser.screenshot("fleet.png").await;

        // A crashlooping deploy left as it is (`on_failure: halt`).
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
        browser
            .wait_for(
                "tr.cell.failing[data-cluster=\"dash-b\"] details.diagnosis",
                wait,
            )
            .await;
        browser.assert_not_reloaded("the failing cluster").await;
        let b = browser
            .text("tr.cell.failing[data-cluster=\"dash-b\"]")
            .await;
        assert!(b.contains("CrashLoopBackOff"), "{b}");
        browser
            .wait_for(
                &format!("tr.deployment.state-failed a[href=\"/run/{broken}\"]"),
                wait,
            )
            .await;
        browser.screenshot("failing.png").await;

        // The failing cluster's own page: its diagnosis, failing pods and events.
        browser
            .client
            .find(fantoccini::Locator::Css(
                "tr.cell.failing[data-cluster=\"dash-b\"] a",
            ))
            .await
            .expect("dash-b's link")
            .click()
            .await
            .expect("open dash-b's page");
        browser.wait_for("pre.diagnosis", wait).await;
        let diagnosis = browser.text("pre.diagnosis").await;
        assert!(diagnosis.contains("CrashLoopBackOff"), "{diagnosis}");
        let url = browser.client.current_url().await.unwrap();
        assert!(url.path().ends_with("/cluster/prod/hello/dash-b"), "{url}");
        browser.screenshot("failing-cluster.png").await;

        // The run's picture: each cluster's phases on one axis.
        browser
            .client
            .goto(&format!("{}run/{broken}", served.url))
            .await
            .unwrap();
        for phase in ["prepare", "apply", "wait"] {
            browser
                .wait_for(
                    &format!("tr[data-cluster=\"dash-a\"] .bar.phase-{phase}"),
                    wait,
                )
                .await;
        }
        browser
            .wait_for(
                "tr.run-failed[data-cluster=\"dash-b\"] .bar.phase-wait",
                wait,
            )
            .await;
        browser.screenshot("run.png").await;

        // The rollback: the failed deployment shows rolled back, without a reload.
        browser.client.goto(&served.url).await.unwrap();
        browser
            .wait_for("tr.cell[data-cluster=\"dash-a\"]", wait)
            .await;
        browser.mark().await;
        let out = run(fleet(), &repo, &["rollback", "hello", "--env", "prod"]);
        assert!(out.status.success(), "{}", describe(&out));
        browser
            .wait_for(
                &format!("tr.deployment.state-rolled-back a[href=\"/run/{broken}\"]"),
                wait,
            )
            .await;
        for cluster in ["dash-a", "dash-b"] {
            let css = format!("tr.cell.healthy[data-cluster=\"{cluster}\"]");
            browser.wait_for(&css, wait).await;
            assert!(browser.text(&css).await.contains("v2"), "{cluster}");
        }
        browser.assert_not_reloaded("the rollback").await;
        browser.screenshot("rolled-back.png").await;

        // A freeze shows in each cell, as `deploy` would be refused there.
        let out = run(
            fleet(),
            &repo,
            &["freeze", "--env", "prod", "--reason", "incident-4711"],
        );
        assert!(out.status.success(), "{}", describe(&out));
        for cluster in ["dash-a", "dash-b"] {
            browser
                .wait_for(
                    &format!("tr.cell[data-cluster=\"{cluster}\"] .frozen"),
                    wait,
                )
                .await;
        }
        let frozen = browser
            .eval("return document.querySelector('.frozen').title;")
            .await;
        assert!(
            frozen.as_str().is_some_and(|t| t.contains("incident-4711")),
            "{frozen}"
        );

        // A stopped API server: unreachable, the other cluster still shown.
        fleet().stop_cluster("dash-b");
        browser
            .wait_for("tr.cell.unreachable[data-cluster=\"dash-b\"]", wait)
            .await;
        browser.assert_not_reloaded("a lost cluster").await;
        let a = browser.text("tr.cell[data-cluster=\"dash-a\"]").await;
        browser.screenshot("unreachable.png").await;
        fleet().start_cluster("dash-b");
        assert!(
            a.contains("healthy") && a.contains(&second),
            "dash-a still shows: {a}"
        );
        let _ = browser.client.clone().close().await;
    });
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
