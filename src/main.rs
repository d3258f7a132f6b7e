//! The `flotilla` binary: parse the command line, run the action, map the outcome to an
//! exit code (0 success, 1 failed deploy or rollback, 2 bad input, 3 environment problem).
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = flotilla::cli::Cli::parse();
    flotilla::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(flotilla::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
