//! One pod's worker: binds it to the node, waits for a concurrency slot, runs its init
//! containers in order (a native sidecar, `restartPolicy: Always`, is started and kept
//! running) and then its containers, restarts them under `OnFailure`, stops the sidecars once
//! the containers ended, stops everything on delete, and writes `Pod.status` after every
//! change.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use super::api::{Gone, NodeApi};
use super::env;
use super::process::{ContainerKey, ExitInfo, ProcSpec, Processes, Started};
use super::status::{self, Ctr, State, Terminated};
use super::{Signal, SIMULATE_ANNOTATION};
use crate::meta::rfc3339;
use crate::store::meta_str;

/// How long `CreateContainerConfigError` waits before looking for the Secret/ConfigMap again.
const CONFIG_RETRY: Duration = Duration::from_secs(1);
/// How long after its start a `oom-killed` simulation kills the container.
const OOM_AFTER: Duration = Duration::from_millis(300);
/// How long, after SIGKILL, a process may take to be reported dead before we give up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The parent environment variables a container process inherits (everything else comes
/// from the pod spec): the locale, temp dir and Python paths, so that a `python` found
/// through the cluster's `PATH` prefix works as it does in the shell that started it.
const PASSTHROUGH_ENV: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Why the worker stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// Deleted through the API with this grace period.
    Delete(i64),
    /// Gone from the store.
    Gone,
}

/// A container position: init container or container, and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Slot {
    init: bool,
    idx: usize,
}

/// A running process of a container.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    attempt: u64,
    started_at: chrono::DateTime<Utc>,
    oom: bool,
}

/// An exit report from a process's waiter task.
#[derive(Debug)]
struct Exit {
    slot: Slot,
    attempt: u64,
    info: ExitInfo,
}

/// The deadlines of stopping a pod's containers: SIGKILL at `soft`; once sent, `hard` is
/// when the worker gives up waiting.
#[derive(Debug, Clone, Copy)]
struct Stop {
    soft: Instant,
    hard: Option<Instant>,
}

/// A timer of a container: restart (after a crash) or retry (after a config error).
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    restart: bool,
}

/// The worker of one pod.
pub(super) struct Worker {
    api: Arc<dyn NodeApi>,
    procs: Arc<Processes>,
    slots: Arc<Semaphore>,
    pod: Value,
    ns: String,
    name: String,
    uid: String,
    signal: watch::Receiver<Signal>,
    policy: String,
    simulate: String,
    init_specs: Vec<Value>,
    specs: Vec<Value>,
    init: Vec<Ctr>,
    ctrs: Vec<Ctr>,
    running: HashMap<Slot, Proc>,
    due: HashMap<Slot, Due>,
    attempts: u64,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits_rx: mpsc::UnboundedReceiver<Exit>,
    bound: bool,
    started: bool,
    stopping: bool,
    conditions: Value,
    start_time: String,
    /// The status last written, so an unchanged one is not sent again (a round trip to a
    /// remote API server).
    written: Option<Value>,
}

