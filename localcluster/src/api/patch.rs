//! PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch (merge keys for the lists
//! kubectl and kjenv patch) and JSON patch (RFC 6902).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The patch flavour, from the request's Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
}

impl PatchType {
    /// Picks the patch type from a Content-Type header.
    ///
    /// # Errors
    /// 415 for apply patches and anything else.
    pub fn from_content_type(ct: &str) -> Result<PatchType, ApiError> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/json-patch+json" => Ok(PatchType::Json),
            _ => Err(ApiError::unsupported_patch_type()),
        }
    }
}

fn patch_error(msg: impl Into<String>) -> ApiError {
    ApiError::new(422, "Invalid", msg.into())
}

/// Applies `patch` to a copy of `target`.
///
/// # Errors
/// 400 when the patch has the wrong shape, 422 when a JSON patch operation fails.
pub fn apply(ptype: PatchType, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    match ptype {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut out = target.clone();
            merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            let mut out = target.clone();
            strategic(&mut out, patch, "");
            Ok(out)
        }
        PatchType::Json => json_patch(target, patch),
    }
}

/// RFC 7386 merge.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The merge key of a list field, by the field's name (and the parent path for `ports`).
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "tolerations" => None,
        _ => None,
    }
}

/// Strategic merge: like merge patch, but lists with a merge key merge element-wise and
/// `finalizers` merge as a set; `$`-directives (`$setElementOrder/…`, `$retainKeys`) are ignored.
fn strategic(target: &mut Value, patch: &Value, _path: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (v, t.get_mut(k)) {
            (Value::Array(items), Some(Value::Array(cur))) => {
                if let Some(key) = merge_key(k) {
                    merge_list(cur, items, key);
                } else if k == "finalizers" {
                    for i in items {
                        if !cur.contains(i) {
                            cur.push(i.clone());
                        }
                    }
                } else {
                    *cur = items.iter().map(strip_directives).collect();
                }
            }
            (Value::Object(_), Some(existing)) if existing.is_object() => strategic(existing, v, k),
            _ => {
                t.insert(k.clone(), strip_directives(v));
            }
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_list(cur: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        let Some(id) = item.get(key) else {
            cur.push(strip_directives(item));
            continue;
        };
        match cur.iter().position(|c| c.get(key) == Some(id)) {
            Some(i) if delete => {
                cur.remove(i);
            }
            Some(i) => strategic(&mut cur[i], item, key),
            None if delete => {}
            None => cur.push(strip_directives(item)),
        }
    }
}

fn unescape_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

fn tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| patch_error(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest.split('/').map(unescape_token).collect())
}

fn parent_and_last<'a>(
    doc: &'a mut Value,
    path: &str,
) -> Result<(&'a mut Value, String), ApiError> {
    let mut toks = tokens(path)?;
    let last = toks
        .pop()
        .ok_or_else(|| patch_error("cannot operate on the whole document"))?;
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| patch_error(format!("doc is missing path: {path:?}")))?;
    }
    Ok((cur, last))
}

fn get_path<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, ApiError> {
    let ptr: String = tokens(path)?
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect();
    doc.pointer(&ptr)
        .ok_or_else(|| patch_error(format!("doc is missing path: {path:?}")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| patch_error("invalid array index"))?
            };
            if i > a.len() {
                return Err(patch_error(format!("index out of bounds in path {path:?}")));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(patch_error(format!("doc is missing path: {path:?}"))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = parent_and_last(doc, path)?;
    let missing = || {
        patch_error(format!(
            "unable to remove nonexistent key: {last}: missing value"
        ))
    };
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902.
fn json_patch(target: &Value, ops: &Value) -> Result<Value, ApiError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be a JSON array"))?;
    let mut doc = target.clone();
    for op in ops {
        let kind = op["op"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("JSON patch operation without \"op\""))?;
        let path = op["path"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("JSON patch operation without \"path\""))?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                ApiError::bad_request(format!("JSON patch {kind} without \"value\""))
            })
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| ApiError::bad_request(format!("JSON patch {kind} without \"from\"")))
        };
        match kind {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = get_path(&doc, from()?)?.clone();
                add(&mut doc, path, v)?;
            }
            "test" => {
                if *get_path(&doc, path)? != value()? {
                    return Err(ApiError::patch_test_failed());
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected JSON patch operation {other:?}"
                )))
            }
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch() {
        let t = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        let out = apply(
            PatchType::Merge,
            &t,
            &json!({"a": null, "b": {"c": 5}, "l": [3]}),
        )
        .unwrap();
        assert_eq!(out, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}, {"name": "b", "image": "y"}]}});
        let p = json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "spec": {"containers": [{"name": "a", "image": "z", "env": [{"name": "F", "value": "2"}]}, {"name": "c", "image": "w"}]}});
        let out = apply(PatchType::Strategic, &t, &p).unwrap();
        let cs = out["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0]["image"], "z");
        assert_eq!(cs[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(cs[1]["image"], "y");
        let deleted = apply(
            PatchType::Strategic,
            &out,
            &json!({"spec": {"containers": [{"name": "c", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(deleted["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_merges_conditions_by_type() {
        let t = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let out = apply(PatchType::Strategic, &t, &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "True"}]}})).unwrap();
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "X", "status": "True"}])
        );
    }

    #[test]
    fn json_patch_ops() {
        let t = json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["x", "y"]}});
        let ops = json!([
            {"op": "add", "path": "/metadata/labels/c~1d", "value": "e"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "z"},
            {"op": "test", "path": "/metadata/labels/a", "value": "z"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "w"},
            {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/x"},
            {"op": "move", "from": "/metadata/x", "path": "/metadata/y"}
        ]);
        let out = apply(PatchType::Json, &t, &ops).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "z", "c/d": "e"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "w"]));
        assert_eq!(out["metadata"]["y"], "z");
        let err = apply(
            PatchType::Json,
            &t,
            &json!([{"op": "test", "path": "/metadata/labels/a", "value": "no"}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml")
                .unwrap_err()
                .code,
            415
        );
    }
}
