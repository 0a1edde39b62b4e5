//! `as=Table` answers (what `kubectl get` prints), column for column as kube-apiserver's
//! printers (pkg/printers/internalversion): Jobs, Pods, Namespaces, Secrets, ConfigMaps, Events,
//! with the `-o wide` columns (priority 1) in every row as the server sends them.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::store::{meta_str, Kind};

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// kubectl's short human duration (`45s`, `3m12s`, `17m`, `5h3m`, `20h`, `3d4h`, `12d`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        let rest = s % 60;
        if rest == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rest}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let rest = m % 60;
        if rest == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rest}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        let rest = h % 24;
        if rest == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rest}h")
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    match parse_time(&obj["metadata"]["creationTimestamp"]) {
        Some(t) => human_duration((Utc::now() - t).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, format: &str, description: &str, priority: u8) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority})
}

/// The age of a timestamp field as the printers show it (`<unknown>` when unset).
fn since(v: &Value) -> String {
    match parse_time(v) {
        Some(t) => human_duration((Utc::now() - t).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn has_condition(o: &Value, ty: &str) -> bool {
    o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == ty && c["status"] == "True")
}

/// The Job's STATUS cell, in kube-apiserver's order of precedence.
fn job_status(o: &Value) -> &'static str {
    if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if !o["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// Container names and images, comma-separated (the `-o wide` CONTAINERS/IMAGES cells).
fn container_cells(containers: &Value) -> (String, String) {
    let list = containers.as_array().map(Vec::as_slice).unwrap_or_default();
    let names: Vec<&str> = list
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    let images: Vec<&str> = list
        .iter()
        .map(|c| c["image"].as_str().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

/// apimachinery's `FormatLabelSelector`: requirements sorted by key, `<none>` when empty.
pub fn format_label_selector(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("").to_string();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".into(),
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    let text: Vec<String> = reqs.into_iter().map(|(_, t)| t).collect();
    if text.is_empty() {
        "<none>".into()
    } else {
        text.join(",")
    }
}

fn job_cells(o: &Value) -> Vec<Value> {
    let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
    let completions = match o["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let p = o["spec"]["parallelism"].as_i64().unwrap_or(0);
            if p > 1 {
                format!("{succeeded}/1 of {p}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match parse_time(&o["status"]["startTime"]) {
        Some(start) => {
            let end = parse_time(&o["status"]["completionTime"]).unwrap_or_else(Utc::now);
            human_duration((end - start).num_seconds())
        }
        None => String::new(),
    };
    let (names, images) = container_cells(&o["spec"]["template"]["spec"]["containers"]);
    vec![
        json!(meta_str(o, "name")),
        json!(job_status(o)),
        json!(completions),
        json!(duration),
        json!(age(o)),
        json!(names),
        json!(images),
        json!(format_label_selector(&o["spec"]["selector"])),
    ]
}

/// The STATUS of one container status when it says more than the phase (`None` otherwise),
/// and whether it is a ready running container.
fn container_reason(s: &Value) -> (Option<String>, bool) {
    let waiting = &s["state"]["waiting"];
    let terminated = &s["state"]["terminated"];
    if let Some(r) = waiting["reason"].as_str().filter(|r| !r.is_empty()) {
        return (Some(r.to_string()), false);
    }
    if terminated.is_object() {
        let reason = match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None => match terminated["signal"].as_i64().filter(|s| *s != 0) {
                Some(sig) => format!("Signal:{sig}"),
                None => format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0)),
            },
        };
        return (Some(reason), false);
    }
    (
        None,
        s["ready"] == true && s["state"]["running"].is_object(),
    )
}

/// The pod's READY, STATUS and RESTARTS cells (main containers; kube-apiserver's `printPod`).
fn pod_state(o: &Value) -> (String, String, String) {
    let status = &o["status"];
    let mut reason = status["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .or_else(|| status["phase"].as_str())
        .unwrap_or("")
        .to_string();
    let conditions = status["conditions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let statuses = status["containerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (mut ready, mut restarts, mut has_running) = (0, 0, false);
    let (mut last_restart, mut error_reason) = (None, None::<String>);
    for s in statuses.iter().rev() {
        restarts += s["restartCount"].as_i64().unwrap_or(0);
        if let Some(t) = parse_time(&s["lastState"]["terminated"]["finishedAt"]) {
            last_restart = last_restart.max(Some(t));
        }
        let (r, running) = container_reason(s);
        if let Some(r) = r {
            if s["state"]["terminated"]["exitCode"].as_i64().unwrap_or(0) != 0 {
                error_reason = Some(r.clone());
            }
            reason = r;
        } else if running {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" {
        let pod_ready = conditions
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if has_running && pod_ready {
            reason = "Running".into();
        } else if let Some(e) = error_reason {
            reason = e;
        } else if has_running {
            reason = "NotReady".into();
        }
    }
    let terminal = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
    if !o["metadata"]["deletionTimestamp"].is_null() {
        if status["reason"] == "NodeLost" {
            reason = "Unknown".into();
        } else if !terminal {
            reason = "Terminating".into();
        }
    }
    let restarts = match last_restart {
        Some(t) if restarts != 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration((Utc::now() - t).num_seconds())
            )
        }
        _ => restarts.to_string(),
    };
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    (format!("{ready}/{total}"), reason, restarts)
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let (ready, status, restarts) = pod_state(o);
    let or_none = |v: &Value| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("<none>")
            .to_string()
    };
    let gates = o["spec"]["readinessGates"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = o["status"]["conditions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let met = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| c["type"] == g["conditionType"])
                    .is_some_and(|c| c["status"] == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        json!(meta_str(o, "name")),
        json!(ready),
        json!(status),
        json!(restarts),
        json!(age(o)),
        json!(or_none(&o["status"]["podIPs"][0]["ip"])),
        json!(or_none(&o["spec"]["nodeName"])),
        json!(or_none(&o["status"]["nominatedNodeName"])),
        json!(gates),
    ]
}

/// The Event printer's cells (wide: every column).
fn event_cells(o: &Value) -> Vec<Value> {
    let first = if parse_time(&o["firstTimestamp"]).is_some() {
        since(&o["firstTimestamp"])
    } else {
        since(&o["eventTime"])
    };
    let mut last = if parse_time(&o["lastTimestamp"]).is_some() {
        since(&o["lastTimestamp"])
    } else {
        first.clone()
    };
    let mut count = o["count"].as_i64().unwrap_or(0);
    if o["series"].is_object() {
        last = since(&o["series"]["lastObservedTime"]);
        count = o["series"]["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = &o["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or("").to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let nonempty = |a: &Value, b: &Value| {
        a.as_str()
            .filter(|s| !s.is_empty())
            .or_else(|| b.as_str())
            .unwrap_or("")
            .to_string()
    };
    let component = nonempty(&o["source"]["component"], &o["reportingComponent"]);
    let instance = nonempty(&o["source"]["host"], &o["reportingInstance"]);
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(o["type"].as_str().unwrap_or("")),
        json!(o["reason"].as_str().unwrap_or("")),
        json!(target),
        json!(involved["fieldPath"].as_str().unwrap_or("")),
        json!(source),
        json!(o["message"].as_str().unwrap_or("").trim()),
        json!(first),
        json!(count),
        json!(meta_str(o, "name")),
    ]
}

fn data_len(v: &Value) -> i64 {
    v.as_object().map_or(0, |m| m.len() as i64)
}

/// A column: name, format, description, priority (1 = shown with `-o wide` only).
type Column = (&'static str, &'static str, &'static str, u8);

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const NAME: Column = ("Name", "name", NAME_DOC, 0);
const AGE: Column = (
    "Age",
    "",
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    0,
);
const JOB_COLUMNS: [Column; 8] = [
    NAME,
    ("Status", "", "Status of the job.", 0),
    (
        "Completions",
        "",
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
        0,
    ),
    ("Duration", "", "Time required to complete the job.", 0),
    AGE,
    ("Containers", "", "Names of each container in the template.", 1),
    ("Images", "", "Images referenced by each container in the template.", 1),
    (
        "Selector",
        "",
        "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
    ),
];
const POD_COLUMNS: [Column; 9] = [
    NAME,
    ("Ready", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
    ("Status", "", "The aggregate status of the containers in this pod.", 0),
    (
        "Restarts",
        "",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        0,
    ),
    AGE,
    (
        "IP",
        "",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
        1,
    ),
    (
        "Node",
        "",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
        1,
    ),
    (
        "Nominated Node",
        "",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
        1,
    ),
    (
        "Readiness Gates",
        "",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
        1,
    ),
];
const NAMESPACE_COLUMNS: [Column; 3] =
    [NAME, ("Status", "", "The status of the namespace", 0), AGE];
const SECRET_COLUMNS: [Column; 4] = [
    NAME,
    (
        "Type",
        "",
        "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
        0,
    ),
    (
        "Data",
        "",
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
        0,
    ),
    AGE,
];
const CONFIGMAP_COLUMNS: [Column; 3] = [
    NAME,
    (
        "Data",
        "",
        "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
        0,
    ),
    AGE,
];
const EVENT_COLUMNS: [Column; 10] = [
    ("Last Seen", "", "The time at which the most recent occurrence of this event was recorded.", 0),
    ("Type", "", "Type of this event (Normal, Warning), new types could be added in the future", 0),
    (
        "Reason",
        "",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        0,
    ),
    ("Object", "", "The object that this event is about.", 0),
    (
        "Subobject",
        "",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
        1,
    ),
    ("Source", "", "The component reporting this event. Should be a short machine understandable string.", 1),
    ("Message", "", "A human-readable description of the status of this operation.", 0),
    ("First Seen", "", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
    ("Count", "", "The number of times this event has occurred.", 1),
    ("Name", "name", NAME_DOC, 1),
];

/// The `columnDefinitions` kube-apiserver's printers give this kind.
fn columns(kind: Kind) -> Vec<Value> {
    let spec: &[Column] = match kind {
        Kind::Job => &JOB_COLUMNS,
        Kind::Pod => &POD_COLUMNS,
        Kind::Namespace => &NAMESPACE_COLUMNS,
        Kind::Secret => &SECRET_COLUMNS,
        Kind::ConfigMap => &CONFIGMAP_COLUMNS,
        Kind::Event => &EVENT_COLUMNS,
    };
    spec.iter()
        .map(|(name, format, description, priority)| col(name, format, description, *priority))
        .collect()
}

/// The row conditions of a finished pod (`Completed`, as kube-apiserver marks them).
fn row_conditions(kind: Kind, o: &Value) -> Option<Value> {
    let (reason, message) = match (kind, o["status"]["phase"].as_str()) {
        (Kind::Pod, Some("Succeeded")) => ("Succeeded", "The pod has completed successfully."),
        (Kind::Pod, Some("Failed")) => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// One row: the kind's cells and the object's metadata.
fn row(kind: Kind, o: &Value) -> Value {
    let cells = match kind {
        Kind::Job => job_cells(o),
        Kind::Pod => pod_cells(o),
        Kind::Event => event_cells(o),
        Kind::Namespace => vec![
            json!(meta_str(o, "name")),
            json!(o["status"]["phase"].as_str().unwrap_or("")),
            json!(age(o)),
        ],
        Kind::Secret => vec![
            json!(meta_str(o, "name")),
            json!(o["type"].as_str().unwrap_or("")),
            json!(data_len(&o["data"])),
            json!(age(o)),
        ],
        Kind::ConfigMap => vec![
            json!(meta_str(o, "name")),
            json!(data_len(&o["data"]) + data_len(&o["binaryData"])),
            json!(age(o)),
        ],
    };
    let mut r = json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
    });
    if let Some(c) = row_conditions(kind, o) {
        r["conditions"] = c;
    }
    r
}

/// A `meta.k8s.io/v1` Table of `objects` (rows carry PartialObjectMetadata). A list's
/// Table carries the list's `rv`; a Table of one object (`rv` None) carries the object's.
pub fn table(kind: Kind, objects: &[Value], rv: Option<u64>) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(kind, o)).collect();
    let mut meta = json!({});
    match (rv, objects) {
        (Some(rv), _) => meta["resourceVersion"] = json!(rv.to_string()),
        (None, [one]) if one["metadata"]["resourceVersion"].is_string() => {
            meta["resourceVersion"] = one["metadata"]["resourceVersion"].clone();
        }
        _ => {}
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns(kind), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(1200), "20m");
        assert_eq!(human_duration(4 * 3600 + 120), "4h2m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn job_rows() {
        let j = json!({"metadata": {"name": "pi", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"completions": 1}, "status": {"succeeded": 1, "startTime": "2020-01-01T00:00:00Z", "completionTime": "2020-01-01T00:00:07Z"}});
        let t = table(Kind::Job, &[j], Some(3));
        assert_eq!(t["rows"][0]["cells"][1], "Running");
        assert_eq!(t["rows"][0]["cells"][2], "1/1");
        assert_eq!(t["rows"][0]["cells"][3], "7s");
        assert_eq!(t["metadata"]["resourceVersion"], "3");
    }
}

#[cfg(test)]
mod printer_tests {
    use super::*;

    #[test]
    fn selectors_print_sorted() {
        let s = json!({"matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}, {"key": "0", "operator": "DoesNotExist"}]});
        assert_eq!(format_label_selector(&s), "!0,a=1,b=2,c in (x,y)");
        assert_eq!(format_label_selector(&Value::Null), "<none>");
    }

    #[test]
    fn job_status_and_wide_cells() {
        let j = json!({"metadata": {"name": "j"}, "spec": {"selector": {"matchLabels": {"x": "y"}},
            "template": {"spec": {"containers": [{"name": "a", "image": "i1"}, {"name": "b", "image": "i2"}]}}},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        let cells = &table(Kind::Job, &[j], None)["rows"][0]["cells"];
        assert_eq!(cells[1], "Suspended");
        assert_eq!(cells[5], "a,b");
        assert_eq!(cells[6], "i1,i2");
        assert_eq!(cells[7], "x=y");
    }

    #[test]
    fn pod_and_event_cells() {
        let p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "m"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}});
        let t = table(Kind::Pod, &[p], None);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "p",
                "0/1",
                "Error",
                "0",
                "<unknown>",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Failed");
        let e = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Job", "name": "j"},
            "type": "Normal", "reason": "R", "message": " m ", "source": {"component": "c"}});
        let t = table(Kind::Event, &[e], None);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "<unknown>",
                "Normal",
                "R",
                "job/j",
                "",
                "c",
                "m",
                "<unknown>",
                1,
                "e"
            ])
        );
    }
}
