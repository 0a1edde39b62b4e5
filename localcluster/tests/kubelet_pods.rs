//! The process kubelet on bare pods: env, config errors, simulations, deletion with SIGTERM,
//! shutdown, the concurrency limit.

mod support;

use localcluster::store::{DeleteOptions, Kind};
use serde_json::{json, Value};
use support::*;

fn phase(c: &localcluster::Cluster, name: &str) -> String {
    pod(c, name)
        .and_then(|p| p["status"]["phase"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn waiting_reason(c: &localcluster::Cluster, name: &str) -> Option<String> {
    pod(c, name).and_then(|p| state(&p)["waiting"]["reason"].as_str().map(str::to_owned))
}

#[test]
fn env_comes_from_values_secrets_configmaps_and_the_downward_api() {
    let lc = start_with(|o| o.path_prefix = vec!["/opt/first".into()]);
    let c = shared(&lc);
    c.store
        .create(
            Kind::Secret,
            json!({"metadata": {"name": "creds", "namespace": "default"},
                "data": {"password": "czNjcjN0"}}),
        )
        .expect("secret");
    c.store
        .create(
            Kind::ConfigMap,
            json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"mode": "fast"}}),
        )
        .expect("configmap");
    let mut ctr = sh(
        "main",
        "echo $PASSWORD $MODE $POD $NS $IP $GREETING; echo $PATH | cut -d: -f1; echo $KUBECONFIG",
    );
    ctr["env"] = json!([
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "GREETING", "value": "hello-$(POD)"},
        {"name": "MISSING_OK", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
    ]);
    create_pod(&c, "envy", json!({}), vec![ctr]);
    wait_for(5, "pod to finish", || {
        (phase(&c, "envy") == "Succeeded").then_some(())
    });
    let log = log_text(&c, "envy", "main", false);
    let kubeconfig = c.kubeconfig_path.display().to_string();
    assert_eq!(
        log,
        format!("s3cr3t fast envy default 127.0.0.1 hello-envy\n/opt/first\n{kubeconfig}\n")
    );
}

#[test]
fn a_missing_secret_is_a_create_container_config_error_until_it_appears() {
    let lc = start();
    let c = shared(&lc);
    let mut ctr = sh("main", "echo $TOKEN");
    ctr["env"] = json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]);
    create_pod(&c, "cfgerr", json!({}), vec![ctr]);
    wait_for(5, "config error", || {
        (waiting_reason(&c, "cfgerr").as_deref() == Some("CreateContainerConfigError"))
            .then_some(())
    });
    let p = pod(&c, "cfgerr").expect("pod");
    assert_eq!(
        state(&p)["waiting"]["message"],
        "secret \"later\" not found"
    );
    assert_eq!(p["status"]["phase"], "Pending");
    // Once the secret exists, the container starts.
    c.store
        .create(
            Kind::Secret,
            json!({"metadata": {"name": "later", "namespace": "default"}, "data": {"token": "dG9r"}}),
        )
        .expect("secret");
    wait_for(5, "pod to finish", || {
        (phase(&c, "cfgerr") == "Succeeded").then_some(())
    });
    assert_eq!(log_text(&c, "cfgerr", "main", false), "tok\n");
}

#[test]
fn a_container_without_command_fails_to_start() {
    let lc = start();
    let c = shared(&lc);
    create_pod(
        &c,
        "nocmd",
        json!({}),
        vec![json!({"name": "main", "image": "python:3.12"})],
    );
    wait_for(5, "pod to fail", || {
        (phase(&c, "nocmd") == "Failed").then_some(())
    });
    let p = pod(&c, "nocmd").expect("pod");
    let t = &state(&p)["terminated"];
    assert_eq!(t["reason"], "StartError");
    assert_eq!(t["exitCode"], 128);
    assert!(
        t["message"]
            .as_str()
            .is_some_and(|m| m.contains("explicit command")),
        "{t}"
    );
}

#[test]
fn init_containers_run_first_in_order() {
    let lc = start();
    let c = shared(&lc);
    c.store
        .create(
            Kind::Pod,
            json!({"metadata": {"name": "init", "namespace": "default"},
                "spec": {"restartPolicy": "Never",
                    "initContainers": [sh("one", "echo 1 > order"), sh("two", "echo 2 >> order")],
                    "containers": [sh("main", "cat order")]}}),
        )
        .expect("pod");
    wait_for(5, "pod to finish", || {
        (phase(&c, "init") == "Succeeded").then_some(())
    });
    assert_eq!(log_text(&c, "init", "main", false), "1\n2\n");
    let p = pod(&c, "init").expect("pod");
    let inits = p["status"]["initContainerStatuses"]
        .as_array()
        .expect("init statuses");
    assert_eq!(inits.len(), 2);
    assert!(inits
        .iter()
        .all(|s| s["state"]["terminated"]["reason"] == "Completed"));
}

