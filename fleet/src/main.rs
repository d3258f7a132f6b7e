//! `flotilla-fleet`: the local test fleet (see fleet/README.md).

use anyhow::Context;
use clap::{Parser, Subcommand};
use flotilla_fleet::state::{self, State};
use flotilla_fleet::supervisor::{self, UpOutcome, UpRequest};
use flotilla_fleet::FleetError;
use std::path::{Path, PathBuf};

#[derive(Debug, Parser)]
#[command(
    name = "flotilla-fleet",
    version,
    about = "A local fleet of real Kubernetes control planes and a Vault API, for flotilla's tests and demo"
)]
struct Cli {
    /// State directory (default `.fleet`).
    #[arg(long, global = true, env = "FLOTILLA_FLEET_DIR")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the fleet (a no-op printing its status when it is up already).
    Up {
        /// Environment files whose cluster contexts to start (default environments/dev.yaml).
        #[arg(long, num_args = 1.., conflicts_with = "clusters")]
        env: Vec<PathBuf>,
        /// Cluster (kube context) names, comma-separated.
        #[arg(long, value_delimiter = ',')]
        clusters: Vec<String>,
        /// Secrets to seed Vault with (default: fleet/vault-seed.yaml, built in).
        #[arg(long)]
        vault_seed: Option<PathBuf>,
        /// Make clusters far away: `NAME=250ms` puts a latency proxy adding that
        /// round-trip time in front of NAME's API server (the kubeconfig points at it);
        /// `all=150ms` for every cluster (a cluster's own entry wins). Comma-separated or
        /// repeated.
        #[arg(long, value_delimiter = ',', value_parser = parse_rtt_entry)]
        rtt: Vec<(String, std::time::Duration)>,
    },
    /// Stop every process of the fleet (also of a half-failed up).
    Down {
        /// Also remove the fleet's files from the state directory.
        #[arg(long)]
        purge: bool,
    },
    /// Show each process and endpoint; exit 3 when something that should run does not.
    Status,
    /// Stop one cluster's apiserver, controller-manager and kubelet.
    StopCluster { name: String },
    /// Start a stopped cluster again (same port, same data).
    StartCluster { name: String },
    /// Stop the OCI registry (what was pushed to it is kept).
    StopRegistry,
    /// Start the stopped OCI registry again (same port, same data).
    StartRegistry,
    /// The chart repository (started by `up`): serves the files of a folder made with
    /// `helm package` and `helm repo index` over HTTP.
    ChartRepo {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        root: PathBuf,
    },
    /// The simulated kubelet of one cluster (started by `up`).
    Kubelet {
        #[arg(long)]
        kubeconfig: PathBuf,
        #[arg(long)]
        context: String,
        /// How many nodes it registers and runs pods on.
        #[arg(long, default_value_t = 1)]
        nodes: u32,
    },
    /// The latency proxy in front of one API server (started by `up --rtt`): TCP, TLS
    /// passing through, each direction delayed by half the round-trip time.
    RttProxy {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        upstream: std::net::SocketAddr,
        #[arg(long, value_parser = flotilla_fleet::rtt::parse_rtt)]
        rtt: std::time::Duration,
    },
    /// The envelope-normalising proxy in front of RustyVault (started by `up` on the
    /// fallback, when HashiCorp Vault was not built).
    VaultProxy {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        upstream: String,
    },
}

/// Clusters used when neither --env nor --clusters is given and there is no
/// environments/dev.yaml.
const FALLBACK_CLUSTERS: &[&str] = &["fleet-a", "fleet-b", "fleet-c"];

