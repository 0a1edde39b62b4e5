//! Today's Job semantics: the terminal decision known as soon as it is made (`FailureTarget`
//! and `SuccessCriteriaMet`, Kubernetes >= 1.31, come before `Failed` and `Complete`, while the
//! last pods terminate), failures explained (the disruption that ended the Job, the failed
//! indexes of an Indexed Job), and a Job the Job controller leaves to another controller
//! (`spec.managedBy`).

use k8s_openapi::api::batch::v1::Job;

use super::disruption::{describe, last_attempt_disrupted};
use super::{condition, Outcome, Snapshot};

/// The `spec.managedBy` of the Jobs the built-in Job controller runs.
pub const JOB_CONTROLLER: &str = "kubernetes.io/job-controller";

/// The Job's failure, once decided (`FailureTarget` or `Failed`), explained.
pub fn failed(s: &Snapshot, job: &Job) -> Option<Outcome> {
    let c = condition(job, "FailureTarget").or_else(|| condition(job, "Failed"))?;
    let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
    let mut message = c.message.clone().unwrap_or_default();
    if reason == "BackoffLimitExceeded" {
        if let Some(d) = last_attempt_disrupted(s) {
            let message = format!(
                "{}; the Job does not retry it ({reason}: {message})",
                describe(d)
            );
            return Some(Outcome::Failed {
                reason: d.reason.clone(),
                message,
            });
        }
    }
    let indexes = job
        .status
        .as_ref()
        .and_then(|st| st.failed_indexes.as_deref());
    if let Some(indexes) = indexes.filter(|i| !i.is_empty()) {
        message.push_str(&format!(" (failed indexes: {indexes})"));
    }
    Some(Outcome::Failed { reason, message })
}

/// A Job whose `spec.managedBy` names another controller: the Job controller never runs it,
/// and kjenv's rules (which read the pods the Job controller makes) cannot follow it.
pub fn managed_elsewhere(job: &Job) -> Option<Outcome> {
    let by = job.spec.as_ref()?.managed_by.as_deref()?;
    (by != JOB_CONTROLLER).then(|| Outcome::Failed {
        reason: "ManagedByAnotherController".into(),
        message: format!(
            "spec.managedBy is {by:?}: the Job controller leaves this Job to that controller, \
             so kjenv cannot follow it (remove spec.managedBy to let Kubernetes run it)"
        ),
    })
}
