//! Progress without a terminal (CI logs) on the shared fleet: a real deploy to every
//! cluster prints a bounded number of lines per cluster and phase, not one per watch
//! event.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use std::collections::HashMap;

/// `2026-12-01T11:51:34.709Z [ctx] phase... (1.5s)` → (time in ms of the day, context,
/// the phase's first word).
fn parse(line: &str) -> Option<(u64, &str, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    let clock = stamp.strip_suffix('Z')?.split_once('T')?.1;
    let mut parts = clock.split([':', '.']).map(|p| p.parse::<u64>().ok());
    let (h, m, s, ms) = (
        parts.next()??,
        parts.next()??,
        parts.next()??,
        parts.next()??,
    );
    let (context, phase) = rest.strip_prefix('[')?.split_once("] ")?;
    let word = phase.split([' ', ':']).next()?;
    Some((((h * 60 + m) * 60 + s) * 1000 + ms, context, word))
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_deploy_without_a_terminal_prints_a_bounded_number_of_lines_per_cluster_and_phase() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let waves: Vec<(&str, u32)> = clusters.iter().map(|c| (c.as_str(), 0)).collect();
    let repo = repo("progress", &[("prod", &waves)], "60s");
    let first = run(fleet, &repo, &["deploy", "hello", "--env", "prod"]);
    assert!(first.status.success(), "{}", describe(&first));
    // An upgrade: each Deployment rolls out, which is many watch events per cluster.
    let out = run(
        fleet,
        &repo,
        &["deploy", "hello", "--env", "prod", "--version", "v2"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);

    let mut lines: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    for (at, context, phase) in stderr.lines().filter_map(parse) {
        lines.entry(context).or_default().push((at, phase));
    }
    for context in &clusters {
        let shown = lines
            .get(context.as_str())
            .unwrap_or_else(|| panic!("no progress line of {context}:\n{stderr}"));
        let phases: Vec<&str> = shown.iter().map(|(_, p)| *p).collect();
        for expected in ["queued", "apply", "waiting", "deployed"] {
            assert!(
                phases.contains(&expected),
                "{context}: {phases:?}\n{stderr}"
            );
        }
        // Apply: the start, the first object and the last, whatever the count.
        let applies = phases.iter().filter(|p| **p == "apply").count();
        assert!(applies <= 3, "{context}: {applies} apply lines\n{stderr}");
        // Within one phase, a further line only after the interval.
        for pair in shown.windows(2) {
            let ((before, phase), (after, next)) = (pair[0], pair[1]);
            if phase == "waiting" && next == "waiting" {
                assert!(
                    after.abs_diff(before) >= 10_000,
                    "{context}: two waiting lines {} ms apart\n{stderr}",
                    after.abs_diff(before)
                );
            }
        }
    }
}
