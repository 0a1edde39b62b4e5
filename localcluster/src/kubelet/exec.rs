//! `exec` in a running container, as a container runtime does it: the command runs as a
//! process in the container's process group (so it stops with the container, on SIGTERM to
//! the pod and when the cluster's process dies), with the container's environment and working
//! directory; its output is read in chunks, tagged with the stream it came from.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};

use super::process::{ContainerKey, ExitInfo, Processes, Running, SpawnFailure};
use crate::Cluster;

/// The stream a chunk of output came from (the channel numbers of the exec protocol).
pub const STDOUT: u8 = 1;
/// See [`STDOUT`].
pub const STDERR: u8 = 2;

/// The largest chunk of output read at once.
const CHUNK: usize = 32 * 1024;
/// How long output may still arrive after the command exited (a background process of its
/// own may hold the streams open).
const DRAIN: Duration = Duration::from_secs(1);

/// What to run and which streams to attach.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The command (not `$(VAR)`-expanded: exec commands never are).
    pub argv: Vec<String>,
    /// Whether the client sends standard input.
    pub stdin: bool,
    /// Whether standard output goes to the client.
    pub stdout: bool,
    /// Whether standard error goes to the client (with `tty`, it goes to standard output).
    pub stderr: bool,
    /// A terminal was asked for: the two output streams are one.
    pub tty: bool,
}

/// Why the command could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The container stopped (or the cluster stops).
    NotRunning,
    /// The runtime's error, as containerd words it.
    Start(String),
}

/// A started command.
#[derive(Debug)]
pub struct Exec {
    /// Its standard input, when asked for (dropping it closes the stream).
    pub stdin: Option<ChildStdin>,
    /// Chunks of output with their stream; ends once the output is drained after the exit.
    pub output: mpsc::Receiver<(u8, Bytes)>,
    /// Resolves with the exit.
    pub exit: oneshot::Receiver<ExitInfo>,
    /// Dropping it kills the command if it still runs (the client went away).
    _kill: oneshot::Sender<()>,
}

/// A running container, as its kubelet knows it.
#[derive(Debug, Clone)]
pub struct Container {
    procs: Arc<Processes>,
    running: Running,
}

/// The running container `key` of `cluster`'s kubelet.
pub fn running(cluster: &Cluster, key: &ContainerKey) -> Option<Container> {
    let all = super::KUBELETS.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .filter(|(c, _)| *c == super::key(cluster))
        .find_map(|(_, p)| {
            p.running(key).map(|running| Container {
                procs: p.clone(),
                running,
            })
        })
}

/// Starts `spec` in the running container `c`.
///
/// # Errors
/// [`ExecError::NotRunning`] when the container is gone, [`ExecError::Start`] when the
/// program cannot be started.
pub async fn start(c: &Container, spec: &ExecSpec) -> Result<Exec, ExecError> {
    let (me, target, spec2) = (c.procs.clone(), c.running.clone(), spec.clone());
    let spawned = c
        .procs
        .on_spawner(move || spawn(&me, &target, &spec2))
        .await
        .ok_or(ExecError::NotRunning)?;
    let (mut child, merged) = spawned.map_err(|e| match e {
        SpawnFailure::Gone => ExecError::NotRunning,
        SpawnFailure::Io(io) => ExecError::Start(start_error(
            spec.argv.first().map_or("", String::as_str),
            &io,
        )),
    })?;
    let (tx, output) = mpsc::channel(8);
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(read_chunks(out, STDOUT, tx.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(read_chunks(err, STDERR, tx.clone())));
    }
    if let Some(m) = merged {
        readers.push(tokio::spawn(read_chunks(m, STDOUT, tx.clone())));
    }
    drop(tx);
    let stdin = child.stdin.take();
    let (kill_tx, kill_rx) = oneshot::channel();
    let (exit_tx, exit) = oneshot::channel();
    tokio::spawn(wait(child, kill_rx, readers, exit_tx));
    Ok(Exec {
        stdin,
        output,
        exit,
        _kill: kill_tx,
    })
}

type Spawned = (Child, Option<tokio::net::unix::pipe::Receiver>);

/// Runs on the spawner thread: the process, in the container's group.
fn spawn(procs: &Processes, target: &Running, spec: &ExecSpec) -> Result<Spawned, SpawnFailure> {
    let Some(program) = spec.argv.first() else {
        return Err(SpawnFailure::Io(std::io::ErrorKind::NotFound.into()));
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(spec_env(target))
        .current_dir(&target.cwd)
        .stdin(piped_if(spec.stdin));
    let mut merged = None;
    if spec.tty && spec.stdout {
        // One stream for both, as a terminal gives.
        let (tx, rx) = tokio::net::unix::pipe::pipe().map_err(SpawnFailure::Io)?;
        let fd = tx.into_blocking_fd().map_err(SpawnFailure::Io)?;
        let dup = fd.try_clone().map_err(SpawnFailure::Io)?;
        cmd.stdout(Stdio::from(fd)).stderr(Stdio::from(dup));
        merged = Some(rx);
    } else {
        cmd.stdout(piped_if(spec.stdout))
            .stderr(piped_if(spec.stderr && !spec.tty));
    }
    let child = procs.spawn_in_group(cmd, target.pgid)?;
    Ok((child, merged))
}

fn spec_env(target: &Running) -> impl Iterator<Item = (&String, &String)> {
    target.env.iter().map(|(k, v)| (k, v))
}

fn piped_if(on: bool) -> Stdio {
    if on {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

/// Waits for the exit (killing the command when the client went away first), lets the
/// output drain, and reports the exit.
async fn wait(
    mut child: Child,
    mut kill: oneshot::Receiver<()>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    exit_tx: oneshot::Sender<ExitInfo>,
) {
    let status = tokio::select! {
        s = child.wait() => s,
        _ = &mut kill => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    for r in readers {
        let abort = r.abort_handle();
        if tokio::time::timeout(DRAIN, r).await.is_err() {
            abort.abort();
        }
    }
    let info = match status.map(|s| (s.code(), s.signal())) {
        Ok((Some(code), _)) => ExitInfo {
            exit_code: code,
            signal: None,
        },
        Ok((None, Some(sig))) => ExitInfo {
            exit_code: 128 + sig,
            signal: Some(sig),
        },
        _ => ExitInfo {
            exit_code: 137,
            signal: Some(libc::SIGKILL),
        },
    };
    let _ = exit_tx.send(info);
}

async fn read_chunks(mut r: impl AsyncRead + Unpin, stream: u8, tx: mpsc::Sender<(u8, Bytes)>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((stream, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}

/// containerd's words for a command that cannot start (after runc's).
fn start_error(program: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound if !program.contains('/') => {
            "executable file not found in $PATH".to_owned()
        }
        std::io::ErrorKind::NotFound => format!("stat {program}: no such file or directory"),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "failed to exec in container: failed to start exec \"{id}\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": {why}: unknown"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_name_the_program_as_runc_does() {
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        let m = start_error("nosuch", &nf);
        assert!(m.starts_with("failed to exec in container: failed to start exec \""));
        assert!(m.ends_with(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown"
        ));
        let m = start_error("/no/such", &nf);
        assert!(m.contains("exec: \"/no/such\": stat /no/such: no such file or directory"));
    }
}
