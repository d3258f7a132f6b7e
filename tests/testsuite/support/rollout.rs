//! A deployment repo of its own per test (unique release namespace) on a dedicated
//! fleet, and the `flotilla` binary run against it as a user or CI would.
#![allow(dead_code)]

pub mod jwt;

use flotilla_fleet::testing::Fleet;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub namespace: String,
}

impl TestRepo {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// `clusters`: (context, wave) of each environment, `(name, clusters)`.
pub fn repo(test: &str, envs: &[(&str, &[(&str, u32)])], timeout: &str) -> TestRepo {
    static N: AtomicU32 = AtomicU32::new(0);
    let namespace = format!(
        "{}-{}-{}",
        test.replace('_', "-"),
        std::process::id() % 10000,
        N.fetch_add(1, Ordering::Relaxed)
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (name, clusters) in envs {
        let mut text = format!(
            "name: {name}\nbranch: {name}\nvault:\n  address: http://127.0.0.1:1\n  auth: {{ method: token }}\n  kv: {{ mount: kv, version: 1 }}\nrollout:\n  timeout: {timeout}\n  concurrency: 10\n  on_failure: rollback\nclusters:\n"
        );
        for (context, wave) in *clusters {
            text.push_str(&format!(
                "  - context: {context}\n    wave: {wave}\n    global: {{ cloud: true, env: {name}, region: r, clusterName: {context} }}\n"
            ));
        }
        write(root, &format!("environments/{name}.yaml"), &text);
    }
    write(
        root,
        "releases/hello/release.yaml",
        &format!(
            "apiVersion: flotilla/v1\nkind: Release\nmetadata:\n  name: hello\n  namespace: {namespace}\nspec:\n  chart: ./chart\n  version: v1\n  secrets:\n    - secret_id: db-password\n      contexts:\n        - name: default\n          vaultPath: \"kv/{{{{global.env}}}}/hello/db\"\n          vaultKey: password\n"
        ),
    );
    write(
        root,
        "releases/hello/chart/Chart.yaml",
        "name: hello\nversion: 0.1.0\n",
    );
    write(
        root,
        "releases/hello/chart/values.yaml",
        "breakIn: none\nbreakTag: crashloop\n",
    );
    write(
        root,
        "releases/hello/chart/templates/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{Release.Name}}-web
spec:
  replicas: 1
  selector:
    matchLabels: { app: {{Release.Name}}-web }
  template:
    metadata:
      labels: { app: {{Release.Name}}-web }
    spec:
      containers:
        - name: web
          image: "registry.local/hello:{{#if (eq Values.global.clusterName Values.breakIn)}}{{Values.breakTag}}{{else}}{{Release.Version}}{{/if}}"
"#,
    );
    write(
        root,
        "releases/hello/chart/templates/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{Release.Name}}-db\ntype: Opaque\ndata:\n  password: {{b64enc Values.secrets.[db-password]}}\n",
    );
    TestRepo { dir, namespace }
}

/// A second release `name`, a copy of `hello` under its own name.
pub fn add_release(repo: &TestRepo, name: &str) {
    let from = repo.root().join("releases/hello");
    let to = repo.root().join("releases").join(name);
    for file in [
        "chart/Chart.yaml",
        "chart/values.yaml",
        "chart/templates/deployment.yaml",
        "chart/templates/secret.yaml",
    ] {
        let text = std::fs::read_to_string(from.join(file)).unwrap();
        write(&to, file, &text);
    }
    let descriptor = std::fs::read_to_string(from.join("release.yaml")).unwrap();
    write(
        &to,
        "release.yaml",
        &descriptor.replace("name: hello", &format!("name: {name}")),
    );
}

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

/// `flotilla --root REPO ARGS...` with the fleet's KUBECONFIG and Vault variables; a
/// `deploy` or `promote` gets `--create-namespace` (each test repo has a namespace of
/// its own that no cluster has yet).
pub fn command(fleet: &Fleet, repo: &TestRepo, args: &[&str]) -> Command {
    let mut cmd = super::flotilla();
    cmd.arg("--root").arg(repo.root()).args(args);
    if matches!(args.first(), Some(&"deploy" | &"promote")) {
        cmd.arg("--create-namespace");
    }
    for (k, v) in fleet.env() {
        cmd.env(k, v);
    }
    cmd
}

/// `flotilla --root ROOT ARGS...` with the fleet's variables but no `VAULT_TOKEN`: it
/// logs in to Vault as the repo's environment file says (AppRole).
pub fn at_root(fleet: &Fleet, root: &Path, args: &[&str]) -> Command {
    let mut cmd = super::flotilla();
    // Run from the root, as CI runs from its checkout: files a command writes with a
    // relative path (`--junit junit.xml`) land in the copy, not in this repository.
    cmd.current_dir(root)
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(fleet.env())
        .env_remove("VAULT_TOKEN");
    cmd
}

/// Runs `cmd` (the command line `args`), failing the test if its stdout or stderr
/// holds any of `secrets`.
pub fn output_never_showing(mut cmd: Command, args: &[&str], secrets: &[&str]) -> Output {
    let output = cmd.output().unwrap();
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !secrets.iter().any(|s| text.contains(s)),
            "a secret value was printed by {args:?}:\n{text}"
        );
    }
    output
}

