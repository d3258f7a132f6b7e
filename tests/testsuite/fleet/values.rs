//! The command line's values reach the cluster as Helm would type them (real
//! kube-apiserver of the shared fleet): `-f` files, then `--set-json`, `--set`,
//! `--set-string`; `--set log.level=1.10` is the string `1.10` in the live object, not
//! `1.1`; `diff` with the same flags finds nothing to change, and without them finds
//! the values the flags set.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use rollout_support::*;

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn command_line_values_are_deployed_typed_as_helm_types_them() {
    let fleet = Fleet::shared();
    let cluster = fleet.clusters()[0].clone();
    let repo = repo("values", &[("prod", &[(cluster.as_str(), 0)])], "60s");
    std::fs::write(
        repo.root().join("releases/hello/chart/templates/config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{Release.Name}}-config\ndata:\n  level: {{quote Values.log.level}}\n  port: {{quote Values.web.port}}\n  tag: {{quote Values.tag}}\n",
    )
    .unwrap();
    let file = repo.root().join("prod-values.yaml");
    std::fs::write(
        &file,
        "log: { level: warn }\nweb: { port: 80 }\ntag: latest\n",
    )
    .unwrap();
    let flags = [
        "-f",
        file.to_str().unwrap(),
        "--set",
        "log.level=1.10",
        "--set-json",
        "web.port=8181",
        "--set-string",
        "tag=007",
    ];
    let out = run(
        fleet,
        &repo,
        &[&["deploy", "hello", "--env", "prod"][..], &flags].concat(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = Api::<ConfigMap>::namespaced(fleet.client(&cluster).await, &repo.namespace)
        .get("hello-config")
        .await
        .unwrap();
    let data = config.data.unwrap_or_default();
    assert_eq!(data.get("level").map(String::as_str), Some("1.10"));
    assert_eq!(data.get("port").map(String::as_str), Some("8181"));
    assert_eq!(data.get("tag").map(String::as_str), Some("007"));

    let same = run(
        fleet,
        &repo,
        &[&["diff", "hello", "--env", "prod"][..], &flags].concat(),
    );
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(text.contains("no changes"), "{text}");
    let without = run(
        fleet,
        &repo,
        &[
            "diff",
            "hello",
            "--env",
            "prod",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&without.stdout);
    assert!(
        text.contains(r#""1.10" -> "warn""#) && text.contains(r#""8181" -> "80""#),
        "{text}"
    );
}
