"""Reattaching to an existing Job: ``JobRun.attach`` by name and by flow run id, its one-line
errors, and ``kjenv attach|status|logs|delete JOB``; a submitter killed mid-wait that comes back
gets the whole log from the start and the Job's outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import cloudpickle
import pytest
import yaml
from kube_cluster import (
    PrintFlow,
    flow_file,
    job_spec,
    kjenv_cli,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    unique,
)

from kjenv import ClusterConfigError, JobFailedError, JobRun, KubeApiError

# The flows defined here travel to the pod by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class CountingFlow:
    """Prints ``count`` numbered lines, ``pause`` seconds apart; fails at the end if asked."""

    def __init__(self, count: int, pause: float, fail: bool = False):
        self.count, self.pause, self.fail = count, pause, fail

    def run(self) -> None:
        import time

        for i in range(self.count):
            print(f"line {i}", flush=True)
            time.sleep(self.pause)
        if self.fail:
            raise RuntimeError("counted to the end, then failed on purpose")


def _flow_path(tmp_path, flow) -> str:
    flow_file(tmp_path, PrintFlow([]))  # registers the helpers module for pickling by value
    path = tmp_path / f"flow-{uuid.uuid4().hex[:8]}.pkl"
    path.write_bytes(cloudpickle.dumps(flow))
    return str(path)


def _where(kube) -> list[str]:
    return ["-n", kube.namespace, "--kubeconfig", kube.kubeconfig]


def test_attach_real_by_name_and_by_flow_run_id(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["attached one", "attached two"], sleep=0.5))
    run_id = unique("run")
    spec = job_spec(unique("att"))
    run = kube.env(spec).execute(flow_location=path, image=kube.image, flow_run_id=run_id)
    by_name = JobRun.attach(run.name, namespace=kube.namespace, kubeconfig=kube.kubeconfig)
    by_id = JobRun.attach(flow_run_id=run_id, namespace=kube.namespace, kubeconfig=kube.kubeconfig)
    for other in (by_name, by_id):
        assert (other.name, other.namespace, other.uid) == (run.name, run.namespace, run.uid)
        assert (other.flow_run_id, other.container) == (run_id, run.container)
    assert by_id.wait(timeout=120)["succeeded"] == 1
    assert "attached two" in by_name.logs()
    run.delete()


def test_attach_real_errors_are_one_line(kube, tmp_path):
    where = {"namespace": kube.namespace, "kubeconfig": kube.kubeconfig}
    with pytest.raises(KubeApiError) as info:
        JobRun.attach("no-such-job-here", **where)
    assert info.value.status == 404
    assert str(info.value) == (
        f'no job "no-such-job-here" in namespace "{kube.namespace}" (NotFound, HTTP 404)'
    )
    with pytest.raises(KubeApiError, match="has the label flow_run_id=nobody-has-it"):
        JobRun.attach(flow_run_id="nobody-has-it", **where)
    for bad in ({}, {"name": "a", "flow_run_id": "b"}):
        with pytest.raises(ValueError, match="exactly one of them"):
            JobRun.attach(**bad, **where)
    with pytest.raises(ValueError, match="empty"):
        JobRun.attach("", **where)
    with pytest.raises(ClusterConfigError):
        JobRun.attach("x", namespace=kube.namespace, kubeconfig=str(tmp_path / "missing"))
    # Two Jobs of one flow run (different names): attach names both, and asks for a name.
    run_id = unique("twice")
    spec = job_spec(unique("tw"), sidecar=["sleep", "60"])
    env = kube.env(spec, unique_job_name=True)
    first = env.execute(image=kube.image, flow_run_id=run_id)
    second = env.execute(image=kube.image, flow_run_id=run_id)
    assert first.name != second.name
    with pytest.raises(ValueError) as info:
        JobRun.attach(flow_run_id=run_id, **where)
    message = str(info.value)
    assert message.startswith(f'2 jobs in namespace "{kube.namespace}" have the label ')
    assert first.name in message and second.name in message and "\n" not in message
    first.delete()
    second.delete()


def test_attach_uses_the_kubeconfig_namespace_and_context(local_cluster, tmp_path):
    from kube_cluster import local_kube

    kube = local_kube(local_cluster)
    run = kube.env(job_spec(unique("ns"), sidecar=["sleep", "60"])).execute(image=kube.image)
    again = JobRun.attach(run.name, kubeconfig=kube.kubeconfig)
    assert again.uid == run.uid and again.namespace == "default"
    with pytest.raises(ClusterConfigError, match="no-such-context"):
        JobRun.attach(run.name, kubeconfig=kube.kubeconfig, context="no-such-context")
    run.delete()


def test_attach_to_a_finished_job_gives_its_outcome_again_real(kube, tmp_path):
    path = _flow_path(tmp_path, CountingFlow(3, 0.0, fail=True))
    run = kube.env(job_spec(unique("again"))).execute(flow_location=path, image=kube.image)
    with pytest.raises(JobFailedError) as first:
        run.wait(timeout=120)
    again = JobRun.attach(run.name, namespace=kube.namespace, kubeconfig=kube.kubeconfig)
    with pytest.raises(JobFailedError) as second:
        again.wait(timeout=120)
    assert second.value.reason == first.value.reason == "BackoffLimitExceeded"
    assert second.value.exit_code == 1
    assert "failed on purpose" in second.value.log_tail
    run.delete()


def _submit_in_background(kube, tmp_path, flow) -> tuple[subprocess.Popen, str]:
    name = unique("killed")
    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(job_spec(name)))
    args = ["submit", str(spec_path), "--image", kube.image, "--kubeconfig", kube.kubeconfig]
    args += ["--namespace", kube.namespace]
    args += ["--flow-file-path", _flow_path(tmp_path, flow), "--logs"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kjenv", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, name


def test_a_killed_submitter_reattaches_and_gets_the_whole_log_real(kube, tmp_path):
    count = 40
    proc, name = _submit_in_background(kube, tmp_path, CountingFlow(count, 0.1))
    seen = []
    try:
        assert proc.stdout.readline() == f"{name}\n"
        while not seen or seen[-1] != "line 0\n":  # the flow is running
            seen.append(proc.stdout.readline())
            assert seen[-1], "the submitter ended before the flow printed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the submitter dies mid-wait, no clean-up
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    result = kjenv_cli("attach", name, *_where(kube), timeout=180)
    assert result.returncode == 0, result.stderr
    # The whole log, from the start, once, in order; the outcome of the run.
    assert result.stdout.startswith("".join(seen)), "from the first line"
    numbered = [line for line in result.stdout.splitlines() if line.startswith("line ")]
    assert numbered == [f"line {i}" for i in range(count)]
    core, _ = kube.client()
    [pod] = core.list_namespaced_pod(kube.namespace, label_selector=f"job-name={name}").items
    whole = core.read_namespaced_pod_log(pod.metadata.name, kube.namespace, container="flow")
    assert result.stdout == whole, "exactly the container's log"
    assert f"kjenv: attached to job {kube.namespace}/{name}" in result.stderr
    assert f"job {name} succeeded" in result.stderr
    status = kjenv_cli("status", name, *_where(kube))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"job {kube.namespace}/{name}: Succeeded (active 0")
    logs = kjenv_cli("logs", name, *_where(kube))
    assert (logs.returncode, logs.stdout) == (0, whole)
    deleted = kjenv_cli("delete", name, *_where(kube))
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stderr == (f"kjenv: deleted job {kube.namespace}/{name} (no pod was running)\n")
    gone = kjenv_cli("status", name, *_where(kube))
    assert gone.returncode == 1
    assert gone.stderr == (
        f'kjenv: error: no job "{name}" in namespace "{kube.namespace}" (NotFound, HTTP 404)\n'
    )


def test_cli_attach_by_flow_run_id_and_failure_exit_code_real(kube, tmp_path):
    path = _flow_path(tmp_path, CountingFlow(2, 0.0, fail=True))
    run = kube.env(job_spec(unique("clifail"))).execute(flow_location=path, image=kube.image)
    result = kjenv_cli("attach", "--flow-run-id", run.flow_run_id, *_where(kube), timeout=180)
    assert result.returncode == 1, result.stderr
    # (The flow's stdout and the runner's stderr share the log; only stdout's order is fixed.)
    numbered = [line for line in result.stdout.splitlines() if line.startswith("line ")]
    assert numbered == ["line 0", "line 1"], (result.stdout, result.stderr)
    assert f"job {run.name} failed: BackoffLimitExceeded" in result.stderr
    status = kjenv_cli("status", run.name, *_where(kube), "-o", "json")
    assert yaml.safe_load(status.stdout)["phase"] == "Failed"
    run.delete()


def test_cli_attach_usage_errors(local_cluster):
    where = ["--kubeconfig", local_cluster.kubeconfig]
    both = kjenv_cli("attach", "x", "--flow-run-id", "y", *where)
    assert both.returncode == 2
    assert (
        both.stderr
        == "kjenv: error: name the Job: give JOB or --flow-run-id, exactly one of them\n"
    )
    assert kjenv_cli("status", *where).returncode == 2
    missing = kjenv_cli("logs", "not-there", *where)
    assert missing.returncode == 1
    assert missing.stderr == (
        'kjenv: error: no job "not-there" in namespace "default" (NotFound, HTTP 404)\n'
    )
