//! Deployment ids: one per run, shared by every cluster's record of that run.

use chrono::{DateTime, Utc};

/// A deployment id such as `20261123T172800Z-3f9a`: UTC time first so that ids sort by
/// time as text. The 16 bits after the dash are the millisecond (times 64, so runs of
/// the same second still sort by time) plus 6 bits of the process id and sub-millisecond
/// clock that tell apart runs started in the same millisecond.
pub fn new_deployment_id() -> String {
    let now = Utc::now();
    deployment_id_at(now, now.timestamp_subsec_nanos() ^ std::process::id())
}

fn deployment_id_at(time: DateTime<Utc>, salt: u32) -> String {
    let millis = time.timestamp_subsec_millis().min(999);
    format!(
        "{}-{:04x}",
        time.format("%Y%m%dT%H%M%SZ"),
        millis * 64 + (salt & 63)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_have_the_documented_shape() {
        let id = new_deployment_id();
        assert_eq!(id.len(), "20261123T172800Z-3f9a".len(), "{id}");
        assert_eq!(&id[8..9], "T");
        assert_eq!(&id[15..17], "Z-");
        assert!(id[17..].chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }

    #[test]
    fn ids_sort_by_time_whatever_the_salt() {
        let t = |s, ms| {
            Utc.with_ymd_and_hms(2026, 11, 23, 17, 28, s)
                .single()
                .map(|t| t + chrono::Duration::milliseconds(ms))
        };
        let (Some(a), Some(b), Some(c)) = (t(0, 998), t(0, 999), t(1, 0)) else {
            panic!("valid times")
        };
        let first = deployment_id_at(a, 0xffff);
        let second = deployment_id_at(b, 0);
        let third = deployment_id_at(c, 0xffff);
        assert_eq!(first, "20261123T172800Z-f9bf");
        assert!(first < second && second < third, "{first} {second} {third}");
    }
}
