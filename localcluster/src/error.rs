//! Kubernetes `Status` errors (`ApiError`) and the crate's start-up error type.

use serde_json::{json, Map, Value};

use crate::kind::Kind;

/// A failed API request, answered as a Kubernetes `Status` object whose `code` is the HTTP status.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`.
    pub reason: String,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, if any (`name`, `group`, `kind`, `uid`, `causes`, `retryAfterSeconds`).
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (429/503 answers).
    pub retry_after: Option<u32>,
}

/// One field error of an `Invalid` answer (`details.causes[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// e.g. `FieldValueRequired`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.template.spec.restartPolicy`.
    pub field: String,
    /// The detail, e.g. `Required value: valid values: "OnFailure", "Never"`.
    pub message: String,
}

impl Cause {
    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Cause {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// `Invalid value: <v>: <detail>` (strings quoted, numbers bare, as Go prints them).
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
        let v = go_value(value);
        let message = if detail.is_empty() {
            format!("Invalid value: {v}")
        } else {
            format!("Invalid value: {v}: {detail}")
        };
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message,
        }
    }

    /// `Unsupported value: "X": supported values: "A", "B"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Cause {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                go_value(value),
                list.join(", ")
            ),
        }
    }

    /// `Duplicate value: <v>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", go_value(value)),
        }
    }

    /// `Too long: may not be longer than N`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be longer than {max}"),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }
}

/// Renders a value the way Kubernetes field errors print it (`"text"`, `3`, `null`).
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

impl ApiError {
    /// A bare error with the given code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, name: &str, kind: Kind) -> ApiError {
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if !kind.group().is_empty() {
            d.insert("group".into(), json!(kind.group()));
        }
        d.insert("kind".into(), json!(kind.plural()));
        self.details = Some(Box::new(Value::Object(d)));
        self
    }

    /// apimachinery's `NewGenericServerResponse` without a resource: its empty `details: {}`.
    pub fn generic(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(code, reason, message);
        e.details = Some(Box::new(json!({})));
        e
    }

    /// 404 of a path that names no served resource.
    pub fn no_such_resource() -> ApiError {
        ApiError::generic(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 415 of a PATCH whose media type is no patch type (kube-apiserver's bare text).
    pub fn unsupported_patch_type() -> ApiError {
        ApiError::generic(415, "UnsupportedMediaType", "415: Unsupported Media Type")
    }

    /// 422 of a JSON patch whose `test` operation failed (kube-apiserver says no more).
    pub fn patch_test_failed() -> ApiError {
        ApiError::generic(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
    }

    /// 404 `jobs.batch "x" not found`.
    pub fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified_plural()),
        )
        .with_details(name, kind)
    }

    /// 409 `jobs.batch "x" already exists`.
    pub fn already_exists(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified_plural()),
        )
        .with_details(name, kind)
    }

    /// 409 Conflict with the standard "object has been modified" message.
    pub fn conflict(kind: Kind, name: &str) -> ApiError {
        ApiError::conflict_with(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict `Operation cannot be fulfilled on <res> "<name>": <detail>`.
    pub fn conflict_with(kind: Kind, name: &str, detail: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                kind.qualified_plural()
            ),
        )
        .with_details(name, kind)
    }

    /// 422 Invalid: `Job.batch "x" is invalid: <field>: <detail>` (several → `[e1, e2]`).
    pub fn invalid(kind: Kind, name: &str, causes: Vec<Cause>) -> ApiError {
        let parts: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {summary}", kind.qualified_kind()),
        );
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !kind.group().is_empty() {
            d.insert("group".into(), json!(kind.group()));
        }
        d.insert("kind".into(), json!(kind.kind()));
        d.insert("causes".into(), Value::Array(causes));
        err.details = Some(Box::new(Value::Object(d)));
        err
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden with a free message.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable() -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json (got {content_type:?})"))
    }

    /// 410 Expired `too old resource version: N (M)`.
    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 422 of a request's options (`PatchOptions.meta.k8s.io "" is invalid: force: Forbidden:
    /// …`), the cause's reason read off the detail's first words, as apimachinery words them.
    pub fn invalid_options(options_kind: &str, field: &str, detail: &str) -> ApiError {
        let reason = [
            ("Required", "FieldValueRequired"),
            ("Too long", "FieldValueTooLong"),
            ("Unsupported value", "FieldValueNotSupported"),
        ]
        .iter()
        .find(|(prefix, _)| detail.starts_with(prefix))
        .map_or("FieldValueForbidden", |(_, r)| r);
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{options_kind}.meta.k8s.io \"\" is invalid: {field}: {detail}"),
        );
        e.details = Some(Box::new(
            json!({"group": "meta.k8s.io", "kind": options_kind,
            "causes": [{"reason": reason, "message": detail, "field": field}]}),
        ));
        e
    }

    /// 504 `Too large resource version: N, current: M` (a read at a resourceVersion ahead).
    pub fn too_large_resource_version(requested: u64, current: u64) -> ApiError {
        let mut e = ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        );
        e.details = Some(Box::new(
            json!({"causes": [{"reason": "ResourceVersionTooLarge",
            "message": "Too large resource version"}], "retryAfterSeconds": 1}),
        ));
        e
    }

    /// 500 InternalError `Internal error occurred: …`.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        let mut e = ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {detail}"),
        );
        e.details = Some(Box::new(
            json!({"causes": [{"message": detail.to_string()}]}),
        ));
        e
    }

    /// A fault-injected or overload answer: 429/503/504/500 with an optional `Retry-After`.
    pub fn injected(code: u16, retry_after: Option<u32>) -> ApiError {
        let (reason, message) = match code {
            429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
            504 => ("Timeout", "Timeout: the server was unable to return a response in the time allotted, but may still be processing the request"),
            500 => ("InternalError", "Internal error occurred: injected fault"),
            _ => ("InternalError", "injected fault"),
        };
        let mut e = ApiError::new(code, reason, message);
        if let Some(s) = retry_after {
            e.retry_after = Some(s);
            e.details = Some(Box::new(json!({"retryAfterSeconds": s})));
        }
        e
    }

    /// The `Status` object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        if !self.reason.is_empty() {
            m.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), (**d).clone());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Why the local cluster could not start or restart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding or accepting on the listening socket failed.
    #[error("cannot listen on 127.0.0.1:{port}")]
    Listen {
        /// The requested port (0 = any).
        port: u16,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Generating the CA or the serving certificate failed.
    #[error("cannot generate the TLS certificates: {0}")]
    Tls(String),
    /// Creating the work directory or writing the kubeconfig failed.
    #[error("cannot write {path}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The background runtime could not be built or died during start-up.
    #[error("cannot start the local cluster runtime: {0}")]
    Runtime(String),
}