#[test]
fn simulated_image_pull_error_never_starts() {
    let lc = start();
    let c = shared(&lc);
    let ann = json!({"kjenv.local/simulate": "image-pull-error"});
    create_pod(&c, "pull", ann, vec![sh("main", "echo no")]);
    wait_for(5, "ImagePullBackOff", || {
        (waiting_reason(&c, "pull").as_deref() == Some("ImagePullBackOff")).then_some(())
    });
    let p = pod(&c, "pull").expect("pod");
    assert_eq!(
        state(&p)["waiting"]["message"],
        "Back-off pulling image \"busybox:1.36\""
    );
    assert_eq!(p["status"]["phase"], "Pending");
    let reasons = event_reasons(&c.store, "pull");
    assert!(reasons.contains(&"Failed".to_owned()) && reasons.contains(&"BackOff".to_owned()));
    assert!(c.logs.get("default", "pull", "main", false).is_none());
}

#[test]
fn simulated_oom_kill() {
    let lc = start();
    let c = shared(&lc);
    let ann = json!({"kjenv.local/simulate": "oom-killed"});
    create_pod(&c, "oom", ann, vec![sh("main", "echo started; sleep 10")]);
    wait_for(5, "pod to fail", || {
        (phase(&c, "oom") == "Failed").then_some(())
    });
    let p = pod(&c, "oom").expect("pod");
    let t = &state(&p)["terminated"];
    assert_eq!(t["reason"], "OOMKilled");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(log_text(&c, "oom", "main", false), "started\n");
}

#[test]
fn node_selector_the_node_lacks_leaves_the_pod_unscheduled() {
    // As kube-scheduler: a nodeSelector no node matches keeps the pod Pending, PodScheduled
    // False with the scheduler's message; one the node matches is bound.
    let lc = start();
    let c = shared(&lc);
    for (name, sel) in [
        ("nomatch", json!({"fid": "none"})),
        ("match", json!({"kubernetes.io/os": "linux"})),
    ] {
        c.store
            .create(
                Kind::Pod,
                json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"restartPolicy": "Never", "nodeSelector": sel,
                    "containers": [sh("main", "true")]}}),
            )
            .expect("pod created");
    }
    wait_for(5, "unschedulable", || {
        let p = pod(&c, "nomatch")?;
        (p["status"]["conditions"][0]["reason"] == "Unschedulable").then_some(())
    });
    let p = pod(&c, "nomatch").expect("pod");
    assert!(p["spec"]["nodeName"].is_null());
    assert_eq!(p["status"]["phase"], "Pending");
    let cond = &p["status"]["conditions"][0];
    assert_eq!(cond["observedGeneration"], 1);
    assert!(cond["message"]
        .as_str()
        .unwrap()
        .contains("1 node(s) didn't match Pod's node affinity/selector"));
    wait_for(5, "bound", || {
        pod(&c, "match")?["spec"]["nodeName"].as_str().map(|_| ())
    });
}

#[test]
fn simulated_unschedulable_and_create_error() {
    let lc = start();
    let c = shared(&lc);
    create_pod(
        &c,
        "nowhere",
        json!({"kjenv.local/simulate": "unschedulable"}),
        vec![sh("main", "true")],
    );
    create_pod(
        &c,
        "nocreate",
        json!({"kjenv.local/simulate": "create-error"}),
        vec![sh("main", "true")],
    );
    wait_for(5, "unschedulable", || {
        let p = pod(&c, "nowhere")?;
        (p["status"]["conditions"][0]["reason"] == "Unschedulable").then_some(())
    });
    let p = pod(&c, "nowhere").expect("pod");
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(p["spec"]["nodeName"].is_null());
    assert_eq!(p["status"]["conditions"][0]["status"], "False");
    // The event is recorded after the condition: wait for it too (a loaded machine shows it).
    wait_for(5, "FailedScheduling event", || {
        event_reasons(&c.store, "nowhere")
            .contains(&"FailedScheduling".to_owned())
            .then_some(())
    });
    wait_for(5, "create error", || {
        (waiting_reason(&c, "nocreate").as_deref() == Some("CreateContainerError")).then_some(())
    });
}

#[test]
fn deleting_a_pod_sends_sigterm_then_removes_it() {
    let lc = start();
    let c = shared(&lc);
    let script = "trap 'echo got-term; exit 0' TERM; echo ready; sleep 30 & wait";
    create_pod(&c, "term", json!({}), vec![sh("main", script)]);
    wait_for(5, "ready", || {
        log_text(&c, "term", "main", false)
            .contains("ready")
            .then_some(())
    });
    let log = c.logs.get("default", "term", "main", false).expect("log");
    let p = c
        .store
        .delete(Kind::Pod, "default", "term", &DeleteOptions::default())
        .expect("delete");
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    wait_for(5, "pod removed", || pod(&c, "term").is_none().then_some(()));
    let text: String = log
        .snapshot()
        .0
        .iter()
        .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
        .collect();
    assert_eq!(text, "ready\ngot-term\n");
    assert!(event_reasons(&c.store, "term").contains(&"Killing".to_owned()));
}

