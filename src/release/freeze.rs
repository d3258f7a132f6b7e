//! Change freezes: what `flotilla freeze` keeps in every cluster of an environment, the
//! recurring windows of its environment file, and the rule `deploy` and `promote` follow
//! (`rollback` never asks). A freeze that cannot be seen may exist: a cluster whose
//! freeze could not be read refuses the run as a freeze would, saying which.

use crate::config::freeze::{parse_window, WindowPoint};
use crate::config::FreezeWindow;
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// One environment's freeze, as kept in each of its clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Freeze {
    pub environment: String,
    pub reason: String,
    /// Who froze it: `user@host`, and CI's user when CI ran it for someone.
    pub user: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job_url: Option<String>,
    pub since: DateTime<Utc>,
    /// When it ends by itself (`freeze --until`); `None`: at `unfreeze`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl Freeze {
    /// `alice (runner@ci-3)` or `runner@ci-3`, as `history` names who ran a deploy.
    pub fn by(&self) -> String {
        match &self.ci_actor {
            Some(actor) => format!("{actor} ({}@{})", self.user, self.host),
            None => format!("{}@{}", self.user, self.host),
        }
    }

    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }

    /// `frozen by alice (u@h) since 2026-12-07T14:03:00Z until …: "incident 4711"`.
    pub fn describe(&self) -> String {
        let until = self
            .until
            .map(|u| {
                format!(
                    " until {}",
                    u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .unwrap_or_default();
        format!(
            "frozen by {} since {}{until}: {:?}",
            self.by(),
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.reason
        )
    }
}

/// What one cluster said of the environment's freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterFreeze {
    Clear,
    Frozen(Freeze),
    /// It could not be read (unreachable, denied, an object that does not decode).
    Unreadable(String),
}

/// Whether the environment is frozen now, from every cluster's answer and the windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Open,
    /// Frozen: each line one freeze (with the clusters that keep it) or window.
    Frozen(Vec<String>),
    /// Not known to be frozen, but some clusters could not be read.
    Unknown(Vec<String>),
}

impl Verdict {
    pub fn is_open(&self) -> bool {
        matches!(self, Verdict::Open)
    }

    /// One line for a message: the freezes, or the clusters not read.
    pub fn text(&self, environment: &str) -> String {
        match self {
            Verdict::Open => format!("{environment} is not frozen"),
            Verdict::Frozen(lines) => format!("{environment} is {}", lines.join("; and ")),
            Verdict::Unknown(lines) => format!(
                "cannot tell whether {environment} is frozen (a freeze that cannot be seen may exist): {}",
                lines.join("; ")
            ),
        }
    }
}

/// The rule: frozen when any cluster keeps a freeze still in force or a window holds
/// `now`; else unknown when any cluster could not be read; else open. `reads` holds
/// every cluster of the environment, by context.
pub fn judge(
    reads: &[(String, ClusterFreeze)],
    windows: &[FreezeWindow],
    now: DateTime<Utc>,
) -> Verdict {
    let mut freezes: Vec<(&Freeze, Vec<&str>)> = Vec::new();
    let mut unreadable = Vec::new();
    for (context, read) in reads {
        match read {
            ClusterFreeze::Frozen(freeze) if freeze.in_force(now) => {
                // The same freeze is written to every cluster: one line for it.
                match freezes.iter_mut().find(|(f, _)| *f == freeze) {
                    Some((_, contexts)) => contexts.push(context.as_str()),
                    None => freezes.push((freeze, vec![context.as_str()])),
                }
            }
            ClusterFreeze::Unreadable(why) => unreadable.push(format!("cluster {context}: {why}")),
            _ => {}
        }
    }
    let mut lines: Vec<String> = freezes
        .iter()
        .map(|(freeze, contexts)| {
            if contexts.len() == reads.len() {
                freeze.describe()
            } else {
                format!("{} (kept in {})", freeze.describe(), contexts.join(", "))
            }
        })
        .collect();
    lines.extend(
        windows
            .iter()
            .filter(|window| window_holds(window, now))
            .map(|window| {
                format!(
                    "in the freeze window {} → {} (UTC) of its environment file: {:?}",
                    window.from, window.to, window.reason
                )
            }),
    );
    if !lines.is_empty() {
        Verdict::Frozen(lines)
    } else if !unreadable.is_empty() {
        Verdict::Unknown(unreadable)
    } else {
        Verdict::Open
    }
}

/// The namespaces each cluster of `env` keeps its freeze in: the environment file's
/// `freeze.namespace`, else those of `releases` (where their records are, so whoever
/// deploys them may read it).
pub fn namespaces(env: &crate::config::Environment, releases: &[&str]) -> Vec<String> {
    match env.freeze.as_ref().and_then(|f| f.namespace.clone()) {
        Some(namespace) => vec![namespace],
        None => {
            let mut list: Vec<String> = releases.iter().map(|n| n.to_string()).collect();
            list.sort();
            list.dedup();
            list
        }
    }
}

