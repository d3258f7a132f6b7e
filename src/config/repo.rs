//! The deployment repo: finding and loading `environments/<env>.yaml` and
//! `releases/<name>/release.yaml` under its root.

use super::validate::{
    check_environment, check_environments, check_release, check_release_contexts, nearest,
};
use super::{yaml, ConfigError, Environment, LoadedEnvironment, LoadedRelease, ReleaseDescriptor};
use std::path::{Path, PathBuf};

pub const ENVIRONMENTS_DIR: &str = "environments";
pub const RELEASES_DIR: &str = "releases";
pub const RELEASE_FILE: &str = "release.yaml";
pub const CHART_FILE: &str = "Chart.yaml";

/// A file's name (environment or release folder) and the outcome of loading it.
pub type Named<T> = (String, Result<T, ConfigError>);

/// The deployment repo (`--root`): the folder holding `releases/` and `environments/`.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    /// `-n/--namespace`: in place of every descriptor's `metadata.namespace`.
    namespace: Option<String>,
}

impl Repo {
    /// Errors when `root` lacks `releases/` or `environments/`.
    pub fn open(root: &Path) -> Result<Repo, ConfigError> {
        let missing: Vec<&str> = [RELEASES_DIR, ENVIRONMENTS_DIR]
            .into_iter()
            .filter(|dir| !root.join(dir).is_dir())
            .collect();
        if !missing.is_empty() {
            let what = missing
                .iter()
                .map(|d| format!("no {d}/ folder"))
                .collect::<Vec<_>>()
                .join(" and ");
            return Err(ConfigError::NotARepo {
                root: root.to_path_buf(),
                what,
            });
        }
        Ok(Repo {
            root: root.to_path_buf(),
            namespace: None,
        })
    }

    /// Every release loaded from this repo goes to `namespace` (when given) instead of
    /// its descriptor's `metadata.namespace`, as Helm's `-n` does.
    pub fn with_namespace(mut self, namespace: Option<String>) -> Repo {
        self.namespace = namespace;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path under the root, written without a leading `./` when the root is the
    /// current folder, so messages read `environments/dev.yaml`.
    fn path(&self, parts: &[&str]) -> PathBuf {
        let mut path = if self.root == Path::new(".") {
            PathBuf::new()
        } else {
            self.root.clone()
        };
        for part in parts {
            path.push(part);
        }
        path
    }

    /// `environments/<name>.yaml`.
    pub fn environment(&self, name: &str) -> Result<LoadedEnvironment, ConfigError> {
        let file = self.path(&[ENVIRONMENTS_DIR, &format!("{name}.yaml")]);
        let plain = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
        if !plain || !file.is_file() {
            let known = self.environment_names()?;
            return Err(ConfigError::UnknownEnvironment {
                name: name.to_string(),
                dir: self.path(&[ENVIRONMENTS_DIR]),
                near: nearest(name, known.iter().map(String::as_str)).map(str::to_string),
                known: known.iter().map(|n| format!("{n:?}")).collect(),
            });
        }
        load_environment(&file)
    }

    /// Every environment, in name order, checked together ([`check_environments`]).
    /// Any broken file is an error (all are reported).
    pub fn environments(&self) -> Result<Vec<LoadedEnvironment>, ConfigError> {
        let environments = collect(self.each_environment()?)?;
        check_environments(&environments)?;
        Ok(environments)
    }

    /// Every environment by name, each loaded on its own, so that one broken file does
    /// not hide the others (for `lint`).
    pub fn each_environment(&self) -> Result<Vec<Named<LoadedEnvironment>>, ConfigError> {
        Ok(self
            .environment_names()?
            .into_iter()
            .map(|name| {
                let loaded = self.environment(&name);
                (name, loaded)
            })
            .collect())
    }

    /// The names of `environments/*.yaml`, sorted. A `.yml` file is an error rather than
    /// silently ignored.
    pub fn environment_names(&self) -> Result<Vec<String>, ConfigError> {
        let dir = self.path(&[ENVIRONMENTS_DIR]);
        let mut names = Vec::new();
        let mut errors = Vec::new();
        for entry in read_dir(&dir)? {
            let path = dir.join(&entry);
            match path.extension().and_then(|e| e.to_str()) {
                Some("yaml") if path.is_file() => {
                    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                        names.push(stem.to_string());
                    }
                }
                Some("yml") => errors.push(ConfigError::Invalid {
                    file: path.clone(),
                    line: None,
                    field: String::new(),
                    message: format!(
                        "environment files end in .yaml; rename it to {}",
                        path.with_extension("yaml").display()
                    ),
                }),
                _ => {}
            }
        }
        ConfigError::from_list(errors)?;
        names.sort();
        Ok(names)
    }

