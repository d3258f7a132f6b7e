//! Every command that prints to stdout treats a reader that went away
//! (`flotilla template ... | head -1`) as the end of the job, exit code 0, as ripgrep
//! and cargo do: a pipeline is not an error.

use std::process::Stdio;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs flotilla with stdout a pipe whose reading end is already closed, so that its
/// first write fails with EPIPE however small the output is.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = crate::support::flotilla()
        .args(args)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run flotilla");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_is_success_for_every_printing_command() {
    for args in [
        &["template", "hello", "--env", "dev"][..],
        &[
            "template",
            "hello",
            "--env",
            "prod",
            "--cluster",
            "prod-paris-dc1",
        ],
        &["secrets", "policy", "hello", "--env", "prod"],
        &["lint"],
        &["lint", "-o", "json"],
    ] {
        let (code, stderr) = with_closed_stdout(args);
        assert_eq!(code, Some(0), "flotilla {}: {stderr}", args.join(" "));
        assert!(
            !stderr.contains("cannot write output"),
            "flotilla {}: {stderr}",
            args.join(" ")
        );
    }
}
