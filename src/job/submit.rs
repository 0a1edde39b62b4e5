//! Submitting a rendered Job: the run's Secret first (Cloud mode), then the Job, then the
//! Secret's ownerReference to the Job. Nothing is left behind when the Job cannot be created.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{json, Value};

use super::{JobRef, FLOW_RUN_LABEL};
use crate::cluster::Connection;
use crate::error::{Error, Result};
use crate::retry::{retry, Policy};
use crate::secret::SecretString;
use crate::transform::SECRET_TOKEN_KEY;

/// What to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The rendered Job (see [`crate::transform`]); `metadata.namespace` is set.
    pub job: Value,
    pub namespace: String,
    pub flow_run_id: String,
    /// The Secret to create first, holding the auth token (Cloud mode).
    pub secret: Option<(String, SecretString)>,
}

fn first_container_name(job: &Value) -> String {
    job.pointer("/spec/template/spec/containers/0/name")
        .and_then(Value::as_str)
        .unwrap_or("flow")
        .to_string()
}

fn job_ref(created: &Value, sub: &Submission) -> JobRef {
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
async fn create_secret(
    conn: &Connection,
    sub: &Submission,
    policy: &Policy,
) -> Result<Option<String>> {
    let Some((name, token)) = &sub.secret else {
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), &sub.namespace);
    let body: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {FLOW_RUN_LABEL: sub.flow_run_id, "app.kubernetes.io/managed-by": "kjenv"}},
        "type": "Opaque",
        "stringData": {SECRET_TOKEN_KEY: token.expose()},
    }))
    .map_err(|e| Error::InvalidArgument(format!("cannot build the run's Secret: {e}")))?;
    let created = retry(policy, || {
        let api = api.clone();
        let body = body.clone();
        async move { api.create(&PostParams::default(), &body).await }
    })
    .await;
    match created {
        Ok(_) => Ok(Some(name.clone())),
        Err(Error::KubeApi {
            status: 409,
            reason,
            message,
        }) => {
            // A Secret of this name exists: ours from an earlier attempt of this run (patch it),
            // or another run's, which must be left alone (its Job is what holds the name).
            let existing = retry(policy, || {
                let api = api.clone();
                let name = name.clone();
                async move { api.get(&name).await }
            })
            .await?;
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
            retry(policy, || {
                let api = api.clone();
                let patch = patch.clone();
                let name = name.clone();
                async move {
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                }
            })
            .await?;
            Ok(Some(name.clone()))
        }
        Err(e) => Err(e),
    }
}

async fn delete_secret(conn: &Connection, namespace: &str, name: &str, policy: &Policy) {
    let api: Api<Secret> = Api::namespaced(conn.client.clone(), namespace);
    let _ = retry(policy, || {
        let api = api.clone();
        async move {
            match api.delete(name, &DeleteParams::default()).await {
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                other => other.map(|_| ()),
            }
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
    retry(policy, || {
        let api = api.clone();
        let patch = patch.clone();
        async move {
            api.patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    })
    .await?;
    Ok(())
}

/// Create the Job (after its Secret), or adopt an existing Job of the same flow run.
///
/// # Errors
/// [`Error::KubeApi`] when the API refuses (a name taken by another run is a 409 that says so);
/// [`Error::Unreachable`] when the API cannot be reached after retries. The Secret is deleted
/// whenever the Job was not created.
pub async fn submit(conn: &Connection, sub: Submission, policy: &Policy) -> Result<JobRef> {
    let secret = create_secret(conn, &sub, policy).await?;
    let outcome = create_job(conn, &sub, policy).await;
    match (&outcome, &secret) {
        (Ok(job), Some(name)) => {
            // The Job exists and needs the Secret: a failure here is reported (a retried
            // execute adopts the Job and sets the ownerReference again).
            own_secret(conn, job, name, policy).await?;
        }
        (Err(_), Some(name)) => delete_secret(conn, &sub.namespace, name, policy).await,
        _ => {}
    }
    outcome
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

async fn create_job(conn: &Connection, sub: &Submission, policy: &Policy) -> Result<JobRef> {
    let resource = ApiResource::erase::<Job>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(conn.client.clone(), &sub.namespace, &resource);
    let body: DynamicObject = serde_json::from_value(sub.job.clone()).map_err(|e| {
        Error::InvalidArgument(format!("the rendered Job is not a Kubernetes object: {e}"))
    })?;
    let created = retry(policy, || {
        let api = api.clone();
        let body = body.clone();
        async move { api.create(&PostParams::default(), &body).await }
    })
    .await;
    match created {
        Ok(obj) => {
            let value =
                serde_json::to_value(&obj).map_err(|e| Error::Unreachable(e.to_string()))?;
            Ok(job_ref(&value, sub))
        }
        Err(Error::KubeApi {
            status: 409,
            reason,
            message,
        }) if reason == "AlreadyExists" => {
            let name = sub
                .job
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let existing = retry(policy, || {
                let api = api.clone();
                async move { api.get(name).await }
            })
            .await?;
            let existing =
                serde_json::to_value(&existing).map_err(|e| Error::Unreachable(e.to_string()))?;
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
