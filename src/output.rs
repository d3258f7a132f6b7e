//! Output formats shared by the read commands: tables (tabled) for people, `-o json`
//! for machines.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}
