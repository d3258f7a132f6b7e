//! The template helpers a chart author coming from Helm expects, in Helm's argument
//! order (`indent 4 x`, `default "a" x`, `trunc 63 x`): the value being worked on comes
//! last, the options first.
//!
//! Handlebars' strict mode stops `{{Values.missing}}`, but a missing value passed to a
//! helper arrives silently (as `ScopedJson::Missing`). So every helper here except
//! `default` refuses a missing argument with an error naming the path; Handlebars adds
//! the template and line. Every helper returns a value (`call_inner`), so they compose
//! as subexpressions: `{{nindent 4 (toYaml Values.resources)}}`.

use crate::config::yaml::kind_of;
use base64::Engine as _;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, JsonRender, JsonTruthy, PathAndJson, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How many arguments a helper takes.
#[derive(Clone, Copy)]
enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

type Body = fn(&[&Value]) -> Result<Value, String>;

/// One value-returning helper: its name, usage (for errors) and body.
struct Function {
    name: &'static str,
    usage: &'static str,
    arity: Arity,
    body: Body,
}

/// The helpers, by name. `eq`, `ne`, `and`, `or` and `not` replace Handlebars' built-in
/// ones, which accept a missing value silently.
const FUNCTIONS: &[Function] = &[
    Function {
        name: "b64enc",
        usage: "b64enc TEXT",
        arity: Arity::Exactly(1),
        body: b64enc,
    },
    Function {
        name: "quote",
        usage: "quote VALUE",
        arity: Arity::Exactly(1),
        body: quote,
    },
    Function {
        name: "toYaml",
        usage: "toYaml VALUE",
        arity: Arity::Exactly(1),
        body: to_yaml,
    },
    Function {
        name: "toJson",
        usage: "toJson VALUE",
        arity: Arity::Exactly(1),
        body: to_json,
    },
    Function {
        name: "indent",
        usage: "indent WIDTH TEXT",
        arity: Arity::Exactly(2),
        body: indent,
    },
    Function {
        name: "nindent",
        usage: "nindent WIDTH TEXT",
        arity: Arity::Exactly(2),
        body: nindent,
    },
    Function {
        name: "required",
        usage: "required MESSAGE VALUE",
        arity: Arity::Exactly(2),
        body: required,
    },
    Function {
        name: "sha256sum",
        usage: "sha256sum TEXT",
        arity: Arity::Exactly(1),
        body: sha256sum,
    },
    Function {
        name: "secretsum",
        usage: "secretsum VALUE",
        arity: Arity::Exactly(1),
        body: secretsum,
    },
    Function {
        name: "upper",
        usage: "upper TEXT",
        arity: Arity::Exactly(1),
        body: upper,
    },
    Function {
        name: "lower",
        usage: "lower TEXT",
        arity: Arity::Exactly(1),
        body: lower,
    },
    Function {
        name: "trunc",
        usage: "trunc LENGTH TEXT",
        arity: Arity::Exactly(2),
        body: trunc,
    },
    Function {
        name: "eq",
        usage: "eq A B",
        arity: Arity::Exactly(2),
        body: eq,
    },
    Function {
        name: "ne",
        usage: "ne A B",
        arity: Arity::Exactly(2),
        body: ne,
    },
    Function {
        name: "and",
        usage: "and A B...",
        arity: Arity::AtLeast(2),
        body: and,
    },
    Function {
        name: "or",
        usage: "or A B...",
        arity: Arity::AtLeast(2),
        body: or,
    },
    Function {
        name: "not",
        usage: "not VALUE",
        arity: Arity::Exactly(1),
        body: not,
    },
];

/// Register every helper on a registry.
pub fn register(registry: &mut Handlebars<'static>) {
    for function in FUNCTIONS {
        registry.register_helper(function.name, Box::new(function));
    }
    registry.register_helper("default", Box::new(DefaultHelper));
    registry.register_helper("include", Box::new(IncludeHelper));
}

/// `include "NAME"`: a partial's output as text, so it can be hashed or indented:
/// `{{sha256sum (include "config")}}` (Helm's `include`). The partial sees the current
/// context.
struct IncludeHelper;

impl HelperDef for IncludeHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        const USAGE: &str = "include PARTIAL";
        check_arity("include", USAGE, Arity::Exactly(1), h.params().len())?;
        refuse_missing("include", 0, &h.params()[0])?;
        let Some(name) = h.params()[0].value().as_str() else {
            return Err(other(format!(
                "`include`: the partial's name must be text (usage: {USAGE})"
            )));
        };
        let Some(partial) = registry.get_template(name) else {
            return Err(other(format!(
                "`include`: no partial {name:?} (partials are templates/_{name}.hbs)"
            )));
        };
        let text = partial.renders(registry, ctx, &mut rc.clone())?;
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

