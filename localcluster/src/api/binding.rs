//! `POST …/pods/{name}/binding`: places a pod on a node, as a scheduler does (the API
//! server's `BindingREST`): sets `spec.nodeName` and `PodScheduled=True`, once.

use std::sync::Arc;

use chrono::Utc;
use hyper::Response;
use serde_json::json;

use super::target::Target;
use super::{json_response, Body, Req};
use crate::error::ApiError;
use crate::meta::rfc3339;
use crate::store::{meta_str, Kind};
use crate::Cluster;

fn conflict(name: &str, detail: String) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!("Operation cannot be fulfilled on pods/binding \"{name}\": {detail}"),
    )
}

/// Binds the pod to `target.name` of the Binding in the body.
///
/// # Errors
/// 400 for a body that is no Binding, 404 for a missing pod, 409 when the pod is already
/// bound, being deleted, or has another UID than the Binding's.
pub fn create(cluster: &Arc<Cluster>, req: &Req, t: &Target) -> Result<Response<Body>, ApiError> {
    let body = req.json_body("Binding")?;
    let name = t.name.clone().unwrap_or_default();
    let ns = t.ns.clone().unwrap_or_default();
    let node = body["target"]["name"].as_str().unwrap_or("");
    let kind = body["target"]["kind"].as_str().unwrap_or("Node");
    if node.is_empty() || kind != "Node" {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!("Binding \"{name}\" is invalid: target: must be a Node with a name"),
        ));
    }
    let want_uid = body["metadata"]["uid"].as_str().filter(|u| !u.is_empty());
    cluster.store.update(Kind::Pod, &ns, &name, |pod| {
        if want_uid.is_some_and(|u| u != meta_str(pod, "uid")) {
            return Err(conflict(
                &name,
                "the UID of the binding does not match the pod".into(),
            ));
        }
        if pod["metadata"]["deletionTimestamp"].is_string() {
            let detail = format!("pod {name} is being deleted, cannot be assigned to a host");
            return Err(conflict(&name, detail));
        }
        if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            let detail = format!("pod {name} is already assigned to node \"{n}\"");
            return Err(conflict(&name, detail));
        }
        pod["spec"]["nodeName"] = json!(node);
        if !pod["status"].is_object() {
            pod["status"] = json!({});
        }
        let mut conditions: Vec<serde_json::Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c["type"] != "PodScheduled");
        conditions.push(
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": rfc3339(Utc::now())}),
        );
        pod["status"]["conditions"] = json!(conditions);
        Ok(())
    })?;
    let ok = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(201, &ok))
}
