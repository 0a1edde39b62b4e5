//! Helpers shared by every localcluster integration test: start a cluster with short backoffs,
//! a kube-rs client for it, objects created straight in the store, polling for conditions.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use localcluster::store::{Kind, Store};
use localcluster::{Cluster, LocalCluster, Options};
use serde_json::{json, Value};

/// A cluster with 100 ms backoffs.
pub fn start() -> LocalCluster {
    start_with(|_| {})
}

/// A cluster with 100 ms backoffs and options tweaked by `f`.
pub fn start_with(f: impl FnOnce(&mut Options)) -> LocalCluster {
    let mut o = Options {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..Options::default()
    };
    f(&mut o);
    LocalCluster::start(o).expect("cluster starts")
}

/// Polls `f` every 20 ms until it returns `Some`, panicking with `what` after 10 × `secs`:
/// `secs` is about what the wait takes on a loaded 2-core machine, and the bound only catches a
/// hang (speed is measured in bench/).
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10 * secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container running `sh -c <script>`.
pub fn sh(name: &str, script: &str) -> Value {
    json!({"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script]})
}

/// Creates a Job in `default` with one container running `script` and the given extra
/// spec fields (merged over `backoffLimit: 6, template.spec.restartPolicy: Never`).
pub fn create_job(c: &Cluster, name: &str, script: &str, extra: Value) -> Value {
    create_job_with(c, name, json!({}), vec![sh("main", script)], extra)
}

/// Creates a Job with explicit pod template metadata, containers and extra spec fields.
pub fn create_job_with(
    c: &Cluster,
    name: &str,
    tpl_meta: Value,
    containers: Vec<Value>,
    extra: Value,
) -> Value {
    let restart = extra
        .get("restartPolicy")
        .cloned()
        .unwrap_or(json!("Never"));
    let mut spec = json!({
        "backoffLimit": 6,
        "template": {"metadata": tpl_meta, "spec": {"restartPolicy": restart, "containers": containers,
            "terminationGracePeriodSeconds": 2}},
    });
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            if k != "restartPolicy" {
                spec[k] = v.clone();
            }
        }
    }
    c.store
        .create(
            Kind::Job,
            json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}),
        )
        .expect("job created")
}

/// Creates a bare pod (no owner, no finalizer) in `default`.
pub fn create_pod(c: &Cluster, name: &str, annotations: Value, containers: Vec<Value>) -> Value {
    c.store
        .create(Kind::Pod, json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"restartPolicy": "Never", "containers": containers, "terminationGracePeriodSeconds": 5}}))
        .expect("pod created")
}

/// The Job as stored.
pub fn job(c: &Cluster, name: &str) -> Option<Value> {
    c.store.get(Kind::Job, "default", name)
}

/// The first `True` terminal condition of a Job: (`Complete`|`Failed`, reason).
pub fn terminal(c: &Cluster, name: &str) -> Option<(String, String)> {
    let j = job(c, name)?;
    j["status"]["conditions"].as_array()?.iter().find_map(|x| {
        let t = x["type"].as_str()?;
        ((t == "Complete" || t == "Failed") && x["status"] == "True")
            .then(|| (t.to_owned(), x["reason"].as_str().unwrap_or("").to_owned()))
    })
}

/// Condition types of a Job, in order.
pub fn condition_types(c: &Cluster, name: &str) -> Vec<String> {
    job(c, name)
        .and_then(|j| j["status"]["conditions"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x["type"].as_str().map(str::to_owned))
        .collect()
}

/// The pods of a Job (by the `job-name` label).
pub fn pods_of(c: &Cluster, job: &str) -> Vec<Value> {
    c.store
        .list(Kind::Pod, Some("default"))
        .0
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["job-name"] == job)
        .collect()
}

/// A pod as stored.
pub fn pod(c: &Cluster, name: &str) -> Option<Value> {
    c.store.get(Kind::Pod, "default", name)
}

/// The text of a container's current log.
pub fn log_text(c: &Cluster, pod: &str, container: &str, previous: bool) -> String {
    c.logs
        .get("default", pod, container, previous)
        .map(|l| {
            l.snapshot()
                .0
                .iter()
                .map(|x| String::from_utf8_lossy(&x.bytes).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Reasons of the events about an object.
pub fn event_reasons(store: &Store, name: &str) -> Vec<String> {
    store
        .list(Kind::Event, Some("default"))
        .0
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

/// The state object (`waiting`/`running`/`terminated`) of a pod's first container.
pub fn state(p: &Value) -> Value {
    p["status"]["containerStatuses"][0]["state"].clone()
}

/// A shared handle to the cluster state.
pub fn shared(lc: &LocalCluster) -> Arc<Cluster> {
    lc.cluster()
}

/// Whether a process is alive (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
            !matches!(after.split_whitespace().next(), Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// A kube-rs client from the cluster's kubeconfig.
pub async fn client(cluster: &LocalCluster) -> Client {
    let kc = Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A valid Job named `name`, as kube-rs sends it.
pub fn sample_job(name: &str) -> Job {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "test"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.12", "command": ["python", "-c", "print(1)"]}]}}}
    }))
    .expect("job parses")
}

/// Polls `f` every 20 ms until it returns true or 10 × `secs` pass: `secs` is about what the
/// wait takes on a loaded 2-core machine, and the bound only catches a hang.
/// (The async twin of [`wait_for`], for tests that await the API.)
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10 * secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
