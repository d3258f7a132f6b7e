//! [`ClusterError`]: what can go wrong with one cluster, each with the cluster's context,
//! and the sorting of a failed request into one of them ([`classify`]). A refusal keeps
//! kube's error as its source; its text is [`describe`]'s.

use super::api_error::describe;
use serde::Serialize;
use std::time::Duration;
use thiserror::Error;

/// A field that another field manager owns, from a 409 answer to an apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

#[derive(Debug, Error)]
pub enum ClusterError {
    /// A kubeconfig file that cannot be read: which one, why it was chosen, what is wrong
    /// in our words, and kube's error when kube found it (none: no home directory).
    #[error("cannot read the kubeconfig {file} ({chosen}): {problem}; name the right one with --kubeconfig FILE or KUBECONFIG=FILE")]
    Kubeconfig {
        file: String,
        chosen: String,
        problem: String,
        #[source]
        source: Option<Box<kube::config::KubeconfigError>>,
    },
    #[error("kube context `{context}`: {message}")]
    Context { context: String, message: String },
    /// No answer, or none in time. `source`: kube's error, when a request found it
    /// (the layers above also judge a cluster unreachable from their own findings).
    #[error("cluster `{context}` is unreachable: {message}")]
    Unreachable {
        context: String,
        message: String,
        #[source]
        source: Option<Box<kube::Error>>,
    },
    #[error("cluster `{context}`: {object}: {message}")]
    InvalidObject {
        context: String,
        object: String,
        message: String,
    },
    #[error("cluster `{context}`: the server does not know kind `{kind}` of `{api_version}` (object {object})")]
    UnknownKind {
        context: String,
        api_version: String,
        kind: String,
        object: String,
    },
    #[error("cluster `{context}`: {object}: fields owned by another manager (rerun with --force-conflicts to take them): {}",
        conflicts.iter().map(|c| format!("{} owned by `{}`", c.field, c.manager)).collect::<Vec<_>>().join(", "))]
    Conflict {
        context: String,
        object: String,
        conflicts: Vec<Conflict>,
    },
    /// An answer that refused a request for another reason than the credentials.
    /// `source`: kube's error, when the answer came through kube.
    #[error("cluster `{context}`: cannot {action} {object}: {message}")]
    Api {
        context: String,
        action: String,
        object: String,
        message: String,
        #[source]
        source: Option<Box<kube::Error>>,
    },
    #[error("cluster `{context}`: {object} failed: {reason}")]
    Unhealthy {
        context: String,
        object: String,
        reason: String,
    },
    #[error("cluster `{context}`: not healthy after {}: still waiting for {}", humantime::format_duration(*timeout), pending.join(", "))]
    Timeout {
        context: String,
        timeout: Duration,
        pending: Vec<String>,
    },
    #[error("cluster `{context}`: release `{release}` is locked by {holder} since {since} (lease {lease}), still held when this run's --lock-timeout ran out; wait for that run to finish (or for its lease to go stale), or raise --lock-timeout")]
    Locked {
        context: String,
        release: String,
        /// `namespace/name` of the Lease.
        lease: String,
        holder: String,
        since: String,
    },
    /// 401, 403 or a credential (exec plugin, token) that could not be had: the refusal
    /// as kube reported it, told as kubectl tells it ([`describe`]).
    #[error(
        "cluster `{context}`: permission denied: cannot {action} {object}: {}",
        describe(source)
    )]
    Denied {
        context: String,
        action: String,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// This run no longer holds the release's lease: another run may own it now.
    #[error("cluster `{context}`: stopped: this run lost the lock of the release ({message})")]
    LockLost { context: String, message: String },
    /// `source`: the failure below the store (encoding, the random source), its text
    /// after `message`'s.
    #[error(
        "cluster `{context}`: release records of `{release}` in namespace `{namespace}`: {message}{}",
        source.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
    )]
    Records {
        context: String,
        namespace: String,
        release: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("cluster `{context}`: {object} exists and is not release `{release}`'s: it belongs to {owner}; nothing was changed (rerun with --adopt to take it over)")]
    NotOwned {
        context: String,
        release: String,
        object: String,
        owner: String,
    },
    #[error("cluster `{context}`: {message}")]
    Release { context: String, message: String },
    /// The release's namespace is not there (a run creates it only with
    /// `--create-namespace`).
    #[error("cluster `{context}`: namespace `{namespace}` does not exist (create it, or pass --create-namespace)")]
    NoNamespace { context: String, namespace: String },
    #[error("cluster `{context}`: cancelled")]
    Cancelled { context: String },
}

