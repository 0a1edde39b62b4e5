//! The job path, in one place. What the bindings gather from Python objects ([`Inputs`])
//! becomes a [`Plan`] (the Job, named once, and its Secret) without any I/O; [`submit`] posts
//! it and returns a [`JobRun`] to wait for, inspect and delete. The bindings only convert.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::cluster::{self, Connection, Target};
use crate::context::{self, Candidates, CloudSettings};
use crate::error::Result;
use crate::job::attach::{self as find, Select};
use crate::job::inspect::{self, Cancelled, EventView, JobStatus, Propagation};
use crate::job::wait::{self, Finished, WaitOptions};
use crate::job::{history, logfile, submit as post, JobRef};
use crate::naming;
use crate::secret::SecretString;
use crate::settings::Settings;
use crate::transform::{self, RenderOptions};

/// What a run is made of, as the bindings read it from the environment, its arguments, the
/// flow's storage and Prefect's context and configuration.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The checked job spec (see [`crate::spec`]).
    pub spec: Arc<Value>,
    pub identifier: String,
    pub unique_job_name: bool,
    /// The candidates of each value; `spec_namespace` and `config_namespace` are the plan's to
    /// fill (from the spec and the cluster configuration).
    pub candidates: Candidates,
    pub cloud: CloudSettings,
    /// A description of the flow's storage for the pod, when the flow is not a file in the image.
    pub storage: Option<String>,
}

/// Where the cluster configuration's default namespace comes from, when nothing earlier in the
/// resolution order gives a namespace.
#[derive(Debug, Clone)]
pub enum ConfigNamespace {
    /// Known already (a connection was made).
    Known(Option<String>),
    /// Read from the configuration of this target if needed (files only, no network).
    Lookup(Target),
}

/// The run's Secret: the auth token, for Cloud mode.
#[derive(Debug, Clone)]
pub struct PlannedSecret {
    pub name: String,
    pub token: SecretString,
}

/// Everything `execute()` posts, decided before the first request: `render()` shows `job`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The rendered Job, with its name and namespace set.
    pub job: Value,
    pub name: String,
    pub namespace: String,
    pub flow_run_id: String,
    pub secret: Option<PlannedSecret>,
    /// User fields of the flow container that were replaced (for one warning).
    pub replaced: Vec<String>,
}

