//! From where a deploy or rollback is made, for its records: the deployment repo's git
//! commit, branch and whether its tree was dirty, the CI job (GitHub Actions, GitLab CI,
//! Jenkins) and the flotilla version. `user` and `host` are recorded beside it
//! ([`crate::cluster::lock_user`]). Nothing here can fail a run: what cannot be read is
//! left out.

use crate::release::Audit;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// The audit fields of this process: its environment variables and the repo at `root`.
pub fn collect(root: &Path) -> Audit {
    collect_from(&std::env::vars().collect(), root)
}

/// The audit fields from these environment variables and the git repo holding `root`
/// (none: only what CI's variables say).
pub fn collect_from(vars: &BTreeMap<String, String>, root: &Path) -> Audit {
    let var = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    let first = |names: &[&str]| names.iter().find_map(|name| var(name));
    let git = GitState::read(root);
    Audit {
        flotilla_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: git
            .commit
            .or_else(|| first(&["GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"])),
        // A CI checkout is often a detached HEAD: then CI's variables name the branch.
        git_branch: git.branch.or_else(|| ci_branch(&first)),
        git_dirty: git.dirty,
        ci_job_url: ci_job_url(&var),
        ci_actor: first(&["GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID"]),
        freeze_override: None,
    }
}

/// GitHub Actions: the pull request's head, else the ref's name; GitLab CI: the ref;
/// Jenkins: the multibranch pipeline's branch, else the git plugin's (`origin/main`).
fn ci_branch(first: &impl Fn(&[&str]) -> Option<String>) -> Option<String> {
    first(&[
        "GITHUB_HEAD_REF",
        "GITHUB_REF_NAME",
        "CI_COMMIT_REF_NAME",
        "BRANCH_NAME",
    ])
    .or_else(|| first(&["GIT_BRANCH"]).map(|b| b.strip_prefix("origin/").unwrap_or(&b).to_string()))
}

/// The page of the CI job: GitHub Actions' run (and attempt), GitLab's `CI_JOB_URL`,
/// Jenkins' `BUILD_URL`.
fn ci_job_url(var: &impl Fn(&str) -> Option<String>) -> Option<String> {
    if let (Some(server), Some(repo), Some(run)) = (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        let mut url = format!("{}/{repo}/actions/runs/{run}", server.trim_end_matches('/'));
        if let Some(attempt) = var("GITHUB_RUN_ATTEMPT") {
            url.push_str(&format!("/attempts/{attempt}"));
        }
        return Some(url);
    }
    var("CI_JOB_URL").or_else(|| var("BUILD_URL"))
}

/// What git says of the repo holding the deployment repo's root.
#[derive(Debug, Default)]
struct GitState {
    commit: Option<String>,
    branch: Option<String>,
    dirty: Option<bool>,
}

impl GitState {
    fn read(root: &Path) -> GitState {
        let Some(commit) = git(root, &["rev-parse", "--verify", "-q", "HEAD"]) else {
            return GitState::default();
        };
        GitState {
            commit: Some(commit),
            branch: git(root, &["symbolic-ref", "--short", "-q", "HEAD"]),
            // Only the deployment repo's folder: what the run read. Untracked files
            // count (a chart not committed yet runs all the same).
            dirty: git(root, &["status", "--porcelain", "--", "."])
                .map(|changes| !changes.is_empty())
                .or(Some(false)),
        }
    }
}