    /// The one environment whose `branch` is `branch`; none or several is an error.
    pub fn environment_for_branch(&self, branch: &str) -> Result<LoadedEnvironment, ConfigError> {
        let mut all = self.environments()?;
        let matches: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, e)| e.environment.branch.as_deref() == Some(branch))
            .map(|(i, _)| i)
            .collect();
        if let [one] = matches[..] {
            return Ok(all.swap_remove(one));
        }
        let known = all
            .iter()
            .filter_map(|e| {
                e.environment
                    .branch
                    .as_ref()
                    .map(|b| format!("{b:?} → {}", e.environment.name))
            })
            .collect();
        Err(ConfigError::Branch {
            branch: branch.to_string(),
            matches: matches
                .iter()
                .map(|&i| all[i].environment.name.clone())
                .collect(),
            known,
        })
    }

    /// A release by its folder name under `releases/`, or by the path of its
    /// `release.yaml` (or of the folder holding it), relative to the current folder or to
    /// the root.
    pub fn release(&self, name_or_path: &str) -> Result<LoadedRelease, ConfigError> {
        let looks_like_path = name_or_path.contains(['/', '\\']) || name_or_path.ends_with(".yaml");
        if looks_like_path {
            let given = Path::new(name_or_path);
            let candidates = [given.to_path_buf(), self.root.join(given)];
            for candidate in candidates {
                if candidate.is_file() {
                    return self.load_release(&candidate);
                }
                if candidate.is_dir() && candidate.join(RELEASE_FILE).is_file() {
                    return self.load_release(&candidate.join(RELEASE_FILE));
                }
            }
            return Err(ConfigError::Read {
                file: given.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no such release descriptor (nor a folder holding {RELEASE_FILE})"),
                ),
            });
        }
        let file = self.path(&[RELEASES_DIR, name_or_path, RELEASE_FILE]);
        if !file.is_file() {
            let known = self.release_names()?;
            return Err(ConfigError::UnknownRelease {
                name: name_or_path.to_string(),
                dir: self.path(&[RELEASES_DIR]),
                near: nearest(name_or_path, known.iter().map(String::as_str)).map(str::to_string),
                known: known.iter().map(|n| format!("{n:?}")).collect(),
            });
        }
        self.load_release(&file)
    }

    /// Every release under `releases/`, in name order. A folder without `release.yaml`
    /// is an error, as is any broken descriptor (all are reported).
    pub fn releases(&self) -> Result<Vec<LoadedRelease>, ConfigError> {
        collect(self.each_release()?)
    }

    /// Every folder under `releases/` by name, each loaded on its own, so that one broken
    /// descriptor does not hide the others (for `lint`).
    pub fn each_release(&self) -> Result<Vec<Named<LoadedRelease>>, ConfigError> {
        let dir = self.path(&[RELEASES_DIR]);
        let mut all = Vec::new();
        for name in read_dir(&dir)? {
            let folder = dir.join(&name);
            if !folder.is_dir() {
                continue;
            }
            let file = folder.join(RELEASE_FILE);
            let loaded = if file.is_file() {
                self.load_release(&file)
            } else {
                Err(ConfigError::Invalid {
                    file: folder,
                    line: None,
                    field: String::new(),
                    message: format!("a release folder needs a {RELEASE_FILE}{}", yml_hint(&file)),
                })
            };
            all.push((name, loaded));
        }
        Ok(all)
    }

    /// Folder names under `releases/` that hold a `release.yaml`.
    pub fn release_names(&self) -> Result<Vec<String>, ConfigError> {
        let dir = self.path(&[RELEASES_DIR]);
        Ok(read_dir(&dir)?
            .into_iter()
            .filter(|name| dir.join(name).join(RELEASE_FILE).is_file())
            .collect())
    }

    /// Every check of a release for one environment: those of
    /// [`check_release_contexts`] against every environment of the repo, then
    /// [`super::check_release_for_environment`].
    pub fn check_release(
        &self,
        release: &LoadedRelease,
        env: &LoadedEnvironment,
    ) -> Result<(), ConfigError> {
        let environments = self.environments()?;
        let mut errors = Vec::new();
        if let Err(err) = check_release_contexts(release, &environments) {
            errors.push(err);
        }
        if let Err(err) = super::check_release_for_environment(release, env) {
            errors.push(err);
        }
        ConfigError::from_list(errors)
    }

    /// The folder name when `file` is `<root>/releases/<folder>/release.yaml`.
    fn release_folder(&self, file: &Path) -> Option<String> {
        let parent = file.parent()?;
        let releases = parent.parent()?;
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if file.file_name()? == RELEASE_FILE && same(releases, &self.root.join(RELEASES_DIR)) {
            parent.file_name()?.to_str().map(str::to_string)
        } else {
            None
        }
    }

    fn load_release(&self, file: &Path) -> Result<LoadedRelease, ConfigError> {
        let mut release = load_release(file, self.release_folder(file).as_deref())?;
        if let Some(namespace) = &self.namespace {
            release.descriptor.metadata.namespace = namespace.clone();
        }
        Ok(release)
    }
}

