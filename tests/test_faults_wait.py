"""Faults while kjenv waits and reads logs (issue 14, classes 5 and 6): a wait whose API is gone
or keeps failing ends with ``KubeApiError`` after its retry budget (never a hang, never a
failure the API did not report); log streams resume after a fault without losing or repeating
a line. Each test says, with the official client, which Jobs and Secrets exist afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from kube_cluster import (
    PrintFlow,
    auth_token,
    bounded,
    flow_file,
    job_spec,
    jobs_of_run,
    local_kube,
    secrets_of_run,
    unique,
    wait_until,
)
from test_faults import assert_one_job_and_owned_secret, delete_and_assert_nothing_left

from kjenv import KubeApiError
from kjenv.testing import LocalCluster

TOKEN = "wait-fault-token-not-for-anyone"
# The wait's retry budget in these tests (seconds of failing lists and watches in a row).
BUDGET = 2
# A hang guard: at least 10x what these calls take on this loaded 2-core machine (~5 s).
HANG = 90
LINES = [f"line {i:02d}" for i in range(40)]


@pytest.fixture
def cloud(monkeypatch):
    """Cloud mode: every execute creates the run's Secret, owned by its Job."""
    with auth_token(monkeypatch, TOKEN):
        yield


@pytest.fixture
def short_budget(monkeypatch):
    """A short wait retry budget and request time limit, so that a give-up shows quickly."""
    monkeypatch.setenv("KJENV_WAIT_RETRY_BUDGET", str(BUDGET))
    monkeypatch.setenv("KJENV_REQUEST_TIMEOUT", "1")


def _only_its_job_then_nothing_left(k, run) -> None:
    """The run's Job, and only it, is there (with the official client); after delete, nothing."""
    assert [j.metadata.uid for j in jobs_of_run(k, run.flow_run_id)] == [run.uid]
    delete_and_assert_nothing_left(k, run)


def _run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


def _running_job(k, name: str, directory):
    """A Job whose flow keeps running for a minute, and its run."""
    path = flow_file(directory, PrintFlow(["started"], sleep=60))
    spec = job_spec(unique(name))
    return k.env(spec).execute(flow_location=path, image="img:1", flow_run_id=_run_id())


# ---- class 5: a wait on a broken or vanished API ends -----------------------------------------


@pytest.mark.parametrize(
    ("fault", "expect"),
    [({"status": 500}, 500), ({"status": 503}, 503), ({"reset": True}, "Unreachable")],
    ids=["500", "503", "reset"],
)
def test_a_failing_job_watch_ends_the_wait(
    cluster, cloud, short_budget, tmp_path, caplog, fault, expect
):
    k = local_kube(cluster)
    run = _running_job(k, "wbroken", tmp_path)
    cluster.inject_fault(method="GET", path="*/jobs*", times=100000, **fault)
    start = time.monotonic()
    with pytest.raises(KubeApiError) as info:
        bounded(run.wait, HANG, "wait")
    assert time.monotonic() - start >= BUDGET, "the budget is spent before giving up"
    if expect == "Unreachable":
        assert info.value.reason == "Unreachable"
    else:
        assert info.value.status == expect
    message = str(info.value)
    assert "\n" not in message and len(message) <= 300, message
    assert "job watch" in message and "KJENV_WAIT_RETRY_BUDGET" in message, message
    # On the way, it said (at WARNING, on the kjenv logger) that it was retrying and why.
    retrying = [r for r in caplog.records if r.name == "kjenv" and "retrying" in r.getMessage()]
    assert retrying and all(r.levelname == "WARNING" for r in retrying), caplog.text
    assert "job watch" in retrying[0].getMessage(), retrying[0].getMessage()
    cluster.clear_faults()
    # The wait gave up; the Job and its Secret are untouched.
    assert_one_job_and_owned_secret(k, run)
    delete_and_assert_nothing_left(k, run)


def test_a_hung_server_ends_the_wait_as_unreachable(cluster, short_budget, tmp_path):
    # Every list and watch answers only after 300 s: each request hits its time limit.
    k = local_kube(cluster)
    run = _running_job(k, "whung", tmp_path)
    cluster.inject_fault(latency=300, method="GET", path="*/jobs*", times=100000)
    with pytest.raises(KubeApiError) as info:
        bounded(run.wait, HANG, "wait")
    assert info.value.reason == "Unreachable" and "job watch" in str(info.value)
    cluster.clear_faults()
    _only_its_job_then_nothing_left(k, run)


def test_a_failing_pod_watch_ends_the_wait(cluster, short_budget, tmp_path):
    k = local_kube(cluster)
    run = _running_job(k, "wpods", tmp_path)
    cluster.inject_fault(503, method="GET", path="*/pods*", times=100000)
    with pytest.raises(KubeApiError) as info:
        bounded(run.wait, HANG, "wait")
    assert info.value.status == 503 and "pod watch" in str(info.value)
    cluster.clear_faults()
    assert [j.metadata.uid for j in jobs_of_run(k, run.flow_run_id)] == [run.uid]
    assert secrets_of_run(k, run.flow_run_id) == [], "no Secret outside Cloud mode"
    delete_and_assert_nothing_left(k, run)


def _wait_through_a_stop(own, run):
    """``run.wait()`` while ``own`` is stopped a second in: the error it ends with."""
    stopper = threading.Timer(1.0, own.stop)
    stopper.start()
    try:
        with pytest.raises(KubeApiError) as info:
            bounded(run.wait, HANG, "wait")
    finally:
        stopper.join()
    return info.value


