//! The gates of a wave: its soak (watched by [`crate::ops::soak`] through the steps) and
//! its verify commands, run here: `sh -c` from the repo root with the run's variables,
//! killed with everything they started (their process group) at their timeout or when
//! the run stops. What a gate printed is read to its end as bytes (not UTF-8 is no
//! error) and kept, scrubbed, for the report: the last [`OUTPUT_LINES`] lines, each cut
//! to [`LINE_CHARS`].

use crate::cluster::CancellationToken;
use crate::config::VerifyCommand;
use serde::Serialize;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Lines of a command's output kept for the report (the last ones).
pub const OUTPUT_LINES: usize = 20;

/// After a command ended, how long its output may take to be read to its end.
const DRAIN: Duration = Duration::from_secs(2);

/// How one gate went on one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    /// `soak` or `verify`.
    pub gate: String,
    /// The verify command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub passed: bool,
    /// What ended it: `exit code 1`, `timed out after 2m`, the soak's finding.
    pub detail: String,
    /// The command's last lines of output (stdout and stderr), scrubbed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
    /// It did not fail by itself: the run was stopping (another gate or cluster failed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

impl GateResult {
    pub fn soak(passed: bool, detail: impl Into<String>) -> GateResult {
        GateResult {
            gate: "soak".into(),
            command: None,
            passed,
            detail: detail.into(),
            output: Vec::new(),
            stopped: false,
        }
    }

    /// The gate of the chart's Helm test hooks: passed when every test that ran
    /// succeeded (`ran` of them), else the failure, naming the test and how its pod
    /// ended, with the diagnosis's lines (the pod's last log lines) as output.
    pub fn helm_tests(outcome: Result<usize, String>, output: Vec<String>) -> GateResult {
        let (passed, detail) = match outcome {
            Ok(0) => (true, "the revision has no Helm test hook".to_owned()),
            Ok(ran) => (true, format!("{ran} Helm test hook(s) succeeded")),
            Err(error) => (false, error),
        };
        GateResult {
            gate: "helm-tests".into(),
            command: None,
            passed,
            detail,
            output,
            stopped: false,
        }
    }

    /// How the report names it: `soak`, `helm-tests`, `verify \`./smoke.sh\``.
    pub fn name(&self) -> String {
        match &self.command {
            Some(command) => format!("verify `{command}`"),
            None => self.gate.clone(),
        }
    }

    /// The error of the cluster this gate failed on.
    pub fn failure(&self) -> String {
        if self.stopped {
            format!("gate {} stopped because the run was stopping", self.name())
        } else {
            format!("gate {} failed: {}", self.name(), self.detail)
        }
    }
}

/// What a verify command sees of the run.
#[derive(Debug, Clone)]
pub struct GateVars {
    pub release: String,
    pub environment: String,
    pub deployment_id: String,
    pub version: String,
    /// `KUBECONFIG` as the run read it (the files, or `~/.kube/config`).
    pub kubeconfig: OsString,
    /// Variables of flotilla's own environment a command must not see
    /// ([`hidden_variables`]).
    pub hidden: Vec<String>,
}

/// The variables of `env`'s credentials, which a verify command must not see: the Vault
/// token, the AppRole ids' variables, the JWT's variable and GitHub's request token
/// (it mints ID tokens), and the webhook URLs of `notify` (a URL that posts to a team's
/// channel is a credential too).
pub fn hidden_variables(env: &crate::config::Environment) -> Vec<String> {
    let mut names = vec!["VAULT_TOKEN".to_owned()];
    match env.vault.as_ref().map(|v| &v.auth) {
        Some(crate::config::VaultAuth::AppRole {
            role_id_env,
            secret_id_env,
            ..
        }) => names.extend(role_id_env.iter().chain(secret_id_env).cloned()),
        Some(crate::config::VaultAuth::Jwt { jwt_env, .. }) => names.extend(
            jwt_env
                .iter()
                .cloned()
                .chain([crate::vault::REQUEST_TOKEN_VAR.to_owned()]),
        ),
        _ => {}
    }
    names.extend(env.notify.iter().map(|target| target.url_env.clone()));
    names
}

