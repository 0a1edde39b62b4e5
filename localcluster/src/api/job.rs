//! batch/v1 Job defaulting and validation (create and update), as the API server does it.

use serde_json::{json, Map, Value};

use super::validation::{
    check_quantities, default_pod_spec, label_key_error, label_value_error, validate_meta,
    validate_pod_spec,
};
use crate::error::{ApiError, Cause};
use crate::store::{meta_str, Kind};

/// The label the generated selector uses.
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The label naming the Job on its pods.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";

const INT_FIELDS: &[&str] = &[
    "parallelism",
    "completions",
    "activeDeadlineSeconds",
    "backoffLimit",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "ttlSecondsAfterFinished",
];

fn decode_error(msg: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Job in version \"v1\" cannot be handled as a Job: {msg}"
    ))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// Rejects what Go's JSON decoder would reject (wrong types), and bad quantities.
///
/// # Errors
/// 400 BadRequest `Job in version "v1" cannot be handled as a Job: …`.
pub fn check_decodable(job: &Value) -> Result<(), ApiError> {
    let spec = &job["spec"];
    if !spec.is_object() && !spec.is_null() {
        return Err(decode_error(&format!(
            "json: cannot unmarshal {} into Go struct field Job.spec of type v1.JobSpec",
            json_type(spec)
        )));
    }
    for f in INT_FIELDS {
        let v = &spec[*f];
        let fits = v
            .as_i64()
            .is_some_and(|n| i32::try_from(n).is_ok() || f.ends_with("Seconds"));
        if !v.is_null() && !fits {
            let ty = if f.ends_with("Seconds") {
                "int64"
            } else {
                "int32"
            };
            return Err(decode_error(&format!(
                "json: cannot unmarshal {} into Go struct field JobSpec.spec.{f} of type {ty}",
                json_type(v)
            )));
        }
    }
    for f in ["suspend", "manualSelector"] {
        let v = &spec[f];
        if !v.is_null() && !v.is_boolean() {
            return Err(decode_error(&format!(
                "json: cannot unmarshal {} into Go struct field JobSpec.spec.{f} of type bool",
                json_type(v)
            )));
        }
    }
    check_quantities(Kind::Job, &spec["template"]["spec"])
}

fn obj_mut<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !parent.is_object() {
        *parent = json!({});
    }
    let root = parent.as_object_mut().expect("object ensured above");
    let child = root.entry(key).or_insert_with(|| json!({}));
    if !child.is_object() {
        *child = json!({});
    }
    child.as_object_mut().expect("object ensured above")
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

/// Applies the Job defaults; `metadata.name` and `metadata.uid` must already be set.
/// Returns the selector the user supplied, if it differs from the generated one (an error
/// unless `manualSelector`).
pub fn default_job(job: &mut Value) -> Option<Value> {
    let name = meta_str(job, "name").to_string();
    let uid = meta_str(job, "uid").to_string();
    let spec = obj_mut(job, "spec");
    let has_p = spec.get("parallelism").is_some_and(|v| !v.is_null());
    let has_c = spec.get("completions").is_some_and(|v| !v.is_null());
    if !has_p && !has_c {
        spec.insert("completions".into(), json!(1));
    }
    if !has_p {
        spec.insert("parallelism".into(), json!(1));
    }
    // With backoffLimitPerIndex the global limit is off unless set (kube-apiserver: MaxInt32).
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());
    set_default(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "manualSelector", json!(false));
    let has_pfp = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
    set_default(
        spec,
        "podReplacementPolicy",
        json!(if has_pfp {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);

    let template = spec.entry("template").or_insert_with(|| json!({}));
    let tmeta = obj_mut(template, "metadata");
    let labels = tmeta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    if let Some(l) = labels.as_object_mut() {
        if !manual {
            set_default(l, CONTROLLER_UID, json!(uid));
            set_default(l, JOB_NAME, json!(name));
            set_default(l, "controller-uid", json!(uid));
            set_default(l, "job-name", json!(name));
        }
    }
    let template_labels = labels.clone();
    if let Some(pod_spec) = template.get_mut("spec") {
        default_pod_spec(pod_spec, false);
    }

    let mut user_selector = None;
    if !manual {
        let generated = json!({"matchLabels": {CONTROLLER_UID: uid}});
        if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
            if *sel != generated {
                user_selector = Some(sel.clone());
            }
        }
        spec.insert("selector".into(), generated);
    }
    let meta = obj_mut(job, "metadata");
    let empty = meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    if empty {
        meta.insert("labels".into(), template_labels);
    }
    user_selector
}

