//! What a soak looks at in one cluster: the release's pods (restarts, a container stuck
//! for a reason that fails a rollout) and its Deployments (availability), in one list of
//! each by the release's labels. Judging two samples is the operations' part
//! (`ops::soak`).

use super::wait::fatal_container;
use super::{labels, ClusterError, ClusterHandle};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

/// One look at a release in a cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoakSample {
    pub pods: Vec<PodSample>,
    pub deployments: Vec<DeploymentSample>,
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
pub struct DeploymentSample {
    pub name: String,
    /// Why it is not available (its `Available` condition is `False`), if so.
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

impl DeploymentSample {
    pub fn of(d: &Deployment) -> DeploymentSample {
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
        DeploymentSample {
            name: d.name_any(),
            unavailable,
        }
    }
}

impl ClusterHandle {
    /// The release's pods and Deployments in `namespace`, as they are now.
    pub async fn soak_sample(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<SoakSample, ClusterError> {
        let client = self.client();
        let pods = Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&labels::pod_selector(release)))
            .await
            .map_err(|e| self.error("list", &format!("pods of `{release}`"), e))?;
        let deployments = Api::<Deployment>::namespaced(client, namespace)
            .list(&ListParams::default().labels(&labels::selector(release)))
            .await
            .map_err(|e| self.error("list", &format!("Deployments of `{release}`"), e))?;
        Ok(SoakSample {
            pods: pods.items.iter().map(PodSample::of).collect(),
            deployments: deployments.items.iter().map(DeploymentSample::of).collect(),
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
            DeploymentSample::of(&with("False")).unavailable.as_deref(),
            Some("MinimumReplicasUnavailable: Deployment does not have minimum availability.")
        );
        assert_eq!(DeploymentSample::of(&with("True")).unavailable, None);
    }
}
