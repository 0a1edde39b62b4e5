//! `/openapi/v2` and `/openapi/v3`: the real API server's documents, captured from the real
//! control plane (`fidelity/capture_openapi.py`, gzip under `data/openapi/`), served with its
//! content types, ETags, `If-None-Match` and the `?hash=` caching of the v3 group documents.

use std::io::Read;
use std::sync::OnceLock;

use hyper::{header, Response, StatusCode};
use serde_json::Value;

use super::{full, Body, Req};

/// kubectl 1.20's request for the v2 document (explain, client-side validation).
const V2_PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// What the API server answers it with (Go's MIME parser rejects the `@`).
const V2_PROTOBUF_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// One captured document: its bytes and the SHA-512 the API server names it by.
pub struct Doc {
    /// The document, as the real server sent it.
    pub bytes: Vec<u8>,
    /// Upper-case hex SHA-512 of `bytes` (ETag and `?hash=`).
    pub hash: String,
}

impl Doc {
    fn new(gz: &[u8]) -> Doc {
        let mut bytes = Vec::new();
        // The data is ours, compiled in: a failure here is a broken build, caught by the tests.
        let _ = flate2::read::GzDecoder::new(gz).read_to_end(&mut bytes);
        let digest = ring::digest::digest(&ring::digest::SHA512, &bytes);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Doc { bytes, hash }
    }
}

struct Docs {
    v2_json: Doc,
    v2_protobuf: Vec<u8>,
    /// (path after `/openapi/v3/`, document), in the index's order.
    v3: Vec<(&'static str, Doc)>,
}

fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(|| Docs {
        v2_json: Doc::new(include_bytes!("../../data/openapi/v2.json.gz")),
        v2_protobuf: Doc::new(include_bytes!("../../data/openapi/v2.pb.gz")).bytes,
        v3: vec![
            (
                "api",
                Doc::new(include_bytes!("../../data/openapi/v3-api.json.gz")),
            ),
            (
                "api/v1",
                Doc::new(include_bytes!("../../data/openapi/v3-api-v1.json.gz")),
            ),
            (
                "apis",
                Doc::new(include_bytes!("../../data/openapi/v3-apis.json.gz")),
            ),
            (
                "apis/batch",
                Doc::new(include_bytes!("../../data/openapi/v3-apis-batch.json.gz")),
            ),
            (
                "apis/batch/v1",
                Doc::new(include_bytes!(
                    "../../data/openapi/v3-apis-batch-v1.json.gz"
                )),
            ),
            (
                "version",
                Doc::new(include_bytes!("../../data/openapi/v3-version.json.gz")),
            ),
        ],
    })
}

/// The parsed v3 document of a group version (`api/v1`, `apis/batch/v1`), for validation.
pub fn v3_schemas(group_version: &str) -> Option<&'static Value> {
    static PARSED: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        docs()
            .v3
            .iter()
            .filter(|(p, _)| matches!(*p, "api/v1" | "apis/batch/v1"))
            .map(|(p, d)| (*p, serde_json::from_slice(&d.bytes).unwrap_or(Value::Null)))
            .collect()
    });
    parsed
        .iter()
        .find(|(p, _)| *p == group_version)
        .map(|(_, v)| v.pointer("/components/schemas").unwrap_or(&Value::Null))
}

