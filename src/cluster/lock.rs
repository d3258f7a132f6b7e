//! The per-release, per-cluster lock: a `coordination.k8s.io/v1` Lease named
//! `flotilla.<release>` in the release namespace, renewed while held. A lease whose
//! holder stopped renewing (killed, partitioned) for longer than its duration is taken
//! over; a live one refuses the second run with the holder and since when.

use super::{CancellationToken, ClusterError, ClusterHandle};
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::Api;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct LockOptions {
    /// How long the lease stays valid without a renewal.
    pub duration: Duration,
    /// Who holds it: `user@host pid N`.
    pub holder: String,
}

impl LockOptions {
    /// The holder identity of this process, a 60 s lease.
    pub fn for_this_process() -> LockOptions {
        LockOptions {
            duration: Duration::from_secs(60),
            holder: format!("{} pid {}", user_at_host(), std::process::id()),
        }
    }
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

/// A held lock. Renewed in the background until [`Lock::release`]; if a renewal finds
/// the lease taken by someone else, [`Lock::lost`] is cancelled so the holder stops at
/// its next safe point.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: CancellationToken,
    /// Whether it was taken over from a holder that stopped renewing.
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

impl ClusterHandle {
    /// Takes the lock of `release` in `namespace` (which must exist).
    pub async fn lock(
        &self,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
    ) -> Result<Lock, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client(), namespace);
        let name = lease_name(release);
        let object = format!("Lease {namespace}/{name}");
        let seconds = i32::try_from(opts.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let spec = LeaseSpec {
            holder_identity: Some(opts.holder.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            ..Default::default()
        };
        let mut took_over_from = None;
        match api
            .get_opt(&name)
            .await
            .map_err(|e| self.error("read", &object, e))?
        {
            None => {
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
                    spec: Some(spec),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        // Someone created it between our read and our create: theirs.
                        let current = api
                            .get(&name)
                            .await
                            .map_err(|e| self.error("read", &object, e))?;
                        return Err(self.locked(namespace, release, &current));
                    }
                    Err(err) => return Err(self.error("create", &object, err)),
                }
            }
            Some(mut current) => {
                let held = current.spec.clone().unwrap_or_default();
                let holder = held.holder_identity.clone().unwrap_or_default();
                let stale = match (&held.renew_time, held.lease_duration_seconds) {
                    (Some(renewed), Some(secs)) => to_chrono(renewed)
                        .is_none_or(|t| t + chrono::Duration::seconds(secs.into()) < Utc::now()),
                    _ => true,
                };
                if !holder.is_empty() && holder != opts.holder && !stale {
                    return Err(self.locked(namespace, release, &current));
                }
                if !holder.is_empty() && holder != opts.holder {
                    tracing::warn!(
                        cluster = self.context(),
                        release,
                        "taking over the lock of {holder}: it stopped renewing"
                    );
                    took_over_from = Some(holder);
                }
                current.spec = Some(spec);
                // The resourceVersion in `current` makes this a compare-and-swap: of two
                // runs taking over the same stale lease, one gets a 409.
                match api.replace(&name, &PostParams::default(), &current).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        let current = api
                            .get(&name)
                            .await
                            .map_err(|e| self.error("read", &object, e))?;
                        return Err(self.locked(namespace, release, &current));
                    }
                    Err(err) => return Err(self.error("take", &object, err)),
                }
            }
        }
        let lost = CancellationToken::new();
        let renewer = tokio::spawn(renew(
            api.clone(),
            name.clone(),
            opts.holder.clone(),
            opts.duration / 3,
            lost.clone(),
        ));
        Ok(Lock {
            api,
            name,
            holder: opts.holder.clone(),
            renewer,
            lost,
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
    every: Duration,
    lost: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(200)));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let result = async {
            let mut lease = api.get(&name).await?;
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(holder.as_str()) {
                return Ok(false);
            }
            spec.renew_time = Some(now());
            api.replace(&name, &PostParams::default(), &lease)
                .await
                .map(|_| true)
        }
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // A missed renewal is not a lost lock yet: the next tick tries again.
            Err(err) => tracing::warn!("cannot renew lease {name}: {err}"),
        }
    }
}

impl Lock {
    /// Cancelled when the lease was found taken by another holder.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and deletes the lease if it is still ours.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(Some(lease)) = self.api.get_opt(&self.name).await {
            let ours = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.holder.as_str());
            if ours {
                let _ = self.api.delete(&self.name, &DeleteParams::default()).await;
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
