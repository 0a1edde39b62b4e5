//! `pods/{name}/exec`: kube-apiserver's checks (the pod, the container, its node, an upgrade
//! request), the kubelet's (the streams asked for, a running container), and the WebSocket
//! handshake with the Kubernetes channel subprotocols; the session is [`super::exec_stream`].
//! SPDY (kubectl before 1.30) is refused with a Status naming what works instead.

use std::sync::Arc;

use hyper::{header, Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::exec_stream::{self, Protocol, Session};
use super::target::Target;
use super::{full, Body, Req};
use crate::error::ApiError;
use crate::kind::Kind;
use crate::kubelet::exec::{running, Container, ExecSpec};
use crate::kubelet::ContainerKey;
use crate::Cluster;

/// What the request asks for (`PodExecOptions`).
#[derive(Debug, Clone)]
struct Options {
    container: Option<String>,
    spec: ExecSpec,
}

/// How the client asks to upgrade the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    WebSocket,
    Spdy,
}

/// Serves an exec request.
///
/// # Errors
/// 404 for a missing pod, 400 for a bad container choice, an unscheduled pod, a request
/// without upgrade or with SPDY, 405 for other methods.
pub async fn serve(
    cluster: &Arc<Cluster>,
    mut req: Req,
    t: &Target,
) -> Result<Response<Body>, ApiError> {
    if req.method != Method::GET && req.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let ns = t.ns.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let pod = cluster
        .store
        .get_arc(Kind::Pod, &ns, &name)
        .ok_or_else(|| ApiError::not_found(Kind::Pod, &name))?;
    let opts = options(&req)?;
    let container = choose_container(&pod, &name, opts.container.as_deref())?;
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let Some(upgrade) = upgrade_kind(&req) else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let protocol = match upgrade {
        Upgrade::WebSocket => negotiate(&req),
        Upgrade::Spdy => None,
    };
    // The API server translates v5 WebSockets to the kubelet's streams itself: what the
    // kubelet refuses then comes as a Status on the open stream, not as the HTTP answer.
    let translated = protocol.is_some_and(|p| p.protocol == Protocol::V5);
    let target = kubelet_target(cluster, &ns, &name, &container, &opts.spec);
    let target = match target {
        Err(refusal) if !translated => return Ok(refusal.response()),
        other => other.map_err(|r| r.message),
    };
    if upgrade == Upgrade::Spdy {
        return Err(ApiError::bad_request(
            "unable to upgrade connection: the local cluster serves exec over WebSocket only (kubectl >= 1.30, the kubernetes Python client); SPDY/3.1 is not supported",
        ));
    }
    let Some(negotiated) = protocol else {
        return Ok(text(StatusCode::FORBIDDEN, ""));
    };
    let Some(key) = req.header(header::SEC_WEBSOCKET_KEY).map(str::to_owned) else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is missing or blank",
        ));
    };
    let Some(on_upgrade) = req.upgrade.take() else {
        return Err(ApiError::internal("the connection cannot be upgraded"));
    };
    let session = Session {
        protocol: negotiated.protocol,
        spec: opts.spec,
        target,
    };
    let shutdown = cluster.shutdown.clone();
    tokio::spawn(async move {
        let upgraded = tokio::select! {
            u = on_upgrade => u,
            _ = shutdown.cancelled() => return,
        };
        if let Ok(io) = upgraded {
            exec_stream::run(TokioIo::new(io), session, shutdown).await;
        }
    });
    Ok(switching(&key, negotiated.name))
}

/// The query's `PodExecOptions`, with the kubelet's rule that a terminal has no stderr.
fn options(req: &Req) -> Result<Options, ApiError> {
    let flag = |n: &str| -> Result<bool, ApiError> {
        match req.param(n).map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "strconv.ParseBool: parsing {other:?}: invalid syntax"
            ))),
        }
    };
    let argv: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let tty = flag("tty")?;
    let spec = ExecSpec {
        argv,
        stdin: flag("stdin")?,
        stdout: flag("stdout")?,
        stderr: flag("stderr")? && !tty,
        tty,
    };
    let container = req
        .param("container")
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    Ok(Options { container, spec })
}

