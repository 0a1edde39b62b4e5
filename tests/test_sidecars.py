"""Sidecars: the flow container's exit decides the run. A classic sidecar (a second container
that never exits) keeps the pod Running after the flow container ended: the wait reports the
flow's outcome at once and, with ``stop_sidecars`` (the default), deletes the Job with its pods.
A native sidecar (an init container with ``restartPolicy: Always``) is stopped by the kubelet
once the flow container ended: the Job finishes by itself and kjenv leaves it alone.
Each test runs on the local cluster and, with ``KJENV_TEST_KUBECONFIG``, on the real control
plane (``-k real``).
"""

from __future__ import annotations

import pytest
from kube_cluster import (
    PrintFlow,
    flow_file,
    job_spec,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    pods_of_job,
    unique,
    wait_until,
)

from kjenv import JobFailedError, KubernetesJobEnvironment

# A sidecar that outlives any test by far: only kjenv can end its pod.
FOREVER = ["sleep", "3600"]


def gone(kube, run) -> bool:
    _, batch = kube.client()
    jobs = batch.list_namespaced_job(kube.namespace, field_selector=f"metadata.name={run.name}")
    return not jobs.items and not pods_of_job(kube, run.uid)


def test_a_classic_sidecar_does_not_hide_the_flows_success(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["the flow is done"]))
    run = kube.env(job_spec(unique("side-ok"), sidecar=FOREVER)).execute(
        flow_location=path, image=kube.image
    )
    try:
        result = run.wait(timeout=120, stream_logs=True)
        assert result["succeeded"] == 1 and result["failed"] == 0, result
        assert len(result["pods"]) == 1
        # The pod would run for an hour: kjenv deleted the Job, its pods go with it.
        wait_until(lambda: gone(kube, run), timeout=60, what="the Job and its pod to go")
    finally:
        run.delete()


def test_a_classic_sidecar_does_not_hide_the_flows_failure(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["about to fail"], fail=True))
    spec = job_spec(unique("side-fail"), backoff_limit=2, sidecar=FOREVER)
    run = kube.env(spec).execute(flow_location=path, image=kube.image)
    try:
        with pytest.raises(JobFailedError) as info:
            run.wait(timeout=120)
        err = info.value
        assert err.reason == "FlowFailed"
        assert err.exit_code == 1
        first = str(err).splitlines()[0]
        assert "container flow exited with code 1 while container sidecar kept the pod" in first
        assert f"kjenv deleted job {run.name} so that its sidecars stop" in first, first
        assert "the flow failed on purpose" in err.log_tail
        wait_until(lambda: gone(kube, run), timeout=60, what="the Job and its pod to go")
    finally:
        run.delete()


def test_stop_sidecars_false_leaves_the_job_running(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["done, sidecar stays"]))
    run = kube.env(job_spec(unique("side-keep"), sidecar=FOREVER)).execute(
        flow_location=path, image=kube.image
    )
    try:
        result = run.wait(timeout=120, stop_sidecars=False)
        assert result["succeeded"] == 1
        status = run.status()
        assert status["phase"] == "Running", status
        (pod,) = status["pods"]
        states = {c["name"]: (c["state"], c["exit_code"]) for c in pod["containers"]}
        assert states == {"flow": ("terminated", 0), "sidecar": ("running", None)}
    finally:
        run.delete()


def test_execute_wait_takes_stop_sidecars(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["done, sidecar stays"]))
    env = kube.env(job_spec(unique("side-exec"), sidecar=FOREVER))
    run = env.execute(
        flow_location=path, image=kube.image, wait=True, timeout=120, stop_sidecars=False
    )
    try:
        assert run.status()["phase"] == "Running"
    finally:
        run.delete()


