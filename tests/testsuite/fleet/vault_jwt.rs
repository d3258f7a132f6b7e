//! `vault.auth.method: jwt` against the fleet's HashiCorp Vault: each test enables the
//! `jwt` auth method at a mount of its own, configured with `jwt_validation_pubkeys` of a
//! key pair it generates, writes a role bound to GitHub's claim shape (`repository`,
//! `ref`, `aud`) or GitLab's (`project_path`, `ref`, `ref_type`: the role `secrets
//! policy` prints), signs the JWTs a CI would be issued, and deploys with secrets
//! through that login. Only GitHub's token endpoint is played by the test (a local HTTP server:
//! `*_fake_token_endpoint`); Vault and the clusters are real.

use crate::support::rollout as support;

use flotilla_fleet::testing::Fleet;
use serde_json::{json, Value};
use std::process::Output;
use support::jwt::{fake_token_endpoint, Ci, JwtIssuer, REPOSITORY};
use support::{at_root, describe, repo, TestRepo};

const DEV_DB: &str = "fake-dev-hello-db-password-1111";
const AUDIENCE: &str = "flotilla-test";

/// A repo whose `dev` (two clusters of the fleet) logs in with `auth`.
fn jwt_repo(fleet: &Fleet, test: &str, auth: &str) -> TestRepo {
    let clusters = fleet.clusters();
    let dev: Vec<(&str, u32)> = clusters.iter().take(2).map(|c| (c.as_str(), 0)).collect();
    let repo = repo(test, &[("dev", &dev)], "60s");
    let file = repo.root().join("environments/dev.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, text.replace("auth: { method: token }", auth))
        .unwrap_or_else(|e| panic!("{e}"));
    repo
}

/// `flotilla ARGS` with the fleet's kubeconfig and Vault address, no Vault token: it
/// logs in as the environment file says; `vars` added.
fn run(fleet: &Fleet, repo: &TestRepo, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = at_root(fleet, repo.root(), args);
    cmd.env_remove("VAULT_ROLE_ID")
        .env_remove("VAULT_SECRET_ID");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| panic!("{e}"))
}

fn assert_never_shows(out: &Output, secrets: &[&str]) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        for secret in secrets {
            assert!(!text.contains(secret), "a credential was printed:\n{text}");
        }
    }
}

async fn db_password_in(fleet: &Fleet, context: &str, namespace: &str) -> Option<String> {
    use k8s_openapi::api::core::v1::Secret;
    let api: kube::Api<Secret> = kube::Api::namespaced(fleet.client(context).await, namespace);
    let secret = api
        .get_opt("hello-db")
        .await
        .unwrap_or_else(|e| panic!("{e}"))?;
    let bytes = secret.data?.remove("password")?;
    Some(String::from_utf8_lossy(&bytes.0).into_owned())
}

