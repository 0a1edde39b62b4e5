//! The node agent (`kjenv-kubelet`): the process kubelet against any Kubernetes API server
//! over HTTPS. Registers its Node, keeps its Lease, runs the pods bound to it, serves their
//! logs on its own HTTPS port, and on SIGTERM/SIGINT or its parent's death kills every
//! process it started and exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

use super::api::NodeConfig;
use super::node::{self, NodeInfo};
use super::remote::RemoteApi;
use super::server::{self, ServerError};

/// The command line.
pub const USAGE: &str = "usage: kjenv-kubelet --kubeconfig FILE --node-name NAME --root DIR --port PORT --tls-cert-file FILE --tls-private-key-file FILE --client-ca-file FILE [--path-prefix DIR]... [--concurrency N]";

/// How often the agent checks that its parent is still alive.
const PARENT_CHECK: Duration = Duration::from_secs(1);
/// How long registration keeps trying while the API server is not answering.
const REGISTER_TRIES: u32 = 60;

/// The node agent's settings (its flags).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOptions {
    /// Credentials for the API server (a node's client certificate, or a token).
    pub kubeconfig: PathBuf,
    /// The Node's name.
    pub node_name: String,
    /// The pods' working directories go under it.
    pub root: PathBuf,
    /// The HTTPS port of the log endpoint on 127.0.0.1.
    pub port: u16,
    /// Serving certificate (PEM chain) of the log endpoint.
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    pub tls_key: PathBuf,
    /// The CA that signs the certificates of callers allowed to read logs.
    pub client_ca: PathBuf,
    /// Directories put first on every container's `PATH`.
    pub path_prefix: Vec<PathBuf>,
    /// The most pods running at once.
    pub concurrency: usize,
}

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The kubeconfig cannot be read or used.
    #[error("cannot use the kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kube-rs client cannot be built.
    #[error("cannot build the API client")]
    Client(#[source] kube::Error),
    /// The node could not be registered.
    #[error("cannot register the node {name}")]
    Register {
        /// The Node's name.
        name: String,
        /// The last API error.
        #[source]
        source: kube::Error,
    },
    /// The log endpoint cannot listen.
    #[error("cannot listen on 127.0.0.1:{port}")]
    Listen {
        /// The port.
        port: u16,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The log endpoint's TLS files are unusable.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The root directory cannot be created.
    #[error("cannot create {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Parses the flags (`--flag value` or `--flag=value`).
///
/// # Errors
/// A message for an unknown flag, a missing value or a missing required flag (empty for
/// `--help`).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<AgentOptions, String> {
    let mut args = args.into_iter();
    let mut found: std::collections::HashMap<String, String> = Default::default();
    let mut path_prefix = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        const KNOWN: [&str; 9] = [
            "--kubeconfig",
            "--node-name",
            "--root",
            "--port",
            "--tls-cert-file",
            "--tls-private-key-file",
            "--client-ca-file",
            "--path-prefix",
            "--concurrency",
        ];
        if !KNOWN.contains(&flag.as_str()) {
            return Err(format!("unknown argument {arg:?}"));
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--path-prefix" {
            path_prefix.push(PathBuf::from(value));
        } else {
            found.insert(flag, value);
        }
    }
    let concurrency = found.remove("--concurrency").unwrap_or_else(|| "16".into());
    let mut take = |flag: &str| {
        found
            .remove(flag)
            .ok_or_else(|| format!("{flag} is required"))
    };
    let port = take("--port")?;
    Ok(AgentOptions {
        kubeconfig: take("--kubeconfig")?.into(),
        node_name: take("--node-name")?,
        root: take("--root")?.into(),
        port: port
            .parse()
            .map_err(|_| format!("--port {port:?} is not a port"))?,
        tls_cert: take("--tls-cert-file")?.into(),
        tls_key: take("--tls-private-key-file")?.into(),
        client_ca: take("--client-ca-file")?.into(),
        path_prefix,
        concurrency: concurrency
            .parse()
            .map_err(|_| format!("--concurrency {concurrency:?} is not a number"))?,
    })
}

/// The client and the server URL from the kubeconfig.
async fn client(path: &std::path::Path) -> Result<(kube::Client, String), AgentError> {
    let err = |source| AgentError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kc = Kubeconfig::read_from(path).map_err(err)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(err)?;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client = kube::Client::try_from(config).map_err(AgentError::Client)?;
    Ok((client, server))
}

