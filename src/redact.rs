//! Secret values kept out of everything flotilla stores or shows.
//!
//! Two tools, below both `release` and `cluster`:
//! - digests: secret data of `Secret` objects, and every secret-bearing field of other
//!   objects, replaced by a digest in records, diff and drift (a digest tells a change or
//!   a drift, and is useless to recover the value);
//! - the [scrubber](scrub): every secret value this process has read (registered by
//!   `vault::SecretValue::new`, and the Vault credentials) is removed from every string
//!   that leaves the process: stdout, stderr, logs, record descriptions, report rows. It
//!   knows each value in the forms it can take on its way out: raw, base64 (at any
//!   alignment inside a longer base64 text), JSON-escaped, YAML-quoted, Rust-debug-escaped,
//!   URL-encoded, and each line of a multi-line value.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::{PoisonError, RwLock};

/// What the scrubber writes instead of any form of a secret value.
pub const SCRUBBED: &str = "<redacted>";

/// Values shorter than this are not scrubbed as a whole: a 3-character "secret" would
/// turn every word that holds it into `<redacted>`. Vault values that short are not
/// secrets worth the name; `lint` has no say on them.
pub const MIN_VALUE_LEN: usize = 4;

/// Lines of a multi-line value (a PEM key, a JSON credential) are scrubbed one by one,
/// trimmed, when at least this long, so that a value that arrives cut into lines (a log
/// of one line, an error quoting one rendered line) is still caught.
pub const MIN_LINE_LEN: usize = 8;

/// Every form of a set of secret values, longest first.
#[derive(Debug, Default, Clone)]
pub struct Scrubber {
    patterns: Vec<String>,
}

impl Scrubber {
    pub fn new() -> Scrubber {
        Scrubber::default()
    }

