//! `kjenv.testing.LocalCluster`: the embedded Kubernetes API emulator, as a context manager.

use std::path::PathBuf;
use std::sync::Mutex;

use localcluster::faults::{Fault, FaultRule};

use super::errors::{kjenv_error, local_cluster_error};
use super::seconds;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A local Kubernetes API (HTTPS on 127.0.0.1) with a Job controller and a process kubelet, for
/// trying Job specs and testing flows without a cluster. Use it as a context manager; every
/// process it starts stops with it.
// `subclass`: `kjenv.testing.LocalCluster` adds what Python does better (a SIGTERM handler, an
// atexit stop) in a subclass.
#[pyclass(name = "LocalCluster", module = "kjenv.testing", subclass)]
pub struct PyLocalCluster {
    inner: Mutex<Option<localcluster::LocalCluster>>,
    shim_dir: Option<PathBuf>,
    #[pyo3(get)]
    url: String,
    #[pyo3(get)]
    kubeconfig: String,
    #[pyo3(get)]
    token: String,
    #[pyo3(get)]
    namespace: String,
}

/// The python shim's folder: `kjenv-python-pid<PID>-<uuid>`.
const SHIM_PREFIX: &str = "kjenv-python-";
/// `kjenv run --local`'s flow folder (`python/kjenv/cli.py` names it so).
const RUN_DIR_PREFIX: &str = "kjenv-run-";

