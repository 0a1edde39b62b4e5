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
            write!(f, "{}", file.display())?;
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
    #[error("job spec file not found: {}", .path.display())]
    FileNotFound {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The job spec file exists but could not be read.
    #[error("cannot read job spec file {}: {source}", .path.display())]
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
    #[error("cannot reach the Kubernetes API: {0}")]
    Unreachable(String),

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
    #[error("{0}")]
    Runtime(String),

    /// A wait was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,

    /// The embedded local cluster could not start or act.
    #[error("local cluster: {0}")]
    LocalCluster(#[from] localcluster::Error),
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
        let field = field.into();
        Error::JobSpec {
            location: SpecLocation {
                field: (!field.is_empty()).then_some(field),
                ..SpecLocation::default()
            },
            message: message.into(),
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
        assert_eq!(Error::spec("", "empty").to_string(), "empty");
    }
}
