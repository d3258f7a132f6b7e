//! `flotilla freeze --env E --reason "…" [--until TIME]` and `flotilla unfreeze --env E`:
//! an environment's change freeze, kept in every one of its clusters
//! (`storage::freeze`), judged by `release::freeze`. [`guard`] is what `deploy` and
//! `promote` ask before anything is read or changed; [`notice`] what `status` and
//! `history` say. `rollback` never asks: putting things back is always allowed.

use super::EnvSelection;
use crate::cluster::ClusterHandle;
use crate::release::freeze::{judge, namespaces};
use crate::release::{ClusterFreeze, Freeze, Verdict};
use crate::storage::freeze::{delete_freeze, read_freeze, write_freeze};
use crate::Result;
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct FreezeOptions {
    pub env: EnvSelection,
    pub reason: String,
    /// When it ends by itself: an RFC 3339 time or a duration from now (`2h`, `3d`).
    pub until: Option<String>,
}

/// `--override-freeze --reason "…"` of `deploy` and `promote`.
#[derive(Debug, Clone, Default)]
pub struct FreezeOverride {
    /// The reason given; `None`: a freeze refuses the run.
    pub reason: Option<String>,
}

/// The namespaces of every release of the repo, for `freeze` and `unfreeze`.
fn repo_namespaces(selected: &crate::rollout::Selected) -> Result<Vec<String>> {
    let releases = selected.repo.releases()?;
    let names: Vec<&str> = releases
        .iter()
        .map(|r| r.descriptor.metadata.namespace.as_str())
        .collect();
    let found = namespaces(&selected.env.environment, &names);
    if found.is_empty() {
        return Err(crate::Error::Reported(format!(
            "no release under releases/ names a namespace to keep the freeze in: set freeze.namespace in {}",
            selected.env.file.display()
        )));
    }
    Ok(found)
}

/// Every cluster of the environment, connected, whatever `--clusters` selects: a
/// freeze is the environment's.
async fn each_cluster(
    selected: &crate::rollout::Selected,
) -> Vec<(
    String,
    std::result::Result<ClusterHandle, crate::cluster::ClusterError>,
)> {
    let plan = match crate::rollout::Plan::new(&selected.env, None) {
        Ok(plan) => plan,
        // A validated environment always makes a plan; said per cluster if not.
        Err(err) => {
            return selected
                .env
                .environment
                .clusters
                .iter()
                .map(|c| {
                    let problem = crate::cluster::ClusterError::Release {
                        context: c.context.clone(),
                        message: err.to_string(),
                    };
                    (c.context.clone(), Err(problem))
                })
                .collect()
        }
    };
    crate::rollout::connect::on_each(&plan, &selected.kubeconfig, |_, handle| async move {
        Ok(handle)
    })
    .await
    .into_iter()
    .map(|(cluster, handle)| (cluster.context, handle))
    .collect()
}

/// Where a run of releases in `own` (their namespaces) looks for the environment's
/// freeze: `own` first (a freeze that cannot be read there refuses), then the
/// namespaces of the repo's other releases, where `freeze` wrote it too. A release
/// added after the freeze has no copy in its own namespace yet, and the environment is
/// frozen for it all the same. With `freeze.namespace` there is one place, and no other.
struct Places {
    own: Vec<String>,
    others: Vec<String>,
}

impl Places {
    fn for_releases(selected: &crate::rollout::Selected, own: &[&str]) -> Places {
        let own = namespaces(&selected.env.environment, own);
        // With `freeze.namespace` every release's place is that one. A descriptor that
        // does not load is its own command's problem: the others still tell.
        let others = repo_namespaces(selected)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !own.contains(n))
            .collect();
        Places { own, others }
    }
}

/// What every cluster of the environment says of its freeze: frozen in any of the
/// places, else unreadable in one of the run's own namespaces, else clear. What cannot
/// be read in another release's namespace (a deployer may not read it) says nothing.
async fn read_all(
    selected: &crate::rollout::Selected,
    places: &Places,
) -> Vec<(String, ClusterFreeze)> {
    let name = &selected.env.environment.name;
    futures::future::join_all(each_cluster(selected).await.into_iter().map(
        |(context, handle)| async move {
            let handle = match handle {
                Ok(handle) => handle,
                Err(err) => return (context, ClusterFreeze::Unreadable(err.to_string())),
            };
            let reads = futures::future::join_all(
                places
                    .own
                    .iter()
                    .chain(&places.others)
                    .map(|namespace| read_freeze(&handle, namespace, name)),
            )
            .await;
            let mut found = ClusterFreeze::Clear;
            for (i, read) in reads.into_iter().enumerate() {
                match read {
                    frozen @ ClusterFreeze::Frozen(_) => return (context, frozen),
                    ClusterFreeze::Clear => {}
                    unreadable if i < places.own.len() => found = unreadable,
                    _ => {}
                }
            }
            (context, found)
        },
    ))
    .await
}

