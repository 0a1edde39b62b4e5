"""Faults injected into the local cluster while kjenv works: the documented outcome (retried to
success, or a clear error), exactly one Job per execute, nothing leaked (no Secret without its
Job, no pod after ``delete()``) and no hang (every call returns within a bound).

Most tests run in Cloud mode (a token is configured) so that the run's Secret is exercised too.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid

import pytest
from kube_cluster import (
    PrintFlow,
    arm_fault,
    auth_token,
    bounded,
    flow_file,
    job_spec,
    jobs_of_run,
    local_kube,
    pods_of_job,
    secrets_of_run,
    unique,
    wait_until,
)

from kjenv import JobFailedError, KubeApiError

TOKEN = "fault-token-not-for-anyone"


@pytest.fixture
def cloud(monkeypatch):
    """Cloud mode: a token is configured, so every execute creates the run's Secret."""
    with auth_token(monkeypatch, TOKEN):
        yield


# The time limit of one API request in these tests (default 30 s), so that hangs show quickly,
# and a delay well beyond it.
REQUEST_LIMIT = 0.5
BEYOND = 1.5
# A hang guard for one call: at least 10x what the slowest call here takes on this 2-core machine
# under load (~5 s); a call that hangs fails the test instead of the suite.
HANG = 60
# A server that "hangs": it answers only after this long, far beyond HANG, so a call that returns
# within HANG did not wait for it.
LATENCY = 300


@pytest.fixture
def short_requests(monkeypatch):
    """A short time limit per API request."""
    monkeypatch.setenv("KJENV_REQUEST_TIMEOUT", str(REQUEST_LIMIT))


def _run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


def assert_one_job_and_owned_secret(k, run) -> None:
    """Exactly one Job for the run, and (in Cloud mode) its Secret owned by that Job."""
    jobs = jobs_of_run(k, run.flow_run_id)
    assert [j.metadata.uid for j in jobs] == [run.uid], "one Job per execute"
    secrets = secrets_of_run(k, run.flow_run_id)
    assert len(secrets) == 1
    owners = secrets[0].metadata.owner_references or []
    assert [(o.kind, o.uid) for o in owners] == [("Job", run.uid)]


def delete_and_assert_nothing_left(k, run) -> None:
    """``run.delete()`` leaves no pod and no Secret of the run behind."""
    bounded(run.delete, HANG, "delete()")
    wait_until(lambda: not pods_of_job(k, run.uid), timeout=30, what="the pods to go")
    wait_until(lambda: not secrets_of_run(k, run.flow_run_id), timeout=30, what="the Secret to go")
    wait_until(lambda: not jobs_of_run(k, run.flow_run_id), timeout=30, what="the Job to go")


def assert_nothing_created(k, run_id: str) -> None:
    """A failed execute leaves no Job and no Secret."""
    assert jobs_of_run(k, run_id) == []
    assert secrets_of_run(k, run_id) == []


# ---- create: 5xx bursts, resets, 429 ------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "times": 3},
        {"status": 503, "times": 3},
        {"status": 504, "times": 3},
        {"reset": True, "times": 2},
    ],
    ids=["500", "503", "504", "reset"],
)
@pytest.mark.parametrize("path", ["*/secrets", "*/jobs"])
def test_transient_failures_on_create_are_retried(cluster, cloud, fault, path):
    k = local_kube(cluster)
    cluster.inject_fault(method="POST", path=path, **fault)
    run_id = _run_id()
    spec = job_spec(unique("burst"), sidecar=["sleep", "30"])
    run = bounded(lambda: k.env(spec).execute(image="img:1", flow_run_id=run_id), HANG, "execute")
    assert_one_job_and_owned_secret(k, run)
    delete_and_assert_nothing_left(k, run)


