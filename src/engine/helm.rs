//! Helm charts: recognised by their Go templates, loaded with every file (local
//! `file://` dependencies copied in as subcharts, so that a record holds the whole
//! chart), and rendered by the `helm` program (`helm template`) once per cluster, with
//! that cluster's Kubernetes version and API versions so that `.Capabilities` is right.
//!
//! Only the rendering is Helm's: values, secrets, scaling, apply, prune, wait, records
//! and rollback stay flotilla's (docs/helm.md).

use super::error::RenderError;
use super::manifest::{split_documents, split_hooks, RenderedHook, RenderedObject};
use crate::config::ChartType;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// What `.Capabilities` says in one cluster: the version of its API server and every
/// API version it serves, as `helm install` would find them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `v1.37.2`.
    pub kube_version: String,
    /// `v1`, `apps/v1`, `apps/v1/Deployment`, ...: group versions and group/version/kind.
    pub api_versions: Vec<String>,
}

/// The oldest Helm whose `helm template` takes every flag flotilla passes.
pub const MINIMUM_HELM: (u64, u64) = (3, 10);

/// The variable naming the `helm` program; otherwise `helm` is looked up on `PATH`.
pub const HELM_VARIABLE: &str = "FLOTILLA_HELM";

/// The variable that bounds how long one run of the `helm` program may take (`90s`,
/// `5m`); past it the program is killed with everything it started, and the render is
/// an error naming the chart and the cluster.
pub const HELM_TIMEOUT_VARIABLE: &str = "FLOTILLA_HELM_TIMEOUT";

/// How long one run of `helm` may take unless [`HELM_TIMEOUT_VARIABLE`] says otherwise:
/// `helm template` of a large chart takes seconds; one that has not finished in two
/// minutes is stuck (a plugin waiting on a network, a chart that loops).
pub const DEFAULT_HELM_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether a chart is a Helm chart: `Chart.yaml` says `apiVersion: v1` or `v2`, and the
/// chart has what only Helm charts have: a `.tpl` file or Go template actions
/// (`{{ .Values.x }}`, `{{- ... }}`, `{{ include ... }}`) under `templates/`,
/// `dependencies` in `Chart.yaml`, or subcharts under `charts/`.
pub(crate) fn detect<'a>(
    chart_yaml: &str,
    mut files: impl Iterator<Item = (&'a str, &'a str)>,
) -> ChartType {
    let metadata: serde_yaml_ng::Value = serde_yaml_ng::from_str(chart_yaml).unwrap_or_default();
    let helm_api = matches!(
        metadata
            .get("apiVersion")
            .and_then(serde_yaml_ng::Value::as_str),
        Some("v1" | "v2")
    );
    if !helm_api {
        return ChartType::Flotilla;
    }
    let helm_only = metadata.get("dependencies").is_some()
        || files.any(|(name, text)| {
            name.starts_with("charts/")
                || (name.starts_with("templates/")
                    && (name.ends_with(".tpl") || has_go_actions(text)))
        });
    if helm_only {
        ChartType::Helm
    } else {
        ChartType::Flotilla
    }
}

/// A Go template action that Handlebars has no syntax for: the trim markers `{{- ` and
/// ` -}}` (Go requires the space, so a Handlebars comment's `--}}` is not one), `{{/*`,
/// or an action starting with `.Name`, `$` or `include`/`template`/`define`.
fn has_go_actions(text: &str) -> bool {
    let trim_markers = ["{{- ", "{{-\t", "{{-\n", " -}}", "\t-}}", "\n-}}"];
    if trim_markers.iter().any(|m| text.contains(m)) || text.contains("{{/*") {
        return true;
    }
    text.split("{{").skip(1).any(|action| {
        let action = action.trim_start();
        let mut chars = action.chars();
        match chars.next() {
            Some('.') => chars.next().is_some_and(|c| c.is_ascii_uppercase()),
            Some('$') => true,
            _ => ["include ", "template ", "define "]
                .iter()
                .any(|word| action.starts_with(word)),
        }
    })
}

/// A chart's text files and its other files, by path inside the chart folder.
pub(crate) type ChartFiles = (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>);

/// The largest chart file read: every file of a chart is recorded with each revision,
/// and a record is one Kubernetes Secret of at most 1 MiB.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The largest chart read, its files (subcharts included) together.
pub(crate) const MAX_CHART_BYTES: u64 = 8 * 1024 * 1024;

