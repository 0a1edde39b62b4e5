//! `kjenv.KubernetesJobEnvironment`: the drop-in for Prefect's class, a thin shell over the core.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySet, PyString, PyTuple};
use pythonize::{depythonize, pythonize};
use serde_json::Value;

use super::job_run::PyJobRun;
use super::{blocking, prefect};
use crate::context::{self, Candidates};
use crate::job::submit::{submit, Submission};
use crate::retry::Policy;
use crate::transform::{self, RenderOptions, Rendered};

/// Per-call overrides of `render` / `execute`.
#[derive(Default)]
pub(crate) struct Overrides {
    pub image: Option<String>,
    pub flow_run_id: Option<String>,
    pub namespace: Option<String>,
    pub flow_file_path: Option<String>,
    /// The cluster configuration's default namespace.
    pub config_namespace: ConfigNamespace,
    /// Values from a Prefect <= 0.10 `execute(storage, flow_location)` call.
    pub storage: Option<prefect::FlowValues>,
}

/// The kubeconfig's default namespace: known (execute has connected) or to be read only if
/// nothing earlier in the resolution order gives a namespace (render).
#[derive(Default)]
pub(crate) enum ConfigNamespace {
    #[default]
    Lookup,
    Known(Option<String>),
}

/// A rendered Job and what submitting it needs.
pub(crate) struct RenderedRun {
    pub rendered: Rendered,
    pub cloud: crate::context::CloudSettings,
    pub values: crate::context::Resolved,
}

#[pyclass(name = "KubernetesJobEnvironment", module = "kjenv", subclass, dict)]
pub struct PyKubernetesJobEnvironment {
    job_spec_file: Option<PathBuf>,
    spec: Arc<Value>,
    #[pyo3(get, set)]
    unique_job_name: bool,
    #[pyo3(get, set)]
    executor: Py<PyAny>,
    labels: Py<PyAny>,
    #[pyo3(get, set)]
    on_start: Py<PyAny>,
    #[pyo3(get, set)]
    on_exit: Py<PyAny>,
    metadata: Py<PyAny>,
    identifier: String,
    #[pyo3(get)]
    namespace: Option<String>,
    #[pyo3(get)]
    kubeconfig: Option<String>,
    #[pyo3(get)]
    context: Option<String>,
    warned: AtomicBool,
}

fn empty_spec() -> Arc<Value> {
    Arc::new(serde_json::json!({"apiVersion": "batch/v1", "kind": "Job"}))
}

/// `set(labels)`, as Prefect does, with a TypeError that names the argument.
fn label_set(labels: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let items = labels
        .try_iter()
        .and_then(|it| it.collect::<PyResult<Vec<_>>>());
    let set = items.and_then(|items| PySet::new(labels.py(), items));
    match set {
        Ok(set) => Ok(set.into_any().unbind()),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "labels: expected an iterable of label strings, got {}",
            labels.get_type().name()?
        ))),
    }
}

