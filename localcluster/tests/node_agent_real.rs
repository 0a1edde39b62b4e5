//! `kjenv-kubelet` as the node of a real control plane (`scripts/real-cluster up DIR`), seen
//! through the real kube-apiserver: the Node is Ready with a fresh Lease, a Job runs and
//! completes, its log comes through `pods/log` (the API server calling `/containerLogs`),
//! follow streams, and deletion honours the grace period. Needs the cluster:
//! `KJENV_TEST_KUBECONFIG=DIR/kubeconfig cargo test -p localcluster --test node_agent_real -- --ignored`.

use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};

const NODE: &str = "kjenv-node";

async fn client() -> kube::Client {
    let path = std::env::var("KJENV_TEST_KUBECONFIG")
        .expect("KJENV_TEST_KUBECONFIG: the kubeconfig of `scripts/real-cluster up DIR`");
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Polls `get` until `f` holds on its JSON (hang guard `secs`).
async fn until<K>(api: &Api<K>, name: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value
where
    K: kube::Resource + serde::Serialize + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = match api.get_opt(name).await.expect("get") {
            Some(o) => serde_json::to_value(o).expect("json"),
            None => Value::Null,
        };
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out on {name}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition(obj: &Value, type_: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
#[ignore = "needs a real control plane: KJENV_TEST_KUBECONFIG"]
async fn the_node_is_ready_and_renews_its_lease() {
    let c = client().await;
    let node = until(&Api::<Node>::all(c.clone()), NODE, 60, |n| {
        condition(n, "Ready")["status"] == "True"
    })
    .await;
    assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.1");
    assert!(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64() > Some(0));
    let leases: Api<Lease> = Api::namespaced(c, "kube-node-lease");
    let first = until(&leases, NODE, 30, |l| l.is_object()).await;
    let renewed = until(&leases, NODE, 60, |l| {
        l["spec"]["renewTime"] != first["spec"]["renewTime"]
    })
    .await;
    assert_eq!(renewed["spec"]["holderIdentity"], NODE);
}

#[tokio::test]
#[ignore = "needs a real control plane: KJENV_TEST_KUBECONFIG"]
async fn a_job_runs_completes_and_its_log_comes_through_the_api_server() {
    let c = client().await;
    let name = format!("hello-{}", suffix());
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c", "echo hello; sleep 1; echo world"]}]}}}
    }))
    .expect("job");
    let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let lp = ListParams::default().labels(&format!("job-name={name}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let pod = loop {
        let l = pods.list(&lp).await.expect("list");
        if let Some(p) = l.items.into_iter().next() {
            break p;
        }
        assert!(Instant::now() < deadline, "no pod for {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    until(&pods, &pod_name, 60, |p| {
        p["status"]["phase"] == "Running" || p["status"]["phase"] == "Succeeded"
    })
    .await;
    // Follow: the lines as they come, the stream ends with the container.
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods
        .log_stream(&pod_name, &follow)
        .await
        .expect("follow")
        .lines();
    let mut seen = Vec::new();
    while let Some(l) = tokio::time::timeout(Duration::from_secs(60), lines.next())
        .await
        .expect("hang guard")
    {
        seen.push(l.expect("line"));
    }
    assert_eq!(seen, ["hello", "world"]);
    let done = until(&jobs, &name, 60, |j| {
        condition(j, "Complete")["status"] == "True"
    })
    .await;
    assert_eq!(done["status"]["succeeded"], 1);
    let p = until(&pods, &pod_name, 10, |p| {
        p["status"]["phase"] == "Succeeded"
    })
    .await;
    assert_eq!(p["spec"]["nodeName"], NODE);
    assert_eq!(p["status"]["podIP"], "127.0.0.1");
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (t["exitCode"].as_i64(), t["reason"].as_str()),
        (Some(0), Some("Completed"))
    );
    let tail = LogParams {
        tail_lines: Some(1),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&pod_name, &tail).await.expect("logs"), "world\n");
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    jobs.delete(&name, &dp).await.expect("delete job");
}

#[tokio::test]
#[ignore = "needs a real control plane: KJENV_TEST_KUBECONFIG"]
async fn deletion_waits_for_sigterm_or_the_grace_period() {
    let c = client().await;
    let pods: Api<Pod> = Api::namespaced(c, "default");
    let pod = |name: &str, script: &str, grace: i64| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": grace,
                "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}]}
        }))
        .expect("pod")
    };
    let s = suffix();
    let (polite, stubborn) = (format!("polite-{s}"), format!("stubborn-{s}"));
    let trap = "trap 'exit 0' TERM; while true; do sleep 0.05; done";
    let ignore = "trap '' TERM; while true; do sleep 0.05; done";
    for p in [pod(&polite, trap, 60), pod(&stubborn, ignore, 2)] {
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create");
    }
    for n in [&polite, &stubborn] {
        until(&pods, n, 60, |p| p["status"]["phase"] == "Running").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    for n in [&polite, &stubborn] {
        pods.delete(n, &DeleteParams::default())
            .await
            .expect("delete");
    }
    until(&pods, &polite, 30, Value::is_null).await;
    let polite_gone = t.elapsed();
    until(&pods, &stubborn, 30, Value::is_null).await;
    let stubborn_gone = t.elapsed();
    assert!(polite_gone < Duration::from_secs(30), "{polite_gone:?}");
    assert!(stubborn_gone >= Duration::from_secs(2), "{stubborn_gone:?}");
}
