//! Disrupted attempts: pods with the `DisruptionTarget` condition (an eviction through the
//! Eviction API or for node pressure, preemption, node loss, pod garbage collection) or evicted
//! by their kubelet (`status.reason: Evicted`). Each is reported once, as it happens, with
//! whether the Job will retry it; a Job that fails because of one is named after it.

use k8s_openapi::api::batch::v1::{Job, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use std::time::Instant;

use super::{pod_name, Snapshot};
use crate::job::watch::Seen;

/// A disrupted attempt, as first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disruption {
    pub pod: String,
    /// `EvictionByEvictionAPI`, `PreemptionByScheduler`, `DeletionByTaintManager`,
    /// `TerminationByKubelet`, `DeletionByPodGC`, `Evicted`, …
    pub reason: String,
    pub message: String,
    pub created: Option<Time>,
}

/// Take in a change of the pod watch (as [`Snapshot::see_pods`]) and return the reports of the
/// pods it shows disrupted for the first time: a deleted pod's last state counts too (an
/// evicted pod's changes may all arrive at once, its deletion among them).
pub(crate) fn see_pods(s: &mut Snapshot, seen: Seen<Pod>, now: Instant) -> Vec<String> {
    let mut reports = Vec::new();
    if let Seen::Deleted(pod) = &seen {
        s.track(pod.clone(), now);
        reports = news(s);
    }
    s.see_pods(seen, now);
    reports.extend(news(s));
    reports
}

/// Record the pods newly seen disrupted; the one-line report of each (for the wait to warn).
pub fn news(s: &mut Snapshot) -> Vec<String> {
    let mut reports = Vec::new();
    for t in s.pods.values() {
        let name = pod_name(&t.pod);
        if s.disrupted.contains_key(&name) {
            continue;
        }
        let Some((reason, message)) = disrupted(&t.pod) else {
            continue;
        };
        let d = Disruption {
            pod: name.clone(),
            reason,
            message,
            created: t.pod.metadata.creation_timestamp.clone(),
        };
        let job = s.job.as_ref().and_then(|j| j.metadata.name.clone());
        let job = job.unwrap_or_default();
        let retry = retry(s.job.as_ref(), &t.pod);
        reports.push(format!("job {job}: {}; {retry}", describe(&d)));
        s.disrupted.insert(name, d);
    }
    reports
}

/// "pod P was disrupted: REASON: MESSAGE".
pub fn describe(d: &Disruption) -> String {
    let mut text = format!("pod {} was disrupted: {}", d.pod, d.reason);
    if !d.message.is_empty() {
        text.push_str(&format!(": {}", d.message));
    }
    text
}

/// Why `pod` was disrupted, if it was: its DisruptionTarget condition, else a kubelet eviction.
pub fn disrupted(pod: &Pod) -> Option<(String, String)> {
    let status = pod.status.as_ref()?;
    let conditions = status.conditions.iter().flatten();
    if let Some(c) = conditions
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    {
        let reason = c
            .reason
            .clone()
            .unwrap_or_else(|| "DisruptionTarget".into());
        return Some((reason, c.message.clone().unwrap_or_default()));
    }
    (status.reason.as_deref() == Some("Evicted"))
        .then(|| ("Evicted".into(), status.message.clone().unwrap_or_default()))
}

/// Whether the Job will retry the disrupted `pod`, as its spec and counts stand now.
fn retry(job: Option<&Job>, pod: &Pod) -> String {
    let Some(spec) = job.and_then(|j| j.spec.as_ref()) else {
        return "the Job controller decides whether to retry it".into();
    };
    let rules = spec.pod_failure_policy.as_ref().map(|p| p.rules.as_slice());
    if let Some((i, rule)) = rules
        .unwrap_or_default()
        .iter()
        .enumerate()
        .find(|(_, r)| matches(r, pod))
    {
        return match rule.action.as_str() {
            "Ignore" => format!(
                "the Job will retry it (podFailurePolicy rule {i}: Ignore, not counted against backoffLimit)"
            ),
            "FailJob" => format!("the Job will not retry it (podFailurePolicy rule {i}: FailJob)"),
            "FailIndex" => {
                format!("the Job will not retry its index (podFailurePolicy rule {i}: FailIndex)")
            }
            _ => counted(job, spec.backoff_limit_per_index, spec.backoff_limit),
        };
    }
    counted(job, spec.backoff_limit_per_index, spec.backoff_limit)
}

/// The retry of a failure counted against the backoff limit.
fn counted(job: Option<&Job>, per_index: Option<i32>, limit: Option<i32>) -> String {
    if let Some(n) = per_index {
        return format!("the Job retries its index up to {n} times (backoffLimitPerIndex)");
    }
    let limit = limit.unwrap_or(6);
    let failed = job.and_then(|j| j.status.as_ref()?.failed).unwrap_or(0);
    let failures = failed + 1;
    if failures <= limit {
        format!("the Job will retry it (failure {failures} of the {limit} its backoffLimit allows)")
    } else {
        format!("the Job will not retry it (backoffLimit {limit} reached)")
    }
}

/// Whether a podFailurePolicy rule matches the disrupted pod: one of its pod conditions holds,
/// or a container that ended with a non-zero code matches its exit codes (as the Job
/// controller matches them).
fn matches(rule: &PodFailurePolicyRule, pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let on_conditions = rule.on_pod_conditions.iter().flatten().any(|pattern| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == pattern.type_ && c.status == pattern.status)
    });
    let on_exit = rule.on_exit_codes.as_ref().is_some_and(|req| {
        let all = status
            .container_statuses
            .iter()
            .chain(&status.init_container_statuses);
        all.flatten().any(|c| {
            let code = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code);
            let named = req.container_name.as_ref().is_none_or(|n| *n == c.name);
            let within = |code: i32| req.values.contains(&code) == (req.operator == "In");
            named && code.is_some_and(|code| code != 0 && within(code))
        })
    });
    on_conditions || on_exit
}

/// The disruption that ended the Job: the newest attempt, when it was disrupted.
pub fn last_attempt_disrupted(s: &Snapshot) -> Option<&Disruption> {
    let newest_disrupted = s.disrupted.values().max_by_key(|d| d.created.clone())?;
    let newer_pod = s.pods.values().any(|t| {
        let name = pod_name(&t.pod);
        !s.disrupted.contains_key(&name)
            && t.pod.metadata.creation_timestamp.clone() > newest_disrupted.created
    });
    (!newer_pod).then_some(newest_disrupted)
}
