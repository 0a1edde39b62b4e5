//! The job controller: watches Jobs and their Pods, creates pods, counts finished pods
//! exactly once (the `batch.kubernetes.io/job-tracking` finalizer), applies backoff,
//! deadlines, suspension and TTL, and writes `Job.status`.

mod failure_policy;
mod success_policy;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::store::{meta_str, Kind};
use crate::Cluster;

/// The finalizer that keeps a pod until the controller has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// How often every Job is synced even without changes.
const RESYNC: Duration = Duration::from_secs(5);

/// (namespace, name) of a Job.
type JobKey = (String, String);

/// Starts the job controller on the current tokio runtime; it runs until
/// `cluster.shutdown` is cancelled.
pub fn spawn(cluster: Arc<Cluster>) {
    let shutdown = cluster.shutdown.clone();
    // After a panic the loop starts over with a fresh memory (the resync rebuilds it).
    crate::task::supervise(
        "localcluster: job controller panicked, restarting it",
        shutdown,
        move || main_loop(cluster.clone(), sync::Memory::default()),
    );
}

/// The Job a pod belongs to (its controller ownerReference), if any.
fn owner_job(pod: &Value) -> Option<(JobKey, String)> {
    let refs = pod["metadata"]["ownerReferences"].as_array()?;
    let r = refs
        .iter()
        .find(|r| r["controller"] == true && r["kind"] == "Job")?;
    Some((
        (
            meta_str(pod, "namespace").to_owned(),
            r["name"].as_str()?.to_owned(),
        ),
        r["uid"].as_str().unwrap_or("").to_owned(),
    ))
}

async fn main_loop(cluster: Arc<Cluster>, mut mem: sync::Memory) -> sync::Memory {
    let mut rx = cluster.store.subscribe();
    let mut dirty: HashSet<JobKey> = HashSet::new();
    let mut wake: HashMap<JobKey, Instant> = HashMap::new();
    let mut next_resync = Instant::now();
    loop {
        if Instant::now() >= next_resync {
            next_resync = Instant::now() + RESYNC;
            resync(&cluster, &mut dirty);
            mem.forget_missing(&cluster.store);
        }
        let now = Instant::now();
        wake.retain(|k, at| {
            if *at <= now {
                dirty.insert(k.clone());
                false
            } else {
                true
            }
        });
        for key in std::mem::take(&mut dirty) {
            if let Some(at) = sync::sync_job(&cluster, &mut mem, &key) {
                let e = wake.entry(key).or_insert(at);
                if at < *e {
                    *e = at;
                }
            }
        }
        let next_wake = wake
            .values()
            .min()
            .copied()
            .unwrap_or(next_resync)
            .min(next_resync);
        tokio::select! {
            _ = cluster.shutdown.cancelled() => return mem,
            _ = tokio::time::sleep_until(next_wake) => {}
            r = rx.recv() => {
                let mut r = r;
                // Drain what is already there so one sync covers a burst of changes.
                loop {
                    match r {
                        Ok(change) => note(&cluster, &change.kind, &change.object, &mut dirty),
                        Err(broadcast::error::RecvError::Lagged(_)) => resync(&cluster, &mut dirty),
                        Err(broadcast::error::RecvError::Closed) => return mem,
                    }
                    match rx.try_recv() {
                        Ok(c) => r = Ok(c),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            r = Err(broadcast::error::RecvError::Lagged(n))
                        }
                        Err(_) => break,
                    }
                    if dirty.len() > 1024 {
                        break;
                    }
                }
            }
        }
    }
}

/// Marks the Job a change concerns as needing a sync.
fn note(cluster: &Cluster, kind: &Kind, obj: &Value, dirty: &mut HashSet<JobKey>) {
    match kind {
        Kind::Job => {
            dirty.insert((
                meta_str(obj, "namespace").to_owned(),
                meta_str(obj, "name").to_owned(),
            ));
        }
        Kind::Pod => {
            if let Some((key, _)) = owner_job(obj) {
                dirty.insert(key);
            }
            sync::release_orphan(cluster, obj);
        }
        _ => {}
    }
}

/// Marks every Job dirty and releases pods whose Job is gone.
fn resync(cluster: &Cluster, dirty: &mut HashSet<JobKey>) {
    let (jobs, _) = cluster.store.list_arc(Kind::Job, None);
    for j in &jobs {
        dirty.insert((
            meta_str(j, "namespace").to_owned(),
            meta_str(j, "name").to_owned(),
        ));
    }
    let (pods, _) = cluster.store.list_arc(Kind::Pod, None);
    for p in &pods {
        sync::release_orphan(cluster, p);
    }
}
