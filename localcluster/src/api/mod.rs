//! The HTTPS API server: request parsing, responses and the modules behind each endpoint.

pub mod access;
pub mod admission;
pub mod apply;
pub mod binding;
pub mod configdata;
pub mod crud;
pub mod decode_error;
pub mod discovery;
pub mod event;
pub mod exec;
pub mod exec_stream;
pub mod field_validation;
pub mod gc;
pub mod job;
pub mod listitem;
pub mod openapi;
pub mod patch;
pub mod pod_log;
pub mod protobuf;
pub mod root_ca;
pub mod router;
pub mod selectors;
pub mod server;
pub mod table;
pub mod target;
pub mod validation;
pub mod watch;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Frame;
use hyper::{header, Response, StatusCode};
use serde_json::Value;

use crate::error::ApiError;

/// Every response body: a full buffer or a stream of chunks (watch, log follow).
pub type Body = BoxBody<Bytes, Infallible>;

/// A parsed request: what the handlers need, with the body already read.
pub struct Req {
    /// Upper-case method.
    pub method: hyper::Method,
    /// The path, without the query.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Request headers.
    pub headers: hyper::HeaderMap,
    /// The body (empty for GET).
    pub body: Bytes,
    /// The connection's upgrade, for the endpoints that switch protocols (exec).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Req {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter (`true`/`1`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1" | "True"))
    }

    /// A header as text.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `dryRun=All` in the query.
    pub fn dry_run(&self) -> bool {
        self.query.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }

    /// The body as JSON (bodies without Content-Type are JSON too).
    ///
    /// # Errors
    /// 400 when the body is not JSON, worded as kube-apiserver words it for a `what`.
    pub fn json_body(&self, what: &str) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{what}: request body is empty"
            )));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(decode_error::unrecognized(what, &self.body, &e)))
    }
}

/// Splits and percent-decodes a query string, tolerating `?`, `&&` and missing `=`.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Percent-decoding with `+` as space.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON response with this status.
pub fn json_response(code: u16, value: &Value) -> Response<Body> {
    json_bytes(code, serde_json::to_vec(value).unwrap_or_default())
}

/// A JSON response from already-serialised bytes.
pub fn json_bytes(code: u16, bytes: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The Status response of an error (with `Retry-After` when it has one).
pub fn error_response(err: &ApiError) -> Response<Body> {
    let mut r = json_response(err.code, &err.to_json());
    if let Some(s) = err.retry_after {
        if let Ok(v) = header::HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// A `Status` of kind Success with this message (the admin endpoints' answer).
pub fn success(message: &str) -> Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "message": message, "code": 200})
}

/// A streamed body fed by a channel; the stream ends when every sender is dropped.
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it (bounded: a slow reader slows the writer task).
    pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        (tx, ChannelBody { rx }.boxed())
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A streaming response (`Transfer-Encoding: chunked`) with this content type.
pub fn stream_response(content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_query_strings_parse() {
        assert!(parse_query("").is_empty());
        assert_eq!(parse_query("&a=b"), vec![("a".into(), "b".into())]);
        assert_eq!(
            parse_query("labelSelector=a%3Db%2Cc+in+(x)&watch"),
            vec![
                ("labelSelector".into(), "a=b,c in (x)".into()),
                ("watch".into(), String::new())
            ]
        );
        assert_eq!(decode("100%"), "100%");
    }
}
