//! Table-driven tests of the wait's rules: one row per rule, on both sides of each time limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::*;

const UID: &str = "uid-1";
const GRACE: u64 = 120;
const START: u64 = 300;
const OWN_SECRET: u64 = super::OWN_SECRET_GRACE.as_secs();

fn job(conditions: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": "j", "uid": UID},
        "status": {"succeeded": 1, "failed": 2, "conditions": conditions}
    }))
    .expect("a Job")
}

fn job_with(condition: &str, reason: &str) -> Job {
    job(json!([{"type": condition, "status": "True", "reason": reason, "message": "m"}]))
}

fn waiting(container: &str, reason: &str) -> Value {
    json!({"name": container, "image": "img:1", "imageID": "", "ready": false,
           "restartCount": 0, "state": {"waiting": {"reason": reason, "message": "why"}}})
}

fn terminated(container: &str, reason: &str, code: i32) -> Value {
    json!({"name": container, "image": "img:1", "imageID": "", "ready": false, "restartCount": 0,
           "state": {"terminated": {"reason": reason, "exitCode": code}}})
}

fn pod(name: &str, status: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "status": status})).expect("a Pod")
}

fn containers(statuses: Vec<Value>) -> Value {
    json!({"phase": "Pending", "containerStatuses": statuses})
}

fn unschedulable_pod() -> Pod {
    pod(
        "p",
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
               "reason": "Unschedulable", "message": "0/1 nodes are available"}]}),
    )
}

fn rules(deadline: Option<Instant>) -> Rules {
    Rules {
        flow_container: "flow".into(),
        image_pull_grace: Duration::from_secs(GRACE),
        start_timeout: Duration::from_secs(START),
        deadline,
        run_secret: "job-kjenv".into(),
        failed_create_grace: Duration::from_secs(120),
    }
}

/// The outcome in short: "none", "complete", "failed:<reason>", "stuck:<reason>", "deleted",
/// "timedout".
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

/// The Job in short: "none", "running", "<condition>:<reason>", "<condition>=False".
fn job_in_short(short: &str) -> Option<Job> {
    match short.split_once(['=', ':']) {
        _ if short == "none" => None,
        _ if short == "running" => Some(job(json!([]))),
        Some((kind, "False")) => Some(job(json!([{"type": kind, "status": "False"}]))),
        Some((kind, reason)) => Some(job_with(kind, reason)),
        None => Some(job_with(short, "")),
    }
}

/// The pod in short: "" (none), "<container>:<waiting reason>", "init:<waiting reason>",
/// "oom:<container>", "unschedulable".
fn pods_in_short(short: &str) -> Vec<Pod> {
    let status = match short.split_once(':') {
        _ if short.is_empty() => return vec![],
        _ if short == "unschedulable" => return vec![unschedulable_pod()],
        Some(("init", reason)) => {
            json!({"phase": "Pending", "initContainerStatuses": [waiting("init", reason)]})
        }
        Some(("oom", container)) => containers(vec![terminated(container, "OOMKilled", 137)]),
        Some(("missing", secret)) => {
            let mut w = waiting("flow", "CreateContainerConfigError");
            w["state"]["waiting"]["message"] = json!(format!("secret \"{secret}\" not found"));
            containers(vec![w])
        }
        Some((container, reason)) => containers(vec![waiting(container, reason)]),
        None => panic!("no pod {short:?}"),
    };
    vec![pod("p", status)]
}

/// (case, the Job, its pod, seconds from the pod seen to the verdict, seconds to the wait's
/// deadline, the outcome in short).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    u64,
    Option<u64>,
    &'static str,
);

