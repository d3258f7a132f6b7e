//! The README's tour works after `./scripts/demo.sh --keep`: on a fleet of the demo's
//! clusters (those of environments/dev.yaml), the demo's own flotilla steps, then the
//! commands the demo prints at its end, then every line of the README's tour block, run
//! as written in one shell from the repository root (`source .fleet/env` pointed at this
//! fleet's env file). PATH starts without flotilla: the env file must put it there.
//! The README's second block (commands for clusters of your own) is checked to parse by
//! `readme_tour`.

use crate::readme_tour::{read, readme_block};
use flotilla_fleet::testing::Fleet;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The demo's flotilla steps (`"$FLOTILLA" ...`) and the commands it prints at its end
/// (its `NEXT` block).
fn demo_lines() -> (Vec<String>, Vec<String>) {
    let text = read("scripts/demo.sh");
    let steps = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("\"$FLOTILLA\" "))
        .map(String::from)
        .collect();
    let next = text
        .split_once("<<'NEXT'\n")
        .and_then(|(_, rest)| rest.split_once("\nNEXT\n"))
        .map(|(block, _)| block.lines().map(|l| l.trim().to_owned()).collect())
        .expect("demo.sh prints its next commands in a <<'NEXT' block");
    (steps, next)
}

/// A shell line that runs `line` and stops the script, naming it, if it fails.
fn checked(line: &str) -> String {
    let shown = line.replace('\'', r"'\''");
    format!(
        "echo '+ {shown}' >&2\n{line} || {{ echo \"FAILED (exit $?): {shown}\" >&2; exit 97; }}\n"
    )
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn the_readme_tour_works_after_the_demo() {
    let fleet = Fleet::dedicated(&["dev-europe-west1", "dev-us-central1", "dev-paris-dc1"]);
    let env_file = fleet.dir().join("env");
    let env_file = env_file.to_str().expect("a UTF-8 path");
    let (steps, next) = demo_lines();
    assert_eq!(next.len(), 4, "source, then three commands: {next:?}");
    assert_eq!(next[0], "source .fleet/env", "{next:?}");
    let tour = readme_block("## A tour", 0);
    assert!(tour[0].starts_with("source .fleet/env"), "{tour:?}");
    assert!(
        tour.last()
            .is_some_and(|l| l.starts_with("flotilla-fleet down")),
        "{tour:?}"
    );

    let mut script = format!(
        "set -u\nexport PATH=/usr/local/bin:/usr/bin:/bin\nFLOTILLA='{}'\n",
        env!("CARGO_BIN_EXE_flotilla")
    );
    script.push_str("if command -v flotilla >/dev/null; then echo 'flotilla is on PATH before the env file' >&2; exit 98; fi\n");
    // The demo: its env, then its own steps.
    script.push_str(&format!("source '{env_file}'\n"));
    for line in &steps {
        script.push_str(&checked(line));
    }
    // A new shell's PATH again, then what the demo says to try, then the README's tour.
    script.push_str("export PATH=/usr/local/bin:/usr/bin:/bin\n");
    for line in next.iter().chain(&tour) {
        let line = line.replace("source .fleet/env", &format!("source '{env_file}'"));
        script.push_str(&checked(&line));
        if line.starts_with("source ") {
            script.push_str("echo \"flotilla: $(command -v flotilla)\" >&2\n");
        }
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(ROOT)
        .env_remove("KUBECONFIG")
        .env_remove("FLOTILLA_FLEET_DIR")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("FLOTILLA_LOG")
        .output()
        .expect("bash runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    // Every line ran, the last one included.
    let ran = log.lines().filter(|l| l.starts_with("+ ")).count();
    assert_eq!(ran, steps.len() + next.len() + tour.len(), "{log}");
    // The flotilla on PATH is the one built next to flotilla-fleet.
    let built = Path::new(env!("CARGO_BIN_EXE_flotilla"));
    let fleet_dir = flotilla_fleet::testing::fleet_binary();
    let on_path = log
        .lines()
        .filter_map(|l| l.strip_prefix("flotilla: "))
        .map(Path::new)
        .collect::<Vec<_>>();
    assert!(!on_path.is_empty(), "{log}");
    for found in on_path {
        assert_eq!(found.parent(), fleet_dir.parent(), "{log}");
        if fleet_dir.parent() == built.parent() {
            assert_eq!(found, built, "{log}");
        }
    }
}
