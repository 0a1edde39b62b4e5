//! The listener: TLS accept loop on 127.0.0.1, one hyper HTTP/1.1 connection task per client,
//! fault injection and bearer authentication before routing, and listener restarts.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{header, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{error_response, json_response, parse_query, success, Body, Req};
use crate::error::{ApiError, Error};
use crate::faults::Fault;
use crate::Cluster;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Binds 127.0.0.1:`port` (0 = a free port).
///
/// # Errors
/// [`Error::Listen`] when the port is taken.
pub async fn bind(port: u16) -> Result<TcpListener, Error> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| Error::Listen { port, source })
}

/// Spawns the accept loop; it and its connections end when `cancel` fires.
pub fn serve(cluster: Arc<Cluster>, listener: TcpListener, cancel: CancellationToken) {
    tokio::spawn(async move {
        let acceptor = TlsAcceptor::from(cluster.tls.clone());
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        let _ = tcp.set_nodelay(true);
                        tokio::spawn(connection(cluster.clone(), acceptor.clone(), tcp, cancel.clone()));
                    }
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
            }
        }
    });
}

/// Drops the current listener and every connection, then listens again on the same port.
///
/// # Errors
/// [`Error::Listen`] when the port cannot be bound again within a few seconds.
pub async fn restart(cluster: &Arc<Cluster>) -> Result<(), Error> {
    let fresh = cluster.shutdown.child_token();
    let old = {
        let mut current = cluster
            .listener_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *current, fresh.clone())
    };
    old.cancel();
    let mut last = None;
    // The old accept loop drops its socket as soon as it sees the cancellation.
    for _ in 0..200 {
        match bind(cluster.port).await {
            Ok(listener) => {
                serve(cluster.clone(), listener, fresh);
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(last.unwrap_or_else(|| Error::Runtime("cannot re-listen".into())))
}

/// `POST /_kjenv/restart-listener`: answered here, because the server owns the listener.
fn is_restart_request(req: &Req) -> bool {
    req.method == hyper::Method::POST
        && req.path.trim_end_matches('/') == "/_kjenv/restart-listener"
}

/// Answers the restart request, then restarts the listener (which drops this very connection).
fn restart_soon(cluster: &Arc<Cluster>) -> Response<Body> {
    let c = cluster.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = restart(&c).await;
    });
    json_response(200, &success("listener restarting"))
}

/// The error that makes hyper drop a connection without answering (fault `Reset`).
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ResetConnection {}

async fn connection(
    cluster: Arc<Cluster>,
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    cancel: CancellationToken,
) {
    let tls = tokio::select! {
        _ = cancel.cancelled() => return,
        tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)) => match tls {
            Ok(Ok(tls)) => tls,
            _ => return,
        },
    };
    let service = hyper::service::service_fn(move |req| handle(cluster.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::select! {
        _ = conn => {}
        _ = cancel.cancelled() => {}
    }
}

async fn handle(
    cluster: Arc<Cluster>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ResetConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut late_answer = None;
    match cluster.faults.take(method.as_str(), &path) {
        Some(Fault::Status(code, retry)) => {
            return Ok(error_response(&ApiError::injected(code, retry)))
        }
        Some(Fault::Reset) => return Err(ResetConnection),
        Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
        Some(Fault::LateAnswer(d)) => late_answer = Some(d),
        None => {}
    }
    let user = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| cluster.users.authenticate(t.trim()));
    let Some(user) = user else {
        return Ok(error_response(&ApiError::unauthorized()));
    };
    let raw_query = req.uri().query().unwrap_or("");
    cluster.requests.note(method.as_str(), &path, raw_query);
    let query = parse_query(raw_query);
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error_response(&ApiError::bad_request(format!(
                "cannot read the request body: {e}"
            ))))
        }
    };
    let req = Req {
        method,
        path,
        query,
        headers: parts.headers,
        body,
        upgrade,
    };
    if let Some(refused_or_reviewed) = super::access::gate(&user, &req) {
        return Ok(refused_or_reviewed);
    }
    let response = if is_restart_request(&req) {
        restart_soon(&cluster)
    } else {
        super::router::route(&cluster, req).await
    };
    if let Some(d) = late_answer {
        // The work is done: a client that stops waiting now does not undo it.
        tokio::time::sleep(d).await;
    }
    Ok(response)
}
