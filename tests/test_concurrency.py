"""Threads, signals and fork: many threads at once without deadlock, Ctrl-C within half a second
(while waiting, and while backing off before a retry), a forked child that can use kjenv again,
and no runtime started by ``import kjenv``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kube_cluster import (
    PrintFlow,
    flow_file,
    instant_job_spec,
    job_spec,
    jobs_of_run,
    local_kube,
    secrets_of_run,
    unique,
    wait_until,
)

TESTS = os.path.dirname(__file__)
# SIGINT to a process blocked in kjenv -> KeyboardInterrupt -> process gone. It takes 17-234 ms
# here; the bound only tells an interrupt that worked from one that waited for the Job (60 s) or
# the backoff (30 s). The figure is printed with -s.
CTRL_C_BOUND = 5.0


# A process started in the background of a non-interactive shell inherits SIGINT ignored, and
# Python then keeps it ignored; the scripts take Ctrl-C as a terminal user's Python does.
_TAKE_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _python(code: str, *args: str, **env: str) -> subprocess.Popen:
    environ = {**os.environ, **env}
    return subprocess.Popen(
        [sys.executable, "-c", _TAKE_CTRL_C + textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


# ---- many threads ------------------------------------------------------------------------------


def test_64_threads_by_20_executes_and_waits(local_cluster):
    # Jobs that complete at once (no pod): this exercises kjenv's runtimes, clients, watches
    # and waits, not the local kubelet.
    k = local_kube(local_cluster)
    env = k.env(instant_job_spec("many"), unique_job_name=True)

    def worker(t: int) -> list[str]:
        uids = []
        for i in range(20):
            run = env.execute(image="img:1", flow_run_id=f"many-{t}-{i}")
            run.wait(timeout=60)
            run.delete()
            uids.append(run.uid)
        return uids

    start = time.monotonic()
    with ThreadPoolExecutor(64) as pool:
        futures = [pool.submit(worker, t) for t in range(64)]
        results = [f.result(timeout=300) for f in futures]
    elapsed = time.monotonic() - start
    uids = [u for r in results for u in r]
    assert len(uids) == 64 * 20 and len(set(uids)) == 64 * 20
    print(f"64 threads x 20 execute+wait+delete: {elapsed:.1f}s")


# ---- Ctrl-C ------------------------------------------------------------------------------------


def _interrupt(proc: subprocess.Popen, ready: str) -> float:
    """Wait for the line ``ready``, send SIGINT a moment later, return the seconds until the
    process is gone; fail if it is not gone within a few seconds."""
    line = proc.stdout.readline().strip()
    assert line == ready, line + proc.stderr.read()
    time.sleep(0.4)  # well inside the blocking call
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=CTRL_C_BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"Ctrl-C did not stop the process within {CTRL_C_BOUND} s")
    elapsed = time.monotonic() - sent
    stderr = proc.stderr.read()
    assert "KeyboardInterrupt" in stderr, stderr
    assert proc.returncode != 0
    return elapsed


# The scripts import nothing but kjenv (not the tests' helpers, which import pytest): the
# interpreter's own exit is then a few tens of milliseconds of the measured time.
WAIT_SCRIPT = """
    import json, sys
    from kjenv import KubernetesJobEnvironment
    env = KubernetesJobEnvironment(job_spec=json.loads(sys.argv[1]), kubeconfig=sys.argv[2])
    run = env.execute(image="img:1", flow_location=sys.argv[3])
    print("waiting", flush=True)
    run.wait()
"""


def test_ctrl_c_interrupts_wait(local_cluster, tmp_path):
    k = local_kube(local_cluster)
    name = unique("sigint")
    spec = json.dumps(job_spec(name))
    flow = flow_file(tmp_path, PrintFlow([], sleep=60))
    proc = _python(WAIT_SCRIPT, spec, k.kubeconfig, flow)
    try:
        elapsed = _interrupt(proc, "waiting")
    finally:
        proc.kill()
        _, batch = k.client()
        batch.delete_namespaced_job(name, k.namespace, propagation_policy="Background")
    print(f"Ctrl-C during wait: {elapsed * 1000:.0f} ms")
    assert elapsed < CTRL_C_BOUND, f"took {elapsed:.2f} s"


BACKOFF_SCRIPT = """
    import json, sys
    from kjenv import KubernetesJobEnvironment
    env = KubernetesJobEnvironment(job_spec=json.loads(sys.argv[1]), kubeconfig=sys.argv[2])
    print("submitting", flush=True)
    env.execute(image="img:1", flow_run_id=sys.argv[3])
    print("submitted", flush=True)
