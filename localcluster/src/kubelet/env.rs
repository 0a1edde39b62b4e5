//! A container's environment as the kubelet builds it: `envFrom`, `env` with `value`,
//! `valueFrom` (`secretKeyRef`, `configMapKeyRef`, `fieldRef`, `resourceFieldRef`) and
//! `$(VAR)` expansion.

use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;

use crate::store::Kind;

/// The ordered environment of a container, later entries overriding earlier ones.
pub type Env = Vec<(String, String)>;

/// The Secrets and ConfigMaps a container refers to, as read from the API (`None`: missing).
pub type Objects = HashMap<(Kind, String), Option<Value>>;

/// The Secrets and ConfigMaps (kind, name) a container's `envFrom` and `env` refer to.
pub fn references(container: &Value) -> Vec<(Kind, String)> {
    let mut out: Vec<(Kind, String)> = Vec::new();
    let mut add = |kind, sel: &Value| {
        if let Some(name) = sel["name"].as_str() {
            if !out.iter().any(|(k, n)| *k == kind && n == name) {
                out.push((kind, name.to_owned()));
            }
        }
    };
    for from in container["envFrom"].as_array().into_iter().flatten() {
        add(Kind::Secret, &from["secretRef"]);
        add(Kind::ConfigMap, &from["configMapRef"]);
    }
    for e in container["env"].as_array().into_iter().flatten() {
        add(Kind::Secret, &e["valueFrom"]["secretKeyRef"]);
        add(Kind::ConfigMap, &e["valueFrom"]["configMapKeyRef"]);
    }
    out
}

/// Expands `$(NAME)` references with `lookup` as Kubernetes does: `$$` is a literal `$`, an
/// unknown name is left as written.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Reads `key` of a Secret (`data`, base64) or ConfigMap (`data`/`binaryData`).
///
/// `Ok(None)` means "missing but optional".
fn lookup_key(
    objects: &Objects,
    ns: &str,
    kind: Kind,
    sel: &Value,
    key: Option<&str>,
) -> Result<Option<KeyData>, String> {
    let name = sel["name"].as_str().unwrap_or("");
    let optional = sel["optional"].as_bool().unwrap_or(false);
    let (what, what_cap) = match kind {
        Kind::Secret => ("secret", "Secret"),
        _ => ("configmap", "ConfigMap"),
    };
    let Some(obj) = objects
        .get(&(kind, name.to_owned()))
        .and_then(Option::as_ref)
    else {
        return if optional {
            Ok(None)
        } else {
            Err(format!("{what} \"{name}\" not found"))
        };
    };
    let decoded = decode_data(kind, obj);
    match key {
        None => Ok(Some(KeyData::All(decoded))),
        Some(k) => match decoded.into_iter().find(|(dk, _)| dk == k) {
            Some((_, v)) => Ok(Some(KeyData::One(v))),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {k} in {what_cap} {ns}/{name}")),
        },
    }
}

enum KeyData {
    One(String),
    All(Vec<(String, String)>),
}

/// The decoded key/value pairs of a Secret or ConfigMap.
fn decode_data(kind: Kind, obj: &Value) -> Vec<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let decode = |v: &Value| {
        v.as_str()
            .and_then(|s| b64.decode(s).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let value = if kind == Kind::Secret {
                decode(v)
            } else {
                v.as_str().map(str::to_owned)
            };
            if let Some(value) = value {
                out.push((k.clone(), value));
            }
        }
    }
    // Secrets created with stringData, in case the API server kept it; ConfigMap binaryData.
    let extra = if kind == Kind::Secret {
        "stringData"
    } else {
        "binaryData"
    };
    if let Some(data) = obj[extra].as_object() {
        for (k, v) in data {
            let value = if kind == Kind::Secret {
                v.as_str().map(str::to_owned)
            } else {
                decode(v)
            };
            if let Some(value) = value {
                out.retain(|(ok, _)| ok != k);
                out.push((k.clone(), value));
            }
        }
    }
    out
}

