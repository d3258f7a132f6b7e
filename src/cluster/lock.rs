//! The per-release, per-cluster lock: a `coordination.k8s.io/v1` Lease named
//! `flotilla.<release>` in the release namespace, renewed while held.
//!
//! A dead run never blocks the next one, and a live one is never taken over:
//! - the holder identity is unique per run: `user@host pid N run R`, then what proves
//!   the process dead to another of its host: `boot B pidns P start S`;
//! - a holder is taken over at once only with that proof: same host, same boot id, same
//!   PID namespace, and its pid absent (in a `/proc` that hides no pid), a zombie, or
//!   another process (its start time differs). A `/proc` that cannot be read
//!   (`hidepid`, another PID namespace on the same hostname: CI runners, `hostNetwork`
//!   pods) proves nothing, and a holder written by older flotilla (no proof fields) is
//!   judged by expiry only;
//! - otherwise the lease is stale once its `resourceVersion` (so its `renewTime`) has
//!   not changed for its `leaseDurationSeconds` (ours when it has none, so never at
//!   first sight), **as observed on this process's monotonic clock** (client-go's
//!   leader election: another host's wall clock is never compared with ours);
//! - the holder stops before a peer may take over: it renews every third of the
//!   duration, each attempt bounded by what is left of the renew deadline (two thirds of
//!   the duration, counted from the sending of the last renewal that succeeded), and
//!   declares the lease lost once that deadline passes, or at once when the lease was
//!   taken or deleted ([`Lock::lost`]);
//! - a run that finds the lease held waits, saying who holds it and for how long it
//!   will wait, up to [`LockOptions::wait`], then takes over or refuses naming the
//!   holder.
//!
//! Every write is a compare-and-swap on the resourceVersion (take over, renew,
//! release), so of two runs only one ever holds the lease.

use super::{CancellationToken, ClusterError, ClusterHandle};
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a lease stays valid without a renewal: short, so that waiting for a holder
/// that vanished (another host, a partition) takes seconds, not minutes.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct LockOptions {
    /// How long the lease stays valid without a renewal.
    pub duration: Duration,
    /// Who holds it: `user@host pid N run R`, unique per run.
    pub holder: String,
    /// How long to wait for a lease another live run holds before refusing
    /// (`--lock-timeout`); zero refuses at once.
    pub wait: Duration,
}

impl LockOptions {
    /// This run's holder identity, a [`LEASE_DURATION`] lease, waiting
    /// [`LockOptions::default_wait`].
    pub fn for_this_process() -> LockOptions {
        LockOptions {
            duration: LEASE_DURATION,
            holder: holder_identity(),
            wait: LockOptions::default_wait(LEASE_DURATION),
        }
    }

    /// The default `--lock-timeout`: the lease duration plus a margin, so that a holder
    /// that stopped renewing is seen stale (and taken over) before the wait ends.
    pub fn default_wait(duration: Duration) -> Duration {
        duration + duration / 3 + Duration::from_secs(1)
    }
}

/// `user@host pid N run R`, then what proves this process dead to another of this
/// host when it is: `boot B pidns P start S` (the kernel's boot id, the PID namespace,
/// the process's start time in clock ticks since boot). Unique per run (R is random per
/// process). A reader that knows only `user@host pid N` (older flotilla) still finds
/// them first; each proof field is left out when this process cannot read it.
pub fn holder_identity() -> String {
    let mut identity = format!(
        "{} pid {} run {}",
        user_at_host(),
        std::process::id(),
        run_id()
    );
    if let Some(proof) = ProcessProof::of_this_process() {
        identity.push_str(&format!(
            " boot {} pidns {} start {}",
            proof.boot, proof.pidns, proof.start
        ));
    }
    identity
}

/// Random per process: tells apart two runs whose pid is the same (pid reuse, containers).
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        format!("{:08x}", h.finish() as u32)
    })
}

/// The user part of `user@host`, as records store it.
pub fn lock_user() -> String {
    user_at_host()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `user@host` of this process, as records and leases name who ran flotilla.
pub fn user_at_host() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", host_name())
}

pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A holder identity as written by [`holder_identity`] (or by older flotilla, without
/// the proof fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Holder<'a> {
    host: &'a str,
    pid: u32,
    /// `None` in identities written before the proof fields.
    proof: Option<ProcessProof>,
}