def test_a_mixed_burst_on_every_request_of_a_run(cluster, cloud, tmp_path):
    # 5xx and resets on creates, lists, watches and the delete: the run still completes.
    k = local_kube(cluster)
    flow_path = flow_file(tmp_path, PrintFlow(["through the storm"], sleep=0.3))
    faults = [
        ("POST", "*/secrets", {"status": 503, "times": 2}),
        ("POST", "*/jobs", {"status": 500, "times": 1}),
        ("POST", "*/jobs", {"reset": True, "times": 1}),
        ("PATCH", "*/secrets/*", {"status": 504, "times": 2}),
        ("GET", "*/jobs", {"reset": True, "times": 2}),
        ("GET", "*/pods", {"status": 500, "times": 2}),
        ("DELETE", "*/jobs/*", {"status": 503, "times": 2}),
    ]
    for method, pattern, fault in faults:
        cluster.inject_fault(method=method, path=pattern, **fault)
    run = bounded(
        lambda: k.env(job_spec(unique("storm"))).execute(
            flow_location=flow_path, image="img:1", flow_run_id=_run_id()
        ),
        30,
        "execute",
    )
    bounded(lambda: run.wait(timeout=60), 70, "wait")
    assert_one_job_and_owned_secret(k, run)
    delete_and_assert_nothing_left(k, run)


def test_429_honours_retry_after(cluster, cloud):
    k = local_kube(cluster)
    cluster.inject_fault(429, method="POST", path="*/jobs", retry_after=1)
    spec = job_spec(unique("r429"), sidecar=["sleep", "30"])
    start = time.monotonic()
    run = bounded(
        lambda: k.env(spec).execute(image="img:1", flow_run_id=_run_id()), HANG, "execute"
    )
    assert time.monotonic() - start >= 1.0, "the server asked for a second's pause"
    assert_one_job_and_owned_secret(k, run)
    delete_and_assert_nothing_left(k, run)


def test_client_errors_are_not_retried(cluster):
    k = local_kube(cluster)
    cluster.inject_fault(422, method="POST", path="*/jobs", times=2)
    run_id = _run_id()
    with pytest.raises(KubeApiError) as info:
        bounded(
            lambda: k.env(job_spec(unique("r422"))).execute(image="img:1", flow_run_id=run_id), 20
        )
    assert info.value.status == 422
    # The second fault is still armed: only one request was made.
    with pytest.raises(KubeApiError):
        bounded(lambda: k.env(job_spec(unique("r422"))).execute(image="img:1"), HANG)
    assert_nothing_created(k, run_id)


def test_persistent_failures_are_a_clear_error_and_leave_no_secret(cluster, cloud):
    # Every attempt fails (5xx, then resets): the retries are bounded, the last failure is
    # reported, and the Secret made for the Job is deleted.
    k = local_kube(cluster)
    cluster.inject_fault(500, method="POST", path="*/jobs", times=4)
    cluster.inject_fault(reset=True, method="POST", path="*/jobs", times=1000)
    run_id = _run_id()
    with pytest.raises(KubeApiError) as info:
        bounded(
            lambda: k.env(job_spec(unique("persist"))).execute(image="img:1", flow_run_id=run_id),
            HANG,
        )
    assert info.value.reason == "Unreachable"
    assert "cannot reach the Kubernetes API" in str(info.value)
    cluster.clear_faults()
    assert_nothing_created(k, run_id)


# ---- slow responses beyond the request time limit ----------------------------------------------


@pytest.mark.parametrize("fault", ["latencyMs", "lateAnswerMs"])
def test_a_slow_create_is_retried_and_not_duplicated(cluster, cloud, short_requests, fault):
    # The first POST gets no answer within the limit: delayed before it is served (latencyMs),
    # or served and answered late (lateAnswerMs: the Job exists, the client does not know).
    # The retry must not make a second Job.
    k = local_kube(cluster)
    arm_fault(cluster, method="POST", path="*/jobs", **{fault: int(BEYOND * 1000)})
    spec = job_spec(unique("slow"), sidecar=["sleep", "30"])
    run = bounded(
        lambda: k.env(spec).execute(image="img:1", flow_run_id=_run_id()), HANG, "execute"
    )
    time.sleep(BEYOND)  # the abandoned request has been answered by now
    assert_one_job_and_owned_secret(k, run)
    delete_and_assert_nothing_left(k, run)


def test_a_slow_create_with_generate_name_is_not_duplicated(cluster, short_requests):
    # Without a name the API server picks one: a retried POST would pick another.
    k = local_kube(cluster)
    spec = job_spec("unused", sidecar=["sleep", "30"])
    spec["metadata"] = {"generateName": "slow-gen-"}
    arm_fault(cluster, method="POST", path="*/jobs", lateAnswerMs=int(BEYOND * 1000))
    run_id = _run_id()
    run = bounded(lambda: k.env(spec).execute(image="img:1", flow_run_id=run_id), HANG, "execute")
    assert run.name.startswith("slow-gen-")
    time.sleep(BEYOND)
    assert [j.metadata.name for j in jobs_of_run(k, run_id)] == [run.name], "one Job per execute"
    delete_and_assert_nothing_left(k, run)


