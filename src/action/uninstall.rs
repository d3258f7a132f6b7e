//! `flotilla uninstall RELEASE --env E [--cluster CTX]`: delete the objects flotilla owns
//! for the release, then its records and its lock.

use super::one_cluster::{self, OneClusterSelection};
use crate::cluster::Event;
use crate::ops::{self, RunOptions};
use crate::Result;
use std::path::Path;
use std::sync::Arc;

pub type UninstallOptions = OneClusterSelection;

pub async fn run(root: &Path, args: &UninstallOptions) -> Result<()> {
    let target = one_cluster::open(root, args).await?;
    let mut opts = RunOptions::new(target.env.environment.rollout.timeout);
    opts.progress = Arc::new(|context, event| match event {
        Event::Pruned(id) => eprintln!("[{context}] deleted {id}"),
        Event::Applied(_) | Event::KeptLive(_) | Event::Ready(_) | Event::Waiting { .. } => {}
    });
    let deleted = ops::uninstall(&target.handle, target.namespace(), target.name(), &opts).await?;
    crate::output::print(&format!(
        "uninstalled {} from {}: {} objects deleted",
        target.name(),
        target.cluster.context,
        deleted.len()
    ))?;
    Ok(())
}
