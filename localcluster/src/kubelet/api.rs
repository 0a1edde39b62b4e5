//! What the kubelet needs from a Kubernetes API, as one trait: the emulator's in-process store
//! ([`super::store_api`]) and any API server over HTTPS ([`super::remote`]) implement it, so the
//! pod logic (`pod.rs`) exists once for both.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde_json::Value;

use crate::logs::LogStore;
use crate::store::Kind;

/// A boxed future borrowing the API (the trait must be object-safe).
pub type ApiFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The pod is gone from the API (deleted, or replaced by one with another UID): its worker
/// stops and writes nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// A change of the pods this node runs, in the order the API saw them.
#[derive(Debug, Clone)]
pub enum PodEvent {
    /// A pod was added or changed (its latest state).
    Changed(Arc<Value>),
    /// A pod was removed (its last state).
    Deleted(Arc<Value>),
    /// Every pod of the node, after a (re-)list: pods not in it are gone.
    Resync(Vec<Arc<Value>>),
}

/// How one node runs its pods (the same for both APIs).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `spec.nodeName` of the pods it runs, `source.host` of its events.
    pub node_name: String,
    /// Where the per-pod working directories go (`<root>/pods/<ns>_<name>`).
    pub root: PathBuf,
    /// The most pods running at once; pods beyond it stay Pending (queued).
    pub concurrency: usize,
    /// Base of the container restart backoff (doubling per restart).
    pub backoff_base: Duration,
    /// Cap of that backoff.
    pub backoff_max: Duration,
    /// Directories put first on the `PATH` of every container.
    pub path_prefix: Vec<PathBuf>,
}

impl NodeConfig {
    /// The default working directory of a pod's containers.
    pub fn pod_dir(&self, ns: &str, name: &str) -> PathBuf {
        self.root.join("pods").join(format!("{ns}_{name}"))
    }
}

/// What a pod worker and the kubelet's main loop ask of the API server.
///
/// Pods are JSON values as the API serves them. Writes that find the pod gone answer
/// [`Gone`]; transient failures are the implementation's to retry.
pub trait NodeApi: Send + Sync + 'static {
    /// The node's settings.
    fn config(&self) -> &NodeConfig;

    /// Where the container logs go (and where the log endpoint reads them).
    fn logs(&self) -> &LogStore;

    /// The pods of this node, as a stream: first a [`PodEvent::Resync`], then changes, and a
    /// new `Resync` whenever the implementation re-lists.
    fn pods(self: Arc<Self>) -> BoxStream<'static, PodEvent>;

    /// Places an unscheduled pod on this node and returns it (the emulator's scheduler; a
    /// node of a real cluster only sees pods its scheduler bound).
    fn bind<'a>(&'a self, pod: &'a Value) -> ApiFuture<'a, Result<Value, Gone>>;

    /// Reports an unschedulable pod (`PodScheduled=False` and a `FailedScheduling` event).
    fn unschedulable<'a>(&'a self, pod: &'a Value, message: &'a str) -> ApiFuture<'a, ()>;

    /// Writes these `status` fields of the pod (others are kept) and returns the pod's new
    /// `metadata`.
    fn write_status<'a>(
        &'a self,
        pod: &'a Value,
        status: Value,
    ) -> ApiFuture<'a, Result<Value, Gone>>;

    /// Ends a deletion once the pod's containers are stopped (a real kubelet's DELETE with
    /// grace period 0 and a UID precondition). A no-op where the API does it by itself.
    fn finish_deletion<'a>(&'a self, pod: &'a Value) -> ApiFuture<'a, ()>;

    /// Reads a Secret or ConfigMap of the pod's namespace: `Ok(None)` when it does not exist,
    /// `Err` (a `CreateContainerConfigError` message) when it cannot be read.
    fn read<'a>(
        &'a self,
        kind: Kind,
        ns: &'a str,
        name: &'a str,
    ) -> ApiFuture<'a, Result<Option<Value>, String>>;

    /// Records an Event about the pod (or one of its containers with `field_path`), best
    /// effort and without waiting.
    fn event(&self, pod: &Value, field_path: Option<&str>, type_: &str, reason: &str, msg: &str);

    /// Environment variables the node gives every container of the pod (`KUBECONFIG` for
    /// reaching the API from inside it).
    fn pod_env<'a>(&'a self, pod: &'a Value) -> ApiFuture<'a, Vec<(String, String)>>;
}
