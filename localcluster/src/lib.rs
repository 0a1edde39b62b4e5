//! A local Kubernetes API emulator: HTTPS API server, job controller and a process kubelet.
//!
//! [`LocalCluster::start`] runs everything on its own tokio runtime (background threads) and
//! returns once the API server listens; [`LocalCluster::stop`] (or dropping the handle) kills
//! every process the kubelet started and removes the temporary work directory.

pub mod api;
pub mod controller;
pub mod error;
pub mod events;
pub mod faults;
pub mod fieldmanager;
pub mod kind;
pub mod kubeconfig;
pub mod kubelet;
pub mod logs;
pub mod meta;
pub mod recorder;
pub mod resources;
pub mod stale;
pub mod store;
pub mod task;
pub mod tls;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::{ApiError, Error};

/// How to start a local cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Port on 127.0.0.1; 0 = a free port.
    pub port: u16,
    /// The bearer token clients must send; `None` = a random one.
    pub token: Option<String>,
    /// Where the kubeconfig (and the kubelet's files) go; `None` = a fresh temporary
    /// directory, removed on stop.
    pub work_dir: Option<PathBuf>,
    /// The most pods running at once; pods beyond it stay Pending (queued).
    pub concurrency: usize,
    /// Base of the Job controller's exponential pod-replacement backoff.
    pub backoff_base: Duration,
    /// Cap of that backoff.
    pub backoff_max: Duration,
    /// Directories put first on the `PATH` of every container.
    pub path_prefix: Vec<PathBuf>,
    /// Faults armed from the start.
    pub faults: Vec<faults::FaultRule>,
    /// Run the emulator's own scheduler and kubelet (off: pods stay Pending until another
    /// node agent, e.g. `kjenv-kubelet`, runs them).
    pub kubelet: bool,
}

impl Options {
    /// The default [`Options::concurrency`]: pods running at once.
    pub const DEFAULT_CONCURRENCY: usize = 8;
    /// The default [`Options::backoff_base`] (the Job controller's 10 s).
    pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(10);
    /// The default [`Options::backoff_max`] (the Job controller's 6 min).
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(360);
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            token: None,
            work_dir: None,
            concurrency: Options::DEFAULT_CONCURRENCY,
            backoff_base: Options::DEFAULT_BACKOFF_BASE,
            backoff_max: Options::DEFAULT_BACKOFF_MAX,
            path_prefix: Vec::new(),
            faults: Vec::new(),
            kubelet: true,
        }
    }
}

/// The shared state of a running cluster (always behind an `Arc`).
pub struct Cluster {
    /// Every API object.
    pub store: store::Store,
    /// Container logs (written by the kubelet, read by the log endpoint).
    pub logs: logs::LogStore,
    /// The options the cluster was started with.
    pub options: Options,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The kubeconfig file (mode 0600).
    pub kubeconfig_path: PathBuf,
    /// The bearer token (the admin's).
    pub token: String,
    /// Who may call the API: the admin (`token`) and the users added since.
    pub users: users::Users,
    /// Cancelled when the cluster stops; every background task ends on it.
    pub shutdown: CancellationToken,
    /// The work directory (kubeconfig, kubelet files).
    pub work_dir: PathBuf,
    /// The listening port.
    pub port: u16,
    /// PEM of the cluster CA (what clients must trust).
    pub ca_pem: String,
    /// Armed fault-injection rules.
    pub faults: faults::Faults,
    /// The opt-in request record.
    pub requests: recorder::Recorder,
    /// Bumped by [`LocalCluster::expire_watches`]; every open watch ends with ERROR 410.
    pub(crate) watch_epoch: tokio::sync::watch::Sender<u64>,
    /// Serving TLS configuration (kept to re-listen).
    pub(crate) tls: Arc<rustls::ServerConfig>,
    /// Cancels the current listener and its connections (replaced on restart).
    pub(crate) listener_cancel: Mutex<CancellationToken>,
}

impl Cluster {
    /// Ends every open watch with an ERROR 410 Expired event.
    pub fn expire_watches(&self) {
        self.watch_epoch.send_modify(|e| *e += 1);
    }
}

/// The name of a temporary work directory: `kjenv-localcluster-pid<PID>-<uuid>`.
pub const WORK_DIR_PREFIX: &str = "kjenv-localcluster-";

/// A running local cluster; dropping it stops it.
pub struct LocalCluster {
    cluster: Arc<Cluster>,
    handle: tokio::runtime::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
    temp_dir: Option<PathBuf>,
}

impl LocalCluster {
    /// Starts a cluster on its own multi-thread runtime and returns once it listens.
    ///
    /// # Errors
    /// When the port cannot be bound, the certificates cannot be generated or the work
    /// directory / kubeconfig cannot be written.
    pub fn start(options: Options) -> Result<LocalCluster, Error> {
        let (temp_dir, work_dir) = match &options.work_dir {
            Some(d) => (None, d.clone()),
            None => {
                // A cluster killed outright (SIGKILL) left its folder, token and all.
                stale::sweep_temp(WORK_DIR_PREFIX);
                let d = stale::owned_temp_dir(WORK_DIR_PREFIX);
                (Some(d.clone()), d)
            }
        };
        std::fs::create_dir_all(&work_dir).map_err(|source| Error::Io {
            path: work_dir.clone(),
            source,
        })?;
        let (tx, rx) =
            std::sync::mpsc::channel::<Result<(Arc<Cluster>, tokio::runtime::Handle), Error>>();
        let thread = std::thread::Builder::new()
            .name("localcluster".into())
            .spawn(move || run(options, work_dir, tx))
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let started = rx
            .recv()
            .map_err(|_| Error::Runtime("the runtime thread died".into()));
        match started.and_then(|r| r) {
            Ok((cluster, handle)) => Ok(LocalCluster {
                cluster,
                handle,
                thread: Some(thread),
                temp_dir,
            }),
            Err(e) => {
                let _ = thread.join();
                if let Some(d) = temp_dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                Err(e)
            }
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.cluster.url
    }

    /// The kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.cluster.kubeconfig_path
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.cluster.token
    }