/// What tells a process of this host apart from every other, then and later: the boot
/// (a reboot reuses pids), the PID namespace (another one on the same hostname has pids
/// of its own: CI runners, `hostNetwork` pods) and the start time (a pid is reused).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessProof {
    boot: String,
    pidns: String,
    start: u64,
}

impl ProcessProof {
    /// This process's, when `/proc` is this process's own (its PID namespace mounted
    /// there, as `/proc/self/stat` naming our pid shows) and readable.
    fn of_this_process() -> Option<ProcessProof> {
        static PROOF: OnceLock<Option<ProcessProof>> = OnceLock::new();
        PROOF
            .get_or_init(|| {
                let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
                let pidns = std::fs::read_link("/proc/self/ns/pid").ok()?;
                let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
                let (pid, _, start) = parse_stat(&stat)?;
                let pidns = pid_namespace(&pidns.to_string_lossy())?;
                (pid == std::process::id()).then(|| ProcessProof {
                    boot: boot.trim().to_owned(),
                    pidns,
                    start,
                })
            })
            .clone()
    }
}

/// `pid:[4026531836]` → `4026531836`.
fn pid_namespace(link: &str) -> Option<String> {
    let inode = link.strip_prefix("pid:[")?.strip_suffix(']')?;
    (!inode.is_empty() && inode.bytes().all(|b| b.is_ascii_digit())).then(|| inode.to_owned())
}

/// `/proc/PID/stat`: its pid, state and start time (field 22). The command name may
/// hold spaces and parentheses: the fields after it start at the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, char, u64)> {
    let pid = stat.split_whitespace().next()?.parse().ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    let state = fields.first()?.chars().next()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((pid, state, start))
}

/// Reads a holder identity: `user@host pid N`, then `key value` pairs in any order
/// (`run`, and `boot`, `pidns`, `start` together or not at all).
fn parse_holder(holder: &str) -> Option<Holder<'_>> {
    let mut words = holder.split_whitespace();
    let host = words.next()?.rsplit_once('@')?.1;
    if words.next()? != "pid" {
        return None;
    }
    let pid = words.next()?.parse().ok()?;
    let (mut boot, mut pidns, mut start) = (None, None, None);
    while let (Some(key), Some(value)) = (words.next(), words.next()) {
        match key {
            "boot" => boot = Some(value.to_owned()),
            "pidns" => pidns = Some(value.to_owned()),
            "start" => start = value.parse().ok(),
            _ => {}
        }
    }
    let proof = match (boot, pidns, start) {
        (Some(boot), Some(pidns), Some(start)) => Some(ProcessProof { boot, pidns, start }),
        _ => None,
    };
    Some(Holder { host, pid, proof })
}

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// It runs (or sleeps), started at this many ticks after boot.
    Running { start: u64 },
    /// It exited and waits for its parent to reap it (zombie), or is being reaped.
    Exited,
    /// No such process in this `/proc` (`ENOENT`).
    Absent,
    /// Anything else: denied, hidden, unparsable. Proves nothing.
    Unreadable,
}

fn probe(pid: u32) -> Probe {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match parse_stat(&stat) {
            Some((_, 'Z' | 'X', _)) => Probe::Exited,
            Some((_, _, start)) => Probe::Running { start },
            None => Probe::Unreadable,
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Probe::Absent,
        Err(_) => Probe::Unreadable,
    }
}

/// Whether `/proc` hides other users' processes (`hidepid`): a missing `/proc/PID` then
/// proves nothing.
fn proc_hides_pids() -> bool {
    static HIDES: OnceLock<bool> = OnceLock::new();
    *HIDES.get_or_init(|| match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(mounts) => mounts_hide_pids(&mounts),
        // Cannot tell: presume hidden, so that nothing is judged dead from a missing entry.
        Err(_) => true,
    })
}

/// Whether the `proc` mount at `/proc` in a `mountinfo` has `hidepid` set.
fn mounts_hide_pids(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let Some((before, after)) = line.split_once(" - ") else {
            return false;
        };
        let mount_point = before.split_whitespace().nth(4);
        let mut after = after.split_whitespace();
        let fs_type = after.next();
        let options = after.nth(1).unwrap_or_default();
        mount_point == Some("/proc")
            && fs_type == Some("proc")
            && options.split(',').any(|o| {
                o.strip_prefix("hidepid=")
                    .is_some_and(|v| v != "0" && v != "off")
            })
    })
}

