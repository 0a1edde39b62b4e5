//! Waiting for a Job, driven by watches of the Job and its pods: returns when the Job is
//! Complete, fails when it is Failed, and fails fast on pods that cannot make progress
//! (image pull errors past a grace period, config errors, OOM kills, unschedulable pods).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::AsyncBufReadExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, ListParams, LogParams};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::watch::{self, Seen};
use super::JobRef;
use crate::cluster::Connection;
use crate::error::{Error, Result};

/// How to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Give up after this long ([`Error::JobTimeout`]); `None` waits as long as it takes.
    pub timeout: Option<Duration>,
    /// How long a pod may fail to pull its image before the wait fails.
    pub image_pull_grace: Duration,
    /// How long a pod may stay unschedulable before the wait fails.
    pub start_timeout: Duration,
    /// How many log lines a failure message carries.
    pub tail_lines: i64,
    /// The time limit of one API request made while waiting.
    pub request_timeout: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: None,
            image_pull_grace: Duration::from_secs(120),
            start_timeout: Duration::from_secs(300),
            tail_lines: 20,
            request_timeout: crate::settings::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What a successful wait saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Finished {
    pub succeeded: i32,
    pub failed: i32,
    pub pods: Vec<String>,
}

struct PodTrack {
    pod: Pod,
    pull_error_since: Option<Instant>,
    unschedulable_since: Option<Instant>,
    streaming: bool,
}

fn flow_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)
}

fn condition<'a>(
    job: &'a Job,
    kind: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
}

/// Wait for `job`. Log lines of the flow container go to `logs` when given, as they come.
///
/// # Errors
/// [`Error::JobFailed`] (the Kubernetes reason, the failed container's exit code and the tail
/// of its log), [`Error::JobTimeout`], an API error from inspecting a failure, or the error of
/// a list the API refuses for good (403 Forbidden).
pub async fn wait(
    conn: &Connection,
    job: &JobRef,
    options: &WaitOptions,
    logs: Option<mpsc::UnboundedSender<String>>,
) -> Result<Finished> {
    let jobs: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    let (job_tx, mut job_rx) = mpsc::channel(64);
    let (pod_tx, mut pod_rx) = mpsc::channel(256);
    // Dropping the set (return, timeout, Ctrl-C) aborts the watches and log streams.
    let mut tasks = JoinSet::new();
    tasks.spawn(watch::run(
        jobs,
        Some(format!("metadata.name={}", job.name)),
        None,
        job_tx,
    ));
    tasks.spawn(watch::run(
        pods.clone(),
        None,
        Some(job.pod_selector()),
        pod_tx,
    ));

    let deadline = options.timeout.map(|t| Instant::now() + t);
    let mut tracked: HashMap<String, PodTrack> = HashMap::new();
    let mut streams: JoinSet<()> = JoinSet::new();
    let mut latest_job: Option<Job> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            Some(seen) = job_rx.recv() => {
                let ours = |j: &Job| j.metadata.uid.as_deref() == Some(job.uid.as_str());
                let gone = match seen {
                    Seen::Listed(items) => match items.into_iter().find(|j| ours(j)) {
                        Some(j) => { latest_job = Some(j); false }
                        // Deleted before the wait began, or while a watch was being resumed.
                        None => true,
                    },
                    Seen::Applied(j) => { if ours(&j) { latest_job = Some(j); } false }
                    // A Job of the same name but another uid (an earlier run) is not ours.
                    Seen::Deleted(j) => ours(&j),
                };
                if gone {
                    finish_streams(&mut streams).await;
                    return Err(Error::JobFailed {
                        reason: "Deleted".into(),
                        message: format!("job {} was deleted while kjenv waited for it", job.name),
                        exit_code: None,
                        log_tail: String::new(),
                    });
                }
            }
            Some(seen) = pod_rx.recv() => match seen {
                Seen::Listed(items) => {
                    // Pods missing from a fresh list were deleted while the watch was down.
                    let names: std::collections::HashSet<String> =
                        items.iter().filter_map(|p| p.metadata.name.clone()).collect();
                    tracked.retain(|name, _| names.contains(name));
                    for p in items { track(&mut tracked, p); }
                }
                Seen::Applied(p) => track(&mut tracked, p),
                Seen::Deleted(p) => { tracked.remove(p.metadata.name.as_deref().unwrap_or_default()); }
            },
            Some(Ok(Err(e))) = tasks.join_next() => {
                // A watch the API refuses for good (403, 404): no event will ever come.
                finish_streams(&mut streams).await;
                return Err(e);
            }
            _ = tick.tick() => {}
        }
        if let Some(j) = &latest_job {
            if condition(j, "Complete").is_some() {
                finish_streams(&mut streams).await;
                let s = j.status.clone().unwrap_or_default();
                return Ok(Finished {
                    succeeded: s.succeeded.unwrap_or(0),
                    failed: s.failed.unwrap_or(0),
                    pods: tracked.keys().cloned().collect(),
                });
            }
            if let Some(c) = condition(j, "Failed") {
                finish_streams(&mut streams).await;
                let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
                let message = c.message.clone().unwrap_or_default();
                return Err(explain(conn, job, &tracked, &reason, &message, options).await);
            }
        }
        let now = Instant::now();
        for (name, track) in tracked.iter_mut() {
            if let Some(err) = stuck(job, name, track, now, options) {
                finish_streams(&mut streams).await;
                let (reason, message) = err;
                return Err(explain(
                    conn,
                    job,
                    &tracked_single(name, track),
                    &reason,
                    &message,
                    options,
                )
                .await);
            }
            if let Some(tx) = &logs {
                if !track.streaming && flow_started(&track.pod, &job.flow_container) {
                    track.streaming = true;
                    streams.spawn(stream_log(
                        pods.clone(),
                        name.clone(),
                        job.flow_container.clone(),
                        tx.clone(),
                    ));
                }
            }
        }
        if let Some(d) = deadline {
            if now >= d {
                let summary = summarize(&tracked);
                return Err(Error::JobTimeout(format!(
                    "job {} did not finish within {:.1?} ({summary})",
                    job.name,
                    options.timeout.unwrap_or_default()
                )));
            }
        }
    }
}