/// Registers the node, retrying while the API server is unreachable. `Ok(None)`: the API
/// serves no Nodes (the emulator), so there is nothing to keep alive.
async fn register(
    client: &kube::Client,
    info: &NodeInfo,
    stop: &CancellationToken,
) -> Result<Option<String>, AgentError> {
    let mut tries = 0;
    loop {
        match node::register(client, info).await {
            Ok(uid) => return Ok(Some(uid)),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                eprintln!(
                    "kjenv-kubelet: the API server serves no nodes; running without a Node object"
                );
                return Ok(None);
            }
            Err(e) if tries + 1 >= REGISTER_TRIES || stop.is_cancelled() => {
                return Err(AgentError::Register {
                    name: info.name.clone(),
                    source: e,
                })
            }
            Err(e) => eprintln!("kjenv-kubelet: registering the node: {e}; retrying"),
        }
        tries += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the node agent until `stop` is cancelled, then kills every process it started.
///
/// # Errors
/// When the kubeconfig, the TLS files or the port are unusable, or the node cannot be
/// registered.
pub async fn run(opts: AgentOptions, stop: CancellationToken) -> Result<(), AgentError> {
    std::fs::create_dir_all(&opts.root).map_err(|source| AgentError::Io {
        path: opts.root.clone(),
        source,
    })?;
    let tls = server::tls_config(&opts.tls_cert, &opts.tls_key, &opts.client_ca)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|source| AgentError::Listen {
            port: opts.port,
            source,
        })?;
    let (client, server_url) = client(&opts.kubeconfig).await?;
    let info = NodeInfo {
        name: opts.node_name.clone(),
        port: opts.port,
    };
    let node_uid = register(&client, &info, &stop).await?;
    let config = NodeConfig {
        node_name: opts.node_name.clone(),
        root: opts.root.clone(),
        concurrency: opts.concurrency.max(1),
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(300),
        path_prefix: opts.path_prefix.clone(),
    };
    let api = RemoteApi::new(client.clone(), config, server_url);
    server::serve(api.clone(), listener, tls, stop.clone());
    tokio::spawn(super::placement::run(api.clone(), stop.clone()));
    let procs = super::run(api.clone(), stop.clone());
    if let Some(uid) = node_uid {
        tokio::spawn(node::heartbeats(client, info, uid, stop.clone()));
    }
    eprintln!(
        "kjenv-kubelet: node {} ready, logs on https://127.0.0.1:{}",
        opts.node_name, opts.port
    );
    stop.cancelled().await;
    let _ = tokio::task::spawn_blocking(move || procs.shutdown()).await;
    Ok(())
}

/// Cancels `stop` on SIGTERM, SIGINT, or when the parent process (`parent`) is gone.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn stop_on_exit_signals(stop: CancellationToken, parent: i32) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let stop = Arc::new(stop);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PARENT_CHECK);
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tick.tick() => {
                    // SAFETY: plain syscall without arguments.
                    if unsafe { libc::getppid() } != parent {
                        eprintln!("kjenv-kubelet: the parent process is gone; stopping");
                        break;
                    }
                }
            }
        }
        stop.cancel();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_flags_a_control_plane_passes() {
        let o = parse_args(args(
            "--kubeconfig /d/kubelet.kubeconfig --node-name kjenv-node --root /d/node --port=10250 \
             --tls-cert-file /d/pki/s.crt --tls-private-key-file /d/pki/s.key --client-ca-file /d/pki/ca.crt \
             --path-prefix /venv/bin",
        ))
        .expect("parses");
        assert_eq!(o.node_name, "kjenv-node");
        assert_eq!(o.port, 10250);
        assert_eq!(o.client_ca, PathBuf::from("/d/pki/ca.crt"));
        assert_eq!(o.path_prefix, vec![PathBuf::from("/venv/bin")]);
        assert_eq!(o.concurrency, 16);
    }

    #[test]
    fn bad_flags_are_errors() {
        let err = |s: &str| parse_args(args(s)).expect_err("an error");
        assert_eq!(err("--bogus x"), "unknown argument \"--bogus\"");
        assert_eq!(err("--port"), "--port needs a value");
        assert_eq!(err("--port 1"), "--kubeconfig is required");
        assert!(err(
            "--kubeconfig k --node-name n --root r --port no --tls-cert-file c \
                     --tls-private-key-file k --client-ca-file ca"
        )
        .contains("is not a port"));
        assert_eq!(err("--help"), "");
    }
}