fn nonneg(spec: &Value, field: &str, causes: &mut Vec<Cause>) {
    if spec[field].as_i64().is_some_and(|v| v < 0) {
        causes.push(Cause::invalid(
            format!("spec.{field}"),
            &spec[field],
            "must be greater than or equal to 0",
        ));
    }
}

/// Whether a `matchLabels`/`matchExpressions` selector matches `labels`.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let ml = selector["matchLabels"].as_object();
    let ok_labels = ml
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let ok_exprs = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let vals: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let have = labels.get(key).and_then(Value::as_str);
            match e["operator"].as_str().unwrap_or("") {
                "In" => have.is_some_and(|h| vals.contains(&h)),
                "NotIn" => have.is_none_or(|h| !vals.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        });
    ok_labels && ok_exprs
}

/// Validates a defaulted Job.
pub fn validate_job(job: &Value, user_selector: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_meta(Kind::Job, job, &mut causes);
    let spec = &job["spec"];
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        nonneg(spec, f, &mut causes);
    }
    let mode = spec["completionMode"].as_str().unwrap_or("");
    if mode != "NonIndexed" && mode != "Indexed" {
        causes.push(Cause::not_supported(
            "spec.completionMode",
            &spec["completionMode"],
            &["NonIndexed", "Indexed"],
        ));
    } else if mode == "Indexed" && spec["completions"].is_null() {
        causes.push(Cause::required(
            "spec.completions",
            "when completion mode is Indexed",
        ));
    }
    let prp = spec["podReplacementPolicy"].as_str().unwrap_or("");
    if prp != "TerminatingOrFailed" && prp != "Failed" {
        causes.push(Cause::not_supported(
            "spec.podReplacementPolicy",
            &spec["podReplacementPolicy"],
            &["Failed", "TerminatingOrFailed"],
        ));
    }
    if let Some(sel) = user_selector {
        causes.push(Cause::invalid(
            "spec.selector",
            sel,
            "`selector` not auto-generated",
        ));
    }
    let tlabels = &spec["template"]["metadata"]["labels"];
    if let Some(m) = tlabels.as_object() {
        for (k, v) in m {
            if let Some(e) = label_key_error(k) {
                causes.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    &json!(k),
                    &e,
                ));
            }
            if let Some(e) = v.as_str().and_then(label_value_error) {
                causes.push(Cause::invalid("spec.template.metadata.labels", v, &e));
            }
        }
    }
    if spec["manualSelector"].as_bool() == Some(true) {
        let sel = &spec["selector"];
        if sel.is_null() {
            causes.push(Cause::required("spec.selector", ""));
        } else if !selector_matches(sel, tlabels) {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                tlabels,
                "`selector` does not match template `labels`",
            ));
        }
    }
    validate_pod_spec(
        &spec["template"]["spec"],
        "spec.template.spec",
        true,
        &mut causes,
    );
    causes
}

/// Immutability checks of a Job update (after defaulting the new object).
pub fn validate_job_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if old["spec"]["suspend"] == true {
        suspended_template_update(old, new, &mut causes);
    }
    for field in ["selector", "template", "completionMode"] {
        if field == "template" && old["spec"]["suspend"] == true {
            continue;
        }
        if old["spec"][field] != new["spec"][field] {
            causes.push(Cause::invalid(
                format!("spec.{field}"),
                &new["spec"][field],
                "field is immutable",
            ));
        }
    }
    if old["spec"]["completions"] != new["spec"]["completions"]
        && new["spec"]["completionMode"] != "Indexed"
    {
        causes.push(Cause::invalid(
            "spec.completions",
            &new["spec"]["completions"],
            "field is immutable",
        ));
    }
    causes
}

/// A suspended Job's template may change its scheduling directives (labels, annotations,
/// nodeSelector, tolerations, schedulingGates, node affinity) and its containers' resources;
/// anything else is `spec.template.spec: field is immutable` (kube-apiserver v1.36+).
fn suspended_template_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t["metadata"].as_object_mut() {
            m.remove("labels");
            m.remove("annotations");
        }
        if let Some(spec) = t["spec"].as_object_mut() {
            for f in ["nodeSelector", "tolerations", "schedulingGates"] {
                spec.remove(f);
            }
            if let Some(a) = spec.get_mut("affinity").and_then(Value::as_object_mut) {
                a.remove("nodeAffinity");
                if a.is_empty() {
                    spec.remove("affinity");
                }
            }
            for list in ["containers", "initContainers"] {
                for c in spec
                    .get_mut(list)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("resources");
                    }
                }
            }
        }
        t
    };
    let (a, b) = (
        strip(&old["spec"]["template"]),
        strip(&new["spec"]["template"]),
    );
    if a == b {
        return;
    }
    let (field, value) = if a["spec"] != b["spec"] {
        ("spec.template.spec", &new["spec"]["template"]["spec"])
    } else {
        ("spec.template", &new["spec"]["template"])
    };
    causes.push(Cause::invalid(field, value, "field is immutable"));
}

