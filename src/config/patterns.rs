//! The patterns the JSON Schema gives names, tags, paths and durations (`schema.rs`
//! generates it from the types, which carry these in their attributes). The checks
//! after parsing (`validate/`) say the same rules in words.

/// A DNS-1123 label (the length is given beside it).
pub(crate) const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain: labels joined by `.`.
pub(crate) const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// An image tag (the OCI distribution spec's grammar).
pub(crate) const IMAGE_TAG: &str = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
pub(crate) const SECRET_ID: &str = "^[A-Za-z0-9_-]+$";
/// Starts with the KV mount, not with `/`.
pub(crate) const VAULT_PATH: &str = "^[^/]";
/// `vault.record_key.path`: one plain path (no template, no whitespace), starting with
/// the KV mount.
pub(crate) const RECORD_KEY_PATH: &str = r"^[^/{}\s][^{}\s]*$";
/// `90s`, `5m`, `1h30m`: humantime's units after numbers.
pub(crate) const DURATION: &str = r"^\s*[0-9]+\s*[a-zA-Zµ]+(\s*[0-9]+\s*[a-zA-Zµ]+)*\s*$";
/// A URL with a scheme: `https://vault.example:8200`.
pub(crate) const URL: &str = "^[A-Za-z][A-Za-z0-9+.-]*://";
