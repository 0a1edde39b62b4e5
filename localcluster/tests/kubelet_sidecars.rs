//! The process kubelet on native sidecars (init containers with `restartPolicy: Always`):
//! started in their order, running beside the containers, restarted when they exit, stopped
//! in reverse order once the containers ended, and left out of the pod's phase.

mod support;

use localcluster::store::Kind;
use localcluster::Cluster;
use serde_json::{json, Value};
use support::*;

/// An init container running `script` with `restartPolicy: Always`.
fn sidecar(name: &str, script: &str) -> Value {
    let mut c = sh(name, script);
    c["restartPolicy"] = json!("Always");
    c
}

fn create(c: &Cluster, name: &str, grace: i64, init: Vec<Value>, containers: Vec<Value>) {
    c.store
        .create(
            Kind::Pod,
            json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": grace,
                    "initContainers": init, "containers": containers}}),
        )
        .expect("pod");
}

fn init_status(p: &Value, name: &str) -> Value {
    p["status"]["initContainerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .cloned()
        .unwrap_or_default()
}

fn condition(p: &Value, type_: &str) -> String {
    p["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == type_))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn phase_is(c: &Cluster, name: &str, phase: &str) -> Option<Value> {
    pod(c, name).filter(|p| p["status"]["phase"] == phase)
}

#[test]
fn a_sidecar_runs_beside_the_containers_and_is_stopped_after_them() {
    let lc = start();
    let c = shared(&lc);
    let init = vec![
        sh("prep", "echo prep"),
        sidecar("mesh", "echo mesh up; exec sleep 3600"),
        sh("after", "echo after"),
    ];
    create(&c, "side", 5, init, vec![sh("main", "sleep 1; echo main")]);
    let p = wait_for(5, "main to run beside the sidecar", || {
        phase_is(&c, "side", "Running").filter(|p| state(p)["running"].is_object())
    });
    let mesh = init_status(&p, "mesh");
    assert!(mesh["state"]["running"].is_object(), "{mesh}");
    assert_eq!(
        (&mesh["started"], &mesh["ready"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        init_status(&p, "after")["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(condition(&p, "Initialized"), "True");
    assert_eq!(condition(&p, "Ready"), "True");
    let p = wait_for(5, "the pod to succeed", || {
        phase_is(&c, "side", "Succeeded")
    });
    let mesh = init_status(&p, "mesh");
    // Stopped by SIGTERM: its exit code is no failure of the pod.
    assert_eq!(mesh["state"]["terminated"]["exitCode"], 143, "{mesh}");
    assert_eq!(
        (&mesh["started"], &mesh["ready"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(mesh["restartCount"], 0);
    assert_eq!(condition(&p, "Initialized"), "True");
    assert_eq!(log_text(&c, "side", "main", false), "main\n");
    assert_eq!(log_text(&c, "side", "mesh", false), "mesh up\n");
    assert!(event_reasons(&c.store, "side").contains(&"Killing".to_owned()));
}

#[test]
fn a_sidecar_that_exits_is_restarted_whatever_the_pods_policy() {
    let lc = start();
    let c = shared(&lc);
    let init = vec![sidecar("flaky", "echo try; sleep 0.2; exit 3")];
    let main = sh("main", "sleep 2; echo done");
    create(&c, "flaky", 5, init, vec![main]);
    let p = wait_for(5, "the pod to succeed", || {
        phase_is(&c, "flaky", "Succeeded")
    });
    let flaky = init_status(&p, "flaky");
    assert!(flaky["restartCount"].as_i64() >= Some(1), "{flaky}");
    assert_eq!(flaky["lastState"]["terminated"]["exitCode"], 3, "{flaky}");
    assert_eq!(state(&p)["terminated"]["exitCode"], 0);
}

#[test]
fn sidecars_stop_in_reverse_order_and_do_not_decide_the_phase() {
    let lc = start();
    let c = shared(&lc);
    let file = std::env::temp_dir().join(format!("kjenv-sidecar-stops-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let f = file.display();
    let stops =
        |n: &str| format!("trap 'echo {n} >> {f}; exit 0' TERM; echo up; sleep 3600 & wait");
    // `stubborn` ignores SIGTERM: stopped last, killed after the 1 s grace period, exit 137.
    let init = vec![
        sidecar("stubborn", "trap '' TERM; while true; do sleep 0.1; done"),
        sidecar("first", &stops("first")),
        sidecar("second", &stops("second")),
    ];
    create(&c, "order", 1, init, vec![sh("main", "sleep 0.5; exit 4")]);
    let p = wait_for(5, "the pod to fail", || phase_is(&c, "order", "Failed"));
    assert_eq!(state(&p)["terminated"]["exitCode"], 4);
    let code = |n: &str| init_status(&p, n)["state"]["terminated"]["exitCode"].clone();
    assert_eq!((code("first"), code("second")), (json!(0), json!(0)));
    assert_eq!(code("stubborn"), json!(137));
    let order = std::fs::read_to_string(&file).expect("stops file");
    let _ = std::fs::remove_file(&file);
    assert_eq!(order, "second\nfirst\n");
}

#[test]
fn a_sidecar_alone_before_no_other_init_container_still_succeeds() {
    let lc = start();
    let c = shared(&lc);
    create(
        &c,
        "solo",
        5,
        vec![sidecar("mesh", "exec sleep 3600")],
        vec![sh("main", "echo hi")],
    );
    let p = wait_for(5, "the pod to succeed", || {
        phase_is(&c, "solo", "Succeeded")
    });
    assert_eq!(condition(&p, "Initialized"), "True");
    assert!(init_status(&p, "mesh")["state"]["terminated"].is_object());
}