def test_the_cli_keeps_sidecars_when_asked(kube, tmp_path):
    import yaml
    from kube_cluster import kjenv_cli

    path = flow_file(tmp_path, PrintFlow(["done, sidecar stays"]))
    name = unique("side-cli")
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(job_spec(name, sidecar=FOREVER)))
    args = ["submit", str(spec), "--image", kube.image, "--flow-file-path", path, "--wait"]
    args += ["--kubeconfig", kube.kubeconfig, "--namespace", kube.namespace, "--keep-sidecars"]
    result = kjenv_cli(*args, timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"kjenv: job {name} succeeded" in result.stderr, result.stderr
    _, batch = kube.client()
    assert batch.read_namespaced_job(name, kube.namespace).status.active == 1
    kjenv_cli("delete", name, "-n", kube.namespace, "--kubeconfig", kube.kubeconfig)


def test_a_bad_failed_create_grace_is_refused_before_anything_is_created(kube, tmp_path):
    from kube_cluster import jobs_of_run, kjenv_cli

    env = kube.env(job_spec(unique("grace")))
    with pytest.raises(ValueError, match="failed_create_grace"):
        env.execute(image=kube.image, flow_run_id="grace-run", wait=True, failed_create_grace=-1)
    with pytest.raises(ValueError, match="options of the wait: pass wait=True"):
        env.execute(image=kube.image, flow_run_id="grace-run", stream_logs=True)
    assert jobs_of_run(kube, "grace-run") == []
    flow_py = tmp_path / "f.py"
    flow_py.write_text("class F:\n    def run(self):\n        pass\n\nflow = F()\n")
    result = kjenv_cli("run", str(flow_py), "--local", "--failed-create-grace", "-1")
    assert (result.returncode, result.stderr) == (
        2,
        "kjenv: error: --failed-create-grace must not be negative\n",
    )


def test_a_sidecar_that_ends_by_itself_needs_nothing(kube, tmp_path):
    """A second container that exits: the pod ends by itself, the Job completes."""
    path = flow_file(tmp_path, PrintFlow(["short"]))
    run = kube.env(job_spec(unique("side-end"), sidecar=["true"])).execute(
        flow_location=path, image=kube.image
    )
    try:
        result = run.wait(timeout=120)
        assert result["succeeded"] == 1
    finally:
        run.delete()


def test_native_sidecars_are_rendered_unchanged():
    native = {
        "name": "mesh",
        "image": "proxy:1",
        "restartPolicy": "Always",
        "command": ["sleep", "infinity"],
    }
    spec = job_spec("native")
    spec["spec"]["template"]["spec"]["initContainers"] = [native]
    job = KubernetesJobEnvironment(job_spec=spec).render(image="img:1")
    pod = job["spec"]["template"]["spec"]
    assert pod["initContainers"] == [native]
    # The flow container is the first regular container; the rule names it, not the sidecar.
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["onExitCodes"]["containerName"] == "flow"


def native_spec(name: str, **kw) -> dict:
    """A Job whose pod has a native sidecar (`mesh`, running for an hour) before the flow."""
    spec = job_spec(name, **kw)
    mesh = {"name": "mesh", "image": "busybox:1.36", "restartPolicy": "Always", "command": FOREVER}
    spec["spec"]["template"]["spec"]["initContainers"] = [mesh]
    return spec


def the_job(kube, run):
    _, batch = kube.client()
    return batch.read_namespaced_job(run.name, kube.namespace)


def mesh_status(pod) -> dict:
    (mesh,) = [c for c in pod.status.init_container_statuses if c.name == "mesh"]
    return mesh


def test_a_native_sidecar_runs_beside_the_flow_and_the_job_completes(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["flow beside its sidecar"]))
    run = kube.env(native_spec(unique("native-ok"))).execute(flow_location=path, image=kube.image)
    try:
        result = run.wait(timeout=120, stream_logs=True)
        assert result["succeeded"] == 1 and result["failed"] == 0, result
        # The kubelet stopped the sidecar and the Job completed by itself: kjenv deleted nothing.
        job = the_job(kube, run)
        done = {c.type: c.status for c in job.status.conditions or []}
        assert done.get("Complete") == "True", done
        (pod,) = pods_of_job(kube, run.uid)
        assert pod.status.phase == "Succeeded"
        mesh = mesh_status(pod)
        assert mesh.state.terminated is not None, mesh.state
        assert mesh.restart_count == 0
        assert not mesh.ready and not mesh.started
        conditions = {c.type: c.status for c in pod.status.conditions}
        assert conditions["Initialized"] == "True", conditions
        assert "flow beside its sidecar" in run.logs()
    finally:
        run.delete()


def test_a_native_sidecars_log_is_streamed_beside_the_flows(kube, tmp_path, capfd):
    path = flow_file(tmp_path, PrintFlow(["the flow speaks"], sleep=1))
    spec = native_spec(unique("native-log"))
    mesh = spec["spec"]["template"]["spec"]["initContainers"][0]
    mesh["command"] = ["sh", "-c", "echo mesh is up; exec sleep 3600"]
    run = kube.env(spec).execute(flow_location=path, image=kube.image)
    try:
        assert run.wait(timeout=120, stream_logs=True)["succeeded"] == 1
        lines = capfd.readouterr().out.splitlines()
        # Two containers ran in the pod: each line names its container.
        assert "[mesh] mesh is up" in lines, lines
        assert "[flow] the flow speaks" in lines, lines
    finally:
        run.delete()


def test_a_native_sidecar_does_not_hide_the_flows_failure(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["about to fail"], fail=True))
    run = kube.env(native_spec(unique("native-fail"))).execute(flow_location=path, image=kube.image)
    try:
        with pytest.raises(JobFailedError) as info:
            run.wait(timeout=120)
        err = info.value
        assert err.reason == "BackoffLimitExceeded", str(err)
        assert err.exit_code == 1
        assert "the flow failed on purpose" in err.log_tail
        assert "exited with code 1" in str(err)
        assert "kjenv deleted" not in str(err)
        job = the_job(kube, run)
        assert {c.type: c.status for c in job.status.conditions}.get("Failed") == "True"
        (pod,) = pods_of_job(kube, run.uid)
        assert pod.status.phase == "Failed"
        assert mesh_status(pod).state.terminated is not None
    finally:
        run.delete()


def test_a_native_sidecar_is_running_while_the_flow_runs(kube, tmp_path):
    """Started in its order, ready, the pod Initialized and Running: then the flow ends."""
    path = flow_file(tmp_path, PrintFlow(["slow flow"], sleep=3))
    run = kube.env(native_spec(unique("native-run"))).execute(flow_location=path, image=kube.image)
    try:

        def running():
            pods = pods_of_job(kube, run.uid)
            flows = [c for p in pods for c in p.status.container_statuses or [] if c.state.running]
            return pods[0] if flows else None

        pod = wait_until(running, timeout=60, what="the flow container to run")
        mesh = mesh_status(pod)
        assert mesh.state.running is not None and mesh.started and mesh.ready, mesh
        assert pod.status.phase == "Running"
        conditions = {c.type: c.status for c in pod.status.conditions}
        assert conditions["Initialized"] == "True", conditions
        assert run.wait(timeout=120)["succeeded"] == 1
    finally:
        run.delete()
