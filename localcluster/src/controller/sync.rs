//! One sync of one Job: count finished pods, decide success/failure, create or delete pods,
//! write the status.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::failure_policy::{self, Action};
use super::success_policy;
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
const REASON_POLICY: &str = "PodFailurePolicy";
const REASON_INDEXES: &str = "FailedIndexes";
const MSG_INDEXES: &str = "Job has failed indexes";
const REASON_MAX_INDEXES: &str = "MaxFailedIndexesExceeded";
const MSG_MAX_INDEXES: &str = "Job has exceeded the specified maximal number of failed indexes";

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
    /// Failures counted per completion index (`backoffLimitPerIndex`).
    index_failures: HashMap<i64, i64>,
}

impl Memory {
    /// Forgets Jobs that no longer exist.
    pub(super) fn forget_missing(&mut self, store: &crate::store::Store) {
        self.jobs
            .retain(|uid, _| matches!(store.get_by_uid(uid), Some((Kind::Job, _))));
    }
}

/// The manager the Job controller writes as, kube-controller-manager's (through `/status`
/// for a Job's status).
fn controller(subresource: Option<&str>) -> crate::fieldmanager::Writer {
    crate::fieldmanager::Writer {
        manager: "kube-controller-manager".into(),
        subresource: subresource.map(String::from),
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

/// The job controller's `ensureJobConditionStatus`: updates a condition of this type in place
/// when it differs, adds it only when `status` is not False; whether anything changed.
fn ensure_condition(status: &mut Value, ty: &str, st: &str, reason: &str, message: &str) -> bool {
    let mut c = condition(ty, reason, message);
    c["status"] = json!(st);
    let list = status.get_mut("conditions").and_then(Value::as_array_mut);
    if let Some(old) = list.and_then(|l| l.iter_mut().find(|x| x["type"] == ty)) {
        let same = old["status"] == st && old["reason"] == reason && old["message"] == message;
        if !same {
            *old = c;
        }
        return !same;
    }
    if st == "False" {
        return false;
    }
    add_condition(status, c);
    true
}

/// `spec.backoffLimitPerIndex` of an Indexed Job.
fn per_index_limit(job: &Value) -> Option<i64> {
    let spec = &job["spec"];
    (spec["completionMode"] == "Indexed")
        .then(|| spec["backoffLimitPerIndex"].as_i64())
        .flatten()
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
pub(super) fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
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
fn format_indexes(set: &BTreeSet<i64>) -> String {
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
    // What a pod created through the API gets: the pod strategy's defaults, admission's
    // tolerations, and Pending from its first version.
    crate::api::validation::default_pod_spec(&mut spec, true);
    crate::api::admission::admit_pod(&mut spec);
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

/// The earliest time a sync asks to run again.
#[derive(Default)]
struct Wake(Option<Instant>);

impl Wake {
    fn at(&mut self, at: Instant) {
        self.0 = Some(self.0.map_or(at, |w| w.min(at)));
    }

    /// Soon: pods are being deleted and the next sync counts them.
    fn soon(&mut self) {
        self.at(Instant::now() + Duration::from_millis(200));
    }
}

/// Whether a pod has stopped (`Succeeded` or `Failed`).
fn stopped(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pods whose controller is the Job with this uid.
fn owned_pods(cluster: &Cluster, uid: &str) -> Vec<Value> {
    cluster
        .store
        .dependents_of(uid)
        .into_iter()
        .filter(|(k, p)| *k == Kind::Pod && owner_job(p).is_some_and(|(_, u)| u == uid))
        .map(|(_, p)| (*p).clone())
        .collect()
}

/// One sync of one Job: the status being built and what the decision needs.
struct JobSync<'a> {
    cluster: &'a Cluster,
    job: &'a Value,
    old_status: Value,
    status: Value,
    succeeded: i64,
    failed: i64,
    /// `completionMode: Indexed`, with the indexes that succeeded.
    indexed: bool,
    completed: BTreeSet<i64>,
    /// Indexes that failed for good (`FailIndex`, `backoffLimitPerIndex`).
    failed_indexes: BTreeSet<i64>,
    /// The message of a `FailJob` podFailurePolicy rule a failed pod matched.
    policy_failure: Option<String>,
    /// Pods counted as active in `status.active` (changed by creates, deletes, suspension).
    active: i64,
    wake: Wake,
}

/// Syncs one Job. Returns when it wants to be synced again (backoff, deadline, TTL).
pub(super) fn sync_job(cluster: &Cluster, mem: &mut Memory, key: &JobKey) -> Option<Instant> {
    let (ns, name) = key;
    // Pods of a Job that is gone are released through their own events (see `note`).
    let job = cluster.store.get(Kind::Job, ns, name)?;
    let uid = meta_str(&job, "uid").to_owned();
    let pods = owned_pods(cluster, &uid);
    if is_deleting(&job) {
        // Being deleted: its pods are deleted by the GC; let them go once they stop.
        for p in &pods {
            if has_finalizer(p) && (is_deleting(p) || stopped(p)) {
                release(cluster, p);
            }
        }
        return None;
    }
    let jm = mem.jobs.entry(uid.clone()).or_default();
    let mut sync = JobSync::new(cluster, &job);
    sync.count_finished(jm, &pods);
    let active_pods: Vec<&Value> = pods
        .iter()
        .filter(|p| !is_deleting(p) && !stopped(p))
        .collect();
    sync.active = active_pods.len() as i64;
    let terminating = pods
        .iter()
        .filter(|p| is_deleting(p) && !stopped(p))
        .count() as i64;
    let ready = active_pods.iter().filter(|p| is_ready(p)).count() as i64;
    if !sync.finished() {
        sync.decide(jm, &active_pods, terminating);
    }
    sync.write_status(key, &uid, ready, terminating);
    sync.expire_after_ttl(key)
}

impl<'a> JobSync<'a> {
    fn new(cluster: &'a Cluster, job: &'a Value) -> Self {
        let old_status = job["status"].clone();
        let status = if old_status.is_object() {
            old_status.clone()
        } else {
            json!({})
        };
        JobSync {
            cluster,
            job,
            succeeded: status["succeeded"].as_i64().unwrap_or(0),
            failed: status["failed"].as_i64().unwrap_or(0),
            indexed: job["spec"]["completionMode"] == "Indexed",
            completed: parse_indexes(status["completedIndexes"].as_str().unwrap_or("")),
            failed_indexes: parse_indexes(status["failedIndexes"].as_str().unwrap_or("")),
            policy_failure: None,
            old_status,
            status,
            active: 0,
            wake: Wake::default(),
        }
    }

    fn spec(&self) -> &'a Value {
        &self.job["spec"]
    }

    fn finished(&self) -> bool {
        has_condition(&self.status, "Complete") || has_condition(&self.status, "Failed")
    }

    fn suspended(&self) -> bool {
        self.spec()["suspend"].as_bool().unwrap_or(false)
    }

    fn note_failure(&mut self, jm: &mut JobMemory) {
        self.failed += 1;
        jm.last_failure = Some(Instant::now());
    }

    /// Step 1: counts finished pods exactly once, then drops their finalizer.
    fn count_finished(&mut self, jm: &mut JobMemory, pods: &[Value]) {
        let present: HashSet<&str> = pods.iter().map(|p| meta_str(p, "uid")).collect();
        let vanished: Vec<String> = jm
            .tracked
            .iter()
            .filter(|u| !present.contains(u.as_str()))
            .cloned()
            .collect();
        for u in vanished {
            jm.tracked.remove(&u);
            self.note_failure(jm);
        }
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            self.count_pod(jm, p);
        }
        if self.indexed {
            self.succeeded = self.completed.len() as i64;
            if let Some(o) = self.status.as_object_mut() {
                if self.completed.is_empty() {
                    o.remove("completedIndexes");
                } else {
                    let text = format_indexes(&self.completed);
                    o.insert("completedIndexes".into(), json!(text));
                }
                if per_index_limit(self.job).is_some() {
                    let text = format_indexes(&self.failed_indexes);
                    o.insert("failedIndexes".into(), json!(text));
                }
            }
        }
    }

    /// Counts one tracked pod if it has finished, or keeps tracking it.
    fn count_pod(&mut self, jm: &mut JobMemory, p: &Value) {
        let pod_uid = meta_str(p, "uid").to_owned();
        let only_failed = self.spec()["podReplacementPolicy"] == "Failed";
        let succeeded = match phase(p) {
            "Succeeded" => true,
            "Failed" => false,
            // podReplacementPolicy TerminatingOrFailed: a pod deleted before it succeeded
            // counts as failed at once.
            _ if is_deleting(p) && !only_failed => false,
            _ => {
                jm.tracked.insert(pod_uid);
                return;
            }
        };
        if !succeeded {
            self.count_failed_pod(jm, p);
        } else if let Some(i) = pod_index(p).filter(|_| self.indexed) {
            self.completed.insert(i);
        } else {
            self.succeeded += 1;
        }
        jm.tracked.remove(&pod_uid);
        release(self.cluster, p);
    }

    /// A failed pod, as `spec.podFailurePolicy` (if any) and `backoffLimitPerIndex` say.
    fn count_failed_pod(&mut self, jm: &mut JobMemory, p: &Value) {
        let policy = &self.spec()["podFailurePolicy"];
        let action = if policy.is_object() {
            failure_policy::match_pod(policy, p)
        } else {
            Action::Count
        };
        let index = pod_index(p).filter(|_| self.indexed);
        match action {
            Action::Ignore => return,
            Action::FailJob(message) => {
                self.policy_failure.get_or_insert(message);
            }
            Action::FailIndex => {
                if let Some(i) = index.filter(|_| per_index_limit(self.job).is_some()) {
                    self.failed_indexes.insert(i);
                }
            }
            Action::Count => {
                if let (Some(i), Some(limit)) = (index, per_index_limit(self.job)) {
                    let n = jm.index_failures.entry(i).or_insert(0);
                    *n += 1;
                    if *n > limit {
                        self.failed_indexes.insert(i);
                    }
                }
            }
        }
        self.note_failure(jm);
    }

    /// Suspended=True (`Suspended` event) or, on resume, Suspended=False (`Resumed` event,
    /// a new start time), as the job controller sets them.
    fn track_suspension(&mut self, suspended: bool) {
        let (status, reason, message) = if suspended {
            ("True", "JobSuspended", "Job suspended")
        } else {
            ("False", "JobResumed", "Job resumed")
        };
        if !ensure_condition(&mut self.status, "Suspended", status, reason, message) {
            return;
        }
        let store = &self.cluster.store;
        if suspended {
            events::record(store, self.job, "Normal", "Suspended", "Job suspended");
            // MutableSchedulingDirectivesForSuspendedJobs (on by default since v1.36).
            if let Some(o) = self.status.as_object_mut() {
                o.remove("startTime");
            }
        } else {
            events::record(store, self.job, "Normal", "Resumed", "Job resumed");
            self.status["startTime"] = json!(now_rfc3339());
        }
    }

    /// Step 2: fail, complete, suspend, or create/delete pods toward the wanted count.
    fn decide(&mut self, jm: &mut JobMemory, active_pods: &[&Value], terminating: i64) {
        let suspended = self.suspended();
        if self.status["startTime"].is_null() && !suspended {
            self.status["startTime"] = json!(now_rfc3339());
        }
        if let Some((reason, message)) = self.failure(active_pods) {
            self.fail(&reason, &message, active_pods, terminating);
        } else if let Some(message) = self.success_policy() {
            self.complete(success_policy::REASON, &message, active_pods, terminating);
        } else if self.succeeded_enough() {
            self.complete(
                REASON_COMPLETIONS,
                MSG_COMPLETIONS,
                active_pods,
                terminating,
            );
        } else if suspended {
            self.suspend(active_pods);
        } else {
            self.track_suspension(false);
            self.scale(jm, active_pods);
        }
    }

    /// Why the Job fails, if it does: a FailureTarget already set, the active deadline, or
    /// the backoff limit (failed pods, or restarts with `restartPolicy: OnFailure`).
    fn failure(&mut self, active_pods: &[&Value]) -> Option<(String, String)> {
        if let Some(c) = condition_of(&self.status, "FailureTarget") {
            let text = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            return Some((text("reason"), text("message")));
        }
        if let Some(m) = &self.policy_failure {
            return Some((REASON_POLICY.to_owned(), m.clone()));
        }
        let spec = self.spec();
        let suspended = self.suspended();
        let deadline = spec["activeDeadlineSeconds"].as_i64();
        if let (Some(ads), Some(t)) = (deadline, parse_time(&self.status["startTime"])) {
            if !suspended && passed(t, ads) {
                return Some((REASON_DEADLINE.to_owned(), MSG_DEADLINE.to_owned()));
            }
            if let Some(at) = instant_after(t, ads).filter(|_| !suspended) {
                self.wake.at(at);
            }
        }
        let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
        let on_failure = spec["template"]["spec"]["restartPolicy"] == "OnFailure";
        let restart_sum: i64 = active_pods.iter().map(|p| restarts(p)).sum();
        let past_on_failure = on_failure
            && if backoff_limit == 0 {
                restart_sum > 0
            } else {
                restart_sum >= backoff_limit
            };
        if self.failed > backoff_limit || past_on_failure {
            return Some((REASON_BACKOFF.to_owned(), MSG_BACKOFF.to_owned()));
        }
        self.index_failure()
    }

    /// `backoffLimitPerIndex`: too many failed indexes, or every index done and some failed.
    fn index_failure(&self) -> Option<(String, String)> {
        per_index_limit(self.job)?;
        let failed = self.failed_indexes.len() as i64;
        let max = self.spec()["maxFailedIndexes"].as_i64();
        let completions = self.spec()["completions"].as_i64().unwrap_or(0);
        if max.is_some_and(|m| failed > m) {
            return Some((REASON_MAX_INDEXES.to_owned(), MSG_MAX_INDEXES.to_owned()));
        }
        if failed > 0 && failed + self.completed.len() as i64 >= completions {
            return Some((REASON_INDEXES.to_owned(), MSG_INDEXES.to_owned()));
        }
        None
    }

    /// `successPolicy` (Indexed Jobs only): the message of the rule the succeeded indexes
    /// meet, if one does (the condition, once set, keeps its reason).
    fn success_policy(&self) -> Option<String> {
        if let Some(c) = condition_of(&self.status, "SuccessCriteriaMet") {
            return (c["reason"] == success_policy::REASON)
                .then(|| c["message"].as_str().unwrap_or("").to_owned());
        }
        self.indexed
            .then(|| success_policy::matched(self.spec(), &self.completed))
            .flatten()
    }

    fn succeeded_enough(&self) -> bool {
        match self.spec()["completions"].as_i64() {
            Some(c) => self.succeeded >= c,
            None => self.succeeded > 0 && self.active == 0,
        }
    }

    fn delete_all(&self, pods: &[&Value]) {
        for p in pods {
            delete_pod(self.cluster, self.job, p);
        }
    }

    /// FailureTarget now; Failed once no pod runs (the deleted pods are counted, as failed,
    /// at the next sync).
    fn fail(&mut self, reason: &str, message: &str, active_pods: &[&Value], terminating: i64) {
        if !has_condition(&self.status, "FailureTarget") {
            add_condition(
                &mut self.status,
                condition("FailureTarget", reason, message),
            );
            events::record(&self.cluster.store, self.job, "Warning", reason, message);
        }
        self.delete_all(active_pods);
        if self.active == 0 && terminating == 0 {
            add_condition(&mut self.status, condition("Failed", reason, message));
        } else {
            self.wake.soon();
        }
    }

    /// SuccessCriteriaMet now; Complete once no pod runs (both with `reason` and `message`).
    fn complete(&mut self, reason: &str, message: &str, active_pods: &[&Value], terminating: i64) {
        if !has_condition(&self.status, "SuccessCriteriaMet") {
            let met = condition("SuccessCriteriaMet", reason, message);
            add_condition(&mut self.status, met);
        }
        self.delete_all(active_pods);
        if self.active == 0 && terminating == 0 {
            let done = condition("Complete", reason, message);
            add_condition(&mut self.status, done);
            self.status["completionTime"] = json!(now_rfc3339());
            let store = &self.cluster.store;
            events::record(store, self.job, "Normal", "Completed", "Job completed");
        } else {
            self.wake.soon();
        }
    }

    fn suspend(&mut self, active_pods: &[&Value]) {
        self.delete_all(active_pods);
        self.active = 0;
        self.track_suspension(true);
    }

    /// Creates the missing pods (after the failure backoff) or deletes the extra ones.
    fn scale(&mut self, jm: &mut JobMemory, active_pods: &[&Value]) {
        let spec = self.spec();
        let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
        let want = match spec["completions"].as_i64() {
            Some(c) => parallelism.min((c - self.succeeded).max(0)),
            None if self.succeeded > 0 => 0,
            None => parallelism,
        };
        let missing = want - self.active;
        if missing > 0 {
            let options = &self.cluster.options;
            let delay = backoff(options.backoff_base, options.backoff_max, self.failed);
            match jm.last_failure.map(|t| t + delay) {
                Some(at) if at > Instant::now() => self.wake.at(at),
                _ => self.create_missing(jm, active_pods, missing),
            }
        } else if missing < 0 {
            // Parallelism was lowered: delete the newest extra pods.
            let mut extra: Vec<&Value> = active_pods.to_vec();
            extra.sort_by_key(|p| meta_str(p, "creationTimestamp").to_owned());
            for p in extra.iter().rev().take((-missing) as usize) {
                delete_pod(self.cluster, self.job, p);
                self.active -= 1;
            }
        }
    }

    /// Creates up to `missing` pods; Indexed: for the lowest indexes neither completed nor
    /// running.
    fn create_missing(&mut self, jm: &mut JobMemory, active_pods: &[&Value], missing: i64) {
        if !self.indexed {
            for _ in 0..missing {
                if !self.create_pod(jm, None) {
                    break;
                }
            }
            return;
        }
        let running: HashSet<i64> = active_pods.iter().filter_map(|p| pod_index(p)).collect();
        let completions = self.spec()["completions"].as_i64().unwrap_or(0);
        let free: Vec<i64> = (0..completions)
            .filter(|i| {
                !self.completed.contains(i)
                    && !self.failed_indexes.contains(i)
                    && !running.contains(i)
            })
            .take(usize::try_from(missing).unwrap_or(0))
            .collect();
        for i in free {
            if !self.create_pod(jm, Some(i)) {
                break;
            }
        }
    }

    /// Creates one pod and records the event; `false` (and a retry in a second) on failure.
    fn create_pod(&mut self, jm: &mut JobMemory, index: Option<i64>) -> bool {
        let store = &self.cluster.store;
        let mut pod = new_pod(self.job, index);
        crate::fieldmanager::record_update(Kind::Pod, None, &mut pod, &controller(None));
        match store.create(Kind::Pod, pod) {
            Ok(p) => {
                self.active += 1;
                jm.tracked.insert(meta_str(&p, "uid").to_owned());
                let message = format!("Created pod: {}", meta_str(&p, "name"));
                events::record(store, self.job, "Normal", "SuccessfulCreate", &message);
                true
            }
            Err(e) => {
                let message = format!("Error creating: {}", e.message);
                events::record(store, self.job, "Warning", "FailedCreate", &message);
                self.wake.at(Instant::now() + Duration::from_secs(1));
                false
            }
        }
    }

    /// Step 3: writes the counts, and the status if it changed (to this very Job, by uid).
    fn write_status(&mut self, key: &JobKey, uid: &str, ready: i64, terminating: i64) {
        let status = &mut self.status;
        set_count(status, "active", self.active, true);
        set_count(status, "succeeded", self.succeeded, true);
        set_count(status, "failed", self.failed, true);
        set_count(status, "ready", ready.min(self.active), false);
        set_count(status, "terminating", terminating, false);
        status["uncountedTerminatedPods"] = json!({});
        if *status == self.old_status {
            return;
        }
        let (ns, name) = key;
        let _ = self.cluster.store.update(Kind::Job, ns, name, |o| {
            if meta_str(o, "uid") != uid {
                return Err(ApiError::not_found(Kind::Job, name));
            }
            let before = o.clone();
            o["status"] = self.status.clone();
            crate::fieldmanager::record_update(
                Kind::Job,
                Some(&before),
                o,
                &controller(Some("status")),
            );
            Ok(())
        });
    }

    /// Step 4: deletes a finished Job once its `ttlSecondsAfterFinished` has passed; returns
    /// when to sync again.
    fn expire_after_ttl(mut self, key: &JobKey) -> Option<Instant> {
        let finished_at = condition_of(&self.status, "Complete")
            .or_else(|| condition_of(&self.status, "Failed"))
            .and_then(|c| parse_time(&c["lastTransitionTime"]));
        let ttl = self.spec()["ttlSecondsAfterFinished"].as_i64();
        if let (Some(ttl), Some(t)) = (ttl, finished_at) {
            if passed(t, ttl) {
                let opts = DeleteOptions {
                    propagation: Some(Propagation::Foreground),
                    ..Default::default()
                };
                let _ = self.cluster.store.delete(Kind::Job, &key.0, &key.1, &opts);
                return Some(Instant::now() + Duration::from_millis(200));
            }
            if let Some(at) = instant_after(t, ttl) {
                self.wake.at(at);
            }
        }
        self.wake.0
    }
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
