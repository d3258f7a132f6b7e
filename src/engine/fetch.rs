//! Charts by reference (`spec.chart: oci://...`, or a chart of `spec.repository`) and
//! a chart's dependencies from repositories: fetched with the `helm` program, so that
//! the user's own Helm configuration applies (`helm registry login`,
//! `repositories.yaml`), and kept in flotilla's cache by content digest.
//!
//! The digest is the SHA-256 of the chart's package (the `.tgz` Helm pulls): what an OCI
//! registry names the chart's layer and a repository's `index.yaml` its `digest`. A
//! pulled chart is kept unpacked under `<cache>/charts/sha256-<hex>/chart/`, and which
//! digest a reference and version gave under `<cache>/charts/refs/`: a chart known by
//! its digest (a record's, or a reference pulled before) is read from there without the
//! network. The user's chart folder is never written: a chart whose dependencies come
//! from repositories is built (`helm dependency build`, which honours `Chart.lock`) in a
//! copy, and only the packed dependencies are kept, under `<cache>/charts/deps-<hex>/`.

use super::error::RenderError;
use super::helm::{helm_program, helm_timeout, run_helm};
use crate::config::{ChartPull, ChartReference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a chart by reference came from, recorded with every revision that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartOrigin {
    /// `oci://HOST/PATH/NAME`, or a chart's name in `repository`.
    pub chart: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub version: String,
    /// `sha256:<hex>` of the chart's package.
    pub digest: String,
}

impl ChartOrigin {
    /// `oci://registry.example/charts/web:1.4.2`, `web 1.4.2 from https://...`.
    pub fn shown(&self) -> String {
        match &self.repository {
            Some(repository) => format!("{} {} from {repository}", self.chart, self.version),
            None => format!("{}:{}", self.chart, self.version),
        }
    }

    /// Whether `other` names the same chart and version (whatever its digest).
    pub fn same_version(&self, other: &ChartOrigin) -> bool {
        self.chart == other.chart
            && self.repository == other.repository
            && self.version == other.version
    }
}

/// flotilla's cache folder: `FLOTILLA_CACHE_DIR`, else `$XDG_CACHE_HOME/flotilla`, else
/// `~/.cache/flotilla`.
pub fn cache_base() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("FLOTILLA_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("flotilla")))
        .or_else(|| std::env::home_dir().map(|h| h.join(".cache").join("flotilla")))
}

fn charts_cache() -> Result<PathBuf, RenderError> {
    let root = cache_base()
        .ok_or_else(|| RenderError::Helm {
            message:
                "no folder to keep pulled charts in: set FLOTILLA_CACHE_DIR (there is no HOME)"
                    .into(),
        })?
        .join("charts");
    std::fs::create_dir_all(&root).map_err(|source| RenderError::HelmIo {
        what: format!("cannot make the chart cache {}", root.display()),
        source,
    })?;
    Ok(root)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The folder a chart of `digest` is kept unpacked in.
fn chart_folder(root: &Path, digest: &str) -> PathBuf {
    root.join(digest.replace(':', "-")).join("chart")
}

/// The file that says which digest `reference` at its version gave.
fn ref_file(root: &Path, chart: &str, repository: Option<&str>, version: &str) -> PathBuf {
    let key = Sha256::digest(format!("{chart}\n{}\n{version}", repository.unwrap_or("")));
    root.join("refs").join(hex(&key))
}

/// A chart by reference, fetched: its folder in the cache and where it came from.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub dir: PathBuf,
    pub origin: ChartOrigin,
}

/// The chart `reference` names, from the cache when that reference and version were
/// pulled before (no network), else pulled. `descriptor` is the release file, which
/// errors name.
pub fn fetch(reference: &ChartReference, descriptor: &Path) -> Result<Fetched, RenderError> {
    let root = charts_cache()?;
    let repository = reference.repository.as_deref();
    let known = ref_file(&root, &reference.chart, repository, &reference.version);
    if let Ok(digest) = std::fs::read_to_string(&known) {
        let dir = chart_folder(&root, digest.trim());
        if dir.join("Chart.yaml").is_file() {
            return Ok(Fetched {
                dir,
                origin: origin_of(reference, digest.trim()),
            });
        }
    }
    let (digest, dir) = pull(&root, reference, descriptor)?;
    write_atomically(&known, digest.as_bytes())?;
    Ok(Fetched {
        dir,
        origin: origin_of(reference, &digest),
    })
}

/// The chart of a recorded `origin`, by its digest: from the cache, else pulled again
/// and refused unless its digest is the recorded one (a tag moved under the version).
pub fn fetch_recorded(
    origin: &ChartOrigin,
    pull_settings: &ChartPull,
    descriptor: &Path,
) -> Result<PathBuf, RenderError> {
    let root = charts_cache()?;
    let dir = chart_folder(&root, &origin.digest);
    if dir.join("Chart.yaml").is_file() {
        return Ok(dir);
    }
    let reference = ChartReference {
        chart: origin.chart.clone(),
        repository: origin.repository.clone(),
        version: origin.version.clone(),
        pull: pull_settings.clone(),
    };
    let (digest, dir) = pull(&root, &reference, descriptor)?;
    if digest != origin.digest {
        return Err(changed_tag(descriptor, origin, &digest));
    }
    Ok(dir)
}

/// The error of a chart whose version now has another digest than the one recorded.
pub fn changed_tag(descriptor: &Path, recorded: &ChartOrigin, now: &str) -> RenderError {
    RenderError::ChartPull {
        file: descriptor.to_path_buf(),
        field: "spec.chartVersion".into(),
        value: recorded.version.clone(),
        message: format!(
            "{} changed under the same version: it was {} when it ran, it is {now} now; a published version must not change (publish a new version), or pull it afresh with a new version number",
            recorded.shown(),
            recorded.digest
        ),
        unreachable: false,
    }
}

fn origin_of(reference: &ChartReference, digest: &str) -> ChartOrigin {
    ChartOrigin {
        chart: reference.chart.clone(),
        repository: reference.repository.clone(),
        version: reference.version.clone(),
        digest: digest.to_owned(),
    }
}

/// `helm pull` of `reference` into a fresh folder of the cache, its package hashed and
/// unpacked under its digest: `(digest, chart folder)`.
fn pull(
    root: &Path,
    reference: &ChartReference,
    descriptor: &Path,
) -> Result<(String, PathBuf), RenderError> {
    let work = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(root)
        .map_err(|source| RenderError::HelmIo {
            what: format!("cannot make a folder in {}", root.display()),
            source,
        })?;
    let program = helm_program()?;
    let mut command = Command::new(program);
    command.arg("pull");
    match &reference.repository {
        Some(repository) => command.arg(&reference.chart).args(["--repo", repository]),
        None => command.arg(&reference.chart),
    };
    command
        .args(["--version", &reference.version])
        .arg("--destination")
        .arg(work.path());
    pull_flags(&mut command, &reference.pull, descriptor);
    let output = run_helm(&mut command, Vec::new(), helm_timeout()?, || {
        pull_error(
            descriptor,
            reference,
            "helm pull did not finish in time (FLOTILLA_HELM_TIMEOUT sets the limit)".into(),
            true,
        )
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .map(|line| line.trim_start_matches("Error: ").trim())
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let unreachable = is_unreachable(&message);
        return Err(pull_error(descriptor, reference, message, unreachable));
    }
    let package = std::fs::read_dir(work.path())
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|e| e == "tgz"))
        .ok_or_else(|| {
            pull_error(
                descriptor,
                reference,
                "helm pull saved no chart package".into(),
                false,
            )
        })?;
    let bytes = std::fs::read(&package).map_err(|source| RenderError::HelmIo {
        what: format!("cannot read {}", package.display()),
        source,
    })?;
    let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
    let dir = chart_folder(root, &digest);
    if !dir.join("Chart.yaml").is_file() {
        let unpacked = work.path().join("unpacked");
        unpack(&bytes, &unpacked).map_err(|err| {
            pull_error(
                descriptor,
                reference,
                format!("the chart package cannot be unpacked: {err}"),
                false,
            )
        })?;
        let top = only_folder(&unpacked).ok_or_else(|| {
            pull_error(
                descriptor,
                reference,
                "the chart package holds no chart folder".into(),
                false,
            )
        })?;
        let parent = dir.parent().unwrap_or(root);
        std::fs::create_dir_all(parent).map_err(|source| RenderError::HelmIo {
            what: format!("cannot write {}", parent.display()),
            source,
        })?;
        // Another run may have put the same digest there meanwhile: same bytes, keep it.
        if std::fs::rename(&top, &dir).is_err() && !dir.join("Chart.yaml").is_file() {
            return Err(RenderError::HelmIo {
                what: format!("cannot keep the chart in {}", dir.display()),
                source: std::io::Error::other("rename failed"),
            });
        }
    }
    Ok((digest, dir))
}