// One row per rule, on both sides of each time limit (a row per line reads as a table).
#[rustfmt::skip]
const CASES: &[Case] = &[
    ("nothing seen yet", "none", "", 0, None, "none"),
    ("a running Job", "running", "", 10, None, "none"),
    ("complete", "Complete", "", 0, None, "complete"),
    ("failed", "Failed:BackoffLimitExceeded", "", 0, None, "failed:BackoffLimitExceeded"),
    ("deadline", "Failed:DeadlineExceeded", "", 0, None, "failed:DeadlineExceeded"),
    ("a condition not true", "Complete=False", "", 0, None, "none"),
    ("pull error within grace", "running", "flow:ErrImagePull", GRACE - 1, None, "none"),
    ("pull error past grace", "running", "flow:ErrImagePull", GRACE, None, "stuck:ErrImagePull"),
    ("pull backoff past grace", "running", "flow:ImagePullBackOff", GRACE, None, "stuck:ImagePullBackOff"),
    ("invalid image name at once", "running", "flow:InvalidImageName", 0, None, "stuck:InvalidImageName"),
    ("init container pull error", "running", "init:ErrImagePull", GRACE, None, "stuck:ErrImagePull"),
    ("sidecar pull error", "running", "sidecar:ErrImagePull", GRACE, None, "stuck:ErrImagePull"),
    ("config error at once", "running", "flow:CreateContainerConfigError", 0, None, "stuck:CreateContainerConfigError"),
    ("create error at once", "running", "flow:CreateContainerError", 0, None, "stuck:CreateContainerError"),
    ("another Secret missing at once", "running", "missing:db-password", 0, None, "stuck:CreateContainerConfigError"),
    ("the run's Secret within its grace", "running", "missing:job-kjenv", OWN_SECRET - 1, None, "none"),
    ("the run's Secret past its grace", "running", "missing:job-kjenv", OWN_SECRET, None, "stuck:CreateContainerConfigError"),
    ("container creating", "running", "flow:ContainerCreating", 10_000, None, "none"),
    ("flow container OOMKilled", "running", "oom:flow", 0, None, "stuck:OOMKilled"),
    ("sidecar OOMKilled", "running", "oom:sidecar", 0, None, "none"),
    ("unschedulable within start timeout", "running", "unschedulable", START - 1, None, "none"),
    ("unschedulable past start timeout", "running", "unschedulable", START, None, "stuck:Unschedulable"),
    ("complete wins over a stuck pod", "Complete", "flow:InvalidImageName", 0, None, "complete"),
    ("a failed Job wins over a stuck pod", "Failed:X", "oom:flow", 0, None, "failed:X"),
    ("before the wait's deadline", "running", "", 4, Some(5), "none"),
    ("the wait's deadline", "running", "", 5, Some(5), "timedout"),
    ("a stuck pod wins over the deadline", "running", "oom:flow", 5, Some(5), "stuck:OOMKilled"),
    ("complete past the deadline", "Complete", "", 9, Some(5), "complete"),
];

#[test]
fn every_rule() {
    let seen = Instant::now();
    for &(name, job, pods, after, deadline, expect) in CASES {
        let deadline = deadline.map(|d| seen + Duration::from_secs(d));
        let mut s = Snapshot::new(rules(deadline), UID);
        s.job = job_in_short(job);
        for p in pods_in_short(pods) {
            s.track(p, seen);
        }
        let got = short(verdict(&s, seen + Duration::from_secs(after)));
        assert_eq!(got, expect, "case {name:?}");
    }
}

fn pull(reason: &str) -> Vec<Pod> {
    pods_in_short(&format!("flow:{reason}"))
}

#[test]
fn deletion_of_our_job_only() {
    let other: Job =
        serde_json::from_value(json!({"metadata": {"name": "j", "uid": "old"}})).unwrap();
    let table: Vec<(&str, Seen<Job>, &str)> = vec![
        ("listed", Seen::Listed(vec![job(json!([]))]), "none"),
        ("gone from a list", Seen::Listed(vec![]), "deleted"),
        (
            "only an earlier run listed",
            Seen::Listed(vec![other.clone()]),
            "deleted",
        ),
        ("deleted", Seen::Deleted(job(json!([]))), "deleted"),
        (
            "an earlier run deleted",
            Seen::Deleted(other.clone()),
            "none",
        ),
        ("an earlier run applied", Seen::Applied(other), "none"),
    ];
    for (name, seen, expect) in table {
        let mut s = Snapshot::new(rules(None), UID);
        s.see_job(Seen::Applied(job(json!([]))));
        s.see_job(seen);
        assert_eq!(short(verdict(&s, Instant::now())), expect, "case {name:?}");
    }
}

