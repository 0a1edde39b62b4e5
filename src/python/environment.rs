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
use super::{blocking, errors, prefect};
use crate::context::{check_text, Candidates};
use crate::naming::{JOB_API_VERSION, JOB_KIND};
use crate::run::{self, ConfigNamespace, Inputs};
use crate::settings::Settings;
use crate::spec::names;

/// The per-call arguments of `render` / `execute`.
struct CallArgs<'a, 'py> {
    flow: Option<&'a Bound<'py, PyAny>>,
    /// `execute(flow, flow_location)`: the flow file's path (or, with a Prefect <= 0.10
    /// storage as `flow`, its path in that storage).
    flow_location: Option<String>,
    image: Option<String>,
    flow_run_id: Option<String>,
    namespace: Option<String>,
}

/// The extension half of `kjenv.KubernetesJobEnvironment` (the Python class adds `run_flow()`
/// and `run()`): the Job spec, loaded and checked once, and what renders and submits it.
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
    /// Read once, when the environment is made (or unpickled).
    settings: Settings,
    warned: AtomicBool,
}

fn empty_spec() -> Arc<Value> {
    Arc::new(serde_json::json!({"apiVersion": JOB_API_VERSION, "kind": JOB_KIND}))
}

/// `set(labels)`, as Prefect does, with a TypeError that names the argument, or the first
/// element that is not a string (Prefect's labels are strings: `serialize()` sorts them).
fn label_set(labels: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let items = labels
        .try_iter()
        .and_then(|it| it.collect::<PyResult<Vec<_>>>());
    let Ok(items) = items else {
        return Err(PyTypeError::new_err(format!(
            "labels: expected an iterable of label strings, got {}",
            labels.get_type().name()?
        )));
    };
    if let Some(bad) = items.iter().find(|l| !l.is_instance_of::<PyString>()) {
        return Err(PyTypeError::new_err(format!(
            "labels: expected label strings, got {} ({})",
            names::shorten(&bad.repr()?.to_cow()?, 64),
            bad.get_type().name()?
        )));
    }
    Ok(PySet::new(labels.py(), items)?.into_any().unbind())
}

/// `metadata` as the environment keeps it: a dict (None is Prefect's default, `{}`), whose
/// `"image"`, when set, is a string.
fn checked_metadata(py: Python<'_>, metadata: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    let Some(metadata) = metadata.filter(|m| !m.is_none()) else {
        return Ok(PyDict::new(py).into_any().unbind());
    };
    metadata_image(metadata)?;
    Ok(metadata.clone().unbind())
}

/// `metadata["image"]`: absent or None is no candidate; anything but a string is a TypeError
/// (it would otherwise be read as "no image" and the cause hidden).
fn metadata_image(metadata: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if !metadata.is_instance_of::<pyo3::types::PyMapping>() {
        return Err(PyTypeError::new_err(format!(
            "metadata: expected a dict, got {}",
            metadata.get_type().name()?
        )));
    }
    let image = metadata.call_method1("get", ("image",))?;
    if image.is_none() {
        return Ok(None);
    }
    match image.cast::<PyString>() {
        Ok(text) => Ok(Some(text.to_cow()?.into_owned())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "metadata[\"image\"]: expected a string (the flow's image), got {}",
            image.get_type().name()?
        ))),
    }
}

/// Where a node of a `job_spec` object sits in its parent: a key or an index.
enum Segment<'py> {
    Key(Bound<'py, PyAny>),
    Index(usize),
}