/// The flags of `spec.chartPull`.
fn pull_flags(command: &mut Command, pull: &ChartPull, descriptor: &Path) {
    if pull.plain_http {
        command.arg("--plain-http");
    }
    if pull.insecure_skip_tls_verify {
        command.arg("--insecure-skip-tls-verify");
    }
    if let Some(ca_file) = &pull.ca_file {
        let base = descriptor.parent().unwrap_or(Path::new(""));
        command.arg("--ca-file").arg(base.join(ca_file));
    }
}

/// Whether helm's message says the server could not be reached at all (rather than
/// that it answered no): refused, timed out, reset, no route.
fn is_unreachable(message: &str) -> bool {
    [
        "connection refused",
        "i/o timeout",
        "connection reset",
        "no route to host",
        "network is unreachable",
        "Client.Timeout",
        "TLS handshake timeout",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

fn pull_error(
    descriptor: &Path,
    reference: &ChartReference,
    message: String,
    unreachable: bool,
) -> RenderError {
    let (field, value) = if message.contains("not found") || message.contains("manifest unknown") {
        ("spec.chartVersion", reference.version.clone())
    } else if let Some(repository) = &reference.repository {
        ("spec.repository", repository.clone())
    } else {
        ("spec.chart", reference.chart.clone())
    };
    let hint = if unreachable {
        " (the registry or repository cannot be reached; nothing was changed)"
    } else if message.contains("no such host") {
        " (no such registry or repository host)"
    } else {
        ""
    };
    RenderError::ChartPull {
        file: descriptor.to_path_buf(),
        field: field.into(),
        value,
        message: format!("helm pull {}: {message}{hint}", reference.shown()),
        unreachable,
    }
}

/// Unpacks a gzip tar into `into`, refusing entries outside it (tar's own check) and
/// anything but files and folders.
fn unpack(bytes: &[u8], into: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(into)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if (kind.is_file() || kind.is_dir()) && !entry.unpack_in(into)? {
            return Err(std::io::Error::other(format!(
                "{}: a path outside the chart",
                entry.path()?.display()
            )));
        }
    }
    Ok(())
}

/// The one folder a chart package holds (`web/`).
fn only_folder(dir: &Path) -> Option<PathBuf> {
    let mut entries = std::fs::read_dir(dir).ok()?.flatten();
    let first = entries.next()?.path();
    (entries.next().is_none() && first.join("Chart.yaml").is_file()).then_some(first)
}

fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    let failed = |source: std::io::Error| RenderError::HelmIo {
        what: format!("cannot write {}", file.display()),
        source,
    };
    let parent = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(failed)?;
    let mut temp = tempfile::NamedTempFile::new_in(parent).map_err(failed)?;
    std::io::Write::write_all(&mut temp, bytes).map_err(failed)?;
    temp.persist(file).map_err(|e| failed(e.error))?;
    Ok(())
}

