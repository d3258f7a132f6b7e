//! Release records kept in each cluster: one Kubernetes Secret per revision, compressed,
//! labelled for listing; history limit.
//!
//! Must not: apply workload objects or decide what to deploy.