#[test]
fn sigkill_after_the_grace_period() {
    let lc = start();
    let c = shared(&lc);
    let script = "trap '' TERM; echo ready; while true; do sleep 0.1; done";
    create_pod(&c, "stubborn", json!({}), vec![sh("main", script)]);
    wait_for(5, "ready", || {
        log_text(&c, "stubborn", "main", false)
            .contains("ready")
            .then_some(())
    });
    let opts = DeleteOptions {
        grace_period_seconds: Some(1),
        ..Default::default()
    };
    c.store
        .delete(Kind::Pod, "default", "stubborn", &opts)
        .expect("delete");
    let t0 = std::time::Instant::now();
    wait_for(5, "pod removed", || {
        pod(&c, "stubborn").is_none().then_some(())
    });
    let took = t0.elapsed();
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
}

#[test]
fn a_second_delete_shortens_the_grace_period() {
    let lc = start();
    let c = shared(&lc);
    let script = "trap '' TERM; echo ready; while true; do sleep 0.1; done";
    create_pod(&c, "shortened", json!({}), vec![sh("main", script)]);
    wait_for(5, "ready", || {
        log_text(&c, "shortened", "main", false)
            .contains("ready")
            .then_some(())
    });
    for grace in [300, 1] {
        let opts = DeleteOptions {
            grace_period_seconds: Some(grace),
            ..Default::default()
        };
        c.store
            .delete(Kind::Pod, "default", "shortened", &opts)
            .expect("delete");
    }
    // Far sooner than the first delete's 300 s (a hang guard, not a timing).
    wait_for(60, "pod removed", || {
        pod(&c, "shortened").is_none().then_some(())
    });
}

#[test]
fn stop_kills_every_process() {
    let mut lc = start();
    let c = shared(&lc);
    // The shell prints its own pid and its background child's.
    create_pod(
        &c,
        "longrun",
        json!({}),
        vec![sh("main", "sleep 60 & echo $$$$ $!; wait")],
    );
    let pids: Vec<i32> = wait_for(5, "pids", || {
        let t = log_text(&c, "longrun", "main", false);
        let v: Vec<i32> = t
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 2).then_some(v)
    });
    assert!(pids.iter().all(|p| alive(*p)));
    lc.stop();
    for p in pids {
        assert!(!alive(p), "process {p} survived stop()");
    }
}

#[test]
fn stop_does_not_report_its_kills_as_the_pods_outcome() {
    let mut lc = start();
    let c = shared(&lc);
    create_job(&c, "stopped", "sleep 60", json!({}));
    wait_for(10, "a running pod", || {
        let pods = pods_of(&c, "stopped");
        pods.iter()
            .any(|p| p["status"]["phase"] == "Running")
            .then_some(())
    });
    lc.stop();
    // A node going away is not a container failing: nothing may say the pod or Job failed.
    let phases: Vec<Value> = pods_of(&c, "stopped")
        .iter()
        .map(|p| p["status"]["phase"].clone())
        .collect();
    assert_eq!(phases, vec![json!("Running")]);
    assert!(!condition_types(&c, "stopped").contains(&"Failed".to_owned()));
}

#[test]
fn the_concurrency_limit_queues_pods() {
    let lc = start_with(|o| o.concurrency = 1);
    let c = shared(&lc);
    create_pod(&c, "first", json!({}), vec![sh("main", "sleep 2")]);
    wait_for(5, "first running", || {
        (phase(&c, "first") == "Running").then_some(())
    });
    create_pod(&c, "second", json!({}), vec![sh("main", "true")]);
    wait_for(5, "second queued", || {
        (waiting_reason(&c, "second").as_deref() == Some("ContainerCreating")).then_some(())
    });
    assert_eq!(phase(&c, "second"), "Pending");
    assert_eq!(phase(&c, "first"), "Running");
    wait_for(5, "second done", || {
        (phase(&c, "second") == "Succeeded").then_some(())
    });
}

#[test]
fn restart_policy_always_restarts_even_after_success() {
    let lc = start();
    let c = shared(&lc);
    c.store
        .create(
            Kind::Pod,
            json!({"metadata": {"name": "always", "namespace": "default"},
                "spec": {"containers": [sh("main", "echo run")]}}),
        )
        .expect("pod");
    wait_for(5, "a restart", || {
        let p = pod(&c, "always")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1).then_some(())
    });
    assert_eq!(phase(&c, "always"), "Running");
}