/// The dependencies of `Chart.yaml` (`chart_yaml`, of the chart in `dir`) that come
/// from a repository (`https://`, `oci://`, `@name`) and that `charts/` (`present`:
/// the chart's file paths) does not hold.
fn missing_remote_dependencies(chart_yaml: &str, present: &[&str]) -> Vec<String> {
    let metadata: serde_yaml_ng::Value = serde_yaml_ng::from_str(chart_yaml).unwrap_or_default();
    let dependencies = metadata
        .get("dependencies")
        .and_then(serde_yaml_ng::Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    dependencies
        .iter()
        .filter_map(|dependency| {
            let field = |key: &str| dependency.get(key).and_then(serde_yaml_ng::Value::as_str);
            let name = field("name")?;
            let repository = field("repository").unwrap_or_default();
            let remote = !repository.is_empty() && !repository.starts_with("file://");
            let held = present.iter().any(|path| {
                path.starts_with(&format!("charts/{name}/"))
                    || (path.starts_with(&format!("charts/{name}-")) && path.ends_with(".tgz"))
            });
            (remote && !held).then(|| name.to_owned())
        })
        .collect()
}

/// The packed dependencies (`charts/NAME-VERSION.tgz` → bytes) that the chart in `dir`
/// needs from repositories and does not hold, built as `helm dependency build` builds
/// them (from `Chart.lock` when there is one) in a copy of the chart, and kept in the
/// cache under the digest of `Chart.yaml` and `Chart.lock`: built once, then read
/// without the network. Empty when every dependency is held (or local).
pub fn remote_dependencies(
    dir: &Path,
    files: &BTreeMap<String, String>,
    binary: &BTreeMap<String, Vec<u8>>,
    pull: &ChartPull,
) -> Result<BTreeMap<String, Vec<u8>>, RenderError> {
    let Some(chart_yaml) = files.get("Chart.yaml") else {
        return Ok(BTreeMap::new());
    };
    let present: Vec<&str> = files
        .keys()
        .chain(binary.keys())
        .map(String::as_str)
        .collect();
    let missing = missing_remote_dependencies(chart_yaml, &present);
    if missing.is_empty() {
        return Ok(BTreeMap::new());
    }
    let lock = files.get("Chart.lock").map(String::as_str).unwrap_or("");
    let root = charts_cache()?;
    let key = hex(&Sha256::digest(format!("{chart_yaml}\0{lock}")));
    let kept = root.join(format!("deps-{key}"));
    if !kept.is_dir() {
        build_dependencies(dir, files, binary, pull, &root, &kept)?;
    }
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&kept).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = missing
            .iter()
            .any(|dep| name.starts_with(&format!("{dep}-")) && name.ends_with(".tgz"));
        if wanted {
            let bytes = std::fs::read(entry.path()).map_err(|source| RenderError::HelmIo {
                what: format!("cannot read {}", entry.path().display()),
                source,
            })?;
            out.insert(format!("charts/{name}"), bytes);
        }
    }
    Ok(out)
}

