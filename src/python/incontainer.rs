//! `flow_context()`: the in-container run's context for `kjenv._runflow`, read by the core
//! ([`crate::incontainer::FlowContext`]) so that the variable names and defaults live in one place.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::incontainer::FlowContext;

/// The flow container's run context, read from its environment variables.
///
/// Returns:
///     ``{"flow_file_path", "flow_run_id", "namespace", "image", "flow_runner",
///     "task_runner", "storage", "cloud", "backend"}``; unset values are None.
#[pyfunction]
pub(crate) fn flow_context(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let ctx = FlowContext::from_env(&|k| std::env::var(k).ok());
    let out = PyDict::new(py);
    out.set_item("flow_file_path", ctx.flow_file_path)?;
    out.set_item("flow_run_id", ctx.flow_run_id)?;
    out.set_item("namespace", ctx.namespace)?;
    out.set_item("image", ctx.image)?;
    out.set_item("flow_runner", ctx.flow_runner)?;
    out.set_item("task_runner", ctx.task_runner)?;
    out.set_item("storage", ctx.storage)?;
    out.set_item("cloud", ctx.cloud)?;
    out.set_item("backend", ctx.backend)?;
    Ok(out)
}
