//! The per-release, per-cluster lock: a `coordination.k8s.io/v1` Lease named
//! `flotilla.<release>` in the release namespace, renewed while held.
//!
//! A dead run never blocks the next one:
//! - the holder identity is unique per run: `user@host pid N run R` (R random);
//! - a holder on this host whose process is gone is taken over at once;
//! - otherwise the lease is stale once its `resourceVersion` (so its `renewTime`) has
//!   not changed for its `leaseDurationSeconds`, **as observed on this process's
//!   monotonic clock** (client-go's leader election: another host's wall clock is never
//!   compared with ours);
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

/// `user@host pid N run R`: unique per run (R is random per process).
pub fn holder_identity() -> String {
    format!(
        "{} pid {} run {}",
        user_at_host(),
        std::process::id(),
        run_id()
    )
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

/// The host and pid of a holder identity `user@host pid N ...`, when it has them.
fn holder_host_pid(holder: &str) -> Option<(&str, u32)> {
    let mut words = holder.split_whitespace();
    let host = words.next()?.rsplit_once('@')?.1;
    if words.next()? != "pid" {
        return None;
    }
    let pid = words.next()?.parse().ok()?;
    Some((host, pid))
}

/// Whether `holder` names a process of this host that no longer runs. Only answered
/// where `/proc` shows processes (Linux); elsewhere a holder is never presumed dead and
/// staleness decides.
fn holder_is_dead_here(holder: &str) -> bool {
    let Some((host, pid)) = holder_host_pid(holder) else {
        return false;
    };
    if host != host_name() || pid == std::process::id() {
        return false;
    }
    process_is_gone(pid)
}

fn process_is_gone(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return false;
    }
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // `pid (comm) S ...`: a zombie has exited, it only waits for its parent.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
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
/// the lease taken by someone else, or no renewal succeeded for a whole lease duration
/// (another run may have taken it since), [`Lock::lost`] is cancelled so the holder
/// stops before its next apply, prune or record write.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: CancellationToken,
    lost_why: Arc<Mutex<Option<String>>>,
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
        let took_over_from = loop {
            let current = api
                .get_opt(&name)
                .await
                .map_err(|e| self.error("read", &object, e))?;
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
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => break None,
                    // Someone created it between our read and our create: look again.
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
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
            let duration = Duration::from_secs(
                held.lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
            );
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
            match api.replace(&name, &PostParams::default(), &current).await {
                Ok(_) => break reason,
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(err) => return Err(self.error("take", &object, err)),
            }
        };
        let lost = CancellationToken::new();
        let lost_why = Arc::new(Mutex::new(None));
        let renewer = tokio::spawn(renew(
            api.clone(),
            name.clone(),
            opts.holder.clone(),
            opts.duration,
            lost.clone(),
            lost_why.clone(),
        ));
        Ok(Lock {
            api,
            name,
            holder: opts.holder.clone(),
            renewer,
            lost,
            lost_why,
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

async fn renew(
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
    lost: CancellationToken,
    lost_why: Arc<Mutex<Option<String>>>,
) {
    let every = (duration / 3).max(Duration::from_millis(200));
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut renewed = Instant::now();
    let give_up = |why: String| {
        *lost_why.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        lost.cancel();
    };
    loop {
        ticker.tick().await;
        let result = async {
            let mut lease = api.get(&name).await?;
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(holder.as_str()) {
                return Ok(Some(spec.holder_identity.clone().unwrap_or_default()));
            }
            spec.renew_time = Some(now());
            // Compare-and-swap: the resourceVersion read above.
            api.replace(&name, &PostParams::default(), &lease)
                .await
                .map(|_| None)
        }
        .await;
        match result {
            Ok(None) => renewed = Instant::now(),
            Ok(Some(other)) => {
                give_up(format!("lease {name} was taken by {other}"));
                return;
            }
            Err(err) if renewed.elapsed() >= duration => {
                // Another run may have seen it stale and taken it: stop as if it had.
                give_up(format!(
                    "lease {name} could not be renewed for {}s: {}",
                    renewed.elapsed().as_secs(),
                    super::describe_kube_error(&err)
                ));
                return;
            }
            // A missed renewal is not a lost lock yet: the next tick tries again.
            Err(err) => tracing::warn!(
                "cannot renew lease {name}: {}",
                super::describe_kube_error(&err)
            ),
        }
    }
}

/// How long releasing a lease may take: a cluster that does not answer keeps it until
/// it goes stale.
const RELEASE_BUDGET: Duration = Duration::from_secs(5);

impl Lock {
    /// Cancelled when the lease was found taken by another holder, or could not be
    /// renewed for its duration.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Why [`Lock::lost`] was cancelled.
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
    /// run took meanwhile is never deleted. Bounded by a few seconds.
    pub async fn release(self) {
        self.renewer.abort();
        let delete = async {
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

    #[test]
    fn holder_identities_are_unique_per_run_and_name_host_and_pid() {
        let me = holder_identity();
        let (host, pid) = holder_host_pid(&me).unwrap();
        assert_eq!((host, pid), (host_name().as_str(), std::process::id()));
        assert!(me.contains(&format!("run {}", run_id())), "{me}");
        assert_eq!(holder_host_pid("alice@ci-1 pid 11"), Some(("ci-1", 11)));
        assert_eq!(holder_host_pid("someone else"), None);
    }

    #[test]
    fn a_holder_of_this_host_whose_process_is_gone_is_dead_and_no_other() {
        // This process is alive; a holder elsewhere is never presumed dead.
        assert!(!holder_is_dead_here(&holder_identity()));
        assert!(!holder_is_dead_here("alice@another-host pid 1 run 0"));
        // A child that has exited and was reaped: its pid is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = format!("x@{} pid {pid} run 0", host_name());
        assert!(holder_is_dead_here(&dead), "{dead}");
        // pid 1 runs on every Linux host.
        assert!(!holder_is_dead_here(&format!(
            "x@{} pid 1 run 0",
            host_name()
        )));
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
