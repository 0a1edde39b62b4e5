//! The kubelet's API over HTTPS with kube-rs: any Kubernetes API server (the real one, or the
//! emulator's own listener). Pods come from a `kube::runtime::watcher` on
//! `spec.nodeName=<node>`; status goes out as a merge patch of `pods/status` carrying the
//! pod's UID (as a real kubelet's), deletions end with DELETE grace 0 + UID precondition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::api::{ApiFuture, Gone, NodeApi, NodeConfig, PodEvent};
use super::token;
use crate::logs::LogStore;
use crate::store::{meta_str, Kind};

/// How many times a status write is tried before it is given up (the next one carries the
/// whole status again).
const WRITE_ATTEMPTS: u32 = 8;

/// A Kubernetes API server as the kubelet's API.
pub struct RemoteApi {
    client: kube::Client,
    config: NodeConfig,
    logs: LogStore,
    /// The node's pods as last seen by the watcher, for the log endpoint.
    pods: Mutex<HashMap<(String, String), Arc<Value>>>,
    /// The status this kubelet last wrote for each pod, with the pod's UID (its status
    /// manager). The log endpoint trusts it over the watch, which delivers the kubelet's own
    /// writes late: a client that saw a container running must be able to read its log at
    /// once. (A real kubelet reads its status manager too.)
    written: Mutex<HashMap<PodKey, (String, Value)>>,
    events: mpsc::UnboundedSender<Value>,
    /// The API server's URL, for the kubeconfig given to each pod.
    server: String,
}

type PodKey = (String, String);

fn pod_key(pod: &Value) -> PodKey {
    (
        meta_str(pod, "namespace").to_owned(),
        meta_str(pod, "name").to_owned(),
    )
}

fn is_code(e: &kube::Error, codes: &[u16]) -> bool {
    matches!(e, kube::Error::Api(s) if codes.contains(&s.code))
}

