"""SIGTERM, SIGKILL and stop() of a process holding a local cluster (issue 14, class 11, and the
class 5 item that lives in the emulator).

Every test runs the cluster in a child process whose ``TMPDIR`` is private, so what it leaves
behind (kubeconfig with its token, work dir, python shim, the run's flow folder) is visible.
The flow writes the pids of its processes (the container's ``sh``, the flow's ``python`` and a
``sleep`` grandchild) to a file; after the parent is gone, none of them may be alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kube_cluster import job_spec, local_kube, unique, wait_until

from kjenv import JobFailedError, KubeApiError
from kjenv.testing import LocalCluster

# Hang guards only: each of these steps takes well under a second on an idle machine.
HANG = 60.0

# The flow: records the pids of every process of its container, then sleeps.
FLOW_FILE = """
import os, subprocess, time

PIDS = {pids!r}


class SleepyFlow:
    name = "sleepy"

    def run(self):
        child = subprocess.Popen(["sleep", "300"])
        tmp = PIDS + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{{os.getppid()}} {{os.getpid()}} {{child.pid}}\\n")
        os.replace(tmp, PIDS)
        time.sleep(300)


flow = SleepyFlow()
"""

# A Python program holding a LocalCluster with that flow running as a Job.
HOLDER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from kube_cluster import job_spec
from kjenv import KubernetesJobEnvironment
from kjenv._flowfile import find_flow, import_file, store_flow
from kjenv.testing import LocalCluster

mode = {mode!r}
if mode == "user-handler":
    signal.signal(signal.SIGTERM, lambda *_: print("user handler", flush=True))
cluster = LocalCluster()
print("handler kept" if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL else "default",
      flush=True)
flow = find_flow(import_file({flow_file!r}))
env = KubernetesJobEnvironment(job_spec=job_spec("held"), kubeconfig=cluster.kubeconfig)
path = store_flow(flow, {store!r})
run = env.execute(flow, path, image="img:1")
print("submitted", flush=True)
if mode == "with":
    with cluster:
        run.wait()
else:
    run.wait()
"""


def _alive(pid: int) -> bool:
    """Is ``pid`` a live process (not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _group_alive(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            live.append(int(entry))
    return live


class Child:
    """A child process (its own session, private TMPDIR) and the flow's pid file."""

    def __init__(self, tmp_path: Path, argv: list[str]):
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.pids_file = tmp_path / "pids"
        self.out = open(tmp_path / "out.txt", "w+")  # noqa: SIM115 (closed in finish)
        env = dict(os.environ, TMPDIR=str(self.tmpdir), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            argv, stdout=self.out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def output(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return Path(self.out.name).read_text()

    def flow_pids(self) -> list[int]:
        """Wait for the flow to run; its pids (sh, python, the sleep grandchild)."""

        def ready():
            if self.proc.poll() is not None:
                pytest.fail(f"the child ended early: {self.output()}")
            return self.pids_file.exists() and self.pids_file.read_text().split()

        return [int(p) for p in wait_until(ready, timeout=HANG, what="the flow to run")]

    def finish(self) -> int:
        """Wait for the child's exit (hang guard); its exit code."""
        try:
            return self.proc.wait(timeout=HANG)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.out.close()

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.tmpdir))

    def kill_everything(self) -> None:
        """Teardown, also after a failure: no process of this test outlives it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()
        if not self.out.closed:
            self.out.close()
        if self.pids_file.exists():
            sh, *rest = (int(p) for p in self.pids_file.read_text().split())
            for pid in rest:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sh, signal.SIGKILL)


@pytest.fixture
def children():
    """Children a test starts; each is killed, with its flow's processes, at teardown."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill_everything()


def _assert_all_gone(pids: list[int], pgid: int) -> None:
    wait_until(
        lambda: not any(_alive(p) for p in pids) and not _group_alive(pgid),
        timeout=HANG,
        what=f"the flow's processes {pids} and group {pgid} to die",
    )


def _write_flow(tmp_path: Path) -> Path:
    flow_file = tmp_path / "sleepy_flow.py"
    flow_file.write_text(FLOW_FILE.format(pids=str(tmp_path / "pids")))
    return flow_file


def _holder(tmp_path: Path, mode: str, children: list) -> Child:
    store = tmp_path / "store"
    store.mkdir()
    script = tmp_path / "holder.py"
    script.write_text(
        HOLDER.format(
            tests=str(Path(__file__).parent),
            mode=mode,
            flow_file=str(_write_flow(tmp_path)),
            store=str(store),
        )
    )
    children.append(Child(tmp_path, [sys.executable, str(script)]))
    return children[-1]


def _kjenv_run_local(tmp_path: Path, children: list) -> Child:
    import yaml

    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(job_spec("sigterm-run")))
    flow_file = _write_flow(tmp_path)
    argv = [sys.executable, "-m", "kjenv", "run", str(flow_file), "--local", "--job-spec"]
    children.append(Child(tmp_path, [*argv, str(spec)]))
    return children[-1]


# ---- SIGTERM is as clean as SIGINT ---------------------------------------------------------------


def test_sigterm_to_kjenv_run_local_leaves_no_process_and_no_file(tmp_path, children):
    child = _kjenv_run_local(tmp_path, children)
    pids = child.flow_pids()
    os.kill(child.proc.pid, signal.SIGTERM)
    code = child.finish()
    assert code == 128 + signal.SIGTERM, child.output()
    assert "kjenv: terminated" in child.output()
    assert "Traceback" not in child.output()
    _assert_all_gone(pids, child.proc.pid)
    assert child.leftovers() == []


