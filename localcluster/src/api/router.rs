//! Maps a request path and method to its handler: discovery, the admin endpoints, and the
//! resource paths (`/api/v1/...`, `/apis/batch/v1/...`).

use std::sync::Arc;
use std::time::Duration;

use hyper::{header, Method, Response, StatusCode};
use serde_json::json;

use super::{
    binding, crud, discovery, error_response, full, json_response, pod_log, watch, Body, Req,
};
use crate::error::ApiError;
use crate::faults::FaultRule;
use crate::store::Kind;
use crate::Cluster;

/// Where a resource request points.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The resource kind.
    pub kind: Kind,
    /// The namespace from the path; `None` for cluster-wide collections and cluster-scoped kinds.
    pub ns: Option<String>,
    /// The object name, for item requests.
    pub name: Option<String>,
    /// The subresource (`status`, `log`).
    pub sub: Option<String>,
}

/// How the client wants objects rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON objects.
    Json,
    /// `meta.k8s.io/v1` Table.
    Table,
}

/// Serves one authenticated request.
pub async fn route(cluster: &Arc<Cluster>, req: Req) -> Response<Body> {
    match dispatch(cluster, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn page_not_found() -> Response<Body> {
    let mut r = Response::new(full("404 page not found\n"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn dispatch(cluster: &Arc<Cluster>, req: Req) -> Result<Response<Body>, ApiError> {
    let path = req.path.clone();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method == Method::GET;
    match segs.as_slice() {
        ["version"] if get => Ok(json_response(200, &discovery::version())),
        ["api"] if get => Ok(json_response(200, &discovery::api_versions(cluster.port))),
        ["apis"] if get => Ok(json_response(200, &discovery::api_groups())),
        ["apis", "batch"] if get => Ok(json_response(200, &discovery::batch_group())),
        ["api", "v1"] if get => Ok(json_response(200, &discovery::core_v1())),
        ["apis", "batch", "v1"] if get => Ok(json_response(200, &discovery::batch_v1())),
        ["openapi", "v2"] if get => Ok(discovery::openapi_v2()),
        ["healthz" | "livez" | "readyz"] if get => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(r)
        }
        ["_kjenv", action] => admin(cluster, &req, action).await,
        ["api", "v1", rest @ ..] => resource(cluster, req, "", rest).await,
        ["apis", "batch", "v1", rest @ ..] => resource(cluster, req, "batch", rest).await,
        _ => Ok(page_not_found()),
    }
}

async fn admin(
    cluster: &Arc<Cluster>,
    req: &Req,
    action: &str,
) -> Result<Response<Body>, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    match action {
        "faults" => {
            let v = req.json_body("fault rule")?;
            let rules = match v {
                serde_json::Value::Array(items) => items,
                one => vec![one],
            };
            let mut parsed = Vec::new();
            for r in &rules {
                parsed.push(FaultRule::from_json(r).map_err(ApiError::bad_request)?);
            }
            for r in parsed {
                cluster.faults.add(r);
            }
            Ok(json_response(200, &success("faults armed")))
        }
        "clear-faults" => {
            cluster.faults.clear();
            Ok(json_response(200, &success("faults cleared")))
        }
        "expire-watches" => {
            cluster.expire_watches();
            Ok(json_response(200, &success("watches expired")))
        }
        "restart-listener" => {
            let c = cluster.clone();
            // Answer first; the restart drops this very connection.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = super::server::restart(&c).await;
            });
            Ok(json_response(200, &success("listener restarting")))
        }
        _ => Ok(page_not_found()),
    }
}

fn success(message: &str) -> serde_json::Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "message": message, "code": 200})
}