impl RemoteApi {
    /// An API for node `config.node_name` through `client`, whose server is `server`. Must be
    /// called inside a tokio runtime (it starts the event sender).
    pub fn new(client: kube::Client, config: NodeConfig, server: String) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_events(client.clone(), rx));
        Arc::new(RemoteApi {
            client,
            config,
            logs: LogStore::new(),
            pods: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            events: tx,
            server,
        })
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<PodKey, Arc<Value>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn written(&self) -> MutexGuard<'_, HashMap<PodKey, (String, Value)>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pod `ns/name` of this node as last seen, with the status this kubelet last wrote
    /// for it (which the watch may not have delivered yet).
    pub fn pod(&self, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = (ns.to_owned(), name.to_owned());
        let seen = self.cache().get(&key).cloned()?;
        let written = self.written();
        match written.get(&key) {
            Some((uid, status)) if seen["metadata"]["uid"] == uid.as_str() => {
                let mut pod = (*seen).clone();
                if let (Some(to), Some(from)) = (pod["status"].as_object_mut(), status.as_object())
                {
                    to.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
                } else {
                    pod["status"] = status.clone();
                }
                Some(Arc::new(pod))
            }
            _ => Some(seen),
        }
    }

    /// Keep `status` as what this kubelet last wrote for `pod`.
    fn remember_written(&self, pod: &Value, status: &Value) {
        let uid = meta_str(pod, "uid").to_owned();
        self.written().insert(pod_key(pod), (uid, status.clone()));
    }

    /// The kube-rs client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn pods_in(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Turns one watcher event into what the main loop needs (`None`: nothing yet).
    fn step(&self, ev: watcher::Event<Pod>, init: &mut Vec<Arc<Value>>) -> Option<PodEvent> {
        let value = |p: Pod| Arc::new(serde_json::to_value(p).unwrap_or(Value::Null));
        match ev {
            watcher::Event::Init => {
                init.clear();
                None
            }
            watcher::Event::InitApply(p) => {
                init.push(value(p));
                None
            }
            watcher::Event::InitDone => {
                let all = std::mem::take(init);
                let mut cache = self.cache();
                cache.clear();
                cache.extend(all.iter().map(|p| (pod_key(p), p.clone())));
                self.written().retain(|k, _| cache.contains_key(k));
                Some(PodEvent::Resync(all))
            }
            watcher::Event::Apply(p) => {
                let p = value(p);
                self.cache().insert(pod_key(&p), p.clone());
                Some(PodEvent::Changed(p))
            }
            watcher::Event::Delete(p) => {
                let p = value(p);
                let mut cache = self.cache();
                let k = pod_key(&p);
                if cache
                    .get(&k)
                    .is_some_and(|c| c["metadata"]["uid"] == p["metadata"]["uid"])
                {
                    cache.remove(&k);
                    self.written().remove(&k);
                }
                Some(PodEvent::Deleted(p))
            }
        }
    }

    async fn patch_status(&self, pod: &Value, mut status: Value) -> Result<Value, Gone> {
        let (ns, name) = pod_key(pod);
        // The API server sets the QoS class at creation and keeps it immutable.
        if pod["status"]["qosClass"].is_string() {
            if let Some(st) = status.as_object_mut() {
                st.remove("qosClass");
            }
        }
        // The UID in the patch makes it fail on a new pod of the same name.
        let patch = json!({"metadata": {"uid": pod["metadata"]["uid"]}, "status": status});
        let api = self.pods_in(&ns);
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=WRITE_ATTEMPTS {
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(p) => {
                    self.remember_written(pod, &status);
                    return Ok(serde_json::to_value(p.metadata).unwrap_or(Value::Null));
                }
                Err(e) if is_code(&e, &[404, 409]) => return Err(Gone),
                Err(e) if is_code(&e, &[400, 403, 422]) || attempt == WRITE_ATTEMPTS => {
                    eprintln!("kjenv-kubelet: cannot write the status of pod {ns}/{name}: {e}");
                    break;
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(pod["metadata"].clone())
    }
}

/// Posts the node's events one after the other, in the order they were recorded.
async fn send_events(client: kube::Client, mut rx: mpsc::UnboundedReceiver<Value>) {
    while let Some(e) = rx.recv().await {
        let ns = e["metadata"]["namespace"].as_str().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(client.clone(), ns);
        let Ok(event) = serde_json::from_value::<Event>(e.clone()) else {
            continue;
        };
        if let Err(err) = api.create(&PostParams::default(), &event).await {
            eprintln!("kjenv-kubelet: cannot record an event: {err}");
        }
    }
}

impl NodeApi for RemoteApi {
    fn config(&self) -> &NodeConfig {
        &self.config
    }

    fn logs(&self) -> &LogStore {
        &self.logs
    }

    fn pods(self: Arc<Self>) -> BoxStream<'static, PodEvent> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("spec.nodeName={}", self.config.node_name);
        let stream = watcher(api, watcher::Config::default().fields(&selector))
            .default_backoff()
            .boxed();
        let state = (stream, Vec::new(), self);
        futures::stream::unfold(state, |(mut stream, mut init, me)| async move {
            loop {
                match stream.next().await? {
                    Ok(ev) => {
                        if let Some(out) = me.step(ev, &mut init) {
                            return Some((out, (stream, init, me)));
                        }
                    }
                    Err(e) => eprintln!("kjenv-kubelet: watching pods: {e}"),
                }
            }
        })
        .boxed()
    }

    fn bind<'a>(&'a self, pod: &'a Value) -> ApiFuture<'a, Result<Value, Gone>> {
        Box::pin(async move {
            let (ns, name) = pod_key(pod);
            if let Err(e) = self.bind_pod(pod).await {
                eprintln!("kjenv-kubelet: cannot bind pod {ns}/{name}: {e}");
                return Err(Gone);
            }
            let p = self.pods_in(&ns).get(&name).await.map_err(|_| Gone)?;
            serde_json::to_value(p).map_err(|_| Gone)
        })
    }

    fn unschedulable<'a>(&'a self, _pod: &'a Value, _message: &'a str) -> ApiFuture<'a, ()> {
        // A real cluster's scheduler reports that itself.
        Box::pin(async {})
    }

    fn write_status<'a>(
        &'a self,
        pod: &'a Value,
        status: Value,
    ) -> ApiFuture<'a, Result<Value, Gone>> {
        Box::pin(async move { self.patch_status(pod, status).await })
    }

    fn finish_deletion<'a>(&'a self, pod: &'a Value) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let (ns, name) = pod_key(pod);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(meta_str(pod, "uid").to_owned()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.pods_in(&ns).delete(&name, &dp).await {
                Ok(_) => {}
                Err(e) if is_code(&e, &[404, 409]) => {}
                Err(e) => eprintln!("kjenv-kubelet: cannot finish deleting pod {ns}/{name}: {e}"),
            }
        })
    }

    fn read<'a>(
        &'a self,
        kind: Kind,
        ns: &'a str,
        name: &'a str,
    ) -> ApiFuture<'a, Result<Option<Value>, String>> {
        Box::pin(async move {
            let got = match kind {
                Kind::Secret => Api::<Secret>::namespaced(self.client.clone(), ns)
                    .get_opt(name)
                    .await
                    .map(|o| o.map(serde_json::to_value)),
                _ => Api::<ConfigMap>::namespaced(self.client.clone(), ns)
                    .get_opt(name)
                    .await
                    .map(|o| o.map(serde_json::to_value)),
            };
            match got {
                Ok(Some(Ok(v))) => Ok(Some(v)),
                Ok(Some(Err(e))) => Err(format!("cannot read {ns}/{name}: {e}")),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("cannot read {ns}/{name}: {e}")),
            }
        })
    }

    fn event(&self, pod: &Value, field_path: Option<&str>, type_: &str, reason: &str, msg: &str) {
        let component = if reason == "Scheduled" {
            crate::events::SCHEDULER
        } else {
            crate::events::KUBELET
        };
        let host = &self.config.node_name;
        let e = crate::events::build(component, host, pod, field_path, type_, reason, msg);
        let _ = self.events.send(e);
    }

    fn pod_env<'a>(&'a self, pod: &'a Value) -> ApiFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            match token::pod_kubeconfig(self.client(), &self.config, self.server(), pod).await {
                Ok(Some(path)) => vec![("KUBECONFIG".to_owned(), path.display().to_string())],
                Ok(None) => Vec::new(),
                Err(e) => {
                    let (ns, name) = pod_key(pod);
                    eprintln!("kjenv-kubelet: no API credentials for pod {ns}/{name}: {e}");
                    Vec::new()
                }
            }
        })
    }
}