    /// Adds a value in all its forms.
    pub fn add(&mut self, value: &str) {
        let mut forms = Vec::new();
        if value.chars().count() >= MIN_VALUE_LEN {
            forms.extend(forms_of(value));
        }
        if value.contains('\n') {
            for line in value.lines().map(str::trim) {
                if line.chars().count() >= MIN_LINE_LEN {
                    forms.extend(forms_of(line));
                }
            }
        }
        for form in forms {
            if form.chars().count() >= MIN_VALUE_LEN && !self.patterns.contains(&form) {
                self.patterns.push(form);
            }
        }
        self.patterns
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every form of every value replaced by [`SCRUBBED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for pattern in &self.patterns {
            if out.contains(pattern.as_str()) {
                out = out.replace(pattern.as_str(), SCRUBBED);
            }
        }
        out
    }

    /// Whether `text` holds any form of any value.
    pub fn finds(&self, text: &str) -> bool {
        self.patterns.iter().any(|p| text.contains(p.as_str()))
    }
}

/// The forms one value takes in text flotilla writes.
fn forms_of(value: &str) -> Vec<String> {
    use base64::Engine;
    let mut forms = vec![value.to_owned()];
    // JSON (and YAML double-quoted, which JSON is a subset of) without the quotes.
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    // Rust's `{:?}` (error messages that quote an argument).
    forms.push(value.escape_debug().to_string());
    forms.push(value.escape_default().to_string());
    // YAML: single-quoted, and however serde_yaml writes the scalar.
    forms.push(value.replace('\'', "''"));
    if let Ok(yaml) = serde_yaml::to_string(value) {
        let yaml = yaml.trim_end_matches('\n');
        let inner = yaml
            .strip_prefix('"')
            .and_then(|y| y.strip_suffix('"'))
            .or_else(|| yaml.strip_prefix('\'').and_then(|y| y.strip_suffix('\'')))
            .unwrap_or(yaml);
        forms.push(inner.to_owned());
        // A block scalar: each line.
        forms.extend(
            inner
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= MIN_LINE_LEN)
                .map(str::to_owned),
        );
    }
    // URL-encoded: %20 and + for spaces, upper and lower case hex.
    forms.push(percent_encode(value, false));
    forms.push(percent_encode(value, true));
    forms.push(percent_encode(value, false).to_lowercase_hex());
    forms.push(percent_encode(value, true).to_lowercase_hex());
    // base64, standard and URL-safe, at each of the three alignments a value can have
    // inside a longer base64 text (a Secret's data built from a template).
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        forms.push(engine.encode(value));
        for shift in 0..3usize {
            let mut bytes = vec![0u8; shift];
            bytes.extend_from_slice(value.as_bytes());
            let encoded = engine.encode(&bytes);
            let encoded = encoded.trim_end_matches('=');
            // Characters fully determined by the value's bytes.
            let first = (shift * 8).div_ceil(6);
            let last = (bytes.len() * 8) / 6;
            // Short fragments would match unrelated base64 text.
            if last >= first + 2 * MIN_LINE_LEN && last <= encoded.len() {
                forms.push(encoded[first..last].to_owned());
            }
        }
    }
    forms
}

trait LowercaseHex {
    fn to_lowercase_hex(&self) -> String;
}

impl LowercaseHex for String {
    /// `%2F` written `%2f`, as some encoders do.
    fn to_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut chars = self.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '%' {
                for _ in 0..2 {
                    if let Some(h) = chars.next() {
                        out.push(h.to_ascii_lowercase());
                    }
                }
            }
        }
        out
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters; `plus` writes a
/// space as `+` (form encoding).
fn percent_encode(value: &str, plus: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' if plus => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

static GLOBAL: RwLock<Scrubber> = RwLock::new(Scrubber {
    patterns: Vec::new(),
});

/// Registers a secret value (or a credential) with the process-wide scrubber: from now
/// on, no string that [`scrub`] sees shows it in any form.
pub fn register(value: &str) {
    let mut scrubber = GLOBAL.write().unwrap_or_else(PoisonError::into_inner);
    scrubber.add(value);
}

/// `text` with every form of every registered value replaced by [`SCRUBBED`]. Applied to
/// every string that leaves the process (stdout, stderr, logs, records' descriptions).
///
/// The digests of records, diff and drift are shown as [`SCRUBBED`] too: a change shows,
/// but an unkeyed digest of a weak password printed in a CI log could be tested against
/// guesses. Records keep them (readable only with access to Secrets).
pub fn scrub(text: &str) -> String {
    let scrubber = GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
    let text = hide_digests(text);
    if scrubber.is_empty() {
        return text;
    }
    scrubber.scrub(&text)
}

/// Every `<redacted sha256:HEX>` written as `<redacted>`.
pub fn hide_digests(text: &str) -> String {
    const OPEN: &str = "<redacted sha256:";
    if !text.contains(OPEN) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let hex = after.chars().take_while(char::is_ascii_hexdigit).count();
        if hex > 0 && after[hex..].starts_with('>') {
            out.push_str(SCRUBBED);
            rest = &after[hex + 1..];
        } else {
            out.push_str(OPEN);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds any form of a registered value.
pub fn finds_secret(text: &str) -> bool {
    GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .finds(text)
}

/// A `tracing` writer that scrubs each log line before it reaches stderr: logs at any
/// verbosity (kube's request traces included) never show a registered value. The log
/// layer makes one per event and writes the event's whole text into it; it is scrubbed
/// and written when flushed or dropped.
pub struct ScrubbingWriter<W: std::io::Write = std::io::Stderr> {
    inner: W,
    buffer: Vec<u8>,
}

impl ScrubbingWriter {
    pub fn stderr() -> ScrubbingWriter {
        ScrubbingWriter::new(std::io::stderr())
    }
}

impl<W: std::io::Write> ScrubbingWriter<W> {
    pub fn new(inner: W) -> ScrubbingWriter<W> {
        ScrubbingWriter {
            inner,
            buffer: Vec::new(),
        }
    }
}

impl<W: std::io::Write> std::io::Write for ScrubbingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer).into_owned();
        self.buffer.clear();
        self.inner.write_all(scrub(&text).as_bytes())?;
        self.inner.flush()
    }
}

impl<W: std::io::Write> Drop for ScrubbingWriter<W> {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

/// The digest that replaces a secret value in stored manifests: enough to tell a drift
/// or a change, useless to recover the value.
pub fn redacted(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("<redacted sha256:{hex}>")
}

pub fn is_redacted(text: &str) -> bool {
    text.starts_with("<redacted sha256:") && text.ends_with('>')
}

/// Whether a manifest object is a core `Secret` (whose data never goes into a record).
pub fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// A copy of the manifest with every `Secret`'s `data` and `stringData` values replaced
/// by [`redacted`] digests.
pub fn redact_manifest(manifest: &[Value]) -> Vec<Value> {
    manifest
        .iter()
        .map(|object| {
            let mut object = object.clone();
            if is_secret(&object) {
                redact_secret_object(&mut object);
            }
            object
        })
        .collect()
}

/// Replaces, in place, every value of a `Secret` object's `data` and `stringData`.
/// `stringData` is first folded into `data` (base64), as the API server does, so the
/// digests of a recorded Secret and of the live one compare equal when the values do.
pub fn redact_secret_object(object: &mut Value) {
    use base64::Engine;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(data) = data {
            for (key, value) in strings {
                let text = value.as_str().unwrap_or_default();
                let folded = if is_redacted(text) {
                    text.to_owned()
                } else {
                    base64::engine::general_purpose::STANDARD.encode(text)
                };
                data.insert(key, Value::String(folded));
            }
        }
    }
    if let Some(Value::Object(data)) = map.get_mut("data") {
        for value in data.values_mut() {
            let text = value.as_str().unwrap_or_default().to_owned();
            // Idempotent: a recorded manifest is redacted already.
            if !is_redacted(&text) {
                *value = Value::String(redacted(&text));
            }
        }
    }
}

/// A leaf as text: a string as it is, anything else as its JSON.
fn leaf_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What is stored and shown of one rendered object, from its two renders: the render
/// with secret placeholders (`placeholders`) and the render with the values (`applied`,
/// what the API server gets). Every field on which they differ holds a secret, or
/// something made of one (a checksum, a base64 text, a URL with a password): it is
/// replaced by the [`redacted`] digest of the applied field, so a change still shows and
/// drift is still told, without the value. A `Secret`'s data is digested whole, as
/// [`redact_secret_object`] does.
pub fn stored_form(placeholders: &Value, applied: &Value) -> Value {
    let mut stored = mask_differences(placeholders, applied);
    if is_secret(applied) {
        if let (Some(stored), Some(applied)) = (stored.as_object_mut(), applied.as_object()) {
            for field in ["data", "stringData"] {
                match applied.get(field) {
                    Some(data) => {
                        stored.insert(field.to_owned(), data.clone());
                    }
                    None => {
                        stored.remove(field);
                    }
                }
            }
        }
        redact_secret_object(&mut stored);
    }
    stored
}

fn mask_differences(placeholders: &Value, applied: &Value) -> Value {
    match (placeholders, applied) {
        (Value::Object(p), Value::Object(a)) => Value::Object(
            a.iter()
                .map(|(key, av)| {
                    let masked = match p.get(key) {
                        Some(pv) => mask_differences(pv, av),
                        None => Value::String(redacted(&leaf_text(av))),
                    };
                    (key.clone(), masked)
                })
                .collect(),
        ),
        (Value::Array(p), Value::Array(a)) if p.len() == a.len() => Value::Array(
            p.iter()
                .zip(a)
                .map(|(pv, av)| mask_differences(pv, av))
                .collect(),
        ),
        (p, a) if p == a => a.clone(),
        (_, a) => Value::String(redacted(&leaf_text(a))),
    }
}

/// Whether a stored object has a digest in place of a field (a secret-bearing object:
/// a restore must take its secret fields from a fresh render).
pub fn contains_redacted(value: &Value) -> bool {
    match value {
        Value::String(text) => is_redacted(text),
        Value::Object(map) => map.values().any(contains_redacted),
        Value::Array(items) => items.iter().any(contains_redacted),
        _ => false,
    }
}

/// Replaces, in `target` (a live object, a dry-run answer), every field that `stored`
/// holds as a digest by the digest of `target`'s own field: diff and drift then compare
/// digests and print no value, whatever value is live (a rotated one included).
pub fn mask_like(stored: &Value, target: &mut Value) {
    match (stored, target) {
        (Value::String(text), target)
            if is_redacted(text)
                && !target.is_null()
                && !target.as_str().is_some_and(is_redacted) =>
        {
            *target = Value::String(redacted(&leaf_text(target)));
        }
        (Value::String(text), _) if is_redacted(text) => {}
        (Value::Object(s), Value::Object(t)) => {
            for (key, sv) in s {
                if let Some(tv) = t.get_mut(key) {
                    mask_like(sv, tv);
                }
            }
        }
        (Value::Array(s), Value::Array(t)) if s.len() == t.len() => {
            for (sv, tv) in s.iter().zip(t.iter_mut()) {
                mask_like(sv, tv);
            }
        }
        _ => {}
    }
}

/// A recorded object with each digest replaced by the field at the same place in a
/// fresh render (values read from Vault now): what a restore applies. `None` when the
/// fresh render has no such field (the chart changed shape since): the live object is
/// then kept.
pub fn fill_redacted(recorded: &Value, fresh: &Value) -> Option<Value> {
    match recorded {
        Value::String(text) if is_redacted(text) => (!fresh.is_null()).then(|| fresh.clone()),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, rv) in map {
                let filled = if contains_redacted(rv) {
                    fill_redacted(rv, fresh.get(key)?)?
                } else {
                    rv.clone()
                };
                out.insert(key.clone(), filled);
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => {
            let fresh_items = fresh.as_array();
            let mut out = Vec::with_capacity(items.len());
            for (i, rv) in items.iter().enumerate() {
                if contains_redacted(rv) {
                    out.push(fill_redacted(rv, fresh_items?.get(i)?)?);
                } else {
                    out.push(rv.clone());
                }
            }
            Some(Value::Array(out))
        }
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_data_is_redacted_and_other_objects_kept() {
        let manifest = vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t0ps3cret"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"password": "not-a-secret"}}),
        ];
        let stored = redact_manifest(&manifest);
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("aHVudGVyMg=="));
        assert!(!text.contains("t0ps3cret"));
        assert_eq!(stored[1], manifest[1]);
        // stringData is folded into data as the API server does: same digest as live.
        assert_eq!(stored[0]["data"]["token"], json!(redacted("dDBwczNjcmV0")));
        assert!(stored[0].get("stringData").is_none());
        assert_eq!(
            stored[0]["data"]["password"],
            json!(redacted("aHVudGVyMg=="))
        );
    }
}

#[cfg(test)]
mod scrubber_tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    const PLAIN: &str = "hunter2-canary-pw";
    const QUOTED: &str = "say \"hi\" \\ back\nslash";
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n";

    fn scrubber() -> Scrubber {
        let mut s = Scrubber::new();
        for v in [PLAIN, QUOTED, PEM] {
            s.add(v);
        }
        s
    }

    fn assert_scrubbed(form: &str, what: &str) {
        let s = scrubber();
        let text = format!("before {form} after");
        let out = s.scrub(&text);
        assert!(!out.contains(form), "{what} not scrubbed: {out}");
        assert!(out.contains(SCRUBBED), "{what}: {out}");
        assert!(
            out.starts_with("before ") && out.ends_with(" after"),
            "{out}"
        );
    }

    #[test]
    fn raw_values_are_scrubbed() {
        for v in [PLAIN, QUOTED, PEM] {
            assert_scrubbed(v, "raw");
        }
    }

    #[test]
    fn base64_forms_are_scrubbed_at_every_alignment() {
        let b64 = base64::engine::general_purpose::STANDARD;
        for v in [PLAIN, QUOTED, PEM] {
            assert_scrubbed(&b64.encode(v), "base64");
            assert_scrubbed(
                &base64::engine::general_purpose::URL_SAFE.encode(v),
                "base64url",
            );
            // Inside a longer base64 text: a Secret's data made of a template.
            for prefix in ["", "x", "xy", "user=admin password="] {
                let whole = b64.encode(format!("{prefix}{v};end"));
                let out = scrubber().scrub(&whole);
                assert!(out.contains(SCRUBBED), "{prefix:?}+{v:?} in {whole}: {out}");
            }
        }
    }

    #[test]
    fn json_yaml_and_debug_escaped_forms_are_scrubbed() {
        for v in [PLAIN, QUOTED, PEM] {
            let json = serde_json::to_string(v).unwrap();
            assert_scrubbed(&json, "json");
            let object = serde_json::to_string(&json!({ "env": [{ "value": v }] })).unwrap();
            assert!(!scrubber().scrub(&object).contains(&json[1..json.len() - 1]));
            assert_scrubbed(&format!("{v:?}"), "debug");
            let yaml = serde_yaml::to_string(&json!({ "value": v })).unwrap();
            let out = scrubber().scrub(&yaml);
            for line in v.lines().filter(|l| l.len() >= MIN_LINE_LEN) {
                assert!(!out.contains(line), "yaml {yaml:?} kept {line:?}: {out}");
            }
            assert_scrubbed(&v.replace('\'', "''"), "yaml single-quoted");
        }
    }

    #[test]
    fn url_encoded_forms_are_scrubbed() {
        for v in [PLAIN, QUOTED, PEM] {
            assert_scrubbed(&percent_encode(v, false), "percent");
            assert_scrubbed(&percent_encode(v, true), "form");
        }
        let mut s = Scrubber::new();
        s.add("p@ss w/rd!");
        assert_eq!(
            s.scrub("postgres://u:p%40ss%20w%2Frd%21@db"),
            "postgres://u:<redacted>@db"
        );
        assert_eq!(
            s.scrub("postgres://u:p%40ss+w%2frd%21@db"),
            "postgres://u:<redacted>@db"
        );
    }

    #[test]
    fn each_line_of_a_multi_line_value_is_scrubbed() {
        let s = scrubber();
        for line in PEM.lines() {
            let out = s.scrub(&format!("log: {line}"));
            assert!(!out.contains(line), "{line}: {out}");
        }
        // A short line is not: it would scrub ordinary words.
        let mut s = Scrubber::new();
        s.add("ab\nlong-enough-line");
        assert_eq!(s.scrub("ab ok"), "ab ok");
        assert_eq!(s.scrub("x long-enough-line"), "x <redacted>");
    }

    #[test]
    fn digests_are_shown_as_redacted() {
        let digest = redacted("hunter2");
        assert_eq!(
            hide_digests(&format!("from {digest} to {digest}.")),
            "from <redacted> to <redacted>."
        );
        assert_eq!(hide_digests("<redacted sha256:zz>"), "<redacted sha256:zz>");
        assert_eq!(scrub(&format!("x {digest}")), "x <redacted>");
    }

    #[test]
    fn short_values_and_text_without_values_are_left_alone() {
        let mut s = Scrubber::new();
        s.add("abc");
        assert!(s.is_empty());
        assert_eq!(
            scrubber().scrub("nothing secret here"),
            "nothing secret here"
        );
    }

    #[test]
    fn the_global_scrubber_knows_registered_values() {
        register("global-canary-value-42");
        assert_eq!(scrub("x global-canary-value-42 y"), "x <redacted> y");
        assert!(finds_secret("\"global-canary-value-42\""));
        // The log writer: an event written in pieces is scrubbed whole.
        let mut out = Vec::new();
        {
            let mut writer = ScrubbingWriter::new(&mut out);
            std::io::Write::write_all(&mut writer, b"TRACE body: {\"token\":\"global-canary")
                .unwrap();
            std::io::Write::write_all(&mut writer, b"-value-42\"}\n").unwrap();
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            "TRACE body: {\"token\":\"<redacted>\"}\n"
        );
    }

    #[test]
    fn stored_form_digests_every_field_the_secret_changes() {
        let placeholders = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"checksum/secrets": "aaaa"}},
            "spec": {"env": [{"name": "DB", "value": "<secret:db>"}, {"name": "X", "value": "1"}]}});
        let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"checksum/secrets": "bbbb"}},
            "spec": {"env": [{"name": "DB", "value": PLAIN}, {"name": "X", "value": "1"}]}});
        let stored = stored_form(&placeholders, &applied);
        let text = stored.to_string();
        assert!(!text.contains(PLAIN) && !text.contains("bbbb"), "{text}");
        assert_eq!(stored["spec"]["env"][0]["value"], json!(redacted(PLAIN)));
        assert_eq!(stored["spec"]["env"][1], applied["spec"]["env"][1]);
        assert!(contains_redacted(&stored));

        // Drift and diff: the live value is digested where the record has a digest.
        let mut live = applied.clone();
        mask_like(&stored, &mut live);
        assert_eq!(live, stored);
        let mut rotated = applied.clone();
        rotated["spec"]["env"][0]["value"] = json!("rotated-value-123");
        mask_like(&stored, &mut rotated);
        assert_eq!(
            rotated["spec"]["env"][0]["value"],
            json!(redacted("rotated-value-123"))
        );

        // A restore fills the digests from a fresh render.
        let filled = fill_redacted(&stored, &applied).unwrap();
        assert_eq!(filled, applied);
        assert_eq!(fill_redacted(&stored, &json!({"spec": {}})), None);
    }

    #[test]
    fn stored_form_of_a_secret_digests_its_data_as_live() {
        let placeholders = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"P": "<secret:p>"}});
        let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"P": PLAIN}});
        let stored = stored_form(&placeholders, &applied);
        let b64 = base64::engine::general_purpose::STANDARD.encode(PLAIN);
        assert_eq!(stored["data"]["P"], json!(redacted(&b64)));
        assert!(stored.get("stringData").is_none());
    }
}
