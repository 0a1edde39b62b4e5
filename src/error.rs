//! The one error type of the kjenv core; the bindings map it to the Python exception tree.

use std::path::PathBuf;

/// Where in a job spec something went wrong: the file (if any), the line and column (1-based, if
/// known) and the field path (`spec.template.spec.containers[0].env`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecLocation {
    pub file: Option<PathBuf>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub field: Option<String>,
}

impl std::fmt::Display for SpecLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut wrote = false;
        if let Some(file) = &self.file {
            write!(f, "{}", crate::spec::names::shown_path(file))?;
            wrote = true;
        }
        if let Some(line) = self.line {
            if wrote {
                write!(f, ":")?;
            } else {
                write!(f, "line ")?;
            }
            write!(f, "{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
            wrote = true;
        }
        if let Some(field) = &self.field {
            if wrote {
                write!(f, ": ")?;
            }
            write!(f, "{field}")?;
        }
        Ok(())
    }
}

/// Everything that can fail in kjenv.
///
/// Messages are lower-case and specific; causes are kept as sources. No variant ever carries a
/// secret (auth tokens are held in [`crate::secret::SecretString`], which never prints).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job spec is malformed: YAML syntax, wrong shape, wrong kind, bad value.
    #[error("{}", spec_message(.location, .message))]
    JobSpec {
        location: SpecLocation,
        message: String,
    },

    /// The job spec file does not exist.
    #[error("job spec file not found: {}", crate::spec::names::shown_path(.path))]
    FileNotFound {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The job spec file exists but could not be read.
    #[error("cannot read job spec file {}: {source}", crate::spec::names::shown_path(.path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A value needed to render the Job could not be found (for example the image).
    #[error("{0}")]
    MissingValue(String),

    /// An argument given to kjenv is invalid.
    #[error("{0}")]
    InvalidArgument(String),

    /// No usable cluster configuration (kubeconfig, context, in-cluster service account).
    #[error("{message}")]
    ClusterConfig { message: String },

    /// The Kubernetes API refused a request (its Status).
    #[error("{message} ({reason}, HTTP {status})")]
    KubeApi {
        status: u16,
        reason: String,
        message: String,
    },

    /// The API could not be reached (connection refused, reset, timed out), after retries.
    /// `source` is the client's last error, when there was one (not for a request that timed out).
    #[error("cannot reach the Kubernetes API: {detail}")]
    Unreachable {
        detail: String,
        #[source]
        source: Option<Box<kube::Error>>,
    },

    /// The API answered with something that is not what was asked for (not the object kind).
    #[error("the Kubernetes API's answer is not {what}: {source}")]
    UnexpectedAnswer {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// The Job failed; `message` explains it in Kubernetes terms.
    #[error("{message}")]
    JobFailed {
        reason: String,
        message: String,
        exit_code: Option<i32>,
        log_tail: String,
    },

    /// Waiting took longer than the timeout.
    #[error("{0}")]
    JobTimeout(String),

    /// kjenv's runtime could not start.
    #[error("cannot start kjenv's runtime: {0}")]
    Runtime(#[source] std::io::Error),

    /// A wait was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,

    /// A bug: the core (or a library under it) panicked; the bindings catch it (the message).
    #[error("internal error in kjenv: {0}; please report it (KJENV_BACKTRACE=1 shows where)")]
    Panicked(String),
}

fn spec_message(location: &SpecLocation, message: &str) -> String {
    let at = location.to_string();
    if at.is_empty() {
        message.to_string()
    } else {
        format!("{at}: {message}")
    }
}

impl Error {
    /// A job spec error at a field path, with no source position.
    pub fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::JobSpec {
            location: SpecLocation {
                field: Some(field.into()),
                ..SpecLocation::default()
            },
            message: message.into(),
        }
    }

    /// A job spec error about the whole document (no field, no position).
    pub fn spec_document(message: impl Into<String>) -> Self {
        Error::JobSpec {
            location: SpecLocation::default(),
            message: message.into(),
        }
    }

    /// The same error, its message telling what a failed clean-up left behind (and how to
    /// remove it).
    #[must_use]
    pub fn left_behind(mut self, note: String) -> Self {
        match &mut self {
            Error::KubeApi { message, .. } | Error::JobFailed { message, .. } => {
                *message = format!("{message}; {note}");
            }
            Error::Unreachable { detail, .. } => *detail = format!("{detail}; {note}"),
            Error::MissingValue(m) | Error::InvalidArgument(m) | Error::JobTimeout(m) => {
                *m = format!("{m}; {note}");
            }
            Error::ClusterConfig { message } => *message = format!("{message}; {note}"),
            _ => {
                let cause = self.to_string();
                return Error::KubeApi {
                    status: 0,
                    reason: "CleanupFailed".into(),
                    message: format!("{cause}; {note}"),
                };
            }
        }
        self
    }

    /// The API could not be reached, for a reason of kjenv's own (no client error behind it).
    pub fn unreachable(detail: impl Into<String>) -> Self {
        Error::Unreachable {
            detail: detail.into(),
            source: None,
        }
    }

    /// Attach a file name to a job spec error (no-op for other variants).
    #[must_use]
    pub fn in_file(mut self, path: &std::path::Path) -> Self {
        if let Error::JobSpec { location, .. } = &mut self {
            location.file = Some(path.to_path_buf());
        }
        self
    }
}

/// The one mapping of a final client error to kjenv's: the API's Status becomes
/// [`Error::KubeApi`]; anything else (connection refused, reset, TLS) is [`Error::Unreachable`],
/// keeping the client's error as its source.
impl From<kube::Error> for Error {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => Error::KubeApi {
                status: status.code,
                reason: if status.reason.is_empty() {
                    "Unknown".into()
                } else {
                    status.reason.clone()
                },
                message: status.message.clone(),
            },
            other => {
                // The transport's own message, without kube's "HyperError: " wrapper.
                let detail = match &other {
                    kube::Error::HyperError(e) => e.to_string(),
                    kube::Error::Service(e) => e.to_string(),
                    e => e.to_string(),
                };
                Error::Unreachable {
                    detail,
                    source: Some(Box::new(other)),
                }
            }
        }
    }
}

/// The result type of the kjenv core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_error_message_names_file_line_column_and_field() {
        let err = Error::JobSpec {
            location: SpecLocation {
                file: Some(PathBuf::from("job.yaml")),
                line: Some(3),
                column: Some(7),
                field: Some("spec.template".into()),
            },
            message: "expected a mapping, got a list".into(),
        };
        assert_eq!(
            err.to_string(),
            "job.yaml:3:7: spec.template: expected a mapping, got a list"
        );
    }

    #[test]
    fn spec_error_without_file_says_line() {
        let err = Error::JobSpec {
            location: SpecLocation {
                line: Some(2),
                column: Some(1),
                ..Default::default()
            },
            message: "bad".into(),
        };
        assert_eq!(err.to_string(), "line 2:1: bad");
        assert_eq!(Error::spec_document("empty").to_string(), "empty");
    }
}
