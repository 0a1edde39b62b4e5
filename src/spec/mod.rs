//! Loading a user's Job spec: from a YAML file, YAML text or an already-parsed value, checked for
//! shape so later steps can trust it, with errors that say where.

pub mod names;
mod node;
mod validate;

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result, SpecLocation};
use node::Node;
pub use validate::{display_path, integer_out_of_range, non_finite};

/// The largest job spec file kjenv reads. Kubernetes objects are capped at ~1.5 MB by etcd.
pub const MAX_SPEC_BYTES: usize = 8 * 1024 * 1024;

/// The deepest nesting of mappings and lists a job spec may have (real Jobs stay below 20).
pub const MAX_DEPTH: usize = 64;

/// Parser budgets: generous for any real Job, small enough that an alias bomb or a deeply nested
/// document fails in milliseconds.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 200_000;
    budget.max_nodes = 100_000;
    budget.max_aliases = 10_000;
    budget.max_depth = MAX_DEPTH;
    budget.max_documents = 2;
    budget.max_total_scalar_bytes = MAX_SPEC_BYTES;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_recorded_anchor_bytes = MAX_SPEC_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    // YAML 1.2 booleans: `n`, `yes`, `on` stay strings (keys like `n:` must not become `false`).
    options.strict_booleans = true;
    options.alias_limits.max_total_replayed_events = 100_000;
    options
}

/// The error for a spec of `size` bytes (or characters) over [`MAX_SPEC_BYTES`].
pub fn too_large(size: impl std::fmt::Display) -> Error {
    Error::spec_document(format!(
        "the job spec is too large ({size} bytes; at most {MAX_SPEC_BYTES} bytes)"
    ))
}

/// Parse and check a Job spec from YAML text. `file` only serves error messages.
///
/// # Errors
/// [`Error::JobSpec`] for YAML syntax errors (with line and column), several documents, an empty
/// document, and every shape error found by validation (with the field path and position).
pub fn from_yaml(text: &str, file: Option<&Path>) -> Result<Value> {
    let attach = |e: Error| match file {
        Some(path) => e.in_file(path),
        None => e,
    };
    if text.len() > MAX_SPEC_BYTES {
        return Err(attach(too_large(text.len())));
    }
    let tree = Node::parse(text, yaml_options()).map_err(|e| attach(yaml_error(&e)))?;
    let mut value = tree.to_value();
    let oversized = tree
        .oversized_integer(text)
        .map(|(path, literal)| (path, integer_out_of_range(&literal)));
    oversized
        .map_or(Ok(()), Err)
        .and_then(|()| validate::check(&mut value))
        .map_err(|(path, message)| {
            let at = tree.locate(&path);
            attach(Error::JobSpec {
                location: SpecLocation {
                    file: None,
                    line: (at.line > 0).then_some(at.line),
                    column: (at.line > 0).then_some(at.column),
                    field: (!path.is_empty()).then(|| validate::display_path(&path)),
                },
                message,
            })
        })?;
    Ok(value)
}

/// Read, parse and check a Job spec file.
///
/// # Errors
/// [`Error::FileNotFound`] when it does not exist, [`Error::Io`] when it cannot be read,
/// [`Error::JobSpec`] when it is too large, not UTF-8, or not a valid Job spec.
pub fn from_file(path: &Path) -> Result<Value> {
    let io_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::FileNotFound {
                path: path.to_path_buf(),
                source,
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let bytes = crate::files::read_capped(path, MAX_SPEC_BYTES as u64).map_err(|e| match e {
        crate::files::ReadError::Io(source) => io_error(source),
        crate::files::ReadError::NotRegular("a directory") => {
            Error::spec_document("expected a YAML file, got a directory").in_file(path)
        }
        crate::files::ReadError::NotRegular(what) => {
            Error::spec_document(format!("not a regular file ({what}); expected a YAML file"))
                .in_file(path)
        }
        crate::files::ReadError::TooLarge(_) => {
            too_large(format!("more than {MAX_SPEC_BYTES}")).in_file(path)
        }
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Error::spec_document(format!(
            "the job spec is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
        .in_file(path)
    })?;
    from_yaml(text, Some(path))
}

/// Check a Job spec given as an already-parsed value (a Python dict).
///
/// # Errors
/// [`Error::JobSpec`] with the field path when the value is not a valid Job spec.
pub fn from_value(mut value: Value) -> Result<Value> {
    validate::check(&mut value).map_err(|(path, message)| {
        if path.is_empty() {
            Error::spec_document(message)
        } else {
            Error::spec(validate::display_path(&path), message)
        }
    })?;
    Ok(value)
}

/// Turn a YAML parser error into a one-line spec error with its position.
fn yaml_error(err: &serde_saphyr::Error) -> Error {
    let location = err.location();
    let (line, column) = match location {
        Some(l) if l.line() > 0 => (Some(l.line()), Some(l.column())),
        _ => (None, None),
    };
    let message = match err {
        serde_saphyr::Error::MultipleDocuments { .. } => {
            "the file holds several YAML documents; kjenv takes exactly one Job".to_string()
        }
        _ => {
            let text = err.to_string();
            overflowing_integer(&text).unwrap_or_else(|| clean_parser_message(&text))
        }
    };
    Error::JobSpec {
        location: SpecLocation {
            file: None,
            line,
            column,
            field: None,
        },
        message,
    }
}

/// The parser refuses an integer literal too large even for a float as a "non-finite float":
/// say what it is, like the integers it does read as floats (see `Node::oversized_integer`).
fn overflowing_integer(parser_text: &str) -> Option<String> {
    let literal = parser_text
        .split_once("non-finite float `")?
        .1
        .split_once('`')?
        .0;
    let digits = literal.strip_prefix(['-', '+']).unwrap_or(literal);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| integer_out_of_range(literal))
}

/// The longest parser message kept: the parser may quote a whole scalar of the user's.
const PARSER_MESSAGE_CHARS: usize = 200;

/// The parser's own text, on one line, without the position it also prints (we print our own),
/// shortened in the middle when it quotes a long value.
pub(crate) fn clean_parser_message(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid YAML");
    let cut = [" at line ", " at line:"]
        .iter()
        .filter_map(|m| first.find(m))
        .min()
        .unwrap_or(first.len());
    let msg = first[..cut].trim_end_matches([',', '.', ':', ' ']).trim();
    let msg = msg.strip_prefix("error: ").unwrap_or(msg);
    format!(
        "invalid YAML: {}",
        names::shorten(msg, PARSER_MESSAGE_CHARS)
    )
}

#[cfg(test)]
mod tests;

/// Render a value as YAML (for `kjenv render -o yaml`).
///
/// # Errors
/// [`Error::InvalidArgument`] if the value cannot be written as YAML.
pub fn to_yaml(value: &Value) -> Result<String> {
    serde_saphyr::to_string(value)
        .map_err(|e| Error::InvalidArgument(format!("cannot write YAML: {e}")))
}