/// The stdout of a command that must have succeeded.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn run(fleet: &Fleet, repo: &TestRepo, args: &[&str]) -> Output {
    command(fleet, repo, args).output().unwrap()
}

/// A `deploy hello --env prod --version v2` running in the background, with cluster
/// `break_in` given a never-ready image, and its stderr read up to the first line that
/// contains `marker` (a progress line such as `[ctx] waiting`).
pub struct BrokenDeploy {
    pub child: Child,
    stderr: BufReader<ChildStderr>,
    pub seen: String,
}

pub fn spawn_broken_deploy(
    fleet: &Fleet,
    repo: &TestRepo,
    break_in: &str,
    marker: &str,
) -> BrokenDeploy {
    let break_in = format!("breakIn={break_in}");
    spawn_run(
        fleet,
        repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v2",
            "--set",
            &break_in,
            "--set",
            "breakTag=never",
            "-o",
            "json",
        ],
        &[],
        marker,
    )
}

/// `flotilla ARGS` in the background with `env` added, its stderr read up to the first
/// line that contains `marker`.
pub fn spawn_run(
    fleet: &Fleet,
    repo: &TestRepo,
    args: &[&str],
    env: &[(&str, &str)],
    marker: &str,
) -> BrokenDeploy {
    let mut cmd = command(fleet, repo, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_command(cmd, marker)
}

/// `cmd` in the background, its stderr read up to the first line that contains
/// `marker`.
pub fn spawn_command(mut cmd: Command, marker: &str) -> BrokenDeploy {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut run = BrokenDeploy {
        child,
        stderr,
        seen: String::new(),
    };
    // Bounded by the run's own rollout timeout: the run ends, and stderr with it.
    run.read_until(marker);
    run
}

impl BrokenDeploy {
    /// Reads stderr on up to the first line that contains `marker`.
    pub fn read_until(&mut self, marker: &str) {
        let mut line = String::new();
        while self.stderr.read_line(&mut line).unwrap() > 0 {
            self.seen.push_str(&line);
            if line.contains(marker) {
                return;
            }
            line.clear();
        }
        panic!("the run ended before printing {marker:?}:\n{}", self.seen);
    }

    /// Waits for the run to end: its output, and all it wrote on stderr.
    pub fn finish(mut self) -> (Output, String) {
        let mut log = self.seen;
        self.stderr.read_to_string(&mut log).unwrap();
        (self.child.wait_with_output().unwrap(), log)
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(out)))
}

/// The row of `context` in a run report.
pub fn cluster_in<'a>(report: &'a Value, context: &str) -> &'a Value {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == context)
        .unwrap_or_else(|| panic!("no {context} in {report:#}"))
}

/// The result of `context` in a run report.
pub fn result_of<'a>(report: &'a Value, context: &str) -> &'a str {
    cluster_in(report, context)["result"].as_str().unwrap()
}

