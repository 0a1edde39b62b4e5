//! Submitting a planned Job: the Job first, then (Cloud mode) the run's Secret, created already
//! owned by the Job. A Secret without its Job cannot exist; a Job whose Secret cannot be made is
//! deleted again.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use std::future::Future;

use kube::api::{Api, DeleteParams, DynamicObject, PostParams, Preconditions, PropagationPolicy};
use kube::core::ApiResource;
use serde_json::{json, Value};

use super::JobRef;
use crate::cluster::Connection;
use crate::error::{Error, Result};
use crate::naming::{FLOW_RUN_LABEL, JOB_API_VERSION, JOB_KIND, MANAGED_BY_LABEL};
use crate::retry::{retry, Policy};
use crate::run::Plan;
use crate::transform::SECRET_TOKEN_KEY;

fn first_container_name(job: &Value) -> String {
    job.pointer("/spec/template/spec/containers/0/name")
        .and_then(Value::as_str)
        .unwrap_or("flow")
        .to_string()
}

fn job_ref(created: &Value, sub: &Plan) -> JobRef {
    let meta = |k: &str| {
        created
            .pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    JobRef {
        name: meta("name"),
        namespace: sub.namespace.clone(),
        uid: meta("uid"),
        flow_run_id: sub.flow_run_id.clone(),
        flow_container: first_container_name(created),
    }
}

/// The run's Secret, born a dependent of its Job: it never exists without the ownerReference
/// that makes the garbage collector delete it with the Job.
fn secret_body(sub: &Plan, job: &JobRef, name: &str, token: &str) -> Result<Secret> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": {FLOW_RUN_LABEL: sub.flow_run_id, MANAGED_BY_LABEL: "kjenv"},
            "ownerReferences": [{
                "apiVersion": JOB_API_VERSION, "kind": JOB_KIND, "name": job.name, "uid": job.uid,
                "controller": false, "blockOwnerDeletion": false,
            }],
        },
        "type": "Opaque",
        "stringData": {SECRET_TOKEN_KEY: token},
    }))
    .map_err(|e| Error::InvalidArgument(format!("cannot build the run's Secret: {e}")))
}

/// Whether `secret` is owned by the Job `job` (its uid).
fn owned_by(secret: &Secret, job: &JobRef) -> bool {
    let owners = secret.metadata.owner_references.iter().flatten();
    owners.into_iter().any(|o| o.uid == job.uid)
}

/// Create the run's Secret, owned by its Job. One that exists already is fine when the same Job
/// owns it (a resubmission that adopted its Job); any other holder of the name is an error.
async fn create_secret(conn: &Connection, sub: &Plan, job: &JobRef, policy: &Policy) -> Result<()> {
    let Some(secret) = &sub.secret else {
        return Ok(());
    };
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), &sub.namespace);
    let body = secret_body(sub, job, &secret.name, secret.token.expose())?;
    let params = PostParams::default();
    match retry(policy, || api.create(&params, &body)).await {
        Ok(_) => Ok(()),
        Err(Error::KubeApi {
            status: 409,
            reason,
            message,
        }) => {
            let existing = retry(policy, || api.get(&secret.name)).await?;
            if owned_by(&existing, job) {
                return Ok(());
            }
            let holder = existing
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(FLOW_RUN_LABEL));
            let holder = holder.map(String::as_str).unwrap_or_default();
            Err(name_taken(&secret.name, reason, &message, holder))
        }
        Err(e) => Err(e),
    }
}

