//! Discovery kept on disk between runs, as kubectl keeps it in `~/.kube/cache/discovery`:
//! the resources each group version of a server serves, so that a run asks the server
//! only about what it has not seen (one round trip per group version saved, on the
//! critical path before the first apply).
//!
//! Keyed by the server (`host_port`, as kubectl's folders are) and the group version;
//! an entry is used for [`TTL`] (kubectl's six hours) and forgotten at once when it
//! lacks a kind the run looks for (a CRD installed since): the caller then asks the
//! server and writes the answer back. The folder is `FLOTILLA_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/flotilla`, else `~/.cache/flotilla`, then `discovery/`; an entry
//! that cannot be read or written is only a request more, never an error.

use kube::discovery::ApiResource;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an entry is trusted without asking the server (kubectl's).
pub const TTL: Duration = Duration::from_secs(6 * 3600);

/// What a group version serves: each resource with whether it is namespaced.
pub type Served = Vec<(ApiResource, bool)>;

/// The folder of the discovery cache, if there is a home or a cache folder.
pub fn cache_root() -> Option<PathBuf> {
    Some(crate::engine::cache_base()?.join("discovery"))
}

/// The file of one server's group version: `ROOT/127.0.0.1_6443/apps_v1.json`.
pub fn entry_path(root: &Path, server: &str, api_version: &str) -> PathBuf {
    let host = url::Url::parse(server)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port_or_known_default() {
                Some(port) => format!("{host}_{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| server.to_owned());
    root.join(safe(&host))
        .join(format!("{}.json", safe(&api_version.replace('/', "_"))))
}

/// A name usable as one path component (kubectl replaces the same characters).
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The entry at `path` if it is younger than [`TTL`] and reads.
pub fn load(path: &Path) -> Option<Served> {
    let age = std::fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    if age > TTL {
        return None;
    }
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes an entry (a temporary file renamed into place, so a concurrent run never reads
/// half of one). A failure is logged and forgotten: the next run asks the server again.
pub fn store(path: &Path, served: &Served) {
    let write = || -> std::io::Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| std::io::Error::other("no parent folder"))?;
        std::fs::create_dir_all(dir)?;
        let temp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&temp, served)?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(err) = write() {
        tracing::debug!("discovery cache {}: {err}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> (ApiResource, bool) {
        (
            ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
            },
            true,
        )
    }

    #[test]
    fn entries_are_keyed_by_server_and_group_version() {
        let root = Path::new("/c");
        assert_eq!(
            entry_path(root, "https://127.0.0.1:6443/", "apps/v1"),
            PathBuf::from("/c/127.0.0.1_6443/apps_v1.json")
        );
        assert_eq!(
            entry_path(root, "https://k8s.example.com", "v1"),
            PathBuf::from("/c/k8s.example.com_443/v1.json")
        );
        assert_ne!(
            entry_path(root, "https://127.0.0.1:6443", "v1"),
            entry_path(root, "https://127.0.0.1:6444", "v1")
        );
    }

    #[test]
    fn an_entry_written_is_read_back_and_a_stale_or_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_path(dir.path(), "https://127.0.0.1:6443", "apps/v1");
        assert_eq!(load(&path), None);
        store(&path, &vec![deployment()]);
        assert_eq!(load(&path), Some(vec![deployment()]));
        let old = std::time::SystemTime::now() - TTL - Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(load(&path), None);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load(&path), None);
    }
}
