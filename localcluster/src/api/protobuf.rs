//! Protobuf bodies (`application/vnd.kubernetes.protobuf`): the `k8s\0` envelope around a
//! `runtime.Unknown`, decoded to and encoded from the JSON objects the emulator keeps. A field
//! table taken from Kubernetes' `generated.proto` files and Go struct tags
//! (`data/protobuf-schema.json`, written by `fidelity/protoschema.py`) drives both directions,
//! so every field of the served kinds converts the way the API server's Go round trip does.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use http_body_util::BodyExt;
use hyper::{header, Response};
use serde_json::{Map, Number, Value};

use super::{full, Body, Req};
use crate::error::ApiError;
use crate::kind::Kind;

/// The protobuf media type of built-in kinds.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// What every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";
const SCHEMA_JSON: &str = include_str!("../../data/protobuf-schema.json");
const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
/// Go's io.ErrUnexpectedEOF, the API server's word for a truncated protobuf body.
const EOF: &str = "unexpected EOF";
/// Deepest message nesting decoded (a hostile body cannot recurse without bound).
const MAX_DEPTH: usize = 64;

#[derive(Debug)]
enum Label {
    Optional,
    Repeated,
    Map,
}

#[derive(Debug)]
struct Field {
    number: u64,
    json: String,
    ty: String,
    label: Label,
    pointer: bool,
    omitempty: bool,
}

type Schema = HashMap<String, Vec<Field>>;
/// One row of the schema file: number, JSON name, type, label, pointer, omitempty.
type Row = (u64, String, String, String, bool, bool);

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let raw: HashMap<String, Vec<Row>> = serde_json::from_str(SCHEMA_JSON).unwrap_or_default();
        raw.into_iter()
            .map(|(name, rows)| {
                let fields = rows
                    .into_iter()
                    .map(|(number, json, ty, label, pointer, omitempty)| Field {
                        number,
                        json,
                        ty,
                        label: match label.as_str() {
                            "r" => Label::Repeated,
                            "m" => Label::Map,
                            _ => Label::Optional,
                        },
                        pointer,
                        omitempty,
                    })
                    .collect();
                (name, fields)
            })
            .collect()
    })
}

/// A request whose body is protobuf, with the body turned into the JSON it stands for (other
/// requests unchanged): the handlers only ever see JSON.
///
/// # Errors
/// 400 for a malformed protobuf body; 415 for a protobuf PATCH (no such patch type).
pub fn json_request(mut req: Req, kind: Option<Kind>) -> Result<Req, ApiError> {
    let ct = req.header(header::CONTENT_TYPE).unwrap_or("");
    if !is_protobuf(ct) || req.body.is_empty() {
        return Ok(req);
    }
    if req.method == hyper::Method::PATCH {
        return Err(ApiError::unsupported_media_type(ct));
    }
    let json = decode_body(&req.body, kind)?;
    req.body = serde_json::to_vec(&json)
        .map_err(ApiError::internal)?
        .into();
    // The Content-Type stays: field validation skips protobuf bodies, as the API server does.
    Ok(req)
}

/// A JSON response re-encoded as protobuf (status and headers kept); responses without a
/// protobuf form (Tables, plain text) stay as they are.
pub async fn protobuf_response(resp: Response<Body>) -> Response<Body> {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| encode_body(&v));
    let body = match encoded {
        Some(pb) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(MEDIA_TYPE),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            full(pb)
        }
        None => full(bytes),
    };
    Response::from_parts(parts, body)
}