fn track(tracked: &mut HashMap<String, PodTrack>, pod: Pod) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    match tracked.get_mut(&name) {
        Some(t) => t.pod = pod,
        None => {
            tracked.insert(
                name,
                PodTrack {
                    pod,
                    pull_error_since: None,
                    unschedulable_since: None,
                    streaming: false,
                },
            );
        }
    }
}

fn tracked_single(name: &str, track: &PodTrack) -> HashMap<String, PodTrack> {
    let mut m = HashMap::new();
    m.insert(
        name.to_string(),
        PodTrack {
            pod: track.pod.clone(),
            pull_error_since: None,
            unschedulable_since: None,
            streaming: false,
        },
    );
    m
}

/// Let log streams deliver what they still have (bounded), then stop them.
async fn finish_streams(streams: &mut JoinSet<()>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while streams.join_next().await.is_some() {}
    })
    .await;
    streams.abort_all();
}

fn flow_started(pod: &Pod, container: &str) -> bool {
    flow_status(pod, container)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

async fn stream_log(
    pods: Api<Pod>,
    pod: String,
    container: String,
    tx: mpsc::UnboundedSender<String>,
) {
    let params = LogParams {
        container: Some(container),
        follow: true,
        ..LogParams::default()
    };
    let Ok(reader) = pods.log_stream(&pod, &params).await else {
        return;
    };
    let mut lines = std::pin::pin!(reader.lines());
    while let Some(Ok(line)) = futures::StreamExt::next(&mut lines).await {
        if tx.send(line).is_err() {
            return;
        }
    }
}

/// A pod that cannot make progress: (reason, message).
fn stuck(
    job: &JobRef,
    name: &str,
    track: &mut PodTrack,
    now: Instant,
    o: &WaitOptions,
) -> Option<(String, String)> {
    let status = track.pod.status.as_ref()?;
    // Any container can hold the pod back, init containers (which run first) included.
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let mut pulling = false;
    for c in containers {
        let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.clone().unwrap_or_default();
        let detail = w.message.clone().unwrap_or_default();
        match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
                pulling = true;
                let since = *track.pull_error_since.get_or_insert(now);
                if reason == "InvalidImageName" || now.duration_since(since) >= o.image_pull_grace {
                    return Some((
                        reason.clone(),
                        format!(
                            "pod {name}: container {} cannot pull image {:?}: {reason}: {detail}",
                            c.name, c.image
                        ),
                    ));
                }
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                return Some((
                    reason.clone(),
                    format!(
                        "pod {name}: container {} cannot be created: {reason}: {detail}",
                        c.name
                    ),
                ));
            }
            _ => {}
        }
    }
    if !pulling {
        track.pull_error_since = None;
    }
    if let Some(c) = flow_status(&track.pod, &job.flow_container) {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) {
            if t.reason.as_deref() == Some("OOMKilled") {
                return Some(("OOMKilled".into(), format!("pod {name}: container {} was killed for using too much memory (OOMKilled, exit code {})", c.name, t.exit_code)));
            }
        }
    }
    let unschedulable = status.conditions.as_ref().and_then(|cs| {
        cs.iter().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
    });
    match unschedulable {
        Some(c) => {
            let since = *track.unschedulable_since.get_or_insert(now);
            if now.duration_since(since) >= o.start_timeout {
                return Some((
                    "Unschedulable".into(),
                    format!(
                        "pod {name} could not be scheduled for {:.0?}: {}",
                        o.start_timeout,
                        c.message.clone().unwrap_or_default()
                    ),
                ));
            }
        }
        None => track.unschedulable_since = None,
    }
    None
}

