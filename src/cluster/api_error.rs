//! A kube error in the words a user reads, as kubectl prints them: for an answer of the
//! API server its `status.message` with the code and reason (`secrets is forbidden: User
//! "deployer" cannot list resource "secrets" ... (403 Forbidden)`); for a request that
//! got no answer the cause at the bottom of the chain (`connection refused`), never the
//! client library's own wording or a `Debug` dump (kube's `Display` of an API error
//! appends the whole `Status` struct).
//!
//! Every kube error that reaches a user goes through [`super::ClusterHandle::error`],
//! which sorts it into a [`super::ClusterError`] (the cluster, the verb and the object
//! flotilla was acting on, and what the server said, in these words); logs use
//! [`describe`].

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