/// Delete the Job this submission made (its Secret, if any, goes with it: it is a dependent).
/// Quick and bounded: this runs on error paths and after Ctrl-C.
async fn delete_job(conn: &Connection, job: &JobRef, policy: &Policy) -> Result<()> {
    let api: Api<Job> = Api::namespaced(conn.client.clone(), &job.namespace);
    let quick = Policy {
        attempts: 3,
        first_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        attempt_timeout: policy
            .attempt_timeout
            .min(std::time::Duration::from_secs(5)),
        ..*policy
    };
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(job.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    retry(&quick, || async {
        match api.delete(&job.name, &params).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await
}

/// Create the Job, then its Secret (Cloud mode) already owned by the Job, or adopt an existing
/// Job of the same flow run. The Job's pod waits for the Secret (its token comes from it).
///
/// `stop` resolves when the caller gives up (Ctrl-C): the submission stops where it is and
/// [`Error::Interrupted`] returns.
///
/// Nothing is left behind: a Secret exists only as a dependent of its Job, and when the Secret
/// cannot be made (refused, unreachable, interrupted) the Job is deleted, since it cannot run
/// without it. If that deletion fails too, the error says what is left and how to remove it.
///
/// # Errors
/// [`Error::KubeApi`] when the API refuses (a name taken by another run is a 409 that says so);
/// [`Error::Unreachable`] when the API cannot be reached after retries; [`Error::Interrupted`].
pub async fn submit(
    conn: &Connection,
    sub: &Plan,
    policy: &Policy,
    stop: impl Future<Output = ()>,
) -> Result<JobRef> {
    let mut stop = std::pin::pin!(stop);
    let job = until(stop.as_mut(), create_job(conn, sub, policy)).await?;
    let Err(e) = until(stop.as_mut(), create_secret(conn, sub, &job, policy)).await else {
        return Ok(job);
    };
    match delete_job(conn, &job, policy).await {
        Ok(()) => Err(e),
        Err(cleanup) => Err(e.left_behind(format!(
            "the Job {ns}/{name} was left behind and could not be deleted ({cleanup}): \
             kubectl delete job {name} -n {ns}",
            ns = job.namespace,
            name = job.name
        ))),
    }
}

/// `work`, unless `stop` resolves first ([`Error::Interrupted`]).
async fn until<T>(
    stop: std::pin::Pin<&mut impl Future<Output = ()>>,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        biased;
        () = stop => Err(Error::Interrupted),
        result = work => result,
    }
}

/// The 409 for a Job name (or its Secret's name) held by another flow run.
fn name_taken(name: &str, reason: String, message: &str, owner_run: &str) -> Error {
    Error::KubeApi {
        status: 409,
        reason,
        message: format!(
            "{message}: the name {name:?} is taken by another flow run ({}); \
             use unique_job_name=True or another metadata.name",
            if owner_run.is_empty() {
                "not a kjenv Job"
            } else {
                owner_run
            }
        ),
    }
}

/// An object the API returned, as JSON.
fn as_value(obj: &DynamicObject) -> Result<Value> {
    serde_json::to_value(obj).map_err(|source| Error::UnexpectedAnswer {
        what: "a Job",
        source,
    })
}

async fn create_job(conn: &Connection, sub: &Plan, policy: &Policy) -> Result<JobRef> {
    let resource = ApiResource::erase::<Job>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(conn.client.clone(), &sub.namespace, &resource);
    let body: DynamicObject = serde_json::from_value(sub.job.clone()).map_err(|e| {
        Error::InvalidArgument(format!("the rendered Job is not a Kubernetes object: {e}"))
    })?;
    let created = {
        let params = PostParams::default();
        retry(policy, || api.create(&params, &body)).await
    };
    match created {
        Ok(obj) => Ok(job_ref(&as_value(&obj)?, sub)),
        Err(Error::KubeApi {
            status: 409,
            reason,
            message,
        }) if reason == "AlreadyExists" => {
            let existing = as_value(&retry(policy, || api.get(&sub.name)).await?)?;
            let owner_run = existing
                .pointer(&format!("/metadata/labels/{FLOW_RUN_LABEL}"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if owner_run == sub.flow_run_id {
                // The same flow run submitted again (a retry): adopt the Job.
                Ok(job_ref(&existing, sub))
            } else {
                Err(name_taken(&sub.name, reason, &message, owner_run))
            }
        }
        Err(e) => Err(e),
    }
}
