//! The job controller and kubelet as kube-rs sees them over HTTPS: a Job created through the
//! API runs, its pod's log streams while it runs, conditions and counts arrive, and a
//! Background delete removes the pods.

mod support;

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use support::*;

fn job(name: &str, script: &str, backoff_limit: i32) -> Job {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}}
    }))
    .expect("job parses")
}

async fn terminal_condition(jobs: &Api<Job>, name: &str) -> Option<(String, String)> {
    let j = jobs.get(name).await.ok()?;
    j.status?.conditions?.into_iter().find_map(|c| {
        ((c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .then(|| (c.type_, c.reason.unwrap_or_default()))
    })
}

async fn wait_terminal(jobs: &Api<Job>, name: &str) -> (String, String) {
    for _ in 0..500 {
        if let Some(t) = terminal_condition(jobs, name).await {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {name} did not finish");
}

#[tokio::test]
async fn a_job_created_over_https_streams_its_log_and_completes() {
    let lc = start();
    let client = client(&lc).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    jobs.create(
        &PostParams::default(),
        &job("stream", "echo one; sleep 0.5; echo two", 6),
    )
    .await
    .expect("create");
    let lp = ListParams::default().labels("job-name=stream");
    let mut pod_name = None;
    for _ in 0..250 {
        let list = pods.list(&lp).await.expect("list");
        if let Some(p) = list
            .items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        {
            pod_name = p.metadata.name;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pod_name = pod_name.expect("a running pod");
    let params = LogParams {
        follow: true,
        ..Default::default()
    };
    let lines: Vec<String> = pods
        .log_stream(&pod_name, &params)
        .await
        .expect("log stream")
        .lines()
        .try_collect()
        .await
        .expect("lines");
    assert_eq!(lines, ["one", "two"]);
    assert_eq!(
        wait_terminal(&jobs, "stream").await,
        ("Complete".into(), "CompletionsReached".into())
    );
    let status = jobs
        .get("stream")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.active, None);
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    assert_eq!(
        pods.logs(&pod_name, &LogParams::default())
            .await
            .expect("logs"),
        "one\ntwo\n"
    );

    let dp = DeleteParams::background();
    jobs.delete("stream", &dp).await.expect("delete");
    for _ in 0..250 {
        if pods.list(&lp).await.expect("list").items.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("pods of a deleted job remain");
}

#[tokio::test]
async fn a_failing_job_reports_failed_over_https() {
    let lc = start();
    let client = client(&lc).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &job("bad", "exit 3", 1))
        .await
        .expect("create");
    assert_eq!(
        wait_terminal(&jobs, "bad").await,
        ("Failed".into(), "BackoffLimitExceeded".into())
    );
    let status = jobs.get("bad").await.expect("get").status.expect("status");
    assert_eq!(status.failed, Some(2));
    let types: Vec<String> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types, ["FailureTarget", "Failed"]);
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let list = pods
        .list(&ListParams::default().labels("job-name=bad"))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 2);
}