/// How a failed request is reported: a refusal (401, 403, no credential) is
/// [`ClusterError::Denied`] (exit code 3), no answer [`ClusterError::Unreachable`]
/// (3), any other answer [`ClusterError::Api`].
pub(crate) fn classify(
    context: &str,
    server: &str,
    action: &str,
    object: &str,
    err: kube::Error,
) -> ClusterError {
    let context = context.to_owned();
    let (action, object) = (action.to_owned(), object.to_owned());
    match err {
        kube::Error::Api(ref status) if status.code == 401 || status.code == 403 => {
            ClusterError::Denied {
                context,
                action,
                object,
                source: Box::new(err),
            }
        }
        kube::Error::Auth(_) => ClusterError::Denied {
            context,
            action,
            object,
            source: Box::new(err),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => ClusterError::Unreachable {
            context,
            message: format!(
                "cannot {action} {object}: {} (server {server})",
                describe(&err)
            ),
            source: Some(Box::new(err)),
        },
        _ => ClusterError::Api {
            context,
            action,
            object,
            message: describe(&err),
            source: Some(Box::new(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Status::failure(message, reason)
        }))
    }

    fn render(err: kube::Error) -> String {
        classify(
            "dev-eu",
            "https://127.0.0.1:6443",
            "list",
            "the release records of `hello` (Secrets in namespace `other`)",
            err,
        )
        .to_string()
    }

    #[test]
    fn a_forbidden_answer_reads_like_kubectl_and_is_a_denial() {
        let message = r#"secrets is forbidden: User "deployer" cannot list resource "secrets" in API group "" in the namespace "other""#;
        let err = classify(
            "dev-eu",
            "https://x",
            "list",
            "the release records",
            status(403, "Forbidden", message),
        );
        assert!(matches!(err, ClusterError::Denied { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("cluster `dev-eu`: permission denied: cannot list the release records: {message} (403 Forbidden)")
        );
        // The server's answer itself is kept, as the error's source.
        match kube_source(&err) {
            Some(kube::Error::Api(status)) => assert_eq!(status.code, 403),
            other => panic!("the source is {other:?}"),
        }
    }

    #[test]
    fn other_answers_keep_the_servers_message_and_never_the_status_struct() {
        let cases = [
            (
                status(422, "Invalid", r#"Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1"#),
                r#"cluster `dev-eu`: cannot list the release records of `hello` (Secrets in namespace `other`): Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1 (422 Invalid)"#,
            ),
            (
                status(500, "InternalError", ""),
                "cluster `dev-eu`: cannot list the release records of `hello` (Secrets in namespace `other`): InternalError (500)",
            ),
            (
                status(0, "", ""),
                "cluster `dev-eu`: cannot list the release records of `hello` (Secrets in namespace `other`): the server gave no reason",
            ),
        ];
        for (err, expected) in cases {
            let text = render(err);
            assert_eq!(text, expected);
            assert!(
                !text.contains("Status {") && !text.contains("ApiError"),
                "{text}"
            );
        }
    }

    #[test]
    fn no_answer_names_the_cause_and_the_server() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let err = kube::Error::Service(Box::new(Wrapped(
            "client error (Connect)",
            Box::new(refused),
        )));
        let text = render(err);
        assert_eq!(
            text,
            "cluster `dev-eu` is unreachable: cannot list the release records of `hello` (Secrets in namespace `other`): connection refused (server https://127.0.0.1:6443)"
        );
        // The request deadline of `client.rs`.
        let err = kube::Error::Service(
            "no answer to GET /api/v1/namespaces/other/secrets within 15s (request timeout)".into(),
        );
        assert_eq!(
            render(err),
            "cluster `dev-eu` is unreachable: cannot list the release records of `hello` (Secrets in namespace `other`): no answer to GET /api/v1/namespaces/other/secrets within 15s (request timeout) (server https://127.0.0.1:6443)"
        );
    }

    #[test]
    fn an_unreadable_answer_says_so() {
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let text = render(kube::Error::SerdeError(json));
        assert!(text.ends_with("the answer of the server is not what was expected: EOF while parsing an object at line 1 column 1"), "{text}");
    }

    #[test]
    fn no_answer_and_a_refusal_keep_kubes_error_as_their_source() {
        let classified = |err| classify("dev-eu", "https://x", "list", "Secrets", err);
        let lost = classified(kube::Error::Service("no answer within 15s".into()));
        assert!(matches!(lost, ClusterError::Unreachable { .. }), "{lost:?}");
        let source = kube_source(&lost);
        assert!(
            matches!(source, Some(kube::Error::Service(_))),
            "{source:?}"
        );
        let refused = classified(status(422, "Invalid", "spec.replicas: Invalid value"));
        assert!(matches!(refused, ClusterError::Api { .. }), "{refused:?}");
        let source = kube_source(&refused);
        assert!(
            matches!(source, Some(kube::Error::Api(s)) if s.code == 422),
            "{source:?}"
        );
    }

    #[test]
    fn a_missing_credential_is_a_denial() {
        let err = kube::Error::Auth(kube::client::AuthError::ExecPluginFailed);
        let err = classify("dev-eu", "https://x", "authenticate to", "the cluster", err);
        assert!(matches!(err, ClusterError::Denied { .. }), "{err:?}");
        let source = kube_source(&err);
        assert!(
            matches!(source, Some(kube::Error::Auth(_))),
            "the source is {source:?}"
        );
        assert_eq!(
            err.to_string(),
            "cluster `dev-eu`: permission denied: cannot authenticate to the cluster: no credentials for the cluster: exec-plugin response did not contain a status"
        );
    }

    /// The kube error an error was made from, as `source()` gives it.
    fn kube_source(err: &ClusterError) -> Option<&kube::Error> {
        let source = std::error::Error::source(err)?;
        source
            .downcast_ref::<Box<kube::Error>>()
            .map(|boxed| &**boxed)
            .or_else(|| source.downcast_ref::<kube::Error>())
    }

    #[test]
    fn a_records_failure_tells_its_cause_after_its_message_and_keeps_it() {
        let cause = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "early eof");
        let err = ClusterError::Records {
            context: "dev-eu".into(),
            namespace: "ns".into(),
            release: "app".into(),
            message: "revision 3".into(),
            source: Some(cause.into()),
        };
        assert_eq!(
            err.to_string(),
            "cluster `dev-eu`: release records of `app` in namespace `ns`: revision 3: early eof"
        );
        let io = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(|e| e.kind()),
            Some(std::io::ErrorKind::UnexpectedEof)
        );
    }

    /// An error with a source, as hyper-util's client error wraps the connector's.
    #[derive(Debug)]
    struct Wrapped(&'static str, Box<dyn std::error::Error + Send + Sync>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.1.as_ref())
        }
    }
}