/// A directory holding a `python` that runs `exe` (a script, not a symlink: a symlink to a
/// venv's interpreter would lose the venv).
fn python_shim(exe: &std::path::Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // Named after this process, so a later start can remove it if this one is killed outright
    // (as it does for `kjenv run --local`'s flow folder, `kjenv-run-pid<PID>-…`).
    localcluster::stale::sweep_temp(SHIM_PREFIX);
    localcluster::stale::sweep_temp(RUN_DIR_PREFIX);
    let dir = localcluster::stale::owned_temp_dir(SHIM_PREFIX);
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("python");
    let quoted = exe.display().to_string().replace('\'', "'\\''");
    std::fs::write(&script, format!("#!/bin/sh\nexec '{quoted}' \"$@\"\n"))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

impl Drop for PyLocalCluster {
    fn drop(&mut self) {
        if let Some(dir) = &self.shim_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl PyLocalCluster {
    fn with<T>(&self, f: impl FnOnce(&localcluster::LocalCluster) -> PyResult<T>) -> PyResult<T> {
        let guard = self
            .inner
            .lock()
            .map_err(|_| kjenv_error("local cluster: its lock is poisoned (a call panicked)"))?;
        match guard.as_ref() {
            Some(cluster) => f(cluster),
            None => Err(kjenv_error("local cluster: it is stopped")),
        }
    }
}

#[pymethods]
impl PyLocalCluster {
    #[new]
    #[pyo3(signature = (*, port=0, concurrency=None, backoff_base=None, backoff_max=None, work_dir=None, path_prefix=None))]
    fn new(
        py: Python<'_>,
        port: u16,
        concurrency: Option<usize>,
        backoff_base: Option<f64>,
        backoff_max: Option<f64>,
        work_dir: Option<PathBuf>,
        path_prefix: Option<Vec<PathBuf>>,
    ) -> PyResult<Self> {
        // The defaults live in the emulator's `Options::default()`, once.
        let defaults = localcluster::Options::default();
        let concurrency = concurrency.unwrap_or(defaults.concurrency);
        if concurrency == 0 {
            return Err(PyValueError::new_err("concurrency must be at least 1"));
        }
        let (path_prefix, shim_dir) = match path_prefix {
            Some(p) => (p, None),
            None => {
                // The one-liner's `python` must be the interpreter that has kjenv, even where
                // its directory has only `python3`.
                let exe: PathBuf = py.import("sys")?.getattr("executable")?.extract()?;
                let shim = python_shim(&exe).map_err(|e| crate::Error::Io {
                    path: exe.clone(),
                    source: e,
                })?;
                let mut dirs = vec![shim.clone()];
                dirs.extend(exe.parent().map(std::path::Path::to_path_buf));
                (dirs, Some(shim))
            }
        };
        let options = localcluster::Options {
            port,
            concurrency,
            backoff_base: seconds("backoff_base", backoff_base)?.unwrap_or(defaults.backoff_base),
            backoff_max: seconds("backoff_max", backoff_max)?.unwrap_or(defaults.backoff_max),
            work_dir,
            path_prefix,
            ..defaults
        };
        let cluster = match py.detach(|| localcluster::LocalCluster::start(options)) {
            Ok(c) => c,
            Err(e) => {
                if let Some(dir) = &shim_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(local_cluster_error(e));
            }
        };
        Ok(PyLocalCluster {
            shim_dir,
            url: cluster.url().to_string(),
            kubeconfig: cluster.kubeconfig_path().display().to_string(),
            token: cluster.token().to_string(),
            namespace: cluster.namespace().to_string(),
            inner: Mutex::new(Some(cluster)),
        })
    }

    /// Stop the cluster and every process it started. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .inner
            .lock()
            .map_err(|_| kjenv_error("local cluster: its lock is poisoned (a call panicked)"))?
            .take();
        if let Some(mut cluster) = taken {
            py.detach(move || cluster.stop());
        }
        if let Some(dir) = &self.shim_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// Whether the cluster is running (not stopped).
    #[getter]
    fn running(&self) -> bool {
        self.inner.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    /// Arm a fault for matching requests (`method`, `path` glob), `times` times: an HTTP
    /// `status` (with `retry_after`), a connection `reset`, or `latency` seconds.
    #[pyo3(signature = (status=None, *, method=None, path=None, times=1, retry_after=None, reset=false, latency=None))]
    #[allow(clippy::too_many_arguments)]
    fn inject_fault(
        &self,
        status: Option<u16>,
        method: Option<String>,
        path: Option<String>,
        times: u32,
        retry_after: Option<u32>,
        reset: bool,
        latency: Option<f64>,
    ) -> PyResult<()> {
        let action = match (status, reset, latency) {
            (Some(code), false, None) => Fault::Status(code, retry_after),
            (None, true, None) => Fault::Reset,
            (None, false, Some(s)) => {
                Fault::Latency(seconds("latency", Some(s))?.unwrap_or_default())
            }
            _ => {
                return Err(PyValueError::new_err(
                    "give exactly one of status=, reset=True, latency=",
                ))
            }
        };
        self.with(|c| {
            c.inject(FaultRule {
                method,
                path,
                times,
                action,
            });
            Ok(())
        })
    }

    /// Add user ``name`` allowed what ``rules`` allow (RBAC ``PolicyRule`` dicts: ``apiGroups``,
    /// ``resources``, ``verbs``, ``resourceNames``, ``nonResourceURLs``) in ``namespace``, as a
    /// Role bound there would, or everywhere (``None``: a ClusterRole bound cluster-wide); an
    /// existing user keeps its token and gets these rules. Returns the path of a kubeconfig for
    /// that user (its context in ``namespace``, else ``default``). Its requests beyond the rules
    /// get kube-apiserver's 403, and access reviews (``kubectl auth can-i``) answer for it.
    #[pyo3(signature = (name, rules, *, namespace=None))]
    fn add_user(
        &self,
        py: Python<'_>,
        name: &str,
        rules: &Bound<'_, PyAny>,
        namespace: Option<&str>,
    ) -> PyResult<String> {
        let rules: Vec<localcluster::users::Rule> = pythonize::depythonize(rules)
            .map_err(|e| PyValueError::new_err(format!("rules for user {name:?}: {e}")))?;
        self.with(|c| {
            py.detach(|| c.add_user(name, rules, namespace))
                .map(|p| p.display().to_string())
                .map_err(local_cluster_error)
        })
    }

    /// Disarm every fault.
    fn clear_faults(&self) -> PyResult<()> {
        self.with(|c| {
            c.cluster().faults.clear();
            Ok(())
        })
    }

    /// End every open watch with 410 Expired, as an API server compacting its history does.
    fn expire_watches(&self) -> PyResult<()> {
        self.with(|c| {
            c.expire_watches();
            Ok(())
        })
    }

    /// Start recording the authenticated requests the API receives (for tests of what a client
    /// needs, e.g. RBAC rules); a recording in progress is discarded.
    fn start_recording(&self) -> PyResult<()> {
        self.with(|c| {
            c.start_recording();
            Ok(())
        })
    }

    /// Stop recording; return the requests as ``(method, path, query)`` tuples in arrival order
    /// (at most 100,000).
    fn stop_recording(&self) -> PyResult<Vec<(String, String, String)>> {
        self.with(|c| {
            let recording = c.stop_recording();
            Ok(recording
                .requests
                .into_iter()
                .map(|r| (r.method, r.path, r.query))
                .collect())
        })
    }

    /// Close the listening socket and open it again on the same port (connections drop).
    fn restart_listener(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.with(|c| c.restart_listener().map_err(local_cluster_error)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<LocalCluster url={} namespace={} running={}>",
            self.url,
            self.namespace,
            self.running()
        )
    }
}
