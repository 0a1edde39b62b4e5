//! How long one pod of `sh -c true` takes from its create to `Succeeded` as a watch sees it,
//! one pod at a time: the kubelet's share of a client's wait latency (run with
//! `cargo test --release -p localcluster --test kubelet_latency -- --ignored --nocapture`).

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run in release"]
async fn pod_create_to_succeeded() {
    let cluster = common::start();
    let pods: Api<Pod> = Api::namespaced(common::client(&cluster).await, "default");
    let mut times = Vec::new();
    for i in 0..40 {
        let name = format!("lat-{i}");
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
    }
    times.sort();
    println!(
        "create → Succeeded, 40 pods one at a time: median {:?}, p90 {:?}",
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );
}