/// The field path of node `at` (an index into `steps`: each entry is its parent and segment).
fn field_path(steps: &[(usize, Segment<'_>)], mut at: usize) -> String {
    let mut path = Vec::new();
    while at != usize::MAX {
        let (parent, segment) = &steps[at];
        path.push(match segment {
            Segment::Key(k) => k.str().map(|s| s.to_string()).unwrap_or_default(),
            Segment::Index(i) => i.to_string(),
        });
        at = *parent;
    }
    path.reverse();
    crate::spec::display_path(&path)
}

/// What is wrong with a scalar of a `job_spec` object, if anything: an integer beyond 64 bits
/// (converted, it would become a float) or a NaN or infinity (it would become null).
fn scalar_problem(item: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if item.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(None);
    }
    if item.is_instance_of::<pyo3::types::PyInt>() {
        if item.extract::<i64>().is_ok() || item.extract::<u64>().is_ok() {
            return Ok(None);
        }
        // Python refuses to print an int of more than 4300 digits: say how large it is instead.
        let shown = match item.str() {
            Ok(s) => s.to_string(),
            Err(_) => format!("of {} bits", item.call_method0("bit_length")?),
        };
        return Ok(Some(crate::spec::integer_out_of_range(&shown)));
    }
    if let Ok(f) = item.cast::<pyo3::types::PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return Ok(Some(crate::spec::non_finite(&item.repr()?.to_cow()?)));
        }
    }
    Ok(None)
}

/// The children of a mapping or list node, with their segments (none for a scalar).
fn children<'py>(item: &Bound<'py, PyAny>) -> PyResult<Vec<(Segment<'py>, Bound<'py, PyAny>)>> {
    let pairs = |items: Bound<'py, PyAny>| -> PyResult<Vec<_>> {
        items
            .try_iter()?
            .map(|pair| {
                let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = pair?.extract()?;
                Ok((Segment::Key(k), v))
            })
            .collect()
    };
    if let Ok(d) = item.cast::<PyDict>() {
        Ok(d.iter().map(|(k, v)| (Segment::Key(k), v)).collect())
    } else if item.cast::<PyList>().is_ok() || item.cast::<PyTuple>().is_ok() {
        item.try_iter()?
            .enumerate()
            .map(|(i, c)| Ok((Segment::Index(i), c?)))
            .collect()
    } else if item.is_instance_of::<pyo3::types::PyMapping>() {
        pairs(item.call_method0("items")?)
    } else {
        Ok(Vec::new())
    }
}

