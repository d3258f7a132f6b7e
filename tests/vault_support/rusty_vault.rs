//! The fleet's Vault alone: a RustyVault set up by the fleet's own code (init, unseal,
//! KV v1 mount `kv`, AppRole `flotilla`, the seed of `fleet/vault-seed.yaml`) behind the
//! fleet's envelope-normalising proxy, without the clusters a whole fleet would start.
//! RustyVault stores, authenticates and refuses; the proxy only fills envelope fields.

use flotilla_fleet::binaries::Binaries;
use flotilla_fleet::{process, proxy, vault};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct RustyVault {
    dir: tempfile::TempDir,
    /// The proxy's address: what flotilla talks to.
    pub address: String,
    pub root_token: String,
    pub role_id: String,
    pub secret_id: String,
    proxy: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RustyVault {
    pub async fn start() -> RustyVault {
        let binaries = Binaries::find()
            .unwrap_or_else(|e| panic!("RustyVault not found ({e}); run scripts/install-deps.sh"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = super::closed_port();
        let proxy_port = super::closed_port();
        vault::spawn_rvault(dir.path(), &binaries.rvault, port)
            .unwrap_or_else(|e| panic!("starting rvault: {e}"));
        let upstream = format!("http://127.0.0.1:{port}");
        let seed = vault::Seed::load(None).unwrap_or_else(|e| panic!("seed: {e}"));
        let credentials = vault::setup(dir.path(), &upstream, &seed)
            .await
            .unwrap_or_else(|e| panic!("setting up rvault: {e}"));
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], proxy_port));
        let proxy = tokio::spawn(proxy::run(listen, upstream));
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the Vault proxy did not start listening"
            );
            tokio::task::yield_now().await;
        }
        RustyVault {
            dir,
            address: format!("http://{listen}"),
            root_token: credentials.root_token,
            role_id: credentials.role_id,
            secret_id: credentials.secret_id,
            proxy,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A vaultrs client with the root token, for a test's own writes.
    pub fn admin(&self) -> vaultrs::client::VaultClient {
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(&self.address)
            .token(&self.root_token)
            .build()
            .unwrap_or_else(|e| panic!("vault settings: {e}"));
        vaultrs::client::VaultClient::new(settings).unwrap_or_else(|e| panic!("vault client: {e}"))
    }
}

impl Drop for RustyVault {
    fn drop(&mut self) {
        self.proxy.abort();
        // Only the rvault this helper started, by the pid its pid file holds.
        if let Some(pid) = process::alive(self.dir.path(), "rvault") {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}