/// A git command's trimmed stdout in `dir`, or `None` if git is missing or fails.
/// `None` also for empty output, except where the caller says otherwise.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        // No lock taken by status, no pager, no prompt: a read that cannot disturb a
        // concurrent git in the same checkout.
        .arg("--no-optional-locks")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_git() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn github_actions() {
        let dir = no_git();
        let audit = collect_from(
            &vars(&[
                ("GITHUB_SERVER_URL", "https://github.com"),
                ("GITHUB_REPOSITORY", "acme/deploy"),
                ("GITHUB_RUN_ID", "42"),
                ("GITHUB_RUN_ATTEMPT", "2"),
                ("GITHUB_SHA", "0123abcd"),
                ("GITHUB_REF_NAME", "prod"),
                ("GITHUB_ACTOR", "alice"),
            ]),
            dir.path(),
        );
        assert_eq!(
            audit,
            Audit {
                flotilla_version: env!("CARGO_PKG_VERSION").into(),
                git_commit: Some("0123abcd".into()),
                git_branch: Some("prod".into()),
                git_dirty: None,
                ci_job_url: Some(
                    "https://github.com/acme/deploy/actions/runs/42/attempts/2".into()
                ),
                ci_actor: Some("alice".into()),
                freeze_override: None,
            }
        );
    }

    #[test]
    fn gitlab_ci() {
        let dir = no_git();
        let audit = collect_from(
            &vars(&[
                ("CI_JOB_URL", "https://gitlab.example/acme/deploy/-/jobs/7"),
                ("CI_COMMIT_SHA", "feedbeef"),
                ("CI_COMMIT_REF_NAME", "staging"),
                ("GITLAB_USER_LOGIN", "bob"),
            ]),
            dir.path(),
        );
        assert_eq!(
            audit.ci_job_url.as_deref(),
            Some("https://gitlab.example/acme/deploy/-/jobs/7")
        );
        assert_eq!(audit.git_commit.as_deref(), Some("feedbeef"));
        assert_eq!(audit.git_branch.as_deref(), Some("staging"));
        assert_eq!(audit.ci_actor.as_deref(), Some("bob"));
    }

    #[test]
    fn jenkins() {
        let dir = no_git();
        let audit = collect_from(
            &vars(&[
                ("BUILD_URL", "https://jenkins.example/job/deploy/12/"),
                ("GIT_COMMIT", "c0ffee"),
                ("GIT_BRANCH", "origin/dev"),
            ]),
            dir.path(),
        );
        assert_eq!(
            audit.ci_job_url.as_deref(),
            Some("https://jenkins.example/job/deploy/12/")
        );
        assert_eq!(audit.git_branch.as_deref(), Some("dev"));
        assert_eq!(audit.git_commit.as_deref(), Some("c0ffee"));
        assert_eq!(audit.ci_actor, None);
    }

    #[test]
    fn outside_git_and_ci_only_the_version_is_known() {
        let dir = no_git();
        let audit = collect_from(&vars(&[("GITHUB_SHA", "")]), dir.path());
        assert_eq!(
            audit,
            Audit {
                flotilla_version: env!("CARGO_PKG_VERSION").into(),
                ..Audit::default()
            }
        );
    }

    fn run_git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn a_git_repo_gives_commit_branch_and_dirty_tree_of_the_root_folder() {
        let dir = no_git();
        let repo = dir.path();
        run_git(repo, &["init", "-q", "-b", "release-train"]);
        std::fs::create_dir_all(repo.join("deploy/environments")).expect("mkdir");
        std::fs::write(repo.join("deploy/environments/dev.yaml"), "name: dev\n").expect("write");
        std::fs::write(repo.join("README"), "x\n").expect("write");
        run_git(repo, &["add", "."]);
        run_git(repo, &["commit", "-q", "-m", "first"]);
        let head = run_git(repo, &["rev-parse", "HEAD"]);
        let root = repo.join("deploy");
        // git's own branch wins over CI's.
        let ci = vars(&[("GITHUB_REF_NAME", "other")]);

        let clean = collect_from(&ci, &root);
        assert_eq!(clean.git_commit.as_deref(), Some(head.as_str()));
        assert_eq!(clean.git_branch.as_deref(), Some("release-train"));
        assert_eq!(clean.git_dirty, Some(false));

        // A change outside the deployment repo's folder does not make it dirty.
        std::fs::write(repo.join("README"), "changed\n").expect("write");
        assert_eq!(collect_from(&ci, &root).git_dirty, Some(false));
        // An untracked file inside it does.
        std::fs::write(root.join("environments/prod.yaml"), "name: prod\n").expect("write");
        assert_eq!(collect_from(&ci, &root).git_dirty, Some(true));

        // Detached HEAD (a CI checkout): CI's variable names the branch.
        run_git(repo, &["checkout", "-q", "--detach"]);
        let detached = collect_from(&ci, &root);
        assert_eq!(detached.git_branch.as_deref(), Some("other"));
        assert_eq!(detached.git_commit.as_deref(), Some(head.as_str()));
    }
}