/// The files of a chart folder, by path inside it: text files, and the others (packed
/// subcharts, `.tgz`) as bytes. Left out, as Helm leaves them out: what `.helmignore`
/// lists (an unpacked subchart's own `.helmignore` applies under its folder too), and
/// hidden files and folders (`.helmignore` itself, editor and VCS leftovers). A
/// symbolic link that leads outside the chart folder, a file that is not a regular
/// file, a file over [`MAX_FILE_BYTES`] or a chart over [`MAX_CHART_BYTES`] is an
/// error naming it: whatever is read goes into every record of the release. A
/// `file://` dependency of `Chart.yaml` that `charts/` does not hold is read from its
/// folder (with its own `.helmignore`) as `charts/<name>/`, as `helm dependency build`
/// would put it there.
pub(crate) fn read_chart_dir(dir: &Path) -> Result<ChartFiles, RenderError> {
    let mut found = Found {
        top: dir.to_path_buf(),
        ..Found::default()
    };
    read_tree(dir, "", &mut found, 0)?;
    Ok((found.text, found.binary))
}

/// What a chart's folders hold, as they are read.
#[derive(Default)]
struct Found {
    /// The top chart folder, named by the size error.
    top: PathBuf,
    text: BTreeMap<String, String>,
    binary: BTreeMap<String, Vec<u8>>,
    bytes: u64,
}

/// A chart folder whose files are read: symbolic links must stay inside it.
pub(crate) struct ChartRoot {
    dir: PathBuf,
    real: PathBuf,
}

impl ChartRoot {
    pub(crate) fn new(dir: &Path) -> Result<ChartRoot, RenderError> {
        let real = std::fs::canonicalize(dir).map_err(|source| RenderError::Read {
            file: dir.to_path_buf(),
            source,
        })?;
        Ok(ChartRoot {
            dir: dir.to_path_buf(),
            real,
        })
    }

