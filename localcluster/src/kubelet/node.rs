//! The node agent's Node object and heartbeats: registers the Node (capacity, addresses,
//! `daemonEndpoints`, `nodeInfo`, conditions), then every [`HEARTBEAT`] renews its Lease in
//! `kube-node-lease` and refreshes the conditions' heartbeat times, so the node-lifecycle
//! controller keeps it Ready.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::meta::now_rfc3339;

/// How often the Lease is renewed and the node's status refreshed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// `leaseDurationSeconds` (a real kubelet's default).
const LEASE_SECONDS: i32 = 40;
/// The namespace of node leases.
const LEASE_NS: &str = "kube-node-lease";

/// What the node advertises.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The Node's name.
    pub name: String,
    /// The HTTPS port of the log endpoint (`daemonEndpoints.kubeletEndpoint.Port`).
    pub port: u16,
}

fn memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(8 << 30, |kb| kb * 1024)
}

/// The node's conditions, all with heartbeat `now` (transition times kept by the server
/// only if we keep them: they are set once at registration and then carried over).
fn conditions(since: &str) -> Value {
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": since})
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The node's status (everything the agent reports about itself).
fn status(info: &NodeInfo, since: &str) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let resources = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_bytes() / 1024),
        "pods": "110",
        "ephemeral-storage": "10Gi",
    });
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions(since),
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": info.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.port}},
        "nodeInfo": {
            "machineID": machine_id.trim(),
            "systemUUID": machine_id.trim(),
            "bootID": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim(),
            "kernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "osImage": "kjenv process kubelet",
            "containerRuntimeVersion": "process://0.1.0",
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
    })
}

/// The Node object to register.
fn node_object(info: &NodeInfo, since: &str) -> Value {
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": info.name, "labels": {
            "kubernetes.io/hostname": info.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch,
        }},
        "spec": {},
        "status": status(info, since),
    })
}

/// Creates the Node (or, when it exists, brings its status up to date) and returns its UID.
///
/// # Errors
/// The API error when neither works.
pub async fn register(client: &kube::Client, info: &NodeInfo) -> Result<String, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let since = now_rfc3339();
    let node: Node =
        serde_json::from_value(node_object(info, &since)).map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => return Ok(n.metadata.uid.unwrap_or_default()),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    let patch = json!({"status": status(info, &since)});
    let n = nodes
        .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(n.metadata.uid.unwrap_or_default())
}

/// Renews the Lease (creating it when missing), owned by the Node.
async fn renew_lease(
    client: &kube::Client,
    info: &NodeInfo,
    node_uid: &str,
) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NS);
    let renew = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let patch = json!({"spec": {"holderIdentity": info.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew}});
    match leases
        .patch(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e),
    }
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": info.name, "namespace": LEASE_NS, "ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": info.name, "uid": node_uid}]},
        "spec": patch["spec"],
    });
    let lease: Lease = serde_json::from_value(lease).map_err(kube::Error::SerdeError)?;
    leases
        .create(&PostParams::default(), &lease)
        .await
        .map(|_| ())
}

/// Refreshes the conditions' heartbeats (and the rest of the status).
async fn post_status(
    client: &kube::Client,
    info: &NodeInfo,
    since: &str,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": status(info, since)});
    nodes
        .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Keeps the node alive until `stop`: registers again if the Node disappears.
pub async fn heartbeats(
    client: kube::Client,
    info: NodeInfo,
    mut node_uid: String,
    stop: CancellationToken,
) {
    let since = now_rfc3339();
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = renew_lease(&client, &info, &node_uid).await {
            eprintln!("kjenv-kubelet: cannot renew the node lease: {e}");
        }
        match post_status(&client, &info, &since).await {
            Err(kube::Error::Api(s)) if s.code == 404 => match register(&client, &info).await {
                Ok(uid) => node_uid = uid,
                Err(e) => eprintln!("kjenv-kubelet: cannot register the node again: {e}"),
            },
            Err(e) => eprintln!("kjenv-kubelet: cannot update the node status: {e}"),
            Ok(()) => {}
        }
    }
}
