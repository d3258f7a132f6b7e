//! The problems found in one file, each with the line of its field.

use crate::config::yaml::{line_of, FieldPath};
use crate::config::ConfigError;
use std::path::{Path, PathBuf};

/// The problems found in one file, with the line of each where it can be found.
pub(crate) struct Problems {
    file: PathBuf,
    text: Option<String>,
    list: Vec<ConfigError>,
}

impl Problems {
    /// `text` is the file's content if at hand; otherwise it is read again for lines.
    pub fn new(file: &Path, text: Option<&str>) -> Self {
        Problems {
            file: file.to_path_buf(),
            text: text.map(str::to_string),
            list: Vec::new(),
        }
    }

    pub fn add(&mut self, path: &FieldPath, message: impl Into<String>) {
        if self.text.is_none() {
            self.text = std::fs::read_to_string(&self.file).ok();
        }
        let line = self.text.as_deref().and_then(|text| line_of(text, path));
        self.list.push(ConfigError::Invalid {
            file: self.file.clone(),
            line,
            field: path.to_string(),
            message: message.into(),
        });
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        ConfigError::from_list(self.list)
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! One file's checks run on YAML text, as the loader runs them, for the tests of each
    //! concern.

    use crate::config::{yaml, ConfigError, Environment, ReleaseDescriptor};
    use std::path::Path;

    /// Each problem as the user reads it, one a line.
    pub fn messages(result: Result<(), ConfigError>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(err) => err.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    pub fn environment(text: &str) -> Environment {
        yaml::parse(Path::new("environments/dev.yaml"), text).expect("a parseable environment")
    }

    /// The problems of `environments/dev.yaml` holding `text`.
    pub fn environment_problems(text: &str) -> Vec<String> {
        let env = environment(text);
        messages(super::super::environment::check_environment(
            Path::new("environments/dev.yaml"),
            text,
            &env,
        ))
    }

    pub fn release(text: &str) -> ReleaseDescriptor {
        yaml::parse(Path::new("releases/app1/release.yaml"), text).expect("a parseable release")
    }

    /// The problems of `releases/app1/release.yaml` holding `text`.
    pub fn release_problems(text: &str) -> Vec<String> {
        let release = release(text);
        messages(super::super::release::check_release(
            Path::new("releases/app1/release.yaml"),
            text,
            &release,
            Some("app1"),
        ))
    }

    /// A valid environment file: two clusters, Vault with KV v2 under `kv`.
    pub const DEV: &str = "\
name: dev
vault:
  address: https://vault.example:8200
  kv: { mount: kv, version: 2 }
clusters:
  - context: dev-west
    global: { cloud: true, env: dev, region: west, clusterName: dev-west }
  - context: dev-east
    wave: 1
    global: { cloud: true, env: dev, region: east, clusterName: dev-east }
";

    /// A valid release descriptor with one secret.
    pub const APP1: &str = "\
apiVersion: flotilla/v1
kind: Release
metadata: { name: app1, namespace: ns1 }
spec:
  chart: ./chart
  version: 1.4.2
  secrets:
    - secret_id: db
      contexts:
        - { name: default, vaultPath: \"kv/{{global.env}}/app1/db\", vaultKey: password }
";
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn valid_files_have_no_problem() {
        assert_eq!(environment_problems(DEV), Vec::<String>::new());
        assert_eq!(release_problems(APP1), Vec::<String>::new());
    }

    #[test]
    fn a_problem_names_the_file_the_line_of_its_field_and_the_field() {
        let text = "a: 1\nb:\n  c: [x, y]\n";
        let mut problems = Problems::new(Path::new("environments/dev.yaml"), Some(text));
        problems.add(&FieldPath::root().key("b").key("c").index(1), "is bad");
        problems.add(&FieldPath::root().key("missing"), "is absent");
        assert_eq!(
            messages(problems.finish()),
            [
                "environments/dev.yaml:3: b.c[1]: is bad",
                "environments/dev.yaml: missing: is absent",
            ]
        );
    }

    #[test]
    fn without_the_text_at_hand_the_file_is_read_again_for_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev.yaml");
        std::fs::write(&file, "name: dev\nbranch: x y\n").unwrap();
        let mut problems = Problems::new(&file, None);
        problems.add(&FieldPath::root().key("branch"), "is bad");
        let err = problems.finish().expect_err("one problem");
        assert_eq!(
            err.to_string(),
            format!("{}:2: branch: is bad", file.display())
        );
    }
}
