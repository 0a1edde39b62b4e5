//! The PyO3 bindings: convert arguments, call the core, convert results and errors back.

mod blocking;
mod cluster;
mod environment;
mod errors;
mod incontainer;
mod job_run;
mod prefect;

use pyo3::prelude::*;

/// The extension module `kjenv._kjenv`.
#[pymodule]
fn _kjenv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    crate::report::set_warning_sink(warn_in_python);
    m.add_class::<environment::PyKubernetesJobEnvironment>()?;
    m.add_class::<cluster::PyLocalCluster>()?;
    m.add_class::<job_run::PyJobRun>()?;
    m.add("FLOW_COMMAND", crate::transform::FLOW_COMMAND)?;
    m.add_function(wrap_pyfunction!(dump_yaml, m)?)?;
    m.add_function(wrap_pyfunction!(incontainer::flow_context, m)?)?;
    Ok(())
}

/// The core's warnings go to Python's `kjenv` logger (taking the GIL: the core runs with it
/// released, see `blocking`).
pub(crate) fn warn_in_python(message: &str) {
    Python::attach(|py| {
        let logged = py
            .import("logging")
            .and_then(|l| l.call_method1("getLogger", ("kjenv",)))
            .and_then(|l| l.call_method1("warning", (message,)));
        if let Err(e) = logged {
            e.write_unraisable(py, None);
        }
    });
}

/// A non-negative number of seconds, or a `ValueError` naming the argument.
pub(crate) fn seconds(name: &str, value: Option<f64>) -> PyResult<Option<std::time::Duration>> {
    value
        .map(|v| {
            std::time::Duration::try_from_secs_f64(v).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "{name} must be a non-negative number of seconds, got {v}"
                ))
            })
        })
        .transpose()
}

/// YAML text of a JSON-like Python object.
#[pyfunction]
fn dump_yaml(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let value: serde_json::Value = pythonize::depythonize(obj).map_err(|e| {
        pyo3::exceptions::PyTypeError::new_err(format!("cannot write as YAML: {e}"))
    })?;
    Ok(crate::spec::to_yaml(&value)?)
}