impl GateVars {
    fn for_cluster(&self, context: &str) -> Vec<(&'static str, OsString)> {
        vec![
            ("FLOTILLA_RELEASE", self.release.clone().into()),
            ("FLOTILLA_ENV", self.environment.clone().into()),
            ("FLOTILLA_CONTEXT", context.into()),
            ("FLOTILLA_DEPLOYMENT_ID", self.deployment_id.clone().into()),
            ("FLOTILLA_VERSION", self.version.clone().into()),
            ("KUBECONFIG", self.kubeconfig.clone()),
        ]
    }
}

/// The last [`OUTPUT_LINES`] lines, scrubbed as they arrive.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == OUTPUT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Reads `from` to its end, whatever it holds: a reader that stopped early (on
    /// bytes that are not UTF-8, on a line too long) would close the pipe, and the
    /// command would die of SIGPIPE at its next write, failing a gate that passed.
    async fn read(self, mut from: impl AsyncRead + Unpin) {
        let mut line = Line::default();
        let mut chunk = vec![0u8; 8192];
        loop {
            let read = match from.read(&mut chunk).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let mut rest = &chunk[..read];
            while let Some(end) = rest.iter().position(|b| *b == b'\n') {
                line.take(&rest[..end]);
                self.push(line.finish());
                rest = &rest[end + 1..];
            }
            line.take(rest);
        }
        if !line.is_empty() {
            self.push(line.finish());
        }
    }
}

/// Characters of one output line kept for the report; the rest is cut, and the line
/// says how much.
pub const LINE_CHARS: usize = 1000;

/// Bytes of one line read before scrubbing: more than is kept, so that a secret value
/// that begins before the cut is still whole when the line is scrubbed (and cannot
/// leave its first characters in what is kept). The rest of the line is only counted.
const LINE_BYTES: usize = 64 * 1024;

/// One line as it arrives, bounded.
#[derive(Default)]
struct Line {
    bytes: Vec<u8>,
    /// Bytes of the line past [`LINE_BYTES`], read and dropped.
    dropped: usize,
}

impl Line {
    fn take(&mut self, bytes: &[u8]) {
        let room = LINE_BYTES.saturating_sub(self.bytes.len()).min(bytes.len());
        self.bytes.extend_from_slice(&bytes[..room]);
        self.dropped += bytes.len() - room;
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.dropped == 0
    }

    /// The line scrubbed, cut to [`LINE_CHARS`]; bytes that are not UTF-8 read as
    /// U+FFFD.
    fn finish(&mut self) -> String {
        let bytes = std::mem::take(&mut self.bytes);
        let dropped = std::mem::take(&mut self.dropped);
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let scrubbed = crate::redact::scrub(text);
        let mut kept: String = scrubbed.chars().take(LINE_CHARS).collect();
        let cut = scrubbed.len() - kept.len() + dropped;
        if cut > 0 {
            kept.push_str(&format!(" [line cut: {cut} more bytes]"));
        }
        kept
    }
}