def test_a_hung_server_is_a_clear_error_not_a_hang(cluster, cloud, short_requests):
    k = local_kube(cluster)
    cluster.inject_fault(latency=LATENCY, method="POST", path="*/jobs", times=1000)
    run_id = _run_id()
    with pytest.raises(KubeApiError) as info:
        bounded(
            lambda: k.env(job_spec(unique("hung"))).execute(image="img:1", flow_run_id=run_id), HANG
        )
    assert info.value.reason == "Unreachable"
    assert "no answer within" in str(info.value) and "KJENV_REQUEST_TIMEOUT" in str(info.value)
    assert secrets_of_run(k, run_id) == [], "the Secret of a Job that was not created"


def test_status_and_delete_on_a_hung_server_fail_clearly(cluster, short_requests):
    k = local_kube(cluster)
    run = k.env(job_spec(unique("hungst"), sidecar=["sleep", "30"])).execute(image="img:1")
    cluster.inject_fault(latency=LATENCY, method="GET", path="*/jobs/*", times=1000)
    cluster.inject_fault(latency=LATENCY, method="DELETE", times=1000)
    for call in (run.status, run.delete):
        with pytest.raises(KubeApiError) as info:
            bounded(call, HANG, call.__name__)
        assert info.value.reason == "Unreachable"
    cluster.clear_faults()
    delete_and_assert_nothing_left(k, run)


def test_slow_watches_do_not_stop_the_wait(cluster, short_requests, tmp_path):
    # Lists and watches answer after the request limit: they are opened again, and the wait
    # still sees the Job complete.
    k = local_kube(cluster)
    path = flow_file(tmp_path, PrintFlow(["slow watch"], sleep=0.5))
    run = k.env(job_spec(unique("slowwatch"))).execute(flow_location=path, image="img:1")
    cluster.inject_fault(latency=BEYOND, method="GET", path="*/jobs", times=3)
    cluster.inject_fault(latency=BEYOND, method="GET", path="*/pods", times=3)
    bounded(lambda: run.wait(timeout=60), 70, "wait")
    delete_and_assert_nothing_left(k, run)


def test_wait_times_out_on_a_hung_server(cluster, short_requests):
    k = local_kube(cluster)
    run = k.env(job_spec(unique("hungwait"), sidecar=["sleep", "30"])).execute(image="img:1")
    cluster.inject_fault(latency=LATENCY, method="GET", times=1000)
    with pytest.raises(TimeoutError):
        bounded(lambda: run.wait(timeout=1.5), HANG, "wait")
    cluster.clear_faults()
    delete_and_assert_nothing_left(k, run)


# ---- faults while waiting ----------------------------------------------------------------------


def test_wait_retries_through_faults_on_lists_and_watches(cluster, tmp_path):
    k = local_kube(cluster)
    path = flow_file(tmp_path, PrintFlow(["done"], sleep=0.5))
    run = k.env(job_spec(unique("wfault"))).execute(flow_location=path, image="img:1")
    cluster.inject_fault(503, method="GET", path="*/jobs", times=3)
    cluster.inject_fault(reset=True, method="GET", path="*/pods", times=3)
    bounded(lambda: run.wait(timeout=60), 70, "wait")
    delete_and_assert_nothing_left(k, run)


def succeeds_despite(k, run, disrupt) -> None:
    """``run.wait()`` returns in time while ``disrupt`` runs in another thread; the Job
    succeeded, and deleting it leaves nothing behind."""
    t = threading.Thread(target=disrupt)
    t.start()
    bounded(lambda: run.wait(timeout=60), 70, "wait")
    t.join()
    assert run.status()["phase"] == "Succeeded"
    delete_and_assert_nothing_left(k, run)