fn summarize(tracked: &HashMap<String, PodTrack>) -> String {
    let mut phases: HashMap<String, usize> = HashMap::new();
    for t in tracked.values() {
        let phase = t
            .pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into());
        *phases.entry(phase.to_lowercase()).or_default() += 1;
    }
    if phases.is_empty() {
        return "no pods yet".into();
    }
    let mut parts: Vec<String> = phases
        .into_iter()
        .map(|(p, n)| format!("{n} {p}"))
        .collect();
    parts.sort();
    format!("pods: {}", parts.join(", "))
}

/// Build the failure error: reason, message, the failed container's exit code and log tail.
async fn explain(
    conn: &Connection,
    job: &JobRef,
    tracked: &HashMap<String, PodTrack>,
    reason: &str,
    message: &str,
    o: &WaitOptions,
) -> Error {
    // Watches of the Job and of its pods race: read the pods fresh, falling back to what the
    // watch saw (a pod may be gone already).
    let pods_api: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    let fresh = tokio::time::timeout(
        Duration::from_secs(5),
        pods_api.list(&ListParams::default().labels(&job.pod_selector())),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|l| l.items);
    let mut candidates: Vec<Pod> = match fresh {
        Some(items) if !items.is_empty() => items,
        _ => tracked.values().map(|t| t.pod.clone()).collect(),
    };
    // The most recent pod whose flow container terminated with an error, else the newest pod.
    candidates.sort_by_key(|p| std::cmp::Reverse(p.metadata.creation_timestamp.clone()));
    let failed = candidates
        .iter()
        .find(|p| {
            flow_status(p, &job.flow_container)
                .and_then(|c| {
                    c.state
                        .as_ref()?
                        .terminated
                        .as_ref()
                        .map(|t| t.exit_code != 0)
                })
                .unwrap_or(false)
        })
        .or(candidates.first());
    let mut exit_code = None;
    let mut text = format!("job {} failed: {reason}", job.name);
    if !message.is_empty() {
        text.push_str(&format!(": {message}"));
    }
    let mut log_tail = String::new();
    if let Some(pod) = failed {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(t) =
            flow_status(pod, &job.flow_container).and_then(|c| c.state.as_ref()?.terminated.clone())
        {
            exit_code = Some(t.exit_code);
            text.push_str(&format!(
                "; container {} in pod {pod_name} exited with code {} ({})",
                job.flow_container,
                t.exit_code,
                t.reason.unwrap_or_else(|| "Error".into())
            ));
        }
        let params = LogParams {
            container: Some(job.flow_container.clone()),
            tail_lines: Some(o.tail_lines),
            ..LogParams::default()
        };
        if let Ok(Ok(logs)) =
            tokio::time::timeout(Duration::from_secs(5), pods_api.logs(&pod_name, &params)).await
        {
            log_tail = logs.trim_end().to_string();
        }
        if !log_tail.is_empty() {
            text.push_str(&format!("\nlast log lines of {pod_name}:\n{log_tail}"));
        }
    }
    Error::JobFailed {
        reason: reason.to_string(),
        message: text,
        exit_code,
        log_tail,
    }
}
