//! `kjenv.JobRun`: the Python handle on the core's [`crate::run::JobRun`] (wait for the Job, read
//! its status, logs and events, cancel or delete it, attach to an existing one). Converts
//! arguments and results, nothing more.

use std::path::PathBuf;

use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pythonize::pythonize;
use tokio::sync::mpsc;

use super::{blocking, seconds};
use crate::cluster::Target;
use crate::job::attach::Select;
use crate::job::inspect::Propagation;
use crate::job::wait::WaitOptions;
use crate::run::{self, JobRun, OnInterrupt};
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

    /// Wait with these options; the log lines go to `sys.stdout` when asked, and to `log_file`.
    /// An interrupted wait (`KeyboardInterrupt`) keeps or deletes the Job as `on_interrupt`
    /// says, and says which at WARNING on the `kjenv` logger.
    pub(crate) fn wait_with<'py>(
        &self,
        py: Python<'py>,
        options: WaitOptions,
        stream_logs: bool,
        log_file: Option<PathBuf>,
        on_interrupt: OnInterrupt,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (tx, rx) = if stream_logs {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let run = &self.run;
        let waited = match &log_file {
            Some(path) => blocking::run(py, run.wait_keeping_log(&options, tx, path), rx),
            None => blocking::run(py, run.wait(&options, tx), rx),
        };
        match waited {
            Ok(finished) => Ok(pythonize(py, &finished)?),
            Err(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
                self.interrupted(py, on_interrupt);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Keep or delete the Job of an interrupted wait, and say which (a second Ctrl-C stops a
    /// delete that hangs).
    fn interrupted(&self, py: Python<'_>, choice: OnInterrupt) {
        let run = &self.run;
        let said = blocking::run(py, async { Ok(run.interrupted(choice).await) }, None);
        let message = said.unwrap_or_else(|_| {
            format!(
                "the wait for job {}/{} was interrupted twice; the job may still run",
                run.job.namespace, run.job.name
            )
        });
        super::warn_in_python(&message);
    }
}

/// The target of an attach: a kubeconfig file (else `KUBECONFIG`, `~/.kube/config`, in-cluster)
/// and a context.
fn target(kubeconfig: Option<PathBuf>, context: Option<String>) -> Target {
    Target {
        kubeconfig: kubeconfig.map(|p| std::path::absolute(&p).unwrap_or(p)),
        context,
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

    /// Attach to an existing Job: by ``name``, or by the ``flow_run_id`` label kjenv puts on its
    /// Jobs, in ``namespace`` (else the kubeconfig's).
    #[staticmethod]
    #[pyo3(signature = (name=None, namespace=None, kubeconfig=None, context=None, *, flow_run_id=None))]
    fn attach(
        py: Python<'_>,
        name: Option<String>,
        namespace: Option<String>,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        flow_run_id: Option<String>,
    ) -> PyResult<PyJobRun> {
        let select = match (name, flow_run_id) {
            (Some(name), None) => Select::Name(name),
            (None, Some(id)) => Select::FlowRunId(id),
            _ => {
                return Err(PyValueError::new_err(
                    "JobRun.attach() takes a job name or flow_run_id=..., exactly one of them",
                ))
            }
        };
        let target = target(kubeconfig, context);
        let settings = Settings::from_process_env();
        let ns = namespace.as_deref();
        let run = blocking::run(py, run::attach(&target, ns, &select, &settings), None)?;
        Ok(PyJobRun::from(run))
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
    /// OOM; pods the Job controller cannot create, ``FailedCreate``, past
    /// ``failed_create_grace`` seconds, default 120; a flow that cannot be loaded or a command
    /// that cannot run, whose retries are stopped), ``JobTimeoutError`` after ``timeout``
    /// seconds. ``stream_logs`` prints the log as it comes; ``log_file`` keeps every line in a
    /// file too. On Ctrl-C, ``on_interrupt`` says what happens to the Job: ``"keep"`` (the
    /// default) or ``"delete"``. When the flow container ends while classic sidecars keep its
    /// pod running, its exit code decides; ``stop_sidecars`` (default True) then deletes the
    /// Job with its pods, which would otherwise run for ever.
    #[pyo3(signature = (timeout=None, stream_logs=false, *, image_pull_grace=None, start_timeout=None,
                        failed_create_grace=None, log_file=None, on_interrupt="keep", stop_sidecars=true))]
    #[allow(clippy::too_many_arguments)]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        stream_logs: bool,
        image_pull_grace: Option<f64>,
        start_timeout: Option<f64>,
        failed_create_grace: Option<f64>,
        log_file: Option<PathBuf>,
        on_interrupt: &str,
        stop_sidecars: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut options = self.settings().wait_options(
            seconds("timeout", timeout)?,
            seconds("image_pull_grace", image_pull_grace)?,
            seconds("start_timeout", start_timeout)?,
        );
        if let Some(grace) = seconds("failed_create_grace", failed_create_grace)? {
            options.failed_create_grace = grace;
        }
        options.stop_sidecars = stop_sidecars;
        let on_interrupt: OnInterrupt = on_interrupt.parse()?;
        self.wait_with(py, options, stream_logs, log_file, on_interrupt)
    }

    /// The log of the Job's newest pod (the flow container unless ``container`` is given);
    /// ``follow=True`` returns when the container ends; ``all_attempts=True``: every pod's,
    /// oldest first, each under a header line.
    #[pyo3(signature = (follow=false, container=None, all_attempts=false))]
    fn logs(
        &self,
        py: Python<'_>,
        follow: bool,
        container: Option<String>,
        all_attempts: bool,
    ) -> PyResult<String> {
        let container = container.as_deref();
        if all_attempts {
            return blocking::run(py, self.run.logs_of_every_attempt(container, follow), None);
        }
        blocking::run(py, self.run.logs(container, follow), None)
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

    /// Cancel the Job: delete it (its pods and Secret go with it) and stop its running pods,
    /// with ``grace_period`` seconds when given. Returns ``{"deleted", "pods", "grace_period"}``.
    #[pyo3(signature = (grace_period=None))]
    fn cancel<'py>(
        &self,
        py: Python<'py>,
        grace_period: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let done = blocking::run(py, self.run.cancel(grace_period), None)?;
        Ok(pythonize(py, &done)?)
    }

    fn __repr__(&self) -> String {
        let job = &self.run.job;
        format!(
            "<JobRun {}/{} uid={} flow_run_id={}>",
            job.namespace, job.name, job.uid, job.flow_run_id
        )
    }
}
