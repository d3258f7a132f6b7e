//! Freezes: the environment's `freeze` section (where its freeze is kept, its recurring
//! windows).

use super::names::dns_label_problem;
use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::FreezeConfig;

/// `freeze`: a namespace that is a DNS label, each window with a reason and bounds that
/// parse.
pub(super) fn check_freeze(problems: &mut Problems, at: &FieldPath, freeze: &FreezeConfig) {
    if let Some(namespace) = &freeze.namespace {
        if let Some(problem) = dns_label_problem(namespace, 63) {
            problems.add(&at.key("namespace"), format!("{namespace:?}: {problem}"));
        }
    }
    for (index, window) in freeze.windows.iter().enumerate() {
        let at = at.key("windows").index(index);
        if window.reason.trim().is_empty() {
            problems.add(
                &at.key("reason"),
                "must not be empty: a refused deploy says it",
            );
        }
        if let Err((field, problem)) = crate::config::freeze::parse_window(window) {
            problems.add(&at.key(field), problem);
        }
    }
}