async fn next_interrupt(signal: &mut watch::Receiver<Signal>) -> Interrupt {
    loop {
        match *signal.borrow_and_update() {
            Signal::Run => {}
            Signal::Delete { grace } => return Interrupt::Delete(grace),
            Signal::Gone => return Interrupt::Gone,
        }
        if signal.changed().await.is_err() {
            return Interrupt::Gone;
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Worker {
    /// A worker for `pod` (as stored), steered by `signal`.
    pub(super) fn new(
        api: Arc<dyn NodeApi>,
        procs: Arc<Processes>,
        slots: Arc<Semaphore>,
        pod: Value,
        signal: watch::Receiver<Signal>,
    ) -> Self {
        let spec = &pod["spec"];
        let list = |k: &str| spec[k].as_array().cloned().unwrap_or_default();
        let init_specs = list("initContainers");
        let specs = list("containers");
        let ctr = |c: &Value, init: bool, reason: &str| {
            Ctr::new(
                c["name"].as_str().unwrap_or(""),
                c["image"].as_str().unwrap_or(""),
                init,
                reason,
            )
        };
        let main_reason = if init_specs.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let init = init_specs
            .iter()
            .map(|c| Ctr {
                restartable: c["restartPolicy"] == "Always",
                ..ctr(c, true, "PodInitializing")
            })
            .collect();
        let ctrs = specs.iter().map(|c| ctr(c, false, main_reason)).collect();
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        Worker {
            ns: meta_str(&pod, "namespace").to_owned(),
            name: meta_str(&pod, "name").to_owned(),
            uid: meta_str(&pod, "uid").to_owned(),
            policy: spec["restartPolicy"]
                .as_str()
                .unwrap_or("Always")
                .to_owned(),
            simulate: pod["metadata"]["annotations"][SIMULATE_ANNOTATION]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            bound: spec["nodeName"].as_str().is_some_and(|n| !n.is_empty()),
            conditions: pod["status"]["conditions"].clone(),
            // Set once per pod, by whichever kubelet first saw it.
            start_time: pod["status"]["startTime"]
                .as_str()
                .map_or_else(|| rfc3339(Utc::now()), str::to_owned),
            api,
            procs,
            slots,
            pod,
            signal,
            init_specs,
            specs,
            init,
            ctrs,
            running: HashMap::new(),
            due: HashMap::new(),
            attempts: 0,
            exits_tx,
            exits_rx,
            started: false,
            stopping: false,
            written: None,
        }
    }

    /// Runs the pod to its end (or until it is deleted / gone).
    pub(super) async fn run(mut self) {
        let outcome = self.lifecycle().await;
        if let Err(Interrupt::Delete(grace)) = outcome {
            if self.bound {
                self.terminate(grace).await;
                self.api.finish_deletion(&self.pod).await;
            }
        }
        for p in self.running.values() {
            self.procs.signal(p.pid, libc::SIGKILL);
        }
    }

    async fn lifecycle(&mut self) -> Result<(), Interrupt> {
        self.schedule().await?;
        if self.ran_before() {
            return self.lost().await;
        }
        self.write(false).await?;
        if let Some(i) = self.pending_interrupt() {
            return Err(i);
        }
        match self.simulate.as_str() {
            "image-pull-error" => return self.simulate_pull_error().await,
            "create-error" => return self.simulate_create_error().await,
            _ => {}
        }
        let _permit = tokio::select! {
            p = self.slots.clone().acquire_owned() => p.ok(),
            i = next_interrupt(&mut self.signal) => return Err(i),
        };
        self.started = true;
        for idx in 0..self.init.len() {
            let slot = Slot { init: true, idx };
            if self.init[idx].restartable {
                self.start_sidecar(slot).await?;
                continue;
            }
            if !self.run_set(&[slot]).await? {
                // Never: a failed init container fails the pod.
                return self.finish().await;
            }
        }
        for c in &mut self.ctrs {
            c.state = State::waiting("ContainerCreating", None);
        }
        let all: Vec<Slot> = (0..self.ctrs.len())
            .map(|idx| Slot { init: false, idx })
            .collect();
        self.run_set(&all).await?;
        self.finish().await
    }

    /// Nothing will run again: the sidecars are stopped (as on delete, with the pod's grace
    /// period) and the final status written.
    async fn finish(&mut self) -> Result<(), Interrupt> {
        if !self.running.is_empty() {
            let grace = self.pod["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30);
            self.stop_all(grace).await;
        }
        self.write(true).await
    }

    fn pending_interrupt(&mut self) -> Option<Interrupt> {
        match *self.signal.borrow() {
            Signal::Run => None,
            Signal::Delete { grace } => Some(Interrupt::Delete(grace)),
            Signal::Gone => Some(Interrupt::Gone),
        }
    }

    // ---- scheduling -------------------------------------------------------------------

    /// Binds the pod to the node, or — for `unschedulable` — reports it unschedulable and
    /// waits for its deletion.
    async fn schedule(&mut self) -> Result<(), Interrupt> {
        if self.bound {
            return Ok(());
        }
        let scheduler = self.pod["spec"]["schedulerName"]
            .as_str()
            .unwrap_or("default-scheduler");
        if scheduler != "default-scheduler" {
            // Another scheduler's pod: the emulator's scheduler never binds it (it stays
            // Pending, as on a cluster where that scheduler does not run).
            return Err(next_interrupt(&mut self.signal).await);
        }
        let reason = if self.simulate == "unschedulable" {
            Some("were unschedulable")
        } else if !node_selector_fits(&self.pod["spec"]["nodeSelector"]) {
            Some("didn't match Pod's node affinity/selector")
        } else {
            None
        };
        if let Some(reason) = reason {
            let msg = format!("0/1 nodes are available: 1 node(s) {reason}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.");
            self.api.unschedulable(&self.pod, &msg).await;
            return Err(next_interrupt(&mut self.signal).await);
        }
        let pod = self
            .api
            .bind(&self.pod)
            .await
            .map_err(|_| Interrupt::Gone)?;
        self.bound = true;
        self.conditions = pod["status"]["conditions"].clone();
        self.pod = pod;
        Ok(())
    }

    // ---- simulations ------------------------------------------------------------------

    /// The containers a pull/create simulation applies to: the first init container if
    /// there is one (the others never get there), else every container.
    fn simulated_slots(&self) -> Vec<Slot> {
        if self.init.is_empty() {
            (0..self.ctrs.len())
                .map(|idx| Slot { init: false, idx })
                .collect()
        } else {
            vec![Slot { init: true, idx: 0 }]
        }
    }

    async fn simulate_pull_error(&mut self) -> Result<(), Interrupt> {
        let slots = self.simulated_slots();
        for &s in &slots {
            let image = self.ctr(s).image.clone();
            let msg = format!(
                "failed to pull and unpack image \"{image}\": simulated pull failure ({SIMULATE_ANNOTATION}: image-pull-error)"
            );
            self.event(
                s,
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image}\""),
            );
            self.event(
                s,
                "Warning",
                "Failed",
                &format!("Failed to pull image \"{image}\": {msg}"),
            );
            self.event(s, "Warning", "Failed", "Error: ErrImagePull");
            self.ctr(s).state = State::waiting("ErrImagePull", Some(msg));
        }
        self.write(false).await?;
        let backoff = self.api.config().backoff_base.min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            i = next_interrupt(&mut self.signal) => return Err(i),
        }
        for &s in &slots {
            let image = self.ctr(s).image.clone();
            let msg = format!("Back-off pulling image \"{image}\"");
            self.event(s, "Normal", "BackOff", &msg);
            self.event(s, "Warning", "Failed", "Error: ImagePullBackOff");
            self.ctr(s).state = State::waiting("ImagePullBackOff", Some(msg));
        }
        self.write(false).await?;
        Err(next_interrupt(&mut self.signal).await)
    }

    async fn simulate_create_error(&mut self) -> Result<(), Interrupt> {
        let msg = format!(
            "failed to create containerd container: simulated create failure ({SIMULATE_ANNOTATION}: create-error)"
        );
        for s in self.simulated_slots() {
            self.event(s, "Warning", "Failed", &format!("Error: {msg}"));
            self.ctr(s).state = State::waiting("CreateContainerError", Some(msg.clone()));
        }
        self.write(false).await?;
        Err(next_interrupt(&mut self.signal).await)
    }

    // ---- running containers -----------------------------------------------------------

    fn is_sidecar(&self, s: Slot) -> bool {
        s.init && self.init[s.idx].restartable
    }

    fn ctr(&mut self, s: Slot) -> &mut Ctr {
        if s.init {
            &mut self.init[s.idx]
        } else {
            &mut self.ctrs[s.idx]
        }
    }

    fn spec(&self, s: Slot) -> &Value {
        if s.init {
            &self.init_specs[s.idx]
        } else {
            &self.specs[s.idx]
        }
    }

    fn field_path(&self, s: Slot) -> String {
        let name = self.spec(s)["name"].as_str().unwrap_or("");
        if s.init {
            format!("spec.initContainers{{{name}}}")
        } else {
            format!("spec.containers{{{name}}}")
        }
    }

    fn event(&self, s: Slot, type_: &str, reason: &str, message: &str) {
        let fp = self.field_path(s);
        self.api.event(&self.pod, Some(&fp), type_, reason, message);
    }

    /// Starts the given containers together and runs them until each has terminated for
    /// good (the sidecars started before keep running). `Ok(true)` when all exited 0.
    async fn run_set(&mut self, set: &[Slot]) -> Result<bool, Interrupt> {
        for &s in set {
            self.start(s).await;
        }
        self.write(false).await?;
        self.drive(|w| set.iter().all(|&s| w.settled(s))).await?;
        Ok(set
            .iter()
            .all(|&s| w_ctr(&self.init, &self.ctrs, s).succeeded()))
    }

    /// Starts a native sidecar and runs the pod until it has started (it runs: without
    /// probes, that is started), so that the next init container may start.
    async fn start_sidecar(&mut self, s: Slot) -> Result<(), Interrupt> {
        self.start(s).await;
        self.write(false).await?;
        self.drive(|w| w_ctr(&w.init, &w.ctrs, s).is_running())
            .await
    }

    /// Has this container terminated for good (no restart or retry due)?
    fn settled(&self, s: Slot) -> bool {
        !self.due.contains_key(&s)
            && !self.running.contains_key(&s)
            && matches!(w_ctr(&self.init, &self.ctrs, s).state, State::Terminated(_))
    }

    /// Handles exits, restarts and retries of every container (a set's and the sidecars')
    /// until `done`, writing the status after each change.
    async fn drive(&mut self, done: impl Fn(&Self) -> bool) -> Result<(), Interrupt> {
        loop {
            if done(self) {
                return Ok(());
            }
            let next_due = self.due.values().map(|d| d.at).min();
            tokio::select! {
                exit = self.exits_rx.recv() => {
                    if let Some(exit) = exit {
                        self.on_exit(exit);
                    }
                    self.write(false).await?;
                }
                i = next_interrupt(&mut self.signal) => return Err(i),
                _ = sleep_until_opt(next_due) => {
                    self.fire_due().await;
                    self.write(false).await?;
                }
            }
        }
    }

    /// Restarts (after a crash back-off) and retries (after a config error) that are due.
    async fn fire_due(&mut self) {
        let now = Instant::now();
        let mut fire: Vec<(Slot, Due)> = self
            .due
            .iter()
            .filter(|(_, d)| d.at <= now)
            .map(|(s, d)| (*s, *d))
            .collect();
        fire.sort_by_key(|(s, _)| (!s.init, s.idx));
        for (s, d) in fire {
            self.due.remove(&s);
            if d.restart {
                self.ctr(s).restart_count += 1;
            }
            self.start(s).await;
        }
    }

    /// The environment every container starts from (before the pod spec's `env`).
    async fn base_env(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut path: Vec<String> = self
            .api
            .config()
            .path_prefix
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        path.push(std::env::var("PATH").unwrap_or_else(|_| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        }));
        out.push(("PATH".to_owned(), path.join(":")));
        for k in PASSTHROUGH_ENV {
            if let Ok(v) = std::env::var(k) {
                out.push(((*k).to_owned(), v));
            }
        }
        if !out.iter().any(|(k, _)| k == "HOME") {
            out.push(("HOME".into(), "/root".into()));
        }
        out.push(("HOSTNAME".into(), self.name.clone()));
        out.extend(self.api.pod_env(&self.pod).await);
        out
    }

    /// The working directory: `workingDir`, else a per-pod directory in the cluster's
    /// work directory.
    fn cwd(&self, spec: &Value) -> PathBuf {
        if let Some(dir) = spec["workingDir"].as_str().filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let dir = self.api.config().pod_dir(&self.ns, &self.name);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// Tries to start one container; records the outcome in its state.
    async fn start(&mut self, s: Slot) {
        let spec = self.spec(s).clone();
        let name = spec["name"].as_str().unwrap_or("").to_owned();
        let image = spec["image"].as_str().unwrap_or("").to_owned();
        let now = Utc::now();
        let container_env = match self.container_env(&spec).await {
            Ok(e) => e,
            Err(msg) => return self.config_error(s, msg),
        };
        let command = strings(&spec["command"]);
        if command.is_empty() {
            let msg = format!(
                "the local cluster runs containers as local processes and does not pull images, so it cannot use the entrypoint of image \"{image}\": container \"{name}\" needs an explicit command"
            );
            self.event(s, "Warning", "Failed", &format!("Error: {msg}"));
            self.start_failed(s, now, msg);
            return;
        }
        let mut full_env = self.base_env().await;
        for (k, v) in container_env {
            full_env.retain(|(ek, _)| *ek != k);
            full_env.push((k, v));
        }
        let argv = expanded_argv(command, strings(&spec["args"]), &full_env);
        self.pull_events(s, &spec, &image);
        let created = format!("Created container: {name}");
        self.event(s, "Normal", "Created", &created);
        let log = self.api.logs().open(&self.ns, &self.name, &name);
        let proc_spec = ProcSpec {
            argv,
            env: full_env,
            cwd: self.cwd(&spec),
            container: Some(ContainerKey::new(&self.ns, &self.name, &name)),
        };
        match self.procs.spawn(proc_spec, log.clone()).await {
            Err(msg) => {
                log.finish();
                self.event(s, "Warning", "Failed", &format!("Error: {msg}"));
                self.start_failed(s, now, msg);
            }
            Ok(started) => self.note_started(s, &name, now, started),
        }
    }

    /// `CreateContainerConfigError` (a missing Secret or ConfigMap key): retried later.
    fn config_error(&mut self, s: Slot, msg: String) {
        self.event(s, "Warning", "Failed", &format!("Error: {msg}"));
        self.ctr(s).state = State::waiting("CreateContainerConfigError", Some(msg));
        let due = Due {
            at: Instant::now() + CONFIG_RETRY,
            restart: false,
        };
        self.due.insert(s, due);
    }

    /// A container process runs: its state, its exit reported to the worker, and the
    /// `oom-killed` simulation's kill.
    fn note_started(&mut self, s: Slot, name: &str, now: DateTime<Utc>, started: Started) {
        self.attempts += 1;
        let attempt = self.attempts;
        let oom = self.simulate == "oom-killed";
        let pid = started.pid;
        let proc = Proc {
            pid,
            attempt,
            started_at: now,
            oom,
        };
        self.running.insert(s, proc);
        let c = self.ctr(s);
        c.state = State::Running { started_at: now };
        c.container_id = format!("local://{pid}");
        self.event(s, "Normal", "Started", &format!("Started container {name}"));
        let tx = self.exits_tx.clone();
        let exit = started.exit;
        tokio::spawn(async move {
            let info = exit.await.unwrap_or(ExitInfo {
                exit_code: 137,
                signal: Some(libc::SIGKILL),
            });
            let _ = tx.send(Exit {
                slot: s,
                attempt,
                info,
            });
        });
        if oom {
            let procs = self.procs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(OOM_AFTER).await;
                procs.signal(pid, libc::SIGKILL);
            });
        }
    }

    fn pull_events(&self, s: Slot, spec: &Value, image: &str) {
        let policy = spec["imagePullPolicy"].as_str().unwrap_or_else(|| {
            let tag = image.rsplit('/').next().unwrap_or(image);
            if !tag.contains(':') || tag.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            }
        });
        if policy == "Always" {
            self.event(
                s,
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image}\""),
            );
            self.event(
                s,
                "Normal",
                "Pulled",
                &format!("Successfully pulled image \"{image}\" in 0s (0s including waiting). Image size: 0 bytes."),
            );
        } else {
            self.event(
                s,
                "Normal",
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
        }
    }

    /// The container could not start: terminated `StartError`, exit 128.
    fn start_failed(&mut self, s: Slot, at: chrono::DateTime<Utc>, msg: String) {
        let t = Terminated {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: Some(msg),
            started_at: at,
            finished_at: Utc::now(),
            container_id: String::new(),
        };
        self.terminated(s, t);
    }

    fn on_exit(&mut self, exit: Exit) {
        let Some(p) = self.running.get(&exit.slot).cloned() else {
            return;
        };
        if p.attempt != exit.attempt {
            return;
        }
        self.running.remove(&exit.slot);
        let container_id = self.ctr(exit.slot).container_id.clone();
        let mut t = Terminated::from_exit(
            exit.info.exit_code,
            exit.info.signal,
            p.started_at,
            &container_id,
        );
        if p.oom {
            t.exit_code = 137;
            t.signal = None;
            t.reason = "OOMKilled".into();
        }
        self.terminated(exit.slot, t);
    }

    /// Records a terminated attempt; under `OnFailure` a failure schedules a restart
    /// (`CrashLoopBackOff` until then).
    fn terminated(&mut self, s: Slot, t: Terminated) {
        let failed = t.exit_code != 0;
        // Init containers restart only on failure, whatever the policy (unless Never); a
        // sidecar always does, whatever the pod's policy.
        let restart = match self.policy.as_str() {
            _ if self.is_sidecar(s) => true,
            "Always" => failed || !s.init,
            "OnFailure" => failed,
            _ => false,
        };
        if restart && !self.stopping {
            let restarts = self.ctr(s).restart_count.clamp(0, 20) as u32;
            let opts = self.api.config();
            let backoff = opts
                .backoff_base
                .saturating_mul(1u32 << restarts.min(16))
                .min(opts.backoff_max);
            let (ns, pod, uid) = (self.ns.clone(), self.name.clone(), self.uid.clone());
            let c = self.ctr(s);
            let name = c.name.clone();
            c.last_state = Some(t);
            c.state = State::waiting(
                "CrashLoopBackOff",
                Some(format!(
                    "back-off {}s restarting failed container={name} pod={pod}_{ns}({uid})",
                    backoff.as_secs()
                )),
            );
            self.due.insert(
                s,
                Due {
                    at: Instant::now() + backoff,
                    restart: true,
                },
            );
            self.event(
                s,
                "Warning",
                "BackOff",
                &format!("Back-off restarting failed container {name} in pod {pod}_{ns}({uid})"),
            );
        } else {
            self.ctr(s).state = State::Terminated(t);
        }
    }

    // ---- stopping ---------------------------------------------------------------------

    /// Deleted through the API: everything stopped ([`Worker::stop_all`]), then the final
    /// status written (which lets the store remove the pod).
    async fn terminate(&mut self, grace: i64) {
        self.stop_all(grace).await;
        self.unknown_remaining("The container could not be located when the pod was terminated");
        let _ = self.write(true).await;
    }

    /// The order in which running containers are stopped: the containers (and a running
    /// init container) together, then each sidecar, the last one first.
    fn stop_order(&self) -> Vec<Vec<Slot>> {
        let mut running: Vec<Slot> = self.running.keys().copied().collect();
        running.sort_by_key(|s| (s.init, std::cmp::Reverse(s.idx)));
        let (sidecars, others): (Vec<Slot>, Vec<Slot>) =
            running.into_iter().partition(|s| self.is_sidecar(*s));
        std::iter::once(others)
            .chain(sidecars.into_iter().map(|s| vec![s]))
            .filter(|g| !g.is_empty())
            .collect()
    }

    /// SIGTERM to each group of [`Worker::stop_order`] once the one before has exited, SIGKILL
    /// to all that still run `grace` seconds after the start (a second delete with a shorter
    /// grace period shortens it, as a kubelet does); nothing restarts meanwhile.
    async fn stop_all(&mut self, grace: i64) {
        self.stopping = true;
        self.due.clear();
        let started = Instant::now();
        let soft_at = |grace: i64| started + Duration::from_secs(grace.clamp(0, 86_400) as u64);
        let mut stop = Stop {
            soft: soft_at(grace),
            hard: None,
        };
        for group in self.stop_order() {
            let signal = if stop.hard.is_some() {
                libc::SIGKILL
            } else {
                libc::SIGTERM
            };
            for &s in &group {
                let name = self.ctr(s).name.clone();
                let msg = format!("Stopping container {name}");
                self.event(s, "Normal", "Killing", &msg);
                if let Some(p) = self.running.get(&s) {
                    self.procs.signal(p.pid, signal);
                }
            }
            if !self.await_exits(&group, &mut stop, soft_at).await {
                return;
            }
        }
    }

    /// Waits until no container of `group` runs: `false` when SIGKILL was not enough (the
    /// worker gives up on the processes).
    async fn await_exits(
        &mut self,
        group: &[Slot],
        stop: &mut Stop,
        soft_at: impl Fn(i64) -> Instant,
    ) -> bool {
        while group.iter().any(|s| self.running.contains_key(s)) {
            let deadline = stop.hard.unwrap_or(stop.soft);
            let exit = tokio::select! {
                exit = tokio::time::timeout_at(deadline, self.exits_rx.recv()) => exit,
                Ok(()) = self.signal.changed(), if stop.hard.is_none() => {
                    if let Signal::Delete { grace } = *self.signal.borrow_and_update() {
                        stop.soft = stop.soft.min(soft_at(grace));
                    }
                    continue;
                }
            };
            match exit {
                Ok(Some(exit)) => self.on_exit(exit),
                Ok(None) => return false,
                Err(_) if stop.hard.is_none() => {
                    for p in self.running.values() {
                        self.procs.signal(p.pid, libc::SIGKILL);
                    }
                    stop.hard = Some(Instant::now() + KILL_WAIT);
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Every container not terminated yet becomes terminated `ContainerStatusUnknown` (137).
    fn unknown_remaining(&mut self, message: &str) {
        let now = Utc::now();
        for c in self.init.iter_mut().chain(self.ctrs.iter_mut()) {
            if !matches!(c.state, State::Terminated(_)) {
                c.state = State::Terminated(Terminated {
                    exit_code: 137,
                    signal: None,
                    reason: "ContainerStatusUnknown".into(),
                    message: Some(message.into()),
                    started_at: now,
                    finished_at: now,
                    container_id: String::new(),
                });
            }
        }
    }

    /// Did containers of this pod run before this worker (a kubelet that restarted)? Their
    /// processes died with that kubelet.
    fn ran_before(&self) -> bool {
        ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|l| self.pod["status"][*l].as_array().into_iter().flatten())
            .any(|c| {
                !c["state"]["running"].is_null()
                    || !c["state"]["terminated"].is_null()
                    || !c["lastState"]["terminated"].is_null()
            })
    }

    /// The containers were lost with a previous kubelet: the pod fails (its controller
    /// replaces it) rather than running its commands a second time.
    async fn lost(&mut self) -> Result<(), Interrupt> {
        self.started = true;
        self.unknown_remaining("The container could not be located when the kubelet restarted");
        self.write(true).await
    }

    // ---- status -----------------------------------------------------------------------

    /// Writes `Pod.status` from the model (`finished`: nothing will restart any more).
    async fn write(&mut self, finished: bool) -> Result<(), Interrupt> {
        if self.procs.stopping() {
            // The kubelet is shutting down and killing containers: a node going away, not
            // containers failing. Reporting the kills would fail the pod and its Job (exit
            // 137) for whoever still watches; write nothing, as a stopped kubelet does.
            return Err(Interrupt::Gone);
        }
        let phase = status::phase(&self.policy, &self.init, &self.ctrs, finished);
        let conditions = status::conditions(
            &self.init,
            &self.ctrs,
            phase,
            self.started,
            &self.conditions,
        );
        self.conditions = conditions.clone();
        let mut st = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "qosClass": crate::resources::qos_class(&self.pod["spec"]),
            "containerStatuses": self.ctrs.iter().map(Ctr::to_json).collect::<Vec<_>>(),
        });
        if !self.init.is_empty() {
            st["initContainerStatuses"] =
                json!(self.init.iter().map(Ctr::to_json).collect::<Vec<_>>());
        }
        if self.written.as_ref() == Some(&st) {
            return Ok(());
        }
        let meta = self
            .api
            .write_status(&self.pod, st.clone())
            .await
            .map_err(|Gone| Interrupt::Gone)?;
        self.pod["metadata"] = meta;
        self.written = Some(st);
        Ok(())
    }

    /// The container's `env`/`envFrom`, with the Secrets and ConfigMaps read from the API.
    async fn container_env(&self, spec: &Value) -> Result<env::Env, String> {
        let mut objects = env::Objects::new();
        for (kind, name) in env::references(spec) {
            let obj = self.api.read(kind, &self.ns, &name).await?;
            objects.insert((kind, name), obj);
        }
        env::resolve(&objects, &self.pod, spec)
    }
}