/// Whether `now` falls in `window` (a window that does not parse holds nothing: the
/// environment file's checks refuse it before any run).
pub fn window_holds(window: &FreezeWindow, now: DateTime<Utc>) -> bool {
    let Ok((from, to)) = parse_window(window) else {
        return false;
    };
    match (from, to) {
        (WindowPoint::Weekly(from), WindowPoint::Weekly(to)) => {
            let at = now.weekday().num_days_from_monday() * 1440 + now.hour() * 60 + now.minute();
            if from < to {
                from <= at && at < to
            } else {
                at >= from || at < to
            }
        }
        (WindowPoint::Yearly(..), WindowPoint::Yearly(..)) => {
            let at = WindowPoint::Yearly(now.month(), now.day());
            if from <= to {
                from <= at && at <= to
            } else {
                at >= from || at <= to
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap_or_else(|| panic!("{y}-{m}-{d}"))
    }

    fn window(from: &str, to: &str) -> FreezeWindow {
        FreezeWindow {
            reason: "r".into(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn freeze(reason: &str, until: Option<DateTime<Utc>>) -> Freeze {
        Freeze {
            environment: "prod".into(),
            reason: reason.into(),
            user: "alice".into(),
            host: "laptop".into(),
            ci_actor: None,
            ci_job_url: None,
            since: at(2026, 12, 7, 9, 0),
            until,
        }
    }

    #[test]
    fn a_freeze_in_any_cluster_freezes_and_an_unreadable_cluster_refuses_only_when_nothing_does() {
        let now = at(2026, 12, 7, 10, 0);
        let frozen = freeze("incident 4711", None);
        let reads = vec![
            ("a".to_string(), ClusterFreeze::Frozen(frozen.clone())),
            ("b".to_string(), ClusterFreeze::Clear),
            (
                "c".to_string(),
                ClusterFreeze::Unreadable("connection refused".into()),
            ),
        ];
        let verdict = judge(&reads, &[], now);
        assert_eq!(
            verdict.text("prod"),
            "prod is frozen by alice@laptop since 2026-12-07T09:00:00Z: \"incident 4711\" (kept in a)"
        );
        let unknown = judge(&reads[1..], &[], now);
        assert_eq!(
            unknown,
            Verdict::Unknown(vec!["cluster c: connection refused".into()])
        );
        assert!(judge(&reads[1..2], &[], now).is_open());
        // Ended by its --until: open again.
        let ended = vec![(
            "a".to_string(),
            ClusterFreeze::Frozen(freeze("x", Some(at(2026, 12, 7, 10, 0)))),
        )];
        assert!(judge(&ended, &[], now).is_open());
        // Kept in every cluster: said once, without the list.
        let everywhere = vec![
            ("a".to_string(), ClusterFreeze::Frozen(frozen.clone())),
            ("b".to_string(), ClusterFreeze::Frozen(frozen)),
        ];
        assert_eq!(
            judge(&everywhere, &[], now),
            Verdict::Frozen(vec![
                "frozen by alice@laptop since 2026-12-07T09:00:00Z: \"incident 4711\"".into()
            ])
        );
    }

    #[test]
    fn windows_hold_their_own_times() {
        let weekend = window("fri 18:00", "mon 06:00");
        // 2026-12-04 is a Friday.
        assert!(!window_holds(&weekend, at(2026, 12, 4, 17, 59)));
        assert!(window_holds(&weekend, at(2026, 12, 4, 18, 0)));
        assert!(window_holds(&weekend, at(2026, 12, 6, 12, 0)));
        assert!(window_holds(&weekend, at(2026, 12, 7, 5, 59)));
        assert!(!window_holds(&weekend, at(2026, 12, 7, 6, 0)));
        let year_end = window("12-20", "01-03");
        assert!(window_holds(&year_end, at(2026, 12, 20, 0, 0)));
        assert!(window_holds(&year_end, at(2027, 1, 3, 23, 59)));
        assert!(!window_holds(&year_end, at(2027, 1, 4, 0, 0)));
        assert!(!window_holds(&year_end, at(2026, 12, 19, 23, 59)));
        let reads = vec![("a".to_string(), ClusterFreeze::Clear)];
        assert_eq!(
            judge(&reads, &[year_end], at(2026, 12, 24, 12, 0)).text("prod"),
            "prod is in the freeze window 12-20 → 01-03 (UTC) of its environment file: \"r\""
        );
    }

    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    proptest! {
        /// A weekly window holds exactly the minutes met walking from `from` to `to`
        /// (excluded), one minute at a time around the week.
        #[test]
        fn a_weekly_window_holds_the_minutes_between_its_ends(
            from in 0u32..10080, to in 0u32..10080, now in 0u32..10080,
        ) {
            prop_assume!(from != to);
            let text = |m: u32| format!("{} {:02}:{:02}", DAYS[(m / 1440) as usize], m % 1440 / 60, m % 60);
            let mut walked = false;
            let mut m = from;
            while m != to {
                if m == now { walked = true; }
                m = (m + 1) % 10080;
            }
            // 2026-12-07 is a Monday.
            let when = at(2026, 12, 7, 0, 0) + chrono::Duration::minutes(i64::from(now));
            prop_assert_eq!(window_holds(&window(&text(from), &text(to)), when), walked);
        }

        /// A yearly window holds exactly the days met walking from `from` to `to`
        /// (included) through a leap year's days.
        #[test]
        fn a_yearly_window_holds_the_days_between_its_ends(
            from in 0u32..366, to in 0u32..366, now in 0u32..366,
        ) {
            let day = |n: u32| at(2028, 1, 1, 0, 0) + chrono::Duration::days(i64::from(n));
            let text = |n: u32| format!("{:02}-{:02}", day(n).month(), day(n).day());
            let mut walked = false;
            let mut n = from;
            loop {
                if n == now { walked = true; }
                if n == to { break; }
                n = (n + 1) % 366;
            }
            let when = day(now) + chrono::Duration::hours(13);
            prop_assert_eq!(window_holds(&window(&text(from), &text(to)), when), walked);
        }
    }
}