/// This process, as it judges another of its host.
struct Here<'a> {
    host: &'a str,
    pid: u32,
    proof: Option<&'a ProcessProof>,
    hides_pids: bool,
}

/// Whether `holder` is proved dead: a process of this host, of this boot and PID
/// namespace (so its pid means the same here), that no longer runs (absent, a zombie,
/// or its pid now another process's, by its start time). Anything short of that proof
/// (an identity without the proof fields, another boot or namespace, a `/proc` that
/// cannot be read or hides pids) is no proof: the lease's expiry decides.
fn dead_by_proof(holder: &Holder<'_>, here: &Here<'_>, probe: impl Fn(u32) -> Probe) -> bool {
    let (Some(theirs), Some(ours)) = (&holder.proof, here.proof) else {
        return false;
    };
    if holder.host != here.host || theirs.boot != ours.boot || theirs.pidns != ours.pidns {
        return false;
    }
    if holder.pid == here.pid {
        // This very process is alive; a run of an earlier process with our pid is
        // told apart by its start time.
        return theirs.start != ours.start;
    }
    match probe(holder.pid) {
        Probe::Exited => true,
        Probe::Absent => !here.hides_pids,
        Probe::Running { start } => start != theirs.start,
        Probe::Unreadable => false,
    }
}

/// Whether `holder` is a process of this host proved dead ([`dead_by_proof`]).
fn holder_is_dead_here(holder: &str) -> bool {
    let Some(holder) = parse_holder(holder) else {
        return false;
    };
    let host = host_name();
    let proof = ProcessProof::of_this_process();
    let here = Here {
        host: &host,
        pid: std::process::id(),
        proof: proof.as_ref(),
        hides_pids: proc_hides_pids(),
    };
    dead_by_proof(&holder, &here, probe)
}

/// When this process first saw each lease at its current resourceVersion: staleness
/// is judged on that, on the monotonic clock, as client-go's leader election does.
type Observations = HashMap<(String, String), (String, Instant)>;

fn observations() -> &'static Mutex<Observations> {
    static SEEN: OnceLock<Mutex<Observations>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// How long the lease has been seen unchanged at `version`, recording it when new.
fn unchanged_for(context: &str, lease: &str, version: &str) -> Duration {
    let mut seen = observations()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (context.to_owned(), lease.to_owned());
    match seen.get(&key) {
        Some((v, since)) if v == version => since.elapsed(),
        _ => {
            seen.insert(key, (version.to_owned(), Instant::now()));
            Duration::ZERO
        }
    }
}

/// A held lock. Renewed in the background until [`Lock::release`]; if a renewal finds
/// the lease taken by someone else or deleted, or no renewal succeeded within the renew
/// deadline (before another run may take it), [`Lock::lost`] is cancelled so the holder
/// stops its apply, prune or record write.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: CancellationToken,
    lost_why: Arc<Mutex<Option<String>>>,
    /// Lost because the cluster stopped answering the renewals, not to a peer.
    silent: Arc<std::sync::atomic::AtomicBool>,
    /// The resourceVersion of the last write of ours that the server answered (the
    /// take, each renewal): what the release deletes on, without reading it first.
    written: Arc<Mutex<Option<String>>>,
    /// Whether it was taken over from another holder, and why.
    pub took_over_from: Option<String>,
}

