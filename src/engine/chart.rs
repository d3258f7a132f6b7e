//! Loading a chart folder and compiling its templates once.

use super::error::RenderError;
use super::helpers;
use crate::config::yaml::{kind_of, yaml_message};
use crate::config::ChartType;
use handlebars::{Handlebars, TemplateError, TemplateErrorReason};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `Chart.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartMetadata {
    pub name: String,
    pub version: String,
    /// Accepted so a chart written for Helm (`apiVersion: v2`) loads; not used.
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A loaded chart: its metadata, default values and compiled templates.
pub struct Chart {
    dir: PathBuf,
    pub metadata: ChartMetadata,
    /// `values.yaml`, a map (empty when the file is absent).
    pub values: Value,
    /// Template names (`templates/web.yaml`) in render order (by file name).
    templates: Vec<String>,
    /// Partial name (`labels`) → its file, to name the file in errors.
    partials: BTreeMap<String, PathBuf>,
    /// Every file the chart was compiled from, by path inside the chart folder
    /// (`Chart.yaml`, `values.yaml`, `templates/web.yaml`): what a release record keeps so
    /// that a revision can be rendered again without the checkout.
    files: BTreeMap<String, String>,
    /// Helm charts: the files that are not text (packed subcharts under `charts/`).
    binary: BTreeMap<String, Vec<u8>>,
    chart_type: ChartType,
    /// A chart by reference: where it was pulled from, and its package digest.
    origin: Option<super::fetch::ChartOrigin>,
    pub(crate) registry: Handlebars<'static>,
}

/// Where a chart's files come from: its folder, or a record's copy of them.
enum Source<'a> {
    Dir,
    Files(&'a BTreeMap<String, String>),
}

impl Source<'_> {
    /// The text of `rel` (`templates/web.yaml`) of the chart in `dir`, `None` when
    /// there is no such file. Read as a Helm chart's files are (`helm::ChartRoot`): it
    /// is recorded with every revision, so a link out of the chart folder, a file that
    /// is not a regular one or one too large is an error naming it.
    fn read(&self, dir: &Path, rel: &str) -> Result<Option<String>, RenderError> {
        match self {
            Source::Dir => {
                let file = dir.join(rel);
                if matches!(std::fs::symlink_metadata(&file), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                {
                    return Ok(None);
                }
                let Some(bytes) = super::helm::ChartRoot::new(dir)?.read(&file)? else {
                    return Ok(None);
                };
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| RenderError::Read {
                        file,
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "stream did not contain valid UTF-8",
                        ),
                    })
            }
            Source::Files(files) => Ok(files.get(rel).cloned()),
        }
    }

    /// The file names under `templates/`, sorted, without editor and VCS leftovers.
    fn template_names(&self, templates_dir: &Path) -> Result<Vec<String>, RenderError> {
        let mut names = Vec::new();
        match self {
            Source::Dir => {
                let entries =
                    std::fs::read_dir(templates_dir).map_err(|source| RenderError::Read {
                        file: templates_dir.to_path_buf(),
                        source,
                    })?;
                for entry in entries {
                    let entry = entry.map_err(|source| RenderError::Read {
                        file: templates_dir.to_path_buf(),
                        source,
                    })?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // Editor and VCS leftovers (`.deployment.yaml.swp`, `.gitkeep`).
                    if name.starts_with('.') || entry.path().is_dir() {
                        continue;
                    }
                    names.push(name);
                }
            }
            Source::Files(files) => names.extend(
                files
                    .keys()
                    .filter_map(|rel| rel.strip_prefix("templates/"))
                    .map(str::to_owned),
            ),
        }
        names.sort();
        Ok(names)
    }
}

impl std::fmt::Debug for Chart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chart")
            .field("dir", &self.dir)
            .field("metadata", &self.metadata)
            .field("templates", &self.templates)
            .field("partials", &self.partials.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Chart {
    /// Read and compile the chart in `dir`, of the type its files show
    /// ([`Chart::load_as`]). Errors name the chart file (and line).
    pub fn load(dir: &Path) -> Result<Chart, RenderError> {
        Chart::compile(dir, &Source::Dir, None)
    }

    /// The chart of a release: of the descriptor's `spec.chartType`, else detected. A
    /// chart by reference is pulled (or read from the cache, docs/helm.md); a Helm
    /// chart's dependencies from repositories that `charts/` lacks are built.
    pub fn for_release(release: &crate::config::LoadedRelease) -> Result<Chart, RenderError> {
        let spec = &release.descriptor.spec;
        let mut chart = match spec.chart_reference() {
            Some(reference) => {
                let fetched = super::fetch::fetch(&reference, &release.file)?;
                let mut chart = Chart::load_as(&fetched.dir, spec.chart_type)?;
                chart.origin = Some(fetched.origin);
                chart
            }
            None => Chart::load_as(&release.chart_dir, spec.chart_type)?,
        };
        chart.add_remote_dependencies(&spec.chart_pull.clone().unwrap_or_default())?;
        Ok(chart)
    }

    /// The chart a revision recorded as pulled from `origin`, by its package digest:
    /// from the cache, else pulled again and refused if the digest differs.
    /// `descriptor` is the release file errors name, `pull` its `spec.chartPull`.
    pub fn for_origin(
        origin: &super::fetch::ChartOrigin,
        pull: &crate::config::ChartPull,
        descriptor: &Path,
        chart_type: Option<ChartType>,
    ) -> Result<Chart, RenderError> {
        let dir = super::fetch::fetch_recorded(origin, pull, descriptor)?;
        let mut chart = Chart::load_as(&dir, chart_type)?;
        chart.add_remote_dependencies(pull)?;
        chart.origin = Some(origin.clone());
        Ok(chart)
    }

    /// Where a chart by reference came from; `None` for a chart folder or a record's copy.
    pub fn origin(&self) -> Option<&super::fetch::ChartOrigin> {
        self.origin.as_ref()
    }

    /// A Helm chart's packed dependencies from repositories that it does not hold.
    fn add_remote_dependencies(
        &mut self,
        pull: &crate::config::ChartPull,
    ) -> Result<(), RenderError> {
        if self.chart_type == ChartType::Helm {
            let built =
                super::fetch::remote_dependencies(&self.dir, &self.files, &self.binary, pull)?;
            self.binary.extend(built);
        }
        Ok(())
    }

    /// Read the chart in `dir` as a chart of `chart_type`; `None` detects it: a Helm
    /// chart has `apiVersion: v1` or `v2` in `Chart.yaml` and Go templates, `.tpl`
    /// files, dependencies or subcharts (docs/configuration.md).
    pub fn load_as(dir: &Path, chart_type: Option<ChartType>) -> Result<Chart, RenderError> {
        Chart::compile(dir, &Source::Dir, chart_type)
    }

    /// Compile a chart from a copy of its files (as [`Chart::files`] and
    /// [`Chart::binary_files`] give them): a recorded revision's chart. `label` stands
    /// for its folder in messages.
    pub fn from_files(
        label: &Path,
        files: &BTreeMap<String, String>,
        binary: &BTreeMap<String, Vec<u8>>,
        chart_type: Option<ChartType>,
    ) -> Result<Chart, RenderError> {
        let mut chart = Chart::compile(label, &Source::Files(files), chart_type)?;
        if chart.chart_type == ChartType::Helm {
            chart.binary = binary.clone();
        }
        Ok(chart)
    }

    /// The files the chart was compiled from, by path inside the chart folder.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// A Helm chart's files that are not text (packed subcharts), by path.
    pub fn binary_files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.binary
    }

    pub fn chart_type(&self) -> ChartType {
        self.chart_type
    }

    fn compile(
        dir: &Path,
        source: &Source<'_>,
        chart_type: Option<ChartType>,
    ) -> Result<Chart, RenderError> {
        let chart_type = match chart_type {
            Some(chart_type) => chart_type,
            None => Chart::detect(dir, source)?,
        };
        if chart_type == ChartType::Helm {
            return Chart::helm(dir, source);
        }
        let mut files = BTreeMap::new();
        let mut read_file = |rel: &str| -> Result<Option<String>, RenderError> {
            let text = source.read(dir, rel)?;
            if let Some(text) = &text {
                files.insert(rel.to_owned(), text.clone());
            }
            Ok(text)
        };
        let metadata_file = dir.join("Chart.yaml");
        let metadata_text = match read_file("Chart.yaml")? {
            Some(text) => text,
            // The operating system's own words for a missing file.
            None => read(&metadata_file)?,
        };
        let metadata: ChartMetadata = parse_yaml(&metadata_file, &metadata_text)?;
        require_name_and_version(&metadata, &metadata_file)?;

        let values = match read_file("values.yaml")? {
            Some(text) => values_map(&dir.join("values.yaml"), &text)?,
            None => Value::Object(Default::default()),
        };

        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        // YAML, not HTML: `&` and `<` must come out as written.
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut registry);

        let templates_dir = dir.join("templates");
        let mut templates = Vec::new();
        let mut partials = BTreeMap::new();
        for name in source.template_names(&templates_dir)? {
            let file = templates_dir.join(&name);
            let rel = format!("templates/{name}");
            if let Some(partial) = name.strip_prefix('_').and_then(|n| n.strip_suffix(".hbs")) {
                let source = read_file(&rel)?.unwrap_or_default();
                registry
                    .register_partial(partial, source)
                    .map_err(|err| template_error(&file, err))?;
                partials.insert(partial.to_string(), file);
            } else if !name.starts_with('_') && (name.ends_with(".yaml") || name.ends_with(".yml"))
            {
                let source = read_file(&rel)?.unwrap_or_default();
                let key = rel;
                registry
                    .register_template_string(&key, source)
                    .map_err(|err| template_error(&file, err))?;
                templates.push(key);
            } else {
                return Err(RenderError::NotATemplate { file });
            }
        }

        let bytes: usize = files.values().map(String::len).sum();
        if bytes as u64 > super::helm::MAX_CHART_BYTES {
            return Err(RenderError::ChartSize {
                file: dir.to_path_buf(),
                message: format!(
                    "the chart's files add up to {bytes} bytes, more than the {} bytes (8 MiB) a chart may have: every file of a chart is recorded with each revision",
                    super::helm::MAX_CHART_BYTES
                ),
            });
        }
        Ok(Chart {
            dir: dir.to_path_buf(),
            metadata,
            values,
            templates,
            partials,
            files,
            binary: BTreeMap::new(),
            chart_type: ChartType::Flotilla,
            origin: None,
            registry,
        })
    }

    /// Which type of chart `dir` holds, from `Chart.yaml` and the templates.
    fn detect(dir: &Path, source: &Source<'_>) -> Result<ChartType, RenderError> {
        let Some(chart_yaml) = source.read(dir, "Chart.yaml")? else {
            return Ok(ChartType::Flotilla);
        };
        let files: BTreeMap<String, String> = match source {
            Source::Files(files) => (*files).clone(),
            Source::Dir => {
                let mut found = BTreeMap::new();
                if dir.join("charts").is_dir() {
                    found.insert("charts/".to_owned(), String::new());
                }
                let templates = dir.join("templates");
                if templates.is_dir() {
                    for name in source.template_names(&templates)? {
                        // Only a hint: a file the loader refuses is named by the load.
                        let rel = format!("templates/{name}");
                        let text = source.read(dir, &rel).ok().flatten().unwrap_or_default();
                        found.insert(rel, text);
                    }
                }
                found
            }
        };
        Ok(super::helm::detect(
            &chart_yaml,
            files.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
    }

    /// A Helm chart: every file kept as it is for `helm template`; only `Chart.yaml`'s
    /// `name` and `version` and `values.yaml` are read here.
    fn helm(dir: &Path, source: &Source<'_>) -> Result<Chart, RenderError> {
        let (files, binary) = match source {
            Source::Dir => super::helm::read_chart_dir(dir)?,
            Source::Files(files) => ((*files).clone(), BTreeMap::new()),
        };
        let metadata_file = dir.join("Chart.yaml");
        let metadata_text = match files.get("Chart.yaml") {
            Some(text) => text.clone(),
            None => read(&metadata_file)?,
        };
        let helm_metadata: HelmChartYaml = parse_yaml(&metadata_file, &metadata_text)?;
        let metadata = ChartMetadata {
            name: helm_metadata.name,
            version: helm_metadata.version,
            api_version: helm_metadata.api_version,
            description: helm_metadata.description,
        };
        require_name_and_version(&metadata, &metadata_file)?;
        let values = match files.get("values.yaml") {
            Some(text) => values_map(&dir.join("values.yaml"), text)?,
            None => Value::Object(Default::default()),
        };
        Ok(Chart {
            dir: dir.to_path_buf(),
            metadata,
            values,
            templates: Vec::new(),
            partials: BTreeMap::new(),
            files,
            binary,
            chart_type: ChartType::Helm,
            origin: None,
            registry: Handlebars::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Template names in render order (`templates/web.yaml`).
    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// The file a Handlebars template name refers to: a template or a partial.
    pub(crate) fn file_of(&self, template: &str) -> PathBuf {
        match self.partials.get(template) {
            Some(file) => file.clone(),
            None => self.dir.join(template),
        }
    }
}

/// `Chart.yaml` of a Helm chart: Helm's many fields are its own; only these are read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HelmChartYaml {
    name: String,
    version: String,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `name` and `version` of `Chart.yaml`, both required and not empty.
fn require_name_and_version(metadata: &ChartMetadata, file: &Path) -> Result<(), RenderError> {
    for (field, value) in [("name", &metadata.name), ("version", &metadata.version)] {
        if value.trim().is_empty() {
            return Err(RenderError::ChartFile {
                file: file.to_path_buf(),
                line: None,
                field: field.into(),
                message: "must not be empty".into(),
            });
        }
    }
    Ok(())
}

/// `values.yaml`: a map (empty when the file is).
fn values_map(file: &Path, text: &str) -> Result<Value, RenderError> {
    match parse_yaml::<Value>(file, text)? {
        Value::Null => Ok(Value::Object(Default::default())),
        map @ Value::Object(_) => Ok(map),
        other => Err(RenderError::ChartFile {
            file: file.to_path_buf(),
            line: None,
            field: "(top level)".into(),
            message: format!("must be a map of values, found {}", kind_of(&other)),
        }),
    }
}

fn read(file: &Path) -> Result<String, RenderError> {
    std::fs::read_to_string(file).map_err(|source| RenderError::Read {
        file: file.to_path_buf(),
        source,
    })
}

fn template_error(file: &Path, err: TemplateError) -> RenderError {
    let (line, column) = match err.pos() {
        Some((line, column)) => (Some(line), Some(column)),
        None => (None, None),
    };
    RenderError::Template {
        file: file.to_path_buf(),
        line,
        column,
        message: match err.reason() {
            // pest's list of every token it expected helps nobody.
            TemplateErrorReason::InvalidSyntax(_) => {
                "invalid Handlebars syntax: an unclosed `{{#block}}`, or a malformed tag, before this point".to_string()
            }
            reason => format!("template syntax: {reason}"),
        },
    }
}

