//! `GET …/pods/{name}/log`: picks the container as the API server does, then the attempt as
//! the kubelet does ([`serve_container`], also behind the node agent's `/containerLogs`),
//! applies `sinceSeconds`/`sinceTime`/`tailLines`/`limitBytes`/`timestamps`, and follows
//! (chunked) until the container exits.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use hyper::{header, Response};
use serde_json::Value;

use super::target::Target;
use super::{full, stream_response, Body, ChannelBody, Req};
use crate::error::ApiError;
use crate::logs::{ContainerLog, LogLine, LogStore};
use crate::store::{meta_str, Kind};
use crate::Cluster;

/// What the query asks for.
struct LogQuery {
    since: Option<DateTime<Utc>>,
    timestamps: bool,
    tail: Option<usize>,
    limit: Option<usize>,
}

fn parse_query(req: &Req) -> Result<LogQuery, ApiError> {
    let since_seconds = req.param("sinceSeconds");
    let since_time = req.param("sinceTime");
    if since_seconds.is_some() && since_time.is_some() {
        return Err(ApiError::bad_request(
            "at most one of sinceTime or sinceSeconds may be specified",
        ));
    }
    let since = match (since_seconds, since_time) {
        (Some(s), _) => {
            let secs: i64 = s
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid sinceSeconds {s:?}")))?;
            if secs < 1 {
                return Err(ApiError::bad_request("sinceSeconds must be greater than 0"));
            }
            Some(Utc::now() - chrono::Duration::seconds(secs))
        }
        (_, Some(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| ApiError::bad_request(format!("invalid sinceTime {t:?}")))?
                .with_timezone(&Utc),
        ),
        _ => None,
    };
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        req.param(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid {name} {v:?}")))
            })
            .transpose()
    };
    let tail = number("tailLines")?.and_then(|n| usize::try_from(n).ok());
    let limit = match number("limitBytes")? {
        Some(n) if n < 1 => return Err(ApiError::bad_request("limitBytes must be greater than 0")),
        Some(n) => usize::try_from(n).ok(),
        None => None,
    };
    Ok(LogQuery {
        since,
        timestamps: req.flag("timestamps"),
        tail,
        limit,
    })
}

fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .map(String::from)
        .collect()
}

fn container_status<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|l| pod["status"][*l].as_array().into_iter().flatten())
        .find(|s| s["name"] == name)
}

