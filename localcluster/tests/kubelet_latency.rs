//! How long one pod of `sh -c true` takes from its create to `Succeeded` as a watch sees it,
//! one pod at a time: the kubelet's share of a client's wait latency (run with
//! `cargo test --release -p localcluster --test kubelet_latency -- --ignored --nocapture`;
//! with `KJENV_TEST_KUBECONFIG` set, against that cluster — e.g. a real control plane with
//! `kjenv-kubelet` as its node — instead of an in-process emulator).

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run in release"]
async fn pod_create_to_succeeded() {
    let (_cluster, client) = match std::env::var("KJENV_TEST_KUBECONFIG") {
        Ok(path) => {
            let kc = Kubeconfig::read_from(path).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .expect("config");
            (None, kube::Client::try_from(config).expect("client"))
        }
        Err(_) => {
            let cluster = support::start();
            let client = support::client(&cluster).await;
            (Some(cluster), client)
        }
    };
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let mut times = Vec::new();
    for i in 0..40 {
        let name = format!("lat-{run}-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}]}
        }))
        .expect("pod");
        let wp = WatchParams::default().fields(&format!("metadata.name={name}"));
        let mut stream = pods.watch(&wp, "0").await.expect("watch").boxed();
        let t = Instant::now();
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create");
        while let Some(ev) = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("hang guard")
        {
            if let Ok(WatchEvent::Modified(p)) = ev {
                let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
                if phase == "Succeeded" {
                    break;
                }
            }
        }
        times.push(t.elapsed());
        pods.delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    times.sort();
    println!(
        "create → Succeeded, 40 pods one at a time: median {:?}, p90 {:?}",
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );
}