pub fn lease_name(release: &str) -> String {
    format!("flotilla.{release}")
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn to_chrono(time: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(time.0.as_microsecond())
}

/// Pause between two looks at a lease someone else holds.
const POLL: Duration = Duration::from_millis(500);

impl ClusterHandle {
    /// Takes the lock of `release` in `namespace` (which must exist), waiting up to
    /// `opts.wait` for a live holder; `on_wait` is told once who holds it and for how
    /// long this run will wait.
    pub async fn lock(
        &self,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
    ) -> Result<Lock, ClusterError> {
        self.lock_waiting(namespace, release, opts, &|message: &str| {
            tracing::warn!("{message}")
        })
        .await
    }

    /// Who holds the lock of `release` in `namespace` now, if anyone: a lease given
    /// back is deleted, one whose holder stopped renewing it has expired. One read,
    /// no write (what the dashboard shows).
    pub async fn lock_holder(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<Option<String>, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client(), namespace);
        let name = lease_name(release);
        let lease = match api.get_opt(&name).await {
            Ok(lease) => lease,
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(err) => return Err(self.error("read", &format!("Lease {namespace}/{name}"), err)),
        };
        let Some(spec) = lease.and_then(|l| l.spec) else {
            return Ok(None);
        };
        let until = spec.renew_time.as_ref().and_then(to_chrono).map(|renewed| {
            renewed + chrono::Duration::seconds(spec.lease_duration_seconds.unwrap_or(0).into())
        });
        Ok(spec
            .holder_identity
            .filter(|_| until.is_some_and(|until| Utc::now() < until)))
    }

    /// [`ClusterHandle::lock`], telling `on_wait` when it has to wait.
    pub async fn lock_waiting(
        &self,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        on_wait: &(dyn Fn(&str) + Sync),
    ) -> Result<Lock, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client(), namespace);
        let name = lease_name(release);
        let object = format!("Lease {namespace}/{name}");
        let seconds = i32::try_from(opts.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let spec = || LeaseSpec {
            holder_identity: Some(opts.holder.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            ..Default::default()
        };
        let started = Instant::now();
        let deadline = started + opts.wait;
        let mut announced = false;
        // When the request that took the lease was sent: the server wrote its
        // renewTime later, so a peer's count of its duration starts later still.
        let mut sent;
        let written;
        // A lease given back is deleted: the usual case is none, so the first attempt
        // creates it without reading it first (one round trip); one that exists answers
        // 409, and is read.
        let mut assume_absent = true;
        let took_over_from = loop {
            let current = if std::mem::take(&mut assume_absent) {
                None
            } else {
                api.get_opt(&name)
                    .await
                    .map_err(|e| self.error("read", &object, e))?
            };
            let Some(mut current) = current else {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(
                            [
                                (
                                    super::labels::MANAGED_BY.to_owned(),
                                    super::labels::MANAGER.to_owned(),
                                ),
                                (super::labels::RELEASE.to_owned(), release.to_owned()),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    },
                    spec: Some(spec()),
                };
                sent = Instant::now();
                match api.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        written = created.metadata.resource_version;
                        break None;
                    }
                    // Someone created it between our read and our create: look again.
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    // The namespace is not read before the lease is taken: a missing one
                    // answers the create (one round trip fewer for every run).
                    Err(kube::Error::Api(status)) if namespace_missing(&status) => {
                        return Err(ClusterError::NoNamespace {
                            context: self.context().to_owned(),
                            namespace: namespace.to_owned(),
                        })
                    }
                    Err(err) => return Err(self.error("create", &object, err)),
                }
            };
            let held = current.spec.clone().unwrap_or_default();
            let holder = held.holder_identity.clone().unwrap_or_default();
            let free = holder.is_empty() || holder == opts.holder;
            let version = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            let duration = held_for(held.lease_duration_seconds, opts.duration);
            let reason = if free {
                None
            } else if holder_is_dead_here(&holder) {
                Some(format!("{holder} (its process is gone)"))
            } else {
                let unchanged = unchanged_for(self.context(), &object, &version);
                (unchanged >= duration).then(|| {
                    format!(
                        "{holder} (not renewed for {}s as seen from here)",
                        unchanged.as_secs()
                    )
                })
            };
            if !free && reason.is_none() {
                if Instant::now() >= deadline {
                    return Err(self.locked(namespace, release, &current));
                }
                if !announced {
                    announced = true;
                    on_wait(&format!(
                        "cluster `{}`: release `{release}` is locked by {holder} (lease {namespace}/{name}); waiting up to {}s for it",
                        self.context(),
                        opts.wait.as_secs()
                    ));
                }
                tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
                continue;
            }
            if let Some(from) = &reason {
                tracing::warn!(
                    cluster = self.context(),
                    release,
                    "taking over the lock of {from}"
                );
            }
            current.spec = Some(spec());
            // The resourceVersion in `current` makes this a compare-and-swap: of two
            // runs taking over the same stale lease, one gets a 409 and looks again.
            sent = Instant::now();
            match api.replace(&name, &PostParams::default(), &current).await {
                Ok(replaced) => {
                    written = replaced.metadata.resource_version;
                    break reason;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(err) => return Err(self.error("take", &object, err)),
            }
        };
        let lost = CancellationToken::new();
        let lost_why = Arc::new(Mutex::new(None));
        let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = Arc::new(Mutex::new(written));
        let renewer = tokio::spawn(renew(
            api.clone(),
            name.clone(),
            opts.holder.clone(),
            Timing::of(opts.duration),
            sent,
            Loss {
                lost: lost.clone(),
                lost_why: lost_why.clone(),
                silent: silent.clone(),
            },
            written.clone(),
        ));
        Ok(Lock {
            api,
            name,
            holder: opts.holder.clone(),
            renewer,
            lost,
            lost_why,
            silent,
            written,
            took_over_from,
        })
    }

    fn locked(&self, namespace: &str, release: &str, lease: &Lease) -> ClusterError {
        let spec = lease.spec.clone().unwrap_or_default();
        ClusterError::Locked {
            context: self.context().to_owned(),
            release: release.to_owned(),
            lease: format!("{namespace}/{}", lease_name(release)),
            holder: spec
                .holder_identity
                .unwrap_or_else(|| "an unknown holder".into()),
            since: spec
                .acquire_time
                .as_ref()
                .and_then(to_chrono)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "an unknown time".into()),
        }
    }
}

