"""execute() and JobRun.wait() against a cluster over real HTTPS: outcomes, fail-fast rules,
adoption, the token Secret, retries, resumed watches, Ctrl-C, concurrency, cluster config."""

from __future__ import annotations

import os
import signal
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
    auth_token,
    flow_file,
    job_spec,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    local_kube,
    unique,
    wait_until,
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


def test_flow_failure_is_backoff_limit_exceeded(kube):
    run = kube.env(job_spec(unique("fail"), backoff_limit=1)).execute(image=kube.image)
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


def test_deadline_exceeded(kube):
    spec = job_spec(unique("deadline"), deadline=1, sidecar=["sleep", "60"])
    run = kube.env(spec).execute(image=kube.image)
    start = time.monotonic()
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=30)
    assert info.value.reason == "DeadlineExceeded"
    assert time.monotonic() - start < 20
    run.delete()


def test_image_pull_failure_fails_after_the_grace_period(kube):
    spec = job_spec(unique("pull"), simulate="image-pull-error", image=BAD_IMAGE)
    run = kube.env(spec).execute(image=BAD_IMAGE)
    start = time.monotonic()
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=60, image_pull_grace=0.5)
    assert info.value.reason in ("ErrImagePull", "ImagePullBackOff")
    assert BAD_IMAGE in str(info.value)
    assert time.monotonic() - start < 30
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
    start = time.monotonic()
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=60, start_timeout=0.5)
    assert info.value.reason == "Unschedulable"
    assert "could not be scheduled" in str(info.value)
    assert time.monotonic() - start < 30
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


def test_wait_times_out(kube):
    run = kube.env(job_spec(unique("slow"), sidecar=["sleep", "60"])).execute(image=kube.image)
    start = time.monotonic()
    with pytest.raises(JobTimeoutError) as info:
        run.wait(timeout=0.5)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 3
    assert "did not finish within" in str(info.value)
    run.delete()


def test_wait_on_a_deleted_job_fails(kube):
    run = kube.env(job_spec(unique("gone"), sidecar=["sleep", "60"])).execute(image=kube.image)
    run.delete()
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=10)
    assert info.value.reason == "Deleted"


def test_wait_notices_deletion_while_waiting(kube):
    run = kube.env(job_spec(unique("del"), sidecar=["sleep", "60"])).execute(image=kube.image)
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


# ---- the token Secret --------------------------------------------------------------------------


def _secret(core, name, namespace):
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_secret(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def test_token_secret_is_owned_by_the_job_and_goes_with_it(kube, monkeypatch):
    core, _ = kube.client()
    name = unique("tok")
    with auth_token(monkeypatch, "tok-123-secret"):
        run = kube.env(job_spec(name, sidecar=["sleep", "30"])).execute(image=kube.image)
    secret = _secret(core, f"{name}-kjenv", kube.namespace)
    assert secret is not None
    import base64

    assert base64.b64decode(next(iter(secret.data.values()))).decode() == "tok-123-secret"
    owners = secret.metadata.owner_references
    assert [(o.kind, o.name, o.uid) for o in owners] == [("Job", name, run.uid)]
    assert "tok-123-secret" not in repr(run)
    run.delete()
    wait_until(lambda: _secret(core, f"{name}-kjenv", kube.namespace) is None, timeout=20)


def test_no_secret_is_left_when_the_job_cannot_be_created(local_cluster, monkeypatch):
    k = local_kube(local_cluster)
    core, _ = k.client()
    name = unique("nojob")
    local_cluster.inject_fault(403, method="POST", path="*/jobs*", times=1)
    with auth_token(monkeypatch, "tok-456"), pytest.raises(KubeApiError) as info:
        k.env(job_spec(name)).execute(image="img:1")
    assert info.value.status == 403
    assert _secret(core, f"{name}-kjenv", k.namespace) is None
    assert "tok-456" not in str(info.value)


def test_no_secret_is_left_when_job_creation_keeps_failing(local_cluster, monkeypatch):
    k = local_kube(local_cluster)
    core, _ = k.client()
    name = unique("nojob5")
    local_cluster.inject_fault(500, method="POST", path="*/jobs*", times=100)
    try:
        with auth_token(monkeypatch, "tok-789"), pytest.raises(KubeApiError) as info:
            k.env(job_spec(name)).execute(image="img:1")
    finally:
        local_cluster.clear_faults()
    assert info.value.status == 500
    assert _secret(core, f"{name}-kjenv", k.namespace) is None


def test_a_name_collision_leaves_the_other_runs_secret_alone(kube, monkeypatch):
    core, _ = kube.client()
    name = unique("tokcol")
    env = kube.env(job_spec(name, sidecar=["sleep", "30"]))
    with auth_token(monkeypatch, "tok-a"):
        first = env.execute(image=kube.image, flow_run_id="run-a")
        with pytest.raises(KubeApiError) as info:
            env.execute(image=kube.image, flow_run_id="run-b")
    assert info.value.status == 409
    secret = _secret(core, f"{name}-kjenv", kube.namespace)
    assert secret is not None, "the other run's Secret was deleted"
    assert [o.uid for o in secret.metadata.owner_references] == [first.uid]
    first.delete()


# ---- transient failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503, "times": 3},
        {"status": 500, "times": 2},
        {"status": 504, "times": 1},
        {"reset": True, "times": 2},
    ],
    ids=["503", "500", "504", "reset"],
)
def test_execute_retries_transient_failures(local_cluster, fault):
    k = local_kube(local_cluster)
    local_cluster.inject_fault(method="POST", path="*/jobs*", **fault)
    run = k.env(job_spec(unique("retry"), sidecar=["sleep", "30"])).execute(image="img:1")
    assert run.uid
    run.delete()


