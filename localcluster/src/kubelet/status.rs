//! The kubelet's model of a pod's containers and how it becomes `Pod.status`: container
//! states, phase, conditions (the QoS class is `crate::resources`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::meta::rfc3339;

/// A finished container attempt (`state.terminated` / `lastState.terminated`).
#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    /// Exit code (128 + N when killed by signal N; 128 for a start error).
    pub exit_code: i32,
    /// The signal that killed the process, if any.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `ContainerStatusUnknown`.
    pub reason: String,
    /// Why, when there is more to say.
    pub message: Option<String>,
    /// When the attempt started (or tried to).
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// The attempt's container ID (empty if it never started).
    pub container_id: String,
}

impl Terminated {
    /// The terminated state for a process exit: `Completed` for 0, `Error` otherwise.
    pub fn from_exit(
        exit_code: i32,
        signal: Option<i32>,
        started_at: DateTime<Utc>,
        container_id: &str,
    ) -> Self {
        Terminated {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at,
            finished_at: Utc::now(),
            container_id: container_id.into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
        });
        if let Some(s) = self.signal {
            t["signal"] = json!(s);
        }
        if let Some(m) = &self.message {
            t["message"] = json!(m);
        }
        if !self.container_id.is_empty() {
            t["containerID"] = json!(self.container_id);
        }
        t
    }
}

/// Exactly one of the three container states.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, ….
    Waiting {
        /// The waiting reason.
        reason: String,
        /// Details, if any.
        message: Option<String>,
    },
    /// The process runs.
    Running {
        /// Since when.
        started_at: DateTime<Utc>,
    },
    /// The attempt is over.
    Terminated(Terminated),
}

impl State {
    /// A waiting state.
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        State::Waiting {
            reason: reason.into(),
            message,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({ "reason": reason });
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({ "waiting": w })
            }
            State::Running { started_at } => {
                json!({ "running": { "startedAt": rfc3339(*started_at) } })
            }
            State::Terminated(t) => json!({ "terminated": t.to_json() }),
        }
    }
}

/// What the kubelet knows about one container of a pod.
#[derive(Debug, Clone)]
pub struct Ctr {
    /// Container name.
    pub name: String,
    /// Image as given (recorded, never pulled).
    pub image: String,
    /// An init container?
    pub init: bool,
    /// A native sidecar: an init container with `restartPolicy: Always`, which keeps running
    /// beside the containers.
    pub restartable: bool,
    /// Restarts so far (OnFailure).
    pub restart_count: i64,
    /// The current state.
    pub state: State,
    /// The previous attempt, after a restart.
    pub last_state: Option<Terminated>,
    /// The current attempt's container ID (empty before the first start).
    pub container_id: String,
}

impl Ctr {
    /// A container that has not been created yet.
    pub fn new(name: &str, image: &str, init: bool, waiting_reason: &str) -> Self {
        Ctr {
            name: name.into(),
            image: image.into(),
            init,
            restartable: false,
            restart_count: 0,
            state: State::waiting(waiting_reason, None),
            last_state: None,
            container_id: String::new(),
        }
    }

    /// Running now?
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Terminated with exit code 0?
    pub fn succeeded(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    /// Done with, as an init container: completed, or (a sidecar) started.
    fn initialized(&self) -> bool {
        self.succeeded() || (self.restartable && self.is_running())
    }

    /// Has it ever run (now, or in a previous attempt)?
    fn ever_ran(&self) -> bool {
        !matches!(self.state, State::Waiting { .. }) || self.last_state.is_some()
    }

    /// The `containerStatuses[]` / `initContainerStatuses[]` entry.
    pub fn to_json(&self) -> Value {
        let running = self.is_running();
        let mut s = json!({
            "name": self.name,
            "image": self.image,
            "imageID": if self.ever_ran() { format!("local://{}", self.image) } else { String::new() },
            "ready": running && (!self.init || self.restartable),
            "started": running,
            "restartCount": self.restart_count,
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map_or(json!({}), |t| json!({ "terminated": t.to_json() })),
        });
        if !self.container_id.is_empty() {
            s["containerID"] = json!(self.container_id);
        }
        if self.init && !self.restartable {
            // An init container counts as ready once it completed successfully (a sidecar,
            // without probes here, is started and ready while it runs).
            s["ready"] = json!(self.succeeded());
        }
        s
    }
}

/// Pod phase from container states (Kubernetes' `getPhase`, simplified for one node).
///
/// `restart_policy` is `Never`, `OnFailure` or `Always`; `finished` is true once the
/// kubelet will not restart anything any more (the pod is deleted or done). Native sidecars
/// count only while they run (the pod is Running) or before their first start (Pending until
/// a container has run): how they ended never decides the phase.
pub fn phase(restart_policy: &str, init: &[Ctr], ctrs: &[Ctr], finished: bool) -> &'static str {
    let on_failure = restart_policy == "OnFailure" || restart_policy == "Always";
    for c in init.iter().filter(|c| !c.restartable) {
        match &c.state {
            State::Terminated(t) if t.exit_code == 0 => {}
            State::Terminated(_) if !on_failure || finished => return "Failed",
            _ if finished => return "Failed",
            _ => return "Pending",
        }
    }
    let sidecars = init.iter().filter(|c| c.restartable);
    let sidecars_running = sidecars.clone().filter(|c| c.is_running()).count();
    let sidecar_pending = sidecars
        .clone()
        .any(|c| matches!(c.state, State::Waiting { .. }) && c.last_state.is_none());
    if ctrs.is_empty() || (sidecar_pending && !ctrs.iter().any(Ctr::ever_ran)) {
        return if finished { "Failed" } else { "Pending" };
    }
    containers_phase(restart_policy, ctrs, sidecars_running > 0, finished)
}

