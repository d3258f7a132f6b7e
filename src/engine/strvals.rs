//! The `--set` language, as Helm reads it: `a.b=1,c[0]=x,d={x,y}`, with backslash
//! escapes (`a\.b=1`, `x=one\,two`). Three flags share it and differ only in how a value
//! is typed: `--set` (integers, `true`/`false`/`null`, anything else a string: `1.10`
//! stays `"1.10"`), `--set-string` (always a string) and `--set-json` (each value is
//! JSON; nothing is a list `{...}`).
//!
//! The cases this follows are those of Helm's own parser tests (`pkg/strvals`); the
//! unit tests below are those cases, written against this parser.

use crate::config::yaml::kind_of;
use serde_json::{Map, Value};

/// How the values of one flag are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    /// `--set`: integers, booleans and null; anything else a string.
    Typed,
    /// `--set-string`: every value a string.
    String,
    /// `--set-json`: every value JSON; an empty value is null.
    Json,
}

/// Deeper paths than this are refused, as Helm does (a path is not a place for data).
const MAX_DEPTH: usize = 30;
/// Paths of more steps (keys and indexes) are refused: `a[0][0]...` must not nest
/// without bound.
const MAX_STEPS: usize = 100;
/// Larger list indexes are refused, as Helm does: `a[100000000]=x` would allocate them all.
const MAX_INDEX: usize = 65_536;

/// Parses one argument of a `--set`-like flag into `dest`, later assignments over
/// earlier ones (and over what `dest` held: the `-f` files). The message of an error
/// says what is wrong without repeating the argument (the caller names flag and value).
pub fn parse_into(arg: &str, typing: Typing, dest: &mut Map<String, Value>) -> Result<(), String> {
    let mut parser = Parser {
        chars: arg.chars().collect(),
        at: 0,
        typing,
    };
    while !parser.at_end() {
        parser.assignment(dest)?;
    }
    Ok(())
}

