//! Shared validation and defaulting: names, labels, annotations, pod specs and quantities,
//! with the field-error texts of the Kubernetes API server.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, Cause};
use crate::store::Kind;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Total size allowed for all annotations of an object.
const MAX_ANNOTATIONS: usize = 256 * 1024;

fn is_label_segment(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Why `s` is not a DNS-1123 label (≤63), if it is not.
pub fn dns1123_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label_segment(s)).then(|| DNS1123_LABEL_MSG.to_string())
}

/// Why `s` is not a DNS-1123 subdomain (≤253), if it is not.
pub fn dns1123_subdomain_error(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    (s.is_empty() || !s.split('.').all(is_label_segment)).then(|| DNS1123_SUBDOMAIN_MSG.to_string())
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Why `key` is not a valid label (or annotation) key, if it is not.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(e) = dns1123_subdomain_error(p) {
            return Some(format!("prefix part {e}"));
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    (!is_label_name(name)).then(|| LABEL_NAME_MSG.to_string())
}

/// Why `v` is not a valid label value, if it is not.
pub fn label_value_error(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!v.is_empty() && !is_label_name(v)).then(|| LABEL_VALUE_MSG.to_string())
}

/// Validates `metadata` (name, namespace, labels, annotations, finalizers) into `causes`.
pub fn validate_meta(kind: Kind, obj: &Value, causes: &mut Vec<Cause>) {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    let gen = meta["generateName"].as_str().unwrap_or("");
    if name.is_empty() && gen.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !name.is_empty() {
        let err = match kind {
            Kind::Namespace => dns1123_label_error(name),
            // Events are named `<object>.<hex>`; configmaps and secrets allow subdomains too.
            _ => dns1123_subdomain_error(name),
        };
        if let Some(e) = err {
            causes.push(Cause::invalid("metadata.name", &json!(name), &e));
        }
    }
    if let Some(labels) = meta.get("labels") {
        match labels {
            Value::Object(m) => {
                for (k, v) in m {
                    if let Some(e) = label_key_error(k) {
                        causes.push(Cause::invalid("metadata.labels", &json!(k), &e));
                    }
                    match v.as_str() {
                        Some(s) => {
                            if let Some(e) = label_value_error(s) {
                                causes.push(Cause::invalid("metadata.labels", &json!(s), &e));
                            }
                        }
                        None => {
                            causes.push(Cause::invalid("metadata.labels", v, "must be a string"))
                        }
                    }
                }
            }
            Value::Null => {}
            other => causes.push(Cause::invalid(
                "metadata.labels",
                other,
                "must be a map of strings",
            )),
        }
    }
    if let Some(Value::Object(ann)) = meta.get("annotations") {
        let mut total = 0;
        for (k, v) in ann {
            if let Some(e) = label_key_error(k) {
                causes.push(Cause::invalid("metadata.annotations", &json!(k), &e));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > MAX_ANNOTATIONS {
            causes.push(Cause::too_long("metadata.annotations", MAX_ANNOTATIONS));
        }
    }
}

/// Whether `q` is a Kubernetes quantity (`100m`, `1Gi`, `1e3`, `0.5`).
pub fn is_quantity(q: &str) -> bool {
    let q = q.strip_prefix(['+', '-']).unwrap_or(q);
    let num_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(num_end);
    if !num.bytes().any(|c| c.is_ascii_digit()) || num.matches('.').count() > 1 {
        return false;
    }
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        s => match s.strip_prefix(['e', 'E']) {
            Some(exp) => {
                let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                !exp.is_empty() && exp.bytes().all(|c| c.is_ascii_digit())
            }
            None => false,
        },
    }
}

/// Checks `resources.limits/requests` quantities of every container: a bad one is a decode
/// error (400), as in Kubernetes.
///
/// # Errors
/// 400 BadRequest `<Kind> in version "v1" cannot be handled as a <Kind>: quantities must match …`.
pub fn check_quantities(kind: Kind, pod_spec: &Value) -> Result<(), ApiError> {
    for list in ["initContainers", "containers"] {
        for c in pod_spec[list].as_array().into_iter().flatten() {
            for part in ["limits", "requests"] {
                if let Some(m) = c["resources"][part].as_object() {
                    for v in m.values() {
                        let ok = match v {
                            Value::String(s) => is_quantity(s),
                            Value::Number(_) => true,
                            _ => false,
                        };
                        if !ok {
                            return Err(ApiError::bad_request(format!(
                                "{k} in version \"v1\" cannot be handled as a {k}: {QUANTITY_MSG}",
                                k = kind.kind()
                            )));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

/// Applies the pod-spec defaults (`dnsPolicy`, grace period, container pull policy, termination
/// message fields…). `restartPolicy` is defaulted to `Always` only for bare pods.
pub fn default_pod_spec(spec: &mut Value, bare_pod: bool) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    if bare_pod {
        set_default(m, "restartPolicy", json!("Always"));
        set_default(m, "serviceAccountName", json!("default"));
        set_default(m, "serviceAccount", json!("default"));
        set_default(m, "enableServiceLinks", json!(true));
        set_default(m, "priority", json!(0));
        set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let policy = if image_tag_is_latest(image) {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                set_default(c, "imagePullPolicy", json!(policy));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                for port in c
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(p) = port.as_object_mut() {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// Untagged or `:latest` images are pulled `Always`.
fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// Validates a pod spec at `path` (e.g. `spec.template.spec`); `restart_policies` are the
/// allowed values (Jobs: OnFailure/Never).
pub fn validate_pod_spec(spec: &Value, path: &str, job: bool, causes: &mut Vec<Cause>) {
    let rp = spec["restartPolicy"].as_str().unwrap_or("");
    if job {
        if rp.is_empty() || rp == "Always" {
            causes.push(Cause::required(
                format!("{path}.restartPolicy"),
                "valid values: \"OnFailure\", \"Never\"",
            ));
        } else if rp != "OnFailure" && rp != "Never" {
            causes.push(Cause::not_supported(
                format!("{path}.restartPolicy"),
                &json!(rp),
                &["OnFailure", "Never"],
            ));
        }
    } else if !matches!(rp, "Always" | "OnFailure" | "Never") {
        causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &json!(rp),
            &["Always", "OnFailure", "Never"],
        ));
    }
    let mut names = HashSet::new();
    for list in ["initContainers", "containers"] {
        let items = spec[list].as_array();
        if list == "containers" && items.is_none_or(Vec::is_empty) {
            causes.push(Cause::required(format!("{path}.containers"), ""));
        }
        for (i, c) in items.into_iter().flatten().enumerate() {
            let cp = format!("{path}.{list}[{i}]");
            let name = c["name"].as_str().unwrap_or("");
            if name.is_empty() {
                causes.push(Cause::required(format!("{cp}.name"), ""));
            } else {
                if let Some(e) = dns1123_label_error(name) {
                    causes.push(Cause::invalid(format!("{cp}.name"), &json!(name), &e));
                }
                if !names.insert(name.to_string()) {
                    causes.push(Cause::duplicate(format!("{cp}.name"), &json!(name)));
                }
            }
            if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                causes.push(Cause::required(format!("{cp}.image"), ""));
            }
            for (j, e) in c["env"].as_array().into_iter().flatten().enumerate() {
                let ep = format!("{cp}.env[{j}].name");
                let n = e["name"].as_str().unwrap_or("");
                if n.is_empty() {
                    causes.push(Cause::required(ep, ""));
                } else if n.contains('=') || !n.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    causes.push(Cause::invalid(
                        ep,
                        &json!(n),
                        "a valid environment variable name must consist only of printable ASCII characters other than '='",
                    ));
                }
            }
        }
    }
    for field in ["terminationGracePeriodSeconds", "activeDeadlineSeconds"] {
        if spec[field].as_i64().is_some_and(|v| v < 0) {
            causes.push(Cause::invalid(
                format!("{path}.{field}"),
                &spec[field],
                "must be greater than or equal to 0",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert!(dns1123_subdomain_error("a.b-c").is_none());
        assert!(dns1123_subdomain_error("A").is_some());
        assert!(dns1123_label_error("a.b").is_some());
        assert!(dns1123_label_error(&"a".repeat(64)).is_some());
        assert!(label_key_error("batch.kubernetes.io/job-name").is_none());
        assert!(label_key_error("a/b/c").is_some());
        assert!(label_key_error("/x").is_some());
        assert!(label_value_error("").is_none());
        assert!(label_value_error("-x").is_some());
    }

    #[test]
    fn quantities() {
        for ok in ["1", "100m", "1.5Gi", "1e3", "+2", "0.5", "2E-3", "1k"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "abc", "1Gb", "1..2", "Gi", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn pull_policy_defaults() {
        let mut spec = json!({"containers": [{"name": "a", "image": "python"}, {"name": "b", "image": "python:3.12"}]});
        default_pod_spec(&mut spec, false);
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    }
}
