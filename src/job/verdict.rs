//! The wait's decisions as pure functions, in the style of kube's `runtime::wait::conditions`:
//! a [`Snapshot`] of what the watches saw, and [`verdict`] deciding whether the wait is over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use serde::Serialize;

use super::watch::Seen;

pub mod conditions;
pub mod create;
pub mod disruption;
pub mod flow_container;
pub mod sidecars;

/// What a successful wait saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Finished {
    pub succeeded: i32,
    pub failed: i32,
    pub pods: Vec<String>,
}

/// How the wait ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Job has its Complete (or SuccessCriteriaMet) condition.
    Complete(Finished),
    /// The Job has its Failed (or FailureTarget) condition (DeadlineExceeded and
    /// BackoffLimitExceeded come so), or its pods cannot be created or run at all.
    Failed { reason: String, message: String },
    /// A pod cannot make progress: the Job would never end by itself.
    Stuck {
        pod: String,
        reason: String,
        message: String,
    },
    /// The flow container ended while another container (a classic sidecar) keeps its pod
    /// running: its exit code decides the run.
    FlowEnded {
        pod: String,
        exit_code: i32,
        /// A container still running.
        sidecar: String,
    },
    /// The Job was deleted while the wait ran.
    Deleted,
    /// The wait's own time limit passed.
    TimedOut,
}

/// The limits the rules apply.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The container that runs the flow (the one whose OOM kill fails the wait).
    pub flow_container: String,
    pub image_pull_grace: Duration,
    pub start_timeout: Duration,
    /// The wait's own deadline, if it has one.
    pub deadline: Option<Instant>,
    /// The run's own Secret (`<job>-kjenv`, Cloud mode). kjenv creates it right after the Job,
    /// so a pod may be created before it: its absence is waited out for [`OWN_SECRET_GRACE`].
    pub run_secret: String,
    /// How long the Job's pods may fail to be created (`FailedCreate`) before the wait fails.
    pub failed_create_grace: Duration,
}

/// How long a pod may miss the run's own Secret: the kubelet looks again on its next sync of
/// the pod (about 10 s on a real node), and the Secret exists once `execute()` returned.
pub const OWN_SECRET_GRACE: Duration = Duration::from_secs(60);

/// A pod as last seen, with the instants it was first seen stuck in its current way.
#[derive(Debug, Clone)]
pub struct PodTrack {
    pub pod: Pod,
    pub pull_error_since: Option<Instant>,
    pub unschedulable_since: Option<Instant>,
    /// Since when a container waits for the run's own Secret ([`Rules::run_secret`]).
    pub own_secret_missing_since: Option<Instant>,
}

/// Everything the watches saw so far.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub rules: Rules,
    /// The uid of our Job: a Job of the same name but another uid (an earlier run) is not ours.
    pub uid: String,
    pub job: Option<Job>,
    pub deleted: bool,
    pub pods: BTreeMap<String, PodTrack>,
    /// The Job's `FailedCreate` events ([`create`]).
    pub create_failures: create::CreateFailures,
    /// The attempts seen disrupted, by pod name, kept after their pods are gone ([`disruption`]).
    pub disrupted: BTreeMap<String, disruption::Disruption>,
}

/// Image pull failures: stuck after the grace period (a registry may be slow or flaky).
const PULL_ERRORS: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];
/// Container creation failures that no retry fixes (a missing Secret or ConfigMap, a bad command).
const CREATE_ERRORS: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];

impl Snapshot {
    pub fn new(rules: Rules, uid: impl Into<String>) -> Self {
        Snapshot {
            rules,
            uid: uid.into(),
            job: None,
            deleted: false,
            pods: BTreeMap::new(),
            create_failures: create::CreateFailures::default(),
            disrupted: BTreeMap::new(),
        }
    }

    fn ours(&self, job: &Job) -> bool {
        job.metadata.uid.as_deref() == Some(self.uid.as_str())
    }

    /// Take in a change of the Job watch.
    pub(crate) fn see_job(&mut self, seen: Seen<Job>) {
        match seen {
            Seen::Listed(items) => match items.into_iter().find(|j| self.ours(j)) {
                Some(j) => self.job = Some(j),
                // Deleted before the wait began, or while a watch was being resumed.
                None => self.deleted = true,
            },
            Seen::Applied(j) if self.ours(&j) => self.job = Some(j),
            Seen::Applied(_) => {}
            Seen::Deleted(j) => self.deleted |= self.ours(&j),
        }
    }

    /// Take in a change of the pod watch, seen at `now`.
    pub(crate) fn see_pods(&mut self, seen: Seen<Pod>, now: Instant) {
        match seen {
            Seen::Listed(items) => {
                // Pods missing from a fresh list were deleted while the watch was down.
                let names: Vec<String> = items.iter().map(pod_name).collect();
                self.pods.retain(|name, _| names.contains(name));
                for p in items {
                    self.track(p, now);
                }
            }
            Seen::Applied(p) => self.track(p, now),
            Seen::Deleted(p) => {
                self.pods.remove(&pod_name(&p));
            }
        }
    }

