"""Cancelling a Job: ``JobRun.cancel(grace_period)`` deletes it with its pods (the grace reaches
the pods), and what Ctrl-C / SIGTERM during a wait does to the Job (``on_interrupt``: keep, the
default, or delete), in the library and in ``kjenv submit``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import pytest
import yaml
from kube_cluster import (
    PrintFlow,
    flow_file,
    job_spec,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    pods_of_job,
    unique,
    wait_until,
)

from kjenv import JobRun, KubeApiError

# A container that ignores SIGTERM: only SIGKILL, at the end of its grace period, stops it.
STUBBORN = ["sh", "-c", "trap '' TERM; sleep 600"]


def _running(kube, spec):
    run = kube.env(spec).execute(image=kube.image)
    status = wait_until(
        lambda: (s := run.status())["phase"] == "Running" and s, timeout=60, what="a running pod"
    )
    return run, [p["name"] for p in status["pods"]]


def _gone(kube, run) -> bool:
    return not pods_of_job(kube, run.uid)


def test_cancel_real_deletes_the_job_and_its_pods(kube):
    run, pods = _running(kube, job_spec(unique("cancel"), sidecar=["sleep", "60"]))
    assert run.cancel() == {"deleted": True, "pods": pods, "grace_period": None}
    with pytest.raises(KubeApiError) as info:
        run.status()
    assert info.value.status == 404, "the Job is gone at once (background propagation)"
    wait_until(lambda: _gone(kube, run), timeout=60, what="the pods to go")
    assert run.cancel() == {"deleted": False, "pods": [], "grace_period": None}


def test_cancel_real_passes_the_grace_period_to_the_pods(kube):
    spec = job_spec(unique("grace"), sidecar=STUBBORN, terminationGracePeriodSeconds=300)
    run, pods = _running(kube, spec)
    done = run.cancel(grace_period=3)
    assert done == {"deleted": True, "pods": pods, "grace_period": 3}
    core, _ = kube.client()
    try:
        pod = core.read_namespaced_pod(pods[0], kube.namespace)
        # The pod's own 300 s would keep it; the grace given is what it gets.
        assert pod.metadata.deletion_grace_period_seconds <= 3
    except Exception as exc:  # noqa: BLE001 (gone already: fine, checked below)
        assert getattr(exc, "status", None) == 404, exc
    # Far sooner than its own 300 s grace (this bound is only a hang guard).
    wait_until(lambda: _gone(kube, run), timeout=120, what="the pods to be killed")


def test_cancel_refuses_a_negative_grace_period(kube):
    run = kube.env(job_spec(unique("neg"), sidecar=["sleep", "60"])).execute(image=kube.image)
    with pytest.raises(ValueError) as info:
        run.cancel(grace_period=-1)
    assert str(info.value) == "grace_period must be a whole number of seconds >= 0, got -1"
    run.cancel()


def test_cancel_never_deletes_a_new_job_of_the_same_name(kube):
    name = unique("same")
    first = kube.env(job_spec(name, sidecar=["sleep", "60"])).execute(image=kube.image)
    first.delete()
    wait_until(lambda: _gone(kube, first), timeout=60, what="the first Job's pods to go")
    _, batch = kube.client()
    wait_until(
        lambda: (
            not batch.list_namespaced_job(
                kube.namespace, field_selector=f"metadata.name={name}"
            ).items
        ),
        timeout=60,
        what="the first Job to go",
    )
    second = kube.env(job_spec(name, sidecar=["sleep", "60"])).execute(image=kube.image)
    with pytest.raises(KubeApiError) as info:
        first.cancel()
    assert info.value.status == 409
    assert second.status()["name"] == name, "the new Job is untouched"
    second.cancel()


def _interrupt_soon(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.fixture
def sleepy(tmp_path) -> str:
    """A flow file whose flow sleeps for two minutes: a run that is still going when the test
    interrupts its wait (a flow that cannot be loaded would end the wait at once)."""
    return flow_file(tmp_path, PrintFlow(["sleeping"], sleep=120))


def _pod_running(run) -> None:
    wait_until(lambda: run.status()["phase"] == "Running", timeout=60, what="a running pod")


def test_ctrl_c_keeps_the_job_by_default_and_says_so(kube, caplog, sleepy):
    env = kube.env(job_spec(unique("keep"), sidecar=["sleep", "60"]))
    run = env.execute(flow_location=sleepy, image=kube.image)
    _pod_running(run)
    _interrupt_soon(0.5)
    with caplog.at_level(logging.WARNING, logger="kjenv"), pytest.raises(KeyboardInterrupt):
        run.wait(timeout=60)
    assert run.status()["phase"] == "Running", "the Job keeps running"
    [message] = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert message == (
        f"the wait for job {run.namespace}/{run.name} was interrupted; the job keeps running "
        f"(on interrupt: keep): attach to it again with `kjenv attach {run.name} -n "
        f"{run.namespace}`, stop it with `kjenv delete {run.name} -n {run.namespace}`"
    )
    run.cancel()


def test_ctrl_c_with_on_interrupt_delete_deletes_the_job(kube, caplog, sleepy):
    env = kube.env(job_spec(unique("ctrlc"), sidecar=["sleep", "60"]))
    run = env.execute(flow_location=sleepy, image=kube.image)
    _pod_running(run)
    [pod] = [p["name"] for p in run.status()["pods"]]
    _interrupt_soon(0.5)
    with caplog.at_level(logging.WARNING, logger="kjenv"), pytest.raises(KeyboardInterrupt):
        run.wait(timeout=60, on_interrupt="delete")
    with pytest.raises(KubeApiError):
        run.status()
    messages = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert messages == [
        f"the wait for job {run.namespace}/{run.name} was interrupted; the job was deleted "
        f"(1 pod stopping: {pod}) (on interrupt: delete)"
    ]
    wait_until(lambda: _gone(kube, run), timeout=60, what="the pods to go")


def test_on_interrupt_must_be_keep_or_delete(kube):
    run = kube.env(job_spec(unique("badint"), sidecar=["sleep", "60"])).execute(image=kube.image)
    with pytest.raises(ValueError) as info:
        run.wait(timeout=1, on_interrupt="Delete")
    assert str(info.value) == 'on_interrupt must be "keep" or "delete", got "Delete"'
    run.cancel()


def _submit_waiting(kube, tmp_path, *flags: str) -> tuple[subprocess.Popen, str]:
    name = unique("cli")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job_spec(name, sidecar=["sleep", "120"])))
    stored = flow_file(tmp_path, PrintFlow(["sleeping"], sleep=120))
    args = ["submit", str(path), "--image", kube.image, "--kubeconfig", kube.kubeconfig]
    args += ["--flow-file-path", stored]
    args += ["--namespace", kube.namespace, "--wait", *flags]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kjenv", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == f"{name}\n"
    return proc, name


@pytest.mark.parametrize(
    ("sig", "code", "last"),
    [(signal.SIGINT, 130, "kjenv: interrupted"), (signal.SIGTERM, 143, "kjenv: terminated")],
)
def test_cli_submit_on_interrupt_delete_real(kube, tmp_path, sig, code, last):
    proc, name = _submit_waiting(kube, tmp_path, "--on-interrupt", "delete")
    run = JobRun.attach(name, namespace=kube.namespace, kubeconfig=kube.kubeconfig)
    _pod_running(run)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert lines[-1] == last
    assert lines[-2].startswith(
        f"kjenv: the wait for job {kube.namespace}/{name} was interrupted; the job was deleted "
        "(1 pod stopping: "
    ), err
    with pytest.raises(KubeApiError):
        run.status()
    wait_until(lambda: _gone(kube, run), timeout=60, what="the pods to go")


def test_cli_submit_ctrl_c_keeps_the_job_by_default_real(kube, tmp_path):
    proc, name = _submit_waiting(kube, tmp_path)
    run = JobRun.attach(name, namespace=kube.namespace, kubeconfig=kube.kubeconfig)
    _pod_running(run)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"`kjenv attach {name} -n {kube.namespace}`" in err
    assert run.status()["phase"] == "Running"
    run.cancel()


def test_cli_on_interrupt_is_checked(tmp_path):
    from kube_cluster import kjenv_cli

    result = kjenv_cli("submit", "x.yaml", "--on-interrupt", "maybe")
    assert result.returncode == 2
    assert "--on-interrupt: invalid choice: 'maybe'" in result.stderr
    assert "--on-interrupt" in kjenv_cli("run", "--help").stdout


def test_cli_run_on_interrupt_delete_real(kube, tmp_path):
    from kube_cluster import PrintFlow, flow_file

    flow_py = tmp_path / "sleepy.py"
    flow_py.write_text(
        "class Sleepy:\n    def run(self):\n        import time\n        time.sleep(120)\n\n"
        "flow = Sleepy()\n"
    )
    stored = flow_file(tmp_path, PrintFlow(["sleeping"], sleep=120))
    name = unique("clirun")
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(job_spec(name)))
    args = ["run", str(flow_py), "--job-spec", str(spec), "--image", kube.image]
    args += ["--kubeconfig", kube.kubeconfig, "--namespace", kube.namespace]
    args += ["--flow-file-path", stored, "--on-interrupt", "delete"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kjenv", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().startswith(f"job {kube.namespace}/{name} created")
    run = JobRun.attach(name, namespace=kube.namespace, kubeconfig=kube.kubeconfig)
    _pod_running(run)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"the wait for job {kube.namespace}/{name} was interrupted; the job was deleted" in err
    with pytest.raises(KubeApiError):
        run.status()