/// The password the hello-db Secret holds in each of the repo's two clusters.
async fn db_passwords(fleet: &Fleet, repo: &TestRepo) -> Vec<Option<String>> {
    let mut found = Vec::new();
    for context in fleet.clusters().iter().take(2) {
        found.push(db_password_in(fleet, context, &repo.namespace).await);
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_jwt_login_with_bound_claims_deploys_and_another_branch_is_refused() {
    let fleet = Fleet::shared();
    let repo = jwt_repo(
        fleet,
        "jwt_login",
        "auth: { method: jwt, role: deploy-dev, mount: MOUNT, jwt_env: CI_ID_TOKEN }",
    );
    let issuer = JwtIssuer::start(fleet, &repo.namespace, AUDIENCE).await;
    let file = repo.root().join("environments/dev.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, text.replace("MOUNT", &issuer.mount)).unwrap_or_else(|e| panic!("{e}"));
    let deploy = ["deploy", "hello", "--env", "dev", "--create-namespace"];

    // Another branch's job: the role's bound `ref` refuses it; exit 3, nothing changed.
    let feature = issuer.token("feature-x", AUDIENCE);
    let out = run(fleet, &repo, &deploy, &[("CI_ID_TOKEN", feature.as_str())]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "refused the jwt credentials (auth/{} login, role deploy-dev, JWT from CI_ID_TOKEN)",
            issuer.mount
        )) && stderr.contains("claim \"ref\"")
            && stderr.contains("the JWT presented claims ")
            && stderr.contains("ref=\"refs/heads/feature-x\""),
        "{stderr}"
    );
    assert_never_shows(&out, &[feature.as_str()]);
    // Another audience: refused as well, naming the audience.
    let other_audience = issuer.token("dev", "someone-else");
    let out = run(
        fleet,
        &repo,
        &deploy,
        &[("CI_ID_TOKEN", other_audience.as_str())],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid audience (aud) claim")
            && String::from_utf8_lossy(&out.stderr).contains("aud=\"someone-else\""),
        "{}",
        describe(&out)
    );
    assert_never_shows(&out, &[other_audience.as_str()]);
    assert_eq!(
        db_passwords(fleet, &repo).await,
        [None, None],
        "a refused login changed a cluster"
    );

    // The dev branch's job: logs in, reads the secret, deploys every cluster.
    let dev = issuer.token("dev", AUDIENCE);
    let out = run(fleet, &repo, &deploy, &[("CI_ID_TOKEN", dev.as_str())]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_never_shows(&out, &[dev.as_str(), DEV_DB]);
    assert_eq!(
        db_passwords(fleet, &repo).await,
        [Some(DEV_DB.to_string()), Some(DEV_DB.to_string())]
    );
    // The run revoked its login token (and the refused ones never had one).
    assert_eq!(issuer.live_logins(fleet).await, 0);

    // `secrets policy` prints the role next to the policy.
    let (policy, role) = printed_policy(fleet, &repo);
    // A JWT from a variable: GitLab's claim shape (GitHub's comes with its endpoint).
    assert_eq!(role["bound_claims"]["ref"], "dev", "{policy}");
    assert_eq!(role["bound_claims"]["ref_type"], "branch", "{policy}");
    assert_eq!(
        role["bound_claims"]["project_path"], "OWNER/REPO",
        "{policy}"
    );
    // Not bound unless the jobs declare a CI environment (the header says how).
    assert_eq!(role["bound_claims"].get("environment"), None, "{policy}");
    assert!(
        policy.contains("add \"environment\": \"dev\" to bound_claims"),
        "{policy}"
    );
    assert_eq!(role["token_policies"], json!(["hello-dev"]), "{policy}");
    assert!(
        policy.contains(&format!(
            "vault write auth/{}/role/deploy-dev @role.json",
            issuer.mount
        )),
        "{policy}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_jwt_login_through_github_fake_token_endpoint() {
    const REQUEST_TOKEN: &str = "request-token-canary-5c0a9e";
    let fleet = Fleet::shared();
    let repo = jwt_repo(
        fleet,
        "jwt_endpoint",
        &format!("auth: {{ method: jwt, role: deploy-dev, mount: MOUNT, audience: {AUDIENCE} }}"),
    );
    let issuer = JwtIssuer::start(fleet, &repo.namespace, AUDIENCE).await;
    let file = repo.root().join("environments/dev.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, text.replace("MOUNT", &issuer.mount)).unwrap_or_else(|e| panic!("{e}"));
    let jwt = issuer.token("dev", AUDIENCE);
    let (url, seen) = fake_token_endpoint(REQUEST_TOKEN, jwt.clone());
    let check = ["secrets", "check", "hello", "--env", "dev"];

    // Outside a job with `id-token: write`: the variable is named, exit 2.
    let out = run(fleet, &repo, &check, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ACTIONS_ID_TOKEN_REQUEST_URL is not set"),
        "{}",
        describe(&out)
    );

    // A wrong request token: the endpoint's refusal is named, exit 3.
    let out = run(
        fleet,
        &repo,
        &check,
        &[
            ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-request-token"),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "the JWT for Vault's jwt login could not be had from GitHub Actions' token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): HTTP 401 Unauthorized: Bad credentials"
        ),
        "{}",
        describe(&out)
    );

    // The job's variables: the audience is asked, the login reads every secret.
    let vars = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    ];
    let out = run(fleet, &repo, &check, &vars);
    assert!(out.status.success(), "{}", describe(&out));
    assert_never_shows(&out, &[jwt.as_str(), REQUEST_TOKEN, DEV_DB]);
    let requests = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(
        requests.last().map(String::as_str),
        Some(format!("GET /token?api-version=2.0&audience={AUDIENCE} HTTP/1.1").as_str()),
        "{requests:?}"
    );
    // A deploy through the same login prints neither token either.
    let out = run(
        fleet,
        &repo,
        &["deploy", "hello", "--env", "dev", "--create-namespace"],
        &vars,
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_never_shows(&out, &[jwt.as_str(), REQUEST_TOKEN, DEV_DB]);
    assert_eq!(
        db_password_in(fleet, &fleet.clusters()[0], &repo.namespace)
            .await
            .as_deref(),
        Some(DEV_DB)
    );
    assert_eq!(issuer.live_logins(fleet).await, 0);
}

/// What `secrets policy` prints for `repo`'s dev, and the role in it: the JSON of its
/// comment lines from `# {`, as an operator keeps it for `vault write`.
fn printed_policy(fleet: &Fleet, repo: &TestRepo) -> (String, Value) {
    let out = run(
        fleet,
        repo,
        &["secrets", "policy", "hello", "--env", "dev"],
        &[],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let policy = String::from_utf8_lossy(&out.stdout).into_owned();
    let role: String = policy
        .lines()
        .skip_while(|line| *line != "# {")
        .map(|line| line.trim_start_matches('#').trim_start())
        .collect::<Vec<_>>()
        .join("\n");
    let role = serde_json::from_str(&role).unwrap_or_else(|e| panic!("{e}: {policy}"));
    (policy, role)
}

/// role.json as docs/secrets.md makes it from `policy` (its `sed` line, run by `sh` in
/// a folder holding policy.hcl), OWNER/REPO filled in with [`REPOSITORY`] as there.
fn role_json_as_documented(policy: &str) -> Value {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/secrets.md"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let line = docs
        .lines()
        .find(|l| l.starts_with("sed -n 's/^# //p' policy.hcl"))
        .unwrap_or_else(|| panic!("docs/secrets.md: no sed line making role.json"));
    assert!(line.contains(&format!("|{REPOSITORY}|")), "{line}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("policy.hcl"), policy).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{line}: {}", describe(&out));
    let text =
        std::fs::read_to_string(dir.path().join("role.json")).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_gitlab_id_token_logs_in_at_the_printed_role_and_a_tag_another_project_or_audience_is_refused(
) {
    let fleet = Fleet::shared();
    let repo = jwt_repo(
        fleet,
        "jwt_gitlab",
        &format!(
            "auth: {{ method: jwt, role: deploy-dev, mount: MOUNT, jwt_env: VAULT_ID_TOKEN, audience: {AUDIENCE} }}"
        ),
    );
    let issuer = JwtIssuer::start_for(fleet, &repo.namespace, AUDIENCE, Ci::GitLab).await;
    let file = repo.root().join("environments/dev.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, text.replace("MOUNT", &issuer.mount)).unwrap_or_else(|e| panic!("{e}"));

    // The operator writes the role flotilla prints (GitLab's shape: the JWT comes from
    // a variable), OWNER/REPO filled in, with the fleet's read policy in place of the
    // one it names.
    let (policy, mut role) = printed_policy(fleet, &repo);
    role["bound_claims"]["project_path"] = REPOSITORY.into();
    assert_eq!(role_json_as_documented(&policy), role);
    assert_eq!(
        role["bound_claims"],
        json!({"project_path": REPOSITORY, "ref": "dev", "ref_type": "branch"}),
        "{role:#}"
    );
    assert_eq!(role["bound_audiences"], json!([AUDIENCE]), "{role:#}");
    role["token_policies"] = json!([flotilla_fleet::vault::READ_POLICY]);
    issuer.write_role(fleet, "deploy-dev", role).await;

    let deploy = ["deploy", "hello", "--env", "dev", "--create-namespace"];
    // Refused tokens: a tag pipeline named like the branch, another project of the
    // group, another audience. Each exit 3, the role and the refused claim named, with
    // what the token claimed; nothing changed, no token printed.
    let tag = {
        let mut claims = issuer.claims("dev", AUDIENCE);
        claims.insert("ref_type".into(), "tag".into());
        issuer.sign(&claims)
    };
    let other_project = {
        let mut claims = issuer.claims("dev", AUDIENCE);
        claims.insert("project_path".into(), "acme/other".into());
        issuer.sign(&claims)
    };
    let other_audience = issuer.token("dev", "https://someone-else.example.com");
    for (token, claim, presented) in [
        (&tag, "claim \"ref_type\"", "ref_type=\"tag\""),
        (
            &other_project,
            "claim \"project_path\"",
            "project_path=\"acme/other\"",
        ),
        (
            &other_audience,
            "invalid audience (aud) claim",
            "aud=\"https://someone-else.example.com\"",
        ),
    ] {
        let out = run(fleet, &repo, &deploy, &[("VAULT_ID_TOKEN", token.as_str())]);
        assert_eq!(out.status.code(), Some(3), "{claim}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "refused the jwt credentials (auth/{} login, role deploy-dev, JWT from VAULT_ID_TOKEN)",
                issuer.mount
            )) && stderr.contains(claim)
                && stderr.contains(presented),
            "{claim}: {stderr}"
        );
        assert_never_shows(&out, &[token.as_str()]);
    }
    assert_eq!(
        db_passwords(fleet, &repo).await,
        [None, None],
        "a refused login changed a cluster"
    );

    // The dev branch's pipeline: reads every secret, deploys every cluster, and its
    // login token is revoked when the command ends.
    let dev = issuer.token("dev", AUDIENCE);
    let out = run(fleet, &repo, &deploy, &[("VAULT_ID_TOKEN", dev.as_str())]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_never_shows(&out, &[dev.as_str(), DEV_DB]);
    assert_eq!(
        db_passwords(fleet, &repo).await,
        [Some(DEV_DB.to_string()), Some(DEV_DB.to_string())]
    );
    assert_eq!(issuer.live_logins(fleet).await, 0);
}
