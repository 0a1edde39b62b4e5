//! Label and field selectors (`labelSelector=`, `fieldSelector=`) as the API server parses them.

use serde_json::Value;

use super::validation::{label_key_error, label_value_error};
use crate::error::ApiError;
use crate::store::Kind;

/// One label requirement.
#[derive(Clone, Debug, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (requirements ANDed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

fn bad_label(sel: &str, why: &str) -> ApiError {
    // apimachinery's words: the requirement's error only, not the whole selector.
    let _ = sel;
    ApiError::bad_request(format!("unable to parse requirement: {why}"))
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn check_key(sel: &str, key: &str) -> Result<String, ApiError> {
    match label_key_error(key) {
        None => Ok(key.to_string()),
        Some(why) => Err(bad_label(sel, &format!("invalid label key {key:?}: {why}"))),
    }
}

fn check_value(sel: &str, v: &str) -> Result<String, ApiError> {
    match label_value_error(v) {
        None => Ok(v.to_string()),
        Some(why) => Err(bad_label(
            sel,
            &format!("invalid label value: {v:?}: {why}"),
        )),
    }
}

fn parse_set(sel: &str, rest: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let found = rest.split_whitespace().next().unwrap_or("");
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad_label(sel, &format!("found '{found}' expected: '('")))?;
    inner
        .split(',')
        .map(|v| check_value(sel, v.trim()))
        .collect()
}

impl LabelSelector {
    /// Parses `k=v,k!=v,k in (a,b),k notin (a),k,!k`.
    ///
    /// # Errors
    /// 400 BadRequest on a syntax error or an invalid key/value.
    pub fn parse(sel: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        if sel.trim().is_empty() {
            return Ok(LabelSelector { reqs });
        }
        for part in split_top(sel) {
            let p = part.trim();
            if p.is_empty() {
                return Err(bad_label(sel, "found ',', expected: identifier"));
            }
            let req = if let Some(k) = p.strip_prefix('!') {
                LabelReq::NotExists(check_key(sel, k.trim())?)
            } else if let Some((k, v)) = p.split_once("!=") {
                LabelReq::NotEq(check_key(sel, k.trim())?, check_value(sel, v.trim())?)
            } else if let Some((k, v)) = p.split_once("==") {
                LabelReq::Eq(check_key(sel, k.trim())?, check_value(sel, v.trim())?)
            } else if let Some((k, v)) = p.split_once('=') {
                LabelReq::Eq(check_key(sel, k.trim())?, check_value(sel, v.trim())?)
            } else if let Some((k, rest)) = split_word(p, "notin") {
                LabelReq::NotIn(check_key(sel, k)?, parse_set(sel, rest)?)
            } else if let Some((k, rest)) = split_word(p, "in") {
                LabelReq::In(check_key(sel, k)?, parse_set(sel, rest)?)
            } else if p.contains(char::is_whitespace) || p.contains(['(', ')', '<', '>']) {
                return Err(bad_label(
                    sel,
                    &format!("found '{p}', expected: in, notin, =, ==, !="),
                ));
            } else {
                LabelReq::Exists(check_key(sel, p)?)
            };
            reqs.push(req);
        }
        Ok(LabelSelector { reqs })
    }

    /// A selector requiring every `key=value` of a `matchLabels` map.
    pub fn from_match_labels(labels: &serde_json::Map<String, Value>) -> LabelSelector {
        LabelSelector {
            reqs: labels
                .iter()
                .map(|(k, v)| LabelReq::Eq(k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
        }
    }

    /// Whether the selector matches nothing-in-particular (everything).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// `key <word> rest` with whitespace around the word.
fn split_word<'a>(p: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut it = p.splitn(2, char::is_whitespace);
    let key = it.next()?.trim();
    let rest = it.next()?.trim_start();
    let after = rest.strip_prefix(word)?;
    if after.starts_with(char::is_whitespace) || after.starts_with('(') {
        Some((key, after))
    } else {
        None
    }
}

/// The conversion error kube-apiserver gives for a field label a kind does not know (each
/// kind's field-label conversion function has its own words).
fn unsupported_field(kind: Kind, field: &str) -> String {
    match kind {
        Kind::Job => format!("field label {field:?} not supported for Job"),
        Kind::ConfigMap => format!(
            "{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        ),
        _ => format!("field label not supported: {field}"),
    }
}

/// One field requirement.
#[derive(Clone, Debug, PartialEq)]
struct FieldReq {
    field: String,
    value: String,
    negate: bool,
}

/// A parsed field selector (requirements ANDed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<FieldReq>,
}

/// The fields each kind can be selected by (besides `metadata.name` / `metadata.namespace`).
fn supported_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Job => &["status.successful"],
        Kind::Pod => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Event => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Secret => &["type"],
        Kind::Namespace => &["status.phase"],
        Kind::ConfigMap => &[],
    }
}

