//! What the tests share: the one way to run the `flotilla` binary ([`flotilla`]), the
//! dedicated fleets ([`dedicated_fleet`]), the cluster layer's support (`cluster`: a
//! namespace of the shared fleet and the example release's objects), the command-line
//! runs against a fleet (`rollout`), and the Vault tests' repo with a fake and a real
//! Vault (`vault`).

pub mod cluster;
pub mod rollout;
pub mod vault;

use flotilla_fleet::testing::Fleet;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The binary under test: `FLOTILLA_TEST_BIN` when set (a copy of this branch's build:
/// a target directory shared by several branches may hold another branch's binary),
/// else cargo's.
pub fn flotilla_bin() -> PathBuf {
    std::env::var_os("FLOTILLA_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_flotilla")))
}

/// Variables of the shell running the tests that would change what a `flotilla` child
/// reads, prints or logs: each test sets those it means.
pub const RUNNER_VARIABLES: &[&str] = &[
    "FLOTILLA_LOG",
    "FLOTILLA_ROOT",
    "FLOTILLA_ENV",
    "FLOTILLA_OUTPUT",
    "FLOTILLA_KUBECONFIG",
    "COMPLETE",
    "KUBECONFIG",
    "VAULT_ADDR",
    "VAULT_TOKEN",
];

/// The `flotilla` command as the tests run it, without [`RUNNER_VARIABLES`]; the caller
/// adds the arguments, the folder and the variables (a fleet's: [`rollout::command`]).
/// Variables go to the child only, never into this process, whose tests run side by
/// side.
pub fn flotilla() -> Command {
    let mut cmd = Command::new(flotilla_bin());
    for var in RUNNER_VARIABLES {
        cmd.env_remove(var);
    }
    cmd
}

/// `flotilla ARGS...` run in `dir` with `env` added, without a cluster or a Vault.
pub fn flotilla_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    flotilla()
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("run flotilla")
}

/// A fleet of its own with these clusters, for a module whose tests stop clusters or
/// need clusters of their own names: started by the first test that asks, shared by
/// the others asking for the same clusters, stopped when the test binary exits.
pub fn dedicated_fleet(names: &[&str]) -> &'static Fleet {
    static STARTED: Mutex<BTreeMap<Vec<String>, &'static Fleet>> = Mutex::new(BTreeMap::new());
    let key: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    // Held while a fleet starts: the next test of the module waits for it rather than
    // starting another.
    let mut started = STARTED.lock().unwrap_or_else(|p| p.into_inner());
    started
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(Fleet::dedicated(names))))
}

/// `flotilla ARGS...` with its stdout on a terminal (a pseudo-terminal of util-linux's
/// `script`), stderr discarded, `env` added: what it printed there, and its exit code.
pub fn flotilla_on_a_terminal(args: &[&str], env: &[(String, String)]) -> (String, Option<i32>) {
    let quoted: Vec<String> = std::iter::once(flotilla_bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect();
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c"])
        .arg(format!("{} 2>/dev/null", quoted.join(" ")))
        .arg("/dev/null")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR");
    for var in RUNNER_VARIABLES {
        cmd.env_remove(var);
    }
    let out = cmd
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux `script` runs (it gives the command a terminal)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}