/// The strings of a JSON array (`command`, `args`); others are skipped.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `command` + `args` with `$(VAR)` expanded from the container's environment.
fn expanded_argv(command: Vec<String>, args: Vec<String>, env: &[(String, String)]) -> Vec<String> {
    let lookup = |n: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    command
        .into_iter()
        .chain(args)
        .map(|a| env::expand(&a, &lookup))
        .collect()
}

/// The container at `s` among a pod's init containers and containers.
fn w_ctr<'a>(init: &'a [Ctr], ctrs: &'a [Ctr], s: Slot) -> &'a Ctr {
    if s.init {
        &init[s.idx]
    } else {
        &ctrs[s.idx]
    }
}

/// Whether the emulator's one node has every label of a pod's `spec.nodeSelector` (its
/// well-known labels: `kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`).
fn node_selector_fits(selector: &Value) -> bool {
    let Some(sel) = selector.as_object() else {
        return true;
    };
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    sel.iter().all(|(k, v)| {
        let have = match k.as_str() {
            "kubernetes.io/hostname" => crate::events::NODE_NAME,
            "kubernetes.io/os" | "beta.kubernetes.io/os" => "linux",
            "kubernetes.io/arch" | "beta.kubernetes.io/arch" => arch.as_str(),
            _ => return false,
        };
        v.as_str() == Some(have)
    })
}