    /// Adds user `name` (or gives it new rules; it keeps its token), allowed what `rules` allow
    /// (RBAC `PolicyRule`s) in `namespace` (as a Role bound there would) or, with `None`,
    /// everywhere (a ClusterRole bound cluster-wide), and writes a kubeconfig for it (mode 0600)
    /// beside the admin's: `kubeconfig-<name>`, its context in `namespace` (else `default`).
    /// Access reviews answer for it, and its requests beyond the rules get kube-apiserver's 403.
    ///
    /// # Errors
    /// [`Error::Io`] when the kubeconfig cannot be written; [`Error::Runtime`] for a name
    /// that is not a DNS-1123 label (it names the file).
    pub fn add_user(
        &self,
        name: &str,
        rules: Vec<users::Rule>,
        namespace: Option<&str>,
    ) -> Result<PathBuf, Error> {
        if let Some(why) = api::validation::dns1123_label_error(name) {
            return Err(Error::Runtime(format!("user name {name:?}: {why}")));
        }
        let c = &self.cluster;
        let token = c.users.add(name, rules, namespace);
        let path = c.work_dir.join(format!("kubeconfig-{name}"));
        let context_ns = namespace.unwrap_or("default");
        kubeconfig::write(&path, &c.url, &c.ca_pem, &token, context_ns)?;
        Ok(path)
    }

    /// The namespace of the kubeconfig context (`default`).
    pub fn namespace(&self) -> &str {
        "default"
    }

    /// The shared state.
    pub fn cluster(&self) -> Arc<Cluster> {
        self.cluster.clone()
    }

    /// Arms a fault-injection rule.
    pub fn inject(&self, rule: faults::FaultRule) {
        self.cluster.faults.add(rule);
    }

    /// Ends every open watch with an ERROR 410 Expired event.
    pub fn expire_watches(&self) {
        self.cluster.expire_watches();
    }

    /// Starts recording the authenticated requests the API receives (see [`recorder`]).
    pub fn start_recording(&self) {
        self.cluster.requests.start();
    }

    /// Stops recording and returns what was recorded.
    pub fn stop_recording(&self) -> recorder::Recording {
        self.cluster.requests.stop()
    }

    /// Drops every connection and listens again on the same port; the state is kept.
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub fn restart_listener(&self) -> Result<(), Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        let cluster = self.cluster.clone();
        self.handle.spawn(async move {
            let _ = tx.send(api::server::restart(&cluster).await);
        });
        rx.recv()
            .map_err(|_| Error::Runtime("the runtime stopped".into()))?
    }

    /// Stops the cluster: stops serving the API, kills every process, stops the runtime,
    /// removes the temporary work directory. Idempotent.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // The API goes first: a client waiting on a Job must see the cluster go away, never
        // the pods the shutdown kills (the kubelet reports nothing once stopping, either).
        self.cluster
            .listener_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cancel();
        kubelet::shutdown(&self.cluster);
        self.cluster.shutdown.cancel();
        let _ = thread.join();
        if let Some(d) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

type Started = Result<(Arc<Cluster>, tokio::runtime::Handle), Error>;

/// The runtime thread: builds the runtime, starts everything, reports back, waits for shutdown.
fn run(options: Options, work_dir: PathBuf, tx: std::sync::mpsc::Sender<Started>) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("localcluster-rt")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = tx.send(Err(Error::Runtime(e.to_string())));
            return;
        }
    };
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let cluster = match boot(options, work_dir).await {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let shutdown = cluster.shutdown.clone();
        let _ = tx.send(Ok((cluster, handle)));
        shutdown.cancelled().await;
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}

async fn boot(options: Options, work_dir: PathBuf) -> Result<Arc<Cluster>, Error> {
    let listener = api::server::bind(options.port).await?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Listen {
            port: options.port,
            source,
        })?
        .port();
    let certs = tls::Certs::generate()?;
    let token = options.token.clone().unwrap_or_else(|| {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), 32)
    });
    let url = format!("https://127.0.0.1:{port}");
    let kubeconfig_path = work_dir.join("kubeconfig");
    kubeconfig::write(&kubeconfig_path, &url, &certs.ca_pem, &token, "default")?;
    let faults = faults::Faults::default();
    for rule in &options.faults {
        faults.add(rule.clone());
    }
    let shutdown = CancellationToken::new();
    let listener_cancel = shutdown.child_token();
    let cluster = Arc::new(Cluster {
        store: store::Store::new(),
        logs: logs::LogStore::new(),
        options,
        url,
        kubeconfig_path,
        users: users::Users::new(&token),
        token,
        shutdown,
        work_dir,
        port,
        ca_pem: certs.ca_pem.clone(),
        faults,
        requests: recorder::Recorder::default(),
        watch_epoch: tokio::sync::watch::Sender::new(0),
        tls: certs.server_config()?,
        listener_cancel: Mutex::new(listener_cancel.clone()),
    });
    api::server::serve(cluster.clone(), listener, listener_cancel);
    api::gc::spawn(cluster.clone());
    controller::spawn(cluster.clone());
    if cluster.options.kubelet {
        kubelet::spawn(cluster.clone());
    }
    Ok(cluster)
}