/// Runs `command` for `context`; ends early, failed, when `stop` is cancelled.
pub async fn run_verify(
    command: &VerifyCommand,
    vars: &GateVars,
    context: &str,
    cwd: &Path,
    stop: &CancellationToken,
) -> GateResult {
    let result = |passed: bool, detail: String, output: Vec<String>| GateResult {
        gate: "verify".into(),
        command: Some(command.run.clone()),
        passed,
        detail,
        output,
        stopped: false,
    };
    let mut command_line = tokio::process::Command::new("sh");
    command_line
        .arg("-c")
        .arg(&command.run)
        .current_dir(cwd)
        .envs(vars.for_cluster(context));
    for name in &vars.hidden {
        command_line.env_remove(name);
    }
    let mut child = match command_line
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(err) => return result(false, format!("cannot start `sh`: {err}"), Vec::new()),
    };
    let tail = Tail::default();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let readers = {
        let tail = tail.clone();
        async move {
            let (a, b) = (tail.clone(), tail);
            futures::future::join(
                async move {
                    if let Some(out) = out {
                        a.read(out).await
                    }
                },
                async move {
                    if let Some(err) = err {
                        b.read(err).await
                    }
                },
            )
            .await
        }
    };
    let reading = tokio::spawn(readers);
    let group = child.id();
    let ended = tokio::select! {
        status = child.wait() => Some(status),
        _ = tokio::time::sleep(command.timeout) => None,
        _ = stop.cancelled() => None,
    };
    // Whatever it left running in the background goes with it: nothing of a gate
    // outlives the gate.
    if let Some(pid) = group.and_then(|g| rustix::process::Pid::from_raw(g as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let ended = match ended {
        Some(status) => Some(status),
        None => {
            let _ = child.wait().await;
            None
        }
    };
    let _ = tokio::time::timeout(DRAIN, reading).await;
    let output = tail.lines();
    match ended {
        Some(Ok(status)) if status.success() => result(true, "exit code 0".into(), output),
        Some(Ok(status)) => {
            let detail = match status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".into(),
            };
            result(false, detail, output)
        }
        Some(Err(err)) => result(false, format!("cannot wait for it: {err}"), output),
        None if stop.is_cancelled() => GateResult {
            stopped: true,
            ..result(false, "stopped because the run was stopping".into(), output)
        },
        None => result(
            false,
            format!(
                "timed out after {}",
                humantime::format_duration(command.timeout)
            ),
            output,
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Real `sh` commands; no cluster.
    use super::*;

    fn vars() -> GateVars {
        GateVars {
            release: "hello".into(),
            environment: "prod".into(),
            deployment_id: "20261201T120000Z-abcd".into(),
            version: "1.4.2".into(),
            kubeconfig: "/tmp/kubeconfig".into(),
            // Set wherever tests run: stands for a credential of the run.
            hidden: vec!["HOME".into()],
        }
    }

    async fn verify(run: &str, timeout: Duration) -> GateResult {
        let command = VerifyCommand {
            run: run.into(),
            helm_tests: false,
            timeout,
        };
        let cwd = std::env::temp_dir();
        run_verify(
            &command,
            &vars(),
            "prod-eu",
            &cwd,
            &CancellationToken::new(),
        )
        .await
    }

    #[tokio::test]
    async fn a_command_sees_the_run_and_its_cluster_and_passes_on_exit_zero() {
        let got = verify(
            "echo $FLOTILLA_RELEASE $FLOTILLA_ENV $FLOTILLA_CONTEXT $FLOTILLA_DEPLOYMENT_ID $FLOTILLA_VERSION $KUBECONFIG",
            Duration::from_secs(30),
        )
        .await;
        assert!(got.passed, "{got:?}");
        assert_eq!(
            got.output,
            ["hello prod prod-eu 20261201T120000Z-abcd 1.4.2 /tmp/kubeconfig"]
        );
    }

    #[tokio::test]
    async fn a_command_never_sees_the_vault_credentials_of_the_run() {
        assert!(std::env::var_os("HOME").is_some());
        let got = verify("echo \"token=${HOME:-none}\"", Duration::from_secs(30)).await;
        assert_eq!(got.output, ["token=none"]);
    }

    #[test]
    fn webhook_urls_and_vault_credentials_are_hidden_from_commands() {
        let env: crate::config::Environment = serde_yaml_ng::from_str(
            "name: prod\nvault:\n  address: http://127.0.0.1:8200\n  auth: { method: approle, role_id_env: ROLE, secret_id_env: SECRET }\n  kv: { mount: kv, version: 1 }\nclusters:\n  - context: a\n    global: { cloud: true, env: prod, region: r, clusterName: a }\nnotify:\n  - { kind: slack, url_env: TEAM_SLACK_URL }\n  - { kind: webhook, url_env: AUDIT_HOOK_URL }\n",
        )
        .unwrap();
        assert_eq!(
            hidden_variables(&env),
            [
                "VAULT_TOKEN",
                "ROLE",
                "SECRET",
                "TEAM_SLACK_URL",
                "AUDIT_HOOK_URL"
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_command_keeps_its_last_lines_of_both_streams() {
        let got = verify(
            "for i in $(seq 1 30); do echo line $i; done; echo boom >&2; exit 3",
            Duration::from_secs(30),
        )
        .await;
        assert!(!got.passed);
        assert_eq!(got.detail, "exit code 3");
        assert_eq!(got.output.len(), OUTPUT_LINES);
        assert_eq!(got.output.last().map(String::as_str), Some("boom"));
        assert_eq!(got.output.first().map(String::as_str), Some("line 12"));
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_what_it_started() {
        // The background `sleep` holds the output pipe open: only killing the whole
        // group lets the gate end.
        let got = verify(
            "echo started; sleep 600 & sleep 600",
            Duration::from_millis(300),
        )
        .await;
        assert!(!got.passed);
        assert_eq!(got.detail, "timed out after 300ms");
        assert_eq!(got.output, ["started"]);
    }

    #[tokio::test]
    async fn a_secret_value_in_the_output_is_scrubbed() {
        crate::redact::register("verify-canary-s3cr3t-value");
        let got = verify(
            "echo token=verify-canary-s3cr3t-value",
            Duration::from_secs(30),
        )
        .await;
        assert!(got.passed);
        assert!(
            !got.output.concat().contains("verify-canary-s3cr3t-value"),
            "{:?}",
            got.output
        );
    }

    #[tokio::test]
    async fn output_that_is_not_utf8_is_read_to_its_end_and_the_gate_passes() {
        // More output after the invalid byte than a pipe holds: a reader that stopped
        // there would leave the command to die of SIGPIPE.
        let got = verify(
            "printf '\\377\\n'; seq 1 100000; echo ok",
            Duration::from_secs(30),
        )
        .await;
        assert!(got.passed, "{got:?}");
        assert_eq!(got.detail, "exit code 0");
        assert_eq!(got.output.last().map(String::as_str), Some("ok"));
        assert_eq!(
            got.output.first().map(String::as_str),
            Some("99982"),
            "the last lines"
        );
        let invalid = verify("printf 'a\\377b\\n'; echo ok", Duration::from_secs(30)).await;
        assert!(invalid.passed, "{invalid:?}");
        assert_eq!(invalid.output, ["a\u{FFFD}b", "ok"]);
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_said_to_be_cut_and_scrubbed() {
        crate::redact::register("verify-long-line-s3cr3t");
        let got = verify(
            "printf 'token=verify-long-line-s3cr3t '; head -c 3000000 /dev/zero | tr '\\0' a; echo; echo done",
            Duration::from_secs(30),
        )
        .await;
        assert!(got.passed, "{got:?}");
        assert_eq!(
            got.output.len(),
            2,
            "{:?}",
            got.output.iter().map(String::len).collect::<Vec<_>>()
        );
        let line = &got.output[0];
        assert!(!line.contains("verify-long-line-s3cr3t"), "{line}");
        assert!(line.starts_with("token="), "{line}");
        assert!(
            line.ends_with(" more bytes]"),
            "{}",
            &line[line.len() - 60..]
        );
        assert!(line.chars().count() < LINE_CHARS + 40, "{}", line.len());
        assert_eq!(got.output[1], "done");
        // A last line without its newline is kept too, cut as well.
        let unended = verify(
            "head -c 5000 /dev/zero | tr '\\0' b",
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(
            unended.output,
            [format!(
                "{} [line cut: 4000 more bytes]",
                "b".repeat(LINE_CHARS)
            )]
        );
    }
}
