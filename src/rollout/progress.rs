//! Live progress of a run: on a terminal one indicatif line per cluster (phase and
//! elapsed time); without one (CI) plain timestamped lines on stderr; nothing in tests.
//! Only phases and object names are shown, never values.
//!
//! Plain lines are bounded per cluster and phase ([`worth_a_line`]): every change of
//! phase is a line, but the updates within one (`apply k/n`, what the wait still waits
//! for, which change with every watch event) are at most one per
//! [`PLAIN_UPDATE_INTERVAL`], plus the first and the last object applied.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::mem::Discriminant;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Without a terminal, the shortest time between two lines of one cluster in the same
/// phase.
pub const PLAIN_UPDATE_INTERVAL: Duration = Duration::from_secs(10);

/// Where one cluster is in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Queued,
    Secrets,
    Apply {
        done: usize,
        total: usize,
    },
    /// What is still not ready (`Deployment app1-web: 1 of 2 replicas ready`).
    Waiting(String),
    Deployed,
    Failed(String),
    /// Not started because the run was stopping.
    Skipped,
    RollingBack,
    RolledBack,
    RollbackFailed(String),
    /// Left as it is (`on_failure: halt`).
    Left,
    /// An object the new revision dropped and the prune left in place, and why.
    Kept(String),
    /// The wave is healthy and watched for this much longer.
    Soaking(Duration),
    /// A verify command runs.
    Verifying(String),
    /// Every gate of the wave passed on this cluster.
    GatesPassed,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Queued => f.write_str("queued"),
            Phase::Secrets => f.write_str("secrets"),
            Phase::Apply { done, total } => write!(f, "apply {done}/{total}"),
            Phase::Waiting(what) => write!(f, "waiting: {what}"),
            Phase::Deployed => f.write_str("deployed"),
            Phase::Failed(why) => write!(f, "FAILED: {why}"),
            Phase::Skipped => f.write_str("not started (run stopping)"),
            Phase::RollingBack => f.write_str("rolling back"),
            Phase::RolledBack => f.write_str("rolled back"),
            Phase::RollbackFailed(why) => write!(f, "ROLLBACK FAILED: {why}"),
            Phase::Left => f.write_str("left as it is (on_failure: halt)"),
            Phase::Kept(what) => write!(f, "not pruned: {what}"),
            Phase::Soaking(left) => write!(f, "soaking: {}s left", left.as_secs()),
            Phase::Verifying(command) => write!(f, "verify: {command}"),
            Phase::GatesPassed => f.write_str("deployed, gates passed"),
        }
    }
}

/// Reports phases; cheap to clone, safe from any task.
#[derive(Clone)]
pub struct Reporter(Arc<Inner>, Option<Arc<str>>);

enum Inner {
    Silent,
    Plain {
        shown: Mutex<HashMap<String, Shown>>,
    },
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
}

impl Reporter {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Reporter {
        if std::io::stderr().is_terminal() {
            Reporter(
                Arc::new(Inner::Bars {
                    multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                    bars: Mutex::default(),
                }),
                None,
            )
        } else {
            Reporter::plain()
        }
    }

    pub fn plain() -> Reporter {
        Reporter(
            Arc::new(Inner::Plain {
                shown: Mutex::default(),
            }),
            None,
        )
    }

    pub fn silent() -> Reporter {
        Reporter(Arc::new(Inner::Silent), None)
    }

    /// The same sink, with every line labelled `label/context` (several releases at once).
    pub fn scoped(&self, label: &str) -> Reporter {
        Reporter(self.0.clone(), Some(label.into()))
    }

