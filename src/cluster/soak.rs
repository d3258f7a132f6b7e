//! What a soak looks at in one cluster: the release's pods (restarts, a container stuck
//! for a reason that fails a rollout) and its workloads (availability of its
//! Deployments, StatefulSets and DaemonSets), in one list of each by the release's
//! labels and one of the namespace's pods (kept: those the workloads select), made at
//! once. Judging two samples is the operations' part (`ops::soak`).

use super::wait::fatal_container;
use super::{labels, ClusterError, ClusterHandle};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;

/// One look at a release in a cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoakSample {
    pub pods: Vec<PodSample>,
    pub workloads: Vec<WorkloadSample>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub name: String,
    /// Restarts of all its containers, init containers included.
    pub restarts: u32,
    /// A container waiting for a reason that fails a rollout (`CrashLoopBackOff`, ...).
    pub stuck: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSample {
    /// `Deployment`, `StatefulSet`, `DaemonSet`.
    pub kind: &'static str,
    pub name: String,
    /// Why it is not available, if so: a Deployment's `Available` condition is
    /// `False`; fewer of a StatefulSet's replicas or of a DaemonSet's scheduled pods are
    /// available than it wants (neither has a condition that says so).
    pub unavailable: Option<String>,
}

impl PodSample {
    pub fn of(pod: &Pod) -> PodSample {
        let status = pod.status.as_ref();
        let restarts = status
            .into_iter()
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
            .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
            .sum();
        let stuck =
            fatal_container(pod)
                .filter(|s| !s.transient)
                .map(|s| match s.message.as_str() {
                    "" => format!("container {}: {}", s.container, s.reason),
                    message => format!("container {}: {} ({message})", s.container, s.reason),
                });
        PodSample {
            name: pod.name_any(),
            restarts,
            stuck,
        }
    }
}

impl WorkloadSample {
    pub fn of_deployment(d: &Deployment) -> WorkloadSample {
        let unavailable = d
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .find(|c| {
                c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("False")
            })
            .map(|c| {
                let why = c.reason.clone().unwrap_or_else(|| "not available".into());
                match c.message.as_deref() {
                    Some(m) if !m.is_empty() => format!("{why}: {m}"),
                    _ => why,
                }
            });
        WorkloadSample {
            kind: "Deployment",
            name: d.name_any(),
            unavailable,
        }
    }

    pub fn of_stateful_set(s: &StatefulSet) -> WorkloadSample {
        let wanted = s.spec.replicas.unwrap_or(1);
        let available = s.status.as_ref().map_or(0, |st| {
            st.available_replicas
                .unwrap_or(st.ready_replicas.unwrap_or(0))
        });
        WorkloadSample {
            kind: "StatefulSet",
            name: s.name_any(),
            unavailable: (available < wanted)
                .then(|| format!("{available} of {wanted} replicas available")),
        }
    }

    pub fn of_daemon_set(d: &DaemonSet) -> WorkloadSample {
        let (wanted, available) = d.status.as_ref().map_or((0, 0), |st| {
            (
                st.desired_number_scheduled,
                st.number_available.unwrap_or(0),
            )
        });
        WorkloadSample {
            kind: "DaemonSet",
            name: d.name_any(),
            unavailable: (available < wanted)
                .then(|| format!("{available} of {wanted} scheduled pods available")),
        }
    }
}

/// The release's workloads in a namespace and the pods they select.
pub struct ReleasePods {
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
}

