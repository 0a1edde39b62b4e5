//! Container processes: spawning (each in its own process group, from one long-lived thread
//! so `PR_SET_PDEATHSIG` is safe), pumping stdout/stderr into the log store, signalling whole
//! groups, and killing everything at shutdown; a [`Watchdog`] kills the groups if this
//! process dies without a shutdown. Running containers are recorded with their environment
//! and working directory, so `exec` can start a process in one of them ([`super::exec`]).

use std::collections::{HashMap, HashSet};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

use super::watchdog::Watchdog;
use crate::logs::ContainerLog;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// Program and arguments (already `$(VAR)`-expanded).
    pub argv: Vec<String>,
    /// The complete environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The container this process is (`exec` finds it under this key while it runs).
    pub container: Option<ContainerKey>,
}

/// A container of a pod: namespace, pod name, container name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerKey {
    /// The pod's namespace.
    pub ns: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
}

impl ContainerKey {
    /// The key of container `container` of pod `ns/pod`.
    pub fn new(ns: &str, pod: &str, container: &str) -> Self {
        ContainerKey {
            ns: ns.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        }
    }
}

/// A running container as `exec` needs it: its process group and the environment and
/// working directory its process was started with.
#[derive(Debug, Clone)]
pub struct Running {
    /// The container's process group (its leader's pid).
    pub pgid: i32,
    /// The container's complete environment.
    pub env: Vec<(String, String)>,
    /// The container's working directory.
    pub cwd: PathBuf,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, or 128 + signal when killed by a signal (as container runtimes report).
    pub exit_code: i32,
    /// The killing signal, if any.
    pub signal: Option<i32>,
}

/// A started process: its pid (= its process group id) and a receiver for its exit, sent
/// once the process has exited, its group was killed and its output was drained.
#[derive(Debug)]
pub struct Started {
    /// Pid of the group leader, also the process group id.
    pub pid: i32,
    /// Resolves with the exit.
    pub exit: oneshot::Receiver<ExitInfo>,
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug, Default)]
struct Groups {
    stopping: bool,
    live: HashSet<i32>,
    running: HashMap<ContainerKey, Running>,
}

/// Every process group the kubelet started and still considers alive.
#[derive(Debug)]
pub struct Processes {
    groups: Mutex<Groups>,
    spawner: Mutex<Option<mpsc::Sender<Job>>>,
    watchdog: Mutex<Option<Watchdog>>,
}

impl Processes {
    /// Starts the spawner thread; spawned processes are registered with `handle`'s runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Arc<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("localcluster-spawner".into())
            .spawn(move || {
                // tokio's child reaping and pipe registration need a runtime context.
                let _guard = handle.enter();
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        Arc::new(Processes {
            groups: Mutex::new(Groups::default()),
            spawner: Mutex::new(thread.ok().map(|_| tx)),
            watchdog: Mutex::new(Watchdog::start()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watchdog(&self) -> MutexGuard<'_, Option<Watchdog>> {
        self.watchdog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether [`Processes::shutdown`] has begun: what its kills end is not a container's
    /// outcome, and must not be reported as one.
    pub fn stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Starts a process in a new process group, its stdout and stderr merged line by line
    /// into `log` (finished when the process is gone).
    ///
    /// # Errors
    ///
    /// A message for a `StartError` (program not found, not executable, bad working
    /// directory, cluster stopping).
    pub async fn spawn(
        self: &Arc<Self>,
        spec: ProcSpec,
        log: Arc<ContainerLog>,
    ) -> Result<Started, String> {
        let container = spec.container.clone();
        let record = container
            .as_ref()
            .map(|_| (spec.env.clone(), spec.cwd.clone()));
        let (reply_tx, reply_rx) = oneshot::channel();
        let me = self.clone();
        let job: Job = Box::new(move || {
            let _ = reply_tx.send(me.spawn_here(&spec));
        });
        let sent = {
            let spawner = self.spawner.lock().unwrap_or_else(|e| e.into_inner());
            spawner.as_ref().map(|tx| tx.send(job).is_ok())
        };
        if sent != Some(true) {
            return Err("the local cluster is stopping".into());
        }
        let mut child = reply_rx
            .await
            .map_err(|_| "the local cluster is stopping".to_owned())??;
        let pid = child.id().map_or(-1, |p| p as i32);
        if let (Some(key), Some((env, cwd))) = (container.clone(), record) {
            let running = Running {
                pgid: pid,
                env,
                cwd,
            };
            self.lock().running.insert(key, running);
        }
        let pumps = [
            child
                .stdout
                .take()
                .map(|s| tokio::spawn(pump(s, log.clone()))),
            child
                .stderr
                .take()
                .map(|s| tokio::spawn(pump(s, log.clone()))),
        ];
        let (exit_tx, exit_rx) = oneshot::channel();
        let me = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            // A container's processes all die with it: kill what the leader left behind.
            signal_group(pid, libc::SIGKILL);
            me.forget(pid, container.as_ref());
            if let Some(w) = me.watchdog().as_ref() {
                w.remove(pid);
            }
            for p in pumps.into_iter().flatten() {
                // Output held open by an escaped grandchild must not block the exit.
                let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
            }
            log.finish();
            let info = match status {
                Ok(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => ExitInfo {
                        exit_code: code,
                        signal: None,
                    },
                    (None, Some(sig)) => ExitInfo {
                        exit_code: 128 + sig,
                        signal: Some(sig),
                    },
                    (None, None) => ExitInfo {
                        exit_code: 137,
                        signal: Some(libc::SIGKILL),
                    },
                },
                // Reaped by `shutdown` (it waits for the groups itself).
                Err(_) => ExitInfo {
                    exit_code: 137,
                    signal: Some(libc::SIGKILL),
                },
            };
            let _ = exit_tx.send(info);
        });
        Ok(Started { pid, exit: exit_rx })
    }

    /// The group is gone: no signal reaches it any more, no `exec` joins it.
    fn forget(&self, pgid: i32, container: Option<&ContainerKey>) {
        let mut groups = self.lock();
        groups.live.remove(&pgid);
        if let Some(key) = container {
            if groups.running.get(key).is_some_and(|r| r.pgid == pgid) {
                groups.running.remove(key);
            }
        }
    }

    /// The container `key` if its process runs.
    pub fn running(&self, key: &ContainerKey) -> Option<Running> {
        let groups = self.lock();
        let r = groups.running.get(key)?;
        groups.live.contains(&r.pgid).then(|| r.clone())
    }

    /// Runs `job` on the spawner thread (whose death signal the children inherit) and
    /// returns its result.
    pub(super) async fn on_spawner<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply_tx.send(job());
        });
        let sent = {
            let spawner = self.spawner.lock().unwrap_or_else(|e| e.into_inner());
            spawner.as_ref().map(|tx| tx.send(job).is_ok())
        };
        if sent != Some(true) {
            return None;
        }
        reply_rx.await.ok()
    }

