//! The `flotilla` binary: parse the command line, set up the process (TLS provider,
//! logging, runtime), run the command, and turn its outcome into the exit code that
//! [`flotilla::exit`] decides.
use clap::Parser;
use flotilla::exit::ExitKind;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash flotilla ...`) is answered and the
    // process exits here, before anything is parsed or printed.
    flotilla::cli::generate::complete_if_asked();
    let scheme = flotilla::cli::exit_scheme(std::env::args_os());
    let cli = match flotilla::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            let args: Vec<_> = std::env::args_os().collect();
            if let Some(note) = flotilla::cli::usage_note(&err, &args) {
                eprintln!("{note}");
            }
            return ExitCode::from(flotilla::exit::usage_code(err.use_stderr()));
        }
    };
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
    let json = flotilla::cli::json_requested(&cli);
    let result = runtime.block_on(flotilla::cli::run(cli));
    let code = flotilla::exit::code(&result, scheme);
    if let Err(err) = &result {
        flotilla::output::eprint_line(&format!("error: {err}"));
        if json {
            flotilla::output::print_error_json(&err.to_string(), code);
        }
    }
    ExitCode::from(code)
}
