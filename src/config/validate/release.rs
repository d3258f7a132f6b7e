//! One release descriptor on its own: its kind, name, namespace, version, chart and
//! values, then its scaling and secrets.

use super::names::dns_label_problem;
use super::problems::Problems;
use super::scaling::check_scaling;
use super::secrets::check_secrets;
use crate::config::yaml::{kind_of, FieldPath};
use crate::config::{ConfigError, ReleaseDescriptor, API_VERSION, KIND};
use std::path::Path;

/// Helm's limit, for the same reason: charts append suffixes (`-web`) to the release
/// name and the result must stay a valid object name.
pub const MAX_RELEASE_NAME: usize = 53;

/// The checks of one release descriptor on its own. `folder` is the folder name under
/// `releases/` when the descriptor was found there (its name must match).
pub(crate) fn check_release(
    file: &Path,
    text: &str,
    release: &ReleaseDescriptor,
    folder: Option<&str>,
) -> Result<(), ConfigError> {
    let mut problems = Problems::new(file, Some(text));
    let root = FieldPath::root();

    if release.api_version != API_VERSION {
        problems.add(
            &root.key("apiVersion"),
            format!(
                "{:?} is not supported; use {API_VERSION:?}",
                release.api_version
            ),
        );
    }
    if release.kind != KIND {
        problems.add(
            &root.key("kind"),
            format!("{:?} is not a flotilla kind; use {KIND:?}", release.kind),
        );
    }

    let meta = root.key("metadata");
    if let Some(why) = dns_label_problem(&release.metadata.name, MAX_RELEASE_NAME) {
        problems.add(&meta.key("name"), why);
    } else if let Some(folder) = folder {
        if folder != release.metadata.name {
            problems.add(
                &meta.key("name"),
                format!(
                    "{:?} differs from its folder releases/{folder}; a release is named by its folder, so rename one of them",
                    release.metadata.name
                ),
            );
        }
    }
    if let Some(why) = dns_label_problem(&release.metadata.namespace, 63) {
        problems.add(&meta.key("namespace"), why);
    }

    let spec = root.key("spec");
    check_version(&mut problems, &spec.key("version"), &release.spec.version);
    if release.spec.chart.trim().is_empty() {
        problems.add(&spec.key("chart"), "must not be empty");
    }
    super::chart_source::check_chart_source(&mut problems, file, &spec, &release.spec);
    if !release.spec.values.is_mapping() {
        problems.add(
            &spec.key("values"),
            format!(
                "must be a mapping of values, found {}",
                kind_of(&release.spec.values)
            ),
        );
    }
    for (name, over) in &release.spec.environments {
        if !over.values.is_mapping() {
            problems.add(
                &spec.key("environments").key(name).key("values"),
                format!(
                    "must be a mapping of values, found {}",
                    kind_of(&over.values)
                ),
            );
        }
    }

    check_scaling(&mut problems, &spec.key("scaling"), &release.spec.scaling);
    check_secrets(&mut problems, &spec.key("secrets"), &release.spec.secrets);
    problems.finish()
}

/// The application version is the image tag: the tag grammar of the OCI distribution spec.
fn check_version(problems: &mut Problems, at: &FieldPath, version: &str) {
    if version.is_empty() {
        problems.add(at, "is empty; give the application version (the image tag)");
        return;
    }
    if let Some(problem) = image_tag_problem(version) {
        problems.add(at, problem);
    }
}

/// Why `version` cannot be an image tag (`spec.version`, `--version`), if it cannot.
pub fn image_tag_problem(version: &str) -> Option<String> {
    let valid = !version.is_empty()
        && version.len() <= 128
        && version.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    (!valid).then(|| {
        format!("{version:?} cannot be an image tag: use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')")
    })
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;

    fn with(from: &str, to: &str) -> Vec<String> {
        let text = APP1.replace(from, to);
        assert_ne!(text, APP1, "{from:?} is not in the descriptor");
        release_problems(&text)
    }

    #[test]
    fn the_api_version_and_kind_are_flotillas() {
        assert_eq!(
            with("flotilla/v1", "flotilla/v2"),
            ["releases/app1/release.yaml:1: apiVersion: \"flotilla/v2\" is not supported; use \"flotilla/v1\""]
        );
        assert_eq!(
            with("kind: Release", "kind: Deployment"),
            ["releases/app1/release.yaml:2: kind: \"Deployment\" is not a flotilla kind; use \"Release\""]
        );
    }

    #[test]
    fn a_release_is_named_by_its_folder_within_helms_limit() {
        assert_eq!(
            with("name: app1,", "name: app2,"),
            ["releases/app1/release.yaml:3: metadata.name: \"app2\" differs from its folder releases/app1; a release is named by its folder, so rename one of them"]
        );
        let long = "a".repeat(54);
        assert_eq!(
            with("name: app1,", &format!("name: {long},")),
            [format!("releases/app1/release.yaml:3: metadata.name: {long:?} is 54 characters long; at most 53 are allowed")]
        );
        assert_eq!(
            with("namespace: ns1", "namespace: NS"),
            ["releases/app1/release.yaml:3: metadata.namespace: \"NS\" is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"]
        );
    }

    #[test]
    fn the_version_is_an_image_tag() {
        assert_eq!(
            with("version: 1.4.2", "version: \"\""),
            ["releases/app1/release.yaml:6: spec.version: is empty; give the application version (the image tag)"]
        );
        assert_eq!(
            with("version: 1.4.2", "version: -1.4+x"),
            ["releases/app1/release.yaml:6: spec.version: \"-1.4+x\" cannot be an image tag: use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')"]
        );
    }

    #[test]
    fn values_are_mappings_and_a_chart_is_named() {
        assert_eq!(
            with(
                "  chart: ./chart\n",
                "  chart: \" \"\n  values: [a]\n  environments: { prod: { values: text } }\n"
            ),
            [
                "releases/app1/release.yaml:5: spec.chart: must not be empty",
                "releases/app1/release.yaml:6: spec.values: must be a mapping of values, found a list",
                "releases/app1/release.yaml:7: spec.environments.prod.values: must be a mapping of values, found a string",
            ]
        );
        assert_eq!(
            with("  chart: ./chart\n", "  chart: ./chart\n  values:\n"),
            ["releases/app1/release.yaml:6: spec.values: must be a mapping of values, found null"]
        );
    }
}
