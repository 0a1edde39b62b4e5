//! `kjenv.JobRun`: a handle on a submitted Job — wait for it, read its status, logs and
//! events, delete it.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pythonize::pythonize;
use tokio::sync::mpsc;

use super::blocking;
use crate::cluster::{self, Target};
use crate::job::inspect::{self, Propagation};
use crate::job::wait::{self, WaitOptions};
use crate::job::JobRef;
use crate::retry::Policy;

#[pyclass(name = "JobRun", module = "kjenv", frozen)]
pub struct PyJobRun {
    job: JobRef,
    target: Target,
}

impl PyJobRun {
    pub(crate) fn new(job: JobRef, target: Target) -> Self {
        PyJobRun { job, target }
    }
}

fn seconds(name: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    value
        .map(|v| {
            Duration::try_from_secs_f64(v).map_err(|_| {
                PyValueError::new_err(format!(
                    "{name} must be a non-negative number of seconds, got {v}"
                ))
            })
        })
        .transpose()
}

#[pymethods]
impl PyJobRun {
    #[getter]
    fn name(&self) -> &str {
        &self.job.name
    }

    #[getter]
    fn namespace(&self) -> &str {
        &self.job.namespace
    }

    #[getter]
    fn uid(&self) -> &str {
        &self.job.uid
    }

    #[getter]
    fn flow_run_id(&self) -> &str {
        &self.job.flow_run_id
    }

    #[getter]
    fn container(&self) -> &str {
        &self.job.flow_container
    }

    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (job, target) = (self.job.clone(), self.target.clone());
        let status = blocking::run(
            py,
            async move {
                let conn = cluster::connect(&target).await?;
                inspect::status(&conn, &job, &Policy::default()).await
            },
            None,
        )?;
        Ok(pythonize(py, &status)?)
    }

    #[pyo3(signature = (timeout=None, stream_logs=false, *, image_pull_grace=120.0, start_timeout=300.0))]
    pub(crate) fn wait(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        stream_logs: bool,
        image_pull_grace: f64,
        start_timeout: f64,
    ) -> PyResult<()> {
        let options = WaitOptions {
            timeout: seconds("timeout", timeout)?,
            image_pull_grace: seconds("image_pull_grace", Some(image_pull_grace))?
                .unwrap_or_default(),
            start_timeout: seconds("start_timeout", Some(start_timeout))?.unwrap_or_default(),
            ..WaitOptions::default()
        };
        let (tx, rx) = if stream_logs {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (job, target) = (self.job.clone(), self.target.clone());
        blocking::run(
            py,
            async move {
                let conn = cluster::connect(&target).await?;
                wait::wait(&conn, &job, &options, tx).await.map(|_| ())
            },
            rx,
        )
    }

    #[pyo3(signature = (follow=false, container=None))]
    fn logs(&self, py: Python<'_>, follow: bool, container: Option<String>) -> PyResult<String> {
        let (job, target) = (self.job.clone(), self.target.clone());
        blocking::run(
            py,
            async move {
                let conn = cluster::connect(&target).await?;
                inspect::logs(
                    &conn,
                    &job,
                    container.as_deref(),
                    follow,
                    &Policy::default(),
                )
                .await
            },
            None,
        )
    }

    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (job, target) = (self.job.clone(), self.target.clone());
        let events = blocking::run(
            py,
            async move {
                let conn = cluster::connect(&target).await?;
                inspect::events(&conn, &job, &Policy::default()).await
            },
            None,
        )?;
        Ok(pythonize(py, &events)?)
    }

    #[pyo3(signature = (propagation="Background"))]
    fn delete(&self, py: Python<'_>, propagation: &str) -> PyResult<()> {
        let propagation: Propagation = propagation.parse()?;
        let (job, target) = (self.job.clone(), self.target.clone());
        blocking::run(
            py,
            async move {
                let conn = cluster::connect(&target).await?;
                inspect::delete(&conn, &job, propagation, &Policy::default()).await
            },
            None,
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<JobRun {}/{} uid={} flow_run_id={}>",
            self.job.namespace, self.job.name, self.job.uid, self.job.flow_run_id
        )
    }
}