/// The lease's duration as its holder wrote it; one without a positive duration (an
/// older or foreign writer) is judged on `ours`, never stale at first sight.
fn held_for(seconds: Option<i32>, ours: Duration) -> Duration {
    match seconds.and_then(|s| u64::try_from(s).ok()) {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => ours,
    }
}

/// When a holder renews and when it gives up, as client-go's leader election
/// (leaseDuration > renewDeadline > retryPeriod): a peer may take the lease over once it
/// has seen it unchanged for `duration`, so the holder stops writing once no renewal
/// has succeeded for `deadline`, well before that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    duration: Duration,
    /// Since the sending of the last renewal that succeeded: past it, the lease is lost.
    deadline: Duration,
    /// Between a renewal that succeeded and the next one.
    every: Duration,
    /// Between a renewal that failed and the next attempt.
    retry: Duration,
}

impl Timing {
    fn of(duration: Duration) -> Timing {
        let duration = duration.max(Duration::from_secs(1));
        Timing {
            duration,
            // A third of the duration is left for what was in flight to land or be
            // dropped, and for the two clocks' rates to differ.
            deadline: duration * 2 / 3,
            every: duration / 3,
            retry: (duration / 15).max(Duration::from_millis(100)),
        }
    }
}

/// How the renewal says the lease is lost: the token cancelled, why, and whether the
/// cluster had stopped answering.
struct Loss {
    lost: CancellationToken,
    lost_why: Arc<Mutex<Option<String>>>,
    silent: Arc<std::sync::atomic::AtomicBool>,
}

/// What one renewal found.
enum Renewal {
    /// With the resourceVersion written.
    Renewed(Option<String>),
    /// Another holder's name is in the lease.
    TakenBy(String),
    /// The lease is gone (deleted by hand, or by a peer's uninstall).
    Deleted,
    /// No answer in time, or an error worth another attempt; `answered`: the API
    /// server answered it (a conflict, a refusal), rather than nothing coming back.
    Failed { why: String, answered: bool },
}

impl Renewal {
    fn failed(err: &kube::Error) -> Renewal {
        Renewal::Failed {
            why: super::describe_kube_error(err),
            answered: matches!(err, kube::Error::Api(_)),
        }
    }
}

/// A 404 to the create of a namespaced object: its namespace does not exist.
fn namespace_missing(status: &kube::core::Status) -> bool {
    status.code == 404
        && status
            .details
            .as_ref()
            .is_none_or(|d| d.kind == "namespaces")
}

async fn renew_once(api: &Api<Lease>, name: &str, holder: &str, within: Duration) -> Renewal {
    let attempt = async {
        let mut lease = match api.get_opt(name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return Renewal::Deleted,
            Err(err) => return Renewal::failed(&err),
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(holder) {
            return Renewal::TakenBy(spec.holder_identity.clone().unwrap_or_default());
        }
        spec.renew_time = Some(now());
        // Compare-and-swap: the resourceVersion read above.
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(renewed) => Renewal::Renewed(renewed.metadata.resource_version),
            Err(kube::Error::Api(status)) if status.code == 404 => Renewal::Deleted,
            // Changed since the read (by a peer, or by a renewal of ours that landed
            // late): the next attempt reads it again.
            Err(err) => Renewal::failed(&err),
        }
    };
    tokio::time::timeout(within, attempt)
        .await
        .unwrap_or_else(|_| Renewal::Failed {
            why: format!("no answer within {}ms", within.as_millis()),
            answered: false,
        })
}

