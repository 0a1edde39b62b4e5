//! Cluster access: which configuration to use (explicit kubeconfig/context, then `KUBECONFIG` or
//! `~/.kube/config`, then the in-cluster service account) and one client per configuration.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// Which cluster to talk to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    /// An explicit kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig (or of the default one).
    pub context: Option<String>,
}

/// A connected client and the namespace its configuration defaults to.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub default_namespace: String,
}

/// When a configuration file was last written (size and modification time), if it exists.
type Stamp = Option<(u64, std::time::SystemTime)>;

/// The cache key: the target, what `KUBECONFIG` said and how the kubeconfig files looked when
/// the client was made (a rewritten kubeconfig — a restarted local cluster, another current
/// context — needs a new client), and the process id (a forked child needs clients on its own
/// runtime).
type Key = (Target, Option<String>, Vec<Stamp>, u32);

/// The cache key of `target` now: what `KUBECONFIG` says, the files' stamps, this process.
fn cache_key(target: &Target) -> Key {
    let env = std::env::var("KUBECONFIG").ok();
    let stamps = stamps(target, env.as_deref());
    (target.clone(), env, stamps, std::process::id())
}

/// The kubeconfig files `target` reads, stamped.
fn stamps(target: &Target, env: Option<&str>) -> Vec<Stamp> {
    let files: Vec<PathBuf> = match (&target.kubeconfig, env.filter(|v| !v.is_empty())) {
        (Some(path), _) => vec![path.clone()],
        (None, Some(paths)) => std::env::split_paths(paths).collect(),
        (None, None) => home_kubeconfig().into_iter().collect(),
    };
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        })
        .collect()
}

thread_local! {
    /// Clients live with the runtime of the thread that made them (see [`crate::runtime`]):
    /// one cache per thread, gone with the thread.
    static CLIENTS: RefCell<HashMap<Key, Connection>> = RefCell::new(HashMap::new());
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube").join("config"))
}

/// Load the client configuration for `target`, in kube's `Config::infer` order.
///
/// # Errors
/// [`Error::ClusterConfig`] naming every source that was tried and why it did not work.
pub async fn load_config(target: &Target) -> Result<kube::Config> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let mut config = if let Some(path) = &target.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::ClusterConfig {
            message: format!("cannot use kubeconfig {}: {e}", path.display()),
        })?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| Error::ClusterConfig {
                message: format!("cannot use kubeconfig {}: {e}", path.display()),
            })?
    } else {
        let env = std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty());
        let home = home_kubeconfig();
        let have_file = env.is_some() || home.as_deref().is_some_and(Path::exists);
        let mut tried = Vec::new();
        let mut found = None;
        if have_file {
            match kube::Config::from_kubeconfig(&options).await {
                Ok(c) => found = Some(c),
                Err(e) => tried.push(match &env {
                    Some(v) => format!("KUBECONFIG={v} ({e})"),
                    None => format!(
                        "{} ({e})",
                        home.as_deref()
                            .map(Path::display)
                            .map(|d| d.to_string())
                            .unwrap_or_default()
                    ),
                }),
            }
        } else {
            tried.push("KUBECONFIG (not set)".to_string());
            tried.push(match &home {
                Some(h) => format!("{} (does not exist)", h.display()),
                None => "~/.kube/config (HOME is not set)".to_string(),
            });
        }
        match found {
            Some(c) => c,
            None => {
                if target.context.is_some() {
                    return Err(Error::ClusterConfig {
                        message: format!(
                            "no kubeconfig to take context {:?} from; tried: {}",
                            target.context.as_deref().unwrap_or_default(),
                            tried.join(", ")
                        ),
                    });
                }
                match kube::Config::incluster() {
                    Ok(c) => c,
                    Err(e) => {
                        tried.push(format!("in-cluster service account ({e})"));
                        return Err(Error::ClusterConfig {
                            message: format!(
                                "no Kubernetes cluster configuration found; tried: {}; pass kubeconfig=... or set KUBECONFIG",
                                tried.join(", ")
                            ),
                        });
                    }
                }
            }
        }
    };
    // kjenv retries transient failures itself, with a bounded budget (see `retry`).
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(10));
    Ok(config)
}

/// The client for `target`, made once per configuration and reused.
///
/// # Errors
/// [`Error::ClusterConfig`] when no configuration can be loaded or the client cannot be built.
pub async fn connect(target: &Target) -> Result<Connection> {
    let key = cache_key(target);
    if let Some(conn) = CLIENTS.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(conn);
    }
    let config = load_config(target).await?;
    let default_namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| Error::ClusterConfig {
        message: format!("cannot build a Kubernetes client: {e}"),
    })?;
    let conn = Connection {
        client,
        default_namespace,
    };
    CLIENTS.with(|c| {
        let mut map = c.borrow_mut();
        // Clients of this process for an earlier state of the same files are stale.
        map.retain(|(t, e, _, pid), _| *pid == std::process::id() && (t, e) != (&key.0, &key.1));
        Ok(map.entry(key).or_insert(conn).clone())
    })
}

static NAMESPACES: Mutex<Option<HashMap<Key, Option<String>>>> = Mutex::new(None);

/// The namespace the configuration of `target` defaults to (None without a configuration),
/// read once per configuration and remembered; no connection is made.
pub async fn default_namespace(target: &Target) -> Option<String> {
    let key = cache_key(target);
    if let Some(known) = NAMESPACES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return known.clone();
    }
    let namespace = load_config(target).await.ok().map(|c| c.default_namespace);
    NAMESPACES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, namespace.clone());
    namespace
}
