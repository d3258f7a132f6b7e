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
    // YAML: single-quoted, and however serde_yaml_ng writes the scalar.
    forms.push(value.replace('\'', "''"));
    if let Ok(yaml) = serde_yaml_ng::to_string(value) {
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
                .map(|(key, av)| match p.get(key) {
                    Some(pv) => (key.clone(), mask_differences(pv, av)),
                    // A key only the applied render has is made of a secret (a ConfigMap
                    // or an annotation keyed by a value): the key is digested too, and
                    // what it holds with it.
                    None => (redacted(key), Value::String(redacted(&leaf_text(av)))),
                })
                .collect(),
        ),
        // Both renders come from one template: their lists differ only where a secret
        // does, entry by entry.
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

/// Whether a stored object has a digest in place of a field or of a map key (a
/// secret-bearing object: a restore must take its secret fields from a fresh render).
pub fn contains_redacted(value: &Value) -> bool {
    match value {
        Value::String(text) => is_redacted(text),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| is_redacted(key) || contains_redacted(value)),
        Value::Array(items) => items.iter().any(contains_redacted),
        _ => false,
    }
}

/// One entry of a list and its counterpart in another version of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Its index in the first list (recorded, before), if it is there.
    pub left: Option<usize>,
    /// Its index in the second list (live, after), if it is there.
    pub right: Option<usize>,
    /// How a field path names it, between brackets: `name="web"`,
    /// `containerPort=8080,protocol="TCP"`, or its position.
    pub label: String,
}

/// How two versions of one list are matched entry by entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// By key: every entry of both lists has one ([`list_key`]). Otherwise by position,
    /// which says nothing about entries once the lists differ in length or order.
    pub keyed: bool,
    /// The entries of the first list in its order, each with its counterpart, then the
    /// entries only the second list has, in its order.
    pub pairs: Vec<Pair>,
}

/// The key of one entry of the list `field` (the name of the field that holds the
/// list), as Kubernetes keys its list-maps: `ports` by port and protocol (`TCP` when
/// not given), `volumeMounts` by `mountPath`, `volumeDevices` by `devicePath`, and any
/// list (env, containers, initContainers, volumes, imagePullSecrets, ...) by `name`.
/// `None` for an entry without its key: its list is then matched by position.
///
/// Returns (what compares, the label of a field path).
pub fn list_key(field: &str, entry: &Value) -> Option<(String, String)> {
    let map = entry.as_object()?;
    let scalar = |key: &str| {
        map.get(key)
            .filter(|v| v.is_string() || v.is_number())
            .map(leaf_text)
    };
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| text.to_owned());
    let by_port = |port: &str| {
        let number = scalar(port)?;
        let protocol = scalar("protocol").unwrap_or_else(|| "TCP".to_owned());
        Some((
            format!("{port}={number}/{protocol}"),
            format!("{port}={number},protocol={}", quoted(&protocol)),
        ))
    };
    let by = |key: &str| {
        let text = scalar(key)?;
        Some((format!("{key}={text}"), format!("{key}={}", quoted(&text))))
    };
    let special = match field {
        "ports" => by_port("containerPort").or_else(|| by_port("port")),
        "volumeMounts" => by("mountPath"),
        "volumeDevices" => by("devicePath"),
        _ => None,
    };
    special.or_else(|| by("name"))
}

/// Matches the entries of two versions of the list `field` by their key
/// ([`list_key`]) when every entry has one, else by position. The one rule by which
/// masking, drift, diff and a restore's fill-in pair list entries: an env var added
/// before another, a removed one, a reordered list, all leave every other entry with
/// its own counterpart. An entry whose key occurs several times is paired with the
/// occurrence of the same rank.
pub fn pair_entries(field: &str, left: &[Value], right: &[Value]) -> Pairing {
    let keys = |items: &[Value]| -> Option<Vec<(String, String)>> {
        items.iter().map(|item| list_key(field, item)).collect()
    };
    if let (Some(left_keys), Some(right_keys)) = (keys(left), keys(right)) {
        if !left.is_empty() || !right.is_empty() {
            let mut taken = vec![false; right.len()];
            let mut pairs = Vec::with_capacity(left.len().max(right.len()));
            for (l, (key, label)) in left_keys.iter().enumerate() {
                let r = right_keys
                    .iter()
                    .enumerate()
                    .position(|(r, (other, _))| !taken[r] && other == key);
                if let Some(r) = r {
                    taken[r] = true;
                }
                pairs.push(Pair {
                    left: Some(l),
                    right: r,
                    label: label.clone(),
                });
            }
            for (r, (_, label)) in right_keys.iter().enumerate() {
                if !taken[r] {
                    pairs.push(Pair {
                        left: None,
                        right: Some(r),
                        label: label.clone(),
                    });
                }
            }
            return Pairing { keyed: true, pairs };
        }
    }
    Pairing {
        keyed: false,
        pairs: (0..left.len().max(right.len()))
            .map(|i| Pair {
                left: (i < left.len()).then_some(i),
                right: (i < right.len()).then_some(i),
                label: i.to_string(),
            })
            .collect(),
    }
}

