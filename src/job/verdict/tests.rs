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
    }
}

struct Case {
    name: &'static str,
    job: Option<Job>,
    pods: Vec<Pod>,
    /// Seconds from when the pods were seen to the verdict.
    after: u64,
    /// Seconds from when the pods were seen to the wait's deadline.
    deadline: Option<u64>,
    expect: &'static str,
}

fn case(
    name: &'static str,
    job: Option<Job>,
    pods: Vec<Pod>,
    after: u64,
    expect: &'static str,
) -> Case {
    Case {
        name,
        job,
        pods,
        after,
        deadline: None,
        expect,
    }
}

fn pull(reason: &str) -> Vec<Pod> {
    vec![pod("p", containers(vec![waiting("flow", reason)]))]
}

fn cases() -> Vec<Case> {
    let running = || Some(job(json!([])));
    let init_pull = pod(
        "p",
        json!({"phase": "Pending", "initContainerStatuses": [waiting("init", "ErrImagePull")]}),
    );
    let oom = |c: &str| vec![pod("p", containers(vec![terminated(c, "OOMKilled", 137)]))];
    vec![
        case("nothing seen yet", None, vec![], 0, "none"),
        case("a running Job", running(), vec![], 10, "none"),
        case(
            "complete",
            Some(job_with("Complete", "")),
            vec![],
            0,
            "complete",
        ),
        case(
            "failed",
            Some(job_with("Failed", "BackoffLimitExceeded")),
            vec![],
            0,
            "failed:BackoffLimitExceeded",
        ),
        case(
            "deadline",
            Some(job_with("Failed", "DeadlineExceeded")),
            vec![],
            0,
            "failed:DeadlineExceeded",
        ),
        case(
            "a condition not true",
            Some(job(json!([{"type": "Complete", "status": "False"}]))),
            vec![],
            0,
            "none",
        ),
        case(
            "pull error within grace",
            running(),
            pull("ErrImagePull"),
            GRACE - 1,
            "none",
        ),
        case(
            "pull error past grace",
            running(),
            pull("ErrImagePull"),
            GRACE,
            "stuck:ErrImagePull",
        ),
        case(
            "pull backoff past grace",
            running(),
            pull("ImagePullBackOff"),
            GRACE + 5,
            "stuck:ImagePullBackOff",
        ),
        case(
            "invalid image name at once",
            running(),
            pull("InvalidImageName"),
            0,
            "stuck:InvalidImageName",
        ),
        case(
            "init container pull error past grace",
            running(),
            vec![init_pull],
            GRACE,
            "stuck:ErrImagePull",
        ),
        case(
            "config error at once",
            running(),
            pull("CreateContainerConfigError"),
            0,
            "stuck:CreateContainerConfigError",
        ),
        case(
            "create error at once",
            running(),
            pull("CreateContainerError"),
            0,
            "stuck:CreateContainerError",
        ),
        case(
            "container creating",
            running(),
            pull("ContainerCreating"),
            10_000,
            "none",
        ),
        case(
            "flow container OOMKilled",
            running(),
            oom("flow"),
            0,
            "stuck:OOMKilled",
        ),
        case("sidecar OOMKilled", running(), oom("sidecar"), 0, "none"),
        case(
            "unschedulable within start timeout",
            running(),
            vec![unschedulable_pod()],
            START - 1,
            "none",
        ),
        case(
            "unschedulable past start timeout",
            running(),
            vec![unschedulable_pod()],
            START,
            "stuck:Unschedulable",
        ),
        case(
            "complete wins over a stuck pod",
            Some(job_with("Complete", "")),
            pull("InvalidImageName"),
            0,
            "complete",
        ),
        Case {
            deadline: Some(5),
            ..case("before the wait's deadline", running(), vec![], 4, "none")
        },
        Case {
            deadline: Some(5),
            ..case("the wait's deadline", running(), vec![], 5, "timedout")
        },
        Case {
            deadline: Some(5),
            ..case(
                "complete at the deadline",
                Some(job_with("Complete", "")),
                vec![],
                9,
                "complete",
            )
        },
    ]
}

#[test]
fn every_rule() {
    let seen = Instant::now();
    for c in cases() {
        let deadline = c.deadline.map(|d| seen + Duration::from_secs(d));
        let mut s = Snapshot::new(rules(deadline), UID);
        s.job = c.job;
        for p in c.pods {
            s.track(p, seen);
        }
        let got = short(verdict(&s, seen + Duration::from_secs(c.after)));
        assert_eq!(got, c.expect, "case {:?}", c.name);
    }
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
