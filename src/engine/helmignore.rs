//! `.helmignore`: the files of a chart folder that are not part of the chart, read as
//! Helm's loader reads them, so that what flotilla records (and later renders again) is
//! what `helm package` or `helm install` of the folder would take. A
//! `secrets.yaml.dec` a team lists there must never reach a record.
//!
//! The rules, as Helm evaluates them (its `pkg/ignore`), not as git does:
//! - one pattern a line; blank lines and lines starting with `#` are skipped, spaces
//!   around a pattern are dropped;
//! - the glob is Go's `path.Match`: `*` and `?` never cross a `/`, `[a-z]`, `[^a-z]`,
//!   `\` escapes the next character; `**` is refused;
//! - a leading `/` anchors the pattern at the chart folder, a pattern with a `/`
//!   elsewhere is matched against the whole path, one without a `/` against the last
//!   name only; a trailing `/` matches folders only (a folder matched is skipped whole);
//! - patterns are tried in order and the first that decides wins: a pattern that
//!   matches ignores the path; a `!pattern` that does not match ignores it too, and one
//!   that matches lets the next patterns decide. So a `!pattern` never brings back what
//!   another pattern ignores: `!Chart.yaml` alone keeps nothing but `Chart.yaml`, and
//!   `*.dec` then `!keep.dec` ignores `keep.dec` (git would keep it).

use super::error::RenderError;
use std::path::Path;

/// The file name Helm reads the rules from, at the top of a chart folder.
pub const FILE_NAME: &str = ".helmignore";

/// The rules of one chart folder.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The glob, without `!`, leading `/` or trailing `/`.
    glob: Vec<char>,
    negate: bool,
    folders_only: bool,
    scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    /// No `/` in the pattern: the last name of the path.
    Name,
    /// A `/` in it: the whole path inside the chart folder.
    Path,
}

impl Rules {
    /// The rules of `.helmignore` in `chart_dir`, or none when it has no such file.
    pub fn of_chart(chart_dir: &Path) -> Result<Rules, RenderError> {
        let file = chart_dir.join(FILE_NAME);
        match std::fs::read_to_string(&file) {
            Ok(text) => Rules::parse(&file, &text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Rules::default()),
            Err(source) => Err(RenderError::Read { file, source }),
        }
    }

    /// Parses the text of `file`; a pattern Helm refuses is an error naming its line.
    pub fn parse(file: &Path, text: &str) -> Result<Rules, RenderError> {
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let rule = line.trim();
            if rule.is_empty() || rule.starts_with('#') {
                continue;
            }
            let problem = |message: &str| RenderError::ChartFile {
                file: file.to_path_buf(),
                line: Some(index + 1),
                field: format!("{rule:?}"),
                message: message.to_owned(),
            };
            if rule.contains("**") {
                return Err(problem(
                    "`**` is not supported in .helmignore (Helm refuses it too); a pattern without `/` matches a name in every folder",
                ));
            }
            let (negate, rest) = match rule.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, rule),
            };
            let (folders_only, rest) = match rest.strip_suffix('/') {
                Some(rest) => (true, rest),
                None => (false, rest),
            };
            let (scope, rest) = match rest.strip_prefix('/') {
                Some(rest) => (Scope::Path, rest),
                None if rest.contains('/') => (Scope::Path, rest),
                None => (Scope::Name, rest),
            };
            let glob: Vec<char> = rest.chars().collect();
            if let Err(message) = check_glob(&glob) {
                return Err(problem(&message));
            }
            patterns.push(Pattern {
                glob,
                negate,
                folders_only,
                scope,
            });
        }
        Ok(Rules { patterns })
    }

    /// Whether `path` (inside the chart folder, `/`-separated, no leading `/`) is left
    /// out of the chart; `is_folder` says whether it names a folder.
    pub fn ignores(&self, path: &str, is_folder: bool) -> bool {
        if path.is_empty() || path == "." {
            return false;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        for pattern in &self.patterns {
            let subject = match pattern.scope {
                Scope::Name => name,
                Scope::Path => path,
            };
            if pattern.negate {
                if pattern.folders_only && !is_folder {
                    return true;
                }
                if !glob_matches(&pattern.glob, &subject.chars().collect::<Vec<_>>()) {
                    return true;
                }
                continue;
            }
            if pattern.folders_only && !is_folder {
                continue;
            }
            if glob_matches(&pattern.glob, &subject.chars().collect::<Vec<_>>()) {
                return true;
            }
        }
        false
    }
}

