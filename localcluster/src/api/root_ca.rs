//! The `kube-root-ca.crt` ConfigMap in every namespace, as kube-controller-manager's
//! root-ca-cert-publisher keeps it: the cluster CA under `ca.crt`, re-created when deleted.

use serde_json::{json, Value};

use crate::meta::is_deleting;
use crate::store::{meta_str, Change, EventType, Kind};
use crate::Cluster;

/// The ConfigMap's name (what the ServiceAccount admission's projected volume reads).
pub const NAME: &str = "kube-root-ca.crt";

const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The ConfigMap for namespace `ns`.
fn config_map(cluster: &Cluster, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": ns,
            "annotations": {"kubernetes.io/description": DESCRIPTION}},
        "data": {"ca.crt": cluster.ca_pem}})
}

/// Publishes into namespace `ns` unless it is there already or the namespace is going away.
fn publish(cluster: &Cluster, ns: &str) {
    let Some(n) = cluster.store.get(Kind::Namespace, "", ns) else {
        return;
    };
    if is_deleting(&n) || cluster.store.get(Kind::ConfigMap, ns, NAME).is_some() {
        return;
    }
    let _ = cluster
        .store
        .create(Kind::ConfigMap, config_map(cluster, ns));
}

/// Publishes into every namespace (at start and after missed changes).
pub fn publish_all(cluster: &Cluster) {
    let (nss, _) = cluster.store.list_arc(Kind::Namespace, None);
    for n in nss {
        publish(cluster, meta_str(&n, "name"));
    }
}

/// A new namespace gets the ConfigMap; a deleted ConfigMap comes back.
pub fn handle(cluster: &Cluster, c: &Change) {
    match (c.kind, c.event) {
        (Kind::Namespace, EventType::Added) => publish(cluster, meta_str(&c.object, "name")),
        (Kind::ConfigMap, EventType::Deleted) if meta_str(&c.object, "name") == NAME => {
            publish(cluster, meta_str(&c.object, "namespace"));
        }
        _ => {}
    }
}
