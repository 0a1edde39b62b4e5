//! What the wait does to a Job once it has decided the run's outcome before the Job ends:
//! stop the retries of a failure no retry can fix (`backoffLimit: 0`), or delete a Job whose
//! classic sidecars keep its pod running after the flow container ended.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use serde_json::json;

use super::verdict::condition;
use super::JobRef;
use crate::cluster::Connection;
use crate::retry::{retry, Policy};

/// The bounded policy of these clean-up requests: they run as the wait ends.
fn quick(request_timeout: Duration) -> Policy {
    Policy {
        attempts: 3,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        attempt_timeout: request_timeout.min(Duration::from_secs(10)),
        ..Policy::default()
    }
}

/// Stop the Job from creating (or restarting) pods for a failure no retry can fix: its
/// `backoffLimit` becomes 0, so the Job controller fails it on the failure it has seen
/// (`BackoffLimitExceeded`), unless its podFailurePolicy failed it already. Returns what was
/// done, for the error message.
pub async fn stop_retries(conn: &Connection, job: &JobRef, request_timeout: Duration) -> String {
    let api: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let policy = quick(request_timeout);
    let current = match retry(&policy, || api.get(&job.name)).await {
        Ok(j) if j.metadata.uid.as_deref() == Some(job.uid.as_str()) => j,
        Ok(_) | Err(_) => return String::new(),
    };
    if ["Failed", "FailureTarget", "Complete"]
        .iter()
        .any(|c| condition(&current, c).is_some())
    {
        return "; the Job's podFailurePolicy failed it at once".into();
    }
    let patch = Patch::Merge(json!({"spec": {"backoffLimit": 0}}));
    let params = PatchParams::default();
    match retry(&policy, || api.patch(&job.name, &params, &patch)).await {
        Ok(_) => "; kjenv set the Job's backoffLimit to 0 so that it is not retried".into(),
        Err(e) => format!("; kjenv could not stop the Job's retries ({e})"),
    }
}

/// Delete the Job with its pods (a classic sidecar would keep its pod running for ever).
/// Returns what was done, for the error message.
pub async fn end_job(conn: &Connection, job: &JobRef, request_timeout: Duration) -> String {
    let api: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(job.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let deleted = retry(&quick(request_timeout), || async {
        match api.delete(&job.name, &params).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
    match deleted {
        Ok(()) => format!(
            "; kjenv deleted job {} so that its sidecars stop (stop_sidecars=False keeps it)",
            job.name
        ),
        Err(e) => format!("; kjenv could not delete job {} ({e})", job.name),
    }
}
