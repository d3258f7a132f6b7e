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
}

/// Writes a command's output to stdout (with a final newline; nothing for no text). A reader that went away
/// (`| head`) is not an error; any other write failure is.
pub fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if text.is_empty() {
        return Ok(());
    }
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
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes a value as pretty JSON (one document, final newline).
pub fn print_json(value: &impl serde::Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    print(&text)
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
