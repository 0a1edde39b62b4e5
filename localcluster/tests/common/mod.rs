//! Shared helpers of the API integration tests: start a cluster, build a kube-rs client for it.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use localcluster::{LocalCluster, Options};

/// A cluster with short backoffs.
pub fn start() -> LocalCluster {
    LocalCluster::start(Options {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..Options::default()
    })
    .expect("cluster starts")
}

/// A kube-rs client from the cluster's kubeconfig.
pub async fn client(cluster: &LocalCluster) -> Client {
    let kc = Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A valid Job named `name`.
pub fn job(name: &str) -> Job {
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
