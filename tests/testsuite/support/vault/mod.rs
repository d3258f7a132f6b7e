//! Shared by the Vault tests (`vault_fake`, `fleet::vault`, `fleet::secrets_never_shown`):
//! a deployment repo in a temporary folder, and the `flotilla` binary run with exactly
//! the variables a test gives.
#![allow(dead_code)]

pub mod fake_vault;
pub mod real_vault;

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Three clusters: two take the `default` source, `dev-dc` has its own for db-password.
pub const ENVIRONMENT: &str = r#"name: dev
branch: dev
vault:
  address: http://127.0.0.1:9
  auth: { method: token }
  kv: { mount: kv, version: KV_VERSION }
clusters:
  - context: dev-a
    global: { cloud: true, env: dev, region: europe-west1, clusterName: dev-a }
  - context: dev-b
    global: { cloud: true, env: dev, region: us-central1, clusterName: dev-b }
  - context: dev-dc
    global: { cloud: false, env: dev, region: paris, clusterName: dev-dc }
"#;

pub const RELEASE: &str = r#"apiVersion: flotilla/v1
kind: Release
metadata: { name: hello, namespace: hello }
spec:
  chart: ./chart
  version: 1.0.0
  secrets:
    - secret_id: db-password
      contexts:
        - name: default
          vaultPath: "kv/{{global.env}}/hello/db"
          vaultKey: password
        - name: dev-dc
          vaultPath: kv/dev/hello/db-onprem
          vaultKey: password
    - secret_id: api-token
      contexts:
        - name: default
          vaultPath: "kv/{{global.env}}/hello/api"
          vaultKey: token
"#;

const CHART: &str = "apiVersion: v2\nname: hello\nversion: 0.1.0\n";

/// Every secret reaches the manifest, plainly and base64-encoded: a leak would show.
const SECRET_TEMPLATE: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: {{Release.Name}}-credentials
  namespace: {{Release.Namespace}}
type: Opaque
stringData:
  password: {{quote Values.secrets.[db-password]}}
  token: {{quote Values.secrets.[api-token]}}
  encoded: {{quote (b64enc Values.secrets.[db-password])}}
"#;

pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// The repo with `environment` (KV_VERSION replaced) and `release` as `hello`.
    pub fn new(kv_version: u8, environment: &str, release: &str) -> TestRepo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let file = root.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
            }
            std::fs::write(&file, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
        };
        write(
            "environments/dev.yaml",
            &environment.replace("KV_VERSION", &kv_version.to_string()),
        );
        write("releases/hello/release.yaml", release);
        write("releases/hello/chart/Chart.yaml", CHART);
        write("releases/hello/chart/values.yaml", "{}\n");
        write(
            "releases/hello/chart/templates/secret.yaml",
            SECRET_TEMPLATE,
        );
        TestRepo { dir }
    }

    pub fn standard(kv_version: u8) -> TestRepo {
        TestRepo::new(kv_version, ENVIRONMENT, RELEASE)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    pub fn load(
        &self,
    ) -> (
        flotilla::config::LoadedRelease,
        flotilla::config::LoadedEnvironment,
    ) {
        let repo =
            flotilla::config::Repo::open(self.root()).unwrap_or_else(|e| panic!("repo: {e}"));
        let env = repo
            .environment("dev")
            .unwrap_or_else(|e| panic!("environment: {e}"));
        let release = repo
            .release("hello")
            .unwrap_or_else(|e| panic!("release: {e}"));
        (release, env)
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn both(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `flotilla --root ROOT ARGS` with only PATH, HOME (an empty folder: no
/// ~/.vault-token) and `vars`: nothing of the test runner's Vault settings leaks in.
pub async fn flotilla_with_only(root: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut command = tokio::process::Command::from(crate::support::flotilla());
    command
        .arg("--root")
        .arg(root)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .stdin(Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run flotilla: {e}"));
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A local port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("address: {e}"))
}
