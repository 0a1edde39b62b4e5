//! The Python exception tree (`kjenv.KjenvError` and its subclasses) and the one mapping from
//! the core's [`crate::Error`] to it.

use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::IntoPyObjectExt;

use crate::error::{Error, SpecLocation};

/// The exception classes, created once per interpreter in module init.
pub(crate) struct Exceptions {
    pub kjenv_error: Py<PyType>,
    pub job_spec_error: Py<PyType>,
    pub cluster_config_error: Py<PyType>,
    pub kube_api_error: Py<PyType>,
    pub job_failed_error: Py<PyType>,
    pub job_timeout_error: Py<PyType>,
}

static EXCEPTIONS: PyOnceLock<Exceptions> = PyOnceLock::new();

fn new_class<'py>(
    py: Python<'py>,
    name: &str,
    bases: Vec<Bound<'py, PyAny>>,
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "kjenv")?;
    let bases = PyTuple::new(py, bases)?;
    let class = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}

impl Exceptions {
    fn create(py: Python<'_>) -> PyResult<Self> {
        let base = new_class(
            py,
            "KjenvError",
            vec![py.get_type::<PyException>().into_any()],
        )?;
        let under = |name: &str, builtin: Bound<'_, PyType>| -> PyResult<Py<PyType>> {
            new_class(
                py,
                name,
                vec![base.bind(py).clone().into_any(), builtin.into_any()],
            )
        };
        Ok(Exceptions {
            job_spec_error: under("JobSpecError", py.get_type::<PyValueError>())?,
            cluster_config_error: under("ClusterConfigError", py.get_type::<PyOSError>())?,
            kube_api_error: new_class(py, "KubeApiError", vec![base.bind(py).clone().into_any()])?,
            job_failed_error: new_class(
                py,
                "JobFailedError",
                vec![base.bind(py).clone().into_any()],
            )?,
            job_timeout_error: under("JobTimeoutError", py.get_type::<PyTimeoutError>())?,
            kjenv_error: base,
        })
    }

    /// The classes for this interpreter.
    pub(crate) fn get(py: Python<'_>) -> PyResult<&Exceptions> {
        EXCEPTIONS.get_or_try_init(py, || Exceptions::create(py))
    }
}

/// Register the exception classes on the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let e = Exceptions::get(py)?;
    module.add("KjenvError", e.kjenv_error.bind(py))?;
    module.add("JobSpecError", e.job_spec_error.bind(py))?;
    module.add("ClusterConfigError", e.cluster_config_error.bind(py))?;
    module.add("KubeApiError", e.kube_api_error.bind(py))?;
    module.add("JobFailedError", e.job_failed_error.bind(py))?;
    module.add("JobTimeoutError", e.job_timeout_error.bind(py))?;
    install_panic_hook();
    Ok(())
}

/// A Python object for an optional value (None when absent or not convertible).
fn to_py<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: Option<T>) -> Py<PyAny> {
    value
        .and_then(|v| v.into_py_any(py).ok())
        .unwrap_or_else(|| py.None())
}

/// Instantiate `class(message)` and set extra attributes on it.
fn raise(
    py: Python<'_>,
    class: &Py<PyType>,
    message: String,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = class.bind(py).call1((message.clone(),))?;
        for (name, value) in attrs {
            exc.setattr(*name, value)?;
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// A `kjenv.KjenvError` with this message.
pub(crate) fn kjenv_error(message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| match Exceptions::get(py) {
        Ok(e) => raise(py, &e.kjenv_error, message, &[]),
        Err(e) => e,
    })
}

/// The local cluster's errors are `kjenv.KjenvError`s (the emulator is not the core's: its
/// error type is mapped here, in the bindings that embed it).
pub(crate) fn local_cluster_error(err: localcluster::Error) -> PyErr {
    kjenv_error(format!("local cluster: {err}"))
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        Python::attach(|py| match Exceptions::get(py) {
            Ok(exceptions) => to_python(py, exceptions, err),
            Err(e) => e,
        })
    }
}