    /// What `path` (in the chart folder) is once links are followed: an error for a
    /// link that leaves the folder or leads nowhere.
    fn resolve(&self, path: &Path) -> Result<std::fs::Metadata, RenderError> {
        let link = std::fs::symlink_metadata(path).map_err(|source| RenderError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        if !link.file_type().is_symlink() {
            return Ok(link);
        }
        let written = std::fs::read_link(path).unwrap_or_default();
        let refused = |reason: String| RenderError::ChartLink {
            link: path.to_path_buf(),
            target: written.clone(),
            reason,
        };
        let target = std::fs::canonicalize(path)
            .map_err(|err| refused(format!("which cannot be followed ({err})")))?;
        if !target.starts_with(&self.real) {
            return Err(refused(format!(
                "outside the chart folder {}",
                self.dir.display()
            )));
        }
        std::fs::metadata(path).map_err(|source| RenderError::Read {
            file: path.to_path_buf(),
            source,
        })
    }

    /// The bytes of the chart file `path`, `None` when there is none: a link must
    /// stay in the chart folder, and the file be a regular one of at most
    /// [`MAX_FILE_BYTES`].
    pub(crate) fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, RenderError> {
        match std::fs::symlink_metadata(path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        let metadata = self.resolve(path)?;
        read_regular(path, &metadata).map(Some)
    }
}

/// A regular file of at most [`MAX_FILE_BYTES`]: a FIFO would block the read, a device
/// or a dump would fill every record.
fn read_regular(path: &Path, metadata: &std::fs::Metadata) -> Result<Vec<u8>, RenderError> {
    if !metadata.is_file() {
        return Err(RenderError::Read {
            file: path.to_path_buf(),
            source: std::io::Error::other(
                "not a regular file (a device, socket or pipe): a chart holds files and folders only",
            ),
        });
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(RenderError::ChartSize {
            file: path.to_path_buf(),
            message: format!(
                "{} bytes, more than the {MAX_FILE_BYTES} bytes (1 MiB) a chart file may have: every file of a chart is recorded with each revision; list it in .helmignore if the chart does not use it",
                metadata.len()
            ),
        });
    }
    std::fs::read(path).map_err(|source| RenderError::Read {
        file: path.to_path_buf(),
        source,
    })
}

/// How deep `file://` dependencies may nest: a cycle must end in an error, not a hang.
const MAX_DEPENDENCY_DEPTH: usize = 8;

/// The chart in `dir` (its own `.helmignore`, links kept inside it) under `prefix`,
/// then its `file://` dependencies that `charts/` does not hold.
fn read_tree(dir: &Path, prefix: &str, found: &mut Found, depth: usize) -> Result<(), RenderError> {
    let root = ChartRoot::new(dir)?;
    let ignores = vec![(super::helmignore::Rules::of_chart(dir)?, String::new())];
    walk(&root, dir, "", prefix, &ignores, found)?;
    let chart_yaml = dir.join("Chart.yaml");
    let Some(metadata) = found.text.get(&format!("{prefix}Chart.yaml")) else {
        return Ok(());
    };
    let metadata: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(metadata).map_err(|err| RenderError::ChartFile {
            file: chart_yaml.clone(),
            line: err.location().map(|l| l.line()),
            field: "(top level)".into(),
            message: crate::config::yaml::yaml_message(&err),
        })?;
    let dependencies = metadata
        .get("dependencies")
        .and_then(serde_yaml_ng::Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    for (index, dependency) in dependencies.iter().enumerate() {
        let field = |name: &str| {
            dependency
                .get(name)
                .and_then(serde_yaml_ng::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (name, repository) = (field("name"), field("repository"));
        let Some(local) = repository.strip_prefix("file://") else {
            continue;
        };
        let charts = format!("{prefix}charts/{name}");
        let present =
            found.text.keys().chain(found.binary.keys()).any(|k| {
                k.starts_with(&format!("{charts}/")) || k.starts_with(&format!("{charts}-"))
            });
        if present {
            continue;
        }
        let problem = |message: String| RenderError::ChartFile {
            file: chart_yaml.clone(),
            line: None,
            field: format!("dependencies[{index}].repository"),
            message,
        };
        if depth >= MAX_DEPENDENCY_DEPTH {
            return Err(problem(format!(
                "{repository:?}: local dependencies nest more than {MAX_DEPENDENCY_DEPTH} deep (a cycle?)"
            )));
        }
        let from = dir.join(local);
        if !from.join("Chart.yaml").is_file() {
            return Err(problem(format!(
                "{repository:?}: {} holds no Chart.yaml",
                from.display()
            )));
        }
        read_tree(&from, &format!("{charts}/"), found, depth + 1)?;
    }
    Ok(())
}

/// How deep folders of a chart may nest: a symbolic link to a parent must end in an
/// error, not a hang.
const MAX_FOLDER_DEPTH: usize = 32;

/// The files of `dir`, `rel` inside the chart folder of `root`, recorded under
/// `prefix` + `rel`. `ignores`: the `.helmignore` rules in force, each with the folder
/// (inside the chart folder) its paths are relative to.
fn walk(
    root: &ChartRoot,
    dir: &Path,
    rel: &str,
    prefix: &str,
    ignores: &[(super::helmignore::Rules, String)],
    found: &mut Found,
) -> Result<(), RenderError> {
    let read_error = |file: &Path| {
        let file = file.to_path_buf();
        move |source| RenderError::Read { file, source }
    };
    if rel.matches('/').count() > MAX_FOLDER_DEPTH {
        return Err(read_error(dir)(std::io::Error::other(format!(
            "folders nest more than {MAX_FOLDER_DEPTH} deep (a symbolic link to a parent folder?)"
        ))));
    }
    let mut entries = std::fs::read_dir(dir)
        .map_err(read_error(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let inside = format!("{rel}{name}");
        // Helm judges a link by what it leads to; one that leads nowhere is judged as
        // a file (and refused below unless ignored).
        let is_folder = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        let ignored = ignores.iter().any(|(rules, base)| {
            inside
                .strip_prefix(base.as_str())
                .is_some_and(|path| rules.ignores(path, is_folder))
        });
        if ignored {
            continue;
        }
        let metadata = root.resolve(&path)?;
        if metadata.is_dir() {
            let folder = format!("{inside}/");
            // An unpacked subchart's own `.helmignore` (what `helm package` of it
            // would leave out) applies under its folder, besides the parent's.
            let mut nested = ignores.to_vec();
            if (rel == "charts/" || rel.ends_with("/charts/")) && path.join("Chart.yaml").is_file()
            {
                nested.push((super::helmignore::Rules::of_chart(&path)?, folder.clone()));
            }
            walk(root, &path, &folder, prefix, &nested, found)?;
            continue;
        }
        let bytes = read_regular(&path, &metadata)?;
        found.bytes += bytes.len() as u64;
        if found.bytes > MAX_CHART_BYTES {
            return Err(RenderError::ChartSize {
                file: found.top.clone(),
                message: format!(
                    "the chart's files add up to more than {MAX_CHART_BYTES} bytes (8 MiB) with {}: every file of a chart is recorded with each revision; list what the chart does not use in .helmignore",
                    path.display()
                ),
            });
        }
        let key = format!("{prefix}{inside}");
        match String::from_utf8(bytes) {
            Ok(content) => {
                found.text.insert(key, content);
            }
            Err(err) => {
                found.binary.insert(key, err.into_bytes());
            }
        }
    }
    Ok(())
}

/// The `helm` program and its version, checked once per process.
pub(super) fn helm_program() -> Result<&'static PathBuf, RenderError> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(find_helm)
        .as_ref()
        .map_err(|message| RenderError::Helm {
            message: message.clone(),
        })
}

fn find_helm() -> Result<PathBuf, String> {
    let program = std::env::var_os(HELM_VARIABLE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("helm"));
    let named = if std::env::var_os(HELM_VARIABLE).is_some_and(|v| !v.is_empty()) {
        format!("{HELM_VARIABLE}={}", program.display())
    } else {
        "`helm` on PATH".to_string()
    };
    let timeout = helm_timeout().map_err(|err| err.to_string())?;
    let mut command = Command::new(&program);
    command.args(["version", "--template", "{{.Version}}"]);
    let output = match run_bounded(&mut command, Vec::new(), timeout) {
        Ok(output) => output,
        Err(Ran::Failed(err)) => {
            return Err(format!(
                "this release has a Helm chart, rendered by the helm program, and {named} cannot be run ({err}); install Helm {}.{} or later, or set {HELM_VARIABLE} to its path",
                MINIMUM_HELM.0, MINIMUM_HELM.1
            ))
        }
        Err(Ran::TimedOut) => {
            return Err(format!(
                "{named}: `helm version` did not finish within {} and was stopped ({HELM_TIMEOUT_VARIABLE} sets the limit)",
                humantime::format_duration(timeout)
            ))
        }
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match parse_version(&version) {
        Some(found) if found >= MINIMUM_HELM => Ok(program),
        Some(_) => Err(format!(
            "{named} is Helm {version}; Helm charts need Helm {}.{} or later",
            MINIMUM_HELM.0, MINIMUM_HELM.1
        )),
        None => Err(format!(
            "{named} does not say its version (`helm version` printed {version:?}); Helm charts need Helm {}.{} or later",
            MINIMUM_HELM.0, MINIMUM_HELM.1
        )),
    }
}

/// `v4.3.2` → (4, 3).
fn parse_version(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
}

/// What one `helm template` run is given.
pub(crate) struct Invocation<'a> {
    /// The chart folder as the user knows it (for messages and object sources).
    pub dir: &'a Path,
    pub files: &'a BTreeMap<String, String>,
    pub binary: &'a BTreeMap<String, Vec<u8>>,
    pub release: &'a str,
    pub namespace: &'a str,
    /// `spec.version`: the chart's `appVersion` in the copy that is rendered.
    pub app_version: &'a str,
    /// The merged values, passed on stdin (`-f -`): secret values never touch the disk.
    pub values: &'a Value,
    /// `None` outside a cluster (`template`, `lint`): Helm's own defaults.
    pub capabilities: Option<&'a Capabilities>,
    /// The kube context of the cluster it renders for, named when helm hangs.
    pub context: &'a str,
}

/// Renders the chart with `helm template` and returns its objects and its hooks
/// (`engine::hooks`), each with the chart file it came from.
pub(crate) fn render(
    call: &Invocation<'_>,
) -> Result<(Vec<RenderedObject>, Vec<RenderedHook>), RenderError> {
    let program = helm_program()?;
    let workspace = tempfile::Builder::new()
        .prefix("flotilla-helm-")
        .tempdir()
        .map_err(|source| RenderError::HelmIo {
            what: "cannot make a folder to render the chart in".to_owned(),
            source,
        })?;
    let chart_dir = workspace.path().join("chart");
    write_chart(&chart_dir, call)?;

    let timeout = helm_timeout()?;
    let mut command = Command::new(program);
    command
        .arg("template")
        .arg(call.release)
        .arg(&chart_dir)
        .args(["--namespace", call.namespace])
        .args(["--values", "-"])
        // Test hooks too: they are read (and checked) with the others, and never run by
        // a deploy.
        .arg("--include-crds")
        // Helm must not reach for a cluster, a repository or the user's own plugins.
        .env("HELM_CONFIG_HOME", workspace.path().join("config"))
        .env("HELM_CACHE_HOME", workspace.path().join("cache"))
        .env("HELM_DATA_HOME", workspace.path().join("data"))
        .env_remove("HELM_KUBECONTEXT");
    if let Some(capabilities) = call.capabilities {
        command.args(["--kube-version", &capabilities.kube_version]);
        for version in &capabilities.api_versions {
            command.args(["--api-versions", version]);
        }
    }
    // The values are JSON, which is YAML.
    let values = serde_json::to_vec(&without_empty_maps(call.values)).unwrap_or_default();
    let output = run_helm(&mut command, values, timeout, || {
        RenderError::HelmTemplate {
            chart: call.dir.to_path_buf(),
            message: format!(
                "{} did not finish within {} and was stopped, with what it started ({HELM_TIMEOUT_VARIABLE} sets the limit; nothing was changed)",
                program.display(),
                humantime::format_duration(timeout)
            ),
        }
        // Which cluster's render hung, whichever command rendered it.
        .in_cluster(call.context)
    })?;
    let in_workspace = chart_dir.display().to_string();
    let user_dir = call.dir.display().to_string();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .map(|line| line.trim_start_matches("Error: "))
            // Helm's hint about its own flag, which flotilla does not pass through.
            .filter(|line| !line.trim().is_empty() && !line.starts_with("Use --debug"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(&in_workspace, &user_dir);
        return Err(RenderError::HelmTemplate {
            chart: call.dir.to_path_buf(),
            message,
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let objects = split_output(call.dir, &stdout)?;
    split_hooks(objects)
}

/// The limit of one `helm` run: [`HELM_TIMEOUT_VARIABLE`], else
/// [`DEFAULT_HELM_TIMEOUT`].
pub(super) fn helm_timeout() -> Result<Duration, RenderError> {
    let Some(text) = std::env::var_os(HELM_TIMEOUT_VARIABLE).filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_HELM_TIMEOUT);
    };
    let text = text.to_string_lossy();
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|limit| !limit.is_zero())
        .ok_or_else(|| RenderError::Helm {
            message: format!("{HELM_TIMEOUT_VARIABLE}={text:?} is not a duration (`90s`, `5m`)"),
        })
}

/// What a run of the `helm` program gave.
pub(super) struct Output {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

/// Why a run of the `helm` program gave nothing.
pub(super) enum Ran {
    /// It could not be started or waited for.
    Failed(std::io::Error),
    /// It was still running at its limit and was killed.
    TimedOut,
}

/// Runs `command` with `input` on its stdin, in a process group of its own, and kills
/// the group if it has not finished within `timeout` (a plugin or a subprocess that
/// holds its output open goes with it). The wait blocks its thread: on a multi-thread
/// runtime the worker first hands its other tasks over (`block_in_place`), so that a
/// render never stalls the runs, leases and watches sharing that worker.
pub(super) fn run_bounded(
    command: &mut Command,
    input: Vec<u8>,
    timeout: Duration,
) -> Result<Output, Ran> {
    use std::os::unix::process::CommandExt;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let run = move || {
        let mut child = command.spawn().map_err(Ran::Failed)?;
        let group = rustix::process::Pid::from_raw(child.id() as i32);
        let stdin = child.stdin.take();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            // Written from its own thread while stdout and stderr are read: a pipe that
            // fills up on either side must not stop the other. A helm that exits before
            // reading says why on stderr.
            if let Some(mut stdin) = stdin {
                scope.spawn(move || {
                    let _ = stdin.write_all(&input);
                });
            }
            scope.spawn(move || {
                let _ = done.send(child.wait_with_output());
            });
            match finished.recv_timeout(timeout) {
                Ok(Ok(output)) => Ok(Output {
                    status: output.status,
                    stdout: output.stdout,
                    stderr: output.stderr,
                }),
                Ok(Err(err)) => Err(Ran::Failed(err)),
                Err(_) => {
                    // The waiting thread ends once the group is gone and its pipes
                    // closed; the scope joins it.
                    if let Some(group) = group {
                        let _ = rustix::process::kill_process_group(
                            group,
                            rustix::process::Signal::KILL,
                        );
                    }
                    Err(Ran::TimedOut)
                }
            }
        })
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

/// [`run_bounded`] for a step of a render: a program that cannot be run is
/// [`RenderError::HelmIo`], one stopped at its limit the error `timed_out` makes.
pub(super) fn run_helm(
    command: &mut Command,
    input: Vec<u8>,
    timeout: Duration,
    timed_out: impl FnOnce() -> RenderError,
) -> Result<Output, RenderError> {
    let program = PathBuf::from(command.get_program());
    run_bounded(command, input, timeout).map_err(|ran| match ran {
        Ran::Failed(source) => RenderError::HelmIo {
            what: format!("cannot run {}", program.display()),
            source,
        },
        Ran::TimedOut => timed_out(),
    })
}

/// The values without `secrets` and `scaling` when they are empty: a chart whose
/// `values.schema.json` allows no unknown key still renders for a release without
/// secrets or replica counts.
fn without_empty_maps(values: &Value) -> Value {
    let mut values = values.clone();
    if let Value::Object(map) = &mut values {
        for key in ["secrets", "scaling"] {
            if map
                .get(key)
                .is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty()))
            {
                map.remove(key);
            }
        }
    }
    values
}

/// Writes the chart's files under `dir`, `appVersion` set to the release's version.
fn write_chart(dir: &Path, call: &Invocation<'_>) -> Result<(), RenderError> {
    let write = |rel: &str, bytes: &[u8]| -> Result<(), RenderError> {
        let failed = |source: std::io::Error| RenderError::HelmIo {
            what: format!("cannot write the chart to render it ({rel})"),
            source,
        };
        // Only paths inside the chart folder (a record is data, not a file system).
        let inside = Path::new(rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            return Err(failed(std::io::Error::other(
                "not a path inside the chart folder",
            )));
        }
        let file = dir.join(rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        std::fs::write(&file, bytes).map_err(failed)
    };
    for (rel, text) in call.files {
        if rel == "Chart.yaml" {
            write(rel, with_app_version(text, call.app_version).as_bytes())?;
        } else {
            write(rel, text.as_bytes())?;
        }
    }
    for (rel, bytes) in call.binary {
        write(rel, bytes)?;
    }
    Ok(())
}

/// `Chart.yaml` with `appVersion` set: charts use `.Chart.AppVersion` as the image tag,
/// as flotilla charts use `Release.Version`.
fn with_app_version(chart_yaml: &str, version: &str) -> String {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(chart_yaml) {
        Ok(serde_yaml_ng::Value::Mapping(mut map)) => {
            map.insert("appVersion".into(), version.into());
            serde_yaml_ng::to_string(&map).unwrap_or_else(|_| chart_yaml.to_owned())
        }
        _ => chart_yaml.to_owned(),
    }
}

/// `helm template`'s output into objects: every document starts with `# Source:
/// <chart>/<path>`, the chart file it came from (a subchart's under `charts/`).
fn split_output(dir: &Path, output: &str) -> Result<Vec<RenderedObject>, RenderError> {
    let mut objects = Vec::new();
    let mut documents: Vec<(PathBuf, String)> = Vec::new();
    for line in output.lines() {
        if line.trim_end() == "---" {
            documents.push((dir.to_path_buf(), String::new()));
            continue;
        }
        if documents.is_empty() {
            documents.push((dir.to_path_buf(), String::new()));
        }
        let Some((source, text)) = documents.last_mut() else {
            continue;
        };
        if let Some(path) = line.strip_prefix("# Source: ") {
            // `demo/templates/web.yaml` → `templates/web.yaml` of the chart folder.
            let inside = path.split_once('/').map_or(path, |(_, rest)| rest);
            *source = dir.join(inside.trim());
        }
        text.push_str(line);
        text.push('\n');
    }
    for (source, text) in documents {
        split_documents(&source, &text, &mut objects)?;
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::super::hooks::HookEvent;
    use super::*;

    #[test]
    fn go_templates_make_a_helm_chart_and_handlebars_does_not() {
        let v2 = "apiVersion: v2\nname: a\nversion: 1.0.0\n";
        let go = [("templates/web.yaml", "name: {{ .Release.Name }}")];
        assert_eq!(detect(v2, go.into_iter()), ChartType::Helm);
        let trimmed = [("templates/web.yaml", "{{- if .Values.x }}")];
        assert_eq!(detect(v2, trimmed.into_iter()), ChartType::Helm);
        let helpers = [("templates/_helpers.tpl", "")];
        assert_eq!(detect(v2, helpers.into_iter()), ChartType::Helm);
        let handlebars = [(
            "templates/web.yaml",
            "{{!-- a comment --}}\nname: {{Release.Name}}-{{quote Values.x}}\n{{~#if Values.y}}x{{/if~}}",
        )];
        assert_eq!(detect(v2, handlebars.into_iter()), ChartType::Flotilla);
        // Without Helm's apiVersion, Go-looking text is still a flotilla chart (its
        // render will say what is wrong).
        let plain = "name: a\nversion: 1.0.0\n";
        assert_eq!(detect(plain, go.into_iter()), ChartType::Flotilla);
        let umbrella = "apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies: []\n";
        assert_eq!(detect(umbrella, std::iter::empty()), ChartType::Helm);
    }

    #[test]
    fn helm_versions_are_compared_by_major_and_minor() {
        assert_eq!(parse_version("v4.3.2"), Some((4, 3)));
        assert_eq!(parse_version("v3.10.0+g1234"), Some((3, 10)));
        assert_eq!(parse_version("3.9"), Some((3, 9)));
        assert!(parse_version("v3.9.4").unwrap() < MINIMUM_HELM);
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn the_output_is_split_by_source_and_hooks_are_kept_apart() {
        let output = "---\n# Source: demo/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n---\n# Source: demo/charts/sub/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\n# Source: demo/templates/tests/t.yaml\napiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    \"helm.sh/hook\": test\n---\n# Source: demo/templates/job.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n";
        let (objects, hooks) =
            split_hooks(split_output(Path::new("chart"), output).unwrap()).unwrap();
        let found: Vec<(String, &str)> = objects
            .iter()
            .map(|o| (o.source.display().to_string(), o.name()))
            .collect();
        assert_eq!(
            found,
            [
                ("chart/templates/sa.yaml".to_string(), "a"),
                ("chart/charts/sub/templates/cm.yaml".to_string(), "b")
            ]
        );
        let hooks: Vec<(String, &str, Vec<HookEvent>)> = hooks
            .iter()
            .map(|h| {
                (
                    h.object.source.display().to_string(),
                    h.object.name(),
                    h.hook.events.clone(),
                )
            })
            .collect();
        assert_eq!(
            hooks,
            [
                (
                    "chart/templates/tests/t.yaml".to_string(),
                    "t",
                    vec![HookEvent::Test]
                ),
                (
                    "chart/templates/job.yaml".to_string(),
                    "migrate",
                    vec![HookEvent::PreInstall, HookEvent::PreUpgrade]
                )
            ]
        );
    }

    #[test]
    fn a_recorded_file_outside_the_chart_folder_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let files = BTreeMap::from([("../escaped.yaml".to_owned(), "x".to_owned())]);
        let call = Invocation {
            dir: Path::new("chart"),
            files: &files,
            binary: &BTreeMap::new(),
            release: "r",
            namespace: "ns",
            app_version: "1",
            values: &Value::Null,
            capabilities: None,
            context: "dev-1",
        };
        let err = write_chart(&dir.path().join("chart"), &call).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write the chart to render it (../escaped.yaml): not a path inside the chart folder"
        );
        let source =
            std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(source.map(|io| io.kind()), Some(std::io::ErrorKind::Other));
        assert!(!dir.path().join("escaped.yaml").exists());
    }

    #[test]
    fn a_symbolic_link_to_a_parent_folder_ends_in_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: a\nversion: 1.0.0\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        let err = read_chart_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("nest more than"), "{err}");
    }

    /// A chart folder as `helm create` leaves it, with `extra` files written in.
    fn chart_with(extra: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"),
            ("values.yaml", "replicaCount: 1\n"),
            ("templates/web.yaml", "kind: ConfigMap\nname: {{ .Release.Name }}\n"),
            (".helmignore", "# Patterns to ignore when building packages.\n.DS_Store\n.git/\n*.swp\n*.bak\n*~\n.idea/\n"),
        ];
        for (rel, text) in files.iter().chain(extra) {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn what_helmignore_lists_is_never_read() {
        let dir = chart_with(&[
            ("secrets.yaml.dec", "password: helmignore-canary-1"),
            ("values.yaml.bak", "old"),
            ("files/app.conf", "level=info"),
            ("files/private/key.pem", "helmignore-canary-2"),
        ]);
        let mut ignore = std::fs::read_to_string(dir.path().join(".helmignore")).unwrap();
        ignore.push_str("secrets.yaml.dec\n/files/private/\n");
        std::fs::write(dir.path().join(".helmignore"), ignore).unwrap();
        let (text, binary) = read_chart_dir(dir.path()).unwrap();
        let names: Vec<&str> = text.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "Chart.yaml",
                "files/app.conf",
                "templates/web.yaml",
                "values.yaml"
            ]
        );
        assert!(binary.is_empty());
    }

    #[test]
    fn an_unpacked_subchart_and_a_local_dependency_keep_their_own_helmignore() {
        let dir = chart_with(&[
            (
                "charts/sub/Chart.yaml",
                "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            ),
            ("charts/sub/.helmignore", "*.dec\n"),
            ("charts/sub/token.dec", "helmignore-canary-3"),
            ("charts/sub/values.yaml", "a: 1\n"),
        ]);
        let dependency = tempfile::tempdir().unwrap();
        for (rel, text) in [
            ("Chart.yaml", "apiVersion: v2\nname: lib\nversion: 0.1.0\n"),
            (".helmignore", "local-*\n"),
            ("local-notes.txt", "helmignore-canary-4"),
            ("values.yaml", "b: 2\n"),
        ] {
            std::fs::write(dependency.path().join(rel), text).unwrap();
        }
        std::fs::write(
            dir.path().join("Chart.yaml"),
            format!(
                "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n  - name: lib\n    version: 0.1.0\n    repository: file://{}\n",
                dependency.path().display()
            ),
        )
        .unwrap();
        let (text, _) = read_chart_dir(dir.path()).unwrap();
        let all = format!("{text:?}");
        assert!(!all.contains("helmignore-canary"), "{all}");
        assert!(text.contains_key("charts/sub/values.yaml"), "{all}");
        assert!(text.contains_key("charts/lib/values.yaml"), "{all}");
    }

    #[test]
    fn a_symbolic_link_out_of_the_chart_is_refused_naming_link_and_target() {
        let outside = tempfile::tempdir().unwrap();
        let token = outside.path().join("vault-token");
        std::fs::write(&token, "hvs.link-canary").unwrap();
        let dir = chart_with(&[("files/app.conf", "level=info")]);
        std::os::unix::fs::symlink(&token, dir.path().join("files/t")).unwrap();
        let err = read_chart_dir(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{}: a symbolic link to {}, outside the chart folder {}",
                dir.path().join("files/t").display(),
                token.display(),
                dir.path().display()
            )),
            "{text}"
        );
        assert!(!text.contains("link-canary"));

        // A link to a folder outside, too; a link inside is read; a listed one is not.
        std::fs::remove_file(dir.path().join("files/t")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("files/home")).unwrap();
        assert!(matches!(
            read_chart_dir(dir.path()),
            Err(RenderError::ChartLink { .. })
        ));
        std::fs::write(dir.path().join(".helmignore"), "files/home\n").unwrap();
        std::os::unix::fs::symlink("app.conf", dir.path().join("files/same.conf")).unwrap();
        let (text, _) = read_chart_dir(dir.path()).unwrap();
        assert_eq!(text["files/same.conf"], "level=info");
        assert!(!text.keys().any(|k| k.starts_with("files/home")));

        // A link that leads nowhere.
        std::os::unix::fs::symlink("/nonexistent/flotilla", dir.path().join("gone")).unwrap();
        let err = read_chart_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("a symbolic link to /nonexistent/flotilla, which cannot be followed"),
            "{err}"
        );
    }

    #[test]
    fn file_and_chart_sizes_are_bounded_naming_the_file() {
        let big = "x".repeat(MAX_FILE_BYTES as usize + 1);
        let dir = chart_with(&[("files/dump.sql", &big)]);
        let err = read_chart_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: {} bytes, more than the {MAX_FILE_BYTES} bytes (1 MiB) a chart file may have",
                dir.path().join("files/dump.sql").display(),
                MAX_FILE_BYTES + 1
            )),
            "{err}"
        );
        let part = "y".repeat(MAX_FILE_BYTES as usize);
        let parts: Vec<(String, &str)> = (0..9)
            .map(|i| (format!("files/part{i}"), part.as_str()))
            .collect();
        let parts: Vec<(&str, &str)> = parts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let dir = chart_with(&parts);
        let err = read_chart_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: the chart's files add up to more than {MAX_CHART_BYTES} bytes (8 MiB) with {}",
                dir.path().display(),
                dir.path().join("files/part7").display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_pipe_in_the_chart_is_refused_without_waiting_on_it() {
        let dir = chart_with(&[]);
        let fifo = dir.path().join("files-pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_chart_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn the_rendered_copy_carries_the_release_version_as_app_version() {
        let text = with_app_version(
            "apiVersion: v2\nname: demo\nappVersion: \"1.16.0\"\n",
            "2.0.1",
        );
        let map: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(map["appVersion"].as_str(), Some("2.0.1"));
        assert_eq!(map["name"].as_str(), Some("demo"));
    }
}
