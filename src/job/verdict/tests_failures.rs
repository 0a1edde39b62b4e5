//! Table tests of the rules for what the Job and the cluster decide: pods that cannot be
//! created, disrupted attempts, and the terminal-decision conditions of today's Jobs.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{json, Value};

use super::*;

const UID: &str = "uid-1";
const CREATE_GRACE: u64 = 120;

fn rules() -> Rules {
    Rules {
        flow_container: "flow".into(),
        image_pull_grace: Duration::from_secs(120),
        start_timeout: Duration::from_secs(300),
        deadline: None,
        run_secret: "job-kjenv".into(),
        failed_create_grace: Duration::from_secs(CREATE_GRACE),
    }
}

fn job(spec: Value, status: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({});
    serde_json::from_value(json!({
        "metadata": {"name": "j", "uid": UID}, "spec": spec, "status": status
    }))
    .expect("a Job")
}

fn failed_with(kind: &str, reason: &str, message: &str) -> Value {
    json!({"failed": 1, "conditions": [
        {"type": kind, "status": "True", "reason": reason, "message": message}]})
}

fn pod(name: &str, created: &str, status: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created}, "status": status
    }))
    .expect("a Pod")
}

fn running(name: &str, created: &str) -> Pod {
    pod(name, created, json!({"phase": "Running"}))
}