/// The digests that `stored` holds in place of a value or a key, without those of
/// values it also holds in the clear: the values it holds only as digests.
fn secret_digests(stored: &Value) -> std::collections::HashSet<String> {
    fn walk(value: &Value, digests: &mut Vec<String>, clear: &mut Vec<String>) {
        match value {
            Value::String(text) if is_redacted(text) => digests.push(text.clone()),
            Value::Object(map) => {
                for (key, value) in map {
                    if is_redacted(key) {
                        digests.push(key.clone());
                    } else {
                        clear.push(key.clone());
                    }
                    walk(value, digests, clear);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, digests, clear)),
            Value::Null => {}
            leaf => clear.push(leaf_text(leaf)),
        }
    }
    let (mut digests, mut clear) = (Vec::new(), Vec::new());
    walk(stored, &mut digests, &mut clear);
    let mut secret: std::collections::HashSet<String> = digests.into_iter().collect();
    if !secret.is_empty() {
        for text in clear {
            secret.remove(&redacted(&text));
        }
    }
    secret
}

/// Replaces, anywhere in `target`, every value and map key whose digest is in `secret`
/// by that digest.
fn mask_known(target: &mut Value, secret: &std::collections::HashSet<String>) {
    match target {
        Value::Object(map) => {
            let hides_key = map
                .keys()
                .any(|key| !is_redacted(key) && secret.contains(&redacted(key)));
            if hides_key {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(key, value)| {
                        let digest = redacted(&key);
                        if !is_redacted(&key) && secret.contains(&digest) {
                            (digest, value)
                        } else {
                            (key, value)
                        }
                    })
                    .collect();
            }
            map.values_mut().for_each(|value| mask_known(value, secret));
        }
        Value::Array(items) => items.iter_mut().for_each(|item| mask_known(item, secret)),
        Value::Null => {}
        Value::String(text) if is_redacted(text) => {}
        leaf => {
            let digest = redacted(&leaf_text(leaf));
            if secret.contains(&digest) {
                *leaf = Value::String(digest);
            }
        }
    }
}

/// Replaces, in `target` (a live object, a dry-run answer), every field that `stored`
/// holds as a digest by the digest of `target`'s own field: diff and drift then compare
/// digests and print no value, whatever value is live (a rotated one included). List
/// entries are matched by key ([`pair_entries`]), so an entry added, removed or moved
/// live leaves each secret field facing its own counterpart. Wherever the lists cannot
/// tell (an entry renamed, a list matched by position whose length changed), any value
/// or key of `target` that `stored` holds only as a digest is digested too: nothing
/// that a record keeps as a digest is shown because it moved.
pub fn mask_like(stored: &Value, target: &mut Value) {
    if !contains_redacted(stored) {
        return;
    }
    let secret = secret_digests(stored);
    if !secret.is_empty() {
        mask_known(target, &secret);
    }
    mask_paired("", stored, target);
}

fn mask_paired(field: &str, stored: &Value, target: &mut Value) {
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
                    mask_paired(key, sv, tv);
                }
            }
        }
        (Value::Array(s), Value::Array(t)) => {
            for pair in pair_entries(field, s, t).pairs {
                if let (Some(l), Some(r)) = (pair.left, pair.right) {
                    mask_paired(field, &s[l], &mut t[r]);
                }
            }
        }
        _ => {}
    }
}

