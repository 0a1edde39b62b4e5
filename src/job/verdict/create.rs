//! Pods that can never be created: the Job controller's `FailedCreate` Warning events (a
//! ResourceQuota exceeded, a missing ServiceAccount, an admission webhook or PodSecurity
//! denial, a LimitRange violation) while no pod of the Job is active. The wait fails once they
//! have lasted [`Rules::failed_create_grace`] (quota may free up), with the event's message.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Event, Pod};

use super::{Outcome, Snapshot};
use crate::job::watch::Seen;

/// The reason of the Job controller's event for a pod it could not create.
pub const FAILED_CREATE: &str = "FailedCreate";

/// What the Job's `FailedCreate` events told so far.
#[derive(Debug, Clone, Default)]
pub struct CreateFailures {
    /// Since when pods fail to be created while none is active (`None` when a pod is).
    pub since: Option<Instant>,
    /// The newest event's message (`Error creating: pods "…" is forbidden: …`).
    pub message: String,
}

impl Snapshot {
    /// Take in a change of the watch of the Job's `FailedCreate` events, seen at `now`.
    pub(crate) fn see_events(&mut self, seen: Seen<Event>, now: Instant) {
        let events = match seen {
            Seen::Listed(items) => items,
            Seen::Applied(e) => vec![e],
            Seen::Deleted(_) => return,
        };
        let ours: Vec<Event> = events
            .into_iter()
            .filter(|e| self.failed_create_of_ours(e))
            .collect();
        for e in ours {
            self.see_failed_create(e.message.unwrap_or_default(), now);
        }
    }

    fn failed_create_of_ours(&self, e: &Event) -> bool {
        e.reason.as_deref() == Some(FAILED_CREATE)
            && e.involved_object.uid.as_deref() == Some(self.uid.as_str())
    }

    /// One `FailedCreate`: the clock starts when no pod of the Job is active (a pod that runs
    /// means creation works, or worked: the clock starts again at the next failure).
    pub fn see_failed_create(&mut self, message: String, now: Instant) {
        let none_active = !self.pods.values().any(|t| active(&t.pod));
        let failures = &mut self.create_failures;
        failures.since = none_active.then(|| failures.since.unwrap_or(now));
        failures.message = message;
    }
}

/// A pod that is neither finished nor being deleted.
pub fn active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// The Job's pods could not be created for the whole grace period, and none is active.
pub fn never_created(s: &Snapshot, now: Instant) -> Option<Outcome> {
    let since = s.create_failures.since?;
    let grace = s.rules.failed_create_grace;
    if now.duration_since(since) < grace || s.pods.values().any(|t| active(&t.pod)) {
        return None;
    }
    Some(Outcome::Failed {
        reason: FAILED_CREATE.into(),
        message: format!(
            "no pod could be created for {grace:.1?} (failed_create_grace): {}",
            s.create_failures.message
        ),
    })
}