/// Whether a Content-Type (or one Accept entry) names Kubernetes protobuf.
pub fn is_protobuf(media: &str) -> bool {
    media
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Whether the client lists protobuf first in `Accept` (as client-go's protobuf clients do).
pub fn accepts_protobuf_first(accept: Option<&str>) -> bool {
    accept
        .and_then(|a| a.split(',').next())
        .is_some_and(is_protobuf)
}

/// The protobuf message of an `apiVersion`/`kind` the emulator can convert.
fn message_of(api_version: &str, kind: &str) -> Option<String> {
    let candidates = match api_version {
        "v1" => vec![
            format!("k8s.io.api.core.v1.{kind}"),
            format!("{META}.{kind}"),
        ],
        "batch/v1" => vec![format!("k8s.io.api.batch.v1.{kind}")],
        "meta.k8s.io/v1" => vec![format!("{META}.{kind}")],
        // The self reviews (`api/access.rs`), which kubectl >= 1.32 sends as protobuf.
        "authorization.k8s.io/v1" => vec![format!("k8s.io.api.authorization.v1.{kind}")],
        "authentication.k8s.io/v1" => vec![format!("k8s.io.api.authentication.v1.{kind}")],
        _ => vec![],
    };
    candidates.into_iter().find(|c| schema().contains_key(c))
}

/// Decodes a protobuf request body into the JSON object a JSON client would have sent;
/// `expected` (the kind of the endpoint) fills a missing type and words the errors.
///
/// # Errors
/// 400 in kube-apiserver's words when the envelope or the message is malformed, or the kind
/// is not one served here.
pub fn decode_body(body: &[u8], expected: Option<Kind>) -> Result<Value, ApiError> {
    let want = expected.map_or("object", Kind::kind);
    let unrecognized = |e: String| {
        // The API server quotes the body's start; a Secret's never appears in an error here.
        let quoted = match expected {
            Some(Kind::Secret) => "the body of a Secret is not quoted".to_string(),
            _ => snippet(body),
        };
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {want}): {e} ({quoted})"
        ))
    };
    let Some(inner) = body.strip_prefix(MAGIC) else {
        return Err(unrecognized(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]".into(),
        ));
    };
    let (mut api_version, mut kind, raw) = unknown_parts(inner).map_err(unrecognized)?;
    if let (true, Some(k)) = (kind.is_empty(), expected) {
        kind = k.kind().to_string();
        if api_version.is_empty() {
            api_version = k.api_version().to_string();
        }
    }
    let message = message_of(&api_version, &kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no kind \"{kind}\" is registered for version \"{api_version}\""
        ))
    })?;
    let decoded = decode_message(&raw, &message, 0).map_err(|e| {
        ApiError::bad_request(format!(
            "{want} in version \"v1\" cannot be handled as a {want}: {e}"
        ))
    })?;
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    if let Value::Object(fields) = decoded {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// The body's first 30 bytes as the API server quotes them: text, or hex when binary.
fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(30)];
    let more = if body.len() > 30 { " ..." } else { "" };
    let text = std::str::from_utf8(head)
        .ok()
        .filter(|t| !t.chars().any(|c| c.is_control() && !c.is_whitespace()));
    match text {
        Some(t) => format!("{t}{more}"),
        None => {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

/// `runtime.Unknown`: (apiVersion, kind, raw).
fn unknown_parts(bytes: &[u8]) -> Result<(String, String, Vec<u8>), String> {
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), Vec::new());
    let mut r = Reader { buf: bytes, pos: 0 };
    while let Some((number, value)) = r.field()? {
        match (number, value) {
            (1, Wire::Bytes(tm)) => {
                let mut t = Reader { buf: tm, pos: 0 };
                while let Some((n, v)) = t.field()? {
                    match (n, v) {
                        (1, Wire::Bytes(b)) => api_version = String::from_utf8_lossy(b).into(),
                        (2, Wire::Bytes(b)) => kind = String::from_utf8_lossy(b).into(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b.to_vec(),
            (3, Wire::Bytes(b)) if !b.is_empty() => {
                return Err(format!(
                    "content encoding {:?} is not supported",
                    String::from_utf8_lossy(b)
                ))
            }
            _ => {}
        }
    }
    Ok((api_version, kind, raw))
}

/// One field's raw wire value.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(EOF)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err("proto: integer overflow".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or(EOF)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next (field number, value), or None at the end.
    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(fixed(self.take(8)?))),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Wire::Bytes(self.take(n)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(fixed(self.take(4)?))),
            w => return Err(format!("proto: illegal wireType {w}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

/// Decodes one message to JSON, fields in the Go struct's order, zero values dropped where
/// Go's `omitempty` would drop them.
fn decode_message(bytes: &[u8], message: &str, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("message nesting too deep".into());
    }
    let fields = schema()
        .get(message)
        .ok_or_else(|| format!("unknown message {message}"))?;
    let mut seen: Vec<Option<Value>> = fields.iter().map(|_| None).collect();
    let mut r = Reader { buf: bytes, pos: 0 };
    while let Some((number, wire)) = r.field()? {
        let Some(i) = fields.iter().position(|f| f.number == number) else {
            continue; // a field newer than the table: skipped, as Go skips unknown fields
        };
        let f = &fields[i];
        match f.label {
            Label::Optional => seen[i] = Some(decode_value(&f.ty, wire, depth)?),
            Label::Repeated => {
                let items = seen[i].get_or_insert_with(|| Value::Array(vec![]));
                push_repeated(items, &f.ty, wire, depth)?;
            }
            Label::Map => {
                let entries = seen[i].get_or_insert_with(|| Value::Object(Map::new()));
                let (k, v) = decode_entry(&f.ty, wire, depth)?;
                if let Value::Object(m) = entries {
                    m.insert(k, v);
                }
            }
        }
    }
    let mut out = Map::new();
    for (f, v) in fields.iter().zip(seen) {
        if let Some(v) = v.filter(|v| keep(f, v)) {
            out.insert(f.json.clone(), v);
        }
    }
    Ok(special_from_proto(message, Value::Object(out)))
}

/// Go's JSON of a decoded field: empty lists/maps and zero non-pointer scalars go when
/// `omitempty`.
fn keep(f: &Field, v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) if !matches!(f.label, Label::Optional) => !m.is_empty(),
        // A zero Time (null) of a non-pointer field is `omitzero` in the API's Go types.
        Value::Null => f.pointer || !f.omitempty,
        _ if f.pointer || !f.omitempty => true,
        Value::String(s) => !s.is_empty(),
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

fn push_repeated(items: &mut Value, ty: &str, wire: Wire, depth: usize) -> Result<(), String> {
    let Value::Array(list) = items else {
        return Ok(());
    };
    match (wire, is_varint(ty)) {
        // A packed list of varints.
        (Wire::Bytes(b), true) => {
            let mut r = Reader { buf: b, pos: 0 };
            while r.pos < b.len() {
                list.push(decode_value(ty, Wire::Varint(r.varint()?), depth)?);
            }
        }
        (w, _) => list.push(decode_value(ty, w, depth)?),
    }
    Ok(())
}

fn is_varint(ty: &str) -> bool {
    matches!(ty, "int32" | "int64" | "uint32" | "uint64" | "bool")
}

/// A map entry (key = 1, value = 2) of a `map<K,V>` field.
fn decode_entry(ty: &str, wire: Wire, depth: usize) -> Result<(String, Value), String> {
    let Wire::Bytes(b) = wire else {
        return Err("map entry is not length-delimited".into());
    };
    let inner = ty.trim_start_matches("map<").trim_end_matches('>');
    let (kt, vt) = inner.split_once(',').ok_or("bad map type")?;
    let (mut key, mut value) = (String::new(), None);
    let mut r = Reader { buf: b, pos: 0 };
    while let Some((n, w)) = r.field()? {
        match n {
            1 => key = value_to_key(decode_value(kt, w, depth)?),
            2 => value = Some(decode_value(vt, w, depth)?),
            _ => {}
        }
    }
    let value = value.unwrap_or_else(|| zero_of(vt));
    Ok((key, value))
}

fn value_to_key(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn zero_of(ty: &str) -> Value {
    match ty {
        "string" | "bytes" => Value::String(String::new()),
        "bool" => Value::Bool(false),
        t if is_varint(t) || t == "double" || t == "float" => Value::from(0),
        t => special_from_proto(t, Value::Object(Map::new())),
    }
}

fn decode_value(ty: &str, wire: Wire, depth: usize) -> Result<Value, String> {
    let mismatch = || format!("proto: wrong wireType for a {ty} field");
    Ok(match (ty, wire) {
        ("string", Wire::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into()),
        ("bytes", Wire::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        ("bool", Wire::Varint(v)) => Value::Bool(v != 0),
        // Truncating casts are protobuf's own rules for int32 and int64.
        ("int32", Wire::Varint(v)) => Value::from(v as i32),
        ("int64", Wire::Varint(v)) => Value::from(v as i64),
        ("uint32" | "uint64", Wire::Varint(v)) => Value::from(v),
        ("double", Wire::Fixed64(v)) => Number::from_f64(f64::from_bits(v))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ("float", Wire::Fixed32(v)) => Number::from_f64(f64::from(f32::from_bits(v)))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        (msg, Wire::Bytes(b)) if schema().contains_key(msg) => decode_message(b, msg, depth + 1)?,
        _ => return Err(mismatch()),
    })
}

/// The JSON forms of the types with their own JSON mapping (Time, Quantity, IntOrString…).
fn special_from_proto(message: &str, v: Value) -> Value {
    let short = message.rsplit('.').next().unwrap_or("");
    let int = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match (
        message.starts_with(META) || message.starts_with("k8s.io.apimachinery"),
        short,
    ) {
        (true, "Time") => time_text(int("seconds"), 0, false),
        (true, "MicroTime") => time_text(int("seconds"), int("nanos"), true),
        (true, "Duration") => Value::String(go_duration(int("duration"))),
        (true, "Quantity") => Value::String(text("string")),
        (true, "IntOrString") if int("type") == 1 => Value::String(text("strVal")),
        (true, "IntOrString") => Value::from(int("intVal")),
        (true, "RawExtension" | "FieldsV1") => {
            let key = if short == "FieldsV1" { "Raw" } else { "raw" };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(text(key))
                .unwrap_or_default();
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        }
        _ => v,
    }
}

fn time_text(seconds: i64, nanos: i64, micro: bool) -> Value {
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let Some(t) = chrono::DateTime::from_timestamp(seconds, nanos.clamp(0, 999_999_999) as u32)
    else {
        return Value::Null;
    };
    let fmt = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Value::String(t.format(fmt).to_string())
}

/// Go's `time.Duration.String()` for whole seconds and milliseconds (what the API uses).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", n as f64 / 1e6);
    }
    let secs = n as f64 / 1e9;
    let (h, rest) = ((secs / 3600.0).floor(), secs % 3600.0);
    let (m, s) = ((rest / 60.0).floor(), rest % 60.0);
    match (h > 0.0, m > 0.0 || h > 0.0) {
        (true, _) => format!("{sign}{h}h{m}m{s}s"),
        (false, true) => format!("{sign}{m}m{s}s"),
        _ => format!("{sign}{s}s"),
    }
}

/// Encodes a JSON object (with its `kind`/`apiVersion`) as a protobuf body, or None when its
/// kind has no protobuf form here (Tables, for one).
pub fn encode_body(obj: &Value) -> Option<Vec<u8>> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let message = message_of(api_version, kind)?;
    let raw = encode_message(obj, &message);
    let mut type_meta = Vec::new();
    put_bytes(&mut type_meta, 1, api_version.as_bytes());
    put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut unknown = Vec::new();
    put_bytes(&mut unknown, 1, &type_meta);
    put_bytes(&mut unknown, 2, &raw);
    put_bytes(&mut unknown, 3, b"");
    put_bytes(&mut unknown, 4, b"");
    let mut out = MAGIC.to_vec();
    out.extend(unknown);
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, number: u64, wire: u64) {
    put_varint(out, (number << 3) | wire);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, b: &[u8]) {
    put_key(out, number, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn encode_message(v: &Value, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(fields) = schema().get(message) else {
        return out;
    };
    let v = special_to_proto(message, v);
    for f in fields {
        let Some(value) = v.get(&f.json).filter(|x| !x.is_null()) else {
            continue;
        };
        match (&f.label, value) {
            (Label::Repeated, Value::Array(items)) => {
                for item in items {
                    encode_value(&mut out, f.number, &f.ty, item);
                }
            }
            (Label::Map, Value::Object(entries)) => {
                let inner = f.ty.trim_start_matches("map<").trim_end_matches('>');
                let (kt, vt) = inner.split_once(',').unwrap_or(("string", "string"));
                for (k, item) in entries {
                    let mut entry = Vec::new();
                    encode_value(&mut entry, 1, kt, &Value::String(k.clone()));
                    encode_value(&mut entry, 2, vt, item);
                    put_bytes(&mut out, f.number, &entry);
                }
            }
            (Label::Optional, _) => encode_value(&mut out, f.number, &f.ty, value),
            _ => {}
        }
    }
    out
}

fn encode_value(out: &mut Vec<u8>, number: u64, ty: &str, v: &Value) {
    let int = || {
        v.as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    match ty {
        "string" => put_bytes(out, number, value_to_key(v.clone()).as_bytes()),
        "bytes" => {
            let b = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .unwrap_or_default();
            put_bytes(out, number, &b);
        }
        "bool" => {
            put_key(out, number, 0);
            put_varint(out, u64::from(v.as_bool().unwrap_or(false)));
        }
        // Negative int32/int64 are ten-byte varints in protobuf.
        "int32" | "int64" | "uint32" | "uint64" => {
            put_key(out, number, 0);
            put_varint(out, int() as u64);
        }
        "double" => {
            put_key(out, number, 1);
            out.extend(v.as_f64().unwrap_or(0.0).to_bits().to_le_bytes());
        }
        "float" => {
            put_key(out, number, 5);
            out.extend((v.as_f64().unwrap_or(0.0) as f32).to_bits().to_le_bytes());
        }
        msg => put_bytes(out, number, &encode_message(v, msg)),
    }
}

/// The message form of the types with their own JSON mapping.
fn special_to_proto(message: &str, v: &Value) -> Value {
    let short = message.rsplit('.').next().unwrap_or("");
    if !message.starts_with("k8s.io.apimachinery") {
        return v.clone();
    }
    let text = v.as_str().unwrap_or("");
    match short {
        "Time" | "MicroTime" => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => {
                serde_json::json!({"seconds": t.timestamp(), "nanos": if short == "MicroTime" { t.timestamp_subsec_nanos() } else { 0 }})
            }
            Err(_) => serde_json::json!({}),
        },
        "Quantity" => serde_json::json!({"string": value_to_key(v.clone())}),
        "IntOrString" => match v {
            Value::String(s) => serde_json::json!({"type": 1, "strVal": s}),
            other => serde_json::json!({"type": 0, "intVal": other.as_i64().unwrap_or(0)}),
        },
        "RawExtension" | "FieldsV1" => {
            let key = if short == "FieldsV1" { "Raw" } else { "raw" };
            let raw = serde_json::to_vec(v).unwrap_or_default();
            serde_json::json!({key: base64::engine::general_purpose::STANDARD.encode(raw)})
        }
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_survives_the_round_trip() {
        let job = json!({"kind": "Job", "apiVersion": "batch/v1",
            "metadata": {"name": "j", "labels": {"a": "b"}, "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 0"],
                    "resources": {"limits": {"cpu": "500m"}}, "ports": [{"containerPort": 80}]}]}}}});
        let bytes = encode_body(&job).unwrap();
        assert!(bytes.starts_with(MAGIC));
        let back = decode_body(&bytes, None).unwrap();
        assert_eq!(back["spec"]["backoffLimit"], 0);
        assert_eq!(
            back["metadata"]["creationTimestamp"],
            "2026-01-02T03:04:05Z"
        );
        let c = &back["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["sh", "-c", "exit 0"]));
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert_eq!(c["ports"][0]["containerPort"], 80);
        assert_eq!(back["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn secrets_keep_bytes_and_bad_bodies_are_400() {
        let s = json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "data": {"k": "aGk="}});
        let back = decode_body(&encode_body(&s).unwrap(), None).unwrap();
        assert_eq!(back["data"]["k"], "aGk=");
        let e = decode_body(b"k8s\0\x0a\xff\xff", Some(Kind::ConfigMap)).unwrap_err();
        assert_eq!(e.message, "the object provided is unrecognized (must be of type ConfigMap): unexpected EOF (6b3873000affff)");
        let e = decode_body(b"k8s\0\x0a\xff\xff", Some(Kind::Secret)).unwrap_err();
        assert!(e
            .message
            .ends_with("unexpected EOF (the body of a Secret is not quoted)"));
        let e = decode_body(b"k8s\0\x0a\x04\x0a\x02v1\x12\x02zz", Some(Kind::Secret)).unwrap_err();
        assert_eq!(
            e.message,
            "Secret in version \"v1\" cannot be handled as a Secret: unexpected EOF"
        );
        assert_eq!(go_duration(90_000_000_000), "1m30s");
    }
}