impl ClusterHandle {
    /// The pods that `selectors` (the selectors of a release's workloads, by namespace,
    /// as the caller read them) select, as they are now: restarts, and a container
    /// stuck for a reason that fails a rollout. One list per namespace, at once, by one
    /// label selector that takes in the pods of every workload there
    /// (`labels::pods_selector`): the other pods of a shared namespace stay out.
    pub async fn release_pods(
        &self,
        release: &str,
        selectors: &BTreeMap<String, Vec<kube::core::Selector>>,
    ) -> Result<Vec<PodSample>, ClusterError> {
        let lists = selectors.iter().filter_map(|(namespace, selectors)| {
            let query = labels::pods_query(self.context(), namespace, selectors)?;
            let params = ListParams {
                label_selector: Some(query).filter(|q| !q.is_empty()),
                ..ListParams::default()
            };
            Some(async move {
                let pods = Api::<Pod>::namespaced(self.client(), namespace)
                    .list(&params)
                    .await
                    .map_err(|e| self.error("list", &format!("pods of `{release}`"), e))?;
                Ok::<_, ClusterError>(
                    pods.items
                        .into_iter()
                        .filter(|p| labels::selects(selectors, p.labels(), release))
                        .map(|p| PodSample::of(&p))
                        .collect::<Vec<_>>(),
                )
            })
        });
        let found = futures::future::try_join_all(lists).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The release's workloads in `namespace` (by its labels) and their pods: those
    /// their selectors select (pod templates carry no label of flotilla's), and pods
    /// that are objects of the release themselves (Helm hook and test Pods).
    /// `every_pod`: the namespace's pods are listed with the workloads, in the same
    /// round (a diagnosis, before the restore, where a round trip counts). Otherwise
    /// the workloads first, then only the pods their selectors take in
    /// ([`labels::pods_query`]) and the release's own: the soak samples every 2 s for
    /// minutes, in a namespace that may hold thousands of other pods.
    pub async fn release_workloads(
        &self,
        namespace: &str,
        release: &str,
        every_pod: bool,
    ) -> Result<ReleasePods, ClusterError> {
        let client = self.client();
        let owned = ListParams::default().labels(&labels::selector(release));
        let list =
            |what: &'static str| move |e| self.error("list", &format!("{what} of `{release}`"), e);
        let pods = |params: ListParams| {
            let client = client.clone();
            async move {
                Api::<Pod>::namespaced(client, namespace)
                    .list(&params)
                    .await
                    .map(|l| l.items)
                    .map_err(list("pods"))
            }
        };
        let workloads = async {
            futures::try_join!(
                async {
                    Api::<Deployment>::namespaced(client.clone(), namespace)
                        .list(&owned)
                        .await
                        .map_err(list("Deployments"))
                },
                async {
                    Api::<StatefulSet>::namespaced(client.clone(), namespace)
                        .list(&owned)
                        .await
                        .map_err(list("StatefulSets"))
                },
                async {
                    Api::<DaemonSet>::namespaced(client.clone(), namespace)
                        .list(&owned)
                        .await
                        .map_err(list("DaemonSets"))
                },
                async {
                    Api::<Job>::namespaced(client.clone(), namespace)
                        .list(&owned)
                        .await
                        .map_err(list("Jobs"))
                },
            )
        };
        let selectors_of = |(deployments, stateful_sets, daemon_sets, jobs): &(
            kube::core::ObjectList<Deployment>,
            kube::core::ObjectList<StatefulSet>,
            kube::core::ObjectList<DaemonSet>,
            kube::core::ObjectList<Job>,
        )| {
            labels::selectors(
                deployments
                    .items
                    .iter()
                    .map(|d| &d.spec.selector)
                    .chain(stateful_sets.items.iter().map(|s| &s.spec.selector))
                    .chain(daemon_sets.items.iter().map(|d| &d.spec.selector))
                    .chain(
                        jobs.items
                            .iter()
                            .filter_map(|j| j.spec.as_ref().and_then(|s| s.selector.as_ref())),
                    ),
            )
        };
        let (all, found, selectors) = if every_pod {
            let (all, found) = futures::try_join!(pods(ListParams::default()), workloads)?;
            let selectors = selectors_of(&found);
            (all, found, selectors)
        } else {
            let found = workloads.await?;
            let selectors = selectors_of(&found);
            let selected = async {
                match labels::pods_query(self.context(), namespace, &selectors) {
                    Some(query) => {
                        pods(ListParams {
                            label_selector: Some(query).filter(|q| !q.is_empty()),
                            ..ListParams::default()
                        })
                        .await
                    }
                    None => Ok(Vec::new()),
                }
            };
            let (mut all, own) = futures::try_join!(selected, pods(owned.clone()))?;
            for pod in own {
                if !all.iter().any(|p| p.metadata.uid == pod.metadata.uid) {
                    all.push(pod);
                }
            }
            (all, found, selectors)
        };
        let (deployments, stateful_sets, daemon_sets, _) = found;
        Ok(ReleasePods {
            pods: all
                .into_iter()
                .filter(|p| labels::selects(&selectors, p.labels(), release))
                .collect(),
            deployments: deployments.items,
            stateful_sets: stateful_sets.items,
            daemon_sets: daemon_sets.items,
        })
    }

    /// The release's pods and workloads in `namespace`, as they are now.
    pub async fn soak_sample(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<SoakSample, ClusterError> {
        let found = self.release_workloads(namespace, release, false).await?;
        let workloads = found
            .deployments
            .iter()
            .map(WorkloadSample::of_deployment)
            .chain(
                found
                    .stateful_sets
                    .iter()
                    .map(WorkloadSample::of_stateful_set),
            )
            .chain(found.daemon_sets.iter().map(WorkloadSample::of_daemon_set))
            .collect();
        Ok(SoakSample {
            pods: found.pods.iter().map(PodSample::of).collect(),
            workloads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crashlooping_container_and_its_restarts_are_seen_in_a_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "status": {"containerStatuses": [
                {"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}},
                {"name": "side", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                 "state": {"running": {}}}
            ]}
        }))
        .unwrap();
        let sample = PodSample::of(&pod);
        assert_eq!(sample.restarts, 5);
        assert_eq!(
            sample.stuck.as_deref(),
            Some("container web: CrashLoopBackOff (back-off 40s)")
        );
        let healthy: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-2"},
            "status": {"containerStatuses": [
                {"name": "web", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}}
            ]}
        }))
        .unwrap();
        assert_eq!(PodSample::of(&healthy).stuck, None);
    }

    #[test]
    fn a_deployment_is_unavailable_only_when_its_available_condition_is_false() {
        let with = |status: &str| -> Deployment {
            serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "status": {"conditions": [{"type": "Available", "status": status,
                    "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability."}]}
            }))
            .unwrap()
        };
        assert_eq!(
            WorkloadSample::of_deployment(&with("False"))
                .unavailable
                .as_deref(),
            Some("MinimumReplicasUnavailable: Deployment does not have minimum availability.")
        );
        assert_eq!(
            WorkloadSample::of_deployment(&with("True")).unavailable,
            None
        );
    }

    #[test]
    fn a_stateful_set_or_daemon_set_is_unavailable_when_fewer_pods_are_available_than_wanted() {
        let stateful = |replicas: Option<i32>, status: serde_json::Value| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": {"name": "db"},
                "spec": {"replicas": replicas, "selector": {}, "serviceName": "db",
                    "template": {}},
                "status": status
            }))
            .unwrap()
        };
        let sample = |s: &StatefulSet| WorkloadSample::of_stateful_set(s).unavailable;
        assert_eq!(
            sample(&stateful(
                Some(3),
                json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 2})
            ))
            .as_deref(),
            Some("2 of 3 replicas available")
        );
        assert_eq!(
            sample(&stateful(
                Some(3),
                json!({"replicas": 3, "availableReplicas": 3})
            )),
            None
        );
        // No `availableReplicas` (older servers): the ready ones; no `replicas`: one.
        assert_eq!(
            sample(&stateful(None, json!({"replicas": 1, "readyReplicas": 1}))),
            None
        );
        assert_eq!(
            sample(&stateful(None, json!({"replicas": 1}))).as_deref(),
            Some("0 of 1 replicas available")
        );
        assert_eq!(sample(&stateful(Some(0), json!({"replicas": 0}))), None);

        let daemon = |status: serde_json::Value| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent"},
                "spec": {"selector": {}, "template": {}},
                "status": status
            }))
            .unwrap()
        };
        let d = |status| WorkloadSample::of_daemon_set(&daemon(status)).unavailable;
        let base = |available: i32| {
            json!({"desiredNumberScheduled": 2, "numberAvailable": available,
            "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": available})
        };
        assert_eq!(
            d(base(1)).as_deref(),
            Some("1 of 2 scheduled pods available")
        );
        assert_eq!(d(base(2)), None);
    }
}
