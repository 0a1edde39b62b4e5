//! Maps a request path and method to its handler: discovery, the admin endpoints, and the
//! resource paths (`/api/v1/...`, `/apis/batch/v1/...`).

use std::sync::Arc;

use hyper::{header, Method, Response, StatusCode};

use super::target::{negotiate, parse_target, Format};
use super::{
    binding, crud, discovery, error_response, exec, full, json_response, openapi, pod_log,
    protobuf, success, watch, Body, Req,
};
use crate::error::ApiError;
use crate::faults::FaultRule;
use crate::Cluster;

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
        ["openapi", "v2"] if get => Ok(openapi::v2(&req)),
        ["openapi", "v3", rest @ ..] if get => Ok(openapi::v3(&req, rest)),
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
        // `restart-listener` is answered by the server, which owns the listener.
        _ => Ok(page_not_found()),
    }
}

/// A resource request in whichever body format the client speaks: protobuf bodies are
/// turned into JSON before the handlers and answers into protobuf when the client asks.
async fn resource(
    cluster: &Arc<Cluster>,
    req: Req,
    group: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    let proto_out =
        protobuf::accepts_protobuf_first(req.header(header::ACCEPT)) && !req.flag("watch");
    let kind = parse_target(group, rest).map(|t| t.kind);
    let answer = match protobuf::json_request(req, kind) {
        Ok(req) => resource_json(cluster, req, group, rest).await,
        Err(e) => Err(e),
    };
    if !proto_out {
        return answer;
    }
    let resp = answer.unwrap_or_else(|e| error_response(&e));
    Ok(protobuf::protobuf_response(resp).await)
}

async fn resource_json(
    cluster: &Arc<Cluster>,
    req: Req,
    group: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    let Some(target) = parse_target(group, rest) else {
        return Err(ApiError::no_such_resource());
    };
    if target.sub.as_deref() == Some("log") {
        if req.method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        return pod_log::serve(cluster, &req, &target).await;
    }
    if target.sub.as_deref() == Some("exec") {
        return exec::serve(cluster, req, &target).await;
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