fn main() {
    // `flotilla-fleet status | head` ends quietly, as other command-line tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    flotilla_fleet::install_crypto_provider();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLEET_LOG")
        // kube's client logs every refused connection while `up` waits for a server.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flotilla-fleet: {e}");
            std::process::exit(3);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        let code = e
            .downcast_ref::<FleetError>()
            .map(FleetError::exit_code)
            .unwrap_or(3);
        eprintln!("flotilla-fleet: {e:#}");
        std::process::exit(code);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = state::resolve_dir(cli.state)?;
    match cli.command {
        Command::Up {
            env,
            clusters,
            vault_seed,
            rtt,
        } => {
            let clusters = choose_clusters(&env, clusters)?;
            let request = UpRequest {
                dir: dir.clone(),
                clusters,
                seed: vault_seed,
                fleet_exe: std::env::current_exe().context("finding the flotilla-fleet binary")?,
                rtt,
            };
            let outcome = tokio::select! {
                outcome = supervisor::up(&request) => outcome?,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("interrupted: stopping what was started");
                    supervisor::down(&dir).await?;
                    std::process::exit(130);
                }
            };
            match outcome {
                UpOutcome::Started { took } => {
                    println!("fleet up in {:.1}s", took.as_secs_f64());
                }
                UpOutcome::AlreadyUp => println!("fleet already up"),
            }
            print_status(&dir).await?;
            println!("\nsource {}", state::env_path(&dir).display());
            Ok(())
        }
        Command::Down { purge } => {
            supervisor::down(&dir).await?;
            if purge {
                supervisor::wipe(&dir)?;
            }
            println!("fleet in {} stopped", dir.display());
            Ok(())
        }
        Command::Status => {
            if !print_status(&dir).await? {
                std::process::exit(3);
            }
            Ok(())
        }
        Command::StopCluster { name } => {
            supervisor::stop_cluster(&dir, &name).await?;
            println!("cluster {name} stopped");
            Ok(())
        }
        Command::StartCluster { name } => {
            let exe = std::env::current_exe().context("finding the flotilla-fleet binary")?;
            supervisor::start_cluster(&dir, &name, &exe).await?;
            println!("cluster {name} started");
            Ok(())
        }
        Command::StopRegistry => {
            supervisor::stop_registry(&dir).await?;
            println!("registry stopped");
            Ok(())
        }
        Command::StartRegistry => {
            supervisor::start_registry(&dir).await?;
            println!("registry started");
            Ok(())
        }
        Command::ChartRepo { listen, root } => {
            flotilla_fleet::charts::serve_chart_repo(listen, root)
                .await
                .with_context(|| format!("chart repository on {listen}"))?;
            Ok(())
        }
        Command::Kubelet {
            kubeconfig,
            context,
            nodes,
        } => {
            let client = kube_client(&kubeconfig, &context).await?;
            flotilla_fleet::kubelet::run(client, nodes)
                .await
                .with_context(|| format!("kubelet of {context}"))?;
            Ok(())
        }
        Command::RttProxy {
            listen,
            upstream,
            rtt,
        } => {
            flotilla_fleet::rtt::run(listen, upstream, rtt)
                .await
                .with_context(|| format!("latency proxy on {listen}"))?;
            Ok(())
        }
        Command::VaultProxy { listen, upstream } => {
            flotilla_fleet::proxy::run(listen, upstream)
                .await
                .with_context(|| format!("vault proxy on {listen}"))?;
            Ok(())
        }
    }
}

/// `NAME=250ms` of `up --rtt`.
fn parse_rtt_entry(text: &str) -> Result<(String, std::time::Duration), String> {
    let (name, rtt) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected CLUSTER=RTT (prod-asia=250ms) or all=RTT"))?;
    Ok((name.to_string(), flotilla_fleet::rtt::parse_rtt(rtt)?))
}

async fn kube_client(path: &Path, context: &str) -> anyhow::Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("{}: context {context}", path.display()))?;
    Ok(kube::Client::try_from(config)?)
}

/// `--clusters`, else the contexts of `--env` files, else environments/dev.yaml, else
/// [`FALLBACK_CLUSTERS`].
fn choose_clusters(env: &[PathBuf], clusters: Vec<String>) -> Result<Vec<String>, FleetError> {
    if !clusters.is_empty() {
        return Ok(clusters);
    }
    let files: Vec<PathBuf> = if env.is_empty() {
        let default = PathBuf::from("environments/dev.yaml");
        if default.exists() {
            vec![default]
        } else {
            eprintln!(
                "no --env, --clusters or environments/dev.yaml: starting {}",
                FALLBACK_CLUSTERS.join(",")
            );
            return Ok(FALLBACK_CLUSTERS.iter().map(|s| s.to_string()).collect());
        }
    } else {
        env.to_vec()
    };
    let mut names = Vec::new();
    for file in &files {
        for name in state::contexts_of(file)? {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

async fn print_status(dir: &Path) -> Result<bool, FleetError> {
    let report = supervisor::status(dir).await?;
    let width = report.lines.iter().map(|l| l.0.len()).max().unwrap_or(0);
    let swidth = report.lines.iter().map(|l| l.1.len()).max().unwrap_or(0);
    for (what, status, endpoint) in &report.lines {
        println!("{what:width$}  {status:swidth$}  {endpoint}");
    }
    if let Some(state) = State::load(dir)? {
        println!(
            "kubeconfig {}  contexts: {}",
            state::kubeconfig_path(dir).display(),
            state
                .clusters
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(report.healthy)
}
