//! `freeze:` of an environment file: where the environment's freeze is kept in each
//! cluster, and the recurring windows in which it is frozen whatever `flotilla freeze`
//! says (a weekend, the end of the year). Times are UTC.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    /// The namespace of each cluster that keeps the environment's freeze (a ConfigMap
    /// `flotilla.freeze.<env>`); default: the namespaces of the releases, where their
    /// records are and their deployers may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = super::patterns::DNS_LABEL))]
    pub namespace: Option<String>,
    /// Recurring windows in which `deploy` and `promote` refuse (UTC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<FreezeWindow>,
}

/// A recurring freeze: every week (`from: "fri 18:00"`, `to: "mon 06:00"`) or every
/// year (`from: "12-20"`, `to: "01-03"`, whole days, both included).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    /// What a refused deploy says (`end-of-year freeze`).
    #[schemars(length(min = 1))]
    pub reason: String,
    /// Weekly `DAY HH:MM` (mon … sun) or yearly `MM-DD`, UTC.
    pub from: String,
    /// Of the same form as `from`; weekly: the first minute no longer frozen; yearly:
    /// the last day frozen.
    pub to: String,
}

/// One end of a window, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WindowPoint {
    /// Minutes since Monday 00:00.
    Weekly(u32),
    /// (month, day).
    Yearly(u32, u32),
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `fri 18:00` or `12-20`, or why not.
pub fn parse_point(text: &str) -> Result<WindowPoint, String> {
    let text = text.trim();
    let weekly = "a weekly time `DAY HH:MM` (mon … sun, 24-hour, UTC) or a yearly date `MM-DD`";
    if let Some((day, time)) = text.split_once(' ') {
        let day_index = DAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(day.trim()))
            .ok_or_else(|| {
                format!("{text:?}: {day:?} is not a day (mon … sun); expected {weekly}")
            })?;
        let (hour, minute) = time
            .trim()
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
            .filter(|(h, m)| *h < 24 && *m < 60)
            .ok_or_else(|| format!("{text:?}: {time:?} is not a time HH:MM (00:00 … 23:59)"))?;
        // Bounded above: at most 6 * 1440 + 1439.
        return Ok(WindowPoint::Weekly(
            u32::try_from(day_index).unwrap_or(0) * 1440 + hour * 60 + minute,
        ));
    }
    let (month, day) = text
        .split_once('-')
        .and_then(|(m, d)| Some((m.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("{text:?} is not {weekly}"))?;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => return Err(format!("{text:?}: month {month} is not 01 … 12")),
    };
    if day == 0 || day > days_in_month {
        return Err(format!("{text:?}: month {month} has no day {day}"));
    }
    Ok(WindowPoint::Yearly(month, day))
}

/// Both ends of a window, checked to be of one kind and not empty; the error names the
/// field (`from`, `to`) it is about.
pub fn parse_window(
    window: &FreezeWindow,
) -> Result<(WindowPoint, WindowPoint), (&'static str, String)> {
    let from = parse_point(&window.from).map_err(|e| ("from", e))?;
    let to = parse_point(&window.to).map_err(|e| ("to", e))?;
    match (from, to) {
        (WindowPoint::Weekly(a), WindowPoint::Weekly(b)) if a == b => Err((
            "to",
            format!(
                "{:?} is where the window starts: a weekly window must end at another time",
                window.to
            ),
        )),
        (WindowPoint::Weekly(_), WindowPoint::Weekly(_))
        | (WindowPoint::Yearly(..), WindowPoint::Yearly(..)) => Ok((from, to)),
        _ => Err((
            "to",
            format!(
                "{:?} and from {:?} are not of one kind: both weekly (`fri 18:00`) or both yearly (`12-20`)",
                window.to, window.from
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_weekly_times_or_yearly_dates() {
        assert_eq!(parse_point("mon 00:00"), Ok(WindowPoint::Weekly(0)));
        assert_eq!(
            parse_point("Fri 18:30"),
            Ok(WindowPoint::Weekly(4 * 1440 + 18 * 60 + 30))
        );
        assert_eq!(parse_point("12-20"), Ok(WindowPoint::Yearly(12, 20)));
        assert_eq!(parse_point("02-29"), Ok(WindowPoint::Yearly(2, 29)));
        for bad in [
            "friday 18:00",
            "fri 24:00",
            "fri 18",
            "13-01",
            "04-31",
            "00-10",
            "xmas",
            "",
        ] {
            assert!(parse_point(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_window_has_two_ends_of_one_kind() {
        let window = |from: &str, to: &str| FreezeWindow {
            reason: "r".into(),
            from: from.into(),
            to: to.into(),
        };
        assert!(parse_window(&window("fri 18:00", "mon 06:00")).is_ok());
        assert!(parse_window(&window("12-20", "01-03")).is_ok());
        assert!(parse_window(&window("12-20", "12-20")).is_ok(), "one day");
        assert_eq!(
            parse_window(&window("fri 18:00", "01-03"))
                .err()
                .map(|e| e.0),
            Some("to")
        );
        assert_eq!(
            parse_window(&window("fri 18:00", "fri 18:00"))
                .err()
                .map(|e| e.0),
            Some("to")
        );
        assert_eq!(
            parse_window(&window("fri 25:00", "mon 06:00"))
                .err()
                .map(|e| e.0),
            Some("from")
        );
    }
}