    /// Record `pod`, starting (or stopping) the clocks of the ways it is stuck.
    pub fn track(&mut self, pod: Pod, now: Instant) {
        let pulling = waiting_reasons(&pod).any(|(_, r)| PULL_ERRORS.contains(&r));
        let unschedulable = unschedulable(&pod).is_some();
        let secret_missing = waiting_reasons(&pod).any(|(c, _)| misses(c, &self.rules.run_secret));
        let track = self.pods.entry(pod_name(&pod)).or_insert_with(|| PodTrack {
            pod: pod.clone(),
            pull_error_since: None,
            unschedulable_since: None,
            own_secret_missing_since: None,
        });
        track.pod = pod;
        track.own_secret_missing_since =
            secret_missing.then(|| track.own_secret_missing_since.unwrap_or(now));
        track.pull_error_since = pulling.then(|| track.pull_error_since.unwrap_or(now));
        track.unschedulable_since = unschedulable.then(|| track.unschedulable_since.unwrap_or(now));
    }
}

pub(crate) fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Decide whether the wait is over at `now`, and how.
pub fn verdict(s: &Snapshot, now: Instant) -> Option<Outcome> {
    if s.deleted {
        return Some(Outcome::Deleted);
    }
    if let Some(job) = &s.job {
        if let Some(finished) = complete(job, &s.pods) {
            return Some(Outcome::Complete(finished));
        }
        if let Some(outcome) = conditions::failed(s, job) {
            // kjenv's own podFailurePolicy rule fails a Job on a failure no retry fixes (see
            // `transform`): name that failure, with its line, rather than the rule.
            if let Outcome::Failed { reason, message } = &outcome {
                if reason == "PodFailurePolicy" {
                    let pods = || s.pods.values();
                    if let Some(o) = pods().find_map(|t| flow_container::unfixable(t, &s.rules)) {
                        return Some(o);
                    }
                    if let Some(o) = flow_container::own_rule_outcome(&s.rules, message) {
                        return Some(o);
                    }
                }
            }
            return Some(outcome);
        }
        if let Some(outcome) = conditions::managed_elsewhere(job) {
            return Some(outcome);
        }
    }
    if let Some(outcome) = create::never_created(s, now) {
        return Some(outcome);
    }
    if let Some(outcome) = s.pods.values().find_map(|t| stuck(t, &s.rules, now)) {
        return Some(outcome);
    }
    let pods = || s.pods.values();
    if let Some(o) = pods().find_map(|t| flow_container::unfixable(t, &s.rules)) {
        return Some(o);
    }
    if let Some(o) = pods().find_map(|t| sidecars::flow_ended(t, &s.rules)) {
        return Some(o);
    }
    match s.rules.deadline {
        Some(d) if now >= d => Some(Outcome::TimedOut),
        _ => None,
    }
}

/// The Job's Complete condition, with its counts and the pods seen.
pub fn complete(job: &Job, pods: &BTreeMap<String, PodTrack>) -> Option<Finished> {
    // SuccessCriteriaMet (Kubernetes >= 1.31) decides it before Complete, set once pods ended.
    condition(job, "Complete").or_else(|| condition(job, "SuccessCriteriaMet"))?;
    let (succeeded, failed) = terminated_counts(&job.status.clone().unwrap_or_default());
    Some(Finished {
        succeeded,
        failed,
        pods: pods.keys().cloned().collect(),
    })
}

/// The Job's (succeeded, failed) pods, counting those the controller has seen end but not yet
/// folded into its counters (`uncountedTerminatedPods`): at `SuccessCriteriaMet` or
/// `FailureTarget` the last pods may be there only.
pub fn terminated_counts(s: &JobStatus) -> (i32, i32) {
    let uncounted = s.uncounted_terminated_pods.clone().unwrap_or_default();
    let count = |v: Option<Vec<String>>| i32::try_from(v.map_or(0, |v| v.len())).unwrap_or(0);
    (
        s.succeeded.unwrap_or(0) + count(uncounted.succeeded),
        s.failed.unwrap_or(0) + count(uncounted.failed),
    )
}

/// The Job's condition of this type, when it holds.
pub fn condition<'a>(job: &'a Job, kind: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
}

/// A pod that cannot make progress, by the first rule that holds.
pub fn stuck(t: &PodTrack, rules: &Rules, now: Instant) -> Option<Outcome> {
    let name = pod_name(&t.pod);
    let (reason, message) = waiting_stuck(t, &name, rules, now)
        .or_else(|| oom_killed(&t.pod, &name, &rules.flow_container))
        .or_else(|| unschedulable_stuck(t, &name, rules, now))?;
    Some(Outcome::Stuck {
        pod: name,
        reason,
        message,
    })
}

