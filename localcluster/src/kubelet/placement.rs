//! The node agent's fallback when no scheduler runs: pods that stay unbound for
//! [`NO_SCHEDULER_AFTER`] without a `PodScheduled` condition (a scheduler sets one even when
//! it cannot place a pod) are bound to this node through `pods/binding` — only while the
//! node's credentials allow it (a `system:node` identity may not bind: the first 403 ends
//! the fallback and leaves placement to the cluster's scheduler).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::api::NodeApi;
use super::remote::RemoteApi;

/// How often unbound pods are looked for.
const EVERY: Duration = Duration::from_secs(1);
/// How long a pod stays unbound and untouched by any scheduler before the node binds it.
pub const NO_SCHEDULER_AFTER: Duration = Duration::from_secs(3);

/// Should the node bind this pod now?
fn unplaced(pod: &Value, now: DateTime<Utc>) -> bool {
    let scheduler = pod["spec"]["schedulerName"]
        .as_str()
        .unwrap_or("default-scheduler");
    let touched = pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled"));
    let age = pod["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| now.signed_duration_since(t));
    let old_enough = age.is_some_and(|a| a.to_std().is_ok_and(|a| a >= NO_SCHEDULER_AFTER));
    scheduler == "default-scheduler"
        && !touched
        && !pod["metadata"]["deletionTimestamp"].is_string()
        && old_enough
}

/// Binds unplaced pods until `stop`, or until the API refuses the node a binding.
pub async fn run(api: Arc<RemoteApi>, stop: CancellationToken) {
    let pods: Api<Pod> = Api::all(api.client().clone());
    let lp = ListParams::default().fields("spec.nodeName=,status.phase=Pending");
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(list) = pods.list(&lp).await else {
            continue;
        };
        let now = Utc::now();
        for p in list.items {
            let pod = serde_json::to_value(p).unwrap_or(Value::Null);
            if !unplaced(&pod, now) {
                continue;
            }
            match api.bind_pod(&pod).await {
                Ok(()) => {
                    let node = &api.config().node_name;
                    let (ns, name) = (&pod["metadata"]["namespace"], &pod["metadata"]["name"]);
                    let msg = format!(
                        "Successfully assigned {}/{} to {node}",
                        ns.as_str().unwrap_or(""),
                        name.as_str().unwrap_or("")
                    );
                    api.event(&pod, None, "Normal", "Scheduled", &msg);
                }
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    eprintln!("kjenv-kubelet: the node may not bind pods; leaving placement to the scheduler");
                    return;
                }
                Err(e) => eprintln!("kjenv-kubelet: cannot bind a pod: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_old_untouched_pods_of_the_default_scheduler_are_placed() {
        let now: DateTime<Utc> = "2026-01-01T00:00:10Z".parse().expect("time");
        let pod = |created: &str, extra: Value| {
            let mut p =
                json!({"metadata": {"creationTimestamp": created}, "spec": {}, "status": {}});
            if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    p.insert(k.clone(), v.clone());
                }
            }
            p
        };
        assert!(unplaced(&pod("2026-01-01T00:00:00Z", json!({})), now));
        assert!(!unplaced(&pod("2026-01-01T00:00:09Z", json!({})), now));
        let seen = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}});
        assert!(!unplaced(&pod("2026-01-01T00:00:00Z", seen), now));
        let other = json!({"spec": {"schedulerName": "mine"}});
        assert!(!unplaced(&pod("2026-01-01T00:00:00Z", other), now));
    }
}
