//! The kubelet's API in the emulator: reads and writes the in-process store directly (no
//! HTTP, no serialisation), and plays the scheduler that binds pods to the one node.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::api::{ApiFuture, Gone, NodeApi, NodeConfig, PodEvent};
use crate::error::ApiError;
use crate::events::{self, NODE_NAME};
use crate::logs::LogStore;
use crate::meta::rfc3339;
use crate::store::{meta_str, Kind};
use crate::Cluster;

/// How often the kubelet re-lists all pods even without changes.
const RESYNC: Duration = Duration::from_secs(10);

/// The emulator's store as the kubelet's API.
pub struct StoreApi {
    cluster: Arc<Cluster>,
    config: NodeConfig,
}

impl StoreApi {
    /// The API of `cluster`'s own node (`local`).
    pub fn new(cluster: Arc<Cluster>) -> Self {
        let o = &cluster.options;
        let config = NodeConfig {
            node_name: NODE_NAME.to_owned(),
            root: cluster.work_dir.clone(),
            concurrency: o.concurrency.max(1),
            backoff_base: o.backoff_base,
            backoff_max: o.backoff_max,
            path_prefix: o.path_prefix.clone(),
        };
        StoreApi { cluster, config }
    }

    fn all_pods(&self) -> PodEvent {
        PodEvent::Resync(self.cluster.store.list_arc(Kind::Pod, None).0)
    }
}

fn check_uid(o: &Value, uid: &str) -> Result<(), ApiError> {
    if meta_str(o, "uid") == uid {
        Ok(())
    } else {
        Err(ApiError::not_found(Kind::Pod, meta_str(o, "name")))
    }
}

fn key(pod: &Value) -> (String, String, String) {
    (
        meta_str(pod, "namespace").to_owned(),
        meta_str(pod, "name").to_owned(),
        meta_str(pod, "uid").to_owned(),
    )
}

/// What the pod stream waits on next.
struct Feed {
    api: Arc<StoreApi>,
    rx: broadcast::Receiver<crate::store::Change>,
    tick: tokio::time::Interval,
    first: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(PodEvent, Feed)> {
        if std::mem::take(&mut self.first) {
            let ev = self.api.all_pods();
            return Some((ev, self));
        }
        loop {
            let ev = tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(change) if change.kind == Kind::Pod => {
                        if change.event == crate::store::EventType::Deleted {
                            PodEvent::Deleted(change.object)
                        } else {
                            PodEvent::Changed(change.object)
                        }
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.api.all_pods(),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => self.api.all_pods(),
            };
            return Some((ev, self));
        }
    }
}

impl NodeApi for StoreApi {
    fn config(&self) -> &NodeConfig {
        &self.config
    }

    fn logs(&self) -> &LogStore {
        &self.cluster.logs
    }

    fn pods(self: Arc<Self>) -> BoxStream<'static, PodEvent> {
        // Subscribe before the first list, so no change falls between the two.
        let rx = self.cluster.store.subscribe();
        let mut tick = tokio::time::interval(RESYNC);
        tick.reset();
        let feed = Feed {
            api: self,
            rx,
            tick,
            first: true,
        };
        futures::stream::unfold(feed, Feed::next).boxed()
    }

    fn bind<'a>(&'a self, pod: &'a Value) -> ApiFuture<'a, Result<Value, Gone>> {
        Box::pin(async move {
            let (ns, name, uid) = key(pod);
            let store = &self.cluster.store;
            let cond = json!([{
                "type": "PodScheduled", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": rfc3339(Utc::now()),
            }]);
            let pod = store
                .update(Kind::Pod, &ns, &name, |o| {
                    check_uid(o, &uid)?;
                    if o["metadata"]["deletionTimestamp"].is_string() {
                        return Err(ApiError::not_found(Kind::Pod, &uid));
                    }
                    for k in ["spec", "status"] {
                        if !o[k].is_object() {
                            o[k] = json!({});
                        }
                    }
                    o["spec"]["nodeName"] = json!(NODE_NAME);
                    o["status"]["phase"] = json!("Pending");
                    o["status"]["conditions"] = cond;
                    Ok(())
                })
                .map_err(|_| Gone)?;
            let msg = format!("Successfully assigned {ns}/{name} to {NODE_NAME}");
            events::record(store, &pod, "Normal", "Scheduled", &msg);
            Ok(pod)
        })
    }

    fn unschedulable<'a>(&'a self, pod: &'a Value, message: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let (ns, name, uid) = key(pod);
            let store = &self.cluster.store;
            let cond = json!([{
                "type": "PodScheduled", "status": "False", "lastProbeTime": null,
                "lastTransitionTime": rfc3339(Utc::now()), "reason": "Unschedulable", "message": message,
                "observedGeneration": pod["metadata"]["generation"].as_i64().unwrap_or(1),
            }]);
            let qos = crate::resources::qos_class(&pod["spec"]);
            let written = store.update(Kind::Pod, &ns, &name, |o| {
                check_uid(o, &uid)?;
                o["status"] = json!({"phase": "Pending", "conditions": cond, "qosClass": qos});
                Ok(())
            });
            if let Ok(p) = written {
                events::record(store, &p, "Warning", "FailedScheduling", message);
            }
        })
    }

    fn write_status<'a>(
        &'a self,
        pod: &'a Value,
        status: Value,
    ) -> ApiFuture<'a, Result<Value, Gone>> {
        Box::pin(async move {
            let (ns, name, uid) = key(pod);
            self.cluster
                .store
                .update(Kind::Pod, &ns, &name, |o| {
                    check_uid(o, &uid)?;
                    let before = o.clone();
                    if !o["status"].is_object() {
                        o["status"] = json!({});
                    }
                    if let (Some(dst), Value::Object(src)) = (o["status"].as_object_mut(), status) {
                        dst.extend(src);
                    }
                    let kubelet = crate::fieldmanager::Writer {
                        manager: "kubelet".into(),
                        subresource: Some("status".into()),
                    };
                    crate::fieldmanager::record_update(Kind::Pod, Some(&before), o, &kubelet);
                    Ok(())
                })
                .map(|mut p| p["metadata"].take())
                .map_err(|_| Gone)
        })
    }

    fn finish_deletion<'a>(&'a self, _pod: &'a Value) -> ApiFuture<'a, ()> {
        // The store removes a deleted pod itself once its status is final.
        Box::pin(async {})
    }

    fn read<'a>(
        &'a self,
        kind: Kind,
        ns: &'a str,
        name: &'a str,
    ) -> ApiFuture<'a, Result<Option<Value>, String>> {
        Box::pin(async move { Ok(self.cluster.store.get(kind, ns, name)) })
    }

    fn event(&self, pod: &Value, field_path: Option<&str>, type_: &str, reason: &str, msg: &str) {
        let store = &self.cluster.store;
        match field_path {
            Some(fp) => events::record_container(store, pod, fp, type_, reason, msg),
            None => events::record(store, pod, type_, reason, msg),
        }
    }

    fn pod_env<'a>(&'a self, _pod: &'a Value) -> ApiFuture<'a, Vec<(String, String)>> {
        let path = self.cluster.kubeconfig_path.display().to_string();
        Box::pin(async move { vec![("KUBECONFIG".to_owned(), path)] })
    }
}