"""


@pytest.mark.parametrize(
    "fault",
    [{"status": 429, "retry_after": 30, "times": 1}, {"status": 503, "times": 10_000}],
    ids=["429-retry-after-30", "503-forever"],
)
def test_ctrl_c_during_a_retry_backoff(local_cluster, fault):
    # Cloud mode: the Job is created, then the Secret's POST is answered 429/503 and kjenv
    # backs off. Ctrl-C then ends the process within the bound, and the Job, which cannot run
    # without its Secret, is deleted again; no Secret exists (it is only ever created owned by
    # its Job).
    k = local_kube(local_cluster)
    name, run_id = unique("sigback"), unique("run")
    local_cluster.inject_fault(method="POST", path="*/secrets", **fault)
    proc = _python(
        BACKOFF_SCRIPT,
        json.dumps(job_spec(name)),
        k.kubeconfig,
        run_id,
        PREFECT__CLOUD__AUTH_TOKEN="backoff-token",
    )
    try:
        wait_until(lambda: jobs_of_run(k, run_id), timeout=20, what="the run's Job")
        elapsed = _interrupt(proc, "submitting")
    finally:
        proc.kill()
        local_cluster.clear_faults()
    print(f"Ctrl-C during a {fault['status']} backoff: {elapsed * 1000:.0f} ms")
    assert elapsed < CTRL_C_BOUND, f"took {elapsed:.2f} s"
    wait_until(lambda: not jobs_of_run(k, run_id), timeout=20, what="the Job deleted")
    assert secrets_of_run(k, run_id) == [], "a Secret without its Job"


# ---- fork --------------------------------------------------------------------------------------

FORK_SCRIPT = """
    import os, sys, threading, time
    sys.path.insert(0, {tests!r})
    from kube_cluster import instant_job_spec, job_spec
    from kjenv import KubernetesJobEnvironment

    env = KubernetesJobEnvironment(job_spec=instant_job_spec("fork"), kubeconfig={kubeconfig!r},
                                   unique_job_name=True)
    env.execute(image="img:1").wait(timeout=30)  # the parent's runtime and client exist now

    # Another thread is inside kjenv (waiting on a long Job) while the process forks.
    slow = KubernetesJobEnvironment(job_spec=job_spec("fork-slow", sidecar=["sleep", "30"]),
                                    kubeconfig={kubeconfig!r}, unique_job_name=True)
    long_run = slow.execute(image="img:1")
    waiter = threading.Thread(target=lambda: long_run.wait(timeout=20), daemon=True)
    waiter.start()
    time.sleep(0.3)

    pid = os.fork()
    if pid == 0:
        try:
            job = env.render(image="img:2")
            assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2"
            run = env.execute(image="img:2")
            run.wait(timeout=30)
            run.delete()
            os._exit(0)
        except BaseException as e:
            print("child failed:", repr(e), flush=True)
            os._exit(3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        print("child hung", flush=True)
        sys.exit(4)
    # The parent still works too, and its waiting thread was not disturbed.
    env.execute(image="img:3").wait(timeout=30)
    long_run.delete()
    print("child exit", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_fork_after_the_runtime_started(local_cluster):
    k = local_kube(local_cluster)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(FORK_SCRIPT.format(tests=TESTS, kubeconfig=k.kubeconfig)),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("child exit 0"), proc.stdout + proc.stderr


# ---- import ------------------------------------------------------------------------------------

IMPORT_SCRIPT = """
    import json, os, sys

    def snapshot():
        threads = []
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as f:
                threads.append(f.read().strip())
        fds = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return {"threads": sorted(threads), "epoll": fds.count("anon_inode:[eventpoll]")}

    before = snapshot()
    import kjenv, kjenv.testing, kjenv.cli  # noqa: F401
    after_import = snapshot()
    env = kjenv.KubernetesJobEnvironment(job_spec={"metadata": {"name": "x"}},
                                         kubeconfig=sys.argv[1])
    env.execute(image="img:1", wait=True, timeout=30).delete()
    after_execute = snapshot()
    print(json.dumps([before, after_import, after_execute]))
"""


def test_import_starts_no_runtime(local_cluster, tmp_path):
    # A tokio runtime owns an epoll instance (its I/O driver); Python opens none by itself. So
    # the number of epoll descriptors tells whether a runtime exists — and the execute below
    # shows that the probe does see one.
    import json

    k = local_kube(local_cluster)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(instant_job_spec(unique("imp"))))
    script = textwrap.dedent(IMPORT_SCRIPT).replace(
        '{"metadata": {"name": "x"}}', f"json.load(open({str(spec)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, k.kubeconfig], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    before, after_import, after_execute = json.loads(out.stdout)
    assert after_import == before, "import kjenv started threads or a runtime"
    assert not any("tokio" in t for t in after_import["threads"])
    assert after_execute["epoll"] > before["epoll"], "the probe sees a started runtime"
