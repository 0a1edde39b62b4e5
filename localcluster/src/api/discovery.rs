//! Discovery documents: `/version`, `/api`, `/apis` and the APIResourceLists (OpenAPI: `openapi`).

use serde_json::{json, Value};

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:07:52Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /api`.
pub fn api_versions(port: u16) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}],
    })
}

fn batch_group_doc() -> Value {
    json!({
        "name": "batch",
        "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
    })
}

/// `GET /apis`.
pub fn api_groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [batch_group_doc()]})
}

/// `GET /apis/batch`.
pub fn batch_group() -> Value {
    let mut g = batch_group_doc();
    if let Some(m) = g.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    g
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn res(
    name: &str,
    singular: &str,
    namespaced: bool,
    kind: &str,
    verbs: &[&str],
    short: &[&str],
    categories: &[&str],
) -> Value {
    let mut r = json!({
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if let Some(m) = r.as_object_mut() {
        if !short.is_empty() {
            m.insert("shortNames".into(), json!(short));
        }
        if !categories.is_empty() {
            m.insert("categories".into(), json!(categories));
        }
        if let Some(h) = storage_version_hash(name) {
            m.insert("storageVersionHash".into(), json!(h));
        }
    }
    r
}

/// kube-apiserver's `storageVersionHash` of a resource (a hash of its storage version, the
/// same in every cluster of a release; subresources have none).
fn storage_version_hash(resource: &str) -> Option<&'static str> {
    Some(match resource {
        "configmaps" => "qFsyl6wFWjQ=",
        "events" => "r2yiGXH7wu8=",
        "namespaces" => "Q3oi5N2YM8M=",
        "pods" => "xPOwRZ+Yhw8=",
        "secrets" => "S6u1pOWzb84=",
        "jobs" => "mudhfqk/qZY=",
        _ => return None,
    })
}

/// `GET /api/v1`.
pub fn core_v1() -> Value {
    let ns_verbs = &[
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    // The core group's list carries no apiVersion (kube-apiserver's, as of v1.37).
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            res("configmaps", "configmap", true, "ConfigMap", ALL_VERBS, &["cm"], &[]),
            res("events", "event", true, "Event", ALL_VERBS, &["ev"], &[]),
            res("namespaces", "namespace", false, "Namespace", ns_verbs, &["ns"], &[]),
            res("pods", "pod", true, "Pod", ALL_VERBS, &["po"], &["all"]),
            res("pods/binding", "", true, "Binding", &["create"], &[], &[]),
            res("pods/log", "", true, "Pod", &["get"], &[], &[]),
            res("pods/status", "", true, "Pod", &["get", "patch", "update"], &[], &[]),
            res("secrets", "secret", true, "Secret", ALL_VERBS, &[], &[]),
        ],
    })
}

/// `GET /apis/batch/v1`.
pub fn batch_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "batch/v1",
        "resources": [
            res("jobs", "job", true, "Job", ALL_VERBS, &[], &["all"]),
            res("jobs/status", "", true, "Job", &["get", "patch", "update"], &[], &[]),
        ],
    })
}