/// Check a `job_spec` object before converting it: not nested deeper than a job spec may be
/// (the conversion recurses, and a 10,000-deep or self-containing dict would overflow the
/// stack), and no value the conversion would change, named by its field path.
fn check_tree(obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut steps: Vec<(usize, Segment<'_>)> = Vec::new();
    let mut todo = vec![(obj.clone(), 1, usize::MAX)];
    while let Some((item, depth, at)) = todo.pop() {
        if depth > crate::spec::MAX_DEPTH {
            return Err(crate::Error::spec_document(format!(
                "the job spec is nested more than {} levels deep",
                crate::spec::MAX_DEPTH
            ))
            .into());
        }
        if let Some(message) = scalar_problem(&item)? {
            return Err(match at {
                usize::MAX => crate::Error::spec_document(message),
                at => crate::Error::spec(field_path(&steps, at), message),
            }
            .into());
        }
        for (segment, child) in children(&item)? {
            steps.push((at, segment));
            todo.push((child, depth + 1, steps.len() - 1));
        }
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
                check_tree(obj)?;
                let value: Value = depythonize(obj).map_err(|e| {
                    crate::Error::spec_document(format!(
                        "job_spec cannot be read as a Kubernetes object: {e}"
                    ))
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
            settings: Settings::from_process_env(),
            warned: AtomicBool::new(false),
        })
    }

    /// What the core needs for a run, read from this environment, the call's arguments, the
    /// flow's storage and Prefect (the one pass over Python objects of a render or execute).
    fn inputs(&self, py: Python<'_>, args: CallArgs<'_, '_>) -> PyResult<Inputs> {
        let seed_era = prefect::is_seed_era_storage(args.flow);
        let (override_path, storage_path) = if seed_era {
            (None, args.flow_location)
        } else {
            (args.flow_location, None)
        };
        let from_flow = prefect::flow_argument(args.flow, storage_path)?;
        let namespace = args.namespace.or_else(|| self.namespace.clone());
        // prefect.context only matters for values the caller did not give.
        let ctx = match (&args.flow_run_id, &namespace) {
            (Some(_), Some(_)) => prefect::ContextValues::default(),
            _ => prefect::context_values(py)?,
        };
        let candidates = Candidates {
            image: args.image,
            metadata_image: metadata_image(self.metadata.bind(py))?,
            storage_image: from_flow.image,
            flow_run_id: args.flow_run_id,
            context_flow_run_id: ctx.flow_run_id,
            namespace,
            context_namespace: ctx.namespace,
            flow_file_path: override_path,
            storage_flow_file_path: from_flow.flow_file_path,
            ..Candidates::default()
        };
        Ok(Inputs {
            spec: self.spec.clone(),
            identifier: self.identifier.clone(),
            unique_job_name: self.unique_job_name,
            candidates,
            cloud: prefect::cloud_settings(py)?,
            storage: from_flow.storage,
        })
    }

    /// One warning per environment when the spec's flow container fields were replaced.
    fn warn_replaced(&self, py: Python<'_>, replaced: &[String]) -> PyResult<()> {
        if replaced.is_empty() || self.warned.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let message = format!(
            "kjenv replaced these fields of the job spec's flow container: {} (the first container always runs the flow)",
            replaced.join(", ")
        );
        py.import("logging")?
            .call_method1("getLogger", ("kjenv",))?
            .call_method1("warning", (message,))?;
        Ok(())
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
        // One rule for every string argument (the call's are checked in `run::plan`).
        for (field, value) in [
            (
                "job_spec_file",
                job_spec_file.as_ref().map(|p| p.to_string_lossy()),
            ),
            (
                "kubeconfig",
                kubeconfig.as_ref().map(|p| p.to_string_lossy()),
            ),
            ("context", context.as_deref().map(Into::into)),
        ] {
            if let Some(value) = value {
                check_text(field, &value)?;
            }
        }
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
        self.metadata = checked_metadata(py, metadata)?;
        self.namespace = namespace;
        self.kubeconfig =
            kubeconfig.map(|p| std::path::absolute(&p).unwrap_or(p).display().to_string());
        self.context = context;
        Ok(())
    }

    /// The spec file's absolute path, or None when the spec was given as `job_spec`.
    #[getter]
    fn job_spec_file(&self) -> Option<String> {
        self.job_spec_file.as_ref().map(|p| p.display().to_string())
    }

    /// The environment's labels (a set of strings, as Prefect's).
    #[getter]
    fn labels(&self, py: Python<'_>) -> Py<PyAny> {
        self.labels.clone_ref(py)
    }

    #[setter]
    fn set_labels(&mut self, labels: &Bound<'_, PyAny>) -> PyResult<()> {
        self.labels = label_set(labels)?;
        Ok(())
    }

    /// Free-form metadata; `metadata["image"]` is a candidate for the flow's image.
    #[getter]
    fn metadata(&self, py: Python<'_>) -> Py<PyAny> {
        self.metadata.clone_ref(py)
    }

    #[setter]
    fn set_metadata(&mut self, metadata: &Bound<'_, PyAny>) -> PyResult<()> {
        self.metadata = checked_metadata(metadata.py(), Some(metadata))?;
        Ok(())
    }

    /// A uuid made with the environment; the Job and its pods carry it as `identifier`.
    #[getter]
    fn identifier_label(&self) -> &str {
        &self.identifier
    }

    /// The Python packages the environment needs in the flow's image.
    #[getter]
    fn dependencies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, ["kjenv"])
    }

    /// The logger `kjenv.KubernetesJobEnvironment`.
    #[getter]
    fn logger<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("logging")?
            .call_method1("getLogger", ("kjenv.KubernetesJobEnvironment",))
    }

    /// The checked Job spec, as a dict (a copy).
    #[getter]
    fn job_spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &*self.spec)?)
    }

    /// Prefect's hook before a flow is deployed: nothing to set up for a Job.
    #[pyo3(signature = (flow=None))]
    fn setup(&self, flow: Option<&Bound<'_, PyAny>>) {
        let _ = flow;
    }

    /// The Job `execute()` would submit, as a dict: nothing is sent to the cluster (the
    /// kubeconfig's default namespace is read from its file when nothing else gives one).
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
        let args = CallArgs {
            flow,
            flow_location: flow_file_path,
            image,
            flow_run_id,
            namespace,
        };
        let inputs = self.inputs(py, args)?;
        let target = self.target();
        let plan = errors::guard(|| Ok(run::plan(&inputs, ConfigNamespace::Lookup(target))?))?;
        self.warn_replaced(py, &plan.replaced)?;
        Ok(pythonize(py, &plan.job)?)
    }

    /// Create the Job on the cluster and return its `JobRun`; with `wait=True`, wait for it.
    #[pyo3(signature = (flow=None, flow_location=None, *, image=None, flow_run_id=None, namespace=None,
                        wait=false, timeout=None, stream_logs=false, failed_create_grace=None,
                        stop_sidecars=true))]
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
        failed_create_grace: Option<f64>,
        stop_sidecars: bool,
    ) -> PyResult<PyJobRun> {
        // Every argument is checked before the first request.
        let wait_timeout = super::seconds("timeout", timeout)?;
        let failed_create_grace = super::seconds("failed_create_grace", failed_create_grace)?;
        if !wait && (stream_logs || timeout.is_some() || failed_create_grace.is_some()) {
            return Err(PyValueError::new_err(
                "stream_logs, timeout and failed_create_grace are options of the wait: pass \
                 wait=True, or call .wait(...) on the JobRun that execute() returns",
            ));
        }
        let args = CallArgs {
            flow,
            flow_location,
            image,
            flow_run_id,
            namespace,
        };
        let inputs = self.inputs(py, args)?;
        let (target, settings) = (self.target(), self.settings.clone());
        // Ctrl-C during the submission deletes a Job whose Secret was not made. The plan, made
        // first, refuses a bad value before any request.
        let (job_run, plan) = blocking::run_undoable(py, |interrupted| async move {
            let stop = async move {
                let _ = interrupted.await;
            };
            run::execute(&target, &inputs, &settings, stop).await
        })?;
        self.warn_replaced(py, &plan.replaced)?;
        let handle = PyJobRun::from(job_run);
        if wait {
            let mut options = handle.settings().wait_options(wait_timeout, None, None);
            if let Some(grace) = failed_create_grace {
                options.failed_create_grace = grace;
            }
            options.stop_sidecars = stop_sidecars;
            handle.wait_with(py, options, stream_logs, None, Default::default())?;
        }
        Ok(handle)
    }

    /// Check, before a run, that the configured credentials may make every request kjenv
    /// makes in the run's namespace (a SelfSubjectAccessReview each) and, with `dry_run`, that
    /// the API server admits the rendered Job (`dryRun=All`: nothing is created). Returns
    /// `{"namespace", "permissions": [...], "dry_run": {...} or None, "ok"}`.
    #[pyo3(signature = (*, image=None, namespace=None, dry_run=true))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        image: Option<String>,
        namespace: Option<String>,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = CallArgs {
            flow: None,
            flow_location: None,
            image,
            flow_run_id: None,
            namespace,
        };
        let inputs = self.inputs(py, args)?;
        let (target, settings) = (self.target(), self.settings.clone());
        let check = crate::check::check(&target, &inputs, &settings, dry_run);
        let report = blocking::run(py, check, None)?;
        Ok(pythonize(py, &report)?)
    }

    /// Prefect's serialized form: the type, the sorted labels and the metadata.
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
                check_tree(&spec)?;
                Arc::new(crate::spec::from_value(
                    depythonize(&spec).map_err(|e| crate::Error::spec_document(e.to_string()))?,
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
