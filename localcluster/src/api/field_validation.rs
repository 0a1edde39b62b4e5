//! `fieldValidation=Strict|Warn|Ignore` (default Warn, as today's API servers): unknown and
//! duplicate fields of create, update and patch bodies, found against the real API server's
//! OpenAPI v3 schemas (`openapi::v3_schemas`) and worded as kube-apiserver words them.

use std::collections::HashSet;
use std::fmt;

use hyper::{header, Response};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};

use super::{openapi, protobuf, Body, Req};
use crate::error::ApiError;
use crate::kind::Kind;

/// What to do with unknown and duplicate fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Refuse the request (400, or 422 for patches).
    Strict,
    /// Accept it with one `Warning` header per field.
    Warn,
    /// Accept it silently.
    Ignore,
}

/// The request's `fieldValidation` (`options_kind`: CreateOptions, UpdateOptions, PatchOptions).
///
/// # Errors
/// 422 for a value other than Strict, Warn, Ignore or empty.
pub fn mode(req: &Req, options_kind: &str) -> Result<Mode, ApiError> {
    match req.param("fieldValidation").unwrap_or("") {
        "Strict" => Ok(Mode::Strict),
        "" | "Warn" => Ok(Mode::Warn),
        "Ignore" => Ok(Mode::Ignore),
        other => {
            let detail = format!(
                "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
            );
            Err(ApiError::invalid_options(
                options_kind,
                "fieldValidation",
                &detail,
            ))
        }
    }
}

/// Checks a create or update body: the warnings to send (Warn), or the 400 of Strict.
/// Protobuf bodies have no unknown fields to find, as on a real server.
///
/// # Errors
/// 422 for a bad `fieldValidation`; 400 `strict decoding error: …` under Strict.
pub fn check_body(req: &Req, kind: Kind, options_kind: &str) -> Result<Vec<String>, ApiError> {
    let mode = mode(req, options_kind)?;
    let ct = req.header(header::CONTENT_TYPE).unwrap_or("");
    if mode == Mode::Ignore || protobuf::is_protobuf(ct) {
        return Ok(Vec::new());
    }
    let problems = problems(kind, &req.body);
    if mode == Mode::Strict && !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{k} in version \"v1\" cannot be handled as a {k}: strict decoding error: {}",
            problems.join(", "),
            k = kind.kind()
        )));
    }
    Ok(problems)
}

/// Checks the object a merge or JSON patch produced, or a strategic merge patch itself: the
/// warnings (Warn), or the 422 of Strict, whose value is the patched object (merge and JSON
/// patches) or the patch in Go's `map[…]` form (strategic merge patches).
///
/// # Errors
/// 422 `patch: Invalid value: …: strict decoding error: …` under Strict.
pub fn check_patched(
    mode: Mode,
    kind: Kind,
    patched: &Value,
    strategic_patch: Option<&Value>,
) -> Result<Vec<String>, ApiError> {
    if mode == Mode::Ignore {
        return Ok(Vec::new());
    }
    // A strategic merge patch is checked itself (with its `$` directives), others by result.
    let bytes = match strategic_patch {
        Some(p) => serde_json::to_vec(p),
        None => serde_json::to_vec(patched),
    }
    .map_err(ApiError::internal)?;
    let problems = problems(kind, &bytes);
    if mode == Mode::Warn || problems.is_empty() {
        return Ok(problems);
    }
    let value = match strategic_patch {
        Some(p) => go_fmt(p),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let detail = format!(
        "Invalid value: {value:?}: strict decoding error: {}",
        problems.join(", ")
    );
    let mut e = ApiError::new(422, "Invalid", format!(" \"\" is invalid: patch: {detail}"));
    e.details = Some(Box::new(json!({"causes": [
        {"reason": "FieldValueInvalid", "message": detail, "field": "patch"}]})));
    Err(e)
}

/// Adds one `Warning: 299 - "<text>"` header per problem.
pub fn add_warnings(resp: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {w:?}");
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
}

/// `unknown field "a.b"` / `duplicate field "a.b"` for each such field of a JSON body, in
/// document order; none when the kind's schema is not at hand.
pub fn problems(kind: Kind, body: &[u8]) -> Vec<String> {
    let Some((schemas, root)) = root_schema(kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let walk = Walk {
        schemas,
        node: Node::Typed(root),
        path: String::new(),
        out: &mut out,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    // A body that is not JSON is refused later, with the JSON parser's own message.
    let _ = walk.deserialize(&mut de);
    out
}

/// The schemas of `kind`'s API group version and its root schema.
pub(crate) fn root_schema(kind: Kind) -> Option<(&'static Value, &'static Value)> {
    let (doc, name) = match kind {
        Kind::Job => ("apis/batch/v1", "io.k8s.api.batch.v1.Job".to_string()),
        k => ("api/v1", format!("io.k8s.api.core.v1.{}", k.kind())),
    };
    let schemas = openapi::v3_schemas(doc)?;
    Some((schemas, schemas.get(&name)?))
}

/// Drops the unknown fields of an accepted object, as decoding into the API's Go types does.
pub fn prune(kind: Kind, obj: &mut Value) {
    if let Some((schemas, root)) = root_schema(kind) {
        prune_node(schemas, Node::Typed(root), obj);
    }
}

fn prune_node(schemas: &Value, node: Node, v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| child(schemas, node, k).is_some());
            for (k, child_value) in m.iter_mut() {
                if let Some(n) = child(schemas, node, k) {
                    prune_node(schemas, n, child_value);
                }
            }
        }
        Value::Array(a) => {
            let n = items(schemas, node);
            for item in a {
                prune_node(schemas, n, item);
            }
        }
        _ => {}
    }
}