/// Parse a chart YAML file, naming the field path and line of the first problem.
fn parse_yaml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, RenderError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // serde_path_to_error writes `?` for a segment it could not name.
        let field = err
            .path()
            .to_string()
            .split('.')
            .filter(|segment| *segment != "?")
            .collect::<Vec<_>>()
            .join(".");
        let inner = err.into_inner();
        RenderError::ChartFile {
            file: file.to_path_buf(),
            line: inner.location().map(|l| l.line()),
            field: if field == "." {
                "(top level)".into()
            } else {
                field
            },
            message: yaml_message(&inner),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handlebars_chart_reads_no_link_out_of_its_folder_and_no_oversized_file() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("token.yaml"), "hvs.chart-link-canary").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("Chart.yaml"), "name: a\nversion: 0.1.0\n").unwrap();
        std::fs::write(
            dir.path().join("templates/web.yaml"),
            "kind: ConfigMap\nmetadata: { name: a }\n",
        )
        .unwrap();
        assert!(Chart::load(dir.path()).is_ok());

        let link = dir.path().join("templates/token.yaml");
        std::os::unix::fs::symlink(outside.path().join("token.yaml"), &link).unwrap();
        let err = Chart::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: a symbolic link to ", link.display()))
                && err.contains("outside the chart folder"),
            "{err}"
        );
        std::fs::remove_file(&link).unwrap();

        // values.yaml is recorded too.
        std::fs::write(
            dir.path().join("values.yaml"),
            format!(
                "a: \"{}\"\n",
                "x".repeat(super::super::helm::MAX_FILE_BYTES as usize)
            ),
        )
        .unwrap();
        let err = Chart::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: ", dir.path().join("values.yaml").display()))
                && err.contains("a chart file may have"),
            "{err}"
        );
    }
}