/// One step of a path: a map key or a list index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// What ends a path.
enum PathEnd {
    /// `=`: a value follows.
    Value,
    /// The argument ended just after an index: `list[0]` sets nothing but makes the list
    /// exist, as in Helm.
    EndAfterIndex,
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    typing: Typing,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += 1;
        c
    }

    /// `path=value` followed by `,` or the end.
    fn assignment(&mut self, dest: &mut Map<String, Value>) -> Result<(), String> {
        let (path, end) = self.path()?;
        let value = match end {
            PathEnd::EndAfterIndex => None,
            PathEnd::Value => Some(self.value()?),
        };
        place(dest, &path, value)
    }

    /// Reads text up to one of `stops` (not consumed), unescaping `\x` to `x`.
    fn text_until(&mut self, stops: &[char]) -> String {
        let mut text = String::new();
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                break;
            }
            self.at += 1;
            if c == '\\' {
                // A backslash at the very end stands for itself.
                text.push(self.next().unwrap_or('\\'));
            } else {
                text.push(c);
            }
        }
        text
    }

    fn path(&mut self) -> Result<(Vec<Step>, PathEnd), String> {
        let mut steps = Vec::new();
        loop {
            let key = self.text_until(&['=', '[', ',', '.']);
            match self.next() {
                Some('=') if key.is_empty() => return Err(empty_key(&steps)),
                Some('=') => {
                    steps.push(Step::Key(key));
                    return Ok((steps, PathEnd::Value));
                }
                Some('.') if key.is_empty() => return Err(empty_key(&steps)),
                Some('.') => {
                    steps.push(Step::Key(key));
                    let depth = steps.iter().filter(|s| matches!(s, Step::Key(_))).count();
                    if depth > MAX_DEPTH {
                        return Err(format!("the key is nested deeper than {MAX_DEPTH} levels"));
                    }
                }
                Some('[') if key.is_empty() => return Err(empty_key(&steps)),
                Some('[') => {
                    steps.push(Step::Key(key));
                    match self.indexes(&mut steps)? {
                        Some(end) => return Ok((steps, end)),
                        None => continue,
                    }
                }
                Some(',') | None if key.is_empty() && steps.is_empty() => {
                    return Err("an empty assignment between two commas".into())
                }
                Some(',') | None if key.is_empty() => return Err(empty_key(&steps)),
                // `,` or the end: a key without `=`.
                _ => {
                    steps.push(Step::Key(key));
                    return Err(format!(
                        "`{}` has no value: write {}=VALUE",
                        show(&steps),
                        show(&steps)
                    ));
                }
            }
        }
    }

    /// One or more `[N]` after a key (the first `[` read); then `=`, `.` (`None`: a key
    /// follows) or the end.
    fn indexes(&mut self, steps: &mut Vec<Step>) -> Result<Option<PathEnd>, String> {
        loop {
            let digits = self.text_until(&[']']);
            if self.next() != Some(']') {
                return Err(format!("`{}[{digits}` has no closing `]`", show(steps)));
            }
            let index = digits
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("`{}[{digits}]`: a list index is a number", show(steps)))?;
            let index = usize::try_from(index).map_err(|_| {
                format!(
                    "`{}[{digits}]`: a list index cannot be negative",
                    show(steps)
                )
            })?;
            if index > MAX_INDEX {
                return Err(format!(
                    "`{}[{index}]`: a list index cannot be above {MAX_INDEX}",
                    show(steps)
                ));
            }
            steps.push(Step::Index(index));
            if steps.len() > MAX_STEPS {
                return Err(format!(
                    "the key has more than {MAX_STEPS} keys and indexes"
                ));
            }
            match self.next() {
                Some('[') => {}
                Some('=') => return Ok(Some(PathEnd::Value)),
                Some('.') => return Ok(None),
                None => return Ok(Some(PathEnd::EndAfterIndex)),
                Some(other) => {
                    return Err(format!(
                        "`{}`: unexpected `{other}` after a list index (expected `=`, `.` or `[`)",
                        show(steps)
                    ))
                }
            }
        }
    }

    /// The value after `=`, and the `,` that ends it.
    fn value(&mut self) -> Result<Value, String> {
        if self.typing == Typing::Json {
            return self.json_value();
        }
        if self.peek() == Some('{') {
            self.at += 1;
            return self.list();
        }
        let raw = self.text_until(&[',']);
        self.next();
        Ok(self.typed(raw))
    }

    /// `{a,b,c}`, then an optional `,`.
    fn list(&mut self) -> Result<Value, String> {
        let mut items = Vec::new();
        loop {
            let raw = self.text_until(&[',', '}']);
            match self.next() {
                Some(',') => items.push(self.typed(raw)),
                Some('}') => {
                    items.push(self.typed(raw));
                    if self.peek() == Some(',') {
                        self.at += 1;
                    }
                    return Ok(Value::Array(items));
                }
                _ => return Err("a list `{...}` must end with `}`".into()),
            }
        }
    }

    fn typed(&self, raw: String) -> Value {
        match self.typing {
            Typing::String | Typing::Json => Value::String(raw),
            Typing::Typed => typed(raw),
        }
    }

    /// One JSON document, then blanks and `,` or the end. An empty value is null.
    fn json_value(&mut self) -> Result<Value, String> {
        self.skip_blanks();
        match self.peek() {
            None => return Ok(Value::Null),
            Some(',') => {
                self.at += 1;
                return Ok(Value::Null);
            }
            Some(_) => {}
        }
        let rest: String = self.chars[self.at..].iter().collect();
        let mut documents = serde_json::Deserializer::from_str(&rest).into_iter::<Value>();
        let value = match documents.next() {
            Some(Ok(value)) => value,
            Some(Err(err)) => return Err(format!("the value is not JSON: {err}")),
            None => Value::Null,
        };
        self.at += rest[..documents.byte_offset()].chars().count();
        self.skip_blanks();
        match self.next() {
            None | Some(',') => Ok(value),
            Some(other) => Err(format!(
                "unexpected `{other}` after a JSON value (separate assignments with `,`)"
            )),
        }
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }
}

/// `--set` typing: `true`, `false`, `null` (any case), and integers written without a
/// leading zero (`0` itself is one); everything else, decimals included, is a string.
pub fn typed(raw: String) -> Value {
    if raw.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if raw.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if raw.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if raw == "0" {
        return Value::from(0);
    }
    // `007` is an id, not seven.
    if !raw.starts_with('0') {
        if let Ok(n) = raw.parse::<i64>() {
            return Value::from(n);
        }
    }
    Value::String(raw)
}