    pub fn phase(&self, context: &str, phase: Phase) {
        let labelled;
        let context = match &self.1 {
            Some(label) => {
                labelled = format!("{label}/{context}");
                labelled.as_str()
            }
            None => context,
        };
        match &*self.0 {
            Inner::Silent => {}
            Inner::Plain { shown } => {
                let now = Instant::now();
                let Ok(mut shown) = shown.lock() else { return };
                let cluster = shown.entry(context.to_owned()).or_insert(Shown {
                    started: now,
                    last: None,
                });
                if !worth_a_line(cluster.last, &phase, now) {
                    return;
                }
                cluster.last = Some((std::mem::discriminant(&phase), now));
                let elapsed = now - cluster.started;
                drop(shown);
                crate::output::eprint_line(&format!(
                    "{} [{context}] {phase} ({})",
                    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    seconds(elapsed)
                ));
            }
            Inner::Bars { multi, .. } if matches!(phase, Phase::Kept(_)) => {
                // A line of its own: the spinner's message is overwritten next.
                let _ = multi.println(format!("[{context}] {phase}"));
            }
            Inner::Bars { multi, bars } => {
                let Ok(mut bars) = bars.lock() else { return };
                let bar = bars.entry(context.to_owned()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix:<24} {elapsed:>4} {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(context.to_owned());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(crate::redact::scrub(&phase.to_string()));
                if matches!(
                    phase,
                    Phase::RolledBack | Phase::RollbackFailed(_) | Phase::Left | Phase::Skipped
                ) {
                    bar.finish();
                } else if matches!(phase, Phase::Deployed | Phase::Failed(_)) {
                    // May still roll back: stop the spinner, keep the line.
                    bar.disable_steady_tick();
                }
            }
        }
    }

    /// Stops every spinner so that the summary prints below the lines.
    pub fn finish(&self) {
        if let Inner::Bars { bars, .. } = &*self.0 {
            if let Ok(bars) = bars.lock() {
                for bar in bars.values() {
                    bar.finish();
                }
            }
        }
    }
}

/// What the plain lines remember of one cluster: when it was first reported, and the
/// phase and time of its last line.
struct Shown {
    started: Instant,
    last: Option<(Discriminant<Phase>, Instant)>,
}

/// Whether `phase` gets a plain line, given the phase and time of the cluster's last
/// line: a new phase always does; an update within the same phase (apply progress, what
/// the wait still waits for, any status a phase repeats) only once
/// [`PLAIN_UPDATE_INTERVAL`] has passed, except the apply's first object (the first
/// change in the cluster) and its last (which closes the phase), and objects a prune
/// kept (each one a fact of its own).
pub fn worth_a_line(
    last: Option<(Discriminant<Phase>, Instant)>,
    phase: &Phase,
    now: Instant,
) -> bool {
    let Some((kind, at)) = last else { return true };
    if kind != std::mem::discriminant(phase) {
        return true;
    }
    match phase {
        Phase::Apply { done, total } if *done <= 1 || done == total => true,
        // Each names another object: a fact of its own, not an update of the last one.
        Phase::Kept(_) => true,
        _ => now.duration_since(at) >= PLAIN_UPDATE_INTERVAL,
    }
}

pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::discriminant;

    fn apply(done: usize) -> Phase {
        Phase::Apply { done, total: 5 }
    }

    #[test]
    fn a_new_phase_always_gets_a_line() {
        let t = Instant::now();
        assert!(worth_a_line(None, &apply(1), t));
        let applying = Some((discriminant(&apply(1)), t));
        assert!(worth_a_line(
            applying,
            &Phase::Waiting("Deployment web".into()),
            t
        ));
        assert!(worth_a_line(applying, &Phase::Deployed, t));
    }

    #[test]
    fn updates_within_a_phase_are_one_per_interval_plus_the_last_object_applied() {
        let t = Instant::now();
        let applying = Some((discriminant(&apply(0)), t));
        assert!(worth_a_line(applying, &apply(1), t));
        assert!(!worth_a_line(
            applying,
            &apply(2),
            t + Duration::from_secs(1)
        ));
        assert!(worth_a_line(
            applying,
            &apply(5),
            t + Duration::from_secs(1)
        ));
        assert!(worth_a_line(applying, &apply(3), t + PLAIN_UPDATE_INTERVAL));
        let waiting =
            Phase::Waiting("Deployment ns/web (1 of 2 updated replicas available)".into());
        let last = Some((discriminant(&waiting), t));
        assert!(!worth_a_line(
            last,
            &Phase::Waiting("Deployment ns/web (not seen yet)".into()),
            t + Duration::from_secs(9)
        ));
        assert!(worth_a_line(last, &waiting, t + PLAIN_UPDATE_INTERVAL));
    }

    #[test]
    fn phases_that_repeat_with_new_facts_are_never_dropped() {
        let t = Instant::now();
        let kept = Phase::Kept("ConfigMap ns/a (annotated keep)".into());
        assert!(worth_a_line(
            Some((discriminant(&kept), t)),
            &Phase::Kept("ConfigMap ns/b (annotated keep)".into()),
            t
        ));
    }
}
