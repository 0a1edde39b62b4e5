//! Looking at a submitted Job: its status and pods, its flow container's log, its events; and
//! deleting or cancelling it (never orphaning its pods).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Preconditions, PropagationPolicy};
use serde::Serialize;

use super::follow::Follow;
use super::JobRef;
use crate::cluster::Connection;
use crate::error::{Error, Result};
use crate::retry::{retry, Policy};

/// One container of a pod, as `status()` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    pub name: String,
    /// `waiting`, `running` or `terminated`.
    pub state: String,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub restart_count: i32,
}

/// One pod of the Job.
#[derive(Debug, Clone, Serialize)]
pub struct PodView {
    pub name: String,
    pub phase: String,
    pub containers: Vec<ContainerView>,
}

/// A Job's condition.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// `JobRun.status()`.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub namespace: String,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub phase: String,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub conditions: Vec<ConditionView>,
    pub pods: Vec<PodView>,
    pub last_event: Option<String>,
    /// What holds the Job back now, in one line: its pods cannot be created (`FailedCreate`
    /// and the event's message), or its newest attempt was disrupted.
    pub problem: Option<String>,
}

/// One event of the Job or its pods.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    /// `Job/<name>` or `Pod/<name>`.
    pub object: String,
    pub count: i32,
    pub time: Option<String>,
}

pub(crate) async fn job_pods(conn: &Connection, job: &JobRef, policy: &Policy) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    let lp = ListParams::default().labels(&job.pod_selector());
    let mut pods = retry(policy, || api.list(&lp)).await?.items;
    // Oldest first. Creation times have whole seconds: a replacement made in the same second
    // as the pod it replaces sorts after it (the replaced one has failed), then by start time.
    pods.sort_by_key(|p| {
        let status = p.status.as_ref();
        (
            p.metadata.creation_timestamp.clone(),
            status.and_then(|s| s.phase.as_deref()) != Some("Failed"),
            status.and_then(|s| s.start_time.clone()),
        )
    });
    Ok(pods)
}

fn container_view(c: &k8s_openapi::api::core::v1::ContainerStatus) -> ContainerView {
    let state = c.state.clone().unwrap_or_default();
    let (state_name, reason, exit_code) = if let Some(t) = state.terminated {
        ("terminated", t.reason, Some(t.exit_code))
    } else if state.running.is_some() {
        ("running", None, None)
    } else {
        ("waiting", state.waiting.and_then(|w| w.reason), None)
    };
    ContainerView {
        name: c.name.clone(),
        state: state_name.into(),
        reason,
        exit_code,
        restart_count: c.restart_count,
    }
}

/// The Job's state, its pods and its last event.
///
/// # Errors
/// [`Error::KubeApi`] (404 when the Job is gone) or [`Error::Unreachable`].
pub async fn status(conn: &Connection, job: &JobRef, policy: &Policy) -> Result<JobStatus> {
    let jobs: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let current = retry(policy, || jobs.get(&job.name)).await?;
    let s = current.status.clone().unwrap_or_default();
    let conditions: Vec<ConditionView> = s
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| ConditionView {
            kind: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
        })
        .collect();
    let (succeeded, failed) = super::verdict::terminated_counts(&s);
    let is_true = |k: &str| conditions.iter().any(|c| c.kind == k && c.status == "True");
    let pods = job_pods(conn, job, policy).await?;
    // SuccessCriteriaMet and FailureTarget (Kubernetes >= 1.31) decide before the last pods end.
    let phase = if is_true("Complete") || is_true("SuccessCriteriaMet") {
        "Succeeded"
    } else if is_true("Failed") || is_true("FailureTarget") {
        "Failed"
    } else if s.active.unwrap_or(0) > 0
        && pods
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    {
        "Running"
    } else {
        "Pending"
    };
    let pod_views = pods
        .iter()
        .map(|p| {
            let st = p.status.clone().unwrap_or_default();
            PodView {
                name: p.metadata.name.clone().unwrap_or_default(),
                phase: st.phase.unwrap_or_else(|| "Pending".into()),
                containers: st
                    .container_statuses
                    .unwrap_or_default()
                    .iter()
                    .map(container_view)
                    .collect(),
            }
        })
        .collect();
    let events = events(conn, job, policy).await.unwrap_or_default();
    let last_event = events
        .last()
        .map(|e| format!("{} {}: {} ({})", e.kind, e.reason, e.message, e.object));
    let problem = match phase {
        "Succeeded" | "Failed" => None,
        _ => super::problem::problem(&job.name, &events, &pods),
    };
    Ok(JobStatus {
        name: job.name.clone(),
        namespace: job.namespace.clone(),
        phase: phase.into(),
        active: s.active.unwrap_or(0),
        succeeded,
        failed,
        conditions,
        pods: pod_views,
        last_event,
        problem,
    })
}