#[test]
fn the_pull_clock_restarts_when_the_pod_stops_pulling() {
    let t0 = Instant::now();
    let mut s = Snapshot::new(rules(None), UID);
    s.track(pull("ErrImagePull").remove(0), t0);
    s.track(pod("p", containers(vec![])), t0 + Duration::from_secs(60));
    let again = t0 + Duration::from_secs(100);
    s.track(pull("ErrImagePull").remove(0), again);
    assert_eq!(s.pods["p"].pull_error_since, Some(again));
    assert_eq!(
        short(verdict(&s, t0 + Duration::from_secs(GRACE + 10))),
        "none"
    );
    let past = again + Duration::from_secs(GRACE);
    assert_eq!(short(verdict(&s, past)), "stuck:ErrImagePull");
}

#[test]
fn pods_missing_from_a_list_are_forgotten() {
    let now = Instant::now();
    let mut s = Snapshot::new(rules(None), UID);
    s.see_pods(Seen::Applied(pull("InvalidImageName").remove(0)), now);
    s.see_pods(Seen::Applied(pod("q", containers(vec![]))), now);
    s.see_pods(Seen::Listed(vec![pod("q", containers(vec![]))]), now);
    assert_eq!(s.pods.keys().collect::<Vec<_>>(), ["q"]);
    assert_eq!(short(verdict(&s, now)), "none");
    s.see_pods(Seen::Deleted(pod("q", json!({}))), now);
    assert!(s.pods.is_empty());
}

#[test]
fn complete_counts_and_pods() {
    let mut pods = BTreeMap::new();
    for name in ["b", "a"] {
        let t = PodTrack {
            pod: pod(name, json!({})),
            pull_error_since: None,
            unschedulable_since: None,
            own_secret_missing_since: None,
        };
        pods.insert(name.to_string(), t);
    }
    let finished = complete(&job_with("Complete", ""), &pods).expect("complete");
    let expected = Finished {
        succeeded: 1,
        failed: 2,
        pods: vec!["a".into(), "b".into()],
    };
    assert_eq!(finished, expected);
    assert_eq!(summarize(&pods), "pods: 2 pending");
    assert_eq!(summarize(&BTreeMap::new()), "no pods yet");
}

#[test]
fn stuck_messages_name_the_pod_and_container() {
    let now = Instant::now();
    let mut s = Snapshot::new(rules(None), UID);
    s.track(pull("InvalidImageName").remove(0), now);
    let Some(Outcome::Stuck { pod, message, .. }) = verdict(&s, now) else {
        panic!("stuck");
    };
    assert_eq!(pod, "p");
    assert_eq!(
        message,
        "pod p: container flow cannot pull image \"img:1\": InvalidImageName: why"
    );
}

#[test]
fn the_explaining_pod_is_the_newest_failed_else_the_newest() {
    let at = |name: &str, created: &str, flow: Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "status": {"containerStatuses": [flow]}
        }))
        .unwrap()
    };
    let old_failed = at("a", "2024-01-01T00:00:00Z", terminated("flow", "Error", 1));
    let new_ok = at(
        "b",
        "2024-01-01T00:01:00Z",
        terminated("flow", "Completed", 0),
    );
    let newer_failed = at(
        "c",
        "2024-01-01T00:02:00Z",
        terminated("sidecar", "Error", 1),
    );
    let pods = [old_failed.clone(), new_ok.clone(), newer_failed.clone()];
    let name = |p: Option<&Pod>| p.and_then(|p| p.metadata.name.clone());
    assert_eq!(name(explaining_pod(&pods, "flow")), Some("a".into()));
    assert_eq!(
        name(explaining_pod(&[new_ok, newer_failed], "flow")),
        Some("c".into())
    );
    assert_eq!(name(explaining_pod(&[], "flow")), None);
}
