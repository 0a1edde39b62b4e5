//! The process kubelet: runs each pod's containers as local processes (one pod worker task
//! per pod), reports their status, stops them on delete, and kills everything at shutdown —
//! over the emulator's store (with its scheduler) or any API server ([`api::NodeApi`]).

pub mod agent;
pub mod api;
mod env;
pub mod exec;
mod node;
mod placement;
mod pod;
mod process;
pub mod remote;
mod server;
pub(crate) mod status;
pub mod store_api;
mod token;
mod watchdog;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::store::meta_str;
use crate::Cluster;
use api::{NodeApi, PodEvent};

pub use process::{group_alive, proc_state, ContainerKey, ExitInfo};

/// Annotation (on the pod template) that simulates failures: `image-pull-error`,
/// `oom-killed`, `unschedulable`, `create-error`.
pub const SIMULATE_ANNOTATION: &str = "kjenv.local/simulate";

/// What the main loop tells a pod worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Keep going.
    Run,
    /// The pod was deleted through the API: stop its containers within this grace period.
    Delete { grace: i64 },
    /// The pod is gone from the API: kill everything now, write nothing.
    Gone,
}

/// One kubelet: its API, the process registry and the concurrency limit.
struct Kubelet {
    api: Arc<dyn NodeApi>,
    procs: Arc<process::Processes>,
    slots: Arc<Semaphore>,
}

/// The kubelets of every cluster in this process, keyed by the address of their `Cluster`,
/// so the synchronous [`shutdown`] can find its processes.
static KUBELETS: Mutex<Vec<(usize, Arc<process::Processes>)>> = Mutex::new(Vec::new());

fn key(cluster: &Cluster) -> usize {
    cluster as *const Cluster as usize
}

/// Starts the emulator's scheduler and kubelet (over its store) on the current tokio
/// runtime. It runs until `cluster.shutdown` is cancelled.
pub fn spawn(cluster: Arc<Cluster>) {
    let api: Arc<dyn NodeApi> = Arc::new(store_api::StoreApi::new(cluster.clone()));
    let procs = run(api, cluster.shutdown.clone());
    KUBELETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key(&cluster), procs));
}

/// Starts a kubelet over `api` on the current tokio runtime, until `shutdown` is cancelled;
/// returns its process registry (whose `shutdown` kills every process it started).
pub(crate) fn run(api: Arc<dyn NodeApi>, shutdown: CancellationToken) -> Arc<process::Processes> {
    let procs = process::Processes::new(tokio::runtime::Handle::current());
    let kubelet = Arc::new(Kubelet {
        slots: Arc::new(Semaphore::new(api.config().concurrency.max(1))),
        api,
        procs: procs.clone(),
    });
    let stop = shutdown.clone();
    crate::task::supervise(
        "kubelet: the pod loop panicked, restarting it",
        shutdown,
        move || main_loop(kubelet.clone(), stop.clone()),
    );
    procs
}

/// Kills every process this cluster's kubelet started (SIGKILL to each process group),
/// refuses new ones, and returns once they are dead (at most ~10 s). Synchronous, idempotent.
pub fn shutdown(cluster: &Cluster) {
    let procs: Vec<Arc<process::Processes>> = {
        let mut all = KUBELETS.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(cluster);
        let mine = all
            .iter()
            .filter(|(c, _)| *c == k)
            .map(|(_, p)| p.clone())
            .collect();
        all.retain(|(c, _)| *c != k);
        mine
    };
    for p in procs {
        p.shutdown();
    }
}

struct WorkerEntry {
    tx: watch::Sender<Signal>,
    ns: String,
    name: String,
}

async fn main_loop(kubelet: Arc<Kubelet>, shutdown: CancellationToken) {
    let mut pods = kubelet.api.clone().pods();
    let mut workers: HashMap<String, WorkerEntry> = HashMap::new();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = pods.next() => e,
        };
        match event {
            Some(PodEvent::Changed(pod)) => observe(&kubelet, &mut workers, &pod),
            Some(PodEvent::Deleted(pod)) => gone(&kubelet, &mut workers, &pod),
            Some(PodEvent::Resync(all)) => resync(&kubelet, &mut workers, &all),
            None => break,
        }
    }
    for w in workers.values() {
        let _ = w.tx.send(Signal::Gone);
    }
}

fn uid_of(pod: &Value) -> String {
    meta_str(pod, "uid").to_owned()
}

/// The pod left the API.
fn gone(kubelet: &Kubelet, workers: &mut HashMap<String, WorkerEntry>, pod: &Value) {
    if let Some(w) = workers.remove(&uid_of(pod)) {
        let _ = w.tx.send(Signal::Gone);
    }
    // Done here, in event order, so a new pod of the same name keeps its logs.
    let (ns, name) = (meta_str(pod, "namespace"), meta_str(pod, "name"));
    kubelet.api.logs().remove_pod(ns, name);
    let _ = std::fs::remove_dir_all(kubelet.api.config().pod_dir(ns, name));
}

/// The grace period of a pod being deleted.
fn grace_of(pod: &Value, default: i64) -> i64 {
    pod["metadata"]["deletionGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(default)
        .max(0)
}

/// A pod was added or changed.
fn observe(kubelet: &Arc<Kubelet>, workers: &mut HashMap<String, WorkerEntry>, pod: &Value) {
    let uid = uid_of(pod);
    let deleting = pod["metadata"]["deletionTimestamp"].is_string();
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    let finished = phase == "Succeeded" || phase == "Failed";
    if deleting && finished {
        // Nothing runs any more: the deletion can end (a no-op for the emulator's store).
        let (api, pod) = (kubelet.api.clone(), pod.clone());
        tokio::spawn(async move { api.finish_deletion(&pod).await });
    }
    if let Some(w) = workers.get(&uid) {
        if deleting {
            let grace = grace_of(pod, 30);
            w.tx.send_if_modified(|s| match *s {
                Signal::Run => {
                    *s = Signal::Delete { grace };
                    true
                }
                // A second delete may shorten the grace period.
                Signal::Delete { grace: old } if grace < old => {
                    *s = Signal::Delete { grace };
                    true
                }
                _ => false,
            });
        }
        return;
    }
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    if finished || (deleting && !scheduled) {
        return;
    }
    let initial = if deleting {
        Signal::Delete {
            grace: grace_of(pod, 0),
        }
    } else {
        Signal::Run
    };
    let (tx, rx) = watch::channel(initial);
    workers.insert(
        uid,
        WorkerEntry {
            tx,
            ns: meta_str(pod, "namespace").to_owned(),
            name: meta_str(pod, "name").to_owned(),
        },
    );
    let worker = pod::Worker::new(
        kubelet.api.clone(),
        kubelet.procs.clone(),
        kubelet.slots.clone(),
        pod.clone(),
        rx,
    );
    tokio::spawn(worker.run());
}

/// After a re-list: starts missing workers, tells workers of vanished pods.
fn resync(kubelet: &Arc<Kubelet>, workers: &mut HashMap<String, WorkerEntry>, pods: &[Arc<Value>]) {
    let mut present = std::collections::HashSet::new();
    for pod in pods {
        present.insert(uid_of(pod));
        observe(kubelet, workers, pod);
    }
    workers.retain(|uid, w| {
        let keep = present.contains(uid);
        if !keep {
            let _ = w.tx.send(Signal::Gone);
            kubelet.api.logs().remove_pod(&w.ns, &w.name);
        }
        keep
    });
}
