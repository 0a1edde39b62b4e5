//! One sync of one Job: count finished pods, decide success/failure, create or delete pods,
//! write the status.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{owner_job, JobKey, TRACKING_FINALIZER};
use crate::error::ApiError;
use crate::events;
use crate::meta::{is_deleting, now_rfc3339};
use crate::store::{meta_str, DeleteOptions, Kind, Propagation};
use crate::Cluster;

const REASON_COMPLETIONS: &str = "CompletionsReached";
const MSG_COMPLETIONS: &str = "Reached expected number of succeeded pods";
const REASON_BACKOFF: &str = "BackoffLimitExceeded";
const MSG_BACKOFF: &str = "Job has reached the specified backoff limit";
const REASON_DEADLINE: &str = "DeadlineExceeded";
const MSG_DEADLINE: &str = "Job was active longer than specified deadline";

/// What the controller remembers per Job (by uid) between syncs.
#[derive(Debug, Default)]
pub(super) struct Memory {
    jobs: HashMap<String, JobMemory>,
}

#[derive(Debug, Default)]
struct JobMemory {
    /// Pods seen with the tracking finalizer and not counted yet.
    tracked: HashSet<String>,
    /// When the last failed pod was counted (for the replacement backoff).
    last_failure: Option<Instant>,
}