/// The spec's own `metadata.namespace`, if it gives one.
fn spec_namespace(spec: &Value) -> Option<String> {
    spec.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// The candidates with the spec's namespace and, only if nothing else gives one, the
/// configuration's.
fn complete(inputs: &Inputs, config: ConfigNamespace) -> Candidates {
    let mut c = inputs.candidates.clone();
    c.spec_namespace = spec_namespace(&inputs.spec);
    let needed =
        c.namespace.is_none() && c.spec_namespace.is_none() && c.context_namespace.is_none();
    c.config_namespace = match config {
        ConfigNamespace::Known(ns) => ns,
        ConfigNamespace::Lookup(target) if needed => cluster::default_namespace(&target),
        ConfigNamespace::Lookup(_) => None,
    };
    c
}

/// Decide the run: resolve its values, render the Job (named once) and its Secret.
///
/// # Errors
/// [`crate::Error::MissingValue`] or [`crate::Error::InvalidArgument`] when a value is missing
/// or invalid (naming the value and where it came from); [`crate::Error::JobSpec`] for a Job
/// name the API server would refuse.
pub fn plan(inputs: &Inputs, config: ConfigNamespace) -> Result<Plan> {
    let candidates = complete(inputs, config);
    let values = context::resolve(&candidates, &|k| std::env::var(k).ok())?;
    let rendered = transform::render(
        &inputs.spec,
        &RenderOptions {
            identifier: &inputs.identifier,
            values: &values,
            cloud: &inputs.cloud,
            unique_job_name: inputs.unique_job_name,
            storage: inputs.storage.as_deref(),
        },
    );
    naming::check_job_name(&rendered.name).map_err(|m| crate::Error::spec("metadata.name", m))?;
    // The render names a Secret in Cloud mode only, which is the mode with a token.
    let secret = match (rendered.secret_name, &inputs.cloud.auth_token) {
        (Some(name), Some(token)) => Some(PlannedSecret {
            name,
            token: token.clone(),
        }),
        _ => None,
    };
    Ok(Plan {
        job: rendered.job,
        name: rendered.name,
        namespace: values.namespace,
        flow_run_id: values.flow_run_id,
        secret,
        replaced: rendered.replaced,
    })
}

/// Plan (exactly as [`plan`] for `render()`), connect to `target` and submit: one call, one
/// connection.
///
/// # Errors
/// As [`plan`] and [`submit`], and [`crate::Error::ClusterConfig`] when no configuration loads.
pub async fn execute(
    target: &Target,
    inputs: &Inputs,
    settings: &Settings,
    stop: impl Future<Output = ()>,
) -> Result<(JobRun, Plan)> {
    // Planned before connecting, as `render()` plans: every value is checked before the first
    // request, and the kubeconfig's namespace is read from its files (no network).
    let plan = plan(inputs, ConfigNamespace::Lookup(target.clone()))?;
    let conn = cluster::connect(target, settings.retry.attempt_timeout).await?;
    let job = post::submit(&conn, &plan, &settings.retry, stop).await?;
    Ok((JobRun::new(job, target.clone(), settings.clone()), plan))
}

/// Submit a plan on a connection: its Secret, its Job, the Secret owned by the Job (see
/// [`crate::job::submit`]). `stop` resolves when the caller gives up (Ctrl-C).
///
/// # Errors
/// See [`crate::job::submit::submit`].
pub async fn submit(
    conn: &Connection,
    target: &Target,
    plan: &Plan,
    settings: &Settings,
    stop: impl Future<Output = ()>,
) -> Result<JobRun> {
    let job = post::submit(conn, plan, &settings.retry, stop).await?;
    Ok(JobRun::new(job, target.clone(), settings.clone()))
}

/// The [`JobRun`] of an existing Job (a submitter that came back): the Job `select` names in
/// `namespace`, else in the kubeconfig's namespace.
///
/// # Errors
/// See [`crate::job::attach::find`]; [`crate::Error::ClusterConfig`] when no configuration
/// loads.
pub async fn attach(
    target: &Target,
    namespace: Option<&str>,
    select: &Select,
    settings: &Settings,
) -> Result<JobRun> {
    let conn = cluster::connect(target, settings.retry.attempt_timeout).await?;
    let namespace = namespace.unwrap_or(&conn.default_namespace).to_string();
    let job = find::find(&conn, &namespace, select, &settings.retry).await?;
    Ok(JobRun::new(job, target.clone(), settings.clone()))
}

/// What an interrupted wait (Ctrl-C) does to its Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInterrupt {
    /// Leave the Job running (the default): it can be attached to again.
    #[default]
    Keep,
    /// Cancel it ([`JobRun::cancel`]): the Job and its pods are deleted.
    Delete,
}

impl std::str::FromStr for OnInterrupt {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "keep" => Ok(OnInterrupt::Keep),
            "delete" => Ok(OnInterrupt::Delete),
            other => Err(crate::Error::InvalidArgument(format!(
                "on_interrupt must be \"keep\" or \"delete\", got {other:?}"
            ))),
        }
    }
}

/// A submitted Job, with what it takes to reach it again.
///
/// It keeps its cluster's [`Target`] rather than a client: a client lives on the runtime of
/// the thread that made it (see [`crate::runtime`]), and a `JobRun` may be used from any
/// thread. [`cluster::connect`] gives each thread its cached client for the target.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub job: JobRef,
    target: Target,
    settings: Settings,
}

impl JobRun {
    pub fn new(job: JobRef, target: Target, settings: Settings) -> JobRun {
        JobRun {
            job,
            target,
            settings,
        }
    }

