//! Waiting for a Job: watches of the Job and its pods feed a [`Snapshot`], and the pure
//! [`verdict`] decides when the wait is over (complete, failed, a pod that cannot make progress,
//! deleted, timed out). This module acts on it: it streams the flow container's log lines as
//! they come and explains a failure with the failed container's exit code and log tail.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::follow::{stream_policy, Follow};
use super::verdict::create::FAILED_CREATE;
use super::verdict::{
    disruption, explaining_pod, flow_container, flow_status, summarize, verdict, Outcome, Rules,
    Snapshot,
};
use super::watch::{self, Seen};
use super::JobRef;
use crate::cluster::Connection;
use crate::error::{Error, Result};
use crate::retry::Policy;

pub use super::verdict::Finished;

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
    /// The time limit of one API request (how long a list or watch request may hang).
    pub request_timeout: Duration,
    /// The retry budget of the Job's and pods' watches: once their list and watch requests have
    /// failed in a row for this long (and at least 3 times), the wait ends with the last error:
    /// [`Error::KubeApi`] with its HTTP status (a persistent 500 or 503), or
    /// [`Error::Unreachable`] (connection refused or reset, no answer). Default 60 s; set by
    /// `KJENV_WAIT_RETRY_BUDGET` (seconds, read once by [`crate::settings::Settings`]).
    pub retry_budget: Duration,
    /// How long the Job controller may fail to create the Job's pods (`FailedCreate` events:
    /// a ResourceQuota exceeded, a missing ServiceAccount, an admission denial) while none is
    /// active before the wait fails with the event's message. Default 120 s: quota may free up.
    pub failed_create_grace: Duration,
    /// Once the flow container has ended while classic sidecars keep its pod running (the
    /// wait then returns the flow's outcome), delete the Job with its pods so that they stop.
    /// Default true.
    pub stop_sidecars: bool,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: None,
            image_pull_grace: Duration::from_secs(120),
            start_timeout: Duration::from_secs(300),
            tail_lines: 20,
            request_timeout: crate::retry::DEFAULT_REQUEST_TIMEOUT,
            retry_budget: DEFAULT_WAIT_RETRY_BUDGET,
            failed_create_grace: Duration::from_secs(120),
            stop_sidecars: true,
        }
    }
}

/// [`WaitOptions::retry_budget`] when `KJENV_WAIT_RETRY_BUDGET` does not set one.
pub const DEFAULT_WAIT_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// How often the verdict is taken without news (the time limits pass without events).
const TICK: Duration = Duration::from_millis(200);
/// How long log streams may deliver what they still have once the wait is over.
const LOG_DRAIN: Duration = Duration::from_secs(2);
/// The time limit of each read that explains a failure (the pods, a log tail).
const EXPLAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Wait for `job`. Log lines of the flow container go to `logs` when given, as they come.
///
/// # Errors
/// [`Error::JobFailed`] (the Kubernetes reason, the failed container's exit code and the tail
/// of its log), [`Error::JobTimeout`], an API error from inspecting a failure, the error of
/// a list the API refuses for good (403 Forbidden), or the last error of watches that kept
/// failing for [`WaitOptions::retry_budget`] (the API gone or broken).
pub async fn wait(
    conn: &Connection,
    job: &JobRef,
    options: &WaitOptions,
    logs: Option<mpsc::UnboundedSender<String>>,
) -> Result<Finished> {
    // Dropping `watches` (return, timeout, Ctrl-C) aborts the watches.
    let (mut watches, mut jobs, mut pods) = start_watches(conn, job, options);
    let mut events = watch_failed_creates(conn, job, options, &mut watches);
    let rules = Rules {
        flow_container: job.flow_container.clone(),
        image_pull_grace: options.image_pull_grace,
        start_timeout: options.start_timeout,
        deadline: options.timeout.map(|t| Instant::now() + t),
        run_secret: crate::naming::secret_name(&job.name),
        failed_create_grace: options.failed_create_grace,
    };
    let mut snapshot = Snapshot::new(rules, &job.uid);
    let mut streams = LogStreams::new(conn, job, options, logs);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            Some(seen) = jobs.recv() => snapshot.see_job(seen),
            Some(seen) = pods.recv() => see_pods(&mut snapshot, seen),
            Some(seen) = events.recv() => snapshot.see_events(seen, Instant::now()),
            Some(Ok(Err(e))) = watches.join_next() => {
                // A watch the API refuses for good (403, 404): no event will ever come.
                streams.finish().await;
                return Err(e);
            }
            _ = tick.tick() => {}
        }
        // Pod news first: a pod's disruption comes before the Job's reaction to it, but the two
        // watches' changes may arrive together.
        while let Ok(seen) = pods.try_recv() {
            see_pods(&mut snapshot, seen);
        }
        if let Some(outcome) = verdict(&snapshot, Instant::now()) {
            return conclude(conn, job, options, &snapshot, outcome, streams).await;
        }
        streams.follow_started(&snapshot);
    }
}