/// A glob Go's `path.Match` would refuse: an unclosed or empty `[...]`, a range with
/// no end, a `\` at the end.
fn check_glob(glob: &[char]) -> Result<(), String> {
    let mut i = 0;
    while i < glob.len() {
        match glob[i] {
            '\\' => {
                if i + 1 >= glob.len() {
                    return Err("ends in `\\`, which escapes nothing".into());
                }
                i += 2;
            }
            '[' => {
                i = class_end(glob, i + 1).ok_or_else(|| "a `[` without its `]`".to_string())?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index after the `]` closing a class whose content starts at `start`; `None`
/// for a malformed class.
fn class_end(glob: &[char], start: usize) -> Option<usize> {
    let mut i = start;
    if glob.get(i) == Some(&'^') {
        i += 1;
    }
    let mut ranges = 0;
    loop {
        match glob.get(i)? {
            ']' if ranges > 0 => return Some(i + 1),
            _ => {
                let (_, next) = class_char(glob, i)?;
                i = next;
                if glob.get(i) == Some(&'-') {
                    let (_, next) = class_char(glob, i + 1)?;
                    i = next;
                }
                ranges += 1;
            }
        }
    }
}

/// One character of a class at `i` (escaped or not) and the index after it.
fn class_char(glob: &[char], i: usize) -> Option<(char, usize)> {
    match glob.get(i)? {
        '\\' => glob.get(i + 1).map(|c| (*c, i + 2)),
        '-' | ']' => None,
        c => Some((*c, i + 1)),
    }
}

/// Whether the class at `glob[start..]` (after its `[`) matches `c`; the index after
/// its `]`.
fn class_matches(glob: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start;
    let negated = glob.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut ranges = 0;
    loop {
        if glob.get(i)? == &']' && ranges > 0 {
            return Some((found != negated, i + 1));
        }
        let (low, next) = class_char(glob, i)?;
        i = next;
        let mut high = low;
        if glob.get(i) == Some(&'-') {
            let (end, next) = class_char(glob, i + 1)?;
            high = end;
            i = next;
        }
        if low <= c && c <= high {
            found = true;
        }
        ranges += 1;
    }
}

/// Go's `path.Match` of a checked glob against a whole text: `*` and `?` never match
/// `/`, nor does a class.
fn glob_matches(glob: &[char], text: &[char]) -> bool {
    match glob.first() {
        None => text.is_empty(),
        Some('*') => {
            let rest = &glob[1..];
            // `*` takes as many characters as it can up to the next `/`, then gives
            // them back one by one.
            let limit = text.iter().position(|c| *c == '/').unwrap_or(text.len());
            (0..=limit).rev().any(|n| glob_matches(rest, &text[n..]))
        }
        Some(_) if text.is_empty() => false,
        Some('?') => text[0] != '/' && glob_matches(&glob[1..], &text[1..]),
        Some('[') => {
            if text[0] == '/' {
                return false;
            }
            match class_matches(glob, 1, text[0]) {
                Some((true, next)) => glob_matches(&glob[next..], &text[1..]),
                _ => false,
            }
        }
        Some('\\') => glob.get(1) == Some(&text[0]) && glob_matches(&glob[2..], &text[1..]),
        Some(c) => *c == text[0] && glob_matches(&glob[1..], &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        Rules::parse(Path::new("chart/.helmignore"), text).unwrap()
    }

    #[test]
    fn the_file_helm_create_writes_leaves_out_backups_and_vcs_folders() {
        let created = "# Patterns to ignore when building packages.\n.DS_Store\n# Common VCS dirs\n.git/\n.gitignore\n*.swp\n*.bak\n*.tmp\n*.orig\n*~\n# Various IDEs\n.project\n.idea/\n*.tmproj\n.vscode/\n";
        let rules = rules(created);
        assert!(rules.ignores("values.yaml.bak", false));
        assert!(rules.ignores("templates/web.yaml~", false));
        assert!(rules.ignores(".git", true));
        assert!(
            !rules.ignores(".git", false),
            "`.git/` matches folders only"
        );
        assert!(!rules.ignores("templates/web.yaml", false));
        assert!(!rules.ignores("Chart.yaml", false));
    }

    #[test]
    fn a_name_pattern_matches_in_every_folder_and_a_path_pattern_from_the_top() {
        let rules = rules("secrets.yaml.dec\n*.dec\n/top.txt\nfiles/*.key\nsecret/\n");
        assert!(rules.ignores("secrets.yaml.dec", false));
        assert!(rules.ignores("charts/sub/x.dec", false));
        assert!(rules.ignores("top.txt", false));
        assert!(!rules.ignores("files/top.txt", false));
        assert!(rules.ignores("files/tls.key", false));
        assert!(
            !rules.ignores("files/deeper/tls.key", false),
            "`*` stops at `/`"
        );
        assert!(rules.ignores("files/secret", true));
        assert!(!rules.ignores("files/secret", false));
    }

    #[test]
    fn globs_are_gos_path_match() {
        let cases = [
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("[\\]]", "]", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*.y*ml", "values.yaml", true),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
        ];
        for (glob, text, expected) in cases {
            let glob: Vec<char> = glob.chars().collect();
            check_glob(&glob).unwrap();
            let text: Vec<char> = text.chars().collect();
            assert_eq!(glob_matches(&glob, &text), expected, "{glob:?} {text:?}");
        }
    }

    #[test]
    fn the_first_pattern_that_decides_wins_as_in_helm() {
        // Helm's reading, not git's: a negation that does not match ignores the path.
        let rules = rules("!Chart.yaml\n");
        assert!(!rules.ignores("Chart.yaml", false));
        assert!(rules.ignores("values.yaml", false));
        let rules = self::rules("!Chart.yaml\n*\n");
        assert!(rules.ignores("Chart.yaml", false));
        let rules = self::rules("*.dec\n!keep.dec\n");
        assert!(rules.ignores("keep.dec", false));
        assert!(rules.ignores("values.yaml", false));
        let rules = self::rules("!templates/\n");
        assert!(
            rules.ignores("Chart.yaml", false),
            "a folder-only negation ignores files"
        );
        assert!(!rules.ignores("templates", true));
    }

    #[test]
    fn patterns_helm_refuses_name_the_file_and_line() {
        let err = Rules::parse(Path::new("chart/.helmignore"), "# ok\n**/*.dec\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("chart/.helmignore:2: \"**/*.dec\": `**` is not supported"),
            "{err}"
        );
        let err = Rules::parse(Path::new("chart/.helmignore"), "[abc\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("chart/.helmignore:1: \"[abc\": a `[`"),
            "{err}"
        );
    }
}