fn media_types(req: &Req) -> Vec<String> {
    req.header(header::ACCEPT)
        .unwrap_or("")
        .split(',')
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

fn respond(status: StatusCode, content_type: Option<&str>, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Some(ct) = content_type.and_then(|c| header::HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r
}

fn set(r: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = header::HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// Whether `If-None-Match` names this ETag.
fn not_modified(req: &Req, etag: &str) -> bool {
    req.header(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// `GET /openapi/v2`: JSON, or gnostic protobuf when asked for it.
pub fn v2(req: &Req) -> Response<Body> {
    let d = docs();
    let etag = format!("\"{}\"", d.v2_json.hash);
    let media = media_types(req);
    let protobuf = media
        .iter()
        .position(|m| m == V2_PROTOBUF_ACCEPT || m == V2_PROTOBUF_TYPE);
    let json = media
        .iter()
        .position(|m| matches!(m.as_str(), "application/json" | "*/*" | "application/*"));
    let mut r = if not_modified(req, &etag) {
        respond(StatusCode::NOT_MODIFIED, None, Vec::new())
    } else {
        match (protobuf, json, media.is_empty()) {
            (Some(p), j, _) if j.is_none_or(|j| p < j) => respond(
                StatusCode::OK,
                Some(V2_PROTOBUF_TYPE),
                d.v2_protobuf.clone(),
            ),
            (_, Some(_), _) | (_, _, true) => respond(
                StatusCode::OK,
                Some("application/json"),
                d.v2_json.bytes.clone(),
            ),
            _ => respond(StatusCode::NOT_ACCEPTABLE, None, Vec::new()),
        }
    };
    set(&mut r, header::ETAG, &etag);
    set(&mut r, header::CACHE_CONTROL, "no-cache, private");
    set(&mut r, header::VARY, "Accept-Encoding, Accept");
    r
}

/// `GET /openapi/v3` (the index, as the API server sends it: `text/plain`) and
/// `GET /openapi/v3/<group version>`; `?hash=` answers are cacheable for a year, and a stale
/// hash is redirected (301) to the current one.
pub fn v3(req: &Req, rest: &[&str]) -> Response<Body> {
    let d = docs();
    if rest.is_empty() {
        return respond(
            StatusCode::OK,
            Some("text/plain; charset=utf-8"),
            index(d).into_bytes(),
        );
    }
    let path = rest.join("/");
    let Some((_, doc)) = d.v3.iter().find(|(p, _)| *p == path) else {
        return respond(StatusCode::NOT_FOUND, None, Vec::new());
    };
    let etag = format!("\"{}\"", doc.hash);
    let hash = req.param("hash").filter(|h| !h.is_empty());
    if hash.is_some_and(|h| h != doc.hash) {
        // A stale hash: the API server redirects to the current one.
        let mut r = respond(
            StatusCode::MOVED_PERMANENTLY,
            Some("application/json"),
            Vec::new(),
        );
        set(
            &mut r,
            header::LOCATION,
            &format!("/openapi/v3/{path}?hash={}", doc.hash),
        );
        set(&mut r, header::ETAG, &etag);
        set(&mut r, header::CACHE_CONTROL, "no-cache, private");
        set(&mut r, header::VARY, "Accept");
        return r;
    }
    let media = media_types(req);
    let json_ok = media.is_empty()
        || media
            .iter()
            .any(|m| matches!(m.as_str(), "application/json" | "*/*" | "application/*"));
    let mut r = if not_modified(req, &etag) {
        respond(StatusCode::NOT_MODIFIED, None, Vec::new())
    } else if json_ok {
        respond(StatusCode::OK, Some("application/json"), doc.bytes.clone())
    } else {
        respond(StatusCode::NOT_ACCEPTABLE, None, Vec::new())
    };
    set(&mut r, header::ETAG, &etag);
    set(&mut r, header::VARY, "Accept");
    if r.status() == StatusCode::OK && hash.is_some() {
        set(&mut r, header::CACHE_CONTROL, "public, immutable");
        let year = chrono::Utc::now() + chrono::Duration::days(365);
        set(
            &mut r,
            header::EXPIRES,
            &year.format("%a, %d %b %Y %H:%M:%S UTC").to_string(),
        );
    } else {
        set(&mut r, header::CACHE_CONTROL, "no-cache, private");
    }
    r
}

/// The `/openapi/v3` index of the served documents, each at its `?hash=` URL.
fn index(d: &Docs) -> String {
    let mut paths = serde_json::Map::new();
    for (p, doc) in &d.v3 {
        let url = format!("/openapi/v3/{p}?hash={}", doc.hash);
        paths.insert(
            (*p).to_string(),
            serde_json::json!({ "serverRelativeURL": url }),
        );
    }
    serde_json::json!({ "paths": paths }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captured_documents_decompress_and_parse() {
        let d = docs();
        assert!(d.v2_json.bytes.starts_with(b"{"));
        assert!(!d.v2_protobuf.is_empty());
        for (p, doc) in &d.v3 {
            assert!(serde_json::from_slice::<Value>(&doc.bytes).is_ok(), "{p}");
            assert_eq!(doc.hash.len(), 128);
        }
        let jobs = v3_schemas("apis/batch/v1").unwrap();
        assert!(jobs.get("io.k8s.api.batch.v1.JobSpec").is_some());
    }
}