/// Splits on a separator not escaped with `\`; keeps escapes for the later unescape.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Finds the first unescaped operator in a term: `!=`, `==` or `=`.
fn split_op(term: &str) -> Option<(&str, &str, bool)> {
    let b = term.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'!' if b.get(i + 1) == Some(&b'=') => return Some((&term[..i], &term[i + 2..], true)),
            b'=' if b.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], &term[i + 2..], false))
            }
            b'=' => return Some((&term[..i], &term[i + 1..], false)),
            _ => i += 1,
        }
    }
    None
}

impl FieldSelector {
    /// Parses `f=v,f==v,f!=v` (with `\,` `\=` `\\` escapes) for `kind`.
    ///
    /// # Errors
    /// 400 BadRequest on a syntax error or an unsupported field.
    pub fn parse(kind: Kind, sel: &str) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        if sel.trim().is_empty() {
            return Ok(FieldSelector { reqs });
        }
        for term in split_unescaped(sel, ',') {
            let Some((field, value, negate)) = split_op(&term) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{sel}'; can't understand '{term}'"
                )));
            };
            let field = field.trim().to_string();
            let known = field == "metadata.name"
                || field == "metadata.namespace"
                || supported_fields(kind).contains(&field.as_str());
            if !known {
                return Err(ApiError::bad_request(unsupported_field(kind, &field)));
            }
            reqs.push(FieldReq {
                field,
                value: unescape(value),
                negate,
            });
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether an object's fields satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs
            .iter()
            .all(|r| (field_value(obj, &r.field) == r.value) != r.negate)
    }

    /// The `metadata.name=` value, if the selector pins one (for a quick lookup).
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }
}

/// The string value of a selectable field, as the API server renders it.
fn field_value(obj: &Value, field: &str) -> String {
    match field {
        "status.successful" => obj
            .pointer("/status/succeeded")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        "spec.hostNetwork" => obj
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        "source" => obj
            .pointer("/source/component")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        _ => {
            let ptr = format!("/{}", field.replace('.', "/"));
            match obj.pointer(&ptr) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "namespace": "d", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "web", "tier": "x"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("missing!=v", true),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=y", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn label_parse_errors() {
        for sel in ["app=web,", "a b", "app in web", "bad key!=x", "a=b c"] {
            assert_eq!(LabelSelector::parse(sel).unwrap_err().code, 400, "{sel}");
        }
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        assert!(FieldSelector::parse(Kind::Pod, "metadata.name=n")
            .unwrap()
            .matches(&o));
        assert!(
            FieldSelector::parse(Kind::Pod, "status.phase!=Pending,metadata.namespace==d")
                .unwrap()
                .matches(&o)
        );
        assert!(!FieldSelector::parse(Kind::Pod, "spec.nodeName=x")
            .unwrap()
            .matches(&o));
        assert!(FieldSelector::parse(Kind::Pod, "spec.nodeName=")
            .unwrap()
            .matches(&o));
        assert_eq!(
            FieldSelector::parse(Kind::Job, "spec.foo=x")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            FieldSelector::parse(Kind::Job, "nonsense")
                .unwrap_err()
                .code,
            400
        );
        let esc = FieldSelector::parse(Kind::Pod, r"metadata.name=a\,b\=c").unwrap();
        assert!(esc.matches(&json!({"metadata": {"name": "a,b=c"}})));
        let job = json!({"metadata": {"name": "j"}, "status": {}});
        assert!(FieldSelector::parse(Kind::Job, "status.successful=0")
            .unwrap()
            .matches(&job));
        let ev = json!({"involvedObject": {"name": "p", "kind": "Pod"}, "reason": "Started"});
        assert!(FieldSelector::parse(
            Kind::Event,
            "involvedObject.name=p,involvedObject.kind=Pod,reason=Started"
        )
        .unwrap()
        .matches(&ev));
    }
}