async fn verdict(selected: &crate::rollout::Selected, places: &Places) -> Verdict {
    let reads = read_all(selected, places).await;
    let windows = selected
        .env
        .environment
        .freeze
        .as_ref()
        .map(|f| f.windows.as_slice())
        .unwrap_or_default();
    judge(&reads, windows, Utc::now())
}

/// Before `deploy` or `promote` (`operation`) of `releases` reads or changes anything:
/// refused (exit 3) when the environment is frozen or its freeze cannot be read in
/// every cluster, unless overridden; then the override, for the run's audit.
pub async fn guard(
    selected: &crate::rollout::Selected,
    releases: &[crate::config::LoadedRelease],
    operation: &str,
    overriding: &FreezeOverride,
) -> Result<Option<String>> {
    let environment = &selected.env.environment.name;
    let verdict = releases_verdict(selected, releases).await;
    if verdict.is_open() {
        return Ok(None);
    }
    let text = verdict.text(environment);
    match &overriding.reason {
        Some(reason) => {
            let note = format!("{text}; overridden: {reason:?}");
            crate::output::eprint_line(&format!(
                "{operation} goes through the freeze (--override-freeze): {note}"
            ));
            Ok(Some(note))
        }
        None => Err(crate::Error::Refused(format!(
            "{operation} refused, nothing changed: {text}. `flotilla rollback` is allowed; \
             `flotilla unfreeze --env {environment}` ends a freeze, or rerun with \
             --override-freeze --reason \"…\" (recorded in the run's audit)"
        ))),
    }
}

/// Whether the environment is frozen for a run of `releases`.
async fn releases_verdict(
    selected: &crate::rollout::Selected,
    releases: &[crate::config::LoadedRelease],
) -> Verdict {
    let names: Vec<&str> = releases
        .iter()
        .map(|r| r.descriptor.metadata.namespace.as_str())
        .collect();
    verdict(selected, &Places::for_releases(selected, &names)).await
}

/// What `deploy --dry-run` and `promote --check`/`--dry-run` say of a freeze, asked as
/// [`guard`] asks: `None` when none would stop the real run; else the line saying the
/// real run would be refused (exit 3) or go through (`--override-freeze`), with who,
/// when and why. They change nothing, so they print it and exit as they would without
/// a freeze: a CI job that runs the dry run before an emergency override still runs.
pub async fn foresee(
    selected: &crate::rollout::Selected,
    releases: &[crate::config::LoadedRelease],
    operation: &str,
    overriding: &FreezeOverride,
) -> Option<String> {
    let verdict = releases_verdict(selected, releases).await;
    if verdict.is_open() {
        return None;
    }
    let text = verdict.text(&selected.env.environment.name);
    let line = match &overriding.reason {
        Some(reason) => format!(
            "{operation} would go through the freeze (--override-freeze): {text}; overridden: {reason:?}"
        ),
        None => format!("{operation} would be refused (exit 3), nothing changed: {text}"),
    };
    crate::output::eprint_line(&line);
    Some(line)
}

/// For `status` and `history` of a release in `namespace`: one stderr line when the
/// environment is frozen. Never fails the command.
pub async fn notice(selected: &crate::rollout::Selected, namespace: &str) {
    let verdict = verdict(selected, &Places::for_releases(selected, &[namespace])).await;
    // Only a freeze seen: a cluster that cannot be read is the read command's own
    // report (with its exit code), and a deploy refuses on it anyway.
    if matches!(verdict, Verdict::Frozen(_)) {
        crate::output::eprint_line(&format!(
            "freeze: {}",
            verdict.text(&selected.env.environment.name)
        ));
    }
}

