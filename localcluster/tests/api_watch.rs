//! Watches through kube-rs: raw watch events, selector enter/leave, forced 410 and the
//! `kube::runtime::watcher` re-listing after it.

mod support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;

async fn next<S, T>(s: &mut S) -> T
where
    S: futures::Stream<Item = Result<T, kube::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(3), s.next())
        .await
        .expect("an event within 3 s")
        .expect("stream open")
        .expect("no error")
}

fn cm(name: &str, tier: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}})).unwrap()
}

#[tokio::test]
async fn raw_watch_events_and_selector_transitions() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &cm("before", "web"))
        .await
        .unwrap();

    // RV "0": synthetic ADDED for what exists.
    let wp = WatchParams::default().labels("tier=web").timeout(10);
    let mut s = cms.watch(&wp, "0").await.unwrap().boxed();
    match next(&mut s).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "before"),
        other => panic!("{other:?}"),
    }
    cms.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("b", "db"))
        .await
        .unwrap();
    match next(&mut s).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "a"),
        other => panic!("{other:?}"),
    }
    // b enters the selector → ADDED; a leaves → DELETED.
    let pp = PatchParams::default();
    cms.patch(
        "b",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}})),
    )
    .await
    .unwrap();
    match next(&mut s).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "b"),
        other => panic!("{other:?}"),
    }
    cms.patch(
        "a",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
    )
    .await
    .unwrap();
    match next(&mut s).await {
        WatchEvent::Deleted(o) => assert_eq!(o.name_any(), "a"),
        other => panic!("{other:?}"),
    }
    let deleted_rv = cms.get("b").await.unwrap().resource_version().unwrap();
    cms.delete("b", &DeleteParams::default()).await.unwrap();
    match next(&mut s).await {
        WatchEvent::Deleted(o) => {
            let rv: u64 = o.resource_version().unwrap().parse().unwrap();
            assert!(
                rv > deleted_rv.parse::<u64>().unwrap(),
                "DELETED carries a new RV"
            );
        }
        other => panic!("{other:?}"),
    }

    // Watch from an RV replays what happened after it.
    let list = cms.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &cm("later", "web"))
        .await
        .unwrap();
    let mut s2 = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    match next(&mut s2).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "later"),
        other => panic!("{other:?}"),
    }

    // A forced expiry ends the stream with an ERROR 410 event.
    cluster.expire_watches();
    match next(&mut s2).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watch_timeout_ends_the_stream() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let mut s = jobs
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(3), s.next())
        .await
        .expect("ends within 3 s");
    assert!(end.is_none());
}

#[tokio::test]
async fn runtime_watcher_survives_a_forced_410() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let saw = |ev: &watcher::Event<ConfigMap>, seen: &mut Vec<String>| {
        if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = ev {
            seen.push(o.name_any());
        }
    };
    cms.create(&PostParams::default(), &cm("one", "x"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(&"one".to_string()) {
        let ev = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .expect("event")
            .expect("ok")
            .expect("open");
        saw(&ev, &mut seen);
    }
    cluster.expire_watches();
    cms.create(&PostParams::default(), &cm("two", "x"))
        .await
        .unwrap();
    let mut errors = 0;
    while !seen.contains(&"two".to_string()) {
        match tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("event")
            .expect("open")
        {
            Ok(ev) => saw(&ev, &mut seen),
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1, "at most the one expiry error");
}

#[tokio::test]
async fn table_watch_sends_the_columns_once() {
    // kubectl get --watch asks Tables: kube-apiserver sends columnDefinitions with the first
    // event only, `null` after.
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for name in ["t1", "t2"] {
        cms.create(&PostParams::default(), &cm(name, "tab"))
            .await
            .unwrap();
    }
    let req = hyper::Request::get(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&labelSelector=tier%3Dtab&timeoutSeconds=1",
    )
    .header(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(5), client.request_text(req))
        .await
        .expect("the stream ends with its timeoutSeconds")
        .unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[0]["object"]["kind"], "Table");
    assert!(events[0]["object"]["columnDefinitions"].is_array());
    assert!(events[1]["object"]["columnDefinitions"].is_null());
    assert_eq!(events[1]["object"]["rows"][0]["cells"][0], "t2");
}
