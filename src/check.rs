//! `kjenv check`: whether the configured credentials may make every request kjenv makes in a
//! namespace (a SelfSubjectAccessReview for each verb and resource, [`NEEDS`]), and whether the
//! API server would admit the rendered Job (a server-side dry run, `dryRun=All`).

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde::Serialize;

use crate::cluster::{self, Connection};
use crate::error::{Error, Result};
use crate::retry::{retry, Policy};
use crate::run::{self, ConfigNamespace, Inputs, Plan};
use crate::settings::Settings;

/// One permission kjenv needs: the RBAC attributes of the requests it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The resource, with its subresource after a slash (`pods/log`).
    pub resource: &'static str,
    pub verb: &'static str,
    /// What kjenv does with it.
    pub used_for: &'static str,
    /// Needed only when a Prefect Cloud token travels in the run's Secret.
    pub cloud_only: bool,
}

const fn need(group: &'static str, resource: &'static str, verb: &'static str) -> Need {
    Need {
        group,
        resource,
        verb,
        used_for: "",
        cloud_only: false,
    }
}

/// Every request kjenv makes in a Job's namespace, as RBAC sees it (`examples/rbac.yaml` grants
/// exactly these).
pub const NEEDS: [Need; 12] = [
    Need {
        used_for: "execute(): create the Job",
        ..need("batch", "jobs", "create")
    },
    Need {
        used_for: "adopt a resubmitted flow run's Job; status()",
        ..need("batch", "jobs", "get")
    },
    Need {
        used_for: "wait(): list the Job",
        ..need("batch", "jobs", "list")
    },
    Need {
        used_for: "wait(): watch the Job",
        ..need("batch", "jobs", "watch")
    },
    Need {
        used_for: "delete(); remove a Job whose Secret cannot be made",
        ..need("batch", "jobs", "delete")
    },
    Need {
        used_for: "wait(), status(), logs(): list the Job's pods",
        ..need("", "pods", "list")
    },
    Need {
        used_for: "wait(): watch the Job's pods",
        ..need("", "pods", "watch")
    },
    Need {
        used_for: "logs(), wait(stream_logs=True), failure log tails",
        ..need("", "pods/log", "get")
    },
    Need {
        used_for: "events(), status()",
        ..need("", "events", "list")
    },
    Need {
        used_for: "wait(): watch the Job's FailedCreate events",
        ..need("", "events", "watch")
    },
    Need {
        used_for: "the Prefect Cloud token's Secret",
        cloud_only: true,
        ..need("", "secrets", "create")
    },
    Need {
        used_for: "adopt the token Secret of a resubmitted flow run",
        cloud_only: true,
        ..need("", "secrets", "get")
    },
];

/// The answer for one [`Need`].
#[derive(Debug, Clone, Serialize)]
pub struct Permission {
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    pub resource: String,
    pub used_for: String,
    pub allowed: bool,
    /// False for a permission this run would not use (the Secret's, without a Cloud token).
    pub needed: bool,
    /// The authorizer's reason or evaluation error, when it gave one.
    pub detail: String,
}

/// What a server-side dry run of the rendered Job said.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The rendered Job's name.
    pub job: String,
    pub allowed: bool,
    /// The API's refusal (its message, reason and HTTP status), empty when admitted.
    pub detail: String,
}

/// The whole check: each permission, the dry run (when asked for) and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub namespace: String,
    pub permissions: Vec<Permission>,
    pub dry_run: Option<DryRun>,
    /// Every needed permission is allowed and the dry run (if any) admitted the Job.
    pub ok: bool,
}

/// An image for the dry run when the run names none: a dry run pulls nothing.
pub const PLACEHOLDER_IMAGE: &str = "kjenv-check.invalid/placeholder:dry-run";

/// The spec's own flow container image, for a dry run without an image of the run's.
fn spec_image(inputs: &Inputs) -> Option<String> {
    let image = inputs
        .spec
        .pointer("/spec/template/spec/containers/0/image");
    image.and_then(|v| v.as_str()).map(str::to_owned)
}

/// The plan a check renders: as `execute()`'s, with an image even when the run names none.
fn check_plan(inputs: &Inputs, target: &cluster::Target) -> Result<Plan> {
    match run::plan(inputs, ConfigNamespace::Lookup(target.clone())) {
        Err(Error::MissingValue(_)) => {
            let mut inputs = inputs.clone();
            let image = spec_image(&inputs).filter(|i| !i.is_empty());
            inputs.candidates.image = Some(image.unwrap_or_else(|| PLACEHOLDER_IMAGE.into()));
            run::plan(&inputs, ConfigNamespace::Lookup(target.clone()))
        }
        other => other,
    }
}

