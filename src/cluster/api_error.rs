//! A kube error in the words a user reads, as kubectl prints them: for an answer of the
//! API server its `status.message` with the code and reason (`secrets is forbidden: User
//! "deployer" cannot list resource "secrets" ... (403 Forbidden)`); for a request that
//! got no answer the cause at the bottom of the chain (`connection refused`), never the
//! client library's own wording or a `Debug` dump (kube's `Display` of an API error
//! appends the whole `Status` struct).
//!
//! Every kube error that reaches a user goes through [`ClusterHandle::error`], which
//! sorts it into a [`ClusterError`] (the cluster, the verb and the object flotilla was
//! acting on, and what the server said); logs use [`describe`].

use super::{ClusterError, ClusterHandle};
use kube::core::Status;
use std::error::Error as _;

/// What went wrong, without the verb and the object (the caller names them).
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status_text(status),
        kube::Error::HyperError(_) | kube::Error::Service(_) => transport_cause(err),
        kube::Error::Auth(auth) => format!("no credentials for the cluster: {}", chain(auth)),
        kube::Error::SerdeError(json) => {
            format!("the answer of the server is not what was expected: {json}")
        }
        other => chain(other),
    }
}

/// `message (code reason)`, as kubectl's `Error from server (Reason): message`.
pub fn status_text(status: &Status) -> String {
    let message = match (status.message.trim(), status.reason.as_str()) {
        ("", "") => "the server gave no reason",
        ("", reason) => reason,
        (message, _) => message,
    };
    match (status.code, status.reason.as_str()) {
        (0, _) => message.to_owned(),
        (code, "") => format!("{message} ({code})"),
        (code, reason) if reason == message => format!("{message} ({code})"),
        (code, reason) => format!("{message} ({code} {reason})"),
    }
}

/// A request that got no answer: the cause at the bottom of the chain, which says what
/// a person can act on (`connection refused`, `no answer ... within 15s`, a TLS
/// problem), with the layers above it that add something.
fn transport_cause(err: &kube::Error) -> String {
    let mut source = err.source();
    let mut layers: Vec<String> = Vec::new();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused".into();
            }
        }
        let text = cause.to_string();
        // `client error (Connect)` says less than what it wraps: keep the innermost.
        if !text.is_empty() && !layers.iter().any(|l| l.contains(&text)) {
            layers.push(text);
        }
        source = cause.source();
    }
    match layers.pop() {
        Some(innermost) => innermost,
        None => chain(err),
    }
}

/// An error and its sources, each once, `: `-separated.
pub(super) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// How a failed request is reported: a refusal (401, 403, no credential) is
/// [`ClusterError::Denied`] (exit code 3), no answer [`ClusterError::Unreachable`]
/// (3), any other answer [`ClusterError::Api`].
pub(crate) fn classify(
    context: &str,
    server: &str,
    action: &str,
    object: &str,
    err: &kube::Error,
) -> ClusterError {
    let context = context.to_owned();
    let (action, object) = (action.to_owned(), object.to_owned());
    match err {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            ClusterError::Denied {
                context,
                action,
                object,
                message: describe(err),
            }
        }
        kube::Error::Auth(_) => ClusterError::Denied {
            context,
            action,
            object,
            message: describe(err),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => ClusterError::Unreachable {
            context,
            message: format!(
                "cannot {action} {object}: {} (server {server})",
                describe(err)
            ),
        },
        _ => ClusterError::Api {
            context,
            action,
            object,
            message: describe(err),
        },
    }
}

impl ClusterHandle {
    /// A failed request of this cluster, while flotilla was doing `action` (`list`,
    /// `apply`, `read`) to `object` (`Deployment hello/web`): see [`classify`].
    pub(crate) fn error(
        &self,
        action: &str,
        object: &dyn std::fmt::Display,
        err: kube::Error,
    ) -> ClusterError {
        classify(
            self.context(),
            self.server(),
            action,
            &object.to_string(),
            &err,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            &err,
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
            &status(403, "Forbidden", message),
        );
        assert!(matches!(err, ClusterError::Denied { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("cluster `dev-eu`: permission denied: cannot list the release records: {message} (403 Forbidden)")
        );
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
    fn a_missing_credential_is_a_denial() {
        let err = kube::Error::Auth(kube::client::AuthError::ExecPluginFailed);
        let err = classify(
            "dev-eu",
            "https://x",
            "authenticate to",
            "the cluster",
            &err,
        );
        assert!(matches!(err, ClusterError::Denied { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "cluster `dev-eu`: permission denied: cannot authenticate to the cluster: no credentials for the cluster: exec-plugin response did not contain a status"
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
