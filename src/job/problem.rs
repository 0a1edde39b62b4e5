//! What holds a Job back now, in one line, for `status()` and the CLI's progress line: pods
//! the Job controller cannot create (its newest event is `FailedCreate` and no pod is active),
//! or the newest attempt disrupted (evicted, preempted, its node lost).

use k8s_openapi::api::core::v1::Pod;

use super::inspect::EventView;
use super::verdict::create::{active, FAILED_CREATE};
use super::verdict::disruption::{describe, disrupted, Disruption};

/// The problem, if there is one. `events` are oldest first, `pods` oldest first.
pub fn problem(job: &str, events: &[EventView], pods: &[Pod]) -> Option<String> {
    let object = format!("Job/{job}");
    let newest = events.iter().rev().find(|e| e.object == object);
    let creating_fails = newest.is_some_and(|e| e.reason == FAILED_CREATE);
    if creating_fails && !pods.iter().any(active) {
        let e = newest?;
        return Some(format!("{FAILED_CREATE}: {}", e.message));
    }
    let pod = pods.last()?;
    let (reason, message) = disrupted(pod)?;
    let d = Disruption {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        reason,
        message,
        created: None,
    };
    Some(describe(&d))
}
