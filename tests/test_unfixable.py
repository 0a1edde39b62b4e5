"""Failures that no retry can fix: a flow that cannot be loaded (its file missing, or not
unpickling) and a command that cannot run (not found, a container that cannot start). The wait
fails at the first attempt with the line that says why, and the Job is not retried: with
``restartPolicy: Never`` the rendered Job's podFailurePolicy fails it (a real Job controller),
else (``OnFailure``, or a controller that does not apply the rule) the wait sets its
``backoffLimit`` to 0. Each test runs on the local cluster and, with ``KJENV_TEST_KUBECONFIG``,
on the real control plane (``-k real``).
"""

from __future__ import annotations

from typing import Any

import pytest
from kube_cluster import (
    Kube,
    job_spec,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    pods_of_job,
    unique,
    wait_until,
)

from kjenv import JobFailedError, KubernetesJobEnvironment
from kjenv._common import EXIT_FLOW_NOT_LOADED
from kjenv._runflow import write_termination_message

RETRIES = 4  # a backoffLimit that would take minutes to burn through


def first_line(err: BaseException) -> str:
    return str(err).splitlines()[0]


def failed_once(kube: Kube, run: Any, restarts_in_place: bool = False) -> Any:
    """The Job ends Failed having made exactly one pod: no retry was made (under ``OnFailure``
    the failed Job's pod, restarted in place, is deleted with it). Returns the Job."""
    _, batch = kube.client()
    job = wait_until(
        lambda: (
            (j := batch.read_namespaced_job(run.name, kube.namespace)).status.conditions
            and any(c.type == "Failed" and c.status == "True" for c in j.status.conditions)
            and j
        ),
        timeout=60,
        what="the Job to fail",
    )
    pods = pods_of_job(kube, run.uid)
    assert len(pods) == (0 if restarts_in_place else 1), [p.metadata.name for p in pods]
    made = [e for e in run.events() if e["reason"] == "SuccessfulCreate"]
    assert sum(e["count"] for e in made) == 1, made
    return job


def run_without_retries(kube: Kube, spec: dict, **execute: Any) -> JobFailedError:
    run = kube.env(spec).execute(image=kube.image, **execute)
    try:
        with pytest.raises(JobFailedError) as info:
            run.wait(timeout=120)
        job = failed_once(kube, run)
        (failed,) = [c for c in job.status.conditions if c.type == "Failed"]
        if kube.kind == "real":
            # The real Job controller applies the rendered podFailurePolicy itself.
            assert failed.reason == "PodFailurePolicy", failed
        first = first_line(info.value)
        assert (
            "the Job's podFailurePolicy failed it at once" in first
            or "kjenv set the Job's backoffLimit to 0 so that it is not retried" in first
        ), first
        return info.value
    finally:
        run.delete()


def test_missing_flow_file_fails_at_the_first_attempt(kube, tmp_path):
    missing = str(tmp_path / "no-such-flow.prefect")
    spec = job_spec(unique("noflow"), backoff_limit=RETRIES)
    err = run_without_retries(kube, spec, flow_location=missing)
    assert err.reason in ("FlowNotLoaded", "PodFailurePolicy"), err
    assert err.exit_code == EXIT_FLOW_NOT_LOADED
    first = first_line(err)
    assert f"kjenv: cannot read the flow file {missing}: FileNotFoundError" in first, first


def test_a_flow_that_does_not_unpickle_fails_at_the_first_attempt(kube, tmp_path):
    path = tmp_path / "garbage.prefect"
    path.write_bytes(b"\x80\x05 this is not a pickle")
    err = run_without_retries(
        kube, job_spec(unique("badpickle"), backoff_limit=RETRIES), flow_location=str(path)
    )
    assert err.exit_code == EXIT_FLOW_NOT_LOADED
    assert f"kjenv: cannot load the flow from {path}" in first_line(err), err


def test_a_command_not_found_fails_at_the_first_attempt(kube):
    # The shell finds no `python`: exit code 127.
    spec = job_spec(
        unique("nocmd"),
        backoff_limit=RETRIES,
        flow_env=[{"name": "PATH", "value": "/kjenv-test/nothing-here"}],
    )
    err = run_without_retries(kube, spec)
    assert err.reason in ("CommandCannotRun", "PodFailurePolicy"), err
    assert err.exit_code == 127
    assert "not found" in first_line(err), err


def test_a_container_that_cannot_start_fails_at_the_first_attempt(kube):
    spec = job_spec(unique("nostart"), backoff_limit=RETRIES)
    spec["spec"]["template"]["spec"]["containers"][0]["workingDir"] = "/kjenv-test/no-such-dir"
    err = run_without_retries(kube, spec)
    assert err.reason in ("CommandCannotRun", "PodFailurePolicy"), err
    assert err.exit_code == 128
    assert "StartError" in first_line(err) or "no such file" in first_line(err), err


def test_on_failure_the_wait_stops_the_restarts(kube, tmp_path):
    spec = job_spec(unique("onfail"), backoff_limit=RETRIES, restartPolicy="OnFailure")
    run = kube.env(spec).execute(image=kube.image, flow_location=str(tmp_path / "missing"))
    try:
        with pytest.raises(JobFailedError) as info:
            run.wait(timeout=120)
        first = first_line(info.value)
        assert info.value.reason == "FlowNotLoaded", first
        assert "kjenv: cannot read the flow file" in first, first
        assert "kjenv set the Job's backoffLimit to 0 so that it is not retried" in first
        _, batch = kube.client()
        assert batch.read_namespaced_job(run.name, kube.namespace).spec.backoff_limit == 0
        failed_once(kube, run, restarts_in_place=True)
    finally:
        run.delete()


def test_a_failing_flow_is_still_retried(kube, tmp_path):
    """An ordinary failure (exit 1) is the backoffLimit's to retry, as before."""
    from kube_cluster import PrintFlow, flow_file

    path = flow_file(tmp_path, PrintFlow(["once more"], fail=True))
    run = kube.env(job_spec(unique("retry"), backoff_limit=1)).execute(
        flow_location=path, image=kube.image
    )
    try:
        with pytest.raises(JobFailedError) as info:
            run.wait(timeout=120)
        assert info.value.reason == "BackoffLimitExceeded"
        assert len(pods_of_job(kube, run.uid)) == 2
    finally:
        run.delete()


# ---- without a cluster -------------------------------------------------------------------------


def test_render_puts_the_fail_job_rule_after_the_user_s_only_under_never():
    theirs = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    spec = job_spec("pfp")
    spec["spec"]["podFailurePolicy"] = {"rules": [theirs]}
    job = KubernetesJobEnvironment(job_spec=spec).render(image="img:1")
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules == [
        theirs,
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": "flow",
                "operator": "In",
                "values": [EXIT_FLOW_NOT_LOADED, 126, 127, 128],
            },
        },
    ]
    on_failure = KubernetesJobEnvironment(
        job_spec=job_spec("pfp", restartPolicy="OnFailure")
    ).render(image="img:1")
    assert "podFailurePolicy" not in on_failure["spec"]


def test_the_termination_message_is_written_only_where_the_kubelet_made_the_file(tmp_path):
    log = tmp_path / "termination-log"
    log.write_text("old text that is longer")
    write_termination_message("kjenv: cannot read the flow file /f", str(log))
    assert log.read_text() == "kjenv: cannot read the flow file /f"
    missing = tmp_path / "no-such-file"
    write_termination_message("x", str(missing))
    assert not missing.exists()