/// The loaded items, or every error among them.
fn collect<T>(items: Vec<Named<T>>) -> Result<Vec<T>, ConfigError> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for (_, item) in items {
        match item {
            Ok(item) => loaded.push(item),
            Err(err) => errors.push(err),
        }
    }
    ConfigError::from_list(errors)?;
    Ok(loaded)
}

/// Parses and checks one environment file.
pub fn load_environment(file: &Path) -> Result<LoadedEnvironment, ConfigError> {
    let (environment, text): (Environment, String) = yaml::read(file)?;
    check_environment(file, &text, &environment)?;
    Ok(LoadedEnvironment {
        file: file.to_path_buf(),
        environment,
    })
}

/// Parses and checks one release descriptor and finds its chart. `folder` is the name of
/// its folder under `releases/`, which the release's name must equal.
pub fn load_release(file: &Path, folder: Option<&str>) -> Result<LoadedRelease, ConfigError> {
    let (mut descriptor, text): (ReleaseDescriptor, String) = yaml::read(file)?;
    // `values:` left empty means no values, not a mistake.
    let empty = |v: &mut serde_yaml_ng::Value| {
        if v.is_null() {
            *v = serde_yaml_ng::Value::Mapping(Default::default());
        }
    };
    empty(&mut descriptor.spec.values);
    descriptor
        .spec
        .environments
        .values_mut()
        .for_each(|o| empty(&mut o.values));
    check_release(file, &text, &descriptor, folder)?;
    let base = file.parent().unwrap_or(Path::new(""));
    // A chart by reference has no folder in the repo until it is pulled.
    let chart_dir = if descriptor.spec.chart_reference().is_some() {
        base.to_path_buf()
    } else {
        normalise(&base.join(&descriptor.spec.chart))
    };
    // A chart by reference (checked with the descriptor) is pulled when it is rendered,
    // not when the descriptor is read: `status`, `history` and `rollback` never need its
    // registry.
    let chart_problem = if descriptor.spec.chart_reference().is_some() {
        None
    } else if !chart_dir.is_dir() {
        Some(format!(
            "{:?}: there is no folder {}",
            descriptor.spec.chart,
            chart_dir.display()
        ))
    } else if !chart_dir.join(CHART_FILE).is_file() {
        Some(format!(
            "{:?}: the folder {} has no {CHART_FILE}{}",
            descriptor.spec.chart,
            chart_dir.display(),
            yml_hint(&chart_dir.join(CHART_FILE))
        ))
    } else {
        None
    };
    if let Some(message) = chart_problem {
        let field = yaml::FieldPath::root().key("spec").key("chart");
        return Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            line: yaml::line_of(&text, &field),
            field: field.to_string(),
            message,
        });
    }
    Ok(LoadedRelease {
        file: file.to_path_buf(),
        chart_dir,
        descriptor,
    })
}

/// A hint when `file` is missing but its `.yml` twin is there.
fn yml_hint(file: &Path) -> String {
    let twin = file.with_extension("yml");
    if twin.is_file() {
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        format!(
            " ({} is there: rename it to {})",
            name(&twin).unwrap_or_default(),
            name(file).unwrap_or_default()
        )
    } else {
        String::new()
    }
}

/// `releases/app1/./chart` → `releases/app1/chart`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Entry names of a folder, sorted, hidden ones left out.
fn read_dir(dir: &Path) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        file: dir.to_path_buf(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read {
            file: dir.to_path_buf(),
            source,
        })?;
        if let Some(name) = entry.file_name().to_str() {
            if !name.starts_with('.') {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}
