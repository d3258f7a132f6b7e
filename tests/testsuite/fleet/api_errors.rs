//! What the API server answers, as a user reads it (real kube-apiservers of the shared
//! fleet): the server's own message with the cluster, the verb and the object flotilla
//! was acting on, never the client library's `Debug` dump of the `Status`; and the exit
//! code of the kind (3 for a refusal found before any change, 1 for a deploy that ran).
//! The kinds no server can be made to produce here are unit tests on constructed errors
//! (`src/cluster/api_error.rs`).

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use std::process::Output;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Nothing of kube's own rendering of an error.
fn assert_no_library_dump(text: &str) {
    for dump in [
        "Status {",
        "ApiError",
        "StatusDetails",
        "reason: \"",
        "ServiceError",
    ] {
        assert!(!text.contains(dump), "`{dump}` in:\n{text}");
    }
}

/// The fleet's `NAME-deployer` context may only work in namespace `hello`: a release
/// aimed at another namespace is refused by RBAC on the first request of every command
/// (a deploy's: the environment's freeze).
#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_namespace_the_deployer_may_not_touch_is_the_servers_forbidden_in_every_command() {
    let fleet = Fleet::shared();
    let deployer = format!("{}-deployer", fleet.clusters()[0]);
    let repo = repo("forbidden", &[("prod", &[(deployer.as_str(), 0)])], "60s");
    let ns = &repo.namespace;
    let expected = format!(
        "cluster `{deployer}`: permission denied: cannot list the release records of `hello` (Secrets in namespace `{ns}`): secrets is forbidden: User \"deployer\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{ns}\" (403 Forbidden)"
    );
    for args in [
        &["deploy", "hello", "--env", "prod"][..],
        &["diff", "hello", "--env", "prod"],
        &["status", "hello", "--env", "prod"],
        &["history", "hello", "--env", "prod"],
        &["rollback", "hello", "--env", "prod"],
    ] {
        let out = run(fleet, &repo, args);
        let log = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {log}");
        if args[0] == "deploy" {
            // A deploy's first request is the environment's freeze, kept in the namespace.
            let freeze = format!(
                "cluster `{deployer}`: permission denied: cannot read the freeze of environment `prod` (ConfigMap {ns}/flotilla.freeze.prod): configmaps \"flotilla.freeze.prod\" is forbidden: User \"deployer\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"{ns}\" (403 Forbidden)"
            );
            assert!(
                log.lines().any(|l| l.starts_with(
                    "error: deploy refused, nothing changed: cannot tell whether prod is frozen"
                ) && l.contains(&freeze)),
                "{args:?}: no refusal naming `{freeze}` in:\n{log}"
            );
        } else {
            assert!(
                log.lines().any(|l| l == format!("error: {expected}")),
                "{args:?}: no line `error: {expected}` in:\n{log}"
            );
        }
        assert_no_library_dump(&log);
        assert_no_library_dump(&String::from_utf8_lossy(&out.stdout));
    }
}

/// An object the server refuses as invalid: the deploy ran (exit 1) and the report
/// gives the server's reason, naming the object.
#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn an_object_the_server_finds_invalid_is_named_with_the_servers_reason() {
    let fleet = Fleet::shared();
    let cluster = fleet.clusters()[0].clone();
    let repo = repo("invalid", &[("prod", &[(cluster.as_str(), 0)])], "60s");
    let template = repo
        .root()
        .join("releases/hello/chart/templates/deployment.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(&template, text.replace("replicas: 1", "replicas: -1")).unwrap();
    let out = run(fleet, &repo, &["deploy", "hello", "--env", "prod"]);
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "cannot apply Deployment {}/hello-web: Deployment.apps \"hello-web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0 (422 Invalid)",
            repo.namespace
        )),
        "{log}"
    );
    assert_no_library_dump(&log);
}