fn show(steps: &[Step]) -> String {
    let mut text = String::new();
    for step in steps {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

fn empty_key(before: &[Step]) -> String {
    if before.is_empty() {
        "a key is empty: write KEY=VALUE, e.g. image.tag=1.2.3".into()
    } else {
        format!(
            "the key after `{}` is empty: write it as a.b.c=value",
            show(before)
        )
    }
}

/// Puts `value` at `path` in `dest`, making the maps and lists on the way. `None` (a
/// path that ends in an index, without `=`) only makes the list exist.
fn place(dest: &mut Map<String, Value>, path: &[Step], value: Option<Value>) -> Result<(), String> {
    let Some((Step::Key(first), rest)) = path.split_first() else {
        return Err("a key must come first".into());
    };
    let slot = dest.entry(first.clone()).or_insert(Value::Null);
    place_in(slot, rest, value, &path[..1])
}

fn place_in(
    slot: &mut Value,
    rest: &[Step],
    value: Option<Value>,
    walked: &[Step],
) -> Result<(), String> {
    let Some((step, rest)) = rest.split_first() else {
        match value {
            Some(value) => *slot = value,
            // `list[0]` without a value: the list exists, empty if new.
            None if slot.is_null() => *slot = Value::Array(Vec::new()),
            None => {}
        }
        return Ok(());
    };
    let walked_here = &walked_with(walked, step);
    match step {
        Step::Key(key) => {
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(map) = slot else {
                return Err(conflict(walked, slot, "a map"));
            };
            let inner = map.entry(key.clone()).or_insert(Value::Null);
            place_in(inner, rest, value, walked_here)
        }
        Step::Index(index) => {
            if slot.is_null() {
                *slot = Value::Array(Vec::new());
            }
            let Value::Array(list) = slot else {
                return Err(conflict(walked, slot, "a list"));
            };
            if rest.is_empty() && value.is_none() {
                return Ok(());
            }
            if list.len() <= *index {
                list.resize(index + 1, Value::Null);
            }
            place_in(&mut list[*index], rest, value, walked_here)
        }
    }
}

fn walked_with(walked: &[Step], step: &Step) -> Vec<Step> {
    let mut all = walked.to_vec();
    all.push(step.clone());
    all
}

fn conflict(walked: &[Step], found: &Value, wanted: &str) -> String {
    format!(
        "`{}` is {} already (from an earlier value), not {wanted}",
        show(walked),
        kind_of(found)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(arg: &str, typing: Typing) -> Result<Value, String> {
        let mut dest = Map::new();
        parse_into(arg, typing, &mut dest).map(|()| Value::Object(dest))
    }

    fn into(start: Value, args: &[&str], typing: Typing) -> Value {
        let Value::Object(mut dest) = start else {
            panic!("not a map")
        };
        for arg in args {
            parse_into(arg, typing, &mut dest).unwrap_or_else(|e| panic!("{arg}: {e}"));
        }
        Value::Object(dest)
    }

    /// The accepted cases of Helm's `TestParseSet`, and more of its typing rules.
    #[test]
    fn set_parses_as_helm_does() {
        let cases = [
            (
                "name1=null,f=false,t=true",
                json!({"name1": null, "f": false, "t": true}),
            ),
            ("name1=value1", json!({"name1": "value1"})),
            (
                "name1=value1,name2=value2",
                json!({"name1": "value1", "name2": "value2"}),
            ),
            (
                "name1=value1,name2=value2,",
                json!({"name1": "value1", "name2": "value2"}),
            ),
            (
                "name1=,name2=value2",
                json!({"name1": "", "name2": "value2"}),
            ),
            ("leading_zeros=00009", json!({"leading_zeros": "00009"})),
            ("zero_int=0", json!({"zero_int": 0})),
            ("long_int=1234567890", json!({"long_int": 1234567890})),
            ("boolean=true", json!({"boolean": true})),
            ("is_null=null", json!({"is_null": null})),
            (
                r"name1=one\,two,name2=three\,four",
                json!({"name1": "one,two", "name2": "three,four"}),
            ),
            (
                r"name1=one\=two,name2=three\=four",
                json!({"name1": "one=two", "name2": "three=four"}),
            ),
            (
                "name1=one two three,name2=three two one",
                json!({"name1": "one two three", "name2": "three two one"}),
            ),
            ("outer.inner=value", json!({"outer": {"inner": "value"}})),
            (
                "outer.middle.inner=value",
                json!({"outer": {"middle": {"inner": "value"}}}),
            ),
            (
                "outer.inner1=value,outer.inner2=value2",
                json!({"outer": {"inner1": "value", "inner2": "value2"}}),
            ),
            (
                "outer.inner1=value,outer.middle.inner=value",
                json!({"outer": {"inner1": "value", "middle": {"inner": "value"}}}),
            ),
            ("name1.name2=", json!({"name1": {"name2": ""}})),
            (
                "name1={value1,value2}",
                json!({"name1": ["value1", "value2"]}),
            ),
            (
                "name1={value1,value2},name2={value1,value2}",
                json!({"name1": ["value1", "value2"], "name2": ["value1", "value2"]}),
            ),
            ("name1={1021,902}", json!({"name1": [1021, 902]})),
            (
                "name1.name2={value1,value2}",
                json!({"name1": {"name2": ["value1", "value2"]}}),
            ),
            ("list[0]=foo", json!({"list": ["foo"]})),
            ("list[0].foo=bar", json!({"list": [{"foo": "bar"}]})),
            (
                "list[0].foo=bar,list[0].hello=world",
                json!({"list": [{"foo": "bar", "hello": "world"}]}),
            ),
            ("list[0]=foo,list[1]=bar", json!({"list": ["foo", "bar"]})),
            ("list[0]=foo,list[1]=bar,", json!({"list": ["foo", "bar"]})),
            (
                "list[0]=foo,list[3]=bar",
                json!({"list": ["foo", null, null, "bar"]}),
            ),
            ("noval[0]", json!({"noval": []})),
            ("noval[0]=", json!({"noval": [""]})),
            ("nested[0][0]=1", json!({"nested": [[1]]})),
            ("nested[1][1]=1", json!({"nested": [null, [null, 1]]})),
            (
                "name1.name2[0].foo=bar,name1.name2[1].foo=bar",
                json!({"name1": {"name2": [{"foo": "bar"}, {"foo": "bar"}]}}),
            ),
            (
                "name1.name2[1].foo=bar,name1.name2[0].foo=bar",
                json!({"name1": {"name2": [{"foo": "bar"}, {"foo": "bar"}]}}),
            ),
            (
                "name1.name2[1].foo=bar",
                json!({"name1": {"name2": [null, {"foo": "bar"}]}}),
            ),
            // Typing beyond Helm's table: decimals and versions stay strings.
            ("log.level=1.10", json!({"log": {"level": "1.10"}})),
            ("a=1.5", json!({"a": "1.5"})),
            ("a=-3", json!({"a": -3})),
            ("a=TRUE", json!({"a": true})),
            ("a=1e3", json!({"a": "1e3"})),
            (
                "a=99999999999999999999",
                json!({"a": "99999999999999999999"}),
            ),
            ("a=x=y", json!({"a": "x=y"})),
            (r"log\.level=warn", json!({"log.level": "warn"})),
            (r"a.b\.c=1", json!({"a": {"b.c": 1}})),
        ];
        for (arg, expected) in cases {
            assert_eq!(parse(arg, Typing::Typed), Ok(expected), "{arg}");
        }
    }

    /// The refused cases of Helm's `TestParseSet` and `TestParseSetNestedLevels`.
    #[test]
    fn set_refuses_what_helm_refuses() {
        let deep = (1..=MAX_DEPTH + 2)
            .map(|i| format!("name{i}"))
            .collect::<Vec<_>>()
            .join(".");
        let cases = [
            "name1=value1,,,,name2=value2,",
            "name1,name2=",
            "name1,name2=value2",
            r"name1,name2=value2\",
            "name1,name2",
            "name1.name2",
            "name1.name2,name1.name3",
            "name1.=name2",
            "name1.,name2",
            "name1={1021,902",
            "list[0].foo=bar,list[-30].hello=world",
            "list[0]=foo,list[-20]=bar",
            "illegal[0]name.foo=bar",
            "]={}].",
            "list[65537]=x",
            "a=1,a.b=2",
            &format!("{deep}=value"),
            &format!("a{}=1", "[0]".repeat(MAX_STEPS)),
        ];
        for arg in cases {
            assert!(
                parse(arg, Typing::Typed).is_err(),
                "{arg}: {:?}",
                parse(arg, Typing::Typed)
            );
        }
    }

    #[test]
    fn errors_say_which_key() {
        let cases = [
            (
                "log.level",
                "`log.level` has no value: write log.level=VALUE",
            ),
            ("log..level=warn", "the key after `log` is empty"),
            ("list[x]=1", "`list[x]`: a list index is a number"),
            ("list[-1]=1", "`list[-1]`: a list index cannot be negative"),
            (
                "a=1,a.b=2",
                "`a` is a number already (from an earlier value), not a map",
            ),
        ];
        for (arg, expected) in cases {
            let err = parse(arg, Typing::Typed).unwrap_err();
            assert!(err.starts_with(expected), "{arg}: {err}");
        }
    }

    /// Helm's `TestParseInto`: over values already there (the `-f` files).
    #[test]
    fn set_goes_into_existing_values() {
        let got = into(
            json!({"outer": {"inner1": "overwrite", "inner2": "value2"}}),
            &["outer.inner1=value1,outer.inner3=value3,outer.inner4=4"],
            Typing::Typed,
        );
        assert_eq!(
            got,
            json!({"outer": {"inner1": "value1", "inner2": "value2", "inner3": "value3", "inner4": 4}})
        );
        let got = into(
            json!({}),
            &[
                "listOuter[0][0].type=listValue",
                "listOuter[0][0].status=alive",
            ],
            Typing::Typed,
        );
        assert_eq!(
            got,
            json!({"listOuter": [[{"type": "listValue", "status": "alive"}]]})
        );
        let got = into(
            json!({}),
            &[
                "listOuter[0][0].type=listValue",
                "listOuter[1][0].status=alive",
            ],
            Typing::Typed,
        );
        assert_eq!(
            got,
            json!({"listOuter": [[{"type": "listValue"}], [{"status": "alive"}]]})
        );
        let got = into(
            json!({"listOuter": [[[{"exited": "old"}]]]}),
            &[
                "listOuter[0][1][0].type=listValue",
                "listOuter[0][0][1].status=alive",
            ],
            Typing::Typed,
        );
        assert_eq!(
            got,
            json!({"listOuter": [[[{"exited": "old"}, {"status": "alive"}], [{"type": "listValue"}]]]})
        );
    }

    /// Helm's `TestParseIntoString`.
    #[test]
    fn set_string_keeps_every_value_a_string() {
        let got = into(
            json!({"outer": {"inner1": "overwrite", "inner2": "value2"}}),
            &["outer.inner1=1,outer.inner3=3"],
            Typing::String,
        );
        assert_eq!(
            got,
            json!({"outer": {"inner1": "1", "inner2": "value2", "inner3": "3"}})
        );
        let cases = [
            (
                "long_int_string=1234567890",
                json!({"long_int_string": "1234567890"}),
            ),
            ("boolean=true", json!({"boolean": "true"})),
            ("is_null=null", json!({"is_null": "null"})),
            ("zero=0", json!({"zero": "0"})),
            ("list={1,2}", json!({"list": ["1", "2"]})),
        ];
        for (arg, expected) in cases {
            assert_eq!(parse(arg, Typing::String), Ok(expected), "{arg}");
        }
    }

    /// Helm's `TestParseJSON`.
    #[test]
    fn set_json_reads_each_value_as_json() {
        let got = into(
            json!({"outer": {"inner1": "overwrite", "inner2": "value2"}}),
            &[r#"outer.inner1="1",outer.inner3=3,outer.inner4=true,outer.inner5="true""#],
            Typing::Json,
        );
        assert_eq!(
            got,
            json!({"outer": {"inner1": "1", "inner2": "value2", "inner3": 3, "inner4": true, "inner5": "true"}})
        );
        let got = into(
            json!({"outer": {"inner1": {"x": "overwrite"}, "inner2": "value2", "inner3": ["overwrite"]}}),
            &[
                r#"outer.inner1={"a":"1","b":2,"c":[1,2,3]},outer.inner3=["new value 1","new value 2"],outer.inner4={"aa":"1","bb":2,"cc":[1,2,3]},outer.inner5=[{"A":"1","B":2,"C":[1,2,3]}]"#,
            ],
            Typing::Json,
        );
        assert_eq!(
            got,
            json!({"outer": {
                "inner1": {"a": "1", "b": 2, "c": [1, 2, 3]},
                "inner2": "value2",
                "inner3": ["new value 1", "new value 2"],
                "inner4": {"aa": "1", "bb": 2, "cc": [1, 2, 3]},
                "inner5": [{"A": "1", "B": 2, "C": [1, 2, 3]}],
            }})
        );
        let got = into(
            json!({"outer": {"inner1": {"x": "overwrite"}, "inner2": "value2"}}),
            &[
                r#"outer.inner1=,outer.inner3={"aa":"1","bb":2,"cc":[1,2,3]},outer.inner3.cc[1]=null"#,
            ],
            Typing::Json,
        );
        assert_eq!(
            got,
            json!({"outer": {"inner1": null, "inner2": "value2", "inner3": {"aa": "1", "bb": 2, "cc": [1, null, 3]}}})
        );
        let broken = r#"outer.inner1={"a":"1","b":2,"c":[1,2,3]},outer.inner3=["new value 1","new value 2"],outer.inner4={"aa":"1","bb":2,"cc":[1,2,3]},outer.inner5={"A":"1","B":2,"C":[1,2,3]}]"#;
        assert!(parse(broken, Typing::Json).is_err());
        let err = parse("a={nope", Typing::Json).unwrap_err();
        assert!(err.starts_with("the value is not JSON: "), "{err}");
    }
}