impl RemoteApi {
    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Binds the pod to this node (`pods/binding`, as a scheduler does).
    ///
    /// # Errors
    /// The API's answer (403 when the node's credentials may not bind).
    pub async fn bind_pod(&self, pod: &Value) -> Result<(), kube::Error> {
        let (ns, name) = pod_key(pod);
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name},
        });
        let pp = PostParams::default();
        self.pods_in(&ns)
            .create_subresource::<Value, Value>("binding", &name, &pp, &binding)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> Arc<RemoteApi> {
        let url = "https://127.0.0.1:9".parse().expect("url");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("client");
        let config = NodeConfig {
            node_name: "n".into(),
            root: std::env::temp_dir(),
            concurrency: 1,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(1),
            path_prefix: Vec::new(),
        };
        RemoteApi::new(client, config, "https://127.0.0.1:9".into())
    }

    fn pod(uid: &str, state: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "p", "uid": uid},
            "spec": {"containers": [{"name": "flow"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "flow", "state": state,
                "ready": false, "restartCount": 0, "image": "i", "imageID": ""}]},
        }))
        .expect("pod")
    }

    fn state(api: &RemoteApi) -> Value {
        api.pod("ns", "p").expect("pod")["status"]["containerStatuses"][0]["state"].clone()
    }

    #[tokio::test]
    async fn the_log_endpoint_sees_the_status_the_kubelet_wrote_before_the_watch_does() {
        let api = remote();
        let waiting = json!({"waiting": {"reason": "ContainerCreating"}});
        let seen = api.step(
            watcher::Event::Apply(pod("u1", waiting.clone())),
            &mut Vec::new(),
        );
        assert!(seen.is_some());
        let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        let written = serde_json::to_value(pod("u1", running.clone())).expect("json");
        api.remember_written(&written, &written["status"]);
        // The watch has not delivered the write yet: the kubelet's own status counts.
        assert_eq!(state(&api), running);
        // A new pod of the same name does not inherit it.
        api.step(
            watcher::Event::Apply(pod("u2", waiting.clone())),
            &mut Vec::new(),
        );
        assert_eq!(state(&api), waiting);
    }
}
