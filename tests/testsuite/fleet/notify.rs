//! Notifications on the shared fleet: an environment's webhooks (a Slack-compatible
//! one, a generic JSON one, one that answers 500, one where nothing listens) hear of a
//! good deploy, of a failing one that rolls back and of an uninstall, from local HTTP receivers the
//! test starts; the failing webhooks warn once each and never fail the deploy, and no
//! secret value or webhook URL is shown.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::{Fleet, HookReceiver};
use rollout_support::*;
use serde_json::Value;

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn webhooks_hear_of_started_succeeded_and_rolled_back_and_a_failing_one_only_warns() {
    let fleet = Fleet::shared();
    let list = fleet_waves(fleet, false);
    let repo = repo("notify", &[("prod", &as_env(&list))], "60s");
    let file = repo.root().join("environments/prod.yaml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(
        "notify:\n  - kind: webhook\n    url_env: TEST_HOOK_URL\n  - kind: slack\n    url_env: TEST_SLACK_URL\n    on: [failed, rolled-back]\n  - kind: webhook\n    url_env: TEST_BROKEN_HOOK_URL\n  - kind: webhook\n    url_env: TEST_REFUSED_HOOK_URL\n",
    );
    std::fs::write(&file, text).unwrap();
    let hook = HookReceiver::start(Some(200));
    let slack = HookReceiver::start(Some(200));
    let broken = HookReceiver::start(Some(500));
    let refused = HookReceiver::refusing_url();
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", "hello", "--env", "prod", "-o", "json"];
        args.extend_from_slice(extra);
        command(fleet, &repo, &args)
            .env("TEST_HOOK_URL", &hook.url)
            .env("TEST_SLACK_URL", &slack.url)
            .env("TEST_BROKEN_HOOK_URL", &broken.url)
            .env("TEST_REFUSED_HOOK_URL", &refused)
            .output()
            .unwrap()
    };
    let parse = |bodies: Vec<String>| -> Vec<Value> {
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    };

    let good = deploy(&[]);
    assert!(good.status.success(), "{}", describe(&good));
    let id = json(&good)["deployment_id"].as_str().unwrap().to_owned();
    let heard = parse(hook.received());
    assert_eq!(heard.len(), 2, "{heard:#?}");
    assert_eq!(heard[0]["event"], "started");
    assert_eq!(heard[1]["event"], "succeeded");
    for notice in &heard {
        assert_eq!(notice["release"], "hello");
        assert_eq!(notice["environment"], "prod");
        assert_eq!(notice["deployment_id"], id.as_str());
        assert_eq!(notice["version"], "v1");
        assert_eq!(notice["clusters"].as_array().unwrap().len(), list.len());
    }
    assert!(heard[1]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == "deployed"));
    // The Slack hook hears only of failures; the broken one was tried twice.
    assert!(slack.received().is_empty());
    assert_eq!(broken.received().len(), 2);
    let stderr = String::from_utf8_lossy(&good.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("warning: notification to"))
        .collect();
    assert_eq!(warnings.len(), 2, "one per failing webhook:\n{stderr}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("$TEST_BROKEN_HOOK_URL failed: the webhook answered 500")),
        "{stderr}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("$TEST_REFUSED_HOOK_URL failed: connection refused")),
        "{stderr}"
    );
    assert!(!stderr.contains("T0KEN-in-the-url"), "{stderr}");

    let failed = deploy(&[
        "--version",
        "v2",
        "--set",
        &format!("breakIn={}", list[0].0),
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    let failed_id = json(&failed)["deployment_id"].as_str().unwrap().to_owned();
    let heard = parse(hook.received());
    assert_eq!(heard.len(), 2, "{heard:#?}");
    assert_eq!(heard[0]["event"], "started");
    assert_eq!(heard[1]["event"], "rolled-back");
    assert_eq!(heard[1]["overall"], "rolled-back");
    assert_eq!(heard[1]["deployment_id"], failed_id.as_str());
    assert_eq!(heard[1]["version"], "v2");
    assert!(heard[1]["cause"]
        .as_str()
        .unwrap()
        .contains("CrashLoopBackOff"));
    assert!(heard[1]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == "rolled-back"));
    let slack_heard = parse(slack.received());
    assert_eq!(slack_heard.len(), 1, "{slack_heard:#?}");
    let message = slack_heard[0]["text"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "flotilla deploy *hello* v2 to *prod*: FAILED, every changed cluster rolled back (deployment {failed_id})"
        )),
        "{message}"
    );
    for body in heard.iter().chain(&slack_heard) {
        assert!(
            !body.to_string().contains("fake-prod-hello-db-password"),
            "{body}"
        );
    }

    // An uninstall is heard of too: started once every lease is taken, then how it
    // ended, under the id of its own run.
    let gone = command(fleet, &repo, &["uninstall", "hello", "--env", "prod"])
        .env("TEST_HOOK_URL", &hook.url)
        .env("TEST_SLACK_URL", &slack.url)
        .env("TEST_BROKEN_HOOK_URL", &broken.url)
        .env("TEST_REFUSED_HOOK_URL", &refused)
        .output()
        .unwrap();
    assert!(gone.status.success(), "{}", describe(&gone));
    let heard = parse(hook.received());
    assert_eq!(heard.len(), 2, "{heard:#?}");
    assert_eq!(heard[0]["event"], "started");
    assert_eq!(heard[1]["event"], "succeeded");
    for notice in &heard {
        assert_eq!(notice["operation"], "uninstall");
        assert_eq!(notice["release"], "hello");
        assert_eq!(notice["deployment_id"], heard[0]["deployment_id"]);
        assert_ne!(notice["deployment_id"], failed_id.as_str());
    }
    assert!(heard[1]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == "uninstalled"));
    assert!(
        slack.received().is_empty(),
        "the Slack hook hears only of failures"
    );
}