/// `fieldRef.fieldPath` of the downward API.
pub fn field_ref(pod: &Value, path: &str) -> Result<String, String> {
    let meta = &pod["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let quoted = |prefix: &str| -> Option<String> {
        let inner = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(inner.to_owned())
    };
    Ok(match path {
        "metadata.name" => s(&meta["name"]),
        "metadata.namespace" => s(&meta["namespace"]),
        "metadata.uid" => s(&meta["uid"]),
        "spec.nodeName" => s(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => {
            let sa = s(&pod["spec"]["serviceAccountName"]);
            if sa.is_empty() {
                "default".into()
            } else {
                sa
            }
        }
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => "127.0.0.1".into(),
        _ => {
            if let Some(k) = quoted("metadata.labels['") {
                s(&meta["labels"][k.as_str()])
            } else if let Some(k) = quoted("metadata.annotations['") {
                s(&meta["annotations"][k.as_str()])
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    })
}

/// `resourceFieldRef` (`limits.cpu`, `requests.memory`, …), rounded up in `divisor` units.
/// A missing limit falls back to what the machine has, as a real node's allocatable.
fn resource_ref(container: &Value, sel: &Value) -> Result<String, String> {
    let resource = sel["resource"].as_str().unwrap_or("");
    let (section, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {resource}"))?;
    let divisor = crate::resources::parse_quantity(&sel["divisor"])
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    let given = crate::resources::parse_quantity(&container["resources"][section][name]);
    let value = match (given, name) {
        (Some(v), _) => v,
        (None, "cpu") => std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        (None, "memory") => 8.0 * 1024.0 * 1024.0 * 1024.0,
        (None, _) => 0.0,
    };
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

/// Builds the environment the container spec asks for, in order (`envFrom` first, then
/// `env`), expanding `$(VAR)` in `env` values against what was defined before.
///
/// # Errors
///
/// The message of a `CreateContainerConfigError` when a referenced Secret, ConfigMap or key
/// is missing and not optional, or a `fieldRef` is unsupported.
pub fn resolve(objects: &Objects, pod: &Value, container: &Value) -> Result<Env, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut env: Env = Vec::new();
    let set = |env: &mut Env, k: String, v: String| {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    };
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        let source = if from.get("secretRef").is_some() {
            Some((Kind::Secret, &from["secretRef"]))
        } else if from.get("configMapRef").is_some() {
            Some((Kind::ConfigMap, &from["configMapRef"]))
        } else {
            None
        };
        if let Some((kind, sel)) = source {
            if let Some(KeyData::All(pairs)) = lookup_key(objects, ns, kind, sel, None)? {
                for (k, v) in pairs {
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            let defined: HashMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Some(expand(v, &|n| defined.get(n).map(|s| (*s).to_owned())))
        } else if let Some(from) = e.get("valueFrom") {
            if from.get("secretKeyRef").is_some() {
                let sel = &from["secretKeyRef"];
                one(lookup_key(
                    objects,
                    ns,
                    Kind::Secret,
                    sel,
                    sel["key"].as_str(),
                )?)
            } else if from.get("configMapKeyRef").is_some() {
                let sel = &from["configMapKeyRef"];
                one(lookup_key(
                    objects,
                    ns,
                    Kind::ConfigMap,
                    sel,
                    sel["key"].as_str(),
                )?)
            } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
                Some(field_ref(pod, path)?)
            } else if from.get("resourceFieldRef").is_some() {
                Some(resource_ref(container, &from["resourceFieldRef"])?)
            } else {
                Some(String::new())
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            set(&mut env, name.to_owned(), v);
        }
    }
    Ok(env)
}

fn one(d: Option<KeyData>) -> Option<String> {
    match d {
        Some(KeyData::One(v)) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion() {
        let lookup = |n: &str| (n == "A").then(|| "1".to_owned());
        assert_eq!(expand("x$(A)y", &lookup), "x1y");
        assert_eq!(expand("$(B)", &lookup), "$(B)");
        assert_eq!(expand("$$(A)", &lookup), "$(A)");
        assert_eq!(expand("$x $( end", &lookup), "$x $( end");
        assert_eq!(expand("plain", &lookup), "plain");
    }

    #[test]
    fn field_refs() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n", "uid": "u",
            "labels": {"job-name": "j"}, "annotations": {"a/b": "c"}}, "spec": {}});
        assert_eq!(field_ref(&pod, "metadata.name").as_deref(), Ok("p"));
        assert_eq!(field_ref(&pod, "metadata.namespace").as_deref(), Ok("n"));
        assert_eq!(
            field_ref(&pod, "metadata.labels['job-name']").as_deref(),
            Ok("j")
        );
        assert_eq!(
            field_ref(&pod, "metadata.annotations['a/b']").as_deref(),
            Ok("c")
        );
        assert_eq!(field_ref(&pod, "status.podIP").as_deref(), Ok("127.0.0.1"));
        assert_eq!(field_ref(&pod, "spec.nodeName").as_deref(), Ok(""));
        assert!(field_ref(&pod, "spec.bogus").is_err());
    }

    #[test]
    fn resource_refs() {
        let c = json!({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}});
        let sel = json!({"resource": "limits.memory", "divisor": "1Mi"});
        assert_eq!(resource_ref(&c, &sel).as_deref(), Ok("64"));
        let sel = json!({"resource": "limits.cpu"});
        assert_eq!(resource_ref(&c, &sel).as_deref(), Ok("1"));
    }
}