@pytest.mark.parametrize("mode", ["with", "bare"])
def test_sigterm_to_a_python_holding_a_local_cluster(tmp_path, mode, children):
    child = _holder(tmp_path, mode, children)
    pids = child.flow_pids()
    os.kill(child.proc.pid, signal.SIGTERM)
    code = child.finish()
    assert code == 128 + signal.SIGTERM, child.output()
    _assert_all_gone(pids, child.proc.pid)
    assert child.leftovers() == []


def test_a_sigterm_handler_the_user_installed_is_kept(tmp_path, children):
    child = _holder(tmp_path, "user-handler", children)
    pids = child.flow_pids()
    assert "handler kept" in child.output()
    os.kill(child.proc.pid, signal.SIGTERM)
    wait_until(lambda: "user handler" in child.output(), timeout=HANG, what="the user's handler")
    assert child.proc.poll() is None, "the user's handler does not end the program"
    os.kill(child.proc.pid, signal.SIGINT)
    child.finish()
    _assert_all_gone(pids, child.proc.pid)
    assert child.leftovers() == []


# ---- SIGKILL: the containers die with their parent; a later start sweeps -------------------------


def test_sigkill_of_the_parent_kills_its_containers_and_a_later_start_sweeps(tmp_path, children):
    child = _holder(tmp_path, "bare", children)
    pids = child.flow_pids()
    os.kill(child.proc.pid, signal.SIGKILL)
    child.finish()
    _assert_all_gone(pids, child.proc.pid)
    stale = child.leftovers()
    assert any(name.startswith("kjenv-localcluster-") for name in stale), stale
    assert any(name.startswith("kjenv-python-") for name in stale), stale
    # Folders of a live owner (this process) and foreign ones stay.
    mine = [f"kjenv-localcluster-{os.getpid()}-live", f"kjenv-python-{os.getpid()}-live"]
    for name in [*mine, "kjenv-localcluster-notapid", "someone-else"]:
        (child.tmpdir / name).mkdir()
    starter = subprocess.run(
        [sys.executable, "-c", "from kjenv.testing import LocalCluster; LocalCluster().stop()"],
        env=dict(os.environ, TMPDIR=str(child.tmpdir)),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert starter.returncode == 0, starter.stderr
    assert child.leftovers() == sorted([*mine, "kjenv-localcluster-notapid", "someone-else"])


# ---- stop() during a wait is not a Job failure (class 5) -----------------------------------------


def _watch_all(list_fn, namespace: str, seen: list) -> threading.Thread:
    """Record every (kind, name, phase or failed condition) a watch sees until the API goes."""
    from kubernetes import watch

    def run():
        with contextlib.suppress(Exception):  # the stream ends with the server
            for event in watch.Watch().stream(list_fn, namespace, _request_timeout=HANG):
                obj = event["object"]
                conditions = getattr(obj.status, "conditions", None) or []
                failed = [c.type for c in conditions if c.type == "Failed" and c.status == "True"]
                seen.append((obj.kind, obj.metadata.name, getattr(obj.status, "phase", None)))
                seen.extend((obj.kind, obj.metadata.name, f) for f in failed)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_stop_during_wait_does_not_make_the_job_look_failed(tmp_path, monkeypatch):
    from kube_cluster import PrintFlow, flow_file

    monkeypatch.setenv("KJENV_REQUEST_TIMEOUT", "1")
    cluster = LocalCluster(backoff_base=0.2)
    try:
        k = local_kube(cluster)
        core, batch = k.client()
        path = flow_file(tmp_path, PrintFlow(["started"], sleep=300))
        run = k.env(job_spec(unique("stopped"))).execute(flow_location=path, image="img:1")

        def started():
            try:
                return "started" in run.logs()
            except KubeApiError:  # the container is not running yet
                return False

        wait_until(started, timeout=HANG, what="the flow to run")
        assert [j.metadata.name for j in batch.list_namespaced_job(k.namespace).items] == [run.name]
        assert core.list_namespaced_secret(k.namespace).items == []
        seen: list = []
        watchers = [
            _watch_all(core.list_namespaced_pod, k.namespace, seen),
            _watch_all(batch.list_namespaced_job, k.namespace, seen),
        ]
        outcome: dict[str, BaseException] = {}

        def waiter():
            try:
                run.wait(timeout=10)
            except BaseException as exc:  # noqa: BLE001 (inspected below)
                outcome["error"] = exc

        threading.Thread(target=waiter, daemon=True).start()
        wait_until(lambda: len(seen) >= 2, timeout=HANG, what="both watches to start")
        time.sleep(0.5)
        cluster.stop()
        for w in watchers:
            w.join(HANG)
            assert not w.is_alive(), "a watch outlived the API"
    finally:
        cluster.stop()
    # Until the API went away, nobody watching saw a pod or the Job fail: the kills of stop()
    # are not the Job's outcome.
    assert not [s for s in seen if s[2] == "Failed"], seen
    assert not isinstance(outcome.get("error"), JobFailedError), outcome["error"]
    assert not Path(cluster.kubeconfig).exists()


def test_sigterm_to_kjenv_cluster_stops_it_and_removes_its_folders(tmp_path, children):
    child = Child(tmp_path, [sys.executable, "-m", "kjenv", "cluster"])
    children.append(child)
    wait_until(lambda: "Ctrl-C stops it" in child.output(), timeout=HANG, what="the cluster")
    assert child.leftovers() != []
    os.kill(child.proc.pid, signal.SIGTERM)
    assert child.finish() == 0, child.output()
    assert "local cluster stopped" in child.output()
    assert child.leftovers() == []