/// `helm dependency build` in a copy of the chart (its files as read, `file://`
/// dependencies already copied in as `charts/NAME/`), its new `charts/*.tgz` kept in
/// `kept`.
fn build_dependencies(
    dir: &Path,
    files: &BTreeMap<String, String>,
    binary: &BTreeMap<String, Vec<u8>>,
    pull: &ChartPull,
    root: &Path,
    kept: &Path,
) -> Result<(), RenderError> {
    let io = |what: String| move |source: std::io::Error| RenderError::HelmIo { what, source };
    let work = tempfile::Builder::new()
        .prefix(".deps-")
        .tempdir_in(root)
        .map_err(io(format!("cannot make a folder in {}", root.display())))?;
    let copy = work.path().join("chart");
    for (rel, bytes) in files
        .iter()
        .map(|(rel, text)| (rel, text.as_bytes()))
        .chain(binary.iter().map(|(rel, bytes)| (rel, bytes.as_slice())))
    {
        let inside = Path::new(rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            continue;
        }
        let file = copy.join(rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("cannot write {}", parent.display())))?;
        }
        std::fs::write(&file, bytes).map_err(io(format!("cannot write {}", file.display())))?;
    }
    // `file://` paths are relative to the chart folder: in the copy, each leads back to
    // where it points from the user's folder, so that helm resolves it as there.
    link_local_dependencies(dir, &copy, files.get("Chart.yaml").map(String::as_str))?;
    let program = helm_program()?;
    let mut command = Command::new(program);
    command.args(["dependency", "build"]).arg(&copy);
    if pull.plain_http {
        command.arg("--plain-http");
    }
    if pull.insecure_skip_tls_verify {
        command.arg("--insecure-skip-tls-verify");
    }
    let output = run_helm(&mut command, Vec::new(), helm_timeout()?, || {
        RenderError::HelmTemplate {
            chart: dir.to_path_buf(),
            message: "helm dependency build did not finish in time (FLOTILLA_HELM_TIMEOUT sets the limit)".into(),
        }
    })?;
    if !output.status.success() {
        let copy_shown = copy.display().to_string();
        let message = String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(|line| line.trim_start_matches("Error: ").trim())
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
            .replace(&copy_shown, &dir.display().to_string());
        return Err(RenderError::ChartPull {
            file: dir.join("Chart.yaml"),
            field: "dependencies".into(),
            value: String::new(),
            unreachable: is_unreachable(&message),
            message: format!("helm dependency build: {message}"),
        });
    }
    let built = work.path().join("built");
    std::fs::create_dir_all(&built).map_err(io(format!("cannot write {}", built.display())))?;
    for entry in std::fs::read_dir(copy.join("charts"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".tgz") {
            std::fs::copy(entry.path(), built.join(&name))
                .map_err(io(format!("cannot keep {}", entry.path().display())))?;
        }
    }
    if std::fs::rename(&built, kept).is_err() && !kept.is_dir() {
        return Err(RenderError::HelmIo {
            what: format!("cannot keep the dependencies in {}", kept.display()),
            source: std::io::Error::other("rename failed"),
        });
    }
    Ok(())
}

