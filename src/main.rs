//! The `flotilla` binary: parse the command line, set up the process (TLS provider,
//! logging, runtime), run the command, and turn its outcome into the exit code that
//! [`flotilla::exit`] decides.
use clap::Parser;
use flotilla::exit::{Classify, ExitKind};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = flotilla::cli::Cli::parse();
    // Before any TLS connection, to Vault or to a cluster: two rustls providers are
    // linked (kube's ring, reqwest's aws-lc-rs) and rustls refuses to guess between them.
    flotilla::install_tls_provider();
    flotilla::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(ExitKind::Environment.code());
        }
    };
    match runtime.block_on(flotilla::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_kind().code())
        }
    }
}
