//! Submitting a rendered Job: the run's Secret first (Cloud mode), then the Job, then the
//! Secret's ownerReference to the Job. Nothing is left behind when the Job cannot be created.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use std::future::Future;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::core::ApiResource;
use serde_json::{json, Value};

use super::JobRef;
use crate::cluster::Connection;
use crate::error::{Error, Result};
use crate::naming::{FLOW_RUN_LABEL, MANAGED_BY_LABEL};
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

/// Create the run's Secret; an existing one (a retried submission) gets the token again.
async fn create_secret(conn: &Connection, sub: &Plan, policy: &Policy) -> Result<Option<String>> {
    let Some(secret) = &sub.secret else {
        return Ok(None);
    };
    let (name, token) = (&secret.name, &secret.token);
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), &sub.namespace);
    let body: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {FLOW_RUN_LABEL: sub.flow_run_id, MANAGED_BY_LABEL: "kjenv"}},
        "type": "Opaque",
        "stringData": {SECRET_TOKEN_KEY: token.expose()},
    }))
    .map_err(|e| Error::InvalidArgument(format!("cannot build the run's Secret: {e}")))?;
    let created = {
        let params = PostParams::default();
        retry(policy, || api.create(&params, &body)).await
    };
    match created {
        Ok(_) => Ok(Some(name.clone())),
        Err(Error::KubeApi {
            status: 409,
            reason,
            message,
        }) => {
            // A Secret of this name exists: ours from an earlier attempt of this run (patch it),
            // or another run's, which must be left alone (its Job is what holds the name).
            let existing = retry(policy, || api.get(name)).await?;
            let owner_run = existing
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(FLOW_RUN_LABEL))
                .map(String::as_str)
                .unwrap_or_default();
            if owner_run != sub.flow_run_id {
                return Err(name_taken(&sub.job, reason, &message, owner_run));
            }
            let patch = json!({"stringData": {SECRET_TOKEN_KEY: token.expose()}});
            let merge = Patch::Merge(&patch);
            let params = PatchParams::default();
            retry(policy, || api.patch(name, &params, &merge)).await?;
            Ok(Some(name.clone()))
        }
        Err(e) => Err(e),
    }
}

/// Delete the run's Secret if this run made it and no Job holds it (no ownerReference): what a
/// submission that did not get its Job leaves behind. Another run's Secret, or one a Job owns,
/// is left alone. Best effort and quick: this runs on error paths and after Ctrl-C.
async fn delete_unowned_secret(conn: &Connection, sub: &Plan, name: &str, policy: &Policy) {
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), &sub.namespace);
    let quick = Policy {
        attempts: 3,
        first_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        attempt_timeout: policy
            .attempt_timeout
            .min(std::time::Duration::from_secs(2)),
        ..*policy
    };
    let Ok(Some(existing)) = retry(&quick, || api.get_opt(name)).await else {
        return;
    };
    let meta = &existing.metadata;
    let ours = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(FLOW_RUN_LABEL))
        .is_some_and(|run| *run == sub.flow_run_id);
    let owned = meta
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty());
    if !ours || owned {
        return;
    }
    let params = DeleteParams {
        preconditions: meta.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let _ = retry(&quick, || async {
        match api.delete(name, &params).await {
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
}

/// Make the Secret a dependent of the Job, so it goes when the Job goes.
async fn own_secret(conn: &Connection, job: &JobRef, secret: &str, policy: &Policy) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), &job.namespace);
    let patch = json!({"metadata": {"ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "Job", "name": job.name, "uid": job.uid,
        "controller": false, "blockOwnerDeletion": false,
    }]}});
    let merge = Patch::Merge(&patch);
    let params = PatchParams::default();
    retry(policy, || api.patch(secret, &params, &merge)).await?;
    Ok(())
}

/// Create the Job (after its Secret), or adopt an existing Job of the same flow run.
///
/// `stop` resolves when the caller gives up (Ctrl-C): the submission stops where it is and a
/// Secret made for a Job that was not created is deleted before [`Error::Interrupted`] returns.
/// (Once the Job exists, the Secret's ownerReference is still set: the Job needs the Secret.)
///
/// # Errors
/// [`Error::KubeApi`] when the API refuses (a name taken by another run is a 409 that says so);
/// [`Error::Unreachable`] when the API cannot be reached after retries; [`Error::Interrupted`].
/// The Secret is deleted whenever the Job was not created.
pub async fn submit(
    conn: &Connection,
    sub: &Plan,
    policy: &Policy,
    stop: impl Future<Output = ()>,
) -> Result<JobRef> {
    let mut stop = std::pin::pin!(stop);
    let secret = match until(stop.as_mut(), create_secret(conn, sub, policy)).await {
        Ok(secret) => secret,
        Err(e) => {
            // Cut short with the POST possibly through (Ctrl-C, no answer): undo it.
            if let (Error::Interrupted | Error::Unreachable { .. }, Some(secret)) =
                (&e, &sub.secret)
            {
                delete_unowned_secret(conn, sub, &secret.name, policy).await;
            }
            return Err(e);
        }
    };
    let outcome = until(stop.as_mut(), create_job(conn, sub, policy)).await;
    match (&outcome, &secret) {
        (Ok(job), Some(name)) => {
            // The Job exists and needs the Secret: a failure here is reported (a retried
            // execute adopts the Job and sets the ownerReference again).
            own_secret(conn, job, name, policy).await?;
        }
        (Err(_), Some(name)) => delete_unowned_secret(conn, sub, name, policy).await,
        _ => {}
    }
    outcome
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
fn name_taken(job: &Value, reason: String, message: &str, owner_run: &str) -> Error {
    let name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
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
                Err(name_taken(&sub.job, reason, &message, owner_run))
            }
        }
        Err(e) => Err(e),
    }
}