/// The log of a container (the flow container by default) of the Job's newest pod. Followed,
/// it is the whole log once the container has ended, resumed after a failed or dropped stream
/// without a line lost or repeated.
///
/// # Errors
/// [`Error::KubeApi`] when there is no pod yet or the container has not started; the last
/// error when a followed stream failed the policy's attempts in a row without a new line.
pub async fn logs(
    conn: &Connection,
    job: &JobRef,
    container: Option<&str>,
    follow: bool,
    policy: &Policy,
) -> Result<String> {
    let pods = job_pods(conn, job, policy).await?;
    let Some(pod) = pods.last() else {
        return Err(no_pods(job));
    };
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    let params = LogParams {
        container: Some(container.unwrap_or(&job.flow_container).to_string()),
        follow,
        ..LogParams::default()
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    if follow {
        return follow_log(
            api,
            &name,
            params.container.as_deref().unwrap_or_default(),
            policy,
        )
        .await;
    }
    retry(policy, || api.logs(&name, &params)).await
}

/// The 404 of a log asked for before the Job has a pod.
pub(crate) fn no_pods(job: &JobRef) -> Error {
    Error::KubeApi {
        status: 404,
        reason: "NotFound".into(),
        message: format!("job {} has no pods yet", job.name),
    }
}

/// The whole log of a container, followed to its end through faults.
pub(crate) async fn follow_log(
    api: Api<Pod>,
    pod: &str,
    container: &str,
    policy: &Policy,
) -> Result<String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    Follow::new(api, pod, container, tx).run(policy).await?;
    let mut text = String::new();
    while let Ok(line) = rx.try_recv() {
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// Events of the Job and of its pods, oldest first.
///
/// # Errors
/// [`Error::KubeApi`] or [`Error::Unreachable`].
pub async fn events(conn: &Connection, job: &JobRef, policy: &Policy) -> Result<Vec<EventView>> {
    let api: Api<Event> = Api::namespaced(conn.client.clone(), &job.namespace);
    let mut names = vec![("Job".to_string(), job.name.clone())];
    for pod in job_pods(conn, job, policy).await? {
        names.push(("Pod".to_string(), pod.metadata.name.unwrap_or_default()));
    }
    let mut out = Vec::new();
    for (kind, name) in names {
        let lp = ListParams::default().fields(&format!(
            "involvedObject.name={name},involvedObject.kind={kind}"
        ));
        let list = retry(policy, || api.list(&lp)).await?;
        for e in list.items {
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            // Timestamps have second granularity: within a second, the order of writes
            // (resourceVersion, an increasing number on every API server we know) decides.
            let version = e
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            out.push((
                (when, version),
                EventView {
                    kind: e.type_.unwrap_or_else(|| "Normal".into()),
                    reason: e.reason.unwrap_or_default(),
                    message: e.message.unwrap_or_default(),
                    object: format!("{kind}/{name}"),
                    count: e.count.unwrap_or(1),
                    time: when.map(|t| t.to_string()),
                },
            ));
        }
    }
    out.sort_by_key(|(key, _)| *key);
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// How dependents go with a deleted Job. Orphaning is refused: it leaves pods running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
}

impl std::str::FromStr for Propagation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "Background" | "background" => Ok(Propagation::Background),
            "Foreground" | "foreground" => Ok(Propagation::Foreground),
            other => Err(Error::InvalidArgument(format!(
                "propagation must be \"Background\" or \"Foreground\", got {other:?} (kjenv never orphans a Job's pods)"
            ))),
        }
    }
}