    /// Spawns `cmd` into the live group `pgid` (a container's), unless the group is gone or
    /// the cluster stops; call on the spawner thread.
    pub(super) fn spawn_in_group(
        &self,
        mut cmd: std::process::Command,
        pgid: i32,
    ) -> Result<tokio::process::Child, SpawnFailure> {
        cmd.process_group(pgid);
        die_with_parent(&mut cmd);
        let groups = self.lock();
        if groups.stopping || !groups.live.contains(&pgid) {
            return Err(SpawnFailure::Gone);
        }
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .map_err(SpawnFailure::Io)?;
        drop(groups);
        Ok(child)
    }

    /// Runs on the spawner thread.
    fn spawn_here(&self, spec: &ProcSpec) -> Result<tokio::process::Child, String> {
        let Some(program) = spec.argv.first() else {
            return Err("no command given".into());
        };
        if !spec.cwd.is_dir() {
            return Err(format!(
                "failed to create containerd task: OCI runtime create failed: chdir to cwd ({:?}) set in config.json failed: no such file or directory",
                spec.cwd
            ));
        }
        let mut cmd = std::process::Command::new(program);
        cmd.args(&spec.argv[1..])
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        die_with_parent(&mut cmd);
        let mut groups = self.lock();
        if groups.stopping {
            return Err("the local cluster is stopping".into());
        }
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| start_error(program, &e))?;
        if let Some(pid) = child.id() {
            groups.live.insert(pid as i32);
            if let Some(w) = self.watchdog().as_ref() {
                w.add(pid as i32);
            }
        }
        Ok(child)
    }

    /// Sends `sig` to a group this kubelet started (no-op for groups already gone).
    pub fn signal(&self, pgid: i32, sig: i32) {
        if self.lock().live.contains(&pgid) {
            signal_group(pgid, sig);
        }
    }

    /// Kills every process group with SIGKILL, refuses new spawns, and returns once no
    /// process of those groups is alive (zombies awaiting their reaper count as dead), or
    /// after 10 s.
    pub fn shutdown(&self) {
        let groups: Vec<i32> = {
            let mut g = self.lock();
            g.stopping = true;
            g.live.drain().collect()
        };
        // Ends the spawner thread.
        self.spawner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for &pg in &groups {
            signal_group(pg, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pending = groups.clone();
        while !pending.is_empty() && Instant::now() < deadline {
            pending.retain(|&pg| {
                // Reap the leader if tokio has not yet (it is our child); harmless otherwise.
                let mut status = 0;
                // SAFETY: plain syscall on a pid we spawned.
                unsafe { libc::waitpid(pg, &mut status, libc::WNOHANG) };
                signal_group(pg, libc::SIGKILL);
                group_alive(pg)
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Every group is dead (or past the deadline): the watchdog kills what is left.
        if let Some(mut w) = self.watchdog().take() {
            for pg in groups.iter().filter(|pg| !pending.contains(pg)) {
                w.remove(*pg);
            }
            w.close();
        }
    }
}

/// Why a process could not join a container's group.
#[derive(Debug)]
pub(super) enum SpawnFailure {
    /// The container's group is gone (it stopped), or the cluster stops.
    Gone,
    /// The program could not be started.
    Io(std::io::Error),
}

/// The child gets SIGKILL when the spawner thread (and so the kubelet's process) dies.
fn die_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and
        // exec. The death signal is tied to this spawner thread, which lives as long as
        // the kubelet, so children die with the cluster's process and not before.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(137);
                }
                Ok(())
            });
        }
    }
}

fn start_error(program: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound if !program.contains('/') => {
            "executable file not found in $PATH".to_owned()
        }
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    };
    format!(
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"{program}\": {why}: unknown"
    )
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall; a negative pid addresses the process group.
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// Is any process of group `pgid` alive (not a zombie)?
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((state, pgrp)) = proc_state(pid) {
            if pgrp == pgid && state != 'Z' && state != 'X' {
                return true;
            }
        }
    }
    false
}

/// State letter and process group of a pid, from `/proc/<pid>/stat`.
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Copies one output stream into the log, complete lines at a time so the two streams of a
/// container interleave by line, never inside one.
async fn pump(mut r: impl AsyncRead + Unpin, log: Arc<ContainerLog>) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        if let Some(last) = pending.iter().rposition(|&b| b == b'\n') {
            log.push(&pending[..=last]);
            pending.drain(..=last);
        } else if pending.len() >= 16 * 1024 {
            log.push(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        log.push(&pending);
    }
}