/// For each `file://` dependency of `chart_yaml`, a link at the same relative place
/// from `copy` to the folder it names from `dir`.
fn link_local_dependencies(
    dir: &Path,
    copy: &Path,
    chart_yaml: Option<&str>,
) -> Result<(), RenderError> {
    let metadata: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(chart_yaml.unwrap_or_default()).unwrap_or_default();
    let dependencies = metadata
        .get("dependencies")
        .and_then(serde_yaml_ng::Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    for dependency in &dependencies {
        let Some(local) = dependency
            .get("repository")
            .and_then(serde_yaml_ng::Value::as_str)
            .and_then(|r| r.strip_prefix("file://"))
        else {
            continue;
        };
        let Ok(target) = dir.join(local).canonicalize() else {
            continue;
        };
        // The copy's place of `local`, made of plain names: `..` climbs out of the copy
        // into the work folder, which is fresh and ours.
        let place = copy.join(local);
        let Some(place) = normalised(&place) else {
            continue;
        };
        if place.exists() || !place.starts_with(copy.parent().unwrap_or(copy)) {
            continue;
        }
        if let Some(parent) = place.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::os::unix::fs::symlink(&target, &place);
    }
    Ok(())
}

/// `path` with `.` and `..` resolved lexically.
fn normalised(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_repository_dependencies_that_charts_lacks_are_missing() {
        let chart_yaml = "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n  - name: web\n    version: 0.1.0\n    repository: https://charts.example.com\n  - name: db\n    version: 1.0.0\n    repository: oci://registry.example.com/charts\n  - name: lib\n    version: 0.1.0\n    repository: file://../lib\n  - name: cache\n    version: 2.0.0\n    repository: \"@stable\"\n";
        assert_eq!(
            missing_remote_dependencies(chart_yaml, &["Chart.yaml"]),
            ["web", "db", "cache"]
        );
        assert_eq!(
            missing_remote_dependencies(
                chart_yaml,
                &[
                    "charts/web-0.1.0.tgz",
                    "charts/db/Chart.yaml",
                    "charts/cache-2.0.0.tgz"
                ]
            ),
            Vec::<String>::new()
        );
        // `webapp-1.0.0.tgz` is not `web`'s, though it starts with its name... but
        // `web-` does not prefix it.
        assert_eq!(
            missing_remote_dependencies(chart_yaml, &["charts/webapp-1.0.0.tgz"]),
            ["web", "db", "cache"]
        );
        assert!(missing_remote_dependencies("name: x\n", &[]).is_empty());
    }

    #[test]
    fn unreachable_is_told_from_a_refusal() {
        assert!(is_unreachable("Get \"http://127.0.0.1:1/v2/charts/web/manifests/0.1.0\": dial tcp 127.0.0.1:1: connect: connection refused"));
        assert!(!is_unreachable(
            "127.0.0.1:5000/charts/web:0.2.0: not found"
        ));
        assert!(!is_unreachable(
            "dial tcp: lookup nonexist.invalid: no such host"
        ));
    }

    #[test]
    fn a_pull_error_names_the_field_and_value() {
        let reference = ChartReference {
            chart: "oci://registry.example.com/charts/web".into(),
            repository: None,
            version: "0.2.0".into(),
            pull: ChartPull::default(),
        };
        let file = Path::new("releases/web/release.yaml");
        let missing = pull_error(
            file,
            &reference,
            "registry.example.com/charts/web:0.2.0: not found".into(),
            false,
        );
        assert_eq!(
            missing.to_string(),
            "releases/web/release.yaml: spec.chartVersion: \"0.2.0\": helm pull oci://registry.example.com/charts/web:0.2.0: registry.example.com/charts/web:0.2.0: not found"
        );
        let refused = pull_error(
            file,
            &reference,
            "dial tcp: connection refused".into(),
            true,
        );
        assert!(refused.is_unreachable());
        assert!(refused
            .to_string()
            .starts_with("releases/web/release.yaml: spec.chart: \"oci://registry.example.com/charts/web\": helm pull"));
        let origin = origin_of(&reference, "sha256:aaaa");
        let changed = changed_tag(file, &origin, "sha256:bbbb");
        assert!(!changed.is_unreachable());
        assert!(
            changed.to_string().contains("oci://registry.example.com/charts/web:0.2.0 changed under the same version: it was sha256:aaaa when it ran, it is sha256:bbbb now"),
            "{changed}"
        );
    }

    #[test]
    fn a_package_unpacks_inside_its_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        let text = b"apiVersion: v2\nname: web\nversion: 0.1.0\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "web/Chart.yaml", &text[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        unpack(&bytes, &dir.path().join("out")).unwrap();
        let top = only_folder(&dir.path().join("out")).unwrap();
        assert_eq!(top, dir.path().join("out/web"));
        assert_eq!(std::fs::read(top.join("Chart.yaml")).unwrap(), text);
    }
}