def test_a_stopped_cluster_ends_the_wait_as_unreachable(short_budget, monkeypatch):
    # The API goes away while the wait watches a pending pod: the wait says so, after its
    # budget, instead of retrying for ever.
    with LocalCluster() as own:
        k = local_kube(own)
        spec = job_spec(unique("wstop"), simulate="unschedulable")
        with auth_token(monkeypatch, TOKEN):
            run = k.env(spec).execute(image="img:1", flow_run_id=_run_id())
        assert_one_job_and_owned_secret(k, run)
        error = _wait_through_a_stop(own, run)
    assert error.reason == "Unreachable", str(error)
    assert "KJENV_WAIT_RETRY_BUDGET" in str(error) and len(str(error)) <= 300


def test_a_stopped_cluster_running_a_pod_is_no_job_failure(short_budget, monkeypatch, tmp_path):
    with LocalCluster() as own:
        k = local_kube(own)
        with auth_token(monkeypatch, TOKEN):
            run = _running_job(k, "wstoprun", tmp_path)
        assert_one_job_and_owned_secret(k, run)
        wait_until(lambda: run.status()["phase"] == "Running", timeout=30, what="the pod to run")
        error = _wait_through_a_stop(own, run)
    assert error.reason == "Unreachable", str(error)


# ---- class 6: log lines survive faults --------------------------------------------------------


def _printed_once(out: str, lines: list[str]) -> None:
    printed = [line for line in out.splitlines() if line.startswith("line ")]
    assert printed == lines, f"printed {len(printed)} of {len(lines)}: {printed[:5]}…"


@pytest.mark.parametrize(
    "fault", [{"status": 503}, {"reset": True}, {"status": 500, "times": 3}], ids=str
)
def test_a_fault_on_the_first_log_read_loses_no_line(cluster, cloud, tmp_path, capfd, fault):
    k = local_kube(cluster)
    path = flow_file(tmp_path, PrintFlow(LINES, sleep=0.5))
    run = k.env(job_spec(unique("wlog"))).execute(
        flow_location=path, image="img:1", flow_run_id=_run_id()
    )
    cluster.inject_fault(method="GET", path="*/log*", **{"times": 1, **fault})
    capfd.readouterr()
    bounded(lambda: run.wait(timeout=60, stream_logs=True), HANG, "wait")
    _printed_once(capfd.readouterr().out, LINES)
    assert_one_job_and_owned_secret(k, run)
    delete_and_assert_nothing_left(k, run)


class TwoPartFlow:
    """Prints the first half of LINES, pauses (for a fault), prints the second half."""

    def __init__(self, pause: float):
        self.pause = pause

    def run(self) -> None:
        import time

        for line in LINES[:20]:
            print(line, flush=True)
        time.sleep(self.pause)
        for line in LINES[20:]:
            print(line, flush=True)


def _two_part_run(k, tmp_path, pause: float):
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    path = tmp_path / f"two-{uuid.uuid4().hex[:6]}.pkl"
    path.write_bytes(cloudpickle.dumps(TwoPartFlow(pause)))
    return k.env(job_spec(unique("wtwo"))).execute(
        flow_location=str(path), image="img:1", flow_run_id=_run_id()
    )


def _first_half_logged(run):
    def logged():
        try:
            return LINES[19] in run.logs()
        except KubeApiError:  # the container is not started yet
            return False

    return logged


def test_a_wait_streams_every_line_once_across_a_dropped_connection(cluster, tmp_path, capfd):
    k = local_kube(cluster)
    run = _two_part_run(k, tmp_path, pause=3.0)
    capfd.readouterr()
    waiting = threading.Thread(target=lambda: run.wait(timeout=60, stream_logs=True))
    waiting.start()
    wait_until(_first_half_logged(run), timeout=30, what="the first half")
    time.sleep(0.5)
    cluster.restart_listener()  # every open stream is cut mid-way
    waiting.join(HANG)
    assert not waiting.is_alive(), "wait did not return"
    _printed_once(capfd.readouterr().out, LINES)
    _only_its_job_then_nothing_left(k, run)


def test_logs_follow_resumes_after_a_dropped_connection(cluster, tmp_path):
    k = local_kube(cluster)
    run = _two_part_run(k, tmp_path, pause=3.0)
    wait_until(_first_half_logged(run), timeout=30, what="the first half")
    result: dict = {}
    follower = threading.Thread(target=lambda: result.update(text=run.logs(follow=True)))
    follower.start()
    time.sleep(1.0)
    cluster.restart_listener()
    follower.join(HANG)
    assert not follower.is_alive(), "logs(follow=True) did not return"
    _printed_once(result["text"], LINES)
    _only_its_job_then_nothing_left(k, run)


def test_logs_follow_retries_a_failed_first_read(cluster, tmp_path):
    k = local_kube(cluster)
    run = _two_part_run(k, tmp_path, pause=0.5)
    wait_until(_first_half_logged(run), timeout=30, what="the first half")
    cluster.inject_fault(503, method="GET", path="*/log*", times=1)
    text = bounded(lambda: run.logs(follow=True), HANG, "logs(follow=True)")
    _printed_once(text, LINES)
    delete_and_assert_nothing_left(k, run)