/// `--until`: an RFC 3339 time, or a duration from `now`; in the future.
fn parse_until(text: &str, now: DateTime<Utc>) -> std::result::Result<DateTime<Utc>, String> {
    let until = match DateTime::parse_from_rfc3339(text.trim()) {
        Ok(time) => time.with_timezone(&Utc),
        Err(_) => {
            let duration = humantime::parse_duration(text.trim()).map_err(|err| {
                format!(
                    "--until {text:?}: neither an RFC 3339 time (2026-12-24T18:00:00Z) nor a duration (2h, 3d): {err}"
                )
            })?;
            chrono::Duration::from_std(duration)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| format!("--until {text:?}: too far away"))?
        }
    };
    if until <= now {
        return Err(format!(
            "--until {text:?} is not in the future (now is {})",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok(until)
}

pub async fn freeze(root: &Path, args: &FreezeOptions) -> Result<()> {
    if args.reason.trim().is_empty() {
        return Err(crate::Error::Reported(
            "freeze: --reason must not be empty: a refused deploy says it".into(),
        ));
    }
    let now = Utc::now();
    let until = args
        .until
        .as_deref()
        .map(|text| parse_until(text, now))
        .transpose()
        .map_err(crate::Error::Reported)?;
    let selected = crate::rollout::configure(root, &args.env)?.with_kubeconfig()?;
    let audit = crate::rollout::audit::collect(selected.repo.root());
    let freeze = Freeze {
        environment: selected.env.environment.name.clone(),
        reason: args.reason.trim().to_string(),
        user: crate::cluster::lock_user(),
        host: crate::cluster::lock_host(),
        ci_actor: audit.ci_actor,
        ci_job_url: audit.ci_job_url,
        since: now,
        until,
    };
    let namespaces = repo_namespaces(&selected)?;
    let written = futures::future::join_all(each_cluster(&selected).await.into_iter().map(
        |(context, handle)| {
            let (freeze, namespaces) = (&freeze, &namespaces);
            async move {
                let handle = match handle {
                    Ok(handle) => handle,
                    Err(err) => return (context, Err(err)),
                };
                for namespace in namespaces {
                    if let Err(err) = write_freeze(&handle, namespace, freeze).await {
                        return (context, Err(err));
                    }
                }
                (context, Ok(()))
            }
        },
    ))
    .await;
    finish(
        &written,
        &format!("{} {}", freeze.environment, freeze.describe()),
        "froze",
        "frozen",
    )
}

pub async fn unfreeze(root: &Path, args: &EnvSelection) -> Result<()> {
    let selected = crate::rollout::configure(root, args)?.with_kubeconfig()?;
    let namespaces = repo_namespaces(&selected)?;
    let name = &selected.env.environment.name;
    let removed = futures::future::join_all(each_cluster(&selected).await.into_iter().map(
        |(context, handle)| {
            let namespaces = &namespaces;
            async move {
                let handle = match handle {
                    Ok(handle) => handle,
                    Err(err) => return (context, Err(err)),
                };
                let mut kept = false;
                for namespace in namespaces {
                    match delete_freeze(&handle, namespace, name).await {
                        Ok(found) => kept |= found,
                        Err(err) => return (context, Err(err)),
                    }
                }
                (context, Ok(kept))
            }
        },
    ))
    .await;
    let kept = removed
        .iter()
        .filter(|(_, r)| matches!(r, Ok(true)))
        .count();
    let removed: Vec<_> = removed
        .into_iter()
        .map(|(context, done)| (context, done.map(drop)))
        .collect();
    let what = if kept == 0 {
        format!("{name} was not frozen")
    } else {
        format!("{name} unfrozen")
    };
    finish(&removed, &what, "unfroze", "unfrozen")?;
    // A window of the environment file still holds.
    let verdict = verdict(
        &selected,
        &Places {
            own: namespaces,
            others: Vec::new(),
        },
    )
    .await;
    if let Verdict::Frozen(_) = verdict {
        crate::output::eprint_line(&format!("freeze: {}", verdict.text(name)));
    }
    Ok(())
}

/// One line per cluster, then the outcome: every cluster done, or exit 3 naming the
/// clusters not done (the others keep what was done there).
fn finish(
    done: &[(
        String,
        std::result::Result<(), crate::cluster::ClusterError>,
    )],
    what: &str,
    verb: &str,
    state: &str,
) -> Result<()> {
    let failed: Vec<String> = done
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    let ok: Vec<&str> = done
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(c, _)| c.as_str())
        .collect();
    if failed.is_empty() {
        crate::output::print(&format!(
            "{what} ({} clusters: {})\n",
            ok.len(),
            ok.join(", ")
        ))?;
        return Ok(());
    }
    Err(crate::Error::Refused(format!(
        "{verb} {} of {} clusters ({}); not {state} in the others, rerun once they answer: {}",
        ok.len(),
        done.len(),
        if ok.is_empty() {
            "none".to_string()
        } else {
            ok.join(", ")
        },
        failed.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn until_is_a_time_or_a_duration_in_the_future() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 7, 12, 0, 0)
            .single()
            .unwrap_or_else(|| panic!("time"));
        assert_eq!(
            parse_until("2h", now).map(|t| t.to_rfc3339()),
            Ok("2026-12-07T14:00:00+00:00".to_string())
        );
        assert_eq!(
            parse_until("2026-12-24T18:00:00+01:00", now).map(|t| t.to_rfc3339()),
            Ok("2026-12-24T17:00:00+00:00".to_string())
        );
        assert!(parse_until("2026-12-01T00:00:00Z", now)
            .err()
            .unwrap_or_default()
            .contains("is not in the future"));
        assert!(parse_until("tomorrow", now)
            .err()
            .unwrap_or_default()
            .starts_with("--until \"tomorrow\": neither an RFC 3339 time"));
    }
}
