//! Loading a chart folder and compiling its templates once.

use super::error::RenderError;
use super::helpers;
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
    pub(crate) registry: Handlebars<'static>,
}

/// Where a chart's files come from: its folder, or a record's copy of them.
enum Source<'a> {
    Dir,
    Files(&'a BTreeMap<String, String>),
}

impl Source<'_> {
    /// The text of `rel` (`templates/web.yaml`), `None` when there is no such file.
    fn read(&self, rel: &str, file: &Path) -> Result<Option<String>, RenderError> {
        match self {
            Source::Dir if !file.exists() => Ok(None),
            Source::Dir => read(file).map(Some),
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
    /// Read and compile the chart in `dir`. Errors name the chart file (and line).
    pub fn load(dir: &Path) -> Result<Chart, RenderError> {
        Chart::compile(dir, &Source::Dir)
    }

    /// Compile a chart from a copy of its files (as [`Chart::files`] gives them): a
    /// recorded revision's chart. `label` stands for its folder in messages.
    pub fn from_files(
        label: &Path,
        files: &BTreeMap<String, String>,
    ) -> Result<Chart, RenderError> {
        Chart::compile(label, &Source::Files(files))
    }

    /// The files the chart was compiled from, by path inside the chart folder.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    fn compile(dir: &Path, source: &Source<'_>) -> Result<Chart, RenderError> {
        let mut files = BTreeMap::new();
        let mut read_file = |rel: &str| -> Result<Option<String>, RenderError> {
            let text = source.read(rel, &dir.join(rel))?;
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
        for (field, value) in [("name", &metadata.name), ("version", &metadata.version)] {
            if value.trim().is_empty() {
                return Err(RenderError::ChartFile {
                    file: metadata_file,
                    line: None,
                    field: field.into(),
                    message: "must not be empty".into(),
                });
            }
        }

        let values_file = dir.join("values.yaml");
        let values = if let Some(text) = read_file("values.yaml")? {
            match parse_yaml::<Value>(&values_file, &text)? {
                Value::Null => Value::Object(Default::default()),
                map @ Value::Object(_) => map,
                other => {
                    return Err(RenderError::ChartFile {
                        file: values_file,
                        line: None,
                        field: "(top level)".into(),
                        message: format!("must be a map of values, found {}", kind_of(&other)),
                    })
                }
            }
        } else {
            Value::Object(Default::default())
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

        Ok(Chart {
            dir: dir.to_path_buf(),
            metadata,
            values,
            templates,
            partials,
            files,
            registry,
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
    let deserializer = serde_yaml::Deserializer::from_str(text);
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
            message: super::values::yaml_message(&inner),
        }
    })
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