/// Every container's waiting reason, init containers (which run first) included: any of them
/// can hold the pod back.
fn waiting_reasons(pod: &Pod) -> impl Iterator<Item = (&ContainerStatus, &str)> {
    let status = pod.status.as_ref();
    let init = status.and_then(|s| s.init_container_statuses.as_ref());
    let main = status.and_then(|s| s.container_statuses.as_ref());
    init.into_iter()
        .flatten()
        .chain(main.into_iter().flatten())
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            Some((c, waiting.reason.as_deref().unwrap_or_default()))
        })
}

/// Whether container `c` waits only because the run's own Secret is not there (yet).
fn misses(c: &ContainerStatus, run_secret: &str) -> bool {
    let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
        return false;
    };
    let message = w.message.as_deref().unwrap_or_default();
    w.reason.as_deref() == Some("CreateContainerConfigError")
        && !run_secret.is_empty()
        && message.contains(&format!("\"{run_secret}\""))
}

/// Image pull errors past the grace period (an invalid image name at once), creation errors
/// (one that waits for the run's own Secret past [`OWN_SECRET_GRACE`]).
fn waiting_stuck(
    t: &PodTrack,
    name: &str,
    rules: &Rules,
    now: Instant,
) -> Option<(String, String)> {
    let past_grace = t
        .pull_error_since
        .is_some_and(|since| now.duration_since(since) >= rules.image_pull_grace);
    waiting_reasons(&t.pod).find_map(|(c, reason)| {
        let detail = c.state.as_ref()?.waiting.as_ref()?.message.clone();
        let detail = detail.unwrap_or_default();
        let container = &c.name;
        if PULL_ERRORS.contains(&reason) && (reason == "InvalidImageName" || past_grace) {
            let image = &c.image;
            let message = format!(
                "pod {name}: container {container} cannot pull image {image:?}: {reason}: {detail}"
            );
            return Some((reason.to_string(), message));
        }
        let waited_out = t
            .own_secret_missing_since
            .is_none_or(|since| now.duration_since(since) >= OWN_SECRET_GRACE);
        let own_secret = misses(c, &rules.run_secret);
        (CREATE_ERRORS.contains(&reason) && (!own_secret || waited_out)).then(|| {
            let message =
                format!("pod {name}: container {container} cannot be created: {reason}: {detail}");
            (reason.to_string(), message)
        })
    })
}

/// The flow container's status in `pod`.
pub fn flow_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)
}

/// The flow container killed for its memory: a retry would only be killed again.
fn oom_killed(pod: &Pod, name: &str, container: &str) -> Option<(String, String)> {
    let c = flow_status(pod, container)?;
    let t = c.state.as_ref()?.terminated.as_ref()?;
    (t.reason.as_deref() == Some("OOMKilled")).then(|| {
        let message = format!(
            "pod {name}: container {} was killed for using too much memory (OOMKilled, exit code {})",
            c.name, t.exit_code
        );
        ("OOMKilled".to_string(), message)
    })
}

/// The pod's PodScheduled=False condition with reason Unschedulable.
fn unschedulable(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })
}

/// A pod unschedulable for the whole start timeout.
fn unschedulable_stuck(
    t: &PodTrack,
    name: &str,
    rules: &Rules,
    now: Instant,
) -> Option<(String, String)> {
    let since = t.unschedulable_since?;
    let c = unschedulable(&t.pod)?;
    (now.duration_since(since) >= rules.start_timeout).then(|| {
        let message = format!(
            "pod {name} could not be scheduled for {:.0?}: {}",
            rules.start_timeout,
            c.message.clone().unwrap_or_default()
        );
        ("Unschedulable".to_string(), message)
    })
}

/// The pod that explains a failure: the newest whose flow container exited with an error, else
/// the newest pod.
pub fn explaining_pod<'a>(pods: &'a [Pod], container: &str) -> Option<&'a Pod> {
    let newest = |p: &&Pod| std::cmp::Reverse(p.metadata.creation_timestamp.clone());
    let failed = |p: &&Pod| {
        let t = flow_status(p, container).and_then(|c| c.state.as_ref()?.terminated.as_ref());
        t.is_some_and(|t| t.exit_code != 0)
    };
    let newest_failed = pods.iter().filter(failed).min_by_key(newest);
    newest_failed.or_else(|| pods.iter().min_by_key(newest))
}

/// The pods by phase, for a timeout's message: "pods: 1 pending, 1 running".
pub fn summarize(pods: &BTreeMap<String, PodTrack>) -> String {
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    for t in pods.values() {
        let phase = t.pod.status.as_ref().and_then(|s| s.phase.clone());
        let phase = phase.unwrap_or_else(|| "Pending".into());
        *phases.entry(phase.to_lowercase()).or_default() += 1;
    }
    if phases.is_empty() {
        return "no pods yet".into();
    }
    let parts: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!("pods: {}", parts.join(", "))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_failures;