type Changes<K> = mpsc::Receiver<Seen<K>>;

/// Take in a change of the pod watch, reporting (at WARNING) each attempt it shows disrupted.
fn see_pods(snapshot: &mut Snapshot, seen: Seen<Pod>) {
    for report in disruption::see_pods(snapshot, seen, Instant::now()) {
        crate::report::warn(&report);
    }
}

/// The watches of the Job (by name) and of its pods (by the Job's uid).
fn start_watches(
    conn: &Connection,
    job: &JobRef,
    o: &WaitOptions,
) -> (JoinSet<Result<()>>, Changes<Job>, Changes<Pod>) {
    let jobs: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    let (job_tx, job_rx) = mpsc::channel(64);
    let (pod_tx, pod_rx) = mpsc::channel(256);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", job.name));
    let by_uid = watcher::Config::default().labels(&job.pod_selector());
    let budget = |what| watch::Budget {
        what,
        period: o.retry_budget,
        request_timeout: o.request_timeout,
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(watch::run(jobs, by_name, budget("job watch"), job_tx));
    tasks.spawn(watch::run(pods, by_uid, budget("pod watch"), pod_tx));
    (tasks, job_rx, pod_rx)
}

/// The watch of the Job's `FailedCreate` events (by the Job's uid). It only adds news: when
/// the API refuses it for good (no right to list events), the wait goes on without it.
fn watch_failed_creates(
    conn: &Connection,
    job: &JobRef,
    o: &WaitOptions,
    tasks: &mut JoinSet<Result<()>>,
) -> Changes<Event> {
    let api: Api<Event> = Api::namespaced(conn.client.clone(), &job.namespace);
    let (tx, rx) = mpsc::channel(64);
    let fields = format!("involvedObject.uid={},reason={FAILED_CREATE}", job.uid);
    let config = watcher::Config::default().fields(&fields);
    let budget = watch::Budget {
        what: "event watch",
        period: o.retry_budget,
        request_timeout: o.request_timeout,
    };
    tasks.spawn(async move {
        if let Err(e) = watch::run(api, config, budget, tx).await {
            crate::report::warn(&format!(
                "the wait goes on without the Job's FailedCreate events: {e}"
            ));
        }
        Ok(())
    });
    rx
}

/// Act on the verdict: the Job's counts, or the error that explains the end.
async fn conclude(
    conn: &Connection,
    job: &JobRef,
    o: &WaitOptions,
    snapshot: &Snapshot,
    outcome: Outcome,
    mut streams: LogStreams,
) -> Result<Finished> {
    // A timed-out wait returns at once; otherwise the logs may deliver their last lines. A pod
    // the watch had not shown yet (a quick Job ends before its pod's events arrive) is read
    // fresh, so that its log is not lost and the counts name it.
    let mut outcome = outcome;
    if outcome != Outcome::TimedOut {
        let api: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
        let fresh = fresh_pods(&api, job).await.unwrap_or_default();
        streams.catch_up(&fresh);
        if let Outcome::Complete(finished) = &mut outcome {
            let names = fresh.iter().filter_map(|p| p.metadata.name.clone());
            finished
                .pods
                .extend(names.filter(|n| !snapshot.pods.contains_key(n)));
        }
        streams.finish().await;
    }
    let seen = |only: Option<&str>| -> Vec<Pod> {
        let pods = snapshot.pods.iter();
        let pods = pods.filter(|(name, _)| only.is_none_or(|o| o == name.as_str()));
        pods.map(|(_, t)| t.pod.clone()).collect()
    };
    match outcome {
        Outcome::Complete(finished) => Ok(finished),
        Outcome::Failed { reason, message } => {
            Err(explain(conn, job, o, seen(None), &reason, &message).await)
        }
        Outcome::Stuck {
            pod,
            reason,
            message,
        } => {
            let err = explain(conn, job, o, seen(Some(&pod)), &reason, &message).await;
            if !flow_container::REASONS.contains(&reason.as_str()) {
                return Err(err);
            }
            let stopped = super::stop::stop_retries(conn, job, o.request_timeout).await;
            Err(with_note(err, &stopped))
        }
        Outcome::FlowEnded {
            pod,
            exit_code,
            sidecar,
        } => flow_ended(conn, job, o, snapshot, (&pod, exit_code, &sidecar)).await,
        Outcome::Deleted => Err(Error::JobFailed {
            reason: "Deleted".into(),
            message: format!("job {} was deleted while kjenv waited for it", job.name),
            exit_code: None,
            log_tail: String::new(),
        }),
        Outcome::TimedOut => Err(Error::JobTimeout(format!(
            "job {} did not finish within {:.1?} ({})",
            job.name,
            o.timeout.unwrap_or_default(),
            summarize(&snapshot.pods)
        ))),
    }
}

/// The flow container ended while `sidecar` keeps its pod running: its exit code is the run's
/// outcome; with [`WaitOptions::stop_sidecars`] the Job goes (after its failure was explained).
async fn flow_ended(
    conn: &Connection,
    job: &JobRef,
    o: &WaitOptions,
    snapshot: &Snapshot,
    (pod, exit_code, sidecar): (&str, i32, &str),
) -> Result<Finished> {
    let outcome = if exit_code == 0 {
        let failed = snapshot
            .job
            .as_ref()
            .and_then(|j| j.status.as_ref()?.failed);
        Ok(Finished {
            succeeded: 1,
            failed: failed.unwrap_or(0),
            pods: snapshot.pods.keys().cloned().collect(),
        })
    } else {
        let pods = snapshot.pods.get(pod).map(|t| t.pod.clone());
        let message = format!(
            "pod {pod}: container {} exited with code {exit_code} while container {sidecar} \
             kept the pod running",
            job.flow_container
        );
        Err(explain(
            conn,
            job,
            o,
            pods.into_iter().collect(),
            "FlowFailed",
            &message,
        )
        .await)
    };
    if !o.stop_sidecars {
        return outcome;
    }
    let note = super::stop::end_job(conn, job, o.request_timeout).await;
    outcome.map_err(|e| with_note(e, &note))
}

/// `err` with `note` (`"; ..."`) after its first line.
fn with_note(err: Error, note: &str) -> Error {
    match err {
        Error::JobFailed {
            reason,
            message,
            exit_code,
            log_tail,
        } => {
            let (first, rest) = message.split_once('\n').unwrap_or((&message, ""));
            let rest = if rest.is_empty() {
                String::new()
            } else {
                format!("\n{rest}")
            };
            Error::JobFailed {
                reason,
                message: format!("{first}{note}{rest}"),
                exit_code,
                log_tail,
            }
        }
        other => other,
    }
}

/// The log streams of the Job's pods, one per container (each named in its lines when the
/// pod has several), started once the container runs; each resumes after a fault without
/// losing or repeating a line ([`Follow`]) and follows an `OnFailure` restart into the next
/// attempt. A log that cannot be read is a warning; it never fails the wait.
struct LogStreams {
    pods: Api<Pod>,
    container: String,
    tx: Option<mpsc::UnboundedSender<String>>,
    policy: Policy,
    started: HashMap<(String, String), Follow>,
    /// Each stream's task, answering with its pod and container when it is over (the log read
    /// to its end, or refused for good).
    tasks: JoinSet<Option<(String, String)>>,
}

impl LogStreams {
    fn new(
        conn: &Connection,
        job: &JobRef,
        o: &WaitOptions,
        tx: Option<mpsc::UnboundedSender<String>>,
    ) -> Self {
        LogStreams {
            pods: Api::namespaced(conn.client.clone(), &job.namespace),
            container: job.flow_container.clone(),
            tx,
            // A stream retries for as long as the wait lasts: the wait's watches bound it.
            policy: Policy {
                attempts: u32::MAX,
                ..stream_policy(o.request_timeout)
            },
            started: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Start following the containers that have started (when logs are wanted).
    fn follow_started(&mut self, snapshot: &Snapshot) {
        for track in snapshot.pods.values() {
            self.start(&track.pod);
        }
    }

    /// Start reading the containers that started but whose log was not followed yet.
    fn catch_up(&mut self, pods: &[Pod]) {
        for pod in pods {
            self.start(pod);
        }
    }

    fn start(&mut self, pod: &Pod) {
        let Some(tx) = &self.tx else { return };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let containers = containers(pod);
        for container in &containers {
            let key = (name.clone(), container.clone());
            if self.started.contains_key(&key) || !started(pod, container) {
                continue;
            }
            let prefix = if containers.len() > 1 {
                format!("[{container}] ")
            } else {
                String::new()
            };
            let follow =
                Follow::new(self.pods.clone(), &name, container, tx.clone()).with_prefix(prefix);
            self.started.insert(key.clone(), follow.clone());
            let (policy, restarted) = (self.policy, restarts(pod, container) > 0);
            self.tasks.spawn(async move {
                let previous = Policy {
                    attempts: 3,
                    ..policy
                };
                if restarted {
                    if let Err(e) = follow.read_previous(&previous).await {
                        warn_unread(&key, &e);
                    }
                }
                match follow.run(&policy).await {
                    Ok(()) => Some(key),
                    // Refused for good (403, the pod gone): said once, not read again.
                    Err(e) => {
                        warn_unread(&key, &e);
                        Some(key)
                    }
                }
            });
        }
    }

    /// Let the flow containers' streams deliver what they still have (bounded; a sidecar that
    /// never ends is not waited for), then stop every stream; a log whose stream did not reach
    /// its end is read once more from where it stopped.
    async fn finish(&mut self) {
        let mut complete = HashSet::new();
        let flow_streams = self
            .started
            .keys()
            .filter(|(_, c)| *c == self.container)
            .count();
        let _ = tokio::time::timeout(LOG_DRAIN, async {
            let mut flows_done = 0;
            while flows_done < flow_streams {
                let Some(done) = self.tasks.join_next().await else {
                    break;
                };
                if let Some(key) = done.ok().flatten() {
                    flows_done += usize::from(key.1 == self.container);
                    complete.insert(key);
                } else {
                    flows_done += 1;
                }
            }
        })
        .await;
        while let Some(done) = self.tasks.try_join_next() {
            complete.extend(done.ok().flatten());
        }
        self.tasks.abort_all();
        let policy = Policy {
            attempts: 3,
            ..self.policy
        };
        for (key, follow) in &self.started {
            if complete.contains(key) {
                continue;
            }
            match tokio::time::timeout(EXPLAIN_TIMEOUT, follow.read_rest(&policy)).await {
                Ok(Err(e)) => warn_unread(key, &e),
                Err(_) => warn_unread(key, &Error::unreachable("no answer in time")),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// The containers whose logs a wait streams: the pod's regular containers in the spec's order
/// (the flow container first), then its native sidecars (init containers with
/// `restartPolicy: Always`, which run beside them).
fn containers(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec.init_containers.iter().flatten();
    let sidecars = sidecars.filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let all = spec.containers.iter().chain(sidecars);
    all.map(|c| c.name.clone()).collect()
}

/// The status of a regular container or of a native sidecar.
fn status_of<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    flow_status(pod, container).or_else(|| {
        let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
        statuses.iter().find(|c| c.name == container)
    })
}

/// How many times the container was restarted in its pod (`OnFailure`; a native sidecar).
fn restarts(pod: &Pod, container: &str) -> i32 {
    status_of(pod, container).map_or(0, |c| c.restart_count)
}

fn started(pod: &Pod, container: &str) -> bool {
    status_of(pod, container)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

/// A log read that failed: a warning, and the wait goes on.
fn warn_unread((pod, container): &(String, String), err: &Error) {
    crate::report::warn(&format!(
        "cannot read the log of container {container} in pod {pod}; the wait goes on without \
         it: {}",
        crate::spec::names::shorten(&err.to_string(), 200)
    ));
}

/// Build the failure error: reason, message, the failed container's exit code and log tail.
/// `seen` are the pods the watch saw, for when they cannot be read fresh.
async fn explain(
    conn: &Connection,
    job: &JobRef,
    o: &WaitOptions,
    seen: Vec<Pod>,
    reason: &str,
    message: &str,
) -> Error {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    // Watches of the Job and of its pods race: read the pods fresh, falling back to what the
    // watch saw (a pod may be gone already).
    let candidates = match fresh_pods(&api, job).await {
        Some(items) if !items.is_empty() => items,
        _ => seen,
    };
    let mut text = format!("job {} failed: {reason}", job.name);
    if !message.is_empty() {
        text.push_str(&format!(": {message}"));
    }
    let (mut exit_code, mut log_tail) = (None, String::new());
    if let Some(pod) = explaining_pod(&candidates, &job.flow_container) {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let flow = flow_status(pod, &job.flow_container);
        // A container restarted in place (`OnFailure`) keeps its last end in `lastState`.
        let end = flow.and_then(flow_container::last_end);
        if let Some(t) = end.cloned() {
            exit_code = Some(t.exit_code);
            text.push_str(&format!(
                "; container {} in pod {pod_name} exited with code {} ({})",
                job.flow_container,
                t.exit_code,
                t.reason.unwrap_or_else(|| "Error".into())
            ));
        }
        log_tail = tail(&api, &pod_name, &job.flow_container, o.tail_lines).await;
        if let Some(line) = end.and_then(|t| flow_container::missing_line(t, &log_tail)) {
            text.push_str(&format!(": {line}"));
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

/// The Job's pods as the API has them now, if it answers in time.
async fn fresh_pods(api: &Api<Pod>, job: &JobRef) -> Option<Vec<Pod>> {
    let params = ListParams::default().labels(&job.pod_selector());
    let listed = tokio::time::timeout(EXPLAIN_TIMEOUT, api.list(&params)).await;
    listed.ok()?.ok().map(|l| l.items)
}

/// The last `lines` lines of the container's log, or nothing if they cannot be read in time.
async fn tail(api: &Api<Pod>, pod: &str, container: &str, lines: i64) -> String {
    let params = LogParams {
        container: Some(container.to_string()),
        tail_lines: Some(lines),
        ..LogParams::default()
    };
    match tokio::time::timeout(EXPLAIN_TIMEOUT, api.logs(pod, &params)).await {
        Ok(Ok(logs)) => logs.trim_end().to_string(),
        _ => String::new(),
    }
}
