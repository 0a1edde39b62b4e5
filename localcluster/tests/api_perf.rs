//! Throughput of creates over keep-alive connections from kube-rs (run with
//! `cargo test --release -p localcluster --test api_perf -- --ignored --nocapture`).

mod support;

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run in release"]
async fn creates_per_second() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let n = 10_000;
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}"), "labels": {"i": i.to_string()}}, "data": {"k": "v"}})).unwrap();
                cms.create(&PostParams::default(), &cm).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!("{rate:.0} creates/s");
    let t = Instant::now();
    let l = cms
        .list(&ListParams::default().labels("i=5"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    println!("selector list over {n}: {:?}", t.elapsed());
}
