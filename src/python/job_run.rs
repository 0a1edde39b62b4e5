//! `kjenv.JobRun`: the Python handle on the core's [`crate::run::JobRun`] (wait for the Job, read
//! its status, logs and events, delete it). Converts arguments and results, nothing more.

use pyo3::prelude::*;
use pythonize::pythonize;
use tokio::sync::mpsc;

use super::{blocking, seconds};
use crate::job::inspect::Propagation;
use crate::job::wait::WaitOptions;
use crate::run::JobRun;
use crate::settings::Settings;

/// A submitted Job: wait for it, read its status, logs and events, delete it.
///
/// Returned by ``KubernetesJobEnvironment.execute()``. Each method makes its own requests (the
/// handle keeps no connection open), so a ``JobRun`` can be used from any thread.
#[pyclass(name = "JobRun", module = "kjenv", frozen)]
pub struct PyJobRun {
    run: JobRun,
}

impl From<JobRun> for PyJobRun {
    fn from(run: JobRun) -> Self {
        PyJobRun { run }
    }
}

impl PyJobRun {
    pub(crate) fn settings(&self) -> &Settings {
        self.run.settings()
    }

    /// Wait with these options; the flow container's log lines go to `sys.stdout` when asked.
    pub(crate) fn wait_with<'py>(
        &self,
        py: Python<'py>,
        options: WaitOptions,
        stream_logs: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (tx, rx) = if stream_logs {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let run = &self.run;
        let finished = blocking::run(py, run.wait(&options, tx), rx)?;
        Ok(pythonize(py, &finished)?)
    }
}

#[pymethods]
impl PyJobRun {
    /// The Job's name.
    #[getter]
    fn name(&self) -> &str {
        &self.run.job.name
    }

    /// The Job's namespace.
    #[getter]
    fn namespace(&self) -> &str {
        &self.run.job.namespace
    }

    /// The Job's uid (its pods carry it as ``controller-uid``).
    #[getter]
    fn uid(&self) -> &str {
        &self.run.job.uid
    }

    /// The flow run id the Job is labelled with.
    #[getter]
    fn flow_run_id(&self) -> &str {
        &self.run.job.flow_run_id
    }

    /// The flow container's name (the first container of the pod template).
    #[getter]
    fn container(&self) -> &str {
        &self.run.job.flow_container
    }

    /// The Job's status now: phase, counts, conditions, pods and the last event, as a dict.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let status = blocking::run(py, self.run.status(), None)?;
        Ok(pythonize(py, &status)?)
    }

    /// Wait until the Job finishes; return ``{"succeeded", "failed", "pods"}``.
    ///
    /// Raises ``JobFailedError`` (the Kubernetes reason, exit code and log tail) as soon as the
    /// Job fails or a pod cannot make progress (image pull errors past ``image_pull_grace``
    /// seconds, default 120; unschedulable past ``start_timeout``, default 300; config errors;
    /// OOM; a flow that cannot be loaded or a command that cannot run, whose retries are
    /// stopped), ``JobTimeoutError`` after ``timeout`` seconds. ``stream_logs`` prints the flow
    /// container's log as it comes. When the flow container ends while classic sidecars keep
    /// its pod running, its exit code decides; ``stop_sidecars`` (default True) then deletes
    /// the Job with its pods, which would otherwise run for ever.
    #[pyo3(signature = (timeout=None, stream_logs=false, *, image_pull_grace=None, start_timeout=None, stop_sidecars=true))]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        stream_logs: bool,
        image_pull_grace: Option<f64>,
        start_timeout: Option<f64>,
        stop_sidecars: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut options = self.settings().wait_options(
            seconds("timeout", timeout)?,
            seconds("image_pull_grace", image_pull_grace)?,
            seconds("start_timeout", start_timeout)?,
        );
        options.stop_sidecars = stop_sidecars;
        self.wait_with(py, options, stream_logs)
    }

    /// The log of the Job's newest pod (the flow container unless ``container`` is given);
    /// ``follow=True`` returns when the container ends.
    #[pyo3(signature = (follow=false, container=None))]
    fn logs(&self, py: Python<'_>, follow: bool, container: Option<String>) -> PyResult<String> {
        blocking::run(py, self.run.logs(container.as_deref(), follow), None)
    }

    /// The events of the Job and its pods, oldest first, as a list of dicts.
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let events = blocking::run(py, self.run.events(), None)?;
        Ok(pythonize(py, &events)?)
    }

    /// Delete the Job, its pods and its Secret (``"Background"`` or ``"Foreground"``; pods are
    /// never orphaned). Deleting a Job that is gone already succeeds.
    #[pyo3(signature = (propagation="Background"))]
    fn delete(&self, py: Python<'_>, propagation: &str) -> PyResult<()> {
        let propagation: Propagation = propagation.parse()?;
        blocking::run(py, self.run.delete(propagation), None)
    }

    fn __repr__(&self) -> String {
        let job = &self.run.job;
        format!(
            "<JobRun {}/{} uid={} flow_run_id={}>",
            job.namespace, job.name, job.uid, job.flow_run_id
        )
    }
}