/// The container the request names, or the pod's only one (kube-apiserver's
/// `validateContainer`: init, regular and ephemeral containers count).
fn choose_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let regular = names("containers");
    let mut all = names("initContainers");
    all.extend(regular.iter().cloned());
    all.extend(names("ephemeralContainers"));
    match asked {
        Some(c) if all.iter().any(|x| x == c) => Ok(c.to_owned()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if regular.len() == 1 => Ok(regular[0].clone()),
        None if regular.is_empty() => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            all.join(" ")
        ))),
    }
}

/// `websocket` or `SPDY/3.1` in `Upgrade` (with `Connection: Upgrade`).
fn upgrade_kind(req: &Req) -> Option<Upgrade> {
    let has = |h: header::HeaderName, token: &str| {
        req.headers.get_all(h).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::CONNECTION, "upgrade") {
        return None;
    }
    if has(header::UPGRADE, "websocket") {
        Some(Upgrade::WebSocket)
    } else if has(header::UPGRADE, "spdy/3.1") {
        Some(Upgrade::Spdy)
    } else {
        None
    }
}

/// The subprotocol chosen and the name to answer with (none when the client named none).
#[derive(Debug, Clone, Copy)]
struct Negotiated {
    protocol: Protocol,
    name: Option<&'static str>,
}

/// The first subprotocol of the client's that is served; v5 whenever offered (the API
/// server's stream translator takes those requests). `None`: none of them is served.
fn negotiate(req: &Req) -> Option<Negotiated> {
    let offered: Vec<String> = req
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Some(Negotiated {
            protocol: Protocol::V1 { base64: false },
            name: None,
        });
    }
    let pick = |p: &str| {
        Protocol::from_name(p).map(|(protocol, name)| Negotiated {
            protocol,
            name: Some(name),
        })
    };
    if offered.iter().any(|p| p == Protocol::V5_NAME) {
        return pick(Protocol::V5_NAME);
    }
    offered.iter().find_map(|p| pick(p))
}

/// Why the kubelet refuses: its HTTP answer, or the message a translated stream carries.
struct Refusal {
    code: StatusCode,
    message: String,
}

impl Refusal {
    fn response(&self) -> Response<Body> {
        text(self.code, &self.message)
    }
}

/// The kubelet's checks: at least one stream, a running container.
fn kubelet_target(
    cluster: &Cluster,
    ns: &str,
    pod: &str,
    container: &str,
    spec: &ExecSpec,
) -> Result<Container, Refusal> {
    if !spec.stdin && !spec.stdout && !spec.stderr {
        return Err(Refusal {
            code: StatusCode::BAD_REQUEST,
            message: "you must specify at least 1 of stdin, stdout, stderr".into(),
        });
    }
    running(cluster, &ContainerKey::new(ns, pod, container)).ok_or_else(|| Refusal {
        code: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("container not found ({container:?})"),
    })
}

fn text(code: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(full(body.to_owned()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `101 Switching Protocols` for the WebSocket with this key and subprotocol.
fn switching(key: &str, protocol: Option<&'static str>) -> Response<Body> {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            header::HeaderValue::from_static(p),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_chosen_as_kube_apiserver_does() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "main"}, {"name": "side"}],
        }});
        assert_eq!(choose_container(&pod, "p", Some("side")).unwrap(), "side");
        assert_eq!(choose_container(&pod, "p", Some("setup")).unwrap(), "setup");
        let e = choose_container(&pod, "p", Some("nope")).unwrap_err();
        assert_eq!(e.message, "container nope is not valid for pod p");
        let e = choose_container(&pod, "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [setup main side]"
        );
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(choose_container(&one, "p", None).unwrap(), "only");
    }
}