fn evicted(name: &str, created: &str) -> Pod {
    pod(
        name,
        created,
        json!({"phase": "Running", "conditions": [{"type": "DisruptionTarget", "status": "True",
               "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}),
    )
}

fn short(outcome: Option<Outcome>) -> String {
    match outcome {
        None => "none".into(),
        Some(Outcome::Complete(_)) => "complete".into(),
        Some(Outcome::Failed { reason, .. }) => format!("failed:{reason}"),
        Some(Outcome::Stuck { reason, .. }) => format!("stuck:{reason}"),
        Some(Outcome::Deleted) => "deleted".into(),
        Some(Outcome::TimedOut) => "timedout".into(),
        Some(Outcome::FlowEnded { exit_code, .. }) => format!("flowended:{exit_code}"),
    }
}

fn message(outcome: Option<Outcome>) -> String {
    match outcome {
        Some(Outcome::Failed { message, .. }) => message,
        other => panic!("not a failure: {other:?}"),
    }
}

fn failed_create(uid: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": "j.1"}, "involvedObject": {"kind": "Job", "name": "j", "uid": uid},
        "reason": "FailedCreate", "type": "Warning",
        "message": "Error creating: pods \"j-x\" is forbidden: exceeded quota: q"
    }))
    .expect("an Event")
}

/// (case, the pod seen before the event ("" none, "running", "failed"), whose event, seconds
/// from the event to the verdict, the outcome in short).
#[rustfmt::skip]
const CREATE_CASES: &[(&str, &str, &str, u64, &str)] = &[
    ("no pod, within the grace", "", UID, CREATE_GRACE - 1, "none"),
    ("no pod, past the grace", "", UID, CREATE_GRACE, "failed:FailedCreate"),
    ("a running pod: creation works", "running", UID, CREATE_GRACE, "none"),
    ("only a failed pod: its replacement cannot be made", "failed", UID, CREATE_GRACE, "failed:FailedCreate"),
    ("another Job's event (an earlier run)", "", "old", CREATE_GRACE, "none"),
];

#[test]
fn pods_that_cannot_be_created() {
    let t0 = Instant::now();
    for &(name, before, uid, after, expect) in CREATE_CASES {
        let mut s = Snapshot::new(rules(), UID);
        s.job = Some(job(json!({}), json!({})));
        match before {
            "running" => s.track(running("p", "2024-01-01T00:00:00Z"), t0),
            "failed" => s.track(
                pod("p", "2024-01-01T00:00:00Z", json!({"phase": "Failed"})),
                t0,
            ),
            _ => {}
        }
        s.see_events(Seen::Listed(vec![failed_create(uid)]), t0);
        let got = short(verdict(&s, t0 + Duration::from_secs(after)));
        assert_eq!(got, expect, "case {name:?}");
    }
}

#[test]
fn a_failed_create_names_the_event_and_its_clock_restarts_after_a_pod_ran() {
    let t0 = Instant::now();
    let mut s = Snapshot::new(rules(), UID);
    s.see_events(Seen::Applied(failed_create(UID)), t0);
    let past = t0 + Duration::from_secs(CREATE_GRACE);
    assert_eq!(
        message(verdict(&s, past)),
        "no pod could be created for 120.0s (failed_create_grace): \
         Error creating: pods \"j-x\" is forbidden: exceeded quota: q"
    );
    // Quota freed: a pod ran; its replacement failing to be created starts a new clock.
    s.track(running("p", "2024-01-01T00:00:00Z"), past);
    s.see_events(Seen::Applied(failed_create(UID)), past);
    assert_eq!(s.create_failures.since, None);
    s.track(
        pod("p", "2024-01-01T00:00:00Z", json!({"phase": "Failed"})),
        past,
    );
    s.see_events(Seen::Applied(failed_create(UID)), past);
    assert_eq!(s.create_failures.since, Some(past));
    assert_eq!(short(verdict(&s, past + Duration::from_secs(1))), "none");
}

/// (case, the Job's spec, its failed count, the pod, the report's end).
#[rustfmt::skip]
fn disruption_cases() -> Vec<(&'static str, Value, i32, Pod, &'static str)> {
    let ignore = json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}});
    let fail_job = json!({"podFailurePolicy": {"rules": [
        {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}});
    let at = "2024-01-01T00:00:00Z";
    let kubelet = pod("p", at, json!({"phase": "Failed", "reason": "Evicted",
                                      "message": "The node was low on resource: memory."}));
    vec![
        ("backoff left", json!({"backoffLimit": 1}), 0, evicted("p", at),
         "the Job will retry it (failure 1 of the 1 its backoffLimit allows)"),
        ("no backoff left", json!({"backoffLimit": 0}), 0, evicted("p", at),
         "the Job will not retry it (backoffLimit 0 reached)"),
        ("the default backoff limit", json!({}), 3, evicted("p", at),
         "the Job will retry it (failure 4 of the 6 its backoffLimit allows)"),
        ("an Ignore rule", ignore, 0, evicted("p", at),
         "the Job will retry it (podFailurePolicy rule 1: Ignore, not counted against backoffLimit)"),
        ("a FailJob rule", fail_job, 0, evicted("p", at),
         "the Job will not retry it (podFailurePolicy rule 0: FailJob)"),
        ("per index", json!({"backoffLimitPerIndex": 2}), 0, evicted("p", at),
         "the Job retries its index up to 2 times (backoffLimitPerIndex)"),
        ("a kubelet eviction", json!({"backoffLimit": 0}), 0, kubelet,
         "the Job will not retry it (backoffLimit 0 reached)"),
    ]
}

#[test]
fn each_disruption_is_reported_once_with_whether_the_job_retries_it() {
    let now = Instant::now();
    for (name, spec, failed, p, expect) in disruption_cases() {
        let mut s = Snapshot::new(rules(), UID);
        s.job = Some(job(spec, json!({"failed": failed})));
        s.track(p, now);
        let reports = disruption::news(&mut s);
        assert_eq!(reports.len(), 1, "case {name:?}: {reports:?}");
        assert!(
            reports[0].starts_with("job j: pod p was disrupted: "),
            "case {name:?}"
        );
        assert!(
            reports[0].ends_with(expect),
            "case {name:?}: {}",
            reports[0]
        );
        assert!(disruption::news(&mut s).is_empty(), "case {name:?}: once");
    }
}

#[test]
fn the_report_quotes_the_disruption() {
    let mut s = Snapshot::new(rules(), UID);
    s.job = Some(job(json!({"backoffLimit": 1}), json!({})));
    s.track(evicted("p", "2024-01-01T00:00:00Z"), Instant::now());
    assert_eq!(
        disruption::news(&mut s),
        [
            "job j: pod p was disrupted: EvictionByEvictionAPI: Eviction API: evicting; \
          the Job will retry it (failure 1 of the 1 its backoffLimit allows)"
        ]
    );
}

/// A pod seen: its name, its creation second, whether it was disrupted.
type Attempt = (&'static str, u32, bool);

/// (case, the pods seen in order, the outcome in short).
#[rustfmt::skip]
const LAST_ATTEMPT: &[(&str, &[Attempt], &str)] = &[
    ("the only attempt disrupted", &[("a", 0, true)], "failed:EvictionByEvictionAPI"),
    ("the newest attempt disrupted", &[("a", 0, false), ("b", 5, true)], "failed:EvictionByEvictionAPI"),
    ("an older attempt disrupted", &[("a", 0, true), ("b", 5, false)], "failed:BackoffLimitExceeded"),
    ("no attempt disrupted", &[("a", 0, false)], "failed:BackoffLimitExceeded"),
];

#[test]
fn a_job_failed_by_a_disruption_is_named_after_it() {
    let now = Instant::now();
    for &(name, pods, expect) in LAST_ATTEMPT {
        let mut s = Snapshot::new(rules(), UID);
        s.job = Some(job(json!({"backoffLimit": 0}), json!({})));
        for &(p, second, disrupted) in pods {
            let at = format!("2024-01-01T00:00:{second:02}Z");
            let p = if disrupted {
                evicted(p, &at)
            } else {
                running(p, &at)
            };
            s.track(p, now);
            disruption::news(&mut s);
        }
        // The disrupted pod is gone (deleted) by the time the Job fails.
        s.pods
            .retain(|_, t| disruption::disrupted(&t.pod).is_none());
        let status = failed_with(
            "FailureTarget",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
        s.job = Some(job(json!({"backoffLimit": 0}), status));
        assert_eq!(short(verdict(&s, now)), expect, "case {name:?}");
    }
}

#[test]
fn the_disruption_failure_message() {
    let now = Instant::now();
    let mut s = Snapshot::new(rules(), UID);
    s.track(evicted("p", "2024-01-01T00:00:00Z"), now);
    disruption::news(&mut s);
    let status = failed_with(
        "Failed",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    );
    s.job = Some(job(json!({}), status));
    assert_eq!(
        message(verdict(&s, now)),
        "pod p was disrupted: EvictionByEvictionAPI: Eviction API: evicting; the Job does not \
         retry it (BackoffLimitExceeded: Job has reached the specified backoff limit)"
    );
}

/// (case, the Job's spec, its status, the outcome in short).
#[rustfmt::skip]
fn condition_cases() -> Vec<(&'static str, Value, Value, &'static str)> {
    let pfp = "Container flow for pod default/j-x failed with exit code 42 matching FailJob rule at index 0";
    vec![
        ("FailureTarget decides before Failed", json!({}), failed_with("FailureTarget", "DeadlineExceeded", "m"), "failed:DeadlineExceeded"),
        ("SuccessCriteriaMet decides before Complete", json!({}), failed_with("SuccessCriteriaMet", "CompletionsReached", "m"), "complete"),
        ("a successPolicy", json!({}), failed_with("SuccessCriteriaMet", "SuccessPolicy", "m"), "complete"),
        ("FailureTarget not true", json!({}), json!({"conditions": [{"type": "FailureTarget", "status": "False"}]}), "none"),
        ("a podFailurePolicy FailJob", json!({}), failed_with("FailureTarget", "PodFailurePolicy", pfp), "failed:PodFailurePolicy"),
        ("failed indexes", json!({"backoffLimitPerIndex": 1}), failed_with("Failed", "FailedIndexes", "Job has failed indexes"), "failed:FailedIndexes"),
        ("managed by another controller", json!({"managedBy": "example.com/other"}), json!({}), "failed:ManagedByAnotherController"),
        ("managed by the Job controller", json!({"managedBy": "kubernetes.io/job-controller"}), json!({}), "none"),
        ("another controller's outcome wins", json!({"managedBy": "example.com/other"}), failed_with("Complete", "", ""), "complete"),
    ]
}

#[test]
fn terminal_decisions_and_the_controller() {
    let now = Instant::now();
    for (name, spec, status, expect) in condition_cases() {
        let mut s = Snapshot::new(rules(), UID);
        s.job = Some(job(spec, status));
        assert_eq!(short(verdict(&s, now)), expect, "case {name:?}");
    }
}

#[test]
fn failure_messages_of_todays_jobs() {
    let now = Instant::now();
    let with = |spec: Value, status: Value| {
        let mut s = Snapshot::new(rules(), UID);
        s.job = Some(job(spec, status));
        message(verdict(&s, now))
    };
    let mut status = failed_with("Failed", "FailedIndexes", "Job has failed indexes");
    status["failedIndexes"] = json!("0,2");
    assert_eq!(
        with(json!({"backoffLimitPerIndex": 1}), status),
        "Job has failed indexes (failed indexes: 0,2)"
    );
    let pfp = "Container flow for pod default/j-x failed with exit code 42 matching FailJob rule at index 0";
    let status = failed_with("FailureTarget", "PodFailurePolicy", pfp);
    assert_eq!(with(json!({}), status), pfp);
    assert_eq!(
        with(json!({"managedBy": "example.com/other"}), json!({})),
        "spec.managedBy is \"example.com/other\": the Job controller leaves this Job to that \
         controller, so kjenv cannot follow it (remove spec.managedBy to let Kubernetes run it)"
    );
}

#[test]
fn success_criteria_met_counts_the_pods_not_counted_yet() {
    let mut s = Snapshot::new(rules(), UID);
    let mut status = failed_with("SuccessCriteriaMet", "CompletionsReached", "m");
    status["succeeded"] = json!(0);
    status["uncountedTerminatedPods"] = json!({"succeeded": ["u2"], "failed": ["u1"]});
    s.job = Some(job(json!({}), status));
    let Some(Outcome::Complete(finished)) = verdict(&s, Instant::now()) else {
        panic!("complete");
    };
    assert_eq!((finished.succeeded, finished.failed), (1, 2));
}

#[test]
fn a_pod_deleted_in_the_same_batch_is_still_reported() {
    let now = Instant::now();
    let mut s = Snapshot::new(rules(), UID);
    s.job = Some(job(json!({"backoffLimit": 1}), json!({})));
    let p = evicted("p", "2024-01-01T00:00:00Z");
    let first = Seen::Applied(running("p", "2024-01-01T00:00:00Z"));
    assert!(disruption::see_pods(&mut s, first, now).is_empty());
    let reports = disruption::see_pods(&mut s, Seen::Deleted(p.clone()), now);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(s.pods.is_empty() && s.disrupted.contains_key("p"));
    assert!(
        disruption::see_pods(&mut s, Seen::Deleted(p), now).is_empty(),
        "once"
    );
}

#[test]
fn status_counts_the_pods_the_controller_has_not_folded_in_yet() {
    let status: k8s_openapi::api::batch::v1::JobStatus = serde_json::from_value(json!({
        "succeeded": 0, "failed": 1,
        "uncountedTerminatedPods": {"succeeded": ["u2"], "failed": ["u3", "u4"]},
    }))
    .unwrap();
    assert_eq!(super::terminated_counts(&status), (1, 3));
    assert_eq!(super::terminated_counts(&Default::default()), (0, 0));
}
