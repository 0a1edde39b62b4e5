"""JobRun: status(), events(), logs(), delete() — their shapes and that delete never orphans."""

from __future__ import annotations

import pytest
from kube_cluster import (
    PrintFlow,
    flow_file,
    job_spec,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    local_kube,
    unique,
    wait_until,
)

from kjenv import JobFailedError, KubeApiError


def _pods(kube, run):
    core, _ = kube.client()
    return core.list_namespaced_pod(
        kube.namespace, label_selector=f"controller-uid={run.uid}"
    ).items


def test_delete_never_orphans_pods(kube):
    run = kube.env(job_spec(unique("del"), sidecar=["sleep", "60"])).execute(image=kube.image)
    wait_until(lambda: run.status()["pods"], timeout=30)
    assert _pods(kube, run)
    run.delete()
    wait_until(lambda: not _pods(kube, run), timeout=30)
    with pytest.raises(KubeApiError) as info:
        run.status()
    assert info.value.status == 404
    run.delete()  # deleting again is fine


def test_delete_foreground_and_orphan_refused(kube):
    run = kube.env(job_spec(unique("fg"), sidecar=["sleep", "60"])).execute(image=kube.image)
    with pytest.raises(ValueError, match="never orphans"):
        run.delete(propagation="Orphan")
    run.delete(propagation="Foreground")
    wait_until(lambda: not _pods(kube, run), timeout=30)


def test_status_shape_while_running(kube):
    run = kube.env(job_spec(unique("st"), sidecar=["sleep", "60"])).execute(image=kube.image)
    status = wait_until(lambda: (s := run.status())["phase"] == "Running" and s, timeout=30)
    assert status["name"] == run.name and status["namespace"] == run.namespace
    assert status["active"] == 1 and status["succeeded"] == 0
    assert isinstance(status["conditions"], list)
    [pod] = status["pods"]
    assert pod["phase"] == "Running"
    names = {c["name"] for c in pod["containers"]}
    assert names == {"flow", "sidecar"}
    for c in pod["containers"]:
        assert c["state"] in ("waiting", "running", "terminated")
        assert set(c) == {"name", "state", "reason", "exit_code", "restart_count"}
    assert isinstance(status["last_event"], str)
    run.delete()


def test_events_and_the_last_event_of_a_failed_job(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow([], fail=True))
    run = kube.env(job_spec(unique("ev"))).execute(flow_location=path, image=kube.image)
    with pytest.raises(JobFailedError):
        run.wait(timeout=60)
    # wait() returns once the outcome is decided (FailureTarget on a real server); the controller
    # records the Job's own failure event a moment later, when it sets Failed.
    wait_until(
        lambda: "BackoffLimitExceeded" in [e["reason"] for e in run.events()],
        timeout=60,
        what="the Job's BackoffLimitExceeded event",
    )
    events = run.events()
    assert events
    for e in events:
        assert set(e) == {"type", "reason", "message", "object", "count", "time"}
        assert e["object"].startswith(("Job/", "Pod/"))
    reasons = [e["reason"] for e in events]
    assert "SuccessfulCreate" in reasons and "BackoffLimitExceeded" in reasons
    # Events come oldest first, so the Job's failure is after the pod it created started.
    assert reasons.index("BackoffLimitExceeded") > reasons.index("SuccessfulCreate")
    assert "BackoffLimitExceeded" in run.status()["last_event"]
    run.delete()


def test_logs_of_the_flow_and_of_another_container(local_cluster, tmp_path):
    k = local_kube(local_cluster)
    path = flow_file(tmp_path, PrintFlow(["flow says hi"]))
    spec = job_spec(unique("logs"), sidecar=["sh", "-c", "echo sidecar says hi"])
    run = k.env(spec).execute(flow_location=path, image="img:1")
    assert run.container == "flow"
    run.wait(timeout=60)
    assert "flow says hi" in run.logs()
    assert run.logs(container="sidecar") == "sidecar says hi\n"
    assert "flow says hi" in run.logs(follow=True)
    run.delete()


def test_logs_before_any_pod(kube):
    spec = job_spec(unique("nopod"))
    spec["spec"]["parallelism"] = 0  # a Job that starts no pod
    run = kube.env(spec).execute(image=kube.image)
    with pytest.raises(KubeApiError) as info:
        run.logs()
    assert info.value.status == 404 and "no pods yet" in str(info.value)
    assert run.status()["phase"] == "Pending"
    run.delete()


def test_repr_and_attributes(kube):
    run = kube.env(job_spec(unique("repr"), sidecar=["sleep", "30"])).execute(
        image=kube.image, flow_run_id="run-repr"
    )
    assert run.flow_run_id == "run-repr"
    assert repr(run) == f"<JobRun {run.namespace}/{run.name} uid={run.uid} flow_run_id=run-repr>"
    run.delete()