/// Refuse a `job_spec` object nested deeper than a job spec may be, before converting it: the
/// conversion recurses, and a 10,000-deep (or self-containing) dict would overflow the stack.
fn check_depth(obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut todo = vec![(obj.clone(), 1)];
    while let Some((item, depth)) = todo.pop() {
        if depth > crate::spec::MAX_DEPTH {
            return Err(crate::Error::spec(
                "",
                format!(
                    "the job spec is nested more than {} levels deep",
                    crate::spec::MAX_DEPTH
                ),
            )
            .into());
        }
        let children: Vec<Bound<'_, PyAny>> = if let Ok(d) = item.cast::<PyDict>() {
            d.values().iter().collect()
        } else if item.cast::<PyList>().is_ok() || item.cast::<PyTuple>().is_ok() {
            item.try_iter()?.collect::<PyResult<_>>()?
        } else if item.is_instance_of::<pyo3::types::PyMapping>() {
            item.call_method0("values")?
                .try_iter()?
                .collect::<PyResult<_>>()?
        } else {
            continue;
        };
        todo.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// Load the spec from `job_spec_file` or `job_spec` (YAML text or a mapping).
fn load_spec(file: Option<&PathBuf>, job_spec: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<Value>> {
    match (file, job_spec) {
        (Some(_), Some(_)) => Err(PyValueError::new_err(
            "pass either job_spec_file or job_spec, not both",
        )),
        (Some(path), None) => {
            let path = path.clone();
            Ok(Arc::new(crate::spec::from_file(&path)?))
        }
        (None, Some(obj)) => {
            if let Ok(text) = obj.cast::<PyString>() {
                // Refused before it is copied to UTF-8: each character is at least one byte.
                if text.len()? > crate::spec::MAX_SPEC_BYTES {
                    return Err(crate::spec::too_large(text.len()?).into());
                }
                let text = text.to_cow()?;
                return Ok(Arc::new(crate::spec::from_yaml(&text, None)?));
            }
            if obj.cast::<PyDict>().is_ok() || obj.is_instance_of::<pyo3::types::PyMapping>() {
                check_depth(obj)?;
                let value: Value = depythonize(obj).map_err(|e| {
                    crate::Error::spec(
                        "",
                        format!("job_spec cannot be read as a Kubernetes object: {e}"),
                    )
                })?;
                return Ok(Arc::new(crate::spec::from_value(value)?));
            }
            Err(PyTypeError::new_err(format!(
                "job_spec must be YAML text or a dict, got {}",
                obj.get_type().name()?
            )))
        }
        (None, None) => Ok(empty_spec()),
    }
}

fn opt_string(py: Python<'_>, obj: &Py<PyAny>, key: &str) -> Option<String> {
    let dict = obj.bind(py).cast::<PyDict>().ok()?;
    let item = dict.get_item(key).ok()??;
    item.extract::<String>().ok()
}

impl PyKubernetesJobEnvironment {
    fn blank(py: Python<'_>) -> PyResult<Self> {
        Ok(PyKubernetesJobEnvironment {
            job_spec_file: None,
            spec: empty_spec(),
            unique_job_name: false,
            executor: py.None(),
            labels: PySet::empty(py)?.into_any().unbind(),
            on_start: py.None(),
            on_exit: py.None(),
            metadata: PyDict::new(py).into_any().unbind(),
            identifier: uuid::Uuid::new_v4().to_string(),
            namespace: None,
            kubeconfig: None,
            context: None,
            warned: AtomicBool::new(false),
        })
    }

    /// Render the Job for `flow` with per-call overrides.
    pub(crate) fn render_job(
        &self,
        py: Python<'_>,
        flow: Option<&Bound<'_, PyAny>>,
        o: Overrides,
    ) -> PyResult<RenderedRun> {
        let from_flow = match o.storage {
            Some(values) => values,
            None => prefect::flow_values(flow)?,
        };
        // prefect.context only matters for values the caller did not give.
        let ctx = if o.flow_run_id.is_some() && (o.namespace.is_some() || self.namespace.is_some())
        {
            prefect::ContextValues::default()
        } else {
            prefect::context_values(py)?
        };
        let cloud = prefect::cloud_settings(py)?;
        let spec_namespace = self
            .spec
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let namespace = o.namespace.or_else(|| self.namespace.clone());
        let config_namespace = match o.config_namespace {
            ConfigNamespace::Known(ns) => ns,
            ConfigNamespace::Lookup
                if namespace.is_none() && spec_namespace.is_none() && ctx.namespace.is_none() =>
            {
                // Read once per configuration and remembered; no connection is made.
                let target = self.target();
                py.detach(|| crate::runtime::block_on(crate::cluster::default_namespace(&target)))?
            }
            ConfigNamespace::Lookup => None,
        };
        let candidates = Candidates {
            image: o.image,
            metadata_image: opt_string(py, &self.metadata, "image"),
            storage_image: from_flow.image,
            flow_run_id: o.flow_run_id,
            context_flow_run_id: ctx.flow_run_id,
            namespace,
            spec_namespace,
            context_namespace: ctx.namespace,
            config_namespace,
            flow_file_path: o.flow_file_path,
            storage_flow_file_path: from_flow.flow_file_path,
        };
        let values = context::resolve(&candidates, &|k| std::env::var(k).ok())?;
        let rendered = transform::render(
            &self.spec,
            &RenderOptions {
                identifier: &self.identifier,
                values: &values,
                cloud: &cloud,
                unique_job_name: self.unique_job_name,
                storage: from_flow.storage.as_deref(),
            },
        );
        if !rendered.replaced.is_empty() && !self.warned.swap(true, Ordering::Relaxed) {
            let logging = py.import("logging")?;
            logging.call_method1("getLogger", ("kjenv",))?.call_method1(
                "warning",
                (format!(
                    "kjenv replaced these fields of the job spec's flow container: {} (the first container always runs the flow)",
                    rendered.replaced.join(", ")
                ),),
            )?;
        }
        Ok(RenderedRun {
            rendered,
            cloud,
            values,
        })
    }

    fn target(&self) -> crate::cluster::Target {
        crate::cluster::Target {
            kubeconfig: self.kubeconfig.as_ref().map(PathBuf::from),
            context: self.context.clone(),
        }
    }
}

#[pymethods]
impl PyKubernetesJobEnvironment {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __new__(
        py: Python<'_>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        Self::blank(py)
    }

    #[pyo3(signature = (job_spec_file=None, unique_job_name=false, executor=None, labels=None, on_start=None,
                        on_exit=None, metadata=None, *, job_spec=None, namespace=None, kubeconfig=None, context=None))]
    #[allow(clippy::too_many_arguments)]
    fn __init__(
        &mut self,
        py: Python<'_>,
        job_spec_file: Option<PathBuf>,
        unique_job_name: bool,
        executor: Option<Py<PyAny>>,
        labels: Option<&Bound<'_, PyAny>>,
        on_start: Option<Py<PyAny>>,
        on_exit: Option<Py<PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        job_spec: Option<&Bound<'_, PyAny>>,
        namespace: Option<String>,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    ) -> PyResult<()> {
        let job_spec_file = match job_spec_file {
            Some(p) => Some(std::path::absolute(&p).map_err(|e| crate::Error::Io {
                path: p.clone(),
                source: e,
            })?),
            None => None,
        };
        self.spec = load_spec(job_spec_file.as_ref(), job_spec)?;
        self.job_spec_file = job_spec_file;
        self.unique_job_name = unique_job_name;
        self.executor = executor.unwrap_or_else(|| py.None());
        self.labels = match labels {
            Some(l) if !l.is_none() => label_set(l)?,
            _ => PySet::empty(py)?.into_any().unbind(),
        };
        self.on_start = on_start.unwrap_or_else(|| py.None());
        self.on_exit = on_exit.unwrap_or_else(|| py.None());
        self.metadata = match metadata {
            Some(m) if !m.is_none() => m.clone().unbind(),
            _ => PyDict::new(py).into_any().unbind(),
        };
        self.namespace = namespace;
        self.kubeconfig =
            kubeconfig.map(|p| std::path::absolute(&p).unwrap_or(p).display().to_string());
        self.context = context;
        Ok(())
    }

    #[getter]
    fn job_spec_file(&self) -> Option<String> {
        self.job_spec_file.as_ref().map(|p| p.display().to_string())
    }

    #[getter]
    fn labels(&self, py: Python<'_>) -> Py<PyAny> {
        self.labels.clone_ref(py)
    }

    #[setter]
    fn set_labels(&mut self, labels: &Bound<'_, PyAny>) -> PyResult<()> {
        self.labels = label_set(labels)?;
        Ok(())
    }

    #[getter]
    fn metadata(&self, py: Python<'_>) -> Py<PyAny> {
        self.metadata.clone_ref(py)
    }

    #[setter]
    fn set_metadata(&mut self, metadata: Py<PyAny>) {
        self.metadata = metadata;
    }

    #[getter]
    fn identifier_label(&self) -> &str {
        &self.identifier
    }

    #[getter]
    fn dependencies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, ["kjenv"])
    }

    #[getter]
    fn logger<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("logging")?
            .call_method1("getLogger", ("kjenv.KubernetesJobEnvironment",))
    }

    #[getter]
    fn job_spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &*self.spec)?)
    }

    #[pyo3(signature = (flow=None))]
    fn setup(&self, flow: Option<&Bound<'_, PyAny>>) {
        let _ = flow;
    }

    #[pyo3(signature = (flow=None, *, image=None, flow_run_id=None, namespace=None, flow_file_path=None))]
    fn render<'py>(
        &self,
        py: Python<'py>,
        flow: Option<&Bound<'py, PyAny>>,
        image: Option<String>,
        flow_run_id: Option<String>,
        namespace: Option<String>,
        flow_file_path: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Exactly what execute submits: the kubeconfig's namespace counts when nothing earlier
        // in the resolution order gives one (ConfigNamespace::Lookup).
        let overrides = Overrides {
            image,
            flow_run_id,
            namespace,
            flow_file_path,
            ..Overrides::default()
        };
        let run = self.render_job(py, flow, overrides)?;
        Ok(pythonize(py, &run.rendered.job)?)
    }

    /// Create the Job on the cluster and return its `JobRun`.
    #[pyo3(signature = (flow=None, flow_location=None, *, image=None, flow_run_id=None, namespace=None,
                        wait=false, timeout=None, stream_logs=false))]
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        py: Python<'_>,
        flow: Option<&Bound<'_, PyAny>>,
        flow_location: Option<String>,
        image: Option<String>,
        flow_run_id: Option<String>,
        namespace: Option<String>,
        wait: bool,
        timeout: Option<f64>,
        stream_logs: bool,
    ) -> PyResult<PyJobRun> {
        let target = self.target();
        let conn = {
            let target = target.clone();
            blocking::run(
                py,
                async move { crate::cluster::connect(&target).await },
                None,
            )?
        };
        // Prefect <= 0.10 called execute(storage, flow_location).
        let seed_era = flow.is_some_and(|f| {
            f.hasattr("add_flow").unwrap_or(false) && !f.hasattr("tasks").unwrap_or(false)
        });
        let (flow_arg, storage) = match flow {
            Some(storage) if seed_era => {
                let mut values = prefect::storage_values(storage, None)?;
                if flow_location.is_some() {
                    values.flow_file_path = flow_location.clone();
                }
                (None, Some(values))
            }
            _ => (flow, None),
        };
        let overrides = Overrides {
            image,
            flow_run_id,
            namespace,
            flow_file_path: if seed_era { None } else { flow_location },
            config_namespace: ConfigNamespace::Known(Some(conn.default_namespace.clone())),
            storage,
        };
        let run = self.render_job(py, flow_arg, overrides)?;
        let secret = match (&run.rendered.secret_name, &run.cloud.auth_token) {
            (Some(name), Some(token)) => Some((name.clone(), token.clone())),
            _ => None,
        };
        let submission = Submission {
            job: run.rendered.job,
            namespace: run.values.namespace.clone(),
            flow_run_id: run.values.flow_run_id.clone(),
            secret,
        };
        // Ctrl-C during the submission deletes a Secret whose Job was not created.
        let job = blocking::run_undoable(py, |interrupted| async move {
            let stop = async move {
                let _ = interrupted.await;
            };
            submit(&conn, submission, &Policy::default(), stop).await
        })?;
        let handle = PyJobRun::new(job, target);
        if wait {
            handle.wait(py, timeout, stream_logs, 120.0, 300.0)?;
        }
        Ok(handle)
    }

    fn serialize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        out.set_item("type", "KubernetesJobEnvironment")?;
        let labels = py
            .import("builtins")?
            .call_method1("sorted", (self.labels.bind(py),))?;
        out.set_item("labels", labels)?;
        out.set_item("metadata", self.metadata.bind(py))?;
        Ok(out)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.borrow();
        let class = slf.get_type().qualname()?;
        let file = match &this.job_spec_file {
            Some(p) => format!("'{}'", p.display()),
            None => "None".into(),
        };
        let labels = slf
            .py()
            .import("builtins")?
            .call_method1("sorted", (this.labels.bind(slf.py()),))?;
        Ok(format!(
            "<{class}: job_spec_file={file} labels={}>",
            labels.repr()?
        ))
    }

    /// Pickle support: rebuilt with `cls.__new__(cls)` then `__setstate__`, for every protocol.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let newobj = py.import("copyreg")?.getattr("__newobj__")?;
        let state = Self::__getstate__(slf)?;
        PyTuple::new(
            py,
            [
                newobj,
                PyTuple::new(py, [slf.get_type()])?.into_any(),
                state.into_any(),
            ],
        )
    }

    fn __getstate__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let this = slf.borrow();
        let state = PyDict::new(py);
        state.set_item("job_spec_file", this.job_spec_file())?;
        state.set_item("job_spec", pythonize(py, &*this.spec)?)?;
        state.set_item("unique_job_name", this.unique_job_name)?;
        state.set_item("executor", this.executor.bind(py))?;
        state.set_item("labels", this.labels.bind(py))?;
        state.set_item("on_start", this.on_start.bind(py))?;
        state.set_item("on_exit", this.on_exit.bind(py))?;
        state.set_item("metadata", this.metadata.bind(py))?;
        state.set_item("namespace", &this.namespace)?;
        state.set_item("kubeconfig", &this.kubeconfig)?;
        state.set_item("context", &this.context)?;
        state.set_item("__dict__", slf.getattr("__dict__")?)?;
        Ok(state)
    }

    fn __setstate__(slf: &Bound<'_, Self>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let py = slf.py();
        let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            Ok(state
                .get_item(k)?
                .unwrap_or_else(|| py.None().into_bound(py)))
        };
        {
            let mut this = slf.borrow_mut();
            this.job_spec_file = get("job_spec_file")?.extract::<Option<PathBuf>>()?;
            let spec = get("job_spec")?;
            this.spec = if spec.is_none() {
                empty_spec()
            } else {
                check_depth(&spec)?;
                Arc::new(crate::spec::from_value(
                    depythonize(&spec).map_err(|e| crate::Error::spec("", e.to_string()))?,
                )?)
            };
            this.unique_job_name = get("unique_job_name")?
                .extract::<Option<bool>>()?
                .unwrap_or(false);
            this.executor = get("executor")?.unbind();
            let labels = get("labels")?;
            if !labels.is_none() {
                this.labels = labels.unbind();
            }
            this.on_start = get("on_start")?.unbind();
            this.on_exit = get("on_exit")?.unbind();
            let metadata = get("metadata")?;
            if !metadata.is_none() {
                this.metadata = metadata.unbind();
            }
            this.namespace = get("namespace")?.extract()?;
            this.kubeconfig = get("kubeconfig")?.extract()?;
            this.context = get("context")?.extract()?;
        }
        let extra = get("__dict__")?;
        if let Ok(extra) = extra.cast::<PyDict>() {
            let own = slf.getattr("__dict__")?;
            own.call_method1("update", (extra,))?;
        }
        Ok(())
    }
}
