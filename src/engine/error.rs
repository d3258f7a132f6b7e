use std::path::PathBuf;
use thiserror::Error;

/// A chart that cannot be loaded or rendered. Always bad input: exit 2.
#[derive(Debug, Error)]
pub enum RenderError {
    /// A chart file that cannot be read (a missing `Chart.yaml`, an unreadable template).
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `Chart.yaml` or `values.yaml` that does not parse or holds a wrong value.
    #[error("{file}{}: {field}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    ChartFile {
        file: PathBuf,
        line: Option<usize>,
        field: String,
        message: String,
    },
    /// A file under `templates/` that is neither a template nor a partial.
    #[error("{file}: not a template: templates are `*.yaml` (or `*.yml`), partials `_NAME.hbs`")]
    NotATemplate { file: PathBuf },
    /// Handlebars syntax or rendering error, located in the chart file.
    #[error("{file}{}: {message}", location(*line, *column))]
    Template {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// The rendered text of a template is not valid YAML.
    #[error(
        "{file}: invalid YAML after rendering, rendered line {line}: {message}\n  {line} | {text}"
    )]
    Yaml {
        file: PathBuf,
        line: usize,
        text: String,
        message: String,
    },
    /// A rendered document that is not a Kubernetes object.
    #[error("{file}: rendered document {document} (from rendered line {line}): {message}")]
    Object {
        file: PathBuf,
        document: usize,
        line: usize,
        message: String,
    },
    /// A replica count for a Deployment the chart did not render.
    #[error("{file}: spec.scaling (context {context:?}): {message}")]
    Scaling {
        file: PathBuf,
        context: String,
        message: String,
    },
    /// An error that happened for one cluster of several.
    #[error("{}", with_cluster(inner, context))]
    InCluster {
        context: String,
        inner: Box<RenderError>,
    },
    /// A chart whose output depends on a secret's value in a way that cannot be stored
    /// without it (other objects, YAML that only the value breaks).
    #[error("{file}: {message}")]
    SecretShape { file: PathBuf, message: String },
    /// A `--set`, `--set-string` or `--set-json` argument that cannot be understood.
    #[error("{flag} {arg:?}: {message}")]
    Set {
        flag: &'static str,
        arg: String,
        message: String,
    },
    /// A `-f/--values` file that cannot be read or is not a map of values.
    #[error("--values {file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    ValuesFile {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// The `helm` program is missing, too old, or cannot be run.
    #[error("{message}")]
    Helm { message: String },
    /// The file system or the process table refused what running `helm` needs.
    #[error("{what}: {source}")]
    HelmIo {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `helm template` refused the chart; `message` is Helm's, scrubbed.
    #[error("{chart}: helm template: {message}")]
    HelmTemplate { chart: PathBuf, message: String },
    /// A Helm hook annotation that cannot be read (`engine::hooks`).
    #[error("{file}: {object}: {field} {value:?}: {message}")]
    HelmHook {
        file: PathBuf,
        object: String,
        field: String,
        value: String,
        message: String,
    },
    /// A symbolic link in a chart folder that leads outside it, or nowhere.
    #[error("{link}: a symbolic link to {}, {reason}: a chart's files are recorded with every revision, so only files inside its folder are read (copy the file in or remove the link; a Helm chart can list it in .helmignore, or name a chart kept elsewhere as a `file://` dependency)", target.display())]
    ChartLink {
        link: PathBuf,
        target: PathBuf,
        reason: String,
    },
    /// A chart file, or a whole chart, larger than flotilla reads.
    #[error("{file}: {message}")]
    ChartSize { file: PathBuf, message: String },
    /// A chart by reference (or a dependency from a repository) that cannot be pulled,
    /// or whose digest is not the one recorded for its version.
    #[error("{file}: {field}: {value:?}: {message}")]
    ChartPull {
        file: PathBuf,
        field: String,
        value: String,
        message: String,
        /// The registry or repository could not be reached at all (exit 3).
        unreachable: bool,
    },
    /// A values layer that is not a map of values (`spec.values`, an override).
    #[error("{file}: {field}: {message}")]
    Values {
        file: PathBuf,
        field: String,
        message: String,
    },
}

/// `[cluster C]` at the end of the message's first line (a YAML error quotes the
/// rendered line below it).
fn with_cluster(inner: &RenderError, context: &str) -> String {
    let text = inner.to_string();
    match text.split_once('\n') {
        Some((first, rest)) => format!("{first} [cluster {context}]\n{rest}"),
        None => format!("{text} [cluster {context}]"),
    }
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

impl RenderError {
    /// The same error with every secret value replaced by its placeholder: a template
    /// error can quote rendered text or a helper's argument, and neither may show a secret.
    pub(crate) fn redacted(mut self, secrets: &[(&str, String)]) -> Self {
        if !secrets.is_empty() {
            self.redact(secrets);
        }
        self
    }

    fn redact(&mut self, secrets: &[(&str, String)]) {
        let scrub = |text: &mut String| {
            for (value, placeholder) in secrets {
                if !value.is_empty() && text.contains(value) {
                    *text = text.replace(value, placeholder);
                }
            }
        };
        match self {
            RenderError::Template { message, .. }
            | RenderError::Object { message, .. }
            | RenderError::Scaling { message, .. }
            | RenderError::Values { message, .. }
            | RenderError::ValuesFile { message, .. }
            | RenderError::ChartFile { message, .. }
            | RenderError::SecretShape { message, .. }
            | RenderError::Helm { message }
            | RenderError::HelmTemplate { message, .. }
            | RenderError::HelmIo { what: message, .. }
            | RenderError::ChartPull { message, .. } => scrub(message),
            RenderError::HelmHook { value, message, .. } => {
                scrub(value);
                scrub(message);
            }
            RenderError::Yaml { text, message, .. } => {
                scrub(text);
                scrub(message);
            }
            RenderError::Set { arg, message, .. } => {
                scrub(arg);
                scrub(message);
            }
            RenderError::InCluster { inner, .. } => inner.redact(secrets),
            RenderError::Read { .. }
            | RenderError::NotATemplate { .. }
            | RenderError::ChartLink { .. }
            | RenderError::ChartSize { .. } => {}
        }
    }

    /// Whether a registry or repository could not be reached (an environment problem,
    /// not bad input).
    pub fn is_unreachable(&self) -> bool {
        match self {
            RenderError::ChartPull { unreachable, .. } => *unreachable,
            RenderError::InCluster { inner, .. } => inner.is_unreachable(),
            _ => false,
        }
    }

    /// This error, saying which cluster it happened for (unless it already does).
    pub fn in_cluster(self, context: &str) -> Self {
        match self {
            already @ (RenderError::Scaling { .. } | RenderError::InCluster { .. }) => already,
            inner => RenderError::InCluster {
                context: context.to_string(),
                inner: Box::new(inner),
            },
        }
    }
}
