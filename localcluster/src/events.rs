//! Recording core/v1 `Event` objects for what the job controller, the scheduler and the
//! kubelet do (what `kubectl describe` and `kubectl get events` show).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::store::{Kind, Store};

/// `source.component` / `reportingComponent` of the job controller's events.
pub const JOB_CONTROLLER: &str = "job-controller";
/// `source.component` of the scheduler's events.
pub const SCHEDULER: &str = "default-scheduler";
/// `source.component` of the kubelet's events.
pub const KUBELET: &str = "kubelet";
/// The one node of the local cluster (`spec.nodeName` of scheduled pods, `source.host`).
pub const NODE_NAME: &str = "local";

/// Makes event names unique even when two events are recorded in the same nanosecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Records an Event about `involved` (a Job or a Pod as stored), choosing the reporting
/// component from the object and reason: the job controller for Jobs, the scheduler for
/// `Scheduled`/`FailedScheduling`, the kubelet otherwise. `type_` is `Normal` or `Warning`.
///
/// Events are best effort, as in Kubernetes: a failure to store one is ignored.
pub fn record(store: &Store, involved: &Value, type_: &str, reason: &str, message: &str) {
    let component = if involved["kind"] == "Job" || involved["spec"].get("template").is_some() {
        JOB_CONTROLLER
    } else if reason == "Scheduled" || reason == "FailedScheduling" {
        SCHEDULER
    } else {
        KUBELET
    };
    record_with(store, component, involved, None, type_, reason, message);
}

/// Records an Event about a container of a pod: like [`record`], with
/// `involvedObject.fieldPath` set to `spec.containers{<name>}` (or `spec.initContainers{…}`),
/// as the kubelet does for `Pulling`, `Created`, `Started`, `Killing`, `BackOff`….
pub fn record_container(
    store: &Store,
    pod: &Value,
    field_path: &str,
    type_: &str,
    reason: &str,
    message: &str,
) {
    record_with(
        store,
        KUBELET,
        pod,
        Some(field_path),
        type_,
        reason,
        message,
    );
}

/// Records an Event with an explicit reporting component and optional `fieldPath`.
pub fn record_with(
    store: &Store,
    component: &str,
    involved: &Value,
    field_path: Option<&str>,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let event = build(
        component, NODE_NAME, involved, field_path, type_, reason, message,
    );
    let _ = store.create(Kind::Event, event);
}

/// How long Events are kept (the API server's default `--event-ttl`).
pub const EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes Events last seen more than `max_age` ago, as the API server's `--event-ttl`
/// does, so a long-running cluster's memory (and watch history) is not filled with them.
pub fn sweep(store: &Store, max_age: std::time::Duration) {
    let Ok(max_age) = chrono::Duration::from_std(max_age) else {
        return;
    };
    let cutoff = chrono::Utc::now() - max_age;
    let (events, _) = store.list_arc(Kind::Event, None);
    for e in events {
        let last = e["lastTimestamp"]
            .as_str()
            .or_else(|| e["metadata"]["creationTimestamp"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if last.is_some_and(|t| t < cutoff) {
            let meta = &e["metadata"];
            let _ = store.delete(
                Kind::Event,
                meta["namespace"].as_str().unwrap_or(""),
                meta["name"].as_str().unwrap_or(""),
                &crate::store::DeleteOptions::default(),
            );
        }
    }
}

/// The Event object [`record_with`] stores; `host` is the node of kubelet events.
pub(crate) fn build(
    component: &str,
    host: &str,
    involved: &Value,
    field_path: Option<&str>,
    type_: &str,
    reason: &str,
    message: &str,
) -> Value {
    let meta = &involved["metadata"];
    let name = meta["name"].as_str().unwrap_or("unknown");
    let namespace = meta["namespace"].as_str().unwrap_or("default");
    let (kind, api_version) = match (involved["kind"].as_str(), involved["apiVersion"].as_str()) {
        (Some(k), Some(v)) => (k.to_owned(), v.to_owned()),
        // Stored objects normally carry kind/apiVersion; guess from the shape otherwise.
        _ if involved["spec"].get("template").is_some() => ("Job".into(), "batch/v1".into()),
        _ => ("Pod".into(), "v1".into()),
    };
    let now = chrono::Utc::now();
    // Kubernetes names events `<object>.<hex nanoseconds>`.
    let nanos = now.timestamp_nanos_opt().unwrap_or_default() as u64;
    let suffix = nanos.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    let stamp = crate::meta::rfc3339(now);
    let mut involved_object = json!({
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "uid": meta["uid"],
        "apiVersion": api_version,
        "resourceVersion": meta["resourceVersion"],
    });
    if let Some(fp) = field_path {
        involved_object["fieldPath"] = json!(fp);
    }
    let mut source = json!({ "component": component });
    if component == KUBELET {
        source["host"] = json!(host);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": format!("{name}.{suffix:x}"), "namespace": namespace },
        "involvedObject": involved_object,
        "reason": reason,
        "message": message,
        "type": type_,
        "source": source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": if component == KUBELET { host } else { "" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_pod_container_event() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7"}});
        let e = build(
            KUBELET,
            NODE_NAME,
            &pod,
            Some("spec.containers{main}"),
            "Normal",
            "Started",
            "Started container main",
        );
        assert_eq!(e["involvedObject"]["kind"], "Pod");
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{main}");
        assert_eq!(e["involvedObject"]["resourceVersion"], "7");
        assert_eq!(e["metadata"]["namespace"], "ns");
        assert!(e["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("p.")));
        assert_eq!(e["source"]["host"], "local");
        assert_eq!(e["count"], 1);
    }

    #[test]
    fn guesses_a_job_without_kind() {
        let job = json!({"metadata": {"name": "j", "namespace": "d"}, "spec": {"template": {}}});
        let e = build(
            JOB_CONTROLLER,
            NODE_NAME,
            &job,
            None,
            "Normal",
            "Completed",
            "Job completed",
        );
        assert_eq!(e["involvedObject"]["kind"], "Job");
        assert_eq!(e["involvedObject"]["apiVersion"], "batch/v1");
        assert!(e["involvedObject"].get("fieldPath").is_none());
    }
}
