//! The pod log endpoint through kube-rs, against pods the kubelet really runs.

mod support;

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

fn pod(name: &str, containers: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": containers}}))
    .unwrap()
}

async fn phase(pods: &Api<Pod>, name: &str) -> String {
    pods.get(name)
        .await
        .ok()
        .and_then(|p| p.status?.phase)
        .unwrap_or_default()
}

#[tokio::test]
async fn logs_plain_tail_follow_and_errors() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let script = "echo one; echo two; sleep 0.3; echo three";
    pods.create(
        &PostParams::default(),
        &pod(
            "p",
            json!([{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]),
        ),
    )
    .await
    .unwrap();

    // Follow from the start: every line, and the stream ends when the container exits.
    let started = support::eventually(5, || async {
        matches!(phase(&pods, "p").await.as_str(), "Running" | "Succeeded")
    })
    .await;
    assert!(started, "pod starts");
    let lp = LogParams {
        follow: true,
        ..Default::default()
    };
    let stream = pods.log_stream("p", &lp).await.unwrap();
    let lines: Vec<String> =
        tokio::time::timeout(Duration::from_secs(5), stream.lines().try_collect())
            .await
            .expect("follow ends when the container exits")
            .unwrap();
    assert_eq!(lines, vec!["one", "two", "three"]);

    assert!(support::eventually(5, || async { phase(&pods, "p").await == "Succeeded" }).await);
    let all = pods.logs("p", &LogParams::default()).await.unwrap();
    assert_eq!(all, "one\ntwo\nthree\n");
    let tail = pods
        .logs(
            "p",
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "three\n");
    let ts = pods
        .logs(
            "p",
            &LogParams {
                timestamps: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(ts.ends_with("Z three\n"), "{ts}");
    let limited = pods
        .logs(
            "p",
            &LogParams {
                limit_bytes: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limited, "one\nt");

    // Errors.
    let err = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.message.clone()),
        other => panic!("{other:?}"),
    };
    let (code, msg) = err(pods
        .logs(
            "p",
            &LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err());
    assert_eq!(
        (code, msg.as_str()),
        (400, "container nope is not valid for pod p")
    );
    let (code, msg) = err(pods
        .logs(
            "p",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err());
    assert_eq!(
        (code, msg.as_str()),
        (
            400,
            "previous terminated container \"main\" in pod \"p\" not found"
        )
    );
    let (code, _) = err(pods
        .logs("missing", &LogParams::default())
        .await
        .unwrap_err());
    assert_eq!(code, 404);

    pods.create(
        &PostParams::default(),
        &pod("two", json!([{"name": "a", "image": "x", "command": ["true"]}, {"name": "b", "image": "x", "command": ["true"]}])),
    )
    .await
    .unwrap();
    let (code, msg) = err(pods.logs("two", &LogParams::default()).await.unwrap_err());
    assert_eq!(
        (code, msg.as_str()),
        (
            400,
            "a container name must be specified for pod two, choose one of: [a b]"
        )
    );

    // A cluster-wide pod list sees them all.
    let all: Api<Pod> = Api::all(pods.clone().into_client());
    let names: Vec<String> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert!(names.contains(&"p".to_string()) && names.contains(&"two".to_string()));
}