fn other(message: String) -> RenderError {
    RenderError::from(RenderErrorReason::Other(message))
}

impl HelperDef for &'static Function {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        check_arity(self.name, self.usage, self.arity, h.params().len())?;
        let mut args = Vec::with_capacity(h.params().len());
        for (index, param) in h.params().iter().enumerate() {
            refuse_missing(self.name, index, param)?;
            args.push(param.value());
        }
        (self.body)(&args)
            .map(ScopedJson::Derived)
            .map_err(|message| match self.name {
                // The chart author's own message says what to do.
                "required" => other(format!("`required`: {message}")),
                name => other(format!("`{name}`: {message} (usage: {})", self.usage)),
            })
    }
}

/// `default DEFAULT VALUE`: VALUE unless it is missing or empty (null, false, 0, "",
/// an empty list or map, as Helm's `empty`), else DEFAULT. The one helper that accepts
/// a missing value: that is what it is for.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        const USAGE: &str = "default DEFAULT VALUE";
        check_arity("default", USAGE, Arity::Exactly(2), h.params().len())?;
        let (fallback, value) = (&h.params()[0], &h.params()[1]);
        refuse_missing("default", 0, fallback)?;
        let chosen = if value.is_value_missing() || is_empty(value.value()) {
            fallback.value()
        } else {
            value.value()
        };
        Ok(ScopedJson::Derived(chosen.clone()))
    }
}

fn check_arity(name: &str, usage: &str, arity: Arity, given: usize) -> Result<(), RenderError> {
    let fits = match arity {
        Arity::Exactly(n) => given == n,
        Arity::AtLeast(n) => given >= n,
    };
    if fits {
        return Ok(());
    }
    let wanted = match arity {
        Arity::Exactly(n) => format!("{n}"),
        Arity::AtLeast(n) => format!("at least {n}"),
    };
    Err(other(format!(
        "`{name}` takes {wanted} argument{}, got {given} (usage: {usage})",
        if wanted == "1" { "" } else { "s" }
    )))
}

fn refuse_missing(name: &str, index: usize, param: &PathAndJson<'_>) -> Result<(), RenderError> {
    if !param.is_value_missing() {
        return Ok(());
    }
    let what = match param.relative_path() {
        Some(path) => format!("`{path}`"),
        None => format!("argument {}", index + 1),
    };
    Err(other(format!(
        "`{name}`: {what} is missing (strict mode); give it a value or guard it with `default`"
    )))
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// A scalar as text; a list or map is refused (it would render as `[object]`).
fn text<'a>(value: &'a Value, what: &str) -> Result<std::borrow::Cow<'a, str>, String> {
    match value {
        Value::String(s) => Ok(s.as_str().into()),
        Value::Number(_) | Value::Bool(_) => Ok(value.render().into()),
        Value::Null => Ok("".into()),
        Value::Array(_) | Value::Object(_) => Err(format!(
            "{what} must be text, got {}; turn it into text with `toYaml` or `toJson` first",
            kind_of(value)
        )),
    }
}

/// A non-negative integer argument such as `indent`'s width.
/// Bounded so a typo (`indent 40000000000 x`) is an error, not an exhausted memory.
fn width(value: &Value, what: &str) -> Result<usize, String> {
    const MAX: u64 = 1024;
    match value.as_u64() {
        Some(n) if n <= MAX => Ok(n as usize),
        _ => Err(format!(
            "{what} must be an integer from 0 to {MAX}, got {value}"
        )),
    }
}

fn b64enc(args: &[&Value]) -> Result<Value, String> {
    let text = text(args[0], "the value")?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
    ))
}

/// JSON string escaping is a valid YAML double-quoted scalar, and what Go's `%q` does
/// for everything a chart holds.
fn quote(args: &[&Value]) -> Result<Value, String> {
    let text = text(args[0], "the value")?;
    serde_json::to_string(text.as_ref())
        .map(Value::String)
        .map_err(|err| err.to_string())
}

/// Block YAML without the trailing newline, as Helm's `toYaml`.
fn to_yaml(args: &[&Value]) -> Result<Value, String> {
    let yaml = serde_yaml_ng::to_string(args[0]).map_err(|err| err.to_string())?;
    Ok(Value::String(yaml.trim_end_matches('\n').to_string()))
}

fn to_json(args: &[&Value]) -> Result<Value, String> {
    serde_json::to_string(args[0])
        .map(Value::String)
        .map_err(|err| err.to_string())
}

/// Every line (empty ones too) prefixed by WIDTH spaces, as Helm's `indent`.
fn indent(args: &[&Value]) -> Result<Value, String> {
    let pad = " ".repeat(width(args[0], "WIDTH")?);
    let text = text(args[1], "TEXT")?;
    Ok(Value::String(format!(
        "{pad}{}",
        text.replace('\n', &format!("\n{pad}"))
    )))
}

