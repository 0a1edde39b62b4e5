//! A Job on a cluster: submitting it ([`submit`]), waiting for it ([`wait`]) and looking at it
//! ([`inspect`]: status, logs, events, delete, cancel; [`history`]: every attempt's log) and
//! finding it again ([`attach`]).

pub mod attach;
mod follow;
pub mod history;
pub mod inspect;
pub(crate) mod logfile;
mod problem;
mod stop;
pub mod submit;
pub mod verdict;
pub mod wait;
mod watch;

use serde::Serialize;

/// A submitted Job.
#[derive(Debug, Clone, Serialize)]
pub struct JobRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub flow_run_id: String,
    /// The first container: the one that runs the flow.
    pub flow_container: String,
}

impl JobRef {
    /// The label selector of the Job's pods (the legacy label exists on every version).
    pub fn pod_selector(&self) -> String {
        format!("controller-uid={}", self.uid)
    }
}