/// Renews the lease until aborted; cancels `lost` (saying why) once it is taken, deleted,
/// or not renewed within the deadline counted from `sent`, when the request that took
/// it was sent.
async fn renew(
    api: Api<Lease>,
    name: String,
    holder: String,
    timing: Timing,
    sent: Instant,
    loss: Loss,
    written: Arc<Mutex<Option<String>>>,
) {
    let Loss {
        lost,
        lost_why,
        silent,
    } = loss;
    let give_up = |why: String| {
        *lost_why.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        lost.cancel();
    };
    // The sending of the last request that renewed (or took) the lease.
    let mut renewed = sent;
    let mut next = sent + timing.every;
    let mut last_error = String::new();
    let mut last_answered = true;
    loop {
        let deadline = renewed + timing.deadline;
        tokio::time::sleep_until(next.min(deadline).into()).await;
        let now = Instant::now();
        if now >= deadline {
            // Not a peer: the cluster stopped answering (the run's other requests fail
            // the same way), which is how the run reports it.
            silent.store(
                !last_error.is_empty() && !last_answered,
                std::sync::atomic::Ordering::SeqCst,
            );
            give_up(format!(
                "lease {name} was not renewed within {}ms, before a peer may take it over ({}s){}",
                timing.deadline.as_millis(),
                timing.duration.as_secs(),
                if last_error.is_empty() {
                    String::new()
                } else {
                    format!(": {last_error}")
                }
            ));
            return;
        }
        // Never waited for past the deadline: a request still in flight then is one the
        // run no longer counts on.
        match renew_once(&api, &name, &holder, deadline - now).await {
            Renewal::Renewed(version) => {
                *written.lock().unwrap_or_else(|p| p.into_inner()) = version;
                renewed = now;
                next = now + timing.every;
                last_error.clear();
            }
            Renewal::TakenBy(other) => {
                give_up(format!("lease {name} was taken by {other}"));
                return;
            }
            Renewal::Deleted => {
                give_up(format!("lease {name} was deleted"));
                return;
            }
            Renewal::Failed { why, answered } => {
                tracing::warn!("cannot renew lease {name}: {why}");
                last_error = why;
                last_answered = answered;
                next = Instant::now() + timing.retry;
            }
        }
    }
}

/// How long releasing a lease may take: a cluster that does not answer keeps it until
/// it goes stale.
const RELEASE_BUDGET: Duration = Duration::from_secs(5);