/// The phase once the init containers are done: from the (regular) containers, with
/// `sidecar_running` keeping a pod whose containers ended Running.
fn containers_phase(
    restart_policy: &str,
    ctrs: &[Ctr],
    sidecar_running: bool,
    finished: bool,
) -> &'static str {
    let on_failure = restart_policy == "OnFailure" || restart_policy == "Always";
    let mut running = 0;
    let mut waiting_fresh = 0;
    let mut stopped = 0;
    let mut succeeded = 0;
    for c in ctrs {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Waiting { .. } if c.last_state.is_some() => stopped += 1,
            State::Waiting { .. } => waiting_fresh += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
        }
    }
    if finished && running == 0 {
        return if succeeded == ctrs.len() {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if waiting_fresh > 0 {
        return "Pending";
    }
    if running > 0 || sidecar_running {
        return "Running";
    }
    if stopped == ctrs.len() {
        if succeeded == ctrs.len() && restart_policy != "Always" {
            return "Succeeded";
        }
        return if on_failure { "Running" } else { "Failed" };
    }
    "Pending"
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> Value {
    let mut c = json!({
        "type": type_,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": rfc3339(Utc::now()),
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// The pod conditions for a scheduled pod (`PodReadyToStartContainers`, `Initialized`,
/// `Ready`, `ContainersReady`, `PodScheduled`). `lastTransitionTime` is kept from `old`
/// conditions whose status did not change.
pub fn conditions(init: &[Ctr], ctrs: &[Ctr], phase: &str, started: bool, old: &Value) -> Value {
    let done = phase == "Succeeded" || phase == "Failed";
    // A sidecar is initialized once started; a pod whose containers ran was initialized.
    let pending_init: Vec<&str> = init
        .iter()
        .filter(|c| !c.initialized())
        .map(|c| c.name.as_str())
        .collect();
    let initialized = pending_init.is_empty() || ctrs.iter().any(Ctr::ever_ran);
    let unready: Vec<&str> = init
        .iter()
        .filter(|c| c.restartable)
        .chain(ctrs)
        .filter(|c| !c.is_running())
        .map(|c| c.name.as_str())
        .collect();
    let ready = unready.is_empty() && !done;
    let (ready_reason, ready_msg) = if ready {
        (None, None)
    } else if done {
        (Some("PodCompleted"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let mut list = vec![
        condition("PodReadyToStartContainers", started && !done, None, None),
        if initialized {
            condition("Initialized", true, None, None)
        } else if done {
            condition("Initialized", false, Some("PodCompleted"), None)
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    pending_init.join(" ")
                )),
            )
        },
        condition("Ready", ready, ready_reason, ready_msg.clone()),
        condition("ContainersReady", ready, ready_reason, ready_msg),
        condition("PodScheduled", true, None, None),
    ];
    keep_transition_times(&mut list, old);
    Value::Array(list)
}

/// Keeps `lastTransitionTime` of conditions whose status is unchanged from `old`.
pub fn keep_transition_times(list: &mut [Value], old: &Value) {
    let Some(old) = old.as_array() else { return };
    for c in list.iter_mut() {
        if let Some(prev) = old
            .iter()
            .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
        {
            if let Some(t) = prev.get("lastTransitionTime").filter(|t| !t.is_null()) {
                c["lastTransitionTime"] = t.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(code: i32) -> State {
        State::Terminated(Terminated::from_exit(code, None, Utc::now(), "local://1"))
    }

    fn ctr(state: State) -> Ctr {
        let mut c = Ctr::new("c", "img", false, "ContainerCreating");
        c.state = state;
        c
    }

    #[test]
    fn phases() {
        let waiting = ctr(State::waiting("ContainerCreating", None));
        let running = ctr(State::Running {
            started_at: Utc::now(),
        });
        assert_eq!(
            phase("Never", &[], std::slice::from_ref(&waiting), false),
            "Pending"
        );
        assert_eq!(
            phase("Never", &[], &[running.clone(), waiting.clone()], false),
            "Pending"
        );
        assert_eq!(
            phase("Never", &[], std::slice::from_ref(&running), false),
            "Running"
        );
        assert_eq!(
            phase("Never", &[], &[ctr(term(0)), ctr(term(0))], false),
            "Succeeded"
        );
        assert_eq!(
            phase("Never", &[], &[ctr(term(0)), ctr(term(1))], false),
            "Failed"
        );
        // OnFailure: a failed container will restart, the pod keeps running.
        assert_eq!(phase("OnFailure", &[], &[ctr(term(1))], false), "Running");
        let mut crash = ctr(State::waiting("CrashLoopBackOff", None));
        crash.last_state = Some(Terminated::from_exit(1, None, Utc::now(), ""));
        assert_eq!(phase("OnFailure", &[], &[crash.clone()], false), "Running");
        assert_eq!(phase("OnFailure", &[], &[crash], true), "Failed");
        // Init containers.
        let mut init = Ctr::new("i", "img", true, "PodInitializing");
        assert_eq!(
            phase(
                "Never",
                std::slice::from_ref(&init),
                std::slice::from_ref(&waiting),
                false
            ),
            "Pending"
        );
        init.state = term(2);
        assert_eq!(
            phase(
                "Never",
                std::slice::from_ref(&init),
                std::slice::from_ref(&waiting),
                false
            ),
            "Failed"
        );
        assert_eq!(
            phase("OnFailure", std::slice::from_ref(&init), &[waiting], false),
            "Pending"
        );
        // Deleted while waiting.
        assert_eq!(
            phase("Never", &[], &[ctr(State::waiting("X", None))], true),
            "Failed"
        );
    }

    #[test]
    fn container_status_has_one_state() {
        let c = ctr(term(137));
        let j = c.to_json();
        assert_eq!(j["state"]["terminated"]["reason"], "Error");
        assert_eq!(j["state"].as_object().map(|o| o.len()), Some(1));
        assert_eq!(j["lastState"], json!({}));
        assert_eq!(j["ready"], false);
    }

    #[test]
    fn conditions_for_running_and_done() {
        let running = ctr(State::Running {
            started_at: Utc::now(),
        });
        let c = conditions(&[], &[running], "Running", true, &Value::Null);
        let ready = c
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        let c = conditions(&[], &[ctr(term(0))], "Succeeded", true, &c);
        let ready = c
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "PodCompleted");
    }

    fn sidecar(state: State, last: Option<i32>) -> Ctr {
        let mut c = Ctr::new("mesh", "img", true, "PodInitializing");
        c.restartable = true;
        c.state = state;
        c.last_state = last.map(|code| Terminated::from_exit(code, None, Utc::now(), ""));
        c
    }

    #[test]
    fn sidecars_never_decide_the_phase() {
        let run = || State::Running {
            started_at: Utc::now(),
        };
        let fresh = || ctr(State::waiting("PodInitializing", None));
        let waiting = sidecar(State::waiting("PodInitializing", None), None);
        assert_eq!(phase("Never", &[waiting], &[fresh()], false), "Pending");
        let up = [sidecar(run(), None)];
        assert_eq!(phase("Never", &up, &[fresh()], false), "Pending");
        assert_eq!(phase("Never", &up, &[ctr(run())], false), "Running");
        // The containers ended, the sidecar still runs (the kubelet is stopping it).
        assert_eq!(phase("Never", &up, &[ctr(term(0))], false), "Running");
        // Stopped, by a signal or in a crash loop: the containers decide.
        for side in [
            sidecar(term(143), None),
            sidecar(State::waiting("CrashLoopBackOff", None), Some(1)),
        ] {
            let side = std::slice::from_ref(&side);
            assert_eq!(phase("Never", side, &[ctr(term(0))], false), "Succeeded");
            assert_eq!(phase("Never", side, &[ctr(term(0))], true), "Succeeded");
            assert_eq!(phase("Never", side, &[ctr(term(2))], true), "Failed");
            assert_eq!(phase("OnFailure", side, &[ctr(term(2))], false), "Running");
        }
    }

    #[test]
    fn a_started_sidecar_is_initialized_and_ready() {
        let run = State::Running {
            started_at: Utc::now(),
        };
        let up = sidecar(run.clone(), None);
        let j = up.to_json();
        assert_eq!((&j["started"], &j["ready"]), (&json!(true), &json!(true)));
        let init = [up, {
            let mut c = Ctr::new("prep", "img", true, "PodInitializing");
            c.state = term(0);
            c
        }];
        let c = conditions(&init, &[ctr(run)], "Running", true, &Value::Null);
        let status = |t: &str| {
            c.as_array()
                .and_then(|a| a.iter().find(|x| x["type"] == t))
                .map(|x| x["status"].clone())
        };
        assert_eq!(status("Initialized"), Some(json!("True")));
        assert_eq!(status("Ready"), Some(json!("True")));
        // Stopped after the containers ended: still initialized, no longer ready.
        let done = [sidecar(term(143), None)];
        let j = done[0].to_json();
        assert_eq!((&j["started"], &j["ready"]), (&json!(false), &json!(false)));
        let c = conditions(&done, &[ctr(term(0))], "Succeeded", true, &c);
        let initialized = c
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == "Initialized"));
        assert_eq!(
            initialized.map(|x| x["status"].clone()),
            Some(json!("True"))
        );
    }
}
