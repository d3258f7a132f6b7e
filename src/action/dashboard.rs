//! `flotilla dashboard [--env E] [--listen ADDR] [--token-env VAR]`: the fleet page,
//! served read-only until stopped. Listening beyond loopback without a token is
//! refused before anything is served: the page names every cluster and deployment.

use crate::dashboard::{self, DashboardOptions};
use crate::Result;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct DashboardRequest {
    pub env: Option<String>,
    pub listen: SocketAddr,
    pub token_env: Option<String>,
    pub interval: Duration,
    pub kubeconfig: Option<PathBuf>,
}

pub async fn run(root: &Path, request: DashboardRequest) -> Result<()> {
    let token = match &request.token_env {
        Some(var) => match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => Some(token.trim().to_owned()),
            _ => {
                return Err(crate::Error::Reported(format!(
                    "--token-env {var}: the variable {var} is not set or empty; it must hold the bearer token"
                )))
            }
        },
        None => None,
    };
    if token.is_none() && dashboard::serve::needs_token(&request.listen) {
        return Err(crate::Error::Reported(format!(
            "--listen {}: beyond loopback the dashboard requires a bearer token (--token-env VAR); it shows every cluster and deployment",
            request.listen
        )));
    }
    // Checked before serving: a typo in --env or a broken repository is the command's
    // error (exit 2), not a page.
    let repo = crate::config::Repo::open(root)?;
    if let Some(env) = &request.env {
        repo.environment(env)?;
    }
    if let Some(token) = &token {
        crate::redact::register(token);
    }
    dashboard::serve(DashboardOptions {
        root: root.to_owned(),
        env: request.env,
        listen: request.listen,
        token,
        interval: request.interval.max(Duration::from_secs(1)),
        kubeconfig: request.kubeconfig,
    })
    .await
}