/// Where a JSON value sits in the schema.
#[derive(Clone, Copy)]
enum Node<'s> {
    /// Checked against this schema.
    Typed(&'s Value),
    /// Free-form (RawExtension, FieldsV1…): anything goes.
    Free,
}

/// Follows `$ref` (also inside a one-element `allOf`, as the v3 documents wrap them).
pub(crate) fn resolve<'s>(schemas: &'s Value, mut node: &'s Value) -> &'s Value {
    for _ in 0..16 {
        let r = node.get("$ref").or_else(|| node.pointer("/allOf/0/$ref"));
        match r.and_then(Value::as_str) {
            Some(r) => match schemas.get(r.trim_start_matches("#/components/schemas/")) {
                Some(next) => node = next,
                None => break,
            },
            None => break,
        }
    }
    node
}

/// The schema of `key` under `node`: Some(node) when known, None when unknown.
fn child<'s>(schemas: &'s Value, node: Node<'s>, key: &str) -> Option<Node<'s>> {
    let Node::Typed(n) = node else {
        return Some(Node::Free);
    };
    let n = resolve(schemas, n);
    if let Some(props) = n.get("properties").and_then(Value::as_object) {
        return props.get(key).map(Node::Typed);
    }
    match n.get("additionalProperties") {
        Some(v) if v.is_object() => Some(Node::Typed(v)),
        _ => Some(Node::Free),
    }
}

fn items<'s>(schemas: &'s Value, node: Node<'s>) -> Node<'s> {
    match node {
        Node::Typed(n) => resolve(schemas, n)
            .get("items")
            .map_or(Node::Free, Node::Typed),
        Node::Free => Node::Free,
    }
}

struct Walk<'s, 'o> {
    schemas: &'s Value,
    node: Node<'s>,
    path: String,
    out: &'o mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.starts_with('$') {
                // A strategic-merge directive (`$patch`, `$setElementOrder/…`), not a field.
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key.clone()) {
                self.out.push(format!("duplicate field {path:?}"));
            }
            match child(self.schemas, self.node, &key) {
                Some(node) => map.next_value_seed(Walk {
                    schemas: self.schemas,
                    node,
                    path,
                    out: &mut *self.out,
                })?,
                None => {
                    self.out.push(format!("unknown field {path:?}"));
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let node = items(self.schemas, self.node);
        let mut i = 0;
        loop {
            let walk = Walk {
                schemas: self.schemas,
                node,
                path: format!("{}[{i}]", self.path),
                out: &mut *self.out,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Go's `%v` of a decoded JSON value (`map[a:1 b:[x y]]`, keys sorted).
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_fmt(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_fmt).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0)),
    }
}

/// Go's `%v` of a float64 (JSON numbers decode to float64): `%g` with the shortest digits.
fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        let s = format!("{f:e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", e.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_duplicate_fields_are_found_in_document_order() {
        let body = br#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"a","name":"b","labels":{"x":"y"}},
            "spec":{"bogus":1,"template":{"spec":{"containers":[{"name":"c","comand":["x"],"resources":{"limits":{"cpu":"1"}}}]}}}}"#;
        assert_eq!(
            problems(Kind::Job, body),
            vec![
                r#"duplicate field "metadata.name""#,
                r#"unknown field "spec.bogus""#,
                r#"unknown field "spec.template.spec.containers[0].comand""#,
            ]
        );
        assert!(problems(Kind::ConfigMap, br#"{"data":{"a":"b"},"binaryData":{}}"#).is_empty());
        assert_eq!(
            problems(Kind::Secret, br#"{"stringDat":{}}"#),
            vec![r#"unknown field "stringDat""#]
        );
        let mut job: Value = serde_json::from_slice(body).unwrap();
        prune(Kind::Job, &mut job);
        assert!(job["spec"].get("bogus").is_none());
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["name"],
            "c"
        );
        assert!(job["spec"]["template"]["spec"]["containers"][0]
            .get("comand")
            .is_none());
    }

    #[test]
    fn go_formats_patches_as_go_prints_them() {
        let p = json!({"spec": {"b": [1000000, 1.5, "x"], "a": null, "c": true}});
        assert_eq!(go_fmt(&p), "map[spec:map[a:<nil> b:[1e+06 1.5 x] c:true]]");
        assert_eq!(go_float(100000.0), "100000");
    }
}