/// Parses `rest` (the path after the group version) into a [`Target`].
fn parse_target(group: &str, rest: &[&str]) -> Option<Target> {
    let kind_of = |plural: &str| Kind::from_plural(group, plural);
    let t = |kind, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        kind,
        ns: ns.map(String::from),
        name: name.map(String::from),
        sub: sub.map(String::from),
    };
    match rest {
        [plural] => Some(t(kind_of(plural)?, None, None, None)),
        ["namespaces", ns] if group.is_empty() => Some(t(Kind::Namespace, None, Some(ns), None)),
        ["namespaces", ns, "status"] if group.is_empty() => {
            Some(t(Kind::Namespace, None, Some(ns), Some("status")))
        }
        ["namespaces", ns, plural] => {
            let k = kind_of(plural)?;
            k.namespaced().then(|| t(k, Some(ns), None, None))
        }
        ["namespaces", ns, plural, name] => {
            let k = kind_of(plural)?;
            k.namespaced().then(|| t(k, Some(ns), Some(name), None))
        }
        ["namespaces", ns, plural, name, sub] => {
            let k = kind_of(plural)?;
            let ok = matches!(
                (k, *sub),
                (Kind::Pod, "status" | "log" | "binding") | (Kind::Job, "status")
            );
            (k.namespaced() && ok).then(|| t(k, Some(ns), Some(name), Some(sub)))
        }
        [plural, name] => {
            let k = kind_of(plural)?;
            (!k.namespaced()).then(|| t(k, None, Some(name), None))
        }
        _ => None,
    }
}

/// Picks the response format from `Accept`.
///
/// # Errors
/// 406 when only unsupported media types are listed.
pub fn negotiate(accept: Option<&str>) -> Result<Format, ApiError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Format::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let as_ = params
            .iter()
            .find(|(k, _)| k == "as")
            .map(|(_, v)| v.as_str());
        match media.as_str() {
            "application/json" | "application/*" => match as_ {
                Some("Table") => return Ok(Format::Table),
                _ => return Ok(Format::Json),
            },
            "*/*" => return Ok(Format::Json),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable())
}

async fn resource(
    cluster: &Arc<Cluster>,
    req: Req,
    group: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    let Some(target) = parse_target(group, rest) else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if target.sub.as_deref() == Some("log") {
        if req.method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        return pod_log::serve(cluster, &req, &target).await;
    }
    let format = negotiate(req.header(header::ACCEPT))?;
    let m = &req.method;
    match (&target.name, target.sub.as_deref()) {
        (None, _) if *m == Method::GET => {
            if req.flag("watch") {
                watch::serve(cluster, &req, &target, format)
            } else {
                crud::list(cluster, &req, &target, format)
            }
        }
        (None, _) if *m == Method::POST => crud::create(cluster, &req, &target),
        (None, _) if *m == Method::DELETE => crud::delete_collection(cluster, &req, &target),
        (Some(_), None) if *m == Method::GET => crud::get(cluster, &req, &target, format),
        (Some(_), Some("binding")) if *m == Method::POST => binding::create(cluster, &req, &target),
        (Some(_), Some("binding")) => Err(ApiError::method_not_allowed()),
        (Some(_), Some("status")) if *m == Method::GET => {
            crud::get(cluster, &req, &target, Format::Json)
        }
        (Some(_), _) if *m == Method::PUT => crud::replace(cluster, &req, &target),
        (Some(_), _) if *m == Method::PATCH => crud::patch(cluster, &req, &target),
        (Some(_), None) if *m == Method::DELETE => crud::delete(cluster, &req, &target),
        _ => Err(ApiError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("batch", &["namespaces", "default", "jobs", "x", "status"]).unwrap();
        assert_eq!(
            (t.kind, t.ns.as_deref(), t.name.as_deref(), t.sub.as_deref()),
            (Kind::Job, Some("default"), Some("x"), Some("status"))
        );
        assert_eq!(parse_target("", &["pods"]).unwrap().ns, None);
        assert_eq!(
            parse_target("", &["namespaces", "n"]).unwrap().kind,
            Kind::Namespace
        );
        assert!(parse_target("", &["jobs"]).is_none());
        assert!(parse_target("", &["namespaces", "d", "pods", "p", "exec"]).is_none());
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None).unwrap(), Format::Json);
        assert_eq!(
            negotiate(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
            ))
            .unwrap(),
            Format::Table
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")).unwrap(),
            Format::Json
        );
        assert_eq!(negotiate(Some("application/yaml")).unwrap_err().code, 406);
    }
}
