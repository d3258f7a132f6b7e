//! Records as a real cluster keeps them, on two clusters of the shared fleet: a record
//! Secret that does not decode (a gzip bomb, bytes that are not gzip) is skipped and
//! named by `history`, `status` and `deploy`, which go on; one that could be what runs
//! stops a deploy before any change. A rollback whose checkout no longer has a
//! loadable `release.yaml` finds the records by their labels and goes on.

use crate::support::cluster as support;
use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::core::v1::Secret;
use rollout_support::*;
use std::io::Write;

/// A repo whose prod environment is two clusters of the fleet, in two waves.
fn test_repo(name: &str) -> (TestRepo, String, String) {
    let clusters = Fleet::shared().clusters();
    assert!(
        clusters.len() >= 2,
        "the fleet needs two clusters: {clusters:?}"
    );
    let waves: &[(&str, u32)] = &[(clusters[0].as_str(), 0), (clusters[1].as_str(), 1)];
    (
        repo(name, &[("prod", waves)], "60s"),
        clusters[0].clone(),
        clusters[1].clone(),
    )
}

/// A gzip stream of a few hundred kilobytes that inflates to 65 MiB of zeros.
fn gzip_bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..65 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

/// Writes Secret `name` in the first cluster of the fleet, in the repo's namespace, with
/// the labels and type of a record of revision `revision` of `hello`, holding `bytes`.
fn put_record(repo: &TestRepo, name: &str, revision: u32, bytes: Vec<u8>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cluster = support::cluster_in(&repo.namespace).await;
        let api: kube::Api<Secret> =
            kube::Api::namespaced(cluster.handle.client(), &repo.namespace);
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": {
                    "owner": "flotilla",
                    "flotilla.dev/release": "hello",
                    "flotilla.dev/revision": revision.to_string(),
                    "flotilla.dev/status": "superseded",
                },
            },
            "type": flotilla::storage::RECORD_TYPE,
        }))
        .unwrap();
        let secret = Secret {
            data: Some([("release".to_owned(), k8s_openapi::ByteString(bytes))].into()),
            ..secret
        };
        let params = kube::api::PatchParams::apply("records-fleet-test").force();
        api.patch(name, &params, &kube::api::Patch::Apply(&secret))
            .await
            .unwrap();
    });
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_record_that_cannot_be_read_is_skipped_and_named_and_the_commands_go_on() {
    let fleet = Fleet::shared();
    let (repo, first, second) = test_repo("bad-record");
    deploy_ok(fleet, &repo, "prod", "v1");
    let v2 = deploy_ok(fleet, &repo, "prod", "v2");
    // Revision 1 (superseded) of the first cluster becomes a gzip bomb, its labels kept.
    put_record(&repo, "flotilla.hello.v1", 1, gzip_bomb());
    let named = format!(
        "cluster `{first}`: release `hello`: record Secret {}/flotilla.hello.v1 skipped: its `release` data decodes to more than 64 MiB, the most a record may take",
        repo.namespace
    );

    let out = run(fleet, &repo, &["history", "hello", "--env", "prod"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains(&named), "{}", describe(&out));
    let out = run(fleet, &repo, &["status", "hello", "--env", "prod"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains(&named), "{}", describe(&out));
    // It was history only: the deploy goes on, naming it once.
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v3",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        stderr(&out).matches(&named).count(),
        1,
        "{}",
        describe(&out)
    );
    let v3 = json(&out)["deployment_id"].as_str().unwrap().to_owned();
    assert_ne!(v3, v2);
    for context in [&first, &second] {
        let (_, id, version) = deployed(fleet, &repo, "prod", context).unwrap();
        assert_eq!((id.as_str(), version.as_str()), (v3.as_str(), "v3"));
    }

    // A record above the deployed revision may be what runs: nothing is changed.
    put_record(&repo, "flotilla.hello.v9", 9, b"not gzip".to_vec());
    let out = run(
        fleet,
        &repo,
        &["deploy", "hello", "--env", "prod", "--version", "v4"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "record Secret {}/flotilla.hello.v9 skipped: its `release` data is not gzip",
            repo.namespace
        )) && text.contains("newer than the deployed revision 3")
            && text.contains("nothing was changed"),
        "{}",
        describe(&out)
    );
    for context in [&first, &second] {
        let (_, id, _) = deployed(fleet, &repo, "prod", context).unwrap();
        assert_eq!(id, v3, "{context}");
    }
}

/// `deploy NAME --env prod --version VERSION -o json`, which must succeed: its
/// deployment id.
fn deploy_release(repo: &TestRepo, name: &str, version: &str) -> String {
    deploy_release_ok(Fleet::shared(), repo, name, "prod", version)
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_with_a_broken_descriptor_finds_the_records_by_their_labels() {
    let fleet = Fleet::shared();
    let (repo, first, second) = test_repo("broken-descriptor");
    // A release name no other test deploys: the records' labels find one namespace.
    // (`hello` is in every test's namespace of the shared fleet: there, the rollback
    // would ask for --namespace rather than guess, as below.)
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let name = format!("brk{}", now.as_nanos() % 1_000_000_000_000);
    add_release(&repo, &name);
    let hello = repo.root().join("releases/hello/release.yaml");
    let good_hello = std::fs::read_to_string(&hello).unwrap();
    let v1 = deploy_release(&repo, &name, "v1");
    deploy_release(&repo, &name, "v2");
    // The bad commit also broke the descriptor, namespace and all.
    for release in [name.as_str(), "hello"] {
        std::fs::write(
            repo.root()
                .join("releases")
                .join(release)
                .join("release.yaml"),
            "apiVersion: flotilla/v1\nkind: Release\nmetadata: [broken\n",
        )
        .unwrap();
    }

    let out = run(
        fleet,
        &repo,
        &["rollback", &name, "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "warning: the descriptor of {name} does not load ("
        )) && text.contains(&format!(
            "rolling back from the records, found in namespace {} (in {first}, {second})",
            repo.namespace
        )),
        "{}",
        describe(&out)
    );
    let report = json(&out);
    assert_eq!(report["overall"], "succeeded", "{report:#}");
    assert_eq!(report["target"], v1.as_str(), "{report:#}");
    for context in [&first, &second] {
        assert_eq!(result_of(&report, context), "deployed", "{report:#}");
    }

    // A release whose records are in several namespaces (`hello`, deployed from this
    // repo and another): which one is not guessed.
    let (other, _, _) = test_repo("broken-descriptor-other");
    deploy_ok(fleet, &other, "prod", "v1");
    std::fs::write(&hello, &good_hello).unwrap();
    deploy_ok(fleet, &repo, "prod", "v1");
    std::fs::write(&hello, "metadata: [broken\n").unwrap();
    let out = run(fleet, &repo, &["rollback", "hello", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("records of release `hello` are in more than one namespace: ")
            && stderr(&out).contains("give --namespace NS"),
        "{}",
        describe(&out)
    );
}