/// The attributes of a `JobSpecError`: where in the spec, and what is wrong there.
fn spec_attrs(
    py: Python<'_>,
    location: SpecLocation,
    detail: String,
) -> Vec<(&'static str, Py<PyAny>)> {
    vec![
        (
            "file",
            to_py(py, location.file.map(|f| f.display().to_string())),
        ),
        ("line", to_py(py, location.line)),
        ("column", to_py(py, location.column)),
        ("field", to_py(py, location.field)),
        ("detail", to_py(py, Some(detail))),
    ]
}

/// The attributes of a `KubeApiError`: the API's status code, reason and message.
fn api_attrs(
    py: Python<'_>,
    status: u16,
    reason: &str,
    detail: String,
) -> Vec<(&'static str, Py<PyAny>)> {
    vec![
        ("status", to_py(py, Some(status))),
        ("reason", to_py(py, Some(reason))),
        ("message", to_py(py, Some(detail))),
    ]
}

/// The one mapping of the core's errors to the Python exception tree.
fn to_python(py: Python<'_>, ex: &Exceptions, err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::JobSpec {
            location,
            message: detail,
        } => raise(
            py,
            &ex.job_spec_error,
            message,
            &spec_attrs(py, location, detail),
        ),
        Error::FileNotFound { path, .. } => PyFileNotFoundError::new_err((
            2,
            "No such file or directory",
            // Python's message quotes the file name: a long one is shortened in the middle.
            crate::spec::names::shown_path(&path),
        )),
        Error::Io { .. } => PyOSError::new_err(message),
        Error::MissingValue(_) | Error::InvalidArgument(_) => PyValueError::new_err(message),
        Error::ClusterConfig { .. } => raise(py, &ex.cluster_config_error, message, &[]),
        Error::KubeApi {
            status,
            reason,
            message: detail,
        } => raise(
            py,
            &ex.kube_api_error,
            message,
            &api_attrs(py, status, &reason, detail),
        ),
        Error::Unreachable { detail, .. } => {
            let attrs = api_attrs(py, 0, "Unreachable", detail);
            raise(py, &ex.kube_api_error, message, &attrs)
        }
        Error::JobFailed {
            reason,
            exit_code,
            log_tail,
            ..
        } => {
            let attrs = [
                ("reason", to_py(py, Some(reason))),
                ("exit_code", to_py(py, exit_code)),
                ("log_tail", to_py(py, Some(log_tail))),
            ];
            raise(py, &ex.job_failed_error, message, &attrs)
        }
        Error::Runtime(_) | Error::UnexpectedAnswer { .. } | Error::Panicked(_) => {
            raise(py, &ex.kjenv_error, message, &[])
        }
        Error::JobTimeout(_) => raise(py, &ex.job_timeout_error, message, &[]),
        Error::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
    }
}

/// Whether the user asked for Rust backtraces (`KJENV_BACKTRACE=1`, or `RUST_BACKTRACE` set).
fn backtrace_wanted() -> bool {
    std::env::var("KJENV_BACKTRACE").is_ok_and(|v| v == "1")
        || std::env::var_os("RUST_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A panic is turned into a `KjenvError` at the binding boundary ([`internal_error`]); the
/// default hook would first print its message and, with `RUST_BACKTRACE`, a backtrace to
/// stderr. It stays quiet unless a backtrace was asked for.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if backtrace_wanted() {
                default(info);
            }
        }));
    });
}

/// The `KjenvError` for a panic caught at the binding boundary: one line, the panic's message
/// (kjenv never panics with a secret in it), and a request to report it.
pub(crate) fn internal_error(payload: &(dyn std::any::Any + Send)) -> PyErr {
    kjenv_error(Error::Panicked(panic_message(payload)).to_string())
}

/// Run `f`, a call into the core, turning a panic into [`internal_error`].
pub(crate) fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(internal_error(&*payload)))
}

/// A panic's message, one line.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    what.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}
