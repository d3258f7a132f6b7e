//! Everything flotilla writes to stdout goes through here: tables (tabled) for people,
//! `-o json` for machines, manifests and policies as text. A reader that went away
//! (`flotilla template ... | head -1`) ends the command successfully, as ripgrep does;
//! any other write failure is an error.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    /// The JSON document, written as YAML (as `kubectl -o yaml` and `helm -o yaml`).
    Yaml,
}

impl OutputFormat {
    /// Whether a document (JSON or YAML) is asked for rather than a table.
    pub fn is_document(self) -> bool {
        self != OutputFormat::Table
    }
}

/// Whether this process writes its documents as YAML (`-o yaml`): set once, by the
/// command line, before anything is printed.
static YAML: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Every document [`print_json`] writes from now on is YAML.
pub fn documents_as_yaml() {
    YAML.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// `status -o`: [`OutputFormat`]'s, or the dashboard's matrix as one HTML page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum StatusFormat {
    #[default]
    Table,
    Json,
    /// The JSON document, written as YAML.
    Yaml,
    Html,
}

impl StatusFormat {
    /// The format of everything but the page: what `-o html` is not.
    pub fn document(self) -> OutputFormat {
        match self {
            StatusFormat::Json => OutputFormat::Json,
            StatusFormat::Yaml => OutputFormat::Yaml,
            StatusFormat::Table | StatusFormat::Html => OutputFormat::Table,
        }
    }

    /// Whether a document (JSON or YAML) is asked for.
    pub fn is_document(self) -> bool {
        self.document().is_document()
    }
}

/// Writes a command's output to stdout (with a final newline; nothing for no text). A reader that went away
/// (`| head`) is not an error; any other write failure is.
/// Every registered secret value is scrubbed from the text first
/// ([`crate::redact::scrub`]).
pub fn print(text: &str) -> std::io::Result<()> {
    print_unscrubbed(&crate::redact::scrub(text))
}

/// Whether stdout's reader went away (a write met a closed pipe): what writes again and
/// again (`status --watch`) stops then.
static READER_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a write to stdout met a closed pipe.
pub fn reader_gone() -> bool {
    READER_GONE.load(std::sync::atomic::Ordering::SeqCst)
}

/// Whether anything was written to stdout yet: a command asked for JSON that fails
/// before its own document still prints one ([`print_error_json`]).
static WROTE_STDOUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`print`] without the scrubber: only for `template --show-secrets`, the one command
/// whose output is the values.
pub fn print_unscrubbed(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if text.is_empty() {
        return Ok(());
    }
    WROTE_STDOUT.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut stdout = std::io::stdout().lock();
    let result = stdout
        .write_all(text.as_bytes())
        .and_then(|_| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                stdout.write_all(b"\n")
            }
        })
        .and_then(|_| stdout.flush());
    match result {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            READER_GONE.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        other => other,
    }
}

/// Writes a value as one document, final newline: pretty JSON, or YAML after
/// [`documents_as_yaml`] (the same fields, as `-o yaml` promises).
pub fn print_json(value: &impl serde::Serialize) -> std::io::Result<()> {
    print(&json_text(value)?)
}

/// The document [`print_json`] prints (JSON, or YAML with `-o yaml`), not scrubbed yet.
pub fn json_text(value: &impl serde::Serialize) -> std::io::Result<String> {
    if YAML.load(std::sync::atomic::Ordering::SeqCst) {
        serde_yaml_ng::to_string(value).map_err(std::io::Error::other)
    } else {
        serde_json::to_string_pretty(value).map_err(std::io::Error::other)
    }
}

/// For a command asked for `-o json` that ended in an error before it printed its own
/// document (a run refused before any change, bad input): one JSON document on stdout
/// all the same, `{"error": MESSAGE, "exit_code": CODE}`, so that a pipeline's
/// `report.json` always parses. Nothing when the command printed already.
pub fn print_error_json(message: &str, exit_code: u8) {
    if WROTE_STDOUT.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let _ = print_json(&serde_json::json!({ "error": message, "exit_code": exit_code }));
}

/// Every table flotilla prints, in one style: kubectl's (columns, no borders), so a
/// person reads it and `awk` splits it. Trailing blanks of the last column are dropped.
pub fn table_text(mut table: tabled::Table) -> String {
    table.with(tabled::settings::Style::blank());
    let mut text = String::new();
    for line in table.to_string().lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// What a word or a line tells a reader at a glance, shown by colour on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Failed, failing, refused: red.
    Bad,
    /// Succeeded, healthy: green.
    Good,
}

/// Whether stdout gets colour: a terminal, `NO_COLOR` unset or empty (no-color.org),
/// and `TERM` not `dumb`. A pipe, a file or CI's log never gets escape codes.
pub fn colour() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        use std::io::IsTerminal;
        std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
    })
}

/// `text` in the colour of `tone` when stdout gets colour ([`colour`]), else as it is.
/// Applied to whole cells or lines after a table is laid out, so widths never count
/// escape codes.
pub fn paint(text: &str, tone: Tone) -> String {
    if !colour() {
        return text.to_owned();
    }
    let style = match tone {
        Tone::Bad => anstyle::AnsiColor::Red.on_default().bold(),
        Tone::Good => anstyle::AnsiColor::Green.on_default(),
    };
    format!("{style}{text}{style:#}")
}

/// A table's text with each row painted as `tones` says (one per row, in order; the
/// header and rows without a tone stay as they are).
pub fn paint_rows(table: &str, tones: &[Option<Tone>]) -> String {
    let mut out = String::with_capacity(table.len());
    for (i, line) in table.lines().enumerate() {
        match i
            .checked_sub(1)
            .and_then(|row| tones.get(row))
            .copied()
            .flatten()
        {
            Some(tone) => out.push_str(&paint(line, tone)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// One line to stderr (a warning, a notice, the final error), with every registered
/// secret value scrubbed. Every stderr line flotilla writes goes through here or through
/// the scrubbing log writer.
pub fn eprint_line(text: &str) {
    use std::io::Write;
    let mut line = crate::redact::scrub(text);
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
