//! `run_flow()`: the in-container entry point. Rust orders the steps (context, callbacks,
//! outcome, exit code); `kjenv._runflow` does what is Python by nature (unpickling, running).

use pyo3::exceptions::{PySystemExit, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::environment::PyKubernetesJobEnvironment;

/// Load the flow named by the run's context and run it; `SystemExit(1)` when it fails.
pub(crate) fn run_flow(slf: &Bound<'_, PyKubernetesJobEnvironment>) -> PyResult<()> {
    let py = slf.py();
    let ctx = crate::incontainer::FlowContext::from_env(&|k| std::env::var(k).ok());
    let glue = py.import("kjenv._runflow")?;
    glue.call_method0("setup_logging")?;
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("kjenv",))?;
    let loaded = match &ctx.storage {
        Some(description) => py
            .import("kjenv._storage")?
            .call_method1("load", (description,))
            .and_then(|pair| pair.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()),
        None => glue
            .call_method1("load_flow", (&ctx.flow_file_path,))
            .map(|flow| (flow, py.None().into_bound(py))),
    };
    let (flow, secrets) = match loaded {
        Ok(pair) => pair,
        Err(err) if err.is_instance(py, &glue.getattr("FlowLoadError")?) => {
            let stderr = py.import("sys")?.getattr("stderr")?;
            stderr.call_method1("write", (format!("kjenv: {}\n", err.value(py)),))?;
            return Err(PySystemExit::new_err(1));
        }
        Err(err) => return Err(err),
    };
    // The environment stored with the flow carries the callbacks and the executor; the
    // fresh instance of the one-liner has none.
    let stored = flow
        .getattr("environment")
        .ok()
        .filter(|e| e.is_instance_of::<PyKubernetesJobEnvironment>());
    let env = stored.unwrap_or_else(|| slf.clone().into_any());
    let on_start = env.getattr("on_start")?;
    let on_exit = env.getattr("on_exit")?;
    let executor = env.getattr("executor")?;
    logger.call_method1(
        "info",
        (format!(
            "kjenv: running flow from {} (flow run {})",
            if ctx.storage.is_some() {
                "its storage"
            } else {
                &ctx.flow_file_path
            },
            ctx.flow_run_id.as_deref().unwrap_or("unknown")
        ),),
    )?;
    let outcome = (|| -> PyResult<bool> {
        if !on_start.is_none() {
            on_start.call0()?;
        }
        if glue
            .call_method1("is_prefect_flow", (&flow,))?
            .is_truthy()?
        {
            let context = PyDict::new(py);
            context.set_item("flow_run_id", &ctx.flow_run_id)?;
            context.set_item("namespace", &ctx.namespace)?;
            context.set_item("image", &ctx.image)?;
            // The storage's secrets stay in context while the flow runs, as in Prefect.
            context.set_item("secrets", &secrets)?;
            glue.call_method1(
                "run_prefect_flow",
                (&flow, &executor, &ctx.flow_runner, context),
            )?
            .is_truthy()
        } else if flow.hasattr("run")? {
            glue.call_method1("run_plain", (&flow,))?.is_truthy()
        } else {
            Err(PyTypeError::new_err(format!(
                "the object in {} is neither a Prefect flow nor has a run() method (got {})",
                ctx.flow_file_path,
                flow.get_type().name()?
            )))
        }
    })();
    let exit_result = if on_exit.is_none() {
        Ok(())
    } else {
        on_exit.call0().map(|_| ())
    };
    match outcome {
        Ok(true) => {
            exit_result?;
            logger.call_method1("info", ("kjenv: flow run succeeded",))?;
            Ok(())
        }
        Ok(false) => {
            logger.call_method1("error", ("kjenv: flow run failed",))?;
            Err(PySystemExit::new_err(1))
        }
        Err(err) => {
            // An exception escaped the flow: show it, exit 1 (the Job's backoffLimit applies).
            err.print(py);
            Err(PySystemExit::new_err(1))
        }
    }
}
