//! The release record type: what one revision of a release in one cluster was (rendered
//! manifest, values without secret values, versions, deployment id, status, who and when).
