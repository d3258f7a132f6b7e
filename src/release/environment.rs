//! One release's records in every cluster of an environment, read together: the state
//! of each deployment id in the environment, and the one target a plain `rollback`
//! goes to. The rule is decided here once for the whole environment, never per
//! cluster, so that every cluster goes back to the same release (docs/design.md,
//! "Rollback").

use super::{History, ReleaseRecord, Status};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What a deployment id became in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentState {
    /// Every targeted cluster recorded it healthy, and nothing undid it.
    Complete,
    /// A cluster recorded it failed (and nothing undid it).
    Failed,
    /// Killed or halted part-way: a targeted cluster never recorded it healthy.
    Partial,
    /// Stopped as asked after a wave (`deploy --until-wave`), every cluster of that wave
    /// and those before it healthy: `deploy --resume` goes on with the next wave. Not
    /// complete, so never what a plain `rollback` goes to.
    PartialByRequest,
    /// Undone, by the automatic restore of its run or by a later `rollback`.
    RolledBack,
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeploymentState::Complete => "complete",
            DeploymentState::Failed => "failed",
            DeploymentState::Partial => "partial",
            DeploymentState::PartialByRequest => "partial-by-request",
            DeploymentState::RolledBack => "rolled back",
        })
    }
}

/// Where a paused deployment goes on (`deploy --resume`).
#[derive(Debug)]
pub struct ResumePoint<'a> {
    /// The last wave it deployed.
    pub after_wave: u32,
    /// The clusters its run targeted.
    pub targets: Vec<String>,
    pub app_version: String,
    pub chart: super::ChartRef,
    /// Each cluster it deployed: what ran there before it, and its own revision.
    pub earlier: Vec<(&'a str, Option<&'a ReleaseRecord>, &'a ReleaseRecord)>,
}

/// The run the history limit prunes for ([`EnvironmentHistory::kept_by_history_limit`]).
#[derive(Debug, Clone)]
pub enum NextRun {
    /// A deploy (or a promotion) with this content digest per kube context; `resuming`
    /// the paused deployment it goes on with (`deploy --resume`).
    Deploy {
        digests: BTreeMap<String, String>,
        resuming: Option<String>,
    },
    /// A rollback to this deployment.
    Rollback(String),
}

/// What a `rollback` goes to: the deployment, and each cluster's revision of it.
#[derive(Debug)]
pub struct RollbackRevisions<'a> {
    pub target: &'a str,
    /// By kube context, in the order the clusters were given.
    pub revisions: Vec<(&'a str, &'a ReleaseRecord)>,
}

/// Why a `rollback` changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum NoRollback {
    /// No `--to`, and no earlier complete deployment to go back to.
    NoTarget {
        /// Every deployment with its state, newest first.
        deployments: String,
    },
    /// Clusters that never ran the target healthy, each as `context: why`.
    NeverRan {
        target: String,
        missing: Vec<String>,
    },
}

/// The histories of one release in the clusters of an environment (those a command
/// could read), by kube context.
pub struct EnvironmentHistory<'a> {
    clusters: Vec<(&'a str, &'a History)>,
}

impl<'a> EnvironmentHistory<'a> {
    pub fn new(clusters: impl IntoIterator<Item = (&'a str, &'a History)>) -> Self {
        EnvironmentHistory {
            clusters: clusters.into_iter().collect(),
        }
    }

