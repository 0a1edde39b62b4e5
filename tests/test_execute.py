"""execute() and JobRun.wait() against a cluster over real HTTPS: outcomes, fail-fast rules,
adoption, concurrency, cluster config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kube_cluster import (
    BAD_IMAGE,
    PrintFlow,
    flow_file,
    job_spec,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    local_kube,
    unique,
)

import kjenv
from kjenv import ClusterConfigError, JobFailedError, JobTimeoutError, KubeApiError

# ---- outcomes ----------------------------------------------------------------------------------


def test_success_streams_the_flow_log(local_cluster, tmp_path, capsys):
    k = local_kube(local_cluster)
    path = flow_file(tmp_path, PrintFlow(["hello from the flow", "second line"]))
    run = k.env(job_spec(unique("ok"))).execute(
        flow_location=path, image="img:1", wait=True, timeout=60, stream_logs=True
    )
    out = capsys.readouterr().out
    assert "hello from the flow\nsecond line\n" in out
    status = run.status()
    assert status["phase"] == "Succeeded"
    assert status["succeeded"] == 1
    assert "hello from the flow" in run.logs()
    run.delete()


def test_flow_failure_is_backoff_limit_exceeded(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["about to fail"], fail=True))
    run = kube.env(job_spec(unique("fail"), backoff_limit=1)).execute(
        flow_location=path, image=kube.image
    )
    assert run.flow_run_id and run.uid and run.namespace == kube.namespace
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=60)
    err = info.value
    assert err.reason == "BackoffLimitExceeded"
    assert isinstance(err.exit_code, int) and err.exit_code != 0
    assert err.log_tail.strip()
    assert err.log_tail in str(err)
    assert f"exited with code {err.exit_code}" in str(err)
    status = run.status()
    assert status["phase"] == "Failed" and status["failed"] == 2
    assert len(status["pods"]) == 2
    run.delete()


def test_deadline_exceeded(kube, tmp_path):
    spec = job_spec(unique("deadline"), deadline=1)
    path = flow_file(tmp_path, PrintFlow([], sleep=60))
    run = kube.env(spec).execute(flow_location=path, image=kube.image)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=30)
    assert info.value.reason == "DeadlineExceeded"
    run.delete()


def test_image_pull_failure_fails_after_the_grace_period(kube):
    spec = job_spec(unique("pull"), simulate="image-pull-error", image=BAD_IMAGE)
    run = kube.env(spec).execute(image=BAD_IMAGE)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=60, image_pull_grace=0.5)
    assert info.value.reason in ("ErrImagePull", "ImagePullBackOff")
    assert BAD_IMAGE in str(info.value)
    run.delete()


def test_image_pull_of_a_sidecar_also_fails_fast(local_cluster):
    k = local_kube(local_cluster)
    spec = job_spec(unique("pull-side"), sidecar=["sleep", "1"], simulate="image-pull-error")
    run = k.env(spec).execute(image="img:1")
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=10, image_pull_grace=0.3)
    assert info.value.reason in ("ErrImagePull", "ImagePullBackOff")
    run.delete()


def test_image_pull_failure_of_an_init_container(kube):
    spec = job_spec(
        unique("pull-init"),
        simulate="image-pull-error",
        init={"command": ["true"], "image": BAD_IMAGE},
    )
    run = kube.env(spec).execute(image=kube.image)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=30, image_pull_grace=0.3)
    assert info.value.reason in ("ErrImagePull", "ImagePullBackOff")
    assert "init" in str(info.value)
    run.delete()


def test_config_error_of_an_init_container(kube):
    missing = {"name": "X", "valueFrom": {"secretKeyRef": {"name": unique("nope"), "key": "k"}}}
    spec = job_spec(unique("cfg-init"), init={"command": ["true"], "env": [missing]})
    run = kube.env(spec).execute(image=kube.image)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=30)
    assert info.value.reason == "CreateContainerConfigError"
    run.delete()


def test_oom_killed(local_cluster):
    k = local_kube(local_cluster)
    spec = job_spec(unique("oom"), backoff_limit=3, sidecar=["sleep", "30"], simulate="oom-killed")
    run = k.env(spec).execute(image="img:1")
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=30)
    assert info.value.reason == "OOMKilled"
    assert info.value.exit_code == 137
    assert "OOMKilled" in str(info.value)
    run.delete()


def test_unschedulable_fails_after_the_start_timeout(kube):
    spec = job_spec(
        unique("unsched"),
        simulate="unschedulable",
        nodeSelector={"kjenv.test/no-such-node": "true"},
    )
    run = kube.env(spec).execute(image=kube.image)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=60, start_timeout=0.5)
    assert info.value.reason == "Unschedulable"
    assert "could not be scheduled" in str(info.value)
    run.delete()


def test_create_container_config_error(kube):
    missing = [
        {
            "name": "NEEDS_A_SECRET",
            "valueFrom": {"secretKeyRef": {"name": unique("no-such-secret"), "key": "k"}},
        }
    ]
    run = kube.env(job_spec(unique("cfgerr"), flow_env=missing)).execute(image=kube.image)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=60)
    assert info.value.reason == "CreateContainerConfigError"
    assert "cannot be created" in str(info.value)
    run.delete()


def test_create_error_simulation(local_cluster):
    k = local_kube(local_cluster)
    run = k.env(job_spec(unique("create"), simulate="create-error")).execute(image="img:1")
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=10)
    assert info.value.reason in ("CreateContainerError", "CreateContainerConfigError")
    run.delete()


def test_wait_times_out(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow([], sleep=60))
    run = kube.env(job_spec(unique("slow"))).execute(flow_location=path, image=kube.image)
    start = time.monotonic()
    with pytest.raises(JobTimeoutError) as info:
        run.wait(timeout=0.5)
    assert isinstance(info.value, TimeoutError)
    # A hang guard: the Job itself would run for 60 s.
    assert time.monotonic() - start < 30
    assert "did not finish within" in str(info.value)
    run.delete()


def test_wait_on_a_deleted_job_fails(kube):
    run = kube.env(job_spec(unique("gone"), sidecar=["sleep", "60"])).execute(image=kube.image)
    run.delete()
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=10)
    assert info.value.reason == "Deleted"


def test_wait_notices_deletion_while_waiting(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow([], sleep=60))
    run = kube.env(job_spec(unique("del"))).execute(flow_location=path, image=kube.image)
    threading.Timer(0.5, run.delete).start()
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=10)
    assert info.value.reason == "Deleted"


def test_execute_with_wait_raises_the_failure(kube):
    env = kube.env(job_spec(unique("ewait")))
    with pytest.raises(JobFailedError):
        env.execute(image=kube.image, wait=True, timeout=60)


# ---- adoption ----------------------------------------------------------------------------------


def test_same_flow_run_adopts_the_existing_job(kube):
    env = kube.env(job_spec(unique("adopt"), sidecar=["sleep", "30"]))
    first = env.execute(image=kube.image, flow_run_id="run-adopt")
    again = env.execute(image=kube.image, flow_run_id="run-adopt")
    assert (again.name, again.uid) == (first.name, first.uid)
    first.delete()


def test_name_taken_by_another_run_is_a_clear_error(kube):
    env = kube.env(job_spec(unique("taken"), sidecar=["sleep", "30"]))
    first = env.execute(image=kube.image, flow_run_id="run-a")
    with pytest.raises(KubeApiError) as info:
        env.execute(image=kube.image, flow_run_id="run-b")
    err = info.value
    assert err.status == 409 and err.reason == "AlreadyExists"
    assert "unique_job_name=True" in str(err) and "run-a" in str(err)
    first.delete()


def test_unique_job_name_avoids_the_collision(kube):
    env = kube.env(job_spec(unique("uniq"), sidecar=["sleep", "30"]), unique_job_name=True)
    a = env.execute(image=kube.image, flow_run_id="run-a")
    b = env.execute(image=kube.image, flow_run_id="run-b")
    assert a.name != b.name
    a.delete()
    b.delete()


# ---- Python runtime rules ----------------------------------------------------------------------
# (The token Secret: test_secrets.py. Transient failures, resumed watches: test_faults.py.
# Ctrl-C, fork, import: test_concurrency.py.)


def test_32_threads_execute_and_wait_concurrently(local_cluster):
    k = local_kube(local_cluster)

    def one(i):
        run = k.env(job_spec(unique(f"many{i}"))).execute(image="img:1", flow_run_id=f"run-{i}")
        try:
            run.wait(timeout=60)
        except JobFailedError as e:
            return run, e.reason
        finally:
            run.delete()
        return run, "Complete"

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    assert len({r.uid for r, _ in results}) == 32
    # No flow file: each fails at its first attempt, the flow not loaded (test_unfixable.py);
    # with backoffLimit 0 the Job's own failure may be seen first.
    assert {reason for _, reason in results} <= {"FlowNotLoaded", "BackoffLimitExceeded"}
    assert [r.flow_run_id for r, _ in results] == [f"run-{i}" for i in range(32)]


def test_no_cluster_configuration_is_a_cluster_config_error(tmp_path):
    code = textwrap.dedent(
        """
        from kjenv import KubernetesJobEnvironment, ClusterConfigError
        env = KubernetesJobEnvironment(job_spec={"metadata": {"name": "x"}})
        try:
            env.execute(image="img:1")
        except ClusterConfigError as e:
            assert isinstance(e, OSError)
            print(e)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PREFECT__"))}
    env["HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    message = out.stdout
    assert "KUBECONFIG (not set)" in message
    assert f"{tmp_path}/.kube/config (does not exist)" in message
    assert "in-cluster service account" in message


def test_explicit_missing_kubeconfig(tmp_path):
    env = kjenv.KubernetesJobEnvironment(
        job_spec={"metadata": {"name": "x"}}, kubeconfig=tmp_path / "nope"
    )
    with pytest.raises(ClusterConfigError) as info:
        env.execute(image="img:1")
    assert isinstance(info.value, OSError)
    assert "nope" in str(info.value)


def test_a_rewritten_kubeconfig_is_read_again(tmp_path):
    # A local cluster restarted in the same directory: same kubeconfig path, new port and CA.
    from kjenv.testing import LocalCluster

    spec = job_spec("rewritten", sidecar=["sleep", "30"])
    spec["spec"]["suspend"] = True
    for _ in range(2):
        with LocalCluster(work_dir=tmp_path) as cluster:
            env = kjenv.KubernetesJobEnvironment(
                job_spec=spec, kubeconfig=cluster.kubeconfig, unique_job_name=True
            )
            assert env.execute(image="img:1").uid
