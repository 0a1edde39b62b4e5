//! Finding an existing Job again (a submitter that came back, `kjenv attach`): by name, or by
//! the flow run id kjenv labels its Jobs with ([`crate::naming::FLOW_RUN_LABEL`]), in one
//! namespace. Exactly one Job must match; none or several is a one-line error.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};

use super::JobRef;
use crate::cluster::Connection;
use crate::error::{Error, Result};
use crate::naming::FLOW_RUN_LABEL;
use crate::retry::{retry, Policy};

/// Which Job to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The Job of this name.
    Name(String),
    /// The one Job labelled `flow_run_id=<id>`.
    FlowRunId(String),
}

/// The [`JobRef`] of a Job read from the API: the flow container is its first container, as
/// kjenv renders it; `flow_run_id` is empty for a Job without kjenv's label.
pub fn job_ref(job: &Job, namespace: &str) -> JobRef {
    let meta = &job.metadata;
    let flow_container = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .map_or_else(|| "flow".to_string(), |c| c.name.clone());
    JobRef {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_else(|| namespace.into()),
        uid: meta.uid.clone().unwrap_or_default(),
        flow_run_id: meta
            .labels
            .as_ref()
            .and_then(|l| l.get(FLOW_RUN_LABEL))
            .cloned()
            .unwrap_or_default(),
        flow_container,
    }
}

/// Find the one Job `select` names in `namespace`.
///
/// # Errors
/// [`Error::KubeApi`] with status 404 when no Job matches, [`Error::InvalidArgument`] when
/// several Jobs carry the flow run id (naming them), an empty name or id; the API's errors.
pub async fn find(
    conn: &Connection,
    namespace: &str,
    select: &Select,
    policy: &Policy,
) -> Result<JobRef> {
    let api: Api<Job> = Api::namespaced(conn.client.clone(), namespace);
    match select {
        Select::Name(name) => {
            check_nonempty("job name", name)?;
            match retry(policy, || api.get(name)).await {
                Ok(job) => Ok(job_ref(&job, namespace)),
                Err(Error::KubeApi { status: 404, .. }) => Err(not_found(format!(
                    "no job {name:?} in namespace {namespace:?}"
                ))),
                Err(e) => Err(e),
            }
        }
        Select::FlowRunId(id) => {
            check_nonempty("flow run id", id)?;
            let selector = format!("{FLOW_RUN_LABEL}={id}");
            let params = ListParams::default().labels(&selector);
            let jobs = retry(policy, || api.list(&params)).await?.items;
            one_of(jobs, namespace, &selector)
        }
    }
}

fn check_nonempty(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "attach needs a {what}, got an empty one"
        )));
    }
    Ok(())
}

fn not_found(message: String) -> Error {
    Error::KubeApi {
        status: 404,
        reason: "NotFound".into(),
        message,
    }
}

/// The one Job of a list by label, or why there is not exactly one.
fn one_of(jobs: Vec<Job>, namespace: &str, selector: &str) -> Result<JobRef> {
    match jobs.as_slice() {
        [] => Err(not_found(format!(
            "no job in namespace {namespace:?} has the label {selector}"
        ))),
        [job] => Ok(job_ref(job, namespace)),
        many => {
            let names: Vec<&str> = many
                .iter()
                .filter_map(|j| j.metadata.name.as_deref())
                .collect();
            Err(Error::InvalidArgument(format!(
                "{} jobs in namespace {namespace:?} have the label {selector} ({}): attach to \
                 one by name",
                names.len(),
                names.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, container: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": "u-1", "labels": {FLOW_RUN_LABEL: "run-1"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": container}, {"name": "sidecar"}
            ]}}},
        }))
        .unwrap()
    }

    #[test]
    fn a_found_job_names_its_first_container_and_flow_run() {
        let r = job_ref(&job("j", "main"), "ns");
        assert_eq!(
            (r.name.as_str(), r.namespace.as_str(), r.uid.as_str()),
            ("j", "ns", "u-1")
        );
        assert_eq!(
            (r.flow_container.as_str(), r.flow_run_id.as_str()),
            ("main", "run-1")
        );
    }

    #[test]
    fn exactly_one_job_must_carry_the_flow_run_id() {
        let sel = "flow_run_id=run-1";
        let none = one_of(vec![], "ns", sel).unwrap_err().to_string();
        assert_eq!(
            none,
            "no job in namespace \"ns\" has the label flow_run_id=run-1 (NotFound, HTTP 404)"
        );
        assert_eq!(one_of(vec![job("a", "f")], "ns", sel).unwrap().name, "a");
        let two = one_of(vec![job("a", "f"), job("b", "f")], "ns", sel).unwrap_err();
        assert!(matches!(two, Error::InvalidArgument(_)));
        assert_eq!(
            two.to_string(),
            "2 jobs in namespace \"ns\" have the label flow_run_id=run-1 (a, b): attach to one \
             by name"
        );
    }
}
