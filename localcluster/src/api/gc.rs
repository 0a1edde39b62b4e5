//! The garbage collector: removes dependents of deleted owners (Background), empties owners held
//! by `foregroundDeletion`, strips ownerReferences for `orphan`, and removes objects whose owners
//! are all gone; it is also the one task that expires old Events.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::meta::is_deleting;
use crate::store::{meta_str, Change, DeleteOptions, EventType, Kind, Propagation};
use crate::Cluster;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// How often old events are looked for (the one event sweeper: see [`crate::events::sweep`]).
const EVENT_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Spawns the GC task; it ends with the cluster.
pub fn spawn(cluster: Arc<Cluster>) {
    let mut rx = cluster.store.subscribe();
    super::root_ca::publish_all(&cluster);
    tokio::spawn(async move {
        let mut expiry = tokio::time::interval(EVENT_SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = cluster.shutdown.cancelled() => return,
                _ = expiry.tick() => crate::events::sweep(&cluster.store, crate::events::EVENT_TTL),
                got = rx.recv() => match got {
                    Ok(change) => handle(&cluster, &change),
                    Err(RecvError::Lagged(_)) => sweep(&cluster),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == f))
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|o| o["uid"].as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn remove_finalizer(cluster: &Cluster, kind: Kind, obj: &Value, f: &str) {
    let _ = cluster.store.update(
        kind,
        meta_str(obj, "namespace"),
        meta_str(obj, "name"),
        |o| {
            if let Some(a) = o
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                a.retain(|x| x != f);
            }
            Ok(())
        },
    );
}

fn background() -> DeleteOptions {
    DeleteOptions {
        propagation: Some(Propagation::Background),
        ..Default::default()
    }
}

/// Works on an owner being deleted with `orphan` or `foregroundDeletion`.
fn process_owner(cluster: &Cluster, kind: Kind, owner: &Value) {
    if !is_deleting(owner) {
        return;
    }
    let uid = meta_str(owner, "uid").to_string();
    if has_finalizer(owner, ORPHAN) {
        for (dk, dep) in cluster.store.dependents_of(&uid) {
            let _ = cluster.store.update(
                dk,
                meta_str(&dep, "namespace"),
                meta_str(&dep, "name"),
                |o| {
                    if let Some(refs) = o
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| r["uid"] != uid.as_str());
                        if refs.is_empty() {
                            if let Some(m) =
                                o.pointer_mut("/metadata").and_then(Value::as_object_mut)
                            {
                                m.remove("ownerReferences");
                            }
                        }
                    }
                    Ok(())
                },
            );
        }
        remove_finalizer(cluster, kind, owner, ORPHAN);
    } else if has_finalizer(owner, FOREGROUND) {
        let deps = cluster.store.dependents_of(&uid);
        if deps.is_empty() {
            remove_finalizer(cluster, kind, owner, FOREGROUND);
            return;
        }
        for (dk, dep) in deps {
            if !is_deleting(&dep) {
                let _ = cluster.store.delete(
                    dk,
                    meta_str(&dep, "namespace"),
                    meta_str(&dep, "name"),
                    &background(),
                );
            }
        }
    }
}

/// Deletes `obj` when every owner it names is gone.
fn collect_if_orphaned(cluster: &Cluster, kind: Kind, obj: &Value) {
    let owners = owner_uids(obj);
    if owners.is_empty() || is_deleting(obj) {
        return;
    }
    if owners.iter().all(|u| cluster.store.get_by_uid(u).is_none()) {
        let _ = cluster.store.delete(
            kind,
            meta_str(obj, "namespace"),
            meta_str(obj, "name"),
            &background(),
        );
    }
}

fn handle(cluster: &Cluster, c: &Change) {
    super::root_ca::handle(cluster, c);
    match c.event {
        EventType::Added => collect_if_orphaned(cluster, c.kind, &c.object),
        EventType::Modified => process_owner(cluster, c.kind, &c.object),
        EventType::Deleted => {
            let uid = meta_str(&c.object, "uid");
            for (dk, dep) in cluster.store.dependents_of(uid) {
                collect_if_orphaned(cluster, dk, &dep);
            }
            // A dependent went away: its owners waiting in foreground deletion may be done.
            for owner_uid in owner_uids(&c.object) {
                if let Some((ok, owner)) = cluster.store.get_by_uid(&owner_uid) {
                    if is_deleting(&owner) && has_finalizer(&owner, FOREGROUND) {
                        process_owner(cluster, ok, &owner);
                    }
                }
            }
        }
    }
}

/// After missing changes: look at everything once.
fn sweep(cluster: &Cluster) {
    super::root_ca::publish_all(cluster);
    for kind in Kind::ALL {
        let (items, _) = cluster.store.list_arc(kind, None);
        for o in items {
            if is_deleting(&o) {
                process_owner(cluster, kind, &o);
            }
            collect_if_orphaned(cluster, kind, &o);
        }
    }
}
