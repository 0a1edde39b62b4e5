//! Fault injection: status bursts (retried by kube-rs), resets, latency, the admin endpoint,
//! listener restarts, and authentication.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use localcluster::faults::{Fault, FaultRule};

#[tokio::test]
async fn a_503_burst_then_success() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let jobs: Api<Job> = Api::namespaced(client, "default");
    jobs.create(&PostParams::default(), &support::sample_job("j"))
        .await
        .unwrap();
    cluster.inject(FaultRule::status(
        Some("GET"),
        Some("*/jobs/j"),
        3,
        503,
        Some(0),
    ));
    // kube-rs retries 503 with backoff: the fourth try succeeds.
    assert_eq!(
        jobs.get("j").await.unwrap().metadata.name.as_deref(),
        Some("j")
    );
    assert!(cluster
        .cluster()
        .faults
        .take("GET", "/apis/batch/v1/namespaces/default/jobs/j")
        .is_none());

    // 500 is not retried: the client sees it once.
    cluster.inject(FaultRule::status(None, Some("/jobs/j"), 1, 500, None));
    match jobs.get("j").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (500, "InternalError")),
        other => panic!("{other:?}"),
    }
    assert!(jobs.get("j").await.is_ok());
}

#[tokio::test]
async fn reset_latency_and_admin_endpoint() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");

    cluster.inject(FaultRule {
        method: None,
        path: Some("/jobs/r".into()),
        times: 1,
        action: Fault::Reset,
    });
    assert!(jobs.get("r").await.is_err());

    cluster.inject(FaultRule {
        method: None,
        path: Some("/jobs/slow".into()),
        times: 1,
        action: Fault::Latency(Duration::from_millis(300)),
    });
    let t = Instant::now();
    let _ = jobs.get("slow").await;
    assert!(t.elapsed() >= Duration::from_millis(300));

    let req = hyper::Request::post("/_kjenv/faults")
        .header("content-type", "application/json")
        .body(br#"{"method":"GET","path":"/apis/batch/v1/namespaces/default/jobs/x","times":1,"status":500}"#.to_vec())
        .unwrap();
    client.request_text(req).await.unwrap();
    match jobs.get("x").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 500),
        other => panic!("{other:?}"),
    }
    match jobs.get("x").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 404),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn restart_listener_keeps_state() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let jobs: Api<Job> = Api::namespaced(client, "default");
    jobs.create(&PostParams::default(), &support::sample_job("kept"))
        .await
        .unwrap();
    cluster.restart_listener().unwrap();
    let ok = support::eventually(3, || async { jobs.get("kept").await.is_ok() }).await;
    assert!(ok, "the job is still there after the restart");
}

#[tokio::test]
async fn bad_token_is_401() {
    let cluster = support::start();
    let mut kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).unwrap();
    for u in &mut kc.auth_infos {
        if let Some(a) = u.auth_info.as_mut() {
            a.token = Some("wrong".to_string().into());
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "default");
    match jobs.get("x").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized")),
        other => panic!("{other:?}"),
    }
}
