//! Live progress of a run: on a terminal one indicatif line per cluster (phase and
//! elapsed time); without one (CI) plain timestamped lines on stderr; nothing in tests.
//! Only phases and object names are shown, never values.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        started: Mutex<HashMap<String, Instant>>,
        /// When each cluster's last soak line was printed: one every
        /// [`SOAK_LINE_EVERY`], not one per sample.
        soak_lines: Mutex<HashMap<String, Instant>>,
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
                started: Mutex::default(),
                soak_lines: Mutex::default(),
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
            Inner::Plain {
                started,
                soak_lines,
            } => {
                if matches!(phase, Phase::Soaking(_)) && !soak_line_due(soak_lines, context) {
                    return;
                }
                let elapsed = started
                    .lock()
                    .map(|mut s| {
                        s.entry(context.to_owned())
                            .or_insert_with(Instant::now)
                            .elapsed()
                    })
                    .unwrap_or_default();
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

/// Without a terminal, a soak prints one line per cluster this often.
const SOAK_LINE_EVERY: Duration = Duration::from_secs(30);

fn soak_line_due(last: &Mutex<HashMap<String, Instant>>, context: &str) -> bool {
    let Ok(mut last) = last.lock() else {
        return true;
    };
    match last.get(context) {
        Some(at) if at.elapsed() < SOAK_LINE_EVERY => false,
        _ => {
            last.insert(context.to_owned(), Instant::now());
            true
        }
    }
}

pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soak_prints_one_plain_line_per_cluster_per_period_not_one_per_sample() {
        let last = Mutex::default();
        assert!(soak_line_due(&last, "eu"));
        assert!(
            !soak_line_due(&last, "eu"),
            "the next sample, seconds later"
        );
        assert!(soak_line_due(&last, "us"), "each cluster has its own");
        last.lock()
            .unwrap()
            .insert("eu".to_owned(), Instant::now() - SOAK_LINE_EVERY);
        assert!(soak_line_due(&last, "eu"));
    }
}