def test_429_honours_retry_after(local_cluster):
    k = local_kube(local_cluster)
    local_cluster.inject_fault(429, method="POST", path="*/jobs*", retry_after=1)
    start = time.monotonic()
    run = k.env(job_spec(unique("r429"), sidecar=["sleep", "30"])).execute(image="img:1")
    assert 1.0 <= time.monotonic() - start < 5
    run.delete()


def test_client_errors_are_not_retried(local_cluster):
    k = local_kube(local_cluster)
    local_cluster.inject_fault(422, method="POST", path="*/jobs*", times=2)
    try:
        with pytest.raises(KubeApiError) as info:
            k.env(job_spec(unique("r422"))).execute(image="img:1")
        assert info.value.status == 422
        # The second fault is still armed: only one request was made.
        with pytest.raises(KubeApiError):
            k.env(job_spec(unique("r422"))).execute(image="img:1")
    finally:
        local_cluster.clear_faults()


def test_wait_retries_through_faults_on_lists_and_watches(local_cluster, tmp_path):
    k = local_kube(local_cluster)
    path = flow_file(tmp_path, PrintFlow(["done"], sleep=0.5))
    run = k.env(job_spec(unique("wfault"))).execute(flow_location=path, image="img:1")
    local_cluster.inject_fault(503, method="GET", path="*/jobs*", times=3)
    local_cluster.inject_fault(reset=True, method="GET", path="*/pods*", times=2)
    run.wait(timeout=60)
    run.delete()


def test_wait_survives_expired_watches_and_a_listener_restart(local_cluster, tmp_path):
    k = local_kube(local_cluster)
    path = flow_file(tmp_path, PrintFlow(["slow"], sleep=2.5))
    run = k.env(job_spec(unique("resume"))).execute(flow_location=path, image="img:1")

    def disrupt():
        time.sleep(0.5)
        local_cluster.expire_watches()
        time.sleep(0.5)
        local_cluster.restart_listener()
        time.sleep(0.5)
        local_cluster.expire_watches()

    t = threading.Thread(target=disrupt)
    t.start()
    run.wait(timeout=60)
    t.join()
    assert run.status()["phase"] == "Succeeded"
    run.delete()


# ---- Python runtime rules ----------------------------------------------------------------------

CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from kube_cluster import job_spec
    from kjenv import KubernetesJobEnvironment
    env = KubernetesJobEnvironment(job_spec=job_spec({name!r}, sidecar=["sleep", "60"]),
                                   kubeconfig={kubeconfig!r})
    run = env.execute(image="img:1")
    print("waiting", flush=True)
    run.wait()
    """
)


def test_ctrl_c_interrupts_wait_within_a_second(local_cluster):
    k = local_kube(local_cluster)
    name = unique("sigint")
    script = CTRL_C_SCRIPT.format(
        tests=os.path.dirname(__file__), name=name, kubeconfig=k.kubeconfig
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.3)  # inside run.wait()
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    stderr = proc.stderr.read()
    assert "KeyboardInterrupt" in stderr, stderr
    assert proc.returncode != 0
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    _, batch = k.client()
    batch.delete_namespaced_job(name, k.namespace, propagation_policy="Background")


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
    assert {reason for _, reason in results} == {"BackoffLimitExceeded"}
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
