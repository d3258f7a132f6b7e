//! Output formats shared by the read commands: tables (tabled) for people, `-o json`
//! for machines.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Writes a command's output to stdout (with a final newline). A reader that went away
/// (`| head`) is not an error; any other write failure is.
pub fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write;
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