impl Memory {
    /// Forgets Jobs that no longer exist.
    pub(super) fn forget_missing(&mut self, store: &crate::store::Store) {
        self.jobs
            .retain(|uid, _| matches!(store.get_by_uid(uid), Some((Kind::Job, _))));
    }
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `t` plus `secs` seconds; `None` when that is not representable (a huge deadline or TTL
/// from user input means "never").
fn after(t: DateTime<Utc>, secs: i64) -> Option<DateTime<Utc>> {
    t.checked_add_signed(chrono::TimeDelta::try_seconds(secs)?)
}

/// Has the wall-clock time `t + secs` passed?
fn passed(t: DateTime<Utc>, secs: i64) -> bool {
    after(t, secs).is_some_and(|at| Utc::now() >= at)
}

/// The `Instant` at wall-clock time `t + secs` (now if already past), if representable.
fn instant_after(t: DateTime<Utc>, secs: i64) -> Option<Instant> {
    let left = (after(t, secs)? - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    Instant::now().checked_add(left)
}

fn has_finalizer(pod: &Value) -> bool {
    pod["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// Removes the tracking finalizer of a pod (which may let the store remove it).
fn release(cluster: &Cluster, pod: &Value) {
    let uid = meta_str(pod, "uid").to_owned();
    let _ = cluster.store.update(
        Kind::Pod,
        meta_str(pod, "namespace"),
        meta_str(pod, "name"),
        |o| {
            if meta_str(o, "uid") != uid {
                return Err(ApiError::not_found(Kind::Pod, &uid));
            }
            if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x != TRACKING_FINALIZER);
            }
            Ok(())
        },
    );
}

/// Releases a pod with the tracking finalizer whose Job (by uid) no longer exists.
pub(super) fn release_orphan(cluster: &Cluster, pod: &Value) {
    if !has_finalizer(pod) {
        return;
    }
    let owner_exists = owner_job(pod)
        .is_some_and(|(_, uid)| matches!(cluster.store.get_by_uid(&uid), Some((Kind::Job, _))));
    if !owner_exists {
        release(cluster, pod);
    }
}

fn condition(type_: &str, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({
        "type": type_,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

fn has_condition(status: &Value, type_: &str) -> bool {
    status["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

fn condition_of<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

fn add_condition(status: &mut Value, c: Value) {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(list) = status["conditions"].as_array_mut() {
        list.retain(|x| x["type"] != c["type"]);
        list.push(c);
    }
}

/// Sets an integer status field, omitting it when zero as the API server does for
/// `active`, `succeeded` and `failed`.
fn set_count(status: &mut Value, field: &str, n: i64, omit_zero: bool) {
    if let Some(o) = status.as_object_mut() {
        if n == 0 && omit_zero {
            o.remove(field);
        } else {
            o.insert(field.into(), json!(n));
        }
    }
}

/// Annotation and label carrying a pod's completion index (Indexed Jobs).
const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// The completion index of a pod of an Indexed Job.
fn pod_index(pod: &Value) -> Option<i64> {
    pod["metadata"]["annotations"][INDEX_KEY]
        .as_str()
        .and_then(|s| s.parse().ok())
}

/// Parses `status.completedIndexes` (`1,3-5,7`).
fn parse_indexes(s: &str) -> std::collections::BTreeSet<i64> {
    let mut out = std::collections::BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
            // Bounded: a range is never longer than the completions it came from.
            for i in a..=b.min(a.saturating_add(100_000)) {
                out.insert(i);
            }
        }
    }
    out
}

/// Formats indexes as `status.completedIndexes` does (`1,3-5,7`).
fn format_indexes(set: &std::collections::BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// The pod a Job creates from its template (`index`: its completion index, Indexed Jobs).
fn new_pod(job: &Value, index: Option<i64>) -> Value {
    let meta = &job["metadata"];
    let name = meta["name"].as_str().unwrap_or("job");
    let uid = meta["uid"].as_str().unwrap_or("");
    let template = &job["spec"]["template"];
    let mut labels = serde_json::Map::new();
    if let Some(l) = meta["labels"].as_object() {
        labels.extend(l.clone());
    }
    if let Some(l) = template["metadata"]["labels"].as_object() {
        labels.extend(l.clone());
    }
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ] {
        labels.entry(k).or_insert_with(|| json!(v));
    }
    let mut metadata = json!({
        "generateName": format!("{name}-"),
        "namespace": meta["namespace"],
        "labels": labels,
        "finalizers": [TRACKING_FINALIZER],
        "ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        metadata["annotations"] = json!(a);
    }
    let mut spec = template["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    if let Some(i) = index {
        metadata["generateName"] = json!(format!("{name}-{i}-"));
        metadata["annotations"][INDEX_KEY] = json!(i.to_string());
        metadata["labels"][INDEX_KEY] = json!(i.to_string());
        if spec["hostname"].is_null() {
            spec["hostname"] = json!(format!("{name}-{i}"));
        }
        let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": format!("metadata.annotations['{INDEX_KEY}']")}}});
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                if !c.is_object() {
                    continue;
                }
                let has = c["env"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|v| v["name"] == "JOB_COMPLETION_INDEX"));
                if !has {
                    if !c["env"].is_array() {
                        c["env"] = json!([]);
                    }
                    if let Some(e) = c["env"].as_array_mut() {
                        e.push(env.clone());
                    }
                }
            }
        }
    }
    // What the API server's pod strategy sets on create: a pod is Pending from its first version.
    let qos = crate::resources::qos_class(&spec);
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
            "status": {"phase": "Pending", "qosClass": qos} })
}

/// Sum of restartCounts of a pod's containers and init containers.
fn restarts(pod: &Value) -> i64 {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][*k].as_array())
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The replacement delay after `failures` failed pods: `base · 2^(failures−1)`, capped.
pub(super) fn backoff(base: Duration, max: Duration, failures: i64) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let exp = (failures - 1).clamp(0, 30) as u32;
    base.saturating_mul(1u32 << exp.min(20)).min(max)
}

