use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// A problem in an environment file or a release descriptor, or in finding them. Always
/// bad input: exit 2.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A YAML syntax error, a value of the wrong type or an unknown field, as found by
    /// the parser; `field` is the path serde was at (empty at the top of the document).
    #[error("{}: {}", Located(file, *line), WithField(field, message))]
    Parse {
        file: PathBuf,
        line: Option<usize>,
        field: String,
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{}: {}", Located(file, *line), WithField(field, message))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        field: String,
        message: String,
    },
    /// `--root` (or the current folder) is not a deployment repo.
    #[error("{} is not a deployment repo: {what} (run flotilla from the folder holding releases/ and environments/, or point --root at it)", folder_name(root))]
    NotARepo { root: PathBuf, what: String },
    #[error("no environment {name:?}: there is no {}/{name}.yaml (environments: {}){}", dir.display(), known_list(known), did_you_mean(near))]
    UnknownEnvironment {
        name: String,
        dir: PathBuf,
        known: Vec<String>,
        near: Option<String>,
    },
    #[error("no release {name:?}: there is no {}/{name}/release.yaml (releases: {}){}", dir.display(), known_list(known), did_you_mean(near))]
    UnknownRelease {
        name: String,
        dir: PathBuf,
        known: Vec<String>,
        near: Option<String>,
    },
    /// `--branch` selects exactly one environment through the environments' `branch`.
    #[error("{}", branch_message(branch, matches, known))]
    Branch {
        branch: String,
        /// The environments whose `branch` is this one (none or several).
        matches: Vec<String>,
        /// Every environment with a branch, as `env (branch)`.
        known: Vec<String>,
    },
    /// Several problems, each on its own line.
    #[error("{}", Lines(.0))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    /// One error for a list of problems: none is `Ok`, one is itself, more are `Many`
    /// (flat: a `Many` in the list gives its own problems).
    pub fn from_list(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        let mut errors: Vec<ConfigError> = errors
            .into_iter()
            .flat_map(|err| match err {
                ConfigError::Many(list) => list,
                other => vec![other],
            })
            .collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ConfigError::Many(errors)),
        }
    }

    /// Every single problem, with `Many` flattened.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many(list) => list.iter().flat_map(|e| e.problems()).collect(),
            other => vec![other],
        }
    }
}

struct Located<'a>(&'a PathBuf, Option<usize>);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())?;
        if let Some(line) = self.1 {
            write!(f, ":{line}")?;
        }
        Ok(())
    }
}

struct WithField<'a>(&'a str, &'a str);

impl fmt::Display for WithField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            write!(f, "{}", self.1)
        } else {
            write!(f, "{}: {}", self.0, self.1)
        }
    }
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problems:", self.0.len())?;
        for err in self.0 {
            write!(f, "\n  {err}")?;
        }
        Ok(())
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

fn folder_name(root: &std::path::Path) -> String {
    if root == std::path::Path::new(".") {
        "the current folder".to_string()
    } else {
        root.display().to_string()
    }
}

fn did_you_mean(near: &Option<String>) -> String {
    near.as_ref()
        .map(|n| format!("; did you mean {n:?}?"))
        .unwrap_or_default()
}

fn branch_message(branch: &str, matches: &[String], known: &[String]) -> String {
    if matches.is_empty() {
        format!(
            "no environment deploys from branch {branch:?} (branches: {})",
            known_list(known)
        )
    } else {
        format!(
            "branch {branch:?} is the branch of several environments ({}); give each environment its own branch",
            matches.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(field: &str) -> ConfigError {
        ConfigError::Invalid {
            file: PathBuf::from("environments/dev.yaml"),
            line: Some(3),
            field: field.to_string(),
            message: "bad".to_string(),
        }
    }

    #[test]
    fn lists_flatten_and_print_one_problem_a_line() {
        assert!(ConfigError::from_list(Vec::new()).is_ok());
        let one = ConfigError::from_list(vec![invalid("a")]).expect_err("one");
        assert_eq!(one.to_string(), "environments/dev.yaml:3: a: bad");
        let nested = ConfigError::Many(vec![invalid("a"), invalid("b")]);
        let all = ConfigError::from_list(vec![nested, invalid("c")]).expect_err("three");
        assert_eq!(all.problems().len(), 3);
        assert_eq!(
            all.to_string(),
            "3 problems:\n  environments/dev.yaml:3: a: bad\n  environments/dev.yaml:3: b: bad\n  environments/dev.yaml:3: c: bad"
        );
    }

    #[test]
    fn a_problem_of_the_whole_file_has_no_field() {
        let err = ConfigError::Parse {
            file: PathBuf::from("releases/app1/release.yaml"),
            line: None,
            field: String::new(),
            message: "the file is empty".to_string(),
        };
        assert_eq!(
            err.to_string(),
            "releases/app1/release.yaml: the file is empty"
        );
    }
}