impl Lock {
    /// Cancelled when the lease was found taken by another holder or deleted, or could
    /// not be renewed within the renew deadline.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Why [`Lock::lost`] was cancelled.
    /// Whether it was lost because the cluster stopped answering (not to a peer, not
    /// deleted): the run reports the cluster as lost, not as taken over.
    pub fn lost_to_silence(&self) -> bool {
        self.silent.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn lost_why(&self) -> Option<String> {
        self.lost_why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops renewing and deletes the lease if it is still ours: a delete with the
    /// resourceVersion we read as precondition (compare-and-swap), so a lease another
    /// run took meanwhile is never deleted. Bounded by a few seconds; nothing at all once
    /// the lease is lost.
    pub async fn release(self) {
        self.renewer.abort();
        if self.lost.is_cancelled() {
            // Not ours any more, or soon another run's: nothing to give back, and no
            // request to wait for on a cluster that may not answer.
            return;
        }
        let delete = async {
            // Deleted on the version of our last write (one round trip): a 409 means
            // it changed since (a renewal in flight when the renewer stopped, or a
            // peer), and it is read to tell which.
            let written = self
                .written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(version) = written {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: Some(version),
                        uid: None,
                    }),
                    ..DeleteParams::default()
                };
                match self.api.delete(&self.name, &params).await {
                    Ok(_) => return,
                    Err(kube::Error::Api(status)) if status.code == 404 => return,
                    Err(_) => {}
                }
            }
            let Ok(Some(lease)) = self.api.get_opt(&self.name).await else {
                return;
            };
            let ours = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.holder.as_str());
            if !ours {
                return;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: lease.metadata.resource_version.clone(),
                    uid: lease.metadata.uid.clone(),
                }),
                ..DeleteParams::default()
            };
            if let Err(err) = self.api.delete(&self.name, &params).await {
                tracing::warn!(
                    "cannot release lease {}: {}",
                    self.name,
                    super::describe_kube_error(&err)
                );
            }
        };
        if tokio::time::timeout(RELEASE_BUDGET, delete).await.is_err() {
            tracing::warn!(
                "cannot release lease {}: no answer; it goes stale by itself",
                self.name
            );
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(boot: &str, pidns: &str, start: u64) -> ProcessProof {
        ProcessProof {
            boot: boot.into(),
            pidns: pidns.into(),
            start,
        }
    }

    #[test]
    fn holder_identities_are_unique_per_run_and_name_host_pid_and_proof() {
        let me = holder_identity();
        let parsed = parse_holder(&me).unwrap();
        assert_eq!(
            (parsed.host, parsed.pid),
            (host_name().as_str(), std::process::id())
        );
        assert!(me.contains(&format!("pid {} run {}", std::process::id(), run_id())));
        // Linux, with its own /proc: the proof is written.
        assert_eq!(parsed.proof, ProcessProof::of_this_process());
        assert!(parsed.proof.is_some(), "{me}");

        let new =
            parse_holder("alice@ci-1 pid 11 run 0abc boot b-1 pidns 4026531836 start 77").unwrap();
        assert_eq!(
            new,
            Holder {
                host: "ci-1",
                pid: 11,
                proof: Some(proof("b-1", "4026531836", 77)),
            }
        );
        // Written by older flotilla: no proof.
        let old = parse_holder("alice@ci-1 pid 11 run 0abc").unwrap();
        assert_eq!((old.host, old.pid, old.proof), ("ci-1", 11, None));
        assert_eq!(parse_holder("test@host pid 12").unwrap().proof, None);
        // A proof with a field missing is none.
        assert_eq!(
            parse_holder("a@h pid 1 run 0 boot b pidns 4")
                .unwrap()
                .proof,
            None
        );
        assert_eq!(parse_holder("someone else"), None);
    }

    #[test]
    fn proc_stat_and_namespace_links_are_read_whatever_the_command_name() {
        let stat = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some((4242, 'S', 987654)));
        assert_eq!(parse_stat("12 (x) Z 1 2"), None, "too short: no field 22");
        assert_eq!(pid_namespace("pid:[4026531836]"), Some("4026531836".into()));
        assert_eq!(pid_namespace("net:[4026531836]"), None);
    }

    #[test]
    fn a_proc_mounted_with_hidepid_is_seen() {
        let plain = "22 28 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";
        let hidden = "22 28 0:20 / /proc rw,relatime - proc proc rw,hidepid=2\n";
        let invisible =
            "22 28 0:20 / /proc rw,relatime - proc proc rw,hidepid=invisible,subset=pid\n";
        let off = "22 28 0:20 / /proc rw,relatime - proc proc rw,hidepid=0\n";
        let elsewhere = "40 28 0:50 / /mnt/proc rw - proc proc rw,hidepid=2\n";
        assert!(!mounts_hide_pids(plain));
        assert!(mounts_hide_pids(hidden));
        assert!(mounts_hide_pids(invisible));
        assert!(!mounts_hide_pids(off));
        assert!(!mounts_hide_pids(elsewhere));
    }

    #[test]
    fn a_holder_is_dead_at_once_only_with_proof() {
        let ours = proof("boot-1", "4026531836", 1000);
        let here = Here {
            host: "ci-1",
            pid: 10,
            proof: Some(&ours),
            hides_pids: false,
        };
        let holder = |host, pid, p: Option<ProcessProof>| Holder {
            host,
            pid,
            proof: p,
        };
        let same = |start| Some(proof("boot-1", "4026531836", start));
        let gone = |_: u32| Probe::Absent;
        // Same host, boot and namespace; the process is gone, a zombie, or its pid is
        // another process's now.
        assert!(dead_by_proof(&holder("ci-1", 20, same(500)), &here, gone));
        assert!(dead_by_proof(&holder("ci-1", 20, same(500)), &here, |_| {
            Probe::Exited
        }));
        assert!(dead_by_proof(&holder("ci-1", 20, same(500)), &here, |_| {
            Probe::Running { start: 900 }
        }));
        // Alive: the same process, started when the identity says.
        assert!(!dead_by_proof(
            &holder("ci-1", 20, same(500)),
            &here,
            |_| Probe::Running { start: 500 }
        ));
        // A /proc read error proves nothing (hidepid=1, permissions).
        assert!(!dead_by_proof(
            &holder("ci-1", 20, same(500)),
            &here,
            |_| Probe::Unreadable
        ));
        // A missing entry in a /proc that hides pids (hidepid=2) proves nothing.
        let hiding = Here {
            hides_pids: true,
            ..here
        };
        assert!(!dead_by_proof(
            &holder("ci-1", 20, same(500)),
            &hiding,
            gone
        ));
        let here = Here {
            hides_pids: false,
            ..hiding
        };
        // Another PID namespace on the same hostname (a CI runner, a hostNetwork pod):
        // its pid 20 is not ours.
        let other_ns = Some(proof("boot-1", "4026532999", 500));
        assert!(!dead_by_proof(&holder("ci-1", 20, other_ns), &here, gone));
        // Another boot (the host rebooted: pids start over): expiry decides.
        let other_boot = Some(proof("boot-0", "4026531836", 500));
        assert!(!dead_by_proof(&holder("ci-1", 20, other_boot), &here, gone));
        // Another host.
        assert!(!dead_by_proof(&holder("ci-2", 20, same(500)), &here, gone));
        // Written by older flotilla: expiry only.
        assert!(!dead_by_proof(&holder("ci-1", 20, None), &here, gone));
        // This process cannot prove anything (its /proc is not its own).
        let blind = Here {
            proof: None,
            ..here
        };
        assert!(!dead_by_proof(&holder("ci-1", 20, same(500)), &blind, gone));
        // Our own pid: alive if it is us, dead if it was an earlier process.
        assert!(!dead_by_proof(&holder("ci-1", 10, same(1000)), &here, gone));
        assert!(dead_by_proof(&holder("ci-1", 10, same(999)), &here, gone));
    }

    #[test]
    fn on_this_host_a_reaped_child_is_dead_and_a_live_process_is_not() {
        // This process is alive; a holder elsewhere is never presumed dead.
        assert!(!holder_is_dead_here(&holder_identity()));
        assert!(!holder_is_dead_here("alice@another-host pid 1 run 0"));
        let ours = ProcessProof::of_this_process().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let (_, _, start) = parse_stat(&stat).unwrap();
        let identity = format!(
            "x@{} pid {pid} run 0 boot {} pidns {} start {start}",
            host_name(),
            ours.boot,
            ours.pidns
        );
        assert!(!holder_is_dead_here(&identity), "alive: {identity}");
        // Same pid, another start time: the pid was reused.
        let reused = identity.replace(&format!("start {start}"), &format!("start {}", start + 1));
        assert!(holder_is_dead_here(&reused), "{reused}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(holder_is_dead_here(&identity), "reaped: {identity}");
        // The same, written by older flotilla: no proof, expiry decides.
        assert!(!holder_is_dead_here(&format!(
            "x@{} pid {pid} run 0",
            host_name()
        )));
    }

    #[test]
    fn a_lease_without_a_positive_duration_is_judged_on_ours() {
        let ours = Duration::from_secs(15);
        assert_eq!(held_for(Some(30), ours), Duration::from_secs(30));
        assert_eq!(held_for(Some(0), ours), ours);
        assert_eq!(held_for(Some(-5), ours), ours);
        assert_eq!(held_for(None, ours), ours);
    }

    #[test]
    fn the_holder_gives_up_before_a_peer_may_take_over() {
        for seconds in [1, 3, 15, 60] {
            let t = Timing::of(Duration::from_secs(seconds));
            assert!(t.retry < t.every, "{t:?}");
            assert!(t.every < t.deadline, "{t:?}");
            assert!(t.deadline < t.duration, "{t:?}");
            // Room for what is in flight when the deadline passes.
            assert!(t.duration - t.deadline >= t.duration / 4, "{t:?}");
        }
        assert_eq!(
            Timing::of(Duration::ZERO),
            Timing::of(Duration::from_secs(1))
        );
    }

    #[test]
    fn staleness_counts_from_when_this_process_first_saw_the_version() {
        let first = unchanged_for("c", "Lease ns/a", "1");
        assert_eq!(first, Duration::ZERO);
        assert!(unchanged_for("c", "Lease ns/a", "1") >= first);
        // A renewal (new version) starts the count again.
        assert_eq!(unchanged_for("c", "Lease ns/a", "2"), Duration::ZERO);
        // Each cluster's lease is judged on its own.
        assert_eq!(unchanged_for("d", "Lease ns/a", "2"), Duration::ZERO);
    }
}
