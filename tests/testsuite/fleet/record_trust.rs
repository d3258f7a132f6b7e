//! Records are checked before `rollback` acts on them, on the shared fleet (each test a
//! namespace of its own) with its real Vault: a record changed in the cluster after
//! flotilla wrote it (its chart, a Vault path, its digest) is refused naming the record
//! and the cluster, with nothing changed; an untampered history rolls back as before,
//! and with Vault down only when the operator says `--trust-records`.
//! (`tests/testsuite/fleet/promotion.rs` has the same for `promote`.)

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use serde_json::Value;
use std::process::Output;

/// A repo whose environment `prod` is every cluster of the shared fleet, its records
/// signed when `signed`, with v1 then v2 deployed: the repo and both deployment ids.
fn two_deployments(test: &str, signed: bool) -> (TestRepo, String, String) {
    let waves = fleet_waves(Fleet::shared(), false);
    let repo = repo(test, &[("prod", &as_env(&waves))], "60s");
    if signed {
        sign_records(Fleet::shared(), &repo, "prod");
    }
    let a = deploy_ok(Fleet::shared(), &repo, "prod", "v1");
    let b = deploy_ok(Fleet::shared(), &repo, "prod", "v2");
    (repo, a, b)
}

fn rollback(repo: &TestRepo, extra: &[&str]) -> Output {
    let mut args = vec!["rollback", "hello", "--env", "prod", "-o", "json"];
    args.extend_from_slice(extra);
    run(Fleet::shared(), repo, &args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Nothing changed: every cluster still runs `b` as revision 2, holds two records, and
/// no intruder.
fn still_on(repo: &TestRepo, b: &str) {
    let rows = history(Fleet::shared(), repo, "prod");
    for context in Fleet::shared().clusters() {
        let mine: Vec<_> = rows.iter().filter(|r| r.0 == context).collect();
        assert_eq!(mine.len(), 2, "{context}: {rows:?}");
        assert_eq!(
            (mine[1].1, mine[1].2.as_str(), mine[1].3.as_str()),
            (2, "deployed", b),
            "{context}: {rows:?}"
        );
        assert!(
            !intruder_bound(Fleet::shared(), repo, &context),
            "{context}"
        );
    }
}

/// Every cluster runs deployment `id`.
fn everywhere_on(repo: &TestRepo, id: &str) {
    for context in Fleet::shared().clusters() {
        let (_, content, _) = deployed(Fleet::shared(), repo, "prod", &context).unwrap();
        assert_eq!(content, id, "{context}");
    }
}

type Edit = Box<dyn Fn(&mut Value)>;

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_tampered_target_record_is_refused_by_rollback_with_nothing_changed() {
    let (repo, a, b) = two_deployments("trust-rollback", true);
    let first = Fleet::shared().clusters()[0].clone();
    let binding = intruder_binding(&repo);
    let forged = binding.clone();
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "chart",
            Box::new(move |r| {
                r["source"]["chart"]["templates/zz-admin.yaml"] = binding.clone().into();
            }),
            &["its artifact digest says sha256:"],
        ),
        (
            "chart with its digests recomputed",
            Box::new(move |r| {
                r["source"]["chart"]["templates/zz-admin.yaml"] = forged.clone().into();
                recompute_digests(r);
            }),
            &["its keyed digest (mac) does not verify"],
        ),
        (
            "another team's Vault path",
            Box::new(|r| {
                r["source"]["secrets"][0]["path"] = "kv/prod/other-team/db".into();
                r["source"]["secrets"][0]["relative"] = "prod/other-team/db".into();
            }),
            &[
                "its keyed digest (mac) does not verify",
                "secret db-password is read from \"kv/prod/other-team/db\", which the release's mappings never give cluster",
            ],
        ),
        (
            "a Vault path out of the mount",
            Box::new(|r| {
                r["source"]["secrets"][0]["path"] = "kv/../sys/raw/core/keyring".into();
                r["source"]["secrets"][0]["relative"] = "../sys/raw/core/keyring".into();
            }),
            &["has a `.` or `..` segment"],
        ),
        (
            "content digest",
            Box::new(|r| r["digest"] = format!("sha256:{}", "0".repeat(64)).into()),
            &["its content digest says sha256:000"],
        ),
    ];
    let named = format!("revision 1 of hello (deployment {a}) in cluster {first}: ");
    for (what, edit, expected) in cases {
        let (revision, before) = tamper_record(Fleet::shared(), &repo, &first, Some(1), edit);
        assert_eq!(revision, 1);
        // Chosen by the rollback, or named with --to.
        for extra in [&[][..], &["--to", a.as_str()]] {
            let out = rollback(&repo, extra);
            assert_eq!(out.status.code(), Some(3), "{what}: {}", describe(&out));
            let text = stderr(&out);
            assert!(
                text.contains("refused, nothing changed") && text.contains(&named),
                "{what} {extra:?}: {text}"
            );
            for part in expected {
                assert!(text.contains(part), "{what} {extra:?}: {part}: {text}");
            }
        }
        still_on(&repo, &b);
        tamper_record(Fleet::shared(), &repo, &first, Some(1), |r| {
            *r = before.clone()
        });
    }

    // Put back, the history rolls back as it always did, and its restores are signed.
    let out = rollback(&repo, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(json(&out)["target"], a.as_str(), "{}", describe(&out));
    everywhere_on(&repo, &a);
    let (_, restore) = tamper_record(Fleet::shared(), &repo, &first, None, |_| {});
    assert!(
        restore["mac"].as_str().unwrap().starts_with("hmac-sha256:"),
        "{restore:#}"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn with_vault_down_a_rollback_goes_on_only_with_trust_records() {
    let (repo, a, b) = two_deployments("trust-vault-down", true);
    let down = |extra: &[&str]| {
        let mut args = vec!["rollback", "hello", "--env", "prod", "-o", "json"];
        args.extend_from_slice(extra);
        command(Fleet::shared(), &repo, &args)
            .env("VAULT_ADDR", "http://127.0.0.1:1")
            .output()
            .unwrap()
    };
    let out = down(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains("refused, nothing changed: the records cannot be checked")
            && text.contains("--trust-records"),
        "{text}"
    );
    still_on(&repo, &b);

    let out = down(&["--trust-records"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(json(&out)["target"], a.as_str(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("--trust-records: the records' MACs are not checked"),
        "{}",
        describe(&out)
    );
    everywhere_on(&repo, &a);
    // Its own records could not be signed: said in the warning, and so they are.
    let first = Fleet::shared().clusters()[0].clone();
    let (_, restore) = tamper_record(Fleet::shared(), &repo, &first, None, |_| {});
    assert!(restore.get("mac").is_none(), "{restore:#}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn without_a_record_key_a_vault_path_the_mappings_never_give_is_refused() {
    let (repo, a, b) = two_deployments("trust-unsigned", false);
    let first = Fleet::shared().clusters()[0].clone();
    let (_, before) = tamper_record(Fleet::shared(), &repo, &first, Some(1), |r| {
        r["source"]["secrets"][0]["path"] = "kv/prod/other-team/db".into();
        r["source"]["secrets"][0]["relative"] = "prod/other-team/db".into();
    });
    let out = rollback(&repo, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "revision 1 of hello (deployment {a}) in cluster {first}: secret db-password is read from \"kv/prod/other-team/db\", which the release's mappings never give cluster {first} (they give kv/prod/hello/db)"
        )) && text.contains("names no vault.record_key"),
        "{text}"
    );
    still_on(&repo, &b);
    tamper_record(Fleet::shared(), &repo, &first, Some(1), |r| {
        *r = before.clone()
    });
    let out = rollback(&repo, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    everywhere_on(&repo, &a);
}