/// Picks the log to serve, or the kubelet's error for this container state.
fn choose_log(
    logs: &LogStore,
    ns: &str,
    pod: &str,
    c: &str,
    status: Option<&Value>,
    previous: bool,
) -> Result<Option<Arc<ContainerLog>>, ApiError> {
    let get = |prev| logs.get(ns, pod, c, prev);
    if previous {
        return get(true).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "previous terminated container \"{c}\" in pod \"{pod}\" not found"
            ))
        });
    }
    let state = status.map(|s| &s["state"]);
    let last_terminated = status.is_some_and(|s| !s["lastState"]["terminated"].is_null());
    match state {
        Some(st) if !st["running"].is_null() || !st["terminated"].is_null() => {
            Ok(get(false).or_else(|| get(true)))
        }
        Some(st) if !st["waiting"].is_null() => {
            if last_terminated {
                return Ok(get(false).filter(|l| l.is_finished()).or_else(|| get(true)));
            }
            let reason = st["waiting"]["reason"]
                .as_str()
                .unwrap_or("ContainerCreating");
            let why = match reason {
                "ErrImagePull" => "image can't be pulled".to_string(),
                "ImagePullBackOff" => "trying and failing to pull image".to_string(),
                other => other.to_string(),
            };
            Err(ApiError::bad_request(format!(
                "container \"{c}\" in pod \"{pod}\" is waiting to start: {why}"
            )))
        }
        _ => match get(false) {
            Some(l) => Ok(Some(l)),
            None => Err(ApiError::bad_request(format!(
                "container \"{c}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ))),
        },
    }
}

/// Renders lines (after the `since` filter) with optional timestamps into `out`, up to `budget` bytes.
fn render(lines: &[LogLine], q: &LogQuery, out: &mut BytesMut, budget: &mut Option<usize>) {
    for l in lines {
        if q.since.is_some_and(|s| l.time < s) {
            continue;
        }
        let mut chunk = Vec::with_capacity(l.bytes.len() + 32);
        if q.timestamps {
            chunk.extend_from_slice(
                l.time
                    .to_rfc3339_opts(SecondsFormat::Nanos, true)
                    .as_bytes(),
            );
            chunk.push(b' ');
        }
        chunk.extend_from_slice(&l.bytes);
        match budget {
            Some(0) => return,
            Some(left) => {
                let n = chunk.len().min(*left);
                out.extend_from_slice(&chunk[..n]);
                *left -= n;
            }
            None => out.extend_from_slice(&chunk),
        }
    }
}

fn tail(lines: Vec<LogLine>, q: &LogQuery) -> Vec<LogLine> {
    let kept: Vec<LogLine> = lines
        .into_iter()
        .filter(|l| q.since.is_none_or(|s| l.time >= s))
        .collect();
    match q.tail {
        Some(n) if n < kept.len() => kept[kept.len() - n..].to_vec(),
        _ => kept,
    }
}

fn text_response(bytes: Bytes) -> Response<Body> {
    let mut r = Response::new(full(bytes));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Serves the log endpoint.
///
/// # Errors
/// 404 for a missing pod, 400 for container choice and state errors.
pub async fn serve(
    cluster: &Arc<Cluster>,
    req: &Req,
    t: &Target,
) -> Result<Response<Body>, ApiError> {
    let ns = t.ns.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let pod = cluster
        .store
        .get_arc(Kind::Pod, &ns, &name)
        .ok_or_else(|| ApiError::not_found(Kind::Pod, &name))?;
    // A bad query is reported before a bad container choice, as the API server does.
    parse_query(req)?;
    let container = choose_container(req, &pod, &name)?;
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        // kube-apiserver answers the log of a pod no node runs with an empty 204.
        let mut r = Response::new(super::full(Bytes::new()));
        *r.status_mut() = hyper::StatusCode::NO_CONTENT;
        return Ok(r);
    }
    serve_container(
        &cluster.logs,
        &pod,
        &container,
        req,
        cluster.shutdown.clone(),
    )
}

/// The container the request names, or the pod's only one.
///
/// # Errors
/// 400 for a container the pod does not have, or none named when there is a choice.
fn choose_container(req: &Req, pod: &Value, name: &str) -> Result<String, ApiError> {
    let containers = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    match req.param("container").filter(|c| !c.is_empty()) {
        Some(c) => {
            if !containers.iter().chain(init.iter()).any(|x| x == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            Ok(c.to_string())
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// Serves the log of one container of `pod` (as the kubelet does for the API server):
/// the attempt `previous` asks for, filtered and rendered as the query says, followed until
/// the container exits (or `stop` is cancelled, or the client goes away).
///
/// # Errors
/// 400 for a bad query, a container still waiting, or a missing previous attempt.
pub fn serve_container(
    logs: &LogStore,
    pod: &Value,
    container: &str,
    req: &Req,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Response<Body>, ApiError> {
    let q = parse_query(req)?;
    let (ns, name) = (meta_str(pod, "namespace"), meta_str(pod, "name"));
    let log = choose_log(
        logs,
        ns,
        name,
        container,
        container_status(pod, container),
        req.flag("previous"),
    )?;
    let Some(log) = log else {
        return Ok(text_response(Bytes::new()));
    };

    let (lines, cursor, finished) = log.read_from(0);
    let mut budget = q.limit;
    let mut first = BytesMut::new();
    render(&tail(lines, &q), &q, &mut first, &mut budget);
    if !req.flag("follow") || finished || budget == Some(0) {
        return Ok(text_response(first.freeze()));
    }
    let (tx, body) = ChannelBody::channel(64);
    let shutdown = stop;
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(first.freeze()).await.is_err() {
            return;
        }
        let mut cursor = cursor;
        loop {
            tokio::select! {
                _ = log.wait_past(cursor) => {}
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
            }
            let (lines, next, finished) = log.read_from(cursor);
            cursor = next;
            let mut out = BytesMut::new();
            render(&lines, &q, &mut out, &mut budget);
            if !out.is_empty() && tx.send(out.freeze()).await.is_err() {
                return;
            }
            if finished || budget == Some(0) {
                return;
            }
        }
    });
    Ok(stream_response("text/plain", body))
}
