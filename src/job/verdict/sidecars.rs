//! Classic sidecars (a second container that never exits: a proxy, a log shipper) keep a pod
//! Running after its flow container ended. The flow container's end decides the run: exit 0
//! is a success, any other code a failure (unless `OnFailure` restarts it in place). Native
//! sidecars (init containers with `restartPolicy: Always`) end with the pod and need no rule.

use super::{flow_status, pod_name, Outcome, PodTrack, Rules};

/// The flow container of this pod has ended for good while another of its containers runs.
pub fn flow_ended(t: &PodTrack, rules: &Rules) -> Option<Outcome> {
    let status = t.pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let flow = flow_status(&t.pod, &rules.flow_container)?;
    let end = flow.state.as_ref()?.terminated.as_ref()?;
    let restarts_in_place = t
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .is_some_and(|p| p != "Never");
    if end.exit_code != 0 && restarts_in_place {
        return None;
    }
    let others = status.container_statuses.iter().flatten();
    let mut running = others
        .filter(|c| c.name != rules.flow_container)
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .map(|c| c.name.clone());
    let sidecar = running.next()?;
    Some(Outcome::FlowEnded {
        pod: pod_name(&t.pod),
        exit_code: end.exit_code,
        sidecar,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{json, Value};

    use super::super::{verdict, Snapshot};
    use super::*;

    fn rules() -> Rules {
        Rules {
            flow_container: "flow".into(),
            image_pull_grace: Duration::from_secs(120),
            start_timeout: Duration::from_secs(300),
            deadline: None,
            run_secret: String::new(),
            failed_create_grace: Duration::from_secs(120),
        }
    }

    fn status(name: &str, state: Value) -> Value {
        json!({"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
               "state": state})
    }

    fn pod(policy: &str, phase: &str, flow_code: Option<i32>, init: Vec<Value>) -> Pod {
        let flow = match flow_code {
            Some(code) => json!({"terminated": {"exitCode": code}}),
            None => json!({"running": {}}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "flow"}, {"name": "proxy"}]},
            "status": {"phase": phase, "initContainerStatuses": init, "containerStatuses": [
                status("flow", flow), status("proxy", json!({"running": {}}))]},
        }))
        .expect("a Pod")
    }

    fn decide(p: Pod) -> Option<Outcome> {
        let mut s = Snapshot::new(rules(), "uid");
        s.track(p, Instant::now());
        verdict(&s, Instant::now())
    }

    #[test]
    fn the_flow_containers_end_decides_while_a_sidecar_runs() {
        for code in [0, 1, 3] {
            let got = decide(pod("Never", "Running", Some(code), vec![]));
            assert_eq!(
                got,
                Some(Outcome::FlowEnded {
                    pod: "p".into(),
                    exit_code: code,
                    sidecar: "proxy".into()
                })
            );
        }
    }

    #[test]
    fn no_verdict_while_the_flow_runs_or_restarts_in_place() {
        assert_eq!(decide(pod("Never", "Running", None, vec![])), None);
        assert_eq!(decide(pod("OnFailure", "Running", Some(1), vec![])), None);
        let done = decide(pod("OnFailure", "Running", Some(0), vec![]));
        assert!(matches!(
            done,
            Some(Outcome::FlowEnded { exit_code: 0, .. })
        ));
    }

    #[test]
    fn native_sidecars_need_no_rule() {
        // A native sidecar runs as an init container: the flow container running is no end.
        let native = status("mesh", json!({"running": {}}));
        assert_eq!(decide(pod("Never", "Running", None, vec![native])), None);
        // A finished pod is the Job controller's to count.
        assert_eq!(decide(pod("Never", "Succeeded", Some(0), vec![])), None);
    }

    #[test]
    fn a_native_sidecar_being_stopped_is_no_classic_sidecar() {
        // The flow container ended; the kubelet stops the native sidecar and the pod stays
        // Running until it has: the Job's own outcome follows, kjenv stops nothing.
        for code in [0, 1] {
            let mut p = pod("Never", "Running", Some(code), vec![]);
            let mesh = status("mesh", json!({"running": {}}));
            let st = p.status.as_mut().expect("status");
            st.container_statuses
                .as_mut()
                .expect("statuses")
                .truncate(1);
            st.init_container_statuses = Some(vec![serde_json::from_value(mesh).expect("status")]);
            if let Some(spec) = p.spec.as_mut() {
                spec.containers.truncate(1);
            }
            assert_eq!(decide(p), None, "exit code {code}");
        }
    }
}