    /// The records a deploy of `id` wrote (not the restores made under its run id).
    fn deploys_of<'s>(
        &'s self,
        id: &'s str,
    ) -> impl Iterator<Item = (&'a str, &'a ReleaseRecord)> + 's {
        self.clusters.iter().flat_map(move |(context, history)| {
            history
                .iter()
                .filter(move |r| r.deployment_id == id && r.is_deploy())
                .map(move |r| (*context, r))
        })
    }

    /// Every deployment id a deploy recorded here, newest first. The order is each
    /// cluster's revision order, merged: a cluster's revisions are numbered by the
    /// writers holding its lease, one after another, while the `created` times come
    /// from the writers' clocks, and one runner with a skewed clock would make a
    /// rollback go two steps back. The clocks only break ties between deployments no
    /// cluster ran both of (oldest first by the first record written, then by id).
    pub fn deployments(&self) -> Vec<&'a str> {
        struct Node<'a> {
            id: &'a str,
            first: chrono::DateTime<chrono::Utc>,
            /// Deployments some cluster recorded before this one.
            after: BTreeSet<&'a str>,
        }
        let mut nodes: Vec<Node<'a>> = Vec::new();
        for (_, history) in &self.clusters {
            let mut earlier: Vec<&'a str> = Vec::new();
            for record in history.iter().filter(|r| r.is_deploy()) {
                let id = record.deployment_id.as_str();
                let index = match nodes.iter().position(|n| n.id == id) {
                    Some(index) => index,
                    None => {
                        nodes.push(Node {
                            id,
                            first: record.created,
                            after: BTreeSet::new(),
                        });
                        nodes.len() - 1
                    }
                };
                let node = &mut nodes[index];
                node.first = node.first.min(record.created);
                node.after
                    .extend(earlier.iter().copied().filter(|e| *e != id));
                if !earlier.contains(&id) {
                    earlier.push(id);
                }
            }
        }
        // Oldest first: among those whose predecessors are all placed, the one written
        // first. Per-cluster orders cannot disagree (every writer holds the lease of
        // every cluster of its run before its first record); if records ever did, what
        // is left is placed by time alone.
        let mut oldest_first: Vec<&'a str> = Vec::with_capacity(nodes.len());
        while oldest_first.len() < nodes.len() {
            let placed = |id: &&str| oldest_first.contains(id);
            let ready = nodes
                .iter()
                .filter(|n| !placed(&n.id))
                .filter(|n| n.after.iter().all(placed));
            let next = ready
                .min_by(|a, b| (a.first, a.id).cmp(&(b.first, b.id)))
                .or_else(|| {
                    nodes
                        .iter()
                        .filter(|n| !placed(&n.id))
                        .min_by(|a, b| (a.first, a.id).cmp(&(b.first, b.id)))
                });
            match next {
                Some(node) => oldest_first.push(node.id),
                None => break,
            }
        }
        oldest_first.reverse();
        oldest_first
    }

    /// The state of deployment `id`, or `None` when no deploy recorded it here.
    pub fn state(&self, id: &str) -> Option<DeploymentState> {
        let deploys: Vec<(&str, &ReleaseRecord)> = self.deploys_of(id).collect();
        if deploys.is_empty() {
            return None;
        }
        // Undone: a revision running its content (its deploy, or a restore of it) was
        // replaced by a rollback. A rollback never goes forward to what one undid.
        let undone = self.clusters.iter().any(|(_, h)| {
            h.iter()
                .any(|r| r.content_id() == id && r.status == Status::RolledBack)
        });
        if undone {
            return Some(DeploymentState::RolledBack);
        }
        // The clusters its run targeted; records written before `targets` existed: every
        // cluster read here.
        let mut targets: Vec<&str> = deploys
            .iter()
            .flat_map(|(_, r)| r.targets.iter().map(String::as_str))
            .collect();
        if targets.is_empty() {
            targets = self.clusters.iter().map(|(c, _)| *c).collect();
        }
        let healthy_in = |context: &str| {
            deploys.iter().any(|(c, r)| {
                *c == context
                    && matches!(
                        r.status,
                        Status::Deployed | Status::Superseded | Status::Uninstalled
                    )
            })
        };
        // A target this command could not read is not held against it.
        let known = |context: &str| self.clusters.iter().any(|(c, _)| *c == context);
        if targets.iter().filter(|t| known(t)).all(|t| healthy_in(t)) {
            Some(DeploymentState::Complete)
        } else if deploys.iter().any(|(_, r)| r.status == Status::Failed) {
            Some(DeploymentState::Failed)
        } else if deploys
            .iter()
            .filter_map(|(_, r)| r.until_wave.as_ref())
            .max_by_key(|u| u.wave)
            .is_some_and(|u| {
                u.clusters
                    .iter()
                    .filter(|c| known(c))
                    .all(|c| healthy_in(c))
            })
        {
            Some(DeploymentState::PartialByRequest)
        } else {
            Some(DeploymentState::Partial)
        }
    }

    /// The target a plain `rollback` would pick if each cluster ran what `runs` says
    /// (by kube context: the deployment whose content it runs, and that content's
    /// digest) and the deployments `undone` were rolled back: the newest complete
    /// deployment that is not what every cluster runs, and whose content is not what
    /// every cluster runs (a CI re-run of the same commit).
    fn target_if<'r>(
        &self,
        runs: impl Fn(&str, &'a History) -> Option<(&'r str, &'r str)>,
        undone: &[&str],
    ) -> Option<&'a str> {
        self.deployments()
            .into_iter()
            .find(|id| self.passed_over(id, &runs, undone).is_none())
    }

    /// Why [`Self::target_if`] passes over deployment `id`, in words; `None`: it is a
    /// target.
    fn passed_over<'r>(
        &self,
        id: &str,
        runs: &impl Fn(&str, &'a History) -> Option<(&'r str, &'r str)>,
        undone: &[&str],
    ) -> Option<&'static str> {
        let everyone_runs = || {
            self.clusters
                .iter()
                .all(|(c, h)| runs(c, h).is_some_and(|(content, _)| content == id))
        };
        let same_content = || {
            self.clusters
                .iter()
                .all(|(c, h)| match (runs(c, h), h.revision_of(id)) {
                    (Some((_, now)), Some(then)) => !then.digest.is_empty() && then.digest == now,
                    _ => false,
                })
        };
        if undone.contains(&id) {
            Some("undone")
        } else if self.state(id) != Some(DeploymentState::Complete) {
            Some("not complete")
        } else if everyone_runs() {
            Some("what every cluster runs now")
        } else if same_content() {
            Some("the same content as what runs now")
        } else {
            None
        }
    }

    /// The deployment a plain `rollback` goes to: the newest complete one that is not
    /// already what every cluster runs healthy, skipping rolled-back ones and ones whose
    /// content equals what runs now. `None`: there is nothing to go back to.
    pub fn rollback_target(&self) -> Option<&'a str> {
        self.target_if(
            |_, h| h.runs_now().map(|r| (r.content_id(), r.digest.as_str())),
            &[],
        )
    }

    /// The deployments whose records the history limit keeps in every cluster during
    /// the `next` run: whatever its outcome, what a `rollback` may go to afterwards.
    /// That is today's target, what runs now anywhere, and the target once the run is
    /// over: when it failed, every cluster back on its deployed revision; when it
    /// succeeded, every cluster on the deploy's content, or on the rollback's target
    /// with what ran before undone. One cluster's records cannot tell these (a
    /// deployment paused or failed elsewhere is no target), and pruning by one
    /// cluster's view deleted the environment's target.
    pub fn kept_by_history_limit(&self, next: &NextRun) -> Vec<String> {
        // What a failed run puts each cluster back on: its deployed revision, or for a
        // resumed deployment, what ran before the deployment's first part.
        let resuming = match next {
            NextRun::Deploy { resuming, .. } => resuming.as_deref(),
            NextRun::Rollback(_) => None,
        };
        let put_back = |h: &'a History| -> Option<&'a ReleaseRecord> {
            let deployed = h.deployed()?;
            if Some(deployed.content_id()) != resuming {
                return Some(deployed);
            }
            h.iter().rev().find(|r| {
                r.revision < deployed.revision
                    && r.status.was_healthy()
                    && Some(r.content_id()) != resuming
            })
        };
        let running: Vec<&str> = self
            .clusters
            .iter()
            .flat_map(|(_, h)| {
                h.runs_now()
                    .into_iter()
                    .chain(h.deployed())
                    .chain(put_back(h))
            })
            .map(ReleaseRecord::content_id)
            .collect();
        let mut keep: Vec<&str> = running.clone();
        keep.extend(self.rollback_target());
        keep.extend(self.target_if(
            |_, h| put_back(h).map(|r| (r.content_id(), r.digest.as_str())),
            &[],
        ));
        match next {
            NextRun::Deploy { digests, .. } => {
                keep.extend(self.target_if(|c, _| digests.get(c).map(|d| ("", d.as_str())), &[]))
            }
            NextRun::Rollback(to) => {
                keep.push(to);
                let undone: Vec<&str> = running.iter().copied().filter(|r| r != to).collect();
                keep.extend(self.target_if(
                    |_, h| h.revision_of(to).map(|r| (to.as_str(), r.digest.as_str())),
                    &undone,
                ));
            }
        }
        let mut keep: Vec<String> = keep.into_iter().map(str::to_owned).collect();
        keep.sort();
        keep.dedup();
        keep
    }

    /// What `rollback` does here: the one target for the environment (`to`, from
    /// `--to ID`, else [`Self::rollback_target`]), then each cluster's own revision of
    /// it. Refused as a whole, with nothing to change, when there is no target or when
    /// a cluster never ran it healthy: one command must never leave the environment on
    /// two releases.
    pub fn rollback_revisions(
        &self,
        to: Option<&'a str>,
    ) -> Result<RollbackRevisions<'a>, NoRollback> {
        let target = match to {
            Some(id) => id,
            None => self.rollback_target().ok_or_else(|| NoRollback::NoTarget {
                deployments: self.summary_for_rollback(),
            })?,
        };
        let mut revisions = Vec::new();
        let mut missing = Vec::new();
        for (context, history) in &self.clusters {
            match history.revision_of(target) {
                Some(record) => revisions.push((*context, record)),
                None => missing.push(format!(
                    "{context}: never ran deployment {target} healthy (it has: {})",
                    history.summary()
                )),
            }
        }
        if missing.is_empty() {
            Ok(RollbackRevisions { target, revisions })
        } else {
            Err(NoRollback::NeverRan {
                target: target.to_owned(),
                missing,
            })
        }
    }

    /// Where `deploy --resume id` goes on: `id` must be partial-by-request and nothing
    /// may have been recorded since it began in any cluster. Otherwise why not.
    pub fn resume_point(&self, id: &str) -> Result<ResumePoint<'a>, String> {
        match self.state(id) {
            Some(DeploymentState::PartialByRequest) => {}
            None => {
                return Err(format!(
                    "no cluster recorded deployment {id} of this release in this environment (its deployments: {})",
                    self.summary()
                ))
            }
            Some(state) => {
                return Err(format!(
                    "deployment {id} is {state}, not partial-by-request: only a deploy stopped by --until-wave goes on"
                ))
            }
        }
        let deploys: Vec<(&'a str, &'a ReleaseRecord)> = self.deploys_of(id).collect();
        let until = deploys
            .iter()
            .filter_map(|(_, r)| r.until_wave.as_ref())
            .max_by_key(|u| u.wave);
        let (Some(until), Some((_, first))) =
            (until, deploys.iter().min_by_key(|(_, r)| r.created))
        else {
            return Err(format!("deployment {id} has no record of where it stopped"));
        };
        for (context, history) in &self.clusters {
            if let Some(latest) = history.latest() {
                if latest.deployment_id != id && latest.created > first.created {
                    return Err(format!(
                        "cluster `{context}` recorded revision {} (deployment {}, {}) after deployment {id} began: something else was deployed since; deploy anew instead",
                        latest.revision, latest.deployment_id, latest.status
                    ));
                }
            }
        }
        let earlier = deploys
            .iter()
            .filter(|(c, r)| until.clusters.iter().any(|u| u == c) && r.status.was_healthy())
            .filter_map(|(context, record)| {
                let history = self.clusters.iter().find(|(c, _)| c == context)?.1;
                let before = history
                    .iter()
                    .rev()
                    .find(|r| r.revision < record.revision && r.status.was_healthy());
                Some((*context, before, *record))
            })
            .collect();
        Ok(ResumePoint {
            after_wave: until.wave,
            targets: first.targets.clone(),
            app_version: first.app_version.clone(),
            chart: first.chart.clone(),
            earlier,
        })
    }

    /// Every deployment id with its state, newest first: what an error shows when there
    /// is no target.
    pub fn summary(&self) -> String {
        self.summary_with(|_| None)
    }

    /// [`Self::summary`], a complete deployment that a plain `rollback` passes over
    /// saying why (`complete (the same content as what runs now)`): the on-call
    /// engineer told there is nothing to go back to sees why a complete one is not it.
    fn summary_for_rollback(&self) -> String {
        let runs =
            |_: &str, h: &'a History| h.runs_now().map(|r| (r.content_id(), r.digest.as_str()));
        self.summary_with(|id| {
            (self.state(id) == Some(DeploymentState::Complete))
                .then(|| self.passed_over(id, &runs, &[]))
                .flatten()
        })
    }

    fn summary_with(&self, note: impl Fn(&str) -> Option<&'static str>) -> String {
        let lines: Vec<String> = self
            .deployments()
            .into_iter()
            .map(|id| {
                let state = self.state(id).map_or("-".into(), |s| s.to_string());
                match note(id) {
                    Some(why) => format!("{id} {state} ({why})"),
                    None => format!("{id} {state}"),
                }
            })
            .collect();
        if lines.is_empty() {
            "no deployments".into()
        } else {
            lines.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    //! The rollback target on record fixtures: each incident of docs/design.md
    //! ("Rollback") as the records four clusters would hold after it.
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::Operation;
    use Status::*;

    const CLUSTERS: [&str; 4] = ["eu", "us", "paris", "asia"];

    /// Builds four clusters' histories from per-cluster steps.
    struct Fleet {
        histories: Vec<Vec<ReleaseRecord>>,
        clock: i64,
    }

    impl Fleet {
        fn new() -> Fleet {
            Fleet {
                histories: vec![Vec::new(); CLUSTERS.len()],
                clock: 0,
            }
        }

        fn push(
            &mut self,
            cluster: usize,
            id: &str,
            status: Status,
            digest: &str,
        ) -> &mut ReleaseRecord {
            self.clock += 1;
            let history = &mut self.histories[cluster];
            let mut r = record(history.len() as u32 + 1, id, status);
            r.created = chrono::DateTime::from_timestamp(self.clock, 0).unwrap_or_default();
            r.digest = digest.into();
            r.targets = CLUSTERS.iter().map(|c| c.to_string()).collect();
            history.push(r);
            history.last_mut().unwrap()
        }

        /// Marks what is deployed in `cluster` as `now`.
        fn replace(&mut self, cluster: usize, now: Status) {
            for r in self.histories[cluster]
                .iter_mut()
                .filter(|r| r.status == Deployed)
            {
                r.status = now;
            }
        }

        /// A deploy of `id` that succeeded in the given clusters.
        fn deploy(&mut self, id: &str, clusters: &[usize]) {
            for &c in clusters {
                self.replace(c, Superseded);
                self.push(c, id, Deployed, &format!("content-{id}"));
            }
        }

        /// A deploy of `id` stopped after wave 0 (`--until-wave 0`), whose clusters are
        /// `upto`, healthy in `clusters`.
        fn deploy_paused(&mut self, id: &str, clusters: &[usize], upto: &[&str]) {
            for &c in clusters {
                self.replace(c, Superseded);
                let r = self.push(c, id, Deployed, &format!("content-{id}"));
                r.until_wave = Some(crate::release::UntilWave {
                    wave: 0,
                    clusters: upto.iter().map(|c| c.to_string()).collect(),
                });
            }
        }

        /// A deploy of `id` with content equal to `of`'s.
        fn deploy_same_as(&mut self, id: &str, of: &str) {
            for c in 0..CLUSTERS.len() {
                self.replace(c, Superseded);
                self.push(c, id, Deployed, &format!("content-{of}"));
            }
        }

        /// A restore to `content` made by run `run` in every cluster: what it replaces
        /// is rolled back, unless it runs that same content.
        fn restore(&mut self, run: &str, content: &str) {
            for c in 0..CLUSTERS.len() {
                for r in self.histories[c]
                    .iter_mut()
                    .filter(|r| r.status == Deployed)
                {
                    r.status = if r.content_id() == content {
                        Superseded
                    } else {
                        RolledBack
                    };
                }
                let r = self.push(c, run, Deployed, &format!("content-{content}"));
                r.operation = Operation::Rollback;
                r.restores = Some(content.into());
            }
        }

        fn histories(&self) -> Vec<History> {
            self.histories.iter().cloned().map(History::new).collect()
        }
    }

    fn target(fleet: &Fleet) -> Option<String> {
        let histories = fleet.histories();
        let env = EnvironmentHistory::new(CLUSTERS.iter().copied().zip(histories.iter()));
        env.rollback_target().map(str::to_owned)
    }

    fn state(fleet: &Fleet, id: &str) -> Option<DeploymentState> {
        let histories = fleet.histories();
        let env = EnvironmentHistory::new(CLUSTERS.iter().copied().zip(histories.iter()));
        env.state(id)
    }

    fn all() -> Vec<usize> {
        (0..CLUSTERS.len()).collect()
    }

    #[test]
    fn after_a_clean_deploy_the_one_before_then_once_more() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        f.deploy("C", &all());
        assert_eq!(state(&f, "C"), Some(DeploymentState::Complete));
        assert_eq!(target(&f).as_deref(), Some("B"));
        f.restore("R1", "B");
        assert_eq!(state(&f, "C"), Some(DeploymentState::RolledBack));
        assert_eq!(
            target(&f).as_deref(),
            Some("A"),
            "a second rollback steps back once more"
        );
        f.restore("R2", "A");
        assert_eq!(target(&f), None, "nothing before A");
    }

    /// A runner whose clock is an hour behind deploys C after B: its records say C is
    /// older than B. The order is the clusters' revision order, so the rollback goes
    /// to B, not two steps back to A.
    #[test]
    fn a_skewed_clock_does_not_reorder_deployments() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        f.deploy("C", &all());
        for history in &mut f.histories {
            if let Some(c) = history.iter_mut().find(|r| r.deployment_id == "C") {
                c.created -= chrono::Duration::hours(1);
            }
        }
        let histories = f.histories();
        let env = EnvironmentHistory::new(CLUSTERS.iter().copied().zip(histories.iter()));
        assert_eq!(env.deployments(), ["C", "B", "A"]);
        assert_eq!(target(&f).as_deref(), Some("B"));
    }

    /// Deployments no cluster ran both of (`--clusters` runs) are ordered by time.
    #[test]
    fn deployments_of_disjoint_clusters_are_ordered_by_time() {
        let mut f = Fleet::new();
        f.deploy("A", &[0]);
        f.deploy("B", &[1]);
        f.deploy("C", &[0]);
        let histories = f.histories();
        let env = EnvironmentHistory::new(CLUSTERS.iter().copied().zip(histories.iter()));
        assert_eq!(env.deployments(), ["C", "B", "A"]);
    }

    #[test]
    fn after_a_halted_deploy_what_ran_before_it() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        // Wave 0 (eu, us) on C; paris failed; asia never started.
        f.deploy("C", &[0, 1]);
        f.push(2, "C", Failed, "content-C");
        assert_eq!(state(&f, "C"), Some(DeploymentState::Failed));
        assert_eq!(
            target(&f).as_deref(),
            Some("B"),
            "not A, older than what ran before"
        );
    }

    #[test]
    fn after_an_automatic_rollback_the_release_before_the_one_restored() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        // D healthy in three clusters, failed in the fourth; the run restored all to B.
        f.deploy("D", &[0, 1, 2]);
        f.push(3, "D", Failed, "content-D");
        f.restore("D", "B");
        assert_eq!(state(&f, "D"), Some(DeploymentState::RolledBack));
        assert_eq!(
            target(&f).as_deref(),
            Some("A"),
            "every cluster runs B: not D, which just failed, and not B again"
        );
    }

    #[test]
    fn a_deploy_paused_after_a_wave_is_partial_by_request_until_resumed() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        // `--until-wave 0`: eu and us are wave 0.
        f.deploy_paused("C", &[0, 1], &["eu", "us"]);
        assert_eq!(state(&f, "C"), Some(DeploymentState::PartialByRequest));
        assert_eq!(
            target(&f).as_deref(),
            Some("B"),
            "like any other unfinished deploy: back to what ran before it"
        );
        // Killed before the whole of wave 0 was healthy: partial, not by request.
        let mut killed = Fleet::new();
        killed.deploy("B", &all());
        killed.deploy_paused("C", &[0], &["eu", "us"]);
        killed.push(1, "C", Pending, "content-C");
        assert_eq!(state(&killed, "C"), Some(DeploymentState::Partial));
        // `--resume C`: the other waves record it too, and it is complete.
        f.deploy("C", &[2, 3]);
        assert_eq!(state(&f, "C"), Some(DeploymentState::Complete));
        assert_eq!(target(&f).as_deref(), Some("B"));
    }

    /// A cluster a resume finds changed already: context, revision before, revision.
    type Earlier = (String, Option<u32>, u32);

    #[test]
    fn resume_goes_on_only_with_a_paused_deployment_nothing_came_after() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        f.deploy_paused("C", &[0, 1], &["eu", "us"]);
        let resume = |f: &Fleet, id: &str| -> Result<(u32, Vec<Earlier>), String> {
            let histories = f.histories();
            let env = EnvironmentHistory::new(CLUSTERS.iter().copied().zip(histories.iter()));
            env.resume_point(id).map(|p| {
                let earlier = p
                    .earlier
                    .iter()
                    .map(|(c, before, r)| ((*c).to_owned(), before.map(|b| b.revision), r.revision))
                    .collect();
                (p.after_wave, earlier)
            })
        };
        assert_eq!(
            resume(&f, "C"),
            Ok((
                0,
                vec![("eu".into(), Some(2), 3), ("us".into(), Some(2), 3)]
            ))
        );
        let err = resume(&f, "B").unwrap_err();
        assert!(
            err.contains("deployment B is complete, not partial-by-request"),
            "{err}"
        );
        let err = resume(&f, "Z").unwrap_err();
        assert!(err.contains("no cluster recorded deployment Z"), "{err}");
        // Another deploy since, even in a cluster C never reached.
        f.push(3, "D", Failed, "content-D");
        let err = resume(&f, "C").unwrap_err();
        assert!(
            err.contains("cluster `asia` recorded revision 3 (deployment D, failed) after deployment C began"),
            "{err}"
        );
    }

    #[test]
    fn after_a_killed_deploy_what_ran_before_it() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        // Killed: two clusters have C pending (B still recorded deployed under it).
        f.push(0, "C", Pending, "content-C");
        f.push(1, "C", Pending, "content-C");
        assert_eq!(state(&f, "C"), Some(DeploymentState::Partial));
        assert_eq!(target(&f).as_deref(), Some("B"));
    }

    #[test]
    fn a_ci_rerun_of_identical_content_is_no_target() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        f.deploy_same_as("B2", "B");
        assert_eq!(target(&f).as_deref(), Some("A"));
    }

    #[test]
    fn no_target_says_why_each_complete_deployment_is_passed_over() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy_same_as("A2", "A");
        let histories = f.histories();
        let env = EnvironmentHistory::new(CLUSTERS.iter().copied().zip(histories.iter()));
        match env.rollback_revisions(None) {
            Err(NoRollback::NoTarget { deployments }) => assert_eq!(
                deployments,
                "A2 complete (what every cluster runs now), \
                 A complete (the same content as what runs now)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clusters_that_disagree_go_to_one_target() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &all());
        // A later deploy limited to two clusters (--clusters eu,us) is complete there.
        for c in [0, 1] {
            f.replace(c, Superseded);
            let r = f.push(c, "C", Deployed, "content-C");
            r.targets = vec!["eu".into(), "us".into()];
        }
        assert_eq!(state(&f, "C"), Some(DeploymentState::Complete));
        // Not every cluster runs C: C is the target, and paris and asia never ran it.
        assert_eq!(target(&f).as_deref(), Some("C"));
    }

    #[test]
    fn records_without_targets_count_every_cluster_read() {
        let mut f = Fleet::new();
        f.deploy("A", &all());
        f.deploy("B", &[0, 1, 2]);
        for history in &mut f.histories {
            for r in history.iter_mut() {
                r.targets.clear();
            }
        }
        assert_eq!(state(&f, "B"), Some(DeploymentState::Partial));
        assert_eq!(state(&f, "A"), Some(DeploymentState::Complete));
        assert_eq!(state(&f, "Z"), None);
    }
}