    /// The settings this run's requests and waits use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn connection(&self) -> Result<Connection> {
        cluster::connect(&self.target, self.settings.retry.attempt_timeout).await
    }

    /// Wait for the Job to finish; lines of the flow container's log go to `logs` as they come.
    ///
    /// # Errors
    /// See [`crate::job::wait::wait`].
    pub async fn wait(
        &self,
        options: &WaitOptions,
        logs: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<Finished> {
        wait::wait(&self.connection().await?, &self.job, options, logs).await
    }

    /// [`JobRun::wait`], keeping every log line the wait reads in `log_file` too (created or
    /// truncated before the wait starts; a write that fails later is a warning, not a failure).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] when the file cannot be created; see
    /// [`crate::job::wait::wait`].
    pub async fn wait_keeping_log(
        &self,
        options: &WaitOptions,
        logs: Option<mpsc::UnboundedSender<String>>,
        log_file: &std::path::Path,
    ) -> Result<Finished> {
        let file = logfile::create(log_file)?;
        let shown = crate::spec::names::shown_path(log_file);
        let conn = self.connection().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = wait::wait(&conn, &self.job, options, Some(tx));
        let (finished, ()) = tokio::join!(waiting, logfile::copy(rx, file, shown, logs));
        finished
    }

    /// The Job's status, its pods and its last event.
    ///
    /// # Errors
    /// [`crate::Error::KubeApi`] or [`crate::Error::Unreachable`].
    pub async fn status(&self) -> Result<JobStatus> {
        inspect::status(&self.connection().await?, &self.job, &self.settings.retry).await
    }

    /// The log of a container (the flow container by default) of the Job's newest pod.
    ///
    /// # Errors
    /// See [`crate::job::inspect::logs`].
    pub async fn logs(&self, container: Option<&str>, follow: bool) -> Result<String> {
        let conn = self.connection().await?;
        inspect::logs(&conn, &self.job, container, follow, &self.settings.retry).await
    }

    /// Every attempt's log: each pod oldest first, with the container's instance before its
    /// last restart, each under a header line.
    ///
    /// # Errors
    /// See [`crate::job::history::every_attempt`].
    pub async fn logs_of_every_attempt(
        &self,
        container: Option<&str>,
        follow: bool,
    ) -> Result<String> {
        let conn = self.connection().await?;
        history::every_attempt(&conn, &self.job, container, follow, &self.settings.retry).await
    }

    /// Events of the Job and its pods, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::KubeApi`] or [`crate::Error::Unreachable`].
    pub async fn events(&self) -> Result<Vec<EventView>> {
        inspect::events(&self.connection().await?, &self.job, &self.settings.retry).await
    }

    /// Cancel the Job: delete it and stop its pods (see [`crate::job::inspect::cancel`]).
    ///
    /// # Errors
    /// See [`crate::job::inspect::cancel`].
    pub async fn cancel(&self, grace_period: Option<i64>) -> Result<Cancelled> {
        let conn = self.connection().await?;
        inspect::cancel(&conn, &self.job, grace_period, &self.settings.retry).await
    }

    /// Act on an interrupted wait as `choice` says; the one line that says what was done.
    pub async fn interrupted(&self, choice: OnInterrupt) -> String {
        let job = &self.job;
        let what = format!(
            "the wait for job {}/{} was interrupted",
            job.namespace, job.name
        );
        match choice {
            OnInterrupt::Keep => format!(
                "{what}; the job keeps running (on interrupt: keep): attach to it again with \
                 `kjenv attach {} -n {}`, stop it with `kjenv delete {} -n {}`",
                job.name, job.namespace, job.name, job.namespace
            ),
            OnInterrupt::Delete => match self.cancel(None).await {
                Ok(done) => format!("{what}; {} (on interrupt: delete)", done.describe()),
                Err(e) => format!("{what}; deleting the job failed, it may still run: {e}"),
            },
        }
    }

    /// Delete the Job with its pods and Secret; a Job already gone is no error.
    ///
    /// # Errors
    /// [`crate::Error::KubeApi`] or [`crate::Error::Unreachable`].
    pub async fn delete(&self, propagation: Propagation) -> Result<()> {
        let conn = self.connection().await?;
        inspect::delete(&conn, &self.job, propagation, &self.settings.retry).await
    }
}