fn nindent(args: &[&Value]) -> Result<Value, String> {
    let indented = indent(args)?;
    Ok(Value::String(format!(
        "\n{}",
        indented.as_str().unwrap_or_default()
    )))
}

/// VALUE, or an error with MESSAGE when VALUE is null or "" (missing is refused before).
fn required(args: &[&Value]) -> Result<Value, String> {
    let message = text(args[0], "MESSAGE")?;
    match args[1] {
        Value::Null => Err(message.into_owned()),
        Value::String(s) if s.is_empty() => Err(message.into_owned()),
        value => Ok(value.clone()),
    }
}

thread_local! {
    /// The key of [`secretsum`] for the render running on this thread (set by
    /// [`with_checksum_key`]); a render is synchronous, so it cannot leak to another.
    static CHECKSUM_KEY: std::cell::RefCell<Option<zeroize::Zeroizing<Vec<u8>>>> =
        const { std::cell::RefCell::new(None) };
}

/// The key used when a render has none (`template`, `lint`: no cluster to keep one).
const NO_CLUSTER_KEY: &[u8] = b"flotilla: no cluster key (template, lint)";

/// Runs `render` with `key` as the key of `secretsum` on this thread.
pub fn with_checksum_key<T>(key: Option<&[u8]>, render: impl FnOnce() -> T) -> T {
    CHECKSUM_KEY.with(|k| *k.borrow_mut() = key.map(|key| zeroize::Zeroizing::new(key.to_vec())));
    let out = render();
    CHECKSUM_KEY.with(|k| *k.borrow_mut() = None);
    out
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`, hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// `secretsum VALUE`: a checksum that changes when a secret does, for a pod-restart
/// annotation, and that is not an oracle: HMAC-SHA256 keyed by the release's key kept
/// in a Secret of the cluster, so reading the annotation (`get pods`) without reading
/// Secrets gives nothing to test guesses of a weak password against. A list or map is
/// summed as its JSON, as `sha256sum` does.
fn secretsum(args: &[&Value]) -> Result<Value, String> {
    let bytes = match args[0] {
        Value::Array(_) | Value::Object(_) => {
            serde_json::to_string(args[0]).map_err(|e| e.to_string())?
        }
        value => text(value, "VALUE")?.into_owned(),
    };
    let sum = CHECKSUM_KEY.with(|key| {
        let key = key.borrow();
        hmac_sha256_hex(
            key.as_deref().map_or(NO_CLUSTER_KEY, |k| k.as_slice()),
            bytes.as_bytes(),
        )
    });
    Ok(Value::String(sum))
}

/// Hex SHA-256 of text; a list or map is hashed as its JSON, so
/// `sha256sum Values.config` changes exactly when the config does.
fn sha256sum(args: &[&Value]) -> Result<Value, String> {
    let bytes = match args[0] {
        Value::Array(_) | Value::Object(_) => {
            serde_json::to_string(args[0]).map_err(|e| e.to_string())?
        }
        value => text(value, "TEXT")?.into_owned(),
    };
    let digest = Sha256::digest(bytes.as_bytes());
    Ok(Value::String(
        digest.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

fn upper(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(text(args[0], "TEXT")?.to_uppercase()))
}

fn lower(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(text(args[0], "TEXT")?.to_lowercase()))
}

/// The first LENGTH characters; a negative LENGTH keeps the last ones, as in Helm.
fn trunc(args: &[&Value]) -> Result<Value, String> {
    let length = args[0]
        .as_i64()
        .ok_or_else(|| format!("LENGTH must be an integer, got {}", args[0]))?;
    let text = text(args[1], "TEXT")?;
    let chars: Vec<char> = text.chars().collect();
    let kept: String = match usize::try_from(length.unsigned_abs()) {
        Ok(n) if n < chars.len() && length >= 0 => chars[..n].iter().collect(),
        Ok(n) if n < chars.len() => chars[chars.len() - n..].iter().collect(),
        _ => text.into_owned(),
    };
    Ok(Value::String(kept))
}

fn eq(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(args[0] == args[1]))
}

fn ne(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(args[0] != args[1]))
}

fn and(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(args.iter().all(|v| v.is_truthy(false))))
}

fn or(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(args.iter().any(|v| v.is_truthy(false))))
}

fn not(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::Bool(!args[0].is_truthy(false)))
}

#[cfg(test)]
mod hmac_tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test cases 1 and 2.
        assert_eq!(
            hmac_sha256_hex(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (test case 6).
        assert_eq!(
            hmac_sha256_hex(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn secretsum_depends_on_the_key_and_the_value() {
        let value = Value::String("hunter2".into());
        let sum = |key: Option<&[u8]>| {
            with_checksum_key(key, || secretsum(&[&value]).unwrap_or_default())
        };
        let a = sum(Some(b"key-a"));
        assert_eq!(a, sum(Some(b"key-a")));
        assert_ne!(a, sum(Some(b"key-b")));
        let plain = sha256sum(&[&value]).unwrap_or_default();
        assert_ne!(a, plain, "not the unkeyed sha256 anyone can recompute");
        assert_eq!(sum(None), sum(None));
        let other = Value::String("hunter3".into());
        let b = with_checksum_key(Some(b"key-a"), || secretsum(&[&other]).unwrap_or_default());
        assert_ne!(a, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: Value) -> Result<String, String> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        register(&mut registry);
        registry
            .render_template(template, &data)
            .map_err(|err| format!("line {:?}: {}", err.line_no, err.reason()))
    }

    #[test]
    fn helpers_take_helm_argument_order() {
        let data = json!({"a": "x\ny", "n": 0, "s": "Hello", "m": {"k": [1, 2]}});
        assert_eq!(render("{{indent 2 a}}", data.clone()).unwrap(), "  x\n  y");
        assert_eq!(
            render("{{nindent 2 a}}", data.clone()).unwrap(),
            "\n  x\n  y"
        );
        assert_eq!(render("{{default \"d\" n}}", data.clone()).unwrap(), "d");
        assert_eq!(
            render("{{default \"d\" missing}}", data.clone()).unwrap(),
            "d"
        );
        assert_eq!(
            render("{{default \"d\" s}}", data.clone()).unwrap(),
            "Hello"
        );
        assert_eq!(render("{{trunc 3 s}}", data.clone()).unwrap(), "Hel");
        assert_eq!(render("{{trunc -2 s}}", data.clone()).unwrap(), "lo");
        assert_eq!(render("{{trunc 63 s}}", data.clone()).unwrap(), "Hello");
        assert_eq!(render("{{quote s}}", data.clone()).unwrap(), "\"Hello\"");
        assert_eq!(render("{{quote n}}", data.clone()).unwrap(), "\"0\"");
        assert_eq!(
            render("{{upper s}}{{lower s}}", data.clone()).unwrap(),
            "HELLOhello"
        );
        assert_eq!(render("{{b64enc s}}", data.clone()).unwrap(), "SGVsbG8=");
        assert_eq!(
            render("{{toJson m}}", data.clone()).unwrap(),
            r#"{"k":[1,2]}"#
        );
        assert_eq!(
            render("{{nindent 2 (toYaml m)}}", data.clone()).unwrap(),
            "\n  k:\n  - 1\n  - 2"
        );
        assert_eq!(
            render("{{sha256sum s}}", data.clone()).unwrap(),
            "185f8db32271fe25f561a6fc938b2e264306ec304eda518007d1764826381969"
        );
        assert_eq!(
            render(
                "{{#if (and (eq s \"Hello\") (not n) (or n s))}}yes{{else}}no{{/if}}",
                data.clone()
            )
            .unwrap(),
            "yes"
        );
        assert_eq!(
            render("{{#if (ne s \"Hello\")}}yes{{else}}no{{/if}}", data).unwrap(),
            "no"
        );
    }

    #[test]
    fn every_helper_but_default_refuses_a_missing_value() {
        for function in FUNCTIONS {
            let args = match function.arity {
                Arity::Exactly(1) => "Values.nope".to_string(),
                _ => "2 Values.nope".to_string(),
            };
            let err = render(
                &format!("line one\n{{{{{} {args}}}}}", function.name),
                json!({"Values": {}}),
            )
            .expect_err(function.name);
            assert!(
                err.contains("`Values.nope` is missing"),
                "{}: {err}",
                function.name
            );
            assert!(err.starts_with("line Some(2)"), "{}: {err}", function.name);
        }
    }

    #[test]
    fn if_and_unless_treat_a_missing_value_as_false() {
        let text = render(
            "{{#if Values.nope}}a{{else}}b{{/if}}{{#unless Values.nope}}c{{/unless}}",
            json!({"Values": {}}),
        );
        assert_eq!(text.unwrap(), "bc");
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = render("{{indent \"x\" s}}", json!({"s": "a"})).unwrap_err();
        assert!(
            err.contains("`indent`: WIDTH must be an integer from 0 to 1024, got \"x\""),
            "{err}"
        );
        let err = render("{{indent 2}}", json!({})).unwrap_err();
        assert!(err.contains("`indent` takes 2 arguments, got 1"), "{err}");
        let err = render("{{upper m}}", json!({"m": {"a": 1}})).unwrap_err();
        assert!(err.contains("got a map"), "{err}");
        let err = render("{{required \"set image.tag\" t}}", json!({"t": ""})).unwrap_err();
        assert!(err.contains("`required`: set image.tag"), "{err}");
    }
}
