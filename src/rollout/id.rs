//! Deployment ids: one per run, shared by every cluster's record of that run.

use chrono::{DateTime, Utc};

/// A deployment id such as `20261123T172800Z-3f9a`: UTC time first so that ids sort by
/// time as text, then 16 bits that tell apart runs started in the same second.
pub fn new_deployment_id() -> String {
    let now = Utc::now();
    deployment_id_at(
        now,
        now.timestamp_subsec_nanos() ^ std::process::id().rotate_left(16),
    )
}

fn deployment_id_at(time: DateTime<Utc>, salt: u32) -> String {
    format!("{}-{:04x}", time.format("%Y%m%dT%H%M%SZ"), salt & 0xffff)
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
        let t = |s| Utc.with_ymd_and_hms(2026, 11, 23, 17, 28, s).single();
        let (Some(a), Some(b)) = (t(0), t(1)) else {
            panic!("valid times")
        };
        let earlier = deployment_id_at(a, 0xffff);
        let later = deployment_id_at(b, 0);
        assert_eq!(earlier, "20261123T172800Z-ffff");
        assert!(earlier < later, "{earlier} then {later}");
    }
}