/// `history -o json`: context → [(revision, status, deployment id, app version)].
pub fn history(
    fleet: &Fleet,
    repo: &TestRepo,
    env: &str,
) -> Vec<(String, u32, String, String, String)> {
    let out = run(
        fleet,
        repo,
        &["history", "hello", "--env", env, "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let mut rows = Vec::new();
    for row in json(&out).as_array().unwrap() {
        let id = row["deployment_id"].as_str().unwrap().to_owned();
        for (context, cells) in row["clusters"].as_object().unwrap() {
            for cell in cells.as_array().unwrap() {
                // A restore runs the content of the deployment it restores.
                let content = cell["restores"].as_str().unwrap_or(&id).to_owned();
                rows.push((
                    context.clone(),
                    cell["revision"].as_u64().unwrap() as u32,
                    cell["status"].as_str().unwrap().to_owned(),
                    content,
                    cell["app_version"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    rows
}

/// The deployed revision of each context: (revision, the deployment id whose content it
/// runs, app version).
pub fn deployed(
    fleet: &Fleet,
    repo: &TestRepo,
    env: &str,
    context: &str,
) -> Option<(u32, String, String)> {
    history(fleet, repo, env)
        .into_iter()
        .filter(|r| r.0 == context && r.2 == "deployed")
        .map(|r| (r.1, r.3, r.4))
        .next_back()
}

/// The shared fleet's clusters as an environment's (context, wave): every one in wave
/// 0, or (`first_alone`) the first in wave 0 and the others in wave 1.
pub fn fleet_waves(fleet: &Fleet, first_alone: bool) -> Vec<(String, u32)> {
    fleet
        .clusters()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, u32::from(first_alone && i > 0)))
        .collect()
}

/// `list` as [`repo`] takes it.
pub fn as_env(list: &[(String, u32)]) -> Vec<(&str, u32)> {
    list.iter().map(|(c, w)| (c.as_str(), *w)).collect()
}

/// `deploy hello --env ENV --version VERSION -o json`, which must succeed: its
/// deployment id.
pub fn deploy_ok(fleet: &Fleet, repo: &TestRepo, env: &str, version: &str) -> String {
    deploy_release_ok(fleet, repo, "hello", env, version)
}

/// `deploy RELEASE --env ENV --version VERSION -o json`, which must succeed: its
/// deployment id.
pub fn deploy_release_ok(
    fleet: &Fleet,
    repo: &TestRepo,
    release: &str,
    env: &str,
    version: &str,
) -> String {
    let out = run(
        fleet,
        repo,
        &[
            "deploy",
            release,
            "--env",
            env,
            "--version",
            version,
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    json(&out)["deployment_id"].as_str().unwrap().to_owned()
}

/// A vaultrs client of `address` with `token`.
pub fn vault_client(address: &str, token: &str) -> vaultrs::client::VaultClient {
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(address)
        .token(token)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    vaultrs::client::VaultClient::new(settings).unwrap_or_else(|e| panic!("{e}"))
}

/// A vaultrs client of the fleet's Vault with its root token.
pub fn vault_admin(fleet: &Fleet) -> vaultrs::client::VaultClient {
    vault_client(&fleet.vault_addr(), fleet.vault_token())
}

/// Namespace `name`, empty, in the one cluster of `client` (`Fleet::namespace` makes a
/// fresh name in every cluster, with the deployer bound in it).
pub async fn create_namespace(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, ObjectMeta, PostParams};
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
}

/// A lease of `release` held by a live run of another host (an hour long, renewed
/// just now), as another CI job's would be.
pub async fn hold_lease(client: kube::Client, namespace: &str, release: &str) {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("flotilla.{release}")),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("bob@ci-elsewhere pid 4242 run 0badcafe".into()),
            lease_duration_seconds: Some(3600),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    kube::Api::<Lease>::namespaced(client, namespace)
        .create(&Default::default(), &lease)
        .await
        .unwrap();
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// This repository's own environments and example release `hello`, the release moved
/// to `namespace`.
pub fn copy_of_this_repo(namespace: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&root.join("environments"), &dir.path().join("environments"));
    copy_dir(
        &root.join("releases/hello"),
        &dir.path().join("releases/hello"),
    );
    let descriptor = dir.path().join("releases/hello/release.yaml");
    let text = std::fs::read_to_string(&descriptor).unwrap();
    std::fs::write(
        &descriptor,
        text.replace("namespace: hello", &format!("namespace: {namespace}")),
    )
    .unwrap();
    dir
}

/// Signs the records of environment `env` of `repo`: a key of its own written to the
/// fleet's Vault (under the repo's namespace, so tests never share one), named as
/// `vault.record_key` in the environment file. Returns the key's value.
pub fn sign_records(fleet: &Fleet, repo: &TestRepo, env: &str) -> String {
    let path = format!("kv/flotilla/{}/{env}/record-key", repo.namespace);
    let key = format!("record-key-{}-{env}-5b0e1d7c9a3f", repo.namespace);
    let address = fleet.vault_addr();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        flotilla_fleet::vault::Api::new(&address, Some(fleet.vault_token()))
            .call(
                flotilla_fleet::vault::Method::PUT,
                &path,
                Some(serde_json::json!({ "hmac": key })),
            )
            .await
            .unwrap();
    });
    let file = repo.root().join(format!("environments/{env}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap();
    let kv = "  kv: { mount: kv, version: 1 }\n";
    assert!(text.contains(kv), "{text}");
    let text = text.replacen(
        kv,
        &format!("{kv}  record_key: {{ path: {path}, key: hmac }}\n"),
        1,
    );
    std::fs::write(file, text).unwrap();
    key
}

/// Rewrites a record of `hello` in `context` (revision `revision`, else the newest)
/// as whoever may write Secrets in the release's namespace could (`kubectl get
/// secret`, decode, edit, `kubectl replace`): its JSON, changed by `edit`. Returns the
/// revision and the record as it was, to put back with `|r| *r = before.clone()`.
pub fn tamper_record(
    fleet: &Fleet,
    repo: &TestRepo,
    context: &str,
    revision: Option<u32>,
    edit: impl FnOnce(&mut Value),
) -> (u32, Value) {
    use flate2::{read::GzDecoder, write::GzEncoder, Compression};
    use k8s_openapi::api::core::v1::Secret;
    use std::io::Write;
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let api: kube::Api<Secret> =
            kube::Api::namespaced(fleet.client(context).await, &repo.namespace);
        let records = api
            .list(
                &kube::api::ListParams::default()
                    .labels("flotilla.dev/release=hello,flotilla.dev/revision"),
            )
            .await
            .unwrap();
        let revision_of = |s: &Secret| -> u32 {
            s.metadata.labels.as_ref().unwrap()["flotilla.dev/revision"]
                .parse()
                .unwrap()
        };
        let mut found = records
            .items
            .into_iter()
            .filter(|s| revision.is_none_or(|r| revision_of(s) == r))
            .max_by_key(revision_of)
            .unwrap_or_else(|| panic!("{context}: no record {revision:?} of hello"));
        let revision = revision_of(&found);
        let data = found.data.as_mut().unwrap();
        let mut json = Vec::new();
        GzDecoder::new(data["release"].0.as_slice())
            .read_to_end(&mut json)
            .unwrap();
        let before: Value = serde_json::from_slice(&json).unwrap();
        let mut record = before.clone();
        edit(&mut record);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&serde_json::to_vec(&record).unwrap()).unwrap();
        data.insert(
            "release".into(),
            k8s_openapi::ByteString(gz.finish().unwrap()),
        );
        let name = found.metadata.name.clone().unwrap();
        api.replace(&name, &Default::default(), &found)
            .await
            .unwrap();
        (revision, before)
    })
}

/// What a careful forger does after editing a record: its plain digests (content and
/// artifact) computed again from what it now holds, so that they match.
pub fn recompute_digests(record: &mut Value) {
    let typed: flotilla::release::ReleaseRecord = serde_json::from_value(record.clone()).unwrap();
    record["digest"] =
        flotilla::release::content_digest(&typed.manifest, &typed.app_version, &typed.chart).into();
    if let Some(artifact) = typed.artifact() {
        record["source"]["artifact"] = artifact.digest().into();
    }
}

/// A ClusterRoleBinding making user `intruder` cluster-admin, as a chart template: what
/// a namespace writer adds to a record's chart to take the cluster. Named after the
/// repo's namespace, so tests never see each other's.
pub fn intruder_binding(repo: &TestRepo) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: intruder-{}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - apiGroup: rbac.authorization.k8s.io\n    kind: User\n    name: intruder\n",
        repo.namespace
    )
}

/// Whether the ClusterRoleBinding of [`intruder_binding`] exists in `context`.
pub fn intruder_bound(fleet: &Fleet, repo: &TestRepo, context: &str) -> bool {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let api: kube::Api<ClusterRoleBinding> = kube::Api::all(fleet.client(context).await);
        api.get_opt(&format!("intruder-{}", repo.namespace))
            .await
            .unwrap()
            .is_some()
    })
}

/// A copy of the fleet's kubeconfig with one more context, `context`, whose server
/// refuses connections (nothing listens on port 1).
pub fn kubeconfig_with_unreachable(
    fleet: &Fleet,
    repo: &TestRepo,
    context: &str,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(fleet.kubeconfig()).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let user = config["contexts"][0]["context"]["user"].clone();
    let cluster: serde_yaml_ng::Value = serde_yaml_ng::from_str(&format!(
        "{{ name: {context}, cluster: {{ server: \"https://127.0.0.1:1\" }} }}"
    ))
    .unwrap();
    let mut entry: serde_yaml_ng::Value = serde_yaml_ng::from_str(&format!(
        "{{ name: {context}, context: {{ cluster: {context} }} }}"
    ))
    .unwrap();
    entry["context"]["user"] = user;
    for (list, item) in [("clusters", cluster), ("contexts", entry)] {
        config[list].as_sequence_mut().unwrap().push(item);
    }
    let file = repo.root().join("kubeconfig-with-unreachable");
    std::fs::write(&file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    file
}
