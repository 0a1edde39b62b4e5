//! The node agent's HTTPS endpoint, what kube-apiserver calls on a kubelet:
//! `GET /containerLogs/{namespace}/{pod}/{container}` (the emulator's own log rendering, see
//! [`crate::api::pod_log::serve_container`]) for callers with a client certificate signed by
//! `--client-ca-file`, and `/healthz` for anyone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::api::NodeApi;
use super::remote::RemoteApi;
use crate::api::{decode, full, parse_query, pod_log, Body, Req};

/// Why the endpoint cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A PEM file is missing or unreadable.
    #[error("cannot read {path}: {message}")]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls rejected the certificates.
    #[error("invalid TLS setup: {0}")]
    Tls(String),
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> ServerError {
    ServerError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The TLS configuration: serving chain and key from files, client certificates verified
/// against `client_ca` when presented (required by the log endpoint, not by `/healthz`).
///
/// # Errors
/// When a file cannot be read or parsed, or rustls rejects the result.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca).map_err(|e| pem_err(client_ca, e))? {
        roots
            .add(ca.map_err(|e| pem_err(client_ca, e))?)
            .map_err(|e| pem_err(client_ca, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = |e: rustls::Error| ServerError::Tls(e.to_string());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `listener` until `stop` is cancelled.
pub fn serve(
    api: Arc<RemoteApi>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    stop: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(connection(api.clone(), acceptor.clone(), tcp, stop.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
}

async fn connection(
    api: Arc<RemoteApi>,
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    stop: CancellationToken,
) {
    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
    else {
        return;
    };
    // The verifier has checked any certificate presented against the client CA.
    let authenticated = tls
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty());
    let stop2 = stop.clone();
    let service = hyper::service::service_fn(move |req| {
        let (api, stop) = (api.clone(), stop2.clone());
        async move { Ok::<_, std::convert::Infallible>(handle(&api, req, authenticated, stop).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        _ = conn => {}
        _ = stop.cancelled() => {}
    }
}

fn text(code: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(msg.to_owned()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(
    api: &RemoteApi,
    req: Request<Incoming>,
    authenticated: bool,
    stop: CancellationToken,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    match segs.as_slice() {
        [h] if h == "healthz" => text(StatusCode::OK, "ok"),
        [c, ns, pod, container] if c == "containerLogs" => {
            if !authenticated {
                return text(StatusCode::UNAUTHORIZED, "Unauthorized");
            }
            let query = parse_query(req.uri().query().unwrap_or(""));
            let (parts, _body) = req.into_parts();
            let r = Req {
                method: parts.method,
                path,
                query,
                headers: parts.headers,
                body: bytes::Bytes::new(),
                upgrade: None,
            };
            container_logs(api, ns, pod, container, &r, stop)
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn container_logs(
    api: &RemoteApi,
    ns: &str,
    name: &str,
    container: &str,
    req: &Req,
    stop: CancellationToken,
) -> Response<Body> {
    let Some(pod) = api.pod(ns, name) else {
        return text(
            StatusCode::NOT_FOUND,
            &format!("pod \"{name}\" in namespace \"{ns}\" not found"),
        );
    };
    let known = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| pod["spec"][*l].as_array().into_iter().flatten())
        .any(|c| c["name"] == container);
    if !known {
        return text(
            StatusCode::NOT_FOUND,
            &format!("container \"{container}\" in pod \"{name}\" not found"),
        );
    }
    match pod_log::serve_container(api.logs(), &pod, container, req, stop) {
        Ok(r) => r,
        Err(e) => {
            let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST);
            text(code, &e.message)
        }
    }
}