def test_resets_of_resumed_watches(cluster, tmp_path):
    # Every watch is cut (410) while the flow runs; the watches opened again are reset.
    k = local_kube(cluster)
    path = flow_file(tmp_path, PrintFlow(["reset watch"], sleep=1.5))
    run = k.env(job_spec(unique("wreset"))).execute(flow_location=path, image="img:1")
    wait_until(lambda: run.status()["active"], timeout=30, what="the pod to run")

    def disrupt():
        time.sleep(0.3)
        cluster.inject_fault(reset=True, method="GET", times=6)
        cluster.expire_watches()

    succeeds_despite(k, run, disrupt)


def test_wait_survives_expired_watches_and_a_listener_restart(cluster, tmp_path):
    k = local_kube(cluster)
    path = flow_file(tmp_path, PrintFlow(["slow"], sleep=2.5))
    run = k.env(job_spec(unique("resume"))).execute(flow_location=path, image="img:1")

    def disrupt():
        time.sleep(0.5)
        cluster.expire_watches()
        time.sleep(0.5)
        cluster.restart_listener()
        time.sleep(0.5)
        cluster.expire_watches()

    succeeds_despite(k, run, disrupt)


def test_a_forbidden_watch_is_a_clear_error_not_a_hang(cluster):
    # The API refuses to list the pods (RBAC): the wait reports it instead of waiting forever.
    k = local_kube(cluster)
    run = k.env(job_spec(unique("forbid"), sidecar=["sleep", "30"])).execute(image="img:1")
    cluster.inject_fault(403, method="GET", path="*/pods", times=1)
    with pytest.raises(KubeApiError) as info:
        bounded(lambda: run.wait(timeout=30), HANG, "wait")
    assert info.value.status == 403
    delete_and_assert_nothing_left(k, run)


# ---- the pod killed mid-run --------------------------------------------------------------------

KILLABLE = """
import os, time
marker = {marker!r}
if os.path.exists(marker):
    print("second attempt", flush=True)
else:
    open(marker, "w").close()
    print("first attempt", flush=True)
    time.sleep(60)
"""


class MarkerFlow:
    """First run: leaves a marker and sleeps (to be killed); later runs finish at once."""

    def __init__(self, marker: str):
        self.marker = marker

    def run(self) -> None:
        exec(KILLABLE.format(marker=self.marker))


def _flow_pid(k, run) -> int:
    """The pid of the running flow container's process (the local cluster's containerID)."""

    def running():
        for pod in pods_of_job(k, run.uid):
            for c in (pod.status and pod.status.container_statuses) or []:
                if c.name == "flow" and c.state.running and c.container_id:
                    return int(c.container_id.removeprefix("local://"))
        return None

    return wait_until(running, timeout=30, what="the flow container to run")


def _kill_after_first_attempt(k, run, marker: str) -> None:
    pid = _flow_pid(k, run)
    wait_until(lambda: os.path.exists(marker), timeout=30, what="the flow to start")
    os.killpg(pid, signal.SIGKILL)  # the container's process group: sh and the flow's python


@pytest.mark.parametrize("backoff_limit", [0, 1])
def test_the_pod_killed_mid_run(cluster, cloud, tmp_path, backoff_limit):
    k = local_kube(cluster)
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the pod cannot import tests
    marker = str(tmp_path / f"started-{uuid.uuid4().hex[:6]}")
    flow_path = tmp_path / "marker-flow.pkl"
    flow_path.write_bytes(cloudpickle.dumps(MarkerFlow(marker), protocol=4))
    spec = job_spec(unique("killed"), backoff_limit=backoff_limit)
    run = k.env(spec).execute(flow_location=str(flow_path), image="img:1", flow_run_id=_run_id())
    _kill_after_first_attempt(k, run, marker)
    if backoff_limit == 0:
        # No retry left: a clear failure naming the kill (SIGKILL: exit code 128 + 9).
        with pytest.raises(JobFailedError) as info:
            bounded(lambda: run.wait(timeout=60), 70, "wait")
        assert info.value.reason == "BackoffLimitExceeded"
        assert info.value.exit_code == 137
        assert "exited with code 137" in str(info.value)
        assert run.status()["failed"] == 1
    else:
        # The Job's backoff replaces the pod; the second attempt succeeds.
        bounded(lambda: run.wait(timeout=60), 70, "wait")
        status = run.status()
        assert (status["phase"], status["failed"], status["succeeded"]) == ("Succeeded", 1, 1)
        assert "second attempt" in run.logs()
    assert_one_job_and_owned_secret(k, run)
    delete_and_assert_nothing_left(k, run)