/// Syncs one Job. Returns when it wants to be synced again (backoff, deadline, TTL).
pub(super) fn sync_job(cluster: &Cluster, mem: &mut Memory, key: &JobKey) -> Option<Instant> {
    let (ns, name) = key;
    let store = &cluster.store;
    let Some(job) = store.get(Kind::Job, ns, name) else {
        // Pods of a Job that is gone are released through their own events (see `note`).
        return None;
    };
    let uid = meta_str(&job, "uid").to_owned();
    let pods: Vec<Value> = store
        .dependents_of(&uid)
        .into_iter()
        .filter(|(k, p)| *k == Kind::Pod && owner_job(p).is_some_and(|(_, u)| u == uid))
        .map(|(_, p)| (*p).clone())
        .collect();
    if is_deleting(&job) {
        // Being deleted: its pods are deleted by the GC; let them go once they stop.
        for p in &pods {
            if has_finalizer(p) && (is_deleting(p) || matches!(phase(p), "Succeeded" | "Failed")) {
                release(cluster, p);
            }
        }
        return None;
    }
    let jm = mem.jobs.entry(uid.clone()).or_default();
    let spec = &job["spec"];
    let old_status = job["status"].clone();
    let mut status = if old_status.is_object() {
        old_status.clone()
    } else {
        json!({})
    };
    let mut succeeded = status["succeeded"].as_i64().unwrap_or(0);
    let mut failed = status["failed"].as_i64().unwrap_or(0);

    // 1. Count finished pods exactly once, then drop their finalizer.
    let present: HashSet<String> = pods.iter().map(|p| meta_str(p, "uid").to_owned()).collect();
    let vanished: Vec<String> = jm
        .tracked
        .iter()
        .filter(|u| !present.contains(*u))
        .cloned()
        .collect();
    for u in vanished {
        jm.tracked.remove(&u);
        failed += 1;
        jm.last_failure = Some(Instant::now());
    }
    let indexed = spec["completionMode"] == "Indexed";
    let mut completed = parse_indexes(status["completedIndexes"].as_str().unwrap_or(""));
    for p in &pods {
        if !has_finalizer(p) {
            continue;
        }
        let pod_uid = meta_str(p, "uid").to_owned();
        let outcome = match phase(p) {
            "Succeeded" => Some(true),
            "Failed" => Some(false),
            // podReplacementPolicy TerminatingOrFailed: a pod deleted before it succeeded
            // counts as failed at once.
            _ if is_deleting(p) => Some(false),
            _ => None,
        };
        match outcome {
            Some(ok) => {
                if ok {
                    match pod_index(p).filter(|_| indexed) {
                        Some(i) => {
                            completed.insert(i);
                        }
                        None => succeeded += 1,
                    }
                } else {
                    failed += 1;
                    jm.last_failure = Some(Instant::now());
                }
                jm.tracked.remove(&pod_uid);
                release(cluster, p);
            }
            None => {
                jm.tracked.insert(pod_uid);
            }
        }
    }
    if indexed {
        succeeded = completed.len() as i64;
        if let Some(o) = status.as_object_mut() {
            if completed.is_empty() {
                o.remove("completedIndexes");
            } else {
                o.insert("completedIndexes".into(), json!(format_indexes(&completed)));
            }
        }
    }
    let active_pods: Vec<&Value> = pods
        .iter()
        .filter(|p| !is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
        .collect();
    let mut active = active_pods.len() as i64;
    let terminating = pods
        .iter()
        .filter(|p| is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
        .count() as i64;
    let ready = active_pods.iter().filter(|p| is_ready(p)).count() as i64;

    // 2. Decide.
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
    let completions = spec["completions"].as_i64();
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
    let suspended = spec["suspend"].as_bool().unwrap_or(false);
    let on_failure = spec["template"]["spec"]["restartPolicy"] == "OnFailure";
    let finished = has_condition(&status, "Complete") || has_condition(&status, "Failed");
    let mut wake: Option<Instant> = None;
    let mut want_wake = |at: Instant| {
        wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
    };

    if !finished {
        if status["startTime"].is_null() && !suspended {
            status["startTime"] = json!(now_rfc3339());
        }
        let failure_target = condition_of(&status, "FailureTarget")
            .map(|c| {
                (
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or(""),
                )
            })
            .map(|(r, m)| (r.to_owned(), m.to_owned()));
        let failure = failure_target.or_else(|| {
            let deadline = spec["activeDeadlineSeconds"].as_i64();
            let started = parse_time(&status["startTime"]);
            if let (Some(ads), Some(t)) = (deadline, started) {
                if !suspended && passed(t, ads) {
                    return Some((REASON_DEADLINE.to_owned(), MSG_DEADLINE.to_owned()));
                }
                if let Some(at) = instant_after(t, ads).filter(|_| !suspended) {
                    want_wake(at);
                }
            }
            let restart_sum: i64 = active_pods.iter().map(|p| restarts(p)).sum();
            let past_on_failure = on_failure
                && if backoff_limit == 0 {
                    restart_sum > 0
                } else {
                    restart_sum >= backoff_limit
                };
            if failed > backoff_limit || past_on_failure {
                return Some((REASON_BACKOFF.to_owned(), MSG_BACKOFF.to_owned()));
            }
            None
        });
        let success = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active == 0,
        };
        if let Some((reason, message)) = failure {
            if !has_condition(&status, "FailureTarget") {
                add_condition(&mut status, condition("FailureTarget", &reason, &message));
                events::record(store, &job, "Warning", &reason, &message);
            }
            for p in &active_pods {
                delete_pod(cluster, &job, p);
            }
            // The deleted pods are counted (as failed) at the next sync.
            if active == 0 && terminating == 0 {
                add_condition(&mut status, condition("Failed", &reason, &message));
            } else {
                want_wake(Instant::now() + Duration::from_millis(200));
            }
        } else if success {
            if !has_condition(&status, "SuccessCriteriaMet") {
                add_condition(
                    &mut status,
                    condition("SuccessCriteriaMet", REASON_COMPLETIONS, MSG_COMPLETIONS),
                );
            }
            for p in &active_pods {
                delete_pod(cluster, &job, p);
            }
            if active == 0 && terminating == 0 {
                add_condition(
                    &mut status,
                    condition("Complete", REASON_COMPLETIONS, MSG_COMPLETIONS),
                );
                status["completionTime"] = json!(now_rfc3339());
                events::record(store, &job, "Normal", "Completed", "Job completed");
            } else {
                want_wake(Instant::now() + Duration::from_millis(200));
            }
        } else if suspended {
            for p in &active_pods {
                delete_pod(cluster, &job, p);
            }
            active = 0;
            if !has_condition(&status, "Suspended") {
                add_condition(
                    &mut status,
                    condition("Suspended", "JobSuspended", "Job suspended"),
                );
            }
        } else {
            // get_mut, not IndexMut: indexing would insert `"conditions": null`.
            if let Some(list) = status.get_mut("conditions").and_then(Value::as_array_mut) {
                list.retain(|c| c["type"] != "Suspended");
            }
            let want = match completions {
                Some(c) => parallelism.min((c - succeeded).max(0)),
                None if succeeded > 0 => 0,
                None => parallelism,
            };
            let missing = want - active;
            if missing > 0 {
                let delay = backoff(
                    cluster.options.backoff_base,
                    cluster.options.backoff_max,
                    failed,
                );
                let ready_at = jm.last_failure.map(|t| t + delay);
                match ready_at {
                    Some(at) if at > Instant::now() => want_wake(at),
                    _ => {
                        // Indexed: the lowest indexes neither completed nor running.
                        let running: HashSet<i64> =
                            active_pods.iter().filter_map(|p| pod_index(p)).collect();
                        let mut free = (0..completions.unwrap_or(0))
                            .filter(|i| !completed.contains(i) && !running.contains(i));
                        for _ in 0..missing {
                            let index = if indexed {
                                match free.next() {
                                    Some(i) => Some(i),
                                    None => break,
                                }
                            } else {
                                None
                            };
                            match store.create(Kind::Pod, new_pod(&job, index)) {
                                Ok(p) => {
                                    active += 1;
                                    jm.tracked.insert(meta_str(&p, "uid").to_owned());
                                    events::record(
                                        store,
                                        &job,
                                        "Normal",
                                        "SuccessfulCreate",
                                        &format!("Created pod: {}", meta_str(&p, "name")),
                                    );
                                }
                                Err(e) => {
                                    events::record(
                                        store,
                                        &job,
                                        "Warning",
                                        "FailedCreate",
                                        &format!("Error creating: {}", e.message),
                                    );
                                    want_wake(Instant::now() + Duration::from_secs(1));
                                    break;
                                }
                            }
                        }
                    }
                }
            } else if missing < 0 {
                // Parallelism was lowered: delete the newest extra pods.
                let mut extra: Vec<&&Value> = active_pods.iter().collect();
                extra.sort_by_key(|p| meta_str(p, "creationTimestamp").to_owned());
                for p in extra.iter().rev().take((-missing) as usize) {
                    delete_pod(cluster, &job, p);
                    active -= 1;
                }
            }
        }
    }

    // 3. Status.
    set_count(&mut status, "active", active, true);
    set_count(&mut status, "succeeded", succeeded, true);
    set_count(&mut status, "failed", failed, true);
    set_count(&mut status, "ready", ready.min(active), false);
    set_count(&mut status, "terminating", terminating, false);
    status["uncountedTerminatedPods"] = json!({});
    if status != old_status {
        let _ = store.update(Kind::Job, ns, name, |o| {
            if meta_str(o, "uid") != uid {
                return Err(ApiError::not_found(Kind::Job, name));
            }
            o["status"] = status.clone();
            Ok(())
        });
    }

    // 4. TTL after finish.
    let finished_at = condition_of(&status, "Complete")
        .or_else(|| condition_of(&status, "Failed"))
        .and_then(|c| parse_time(&c["lastTransitionTime"]));
    if let (Some(ttl), Some(t)) = (spec["ttlSecondsAfterFinished"].as_i64(), finished_at) {
        if passed(t, ttl) {
            let opts = DeleteOptions {
                propagation: Some(Propagation::Foreground),
                ..Default::default()
            };
            let _ = store.delete(Kind::Job, ns, name, &opts);
            return Some(Instant::now() + Duration::from_millis(200));
        }
        if let Some(at) = instant_after(t, ttl) {
            want_wake(at);
        }
    }
    wake
}

/// Deletes an active pod of a Job (graceful), recording `SuccessfulDelete`.
fn delete_pod(cluster: &Cluster, job: &Value, pod: &Value) {
    let opts = DeleteOptions {
        propagation: Some(Propagation::Background),
        preconditions_uid: Some(meta_str(pod, "uid").to_owned()),
        ..Default::default()
    };
    let name = meta_str(pod, "name");
    if cluster
        .store
        .delete(Kind::Pod, meta_str(pod, "namespace"), name, &opts)
        .is_ok()
    {
        events::record(
            &cluster.store,
            job,
            "Normal",
            "SuccessfulDelete",
            &format!("Deleted pod: {name}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(360);
        assert_eq!(backoff(base, max, 0), Duration::ZERO);
        assert_eq!(backoff(base, max, 1), Duration::from_secs(10));
        assert_eq!(backoff(base, max, 3), Duration::from_secs(40));
        assert_eq!(backoff(base, max, 50), max);
    }

    #[test]
    fn pods_carry_labels_finalizer_and_owner() {
        let job = json!({"metadata": {"name": "j", "namespace": "ns", "uid": "u",
                "labels": {"team": "a", "x": "job"}},
            "spec": {"template": {"metadata": {"labels": {"x": "tpl"}, "annotations": {"k": "v"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}});
        let p = new_pod(&job, None);
        assert_eq!(p["metadata"]["generateName"], "j-");
        assert_eq!(p["metadata"]["labels"]["team"], "a");
        assert_eq!(p["metadata"]["labels"]["x"], "tpl");
        assert_eq!(p["metadata"]["labels"]["job-name"], "j");
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"],
            "u"
        );
        assert_eq!(p["metadata"]["annotations"]["k"], "v");
        assert_eq!(p["metadata"]["finalizers"][0], TRACKING_FINALIZER);
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Job");
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        assert_eq!(p["spec"]["containers"][0]["name"], "c");
    }

    #[test]
    fn indexed_pods_and_completed_indexes() {
        let job = json!({"metadata": {"name": "ix", "namespace": "ns", "uid": "u"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "env": []}]}}}});
        let p = new_pod(&job, Some(2));
        assert_eq!(p["metadata"]["generateName"], "ix-2-");
        assert_eq!(p["metadata"]["annotations"][INDEX_KEY], "2");
        assert_eq!(p["spec"]["hostname"], "ix-2");
        assert_eq!(
            p["spec"]["containers"][0]["env"][0]["name"],
            "JOB_COMPLETION_INDEX"
        );
        assert_eq!(pod_index(&p), Some(2));
        let set = parse_indexes("0-2,4, 7");
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 4, 7]);
        assert_eq!(format_indexes(&set), "0-2,4,7");
        assert_eq!(format_indexes(&parse_indexes("")), "");
    }

    #[test]
    fn restart_counts_sum_over_all_containers() {
        let p = json!({"status": {"containerStatuses": [{"restartCount": 2}, {"restartCount": 1}],
            "initContainerStatuses": [{"restartCount": 1}]}});
        assert_eq!(restarts(&p), 4);
    }
}
