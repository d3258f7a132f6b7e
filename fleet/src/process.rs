//! Starting the fleet's processes detached (own session, output to `logs/NAME.log`) and
//! stopping them by pid. Every process gets a pid file `pids/NAME.pid` the moment it is
//! spawned, holding its pid and argv[0], so `down` finds also the processes of an `up`
//! that failed half-way, and never signals a pid that the kernel has since reused for
//! another program.

use crate::{FleetError, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);
/// kube-apiserver drains long-running requests (watches) for up to 60 s on SIGTERM; a
/// throw-away test cluster has nothing worth that wait (etcd keeps its data consistent).
pub const APISERVER_GRACE: Duration = Duration::from_secs(2);

pub fn pid_dir(state: &Path) -> PathBuf {
    state.join("pids")
}

pub fn log_path(state: &Path, name: &str) -> PathBuf {
    state.join("logs").join(format!("{name}.log"))
}

/// Starts `program args` in its own session so it outlives the caller and a terminal's
/// Ctrl-C; returns its pid.
pub fn spawn(state: &Path, name: &str, program: &Path, args: &[String]) -> Result<u32> {
    spawn_with_env(state, name, program, args, &[])
}

/// [`spawn`] with extra environment variables; a variable given as `""` is removed.
pub fn spawn_with_env(
    state: &Path,
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<u32> {
    let logs = state.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| FleetError::io(&logs, e))?;
    std::fs::create_dir_all(pid_dir(state)).map_err(|e| FleetError::io(pid_dir(state), e))?;
    let log = log_path(state, name);
    // Owner only: a dev-mode Vault prints its root token in its log.
    let out = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log)
    }
    .map_err(|e| FleetError::io(&log, e))?;
    let err = out.try_clone().map_err(|e| FleetError::io(&log, e))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .current_dir(state);
    for (key, value) in env {
        if value.is_empty() {
            command.env_remove(key);
        } else {
            command.env(key, value);
        }
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| FleetError::Start {
        process: name.to_string(),
        message: format!("{}: {e}", program.display()),
        log: log.clone(),
    })?;
    let pid = child.id();
    let pid_file = pid_dir(state).join(format!("{name}.pid"));
    std::fs::write(&pid_file, format!("{pid} {}\n", program.display()))
        .map_err(|e| FleetError::io(&pid_file, e))?;
    // The child is reaped by `reap` (when we are still its parent) or by init.
    std::mem::forget(child);
    Ok(pid)
}

/// The pid of process `name` if its pid file names a live process running the program
/// it was started with.
pub fn alive(state: &Path, name: &str) -> Option<u32> {
    let (pid, program) = read_pid_file(&pid_dir(state).join(format!("{name}.pid")))?;
    is_running(pid, &program).then_some(pid.unsigned_abs())
}

/// Names of every process that has a pid file, live or not.
pub fn names(state: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(pid_dir(state)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".pid"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Stops the named processes together: SIGTERM to all, then SIGKILL to whatever is left
/// after `grace`. Removes their pid files. Returns once none of them runs.
pub async fn stop(state: &Path, names: &[String], grace: Duration) {
    let mut running = Vec::new();
    for name in names {
        let file = pid_dir(state).join(format!("{name}.pid"));
        if let Some((pid, program)) = read_pid_file(&file) {
            if is_running(pid, &program) {
                signal(pid, libc::SIGTERM);
                running.push((pid, program));
            }
        }
    }
    let deadline = Instant::now() + grace;
    while !running.is_empty() && Instant::now() < deadline {
        running.retain(|(pid, program)| is_running(*pid, program));
        if !running.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (pid, program) in &running {
        if is_running(*pid, program) {
            signal(*pid, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running.is_empty() && Instant::now() < deadline {
        running.retain(|(pid, program)| is_running(*pid, program));
        if !running.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for name in names {
        let _ = std::fs::remove_file(pid_dir(state).join(format!("{name}.pid")));
    }
}

fn read_pid_file(path: &Path) -> Option<(i32, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (pid, program) = text.trim().split_once(' ')?;
    Some((pid.parse().ok()?, program.to_string()))
}

fn is_running(pid: i32, program: &str) -> bool {
    reap(pid);
    // A zombie or a reused pid has another (or an empty) argv[0].
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0 == program.as_bytes()
}

/// Collects the exit status when the process is our own child, so it does not linger
/// as a zombie; a no-op for anyone else's.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG only reads the status of a child of ours.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid we verified runs the program we started.
    unsafe {
        libc::kill(pid, sig);
    }
}