/// Delete the Job and (through propagation) its pods and Secret. Deleting a Job that is already
/// gone succeeds.
///
/// # Errors
/// [`Error::KubeApi`] or [`Error::Unreachable`].
pub async fn delete(
    conn: &Connection,
    job: &JobRef,
    propagation: Propagation,
    policy: &Policy,
) -> Result<()> {
    let api: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let params = DeleteParams {
        propagation_policy: Some(match propagation {
            Propagation::Background => PropagationPolicy::Background,
            Propagation::Foreground => PropagationPolicy::Foreground,
        }),
        ..DeleteParams::default()
    };
    let outcome = retry(policy, || async {
        api.delete(&job.name, &params).await.map(|_| ())
    })
    .await;
    match outcome {
        Err(Error::KubeApi { status: 404, .. }) => Ok(()),
        other => other,
    }
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    /// Whether the Job still existed (false: it was gone already, nothing was deleted).
    pub deleted: bool,
    /// The pods that were asked to stop (those not finished yet).
    pub pods: Vec<String>,
    /// The grace period passed to the pods, if one was given.
    pub grace_period: Option<i64>,
}

/// Cancel the Job: delete it (background propagation, only this Job: its uid is a
/// precondition), then ask its unfinished pods to stop, with `grace_period` seconds when given
/// (else each pod's own `terminationGracePeriodSeconds`). The Job's name is free at once and the
/// call returns without waiting for the pods' processes to end; the garbage collector also
/// deletes the pods and the run's Secret, which the Job owns. A Job already gone is no error.
///
/// # Errors
/// [`Error::InvalidArgument`] for a negative grace period; [`Error::KubeApi`] (409 when a new
/// Job of the same name replaced this one) or [`Error::Unreachable`].
pub async fn cancel(
    conn: &Connection,
    job: &JobRef,
    grace_period: Option<i64>,
    policy: &Policy,
) -> Result<Cancelled> {
    if let Some(g) = grace_period.filter(|g| *g < 0) {
        return Err(Error::InvalidArgument(format!(
            "grace_period must be a whole number of seconds >= 0, got {g}"
        )));
    }
    let pods = job_pods(conn, job, policy).await?;
    let api: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(job.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let deleted = match retry(policy, || async {
        api.delete(&job.name, &params).await.map(|_| ())
    })
    .await
    {
        Ok(()) => true,
        Err(Error::KubeApi { status: 404, .. }) => false,
        Err(e) => return Err(e),
    };
    let running: Vec<String> = pods
        .iter()
        .filter(|p| !finished(p) && p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    if let Some(grace) = grace_period {
        stop_pods(conn, job, &running, grace, policy).await?;
    }
    Ok(Cancelled {
        deleted,
        pods: running,
        grace_period,
    })
}

fn finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Delete these pods with this grace period (a pod gone already is no error). The API server
/// only ever shortens a pod's grace, so the garbage collector's own delete cannot lengthen it.
async fn stop_pods(
    conn: &Connection,
    job: &JobRef,
    pods: &[String],
    grace: i64,
    policy: &Policy,
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    let params = DeleteParams {
        grace_period_seconds: u32::try_from(grace).ok(),
        ..DeleteParams::default()
    };
    for name in pods {
        match retry(policy, || async {
            api.delete(name, &params).await.map(|_| ())
        })
        .await
        {
            Ok(()) | Err(Error::KubeApi { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Cancelled {
    /// What the cancel did, as a phrase: `the job was deleted (1 pod stopping: p)`.
    pub fn describe(&self) -> String {
        if !self.deleted {
            return "the job was gone already".into();
        }
        let pods = match self.pods.as_slice() {
            [] => "no pod was running".to_string(),
            [one] => format!("1 pod stopping: {one}"),
            many => format!("{} pods stopping: {}", many.len(), many.join(", ")),
        };
        let grace = self
            .grace_period
            .map_or_else(String::new, |g| format!(", grace period {g}s"));
        format!("the job was deleted ({pods}{grace})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_says_what_it_did() {
        let gone = Cancelled::default();
        assert_eq!(gone.describe(), "the job was gone already");
        let one = Cancelled {
            deleted: true,
            pods: vec!["p-1".into()],
            grace_period: Some(5),
        };
        assert_eq!(
            one.describe(),
            "the job was deleted (1 pod stopping: p-1, grace period 5s)"
        );
        let none = Cancelled {
            deleted: true,
            ..Cancelled::default()
        };
        assert_eq!(none.describe(), "the job was deleted (no pod was running)");
    }
}