/// Check `target`'s credentials in the namespace `inputs` resolve to (as `execute()` would),
/// and with `dry_run` the rendered Job by a server-side dry run.
///
/// # Errors
/// [`Error::ClusterConfig`] without a usable configuration; [`Error::KubeApi`] when the API
/// server does not serve SelfSubjectAccessReview (404) or refuses it; [`Error::Unreachable`].
pub async fn check(
    target: &cluster::Target,
    inputs: &Inputs,
    settings: &Settings,
    dry_run: bool,
) -> Result<CheckReport> {
    let plan = check_plan(inputs, target)?;
    let conn = cluster::connect(target, settings.retry.attempt_timeout).await?;
    let cloud = plan.secret.is_some();
    let permissions = permissions(&conn, &plan.namespace, cloud, &settings.retry).await?;
    let dry_run = match dry_run {
        true => Some(dry_run_job(&conn, &plan, &settings.retry).await?),
        false => None,
    };
    let ok = permissions.iter().all(|p| p.allowed || !p.needed)
        && dry_run.as_ref().is_none_or(|d| d.allowed);
    Ok(CheckReport {
        namespace: plan.namespace,
        permissions,
        dry_run,
        ok,
    })
}

/// One SelfSubjectAccessReview per [`Need`], in `namespace`.
async fn permissions(
    conn: &Connection,
    namespace: &str,
    cloud: bool,
    policy: &Policy,
) -> Result<Vec<Permission>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(conn.client.clone());
    let asks = NEEDS.iter().map(|n| ask(&api, namespace, n, policy));
    let answers = join_all(asks).await;
    NEEDS
        .iter()
        .zip(answers)
        .map(|(n, answer)| {
            let (allowed, detail) = answer.map_err(not_served)?;
            Ok(Permission {
                verb: n.verb.into(),
                group: n.group.into(),
                resource: n.resource.into(),
                used_for: n.used_for.into(),
                allowed,
                needed: cloud || !n.cloud_only,
                detail,
            })
        })
        .collect()
}

/// The review of one need: whether it is allowed, and the authorizer's reason.
async fn ask(
    api: &Api<SelfSubjectAccessReview>,
    namespace: &str,
    n: &Need,
    policy: &Policy,
) -> Result<(bool, String)> {
    let (resource, subresource) = match n.resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (n.resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                group: Some(n.group.into()),
                resource: Some(resource.into()),
                subresource,
                verb: Some(n.verb.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let params = PostParams::default();
    let answer = retry(policy, || api.create(&params, &review)).await?;
    let status = answer.status.unwrap_or_default();
    let detail = [status.reason, status.evaluation_error]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Ok((status.allowed, detail))
}

/// A 404 for the review means the server has no such API (kjenv's local cluster, for one).
fn not_served(err: Error) -> Error {
    match err {
        Error::KubeApi { status: 404, .. } => Error::KubeApi {
            status: 404,
            reason: "NotFound".into(),
            message: "this API server does not serve SelfSubjectAccessReview \
                      (authorization.k8s.io/v1), so kjenv check cannot ask it what is allowed"
                .into(),
        },
        Error::KubeApi {
            status,
            reason,
            message,
        } => Error::KubeApi {
            status,
            reason,
            message: format!("cannot ask the API server what is allowed: {message}"),
        },
        other => other,
    }
}

/// Create the rendered Job with `dryRun=All`: admission, validation and quota run, nothing is
/// stored. A refusal is the report's; only an unreachable API is an error.
async fn dry_run_job(conn: &Connection, plan: &Plan, policy: &Policy) -> Result<DryRun> {
    let resource = ApiResource::erase::<Job>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(conn.client.clone(), &plan.namespace, &resource);
    let body: DynamicObject = serde_json::from_value(plan.job.clone()).map_err(|e| {
        Error::InvalidArgument(format!("the rendered Job is not a Kubernetes object: {e}"))
    })?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let detail = match retry(policy, || api.create(&params, &body)).await {
        Ok(_) => String::new(),
        Err(e @ Error::KubeApi { .. }) => e.to_string(),
        Err(e) => return Err(e),
    };
    Ok(DryRun {
        job: plan.name.clone(),
        allowed: detail.is_empty(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_is_a_distinct_request() {
        let mut seen: Vec<(&str, &str, &str)> = NEEDS
            .iter()
            .map(|n| (n.group, n.resource, n.verb))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), NEEDS.len());
        assert!(NEEDS.iter().all(|n| !n.used_for.is_empty()));
    }

    #[test]
    fn only_the_secrets_are_for_cloud_runs() {
        let cloud: Vec<&str> = NEEDS
            .iter()
            .filter(|n| n.cloud_only)
            .map(|n| n.resource)
            .collect();
        assert_eq!(cloud, ["secrets", "secrets"]);
    }
}