/// Defaults and validates a Job for create (name and uid already set).
///
/// # Errors
/// 400 for undecodable input, 422 Invalid with causes.
pub fn prepare_create(job: &mut Value) -> Result<(), ApiError> {
    check_decodable(job)?;
    let user_selector = default_job(job);
    let causes = validate_job(job, user_selector.as_ref());
    if !causes.is_empty() {
        return Err(ApiError::invalid(Kind::Job, meta_str(job, "name"), causes));
    }
    Ok(())
}

/// Defaults and validates a Job update (`new` carries the old identity fields).
///
/// # Errors
/// 400 for undecodable input, 422 Invalid with causes.
pub fn prepare_update(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    check_decodable(new)?;
    let user_selector = default_job(new);
    let mut causes = validate_job(new, user_selector.as_ref());
    causes.extend(validate_job_update(old, new));
    if !causes.is_empty() {
        return Err(ApiError::invalid(Kind::Job, meta_str(new, "name"), causes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: Value) -> Value {
        json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u1"}, "spec": spec})
    }

    fn template(restart: &str) -> Value {
        json!({"spec": {"restartPolicy": restart, "containers": [{"name": "main", "image": "python:3.12", "command": ["true"]}]}})
    }

    #[test]
    fn defaults() {
        let mut j = job(json!({"template": template("Never")}));
        prepare_create(&mut j).unwrap();
        let s = &j["spec"];
        assert_eq!(
            (
                s["completions"].clone(),
                s["parallelism"].clone(),
                s["backoffLimit"].clone()
            ),
            (json!(1), json!(1), json!(6))
        );
        assert_eq!(
            s["selector"],
            json!({"matchLabels": {CONTROLLER_UID: "u1"}})
        );
        assert_eq!(s["template"]["metadata"]["labels"]["job-name"], "pi");
        assert_eq!(j["metadata"]["labels"][JOB_NAME], "pi");
        assert_eq!(s["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["podReplacementPolicy"], "TerminatingOrFailed");

        let mut only_c = job(json!({"completions": 3, "template": template("Never")}));
        prepare_create(&mut only_c).unwrap();
        assert_eq!(only_c["spec"]["parallelism"], 1);
        let mut only_p = job(json!({"parallelism": 3, "template": template("Never")}));
        prepare_create(&mut only_p).unwrap();
        assert!(only_p["spec"]["completions"].is_null());
    }

    #[test]
    fn restart_policy_messages() {
        let mut j = job(json!({"template": template("Always")}));
        let e = prepare_create(&mut j).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Job.batch \"pi\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        );
        assert_eq!(e.details.as_ref().unwrap()["kind"], "Job");
        let mut j = job(json!({"template": template("Sometimes")}));
        let e = prepare_create(&mut j).unwrap_err();
        assert!(
            e.message.contains(
                "Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\""
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn several_errors_are_bracketed() {
        let mut j = job(
            json!({"parallelism": -1, "template": {"spec": {"restartPolicy": "Never", "containers": []}}}),
        );
        let e = prepare_create(&mut j).unwrap_err();
        assert!(
            e.message.starts_with("Job.batch \"pi\" is invalid: ["),
            "{}",
            e.message
        );
        assert_eq!(e.details.unwrap()["causes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_types_and_quantities_are_400() {
        let mut j = job(json!({"parallelism": "two", "template": template("Never")}));
        assert_eq!(prepare_create(&mut j).unwrap_err().code, 400);
        let mut t = template("Never");
        t["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "lots"}});
        let mut j = job(json!({"template": t}));
        assert_eq!(prepare_create(&mut j).unwrap_err().code, 400);
    }

    #[test]
    fn user_selector_needs_manual_selector() {
        let mut j =
            job(json!({"selector": {"matchLabels": {"a": "b"}}, "template": template("Never")}));
        let e = prepare_create(&mut j).unwrap_err();
        assert!(
            e.message.contains("`selector` not auto-generated"),
            "{}",
            e.message
        );
    }

    #[test]
    fn template_is_immutable() {
        let mut old = job(json!({"template": template("Never")}));
        prepare_create(&mut old).unwrap();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        let e = prepare_update(&old, &mut new).unwrap_err();
        assert!(
            e.message.contains("spec.template: Invalid value"),
            "{}",
            e.message
        );
        assert!(e.message.contains("field is immutable"));
    }
}