/// `path.key`, or `key` at the top.
pub fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A recorded object with each digest replaced by the field at the same place in
/// `fresh` (a fresh render with values read from Vault now, or the live object): what a
/// restore applies. List entries are matched by key, as [`pair_entries`] does (an env
/// var inserted before the secret one by another revision does not lend it its value);
/// a list without keys only when it has the same length. `Err` names the first field
/// (path, never a value) that `fresh` cannot fill: the object is then kept as it is
/// live, and the restore says so.
pub fn fill_redacted(recorded: &Value, fresh: &Value) -> Result<Value, String> {
    fill_at("", "", recorded, fresh)
}

fn fill_at(path: &str, field: &str, recorded: &Value, fresh: &Value) -> Result<Value, String> {
    let missing = || {
        if path.is_empty() {
            "the object".to_owned()
        } else {
            path.to_owned()
        }
    };
    match recorded {
        Value::String(text) if is_redacted(text) => {
            if fresh.is_null() {
                Err(missing())
            } else {
                Ok(fresh.clone())
            }
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, rv) in map {
                if is_redacted(key) {
                    // A key made of a secret: the fresh key of the same digest.
                    let here = join_path(path, SCRUBBED);
                    let (fresh_key, fv) = fresh
                        .as_object()
                        .and_then(|f| f.iter().find(|(fk, _)| redacted(fk) == *key))
                        .ok_or_else(|| here.clone())?;
                    let filled = if contains_redacted(rv) {
                        fill_at(&here, fresh_key, rv, fv)?
                    } else {
                        rv.clone()
                    };
                    out.insert(fresh_key.clone(), filled);
                } else if contains_redacted(rv) {
                    let here = join_path(path, key);
                    let fv = fresh.get(key).ok_or_else(|| here.clone())?;
                    out.insert(key.clone(), fill_at(&here, key, rv, fv)?);
                } else {
                    out.insert(key.clone(), rv.clone());
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) if contains_redacted(recorded) => {
            let fresh_items = fresh.as_array().ok_or_else(missing)?;
            let pairing = pair_entries(field, items, fresh_items);
            if !pairing.keyed && items.len() != fresh_items.len() {
                return Err(format!("{} (a list of another length)", missing()));
            }
            let mut out = Vec::with_capacity(items.len());
            for pair in pairing.pairs {
                let Some(l) = pair.left else { continue };
                let here = format!("{path}[{}]", pair.label);
                if !contains_redacted(&items[l]) {
                    out.push(items[l].clone());
                    continue;
                }
                let r = pair.right.ok_or_else(|| here.clone())?;
                out.push(fill_at(&here, field, &items[l], &fresh_items[r])?);
            }
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
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
            let yaml = serde_yaml_ng::to_string(&json!({ "value": v })).unwrap();
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
        assert_eq!(
            fill_redacted(&stored, &json!({"spec": {}})),
            Err("metadata".to_owned())
        );
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

/// List entries paired by key: masking, and a restore's fill-in.
#[cfg(test)]
mod list_tests {
    use super::*;
    use serde_json::json;

    const PW: &str = "db-password-canary-41";
    const TOKEN: &str = "api-token-canary-77";

    /// A worker Deployment whose env holds `DB_PASSWORD` and whose second container
    /// holds `API_TOKEN`, as applied and as stored (placeholders where the values are).
    fn worker(password: &str, token: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
            "spec": {"template": {"metadata": {"annotations": {"canary/pw": password}},
                "spec": {
                "containers": [
                    {"name": "worker", "image": "w:1", "args": ["work", "--password", password],
                     "env": [{"name": "QUEUE", "value": "jobs"}, {"name": "DB_PASSWORD", "value": password}],
                     "ports": [{"containerPort": 8080, "name": "http"}],
                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                    {"name": "sidecar", "image": "s:1",
                     "env": [{"name": "API_TOKEN", "value": token}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]}}}})
    }

    fn stored() -> (Value, Value) {
        let applied = worker(PW, TOKEN);
        (
            stored_form(&worker("<secret:db>", "<secret:api>"), &applied),
            applied,
        )
    }

    fn env(object: &mut Value, container: usize) -> &mut Vec<Value> {
        object["spec"]["template"]["spec"]["containers"][container]["env"]
            .as_array_mut()
            .unwrap()
    }

    fn assert_no_value(value: &Value) {
        let text = value.to_string();
        let mut forms = Scrubber::new();
        forms.add(PW);
        forms.add(TOKEN);
        assert!(!forms.finds(&text), "a secret value in {text}");
    }

    #[test]
    fn env_containers_ports_and_mounts_pair_by_key() {
        let left = [json!({"name": "A"}), json!({"name": "B"})];
        let right = [
            json!({"name": "X"}),
            json!({"name": "B"}),
            json!({"name": "A"}),
        ];
        let pairing = pair_entries("env", &left, &right);
        assert!(pairing.keyed);
        let pairs: Vec<_> = pairing
            .pairs
            .iter()
            .map(|p| (p.left, p.right, p.label.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                (Some(0), Some(2), "name=\"A\""),
                (Some(1), Some(1), "name=\"B\""),
                (None, Some(0), "name=\"X\"")
            ]
        );
        // Ports by number and protocol, TCP when not given; mounts by path.
        let ports = pair_entries(
            "ports",
            &[
                json!({"containerPort": 80}),
                json!({"containerPort": 53, "protocol": "UDP"}),
            ],
            &[
                json!({"containerPort": 53, "protocol": "UDP"}),
                json!({"containerPort": 80, "protocol": "TCP"}),
            ],
        );
        assert_eq!(
            (ports.pairs[0].right, ports.pairs[1].right),
            (Some(1), Some(0))
        );
        assert_eq!(ports.pairs[0].label, "containerPort=80,protocol=\"TCP\"");
        let mounts = pair_entries(
            "volumeMounts",
            &[json!({"name": "v", "mountPath": "/a"})],
            &[
                json!({"name": "v", "mountPath": "/b"}),
                json!({"name": "v", "mountPath": "/a"}),
            ],
        );
        assert_eq!(mounts.pairs[0].right, Some(1));
        // Service ports by port.
        let service = pair_entries(
            "ports",
            &[json!({"port": 443})],
            &[json!({"port": 443, "protocol": "TCP"})],
        );
        assert_eq!(service.pairs[0].right, Some(0));
    }

    #[test]
    fn lists_without_keys_pair_by_position_and_duplicates_by_rank() {
        let args = pair_entries("args", &[json!("a"), json!("b")], &[json!("x")]);
        assert!(!args.keyed);
        assert_eq!(args.pairs.len(), 2);
        assert_eq!((args.pairs[1].left, args.pairs[1].right), (Some(1), None));
        // One entry without a name: the whole list by position.
        let mixed = pair_entries("env", &[json!({"name": "A"})], &[json!({"value": "1"})]);
        assert!(!mixed.keyed);
        let twice = pair_entries(
            "env",
            &[
                json!({"name": "A", "value": 1}),
                json!({"name": "A", "value": 2}),
            ],
            &[
                json!({"name": "B"}),
                json!({"name": "A"}),
                json!({"name": "A"}),
            ],
        );
        let rights: Vec<_> = twice.pairs.iter().map(|p| p.right).collect();
        assert_eq!(rights, [Some(1), Some(2), Some(0)]);
    }

    #[test]
    fn a_longer_live_env_list_keeps_the_secret_masked() {
        let (stored, applied) = stored();
        let mut live = applied.clone();
        env(&mut live, 0).push(json!({"name": "DEBUG", "value": "1"}));
        mask_like(&stored, &mut live);
        assert_no_value(&live);
        assert_eq!(env(&mut live, 0)[2], json!({"name": "DEBUG", "value": "1"}));
        assert_eq!(
            env(&mut live, 0)[1]["value"],
            stored["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"]
        );
    }

    #[test]
    fn a_shorter_reordered_or_inserted_before_env_list_keeps_the_secret_masked() {
        let (stored, applied) = stored();
        let shorter = |live: &mut Value| {
            env(live, 0).remove(0);
        };
        let reordered = |live: &mut Value| env(live, 0).reverse();
        let inserted = |live: &mut Value| {
            env(live, 0).insert(0, json!({"name": "FIRST", "value": "x"}));
        };
        for change in [&shorter as &dyn Fn(&mut Value), &reordered, &inserted] {
            let mut live = applied.clone();
            change(&mut live);
            mask_like(&stored, &mut live);
            assert_no_value(&live);
            let password = env(&mut live, 0)
                .iter()
                .find(|e| e["name"] == "DB_PASSWORD")
                .cloned()
                .unwrap();
            assert_eq!(password["value"], json!(redacted(PW)));
        }
    }

    #[test]
    fn reordered_containers_keep_their_secrets_masked() {
        let (stored, applied) = stored();
        let mut live = applied.clone();
        let containers = live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap();
        containers.reverse();
        containers.insert(0, json!({"name": "debugger", "image": "busybox"}));
        mask_like(&stored, &mut live);
        assert_no_value(&live);
        assert_eq!(env(&mut live, 1)[0]["value"], json!(redacted(TOKEN)));
    }

    #[test]
    fn a_secret_moved_where_no_key_tells_is_masked_anywhere() {
        let (stored, applied) = stored();
        // Renamed, copied under another name, in a longer list without keys, and as
        // an annotation of another key.
        let mut live = applied.clone();
        env(&mut live, 0)[1]["name"] = json!("DB_PASS");
        env(&mut live, 1).push(json!({"name": "COPY", "value": PW}));
        let args = live["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array_mut()
            .unwrap();
        args.insert(1, json!("--debug"));
        let annotations = live["spec"]["template"]["metadata"]["annotations"]
            .as_object_mut()
            .unwrap();
        annotations.insert("canary/renamed".into(), json!(PW));
        mask_like(&stored, &mut live);
        assert_no_value(&live);
        // What the record holds in the clear is still shown.
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"][0]["args"][1],
            json!("--debug")
        );
        assert_eq!(env(&mut live, 0)[0]["value"], json!("jobs"));
    }

    #[test]
    fn a_map_key_made_of_a_secret_is_stored_and_masked_as_a_digest() {
        let placeholders = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"<secret:db>": "user", "level": "info"}});
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {PW: "user", "level": "info"}});
        let stored = stored_form(&placeholders, &applied);
        assert_no_value(&stored);
        assert!(contains_redacted(&stored));
        assert_eq!(stored["data"][redacted(PW)], json!(redacted("user")));
        assert_eq!(stored["data"]["level"], json!("info"));
        // Live, the key is masked the same way: no drift, no value.
        let mut live = applied.clone();
        mask_like(&stored, &mut live);
        assert_eq!(live, stored);
        // A restore takes the key back from live.
        assert_eq!(fill_redacted(&stored, &applied), Ok(applied.clone()));
        let rotated = json!({"data": {"other-key-value": "user", "level": "info"}});
        assert_eq!(
            fill_redacted(&stored, &rotated),
            Err("data.<redacted>".to_owned())
        );
    }

    #[test]
    fn a_restore_fills_each_secret_from_its_own_entry() {
        let (stored, applied) = stored();
        // The failed revision inserted an env var before DB_PASSWORD, and reordered
        // the containers.
        let mut failed = applied.clone();
        env(&mut failed, 0).insert(0, json!({"name": "INSERTED", "value": "not-the-password"}));
        failed["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .reverse();
        failed["spec"]["template"]["spec"]["containers"][1]["image"] = json!("w:crashloop");
        let filled = fill_redacted(&stored, &failed).unwrap();
        assert_eq!(
            filled, applied,
            "exactly the recorded revision, values from live"
        );
    }

    #[test]
    fn a_restore_that_cannot_fill_an_entry_names_it() {
        let (stored, applied) = stored();
        let mut renamed = applied.clone();
        env(&mut renamed, 0)[1]["name"] = json!("DB_PASS");
        assert_eq!(
            fill_redacted(&stored, &renamed),
            Err(
                "spec.template.spec.containers[name=\"worker\"].env[name=\"DB_PASSWORD\"]"
                    .to_owned()
            )
        );
        let mut from_secret = applied.clone();
        env(&mut from_secret, 0)[1] = json!({"name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}});
        assert_eq!(
            fill_redacted(&stored, &from_secret),
            Err(
                "spec.template.spec.containers[name=\"worker\"].env[name=\"DB_PASSWORD\"].value"
                    .to_owned()
            )
        );
        // A list without keys of another length: nothing says which entry is which.
        let mut longer_args = applied.clone();
        longer_args["spec"]["template"]["spec"]["containers"][1]["args"] = json!(["x"]);
        longer_args["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!("--debug"));
        let err = fill_redacted(&stored, &longer_args).unwrap_err();
        assert!(err.ends_with("args (a list of another length)"), "{err}");
    }
}
