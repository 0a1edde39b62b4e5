//! The scheduler and the process kubelet of the one node (`local`): binds pods, runs their
//! containers as local processes (one pod worker task per pod), reports their status, stops
//! them on delete, and kills everything at shutdown.

mod env;
mod pod;
mod process;
pub(crate) mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch, Semaphore};

use crate::store::{meta_str, EventType, Kind};
use crate::Cluster;

pub use process::{group_alive, proc_state};

/// Annotation (on the pod template) that simulates failures: `image-pull-error`,
/// `oom-killed`, `unschedulable`, `create-error`.
pub const SIMULATE_ANNOTATION: &str = "kjenv.local/simulate";

/// How often the kubelet re-lists all pods even without changes.
const RESYNC: Duration = Duration::from_secs(10);

/// What the main loop tells a pod worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Keep going.
    Run,
    /// The pod was deleted through the API: stop its containers within this grace period.
    Delete { grace: i64 },
    /// The pod is gone from the store: kill everything now, write nothing.
    Gone,
}

/// One kubelet: the process registry and the concurrency limit.
struct Kubelet {
    procs: Arc<process::Processes>,
    slots: Arc<Semaphore>,
}

/// The kubelets of every cluster in this process, keyed by the address of their `Cluster`,
/// so the synchronous [`shutdown`] can find its processes.
static KUBELETS: Mutex<Vec<(usize, Arc<process::Processes>)>> = Mutex::new(Vec::new());

fn key(cluster: &Cluster) -> usize {
    cluster as *const Cluster as usize
}

/// Starts the scheduler and kubelet on the current tokio runtime. It runs until
/// `cluster.shutdown` is cancelled.
pub fn spawn(cluster: Arc<Cluster>) {
    let procs = process::Processes::new(tokio::runtime::Handle::current());
    KUBELETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key(&cluster), procs.clone()));
    let kubelet = Arc::new(Kubelet {
        procs,
        slots: Arc::new(Semaphore::new(cluster.options.concurrency.max(1))),
    });
    tokio::spawn(async move {
        // Supervise the loop: a bug that panics must not silently stop the node.
        while !cluster.shutdown.is_cancelled() {
            let task = tokio::spawn(main_loop(cluster.clone(), kubelet.clone()));
            match task.await {
                Err(e) if e.is_panic() => {
                    eprintln!("localcluster: kubelet loop panicked, restarting it");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break,
            }
        }
    });
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

async fn main_loop(cluster: Arc<Cluster>, kubelet: Arc<Kubelet>) {
    let mut rx = cluster.store.subscribe();
    let mut workers: HashMap<String, WorkerEntry> = HashMap::new();
    resync(&cluster, &kubelet, &mut workers);
    let mut tick = tokio::time::interval(RESYNC);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cluster.shutdown.cancelled() => break,
            r = rx.recv() => match r {
                Ok(change) if change.kind == Kind::Pod => {
                    if change.event == EventType::Deleted {
                        gone(&cluster, &mut workers, &change.object);
                    } else {
                        observe(&cluster, &kubelet, &mut workers, &change.object);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    resync(&cluster, &kubelet, &mut workers);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => resync(&cluster, &kubelet, &mut workers),
        }
    }
    for w in workers.values() {
        let _ = w.tx.send(Signal::Gone);
    }
}

fn uid_of(pod: &Value) -> String {
    meta_str(pod, "uid").to_owned()
}

/// The pod left the store.
fn gone(cluster: &Cluster, workers: &mut HashMap<String, WorkerEntry>, pod: &Value) {
    if let Some(w) = workers.remove(&uid_of(pod)) {
        let _ = w.tx.send(Signal::Gone);
    }
    // Done here, in event order, so a new pod of the same name keeps its logs.
    let (ns, name) = (meta_str(pod, "namespace"), meta_str(pod, "name"));
    cluster.logs.remove_pod(ns, name);
    let _ = std::fs::remove_dir_all(pod::pod_dir(cluster, ns, name));
}

/// A pod was added or changed.
fn observe(
    cluster: &Arc<Cluster>,
    kubelet: &Arc<Kubelet>,
    workers: &mut HashMap<String, WorkerEntry>,
    pod: &Value,
) {
    let uid = uid_of(pod);
    let deleting = pod["metadata"]["deletionTimestamp"].is_string();
    if let Some(w) = workers.get(&uid) {
        if deleting {
            let grace = pod["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
                .max(0);
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
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    if phase == "Succeeded" || phase == "Failed" || (deleting && !scheduled) {
        return;
    }
    let initial = if deleting {
        Signal::Delete {
            grace: pod["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0),
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
        cluster.clone(),
        kubelet.procs.clone(),
        kubelet.slots.clone(),
        pod.clone(),
        rx,
    );
    tokio::spawn(worker.run());
}

/// Re-lists every pod: starts missing workers, tells workers of vanished pods.
fn resync(
    cluster: &Arc<Cluster>,
    kubelet: &Arc<Kubelet>,
    workers: &mut HashMap<String, WorkerEntry>,
) {
    let (pods, _) = cluster.store.list_arc(Kind::Pod, None);
    let mut present = std::collections::HashSet::new();
    for pod in &pods {
        present.insert(uid_of(pod));
        observe(cluster, kubelet, workers, pod);
    }
    workers.retain(|uid, w| {
        let keep = present.contains(uid);
        if !keep {
            let _ = w.tx.send(Signal::Gone);
            cluster.logs.remove_pod(&w.ns, &w.name);
        }
        keep
    });
}
