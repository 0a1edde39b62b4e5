"""What the Job and the cluster decide (issue 16, items 1-3), on the real control plane, and on
the local cluster where it models the behaviour:

- pods that can never be created (a ResourceQuota, a missing ServiceAccount): ``FailedCreate``
  fails the wait after ``failed_create_grace`` with the event's message; ``status()`` and the
  CLI's progress line show it;
- an eviction through the Eviction API: reported as it happens, retried when the backoff limit
  allows, else the wait fails naming the eviction;
- a podFailurePolicy FailJob rule, FailureTarget deciding before the pods end, and a Job left to
  another controller (``spec.managedBy``).

The local cluster has no ResourceQuota or ServiceAccount admission, no Eviction API and no
podFailurePolicy: those tests run on the real control plane only (``KJENV_TEST_KUBECONFIG``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid

import cloudpickle
import pytest
from kube_cluster import (
    REAL_IMAGE,
    REAL_KUBECONFIG,
    Kube,
    bounded,
    job_spec,
    kjenv_cli,
    kube_fixture,  # noqa: F401 (the `kube` fixture: local, and real if set)
    unique,
    wait_until,
)

from kjenv import JobFailedError, _submit

# The flows below travel to the pod by value (the pod cannot import this test module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

real_only = pytest.mark.skipif(
    not REAL_KUBECONFIG, reason="needs the real control plane (KJENV_TEST_KUBECONFIG)"
)


class EvictableFlow:
    """Sleeps on its first attempt (to be evicted), succeeds at once on the next ones."""

    def __init__(self, marker: str):
        self.marker = marker

    def run(self) -> None:
        import os
        import time

        if os.path.exists(self.marker):
            print("a later attempt: done", flush=True)
            return
        open(self.marker, "w").close()
        print("the first attempt: waiting to be evicted", flush=True)
        time.sleep(120)


class ExitFlow:
    """Ends the process with this exit code (a podFailurePolicy matches on it)."""

    def __init__(self, code: int):
        self.code = code

    def run(self) -> None:
        import os

        print(f"exiting with {self.code}", flush=True)
        os._exit(self.code)


class SleepFlow:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def run(self) -> None:
        import time

        time.sleep(self.seconds)


def store(directory, flow) -> str:
    path = directory / f"flow-{uuid.uuid4().hex[:8]}.pkl"
    path.write_bytes(cloudpickle.dumps(flow))
    return str(path)


@pytest.fixture
def real() -> Kube:
    """The real control plane."""
    namespace = os.environ.get("KJENV_TEST_NAMESPACE", "default")
    return Kube("real", REAL_KUBECONFIG, namespace, REAL_IMAGE)


@pytest.fixture
def namespace(real):
    """A namespace of its own (a quota must not reach other tests), with its default
    ServiceAccount made (else the ServiceAccount admission refuses every pod); deleted after."""
    from kubernetes import client

    core, _ = real.client()
    name = unique("kjenv-fail")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until(
        lambda: any(
            sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items
        ),
        timeout=60,
        what="the namespace's default ServiceAccount",
    )
    yield name
    core.delete_namespace(name)


@real_only
def test_failed_create_through_a_real_resource_quota(real, namespace):
    from kubernetes import client

    core, _ = real.client()
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="kjenv-no-pods"),
        spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
    )
    core.create_namespaced_resource_quota(namespace, quota)
    # Until the quota controller has written its status, admission refuses with another message.
    wait_until(
        lambda: core.read_namespaced_resource_quota("kjenv-no-pods", namespace).status.hard or {},
        timeout=60,
        what="the quota's status",
    )
    run = real.env(job_spec(unique("quota"))).execute(image=REAL_IMAGE, namespace=namespace)
    with pytest.raises(JobFailedError) as info:
        bounded(lambda: run.wait(timeout=120, failed_create_grace=1), 180, "wait()")
    err = info.value
    assert err.reason == "FailedCreate"
    assert "no pod could be created for 1.0s (failed_create_grace): Error creating: " in str(err)
    assert "exceeded quota: kjenv-no-pods" in str(err)
    status = run.status()
    assert status["phase"] == "Pending" and status["pods"] == []
    assert status["problem"].startswith("FailedCreate: Error creating: ")
    assert "exceeded quota: kjenv-no-pods" in status["problem"]
    assert "exceeded quota: kjenv-no-pods" in _submit.progress_text(status, 1.0)
    run.delete()


@real_only
def test_failed_create_of_a_missing_service_account_real(real, namespace):
    spec = job_spec(unique("nosa"), serviceAccountName="kjenv-no-such-account")
    run = real.env(spec).execute(image=REAL_IMAGE, namespace=namespace)
    with pytest.raises(JobFailedError) as info:
        bounded(lambda: run.wait(timeout=120, failed_create_grace=1), 180, "wait()")
    assert info.value.reason == "FailedCreate"
    assert 'serviceaccount "kjenv-no-such-account" not found' in str(info.value)
    problem = run.status()["problem"]
    assert 'serviceaccount "kjenv-no-such-account" not found' in problem
    run.delete()


@real_only
def test_the_cli_fails_on_a_failed_create_real(real, namespace, tmp_path):
    import yaml

    spec = tmp_path / "job.yaml"
    job = job_spec(unique("cli-nosa"), serviceAccountName="kjenv-no-such-account")
    spec.write_text(yaml.safe_dump(job))
    result = kjenv_cli(
        "submit", str(spec), "--image", REAL_IMAGE, "--namespace", namespace,
        "--kubeconfig", real.kubeconfig, "--wait", "--failed-create-grace", "1",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == job["metadata"]["name"]
    assert f"job {job['metadata']['name']} failed: FailedCreate" in result.stderr
    assert 'serviceaccount "kjenv-no-such-account" not found' in result.stderr


def test_the_progress_line_shows_what_holds_the_job_back():
    status = {"name": "j", "phase": "Pending", "pods": [], "problem": "FailedCreate: Error x"}
    pods = "pods 0 pending, 0 running, 0 succeeded, 0 failed"
    expected = f"j: pending · {pods} · 1.0s · FailedCreate: Error x"
    assert _submit.progress_text(status, 1.0) == expected
    assert _submit.progress_text({**status, "problem": None}, 1.0).endswith("· 1.0s")


@real_only
def test_failed_create_within_the_grace_keeps_waiting_real(real, namespace):
    spec = job_spec(unique("nosa"), serviceAccountName="kjenv-no-such-account")
    run = real.env(spec).execute(image=REAL_IMAGE, namespace=namespace)
    # Within the (default, 120 s) grace the wait goes on: the wait's own timeout ends it.
    from kjenv import JobTimeoutError

    with pytest.raises(JobTimeoutError):
        bounded(lambda: run.wait(timeout=3), 60, "wait()")
    run.delete()


def _running_pod(kube: Kube, run, namespace: str):
    core, _ = kube.client()

    def running():
        pods = core.list_namespaced_pod(namespace, label_selector=f"controller-uid={run.uid}")
        return next((p for p in pods.items if p.status.phase == "Running"), None)

    return wait_until(running, timeout=60, what="a running pod")


def _evict(kube: Kube, pod) -> None:
    from kubernetes import client

    core, _ = kube.client()
    ns, name = pod.metadata.namespace, pod.metadata.name
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
    core.create_namespaced_pod_eviction(name, ns, body)


def _wait_in_thread(run, **kw):
    import threading

    outcome: dict = {}

    def target():
        try:
            outcome["value"] = run.wait(**kw)
        except BaseException as e:  # noqa: BLE001 (handed to the test)
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@real_only
def test_an_eviction_is_reported_then_retried_real(real, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kjenv")
    path = store(tmp_path, EvictableFlow(str(tmp_path / "evicted-once")))
    run = real.env(job_spec(unique("evict"), backoff_limit=1)).execute(
        image=REAL_IMAGE, flow_location=path
    )
    thread, outcome = _wait_in_thread(run, timeout=240)
    pod = _running_pod(real, run, real.namespace)
    wait_until(lambda: (tmp_path / "evicted-once").exists(), timeout=60, what="the flow")
    _evict(real, pod)
    thread.join(300)
    assert not thread.is_alive(), "wait() did not return"
    assert "error" not in outcome, outcome.get("error")
    # The wait ends at SuccessCriteriaMet: the evicted pod may not be counted as failed yet.
    assert outcome["value"]["succeeded"] == 1, outcome["value"]
    wait_until(lambda: run.status()["failed"] == 1, timeout=60, what="the eviction counted")
    reports = [r.getMessage() for r in caplog.records if "was disrupted" in r.getMessage()]
    assert reports == [
        f"job {run.name}: pod {pod.metadata.name} was disrupted: EvictionByEvictionAPI: "
        "Eviction API: evicting; the Job will retry it (failure 1 of the 1 its backoffLimit "
        "allows)"
    ]
    run.delete()


@real_only
def test_an_eviction_without_retries_fails_naming_it_real(real, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kjenv")
    path = store(tmp_path, EvictableFlow(str(tmp_path / "evicted-once")))
    run = real.env(job_spec(unique("evict0"), backoff_limit=0)).execute(
        image=REAL_IMAGE, flow_location=path
    )
    thread, outcome = _wait_in_thread(run, timeout=240)
    pod = _running_pod(real, run, real.namespace)
    _evict(real, pod)
    thread.join(300)
    assert not thread.is_alive(), "wait() did not return"
    err = outcome.get("error")
    assert isinstance(err, JobFailedError), err
    assert err.reason == "EvictionByEvictionAPI"
    name = pod.metadata.name
    assert str(err).startswith(
        f"job {run.name} failed: EvictionByEvictionAPI: pod {name} was disrupted: "
        "EvictionByEvictionAPI: Eviction API: evicting; the Job does not retry it "
        "(BackoffLimitExceeded: "
    ), str(err)
    assert any(
        "the Job will not retry it (backoffLimit 0 reached)" in r.getMessage()
        for r in caplog.records
    )
    run.delete()


@real_only
def test_a_pod_failure_policy_fails_the_job_on_an_exit_code_real(real, tmp_path):
    path = store(tmp_path, ExitFlow(42))
    spec = job_spec(unique("pfp"), backoff_limit=3)
    spec["spec"]["podFailurePolicy"] = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "flow", "operator": "In", "values": [42]},
            }
        ]
    }
    run = real.env(spec).execute(image=REAL_IMAGE, flow_location=path)
    with pytest.raises(JobFailedError) as info:
        bounded(lambda: run.wait(timeout=120), 180, "wait()")
    err = info.value
    assert err.reason == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in str(err)
    assert err.exit_code == 42
    assert run.status()["failed"] == 1, "no retry: the rule failed the Job at once"
    run.delete()


def test_failure_target_decides_before_the_pods_end_real(kube, tmp_path):
    """FailureTarget (Kubernetes >= 1.31; the local cluster models it) ends the wait while the
    pods still terminate: a sidecar ignores SIGTERM for its 60 s grace period."""
    path = store(tmp_path, SleepFlow(120))
    spec = job_spec(
        unique("ftarget"),
        deadline=2,
        sidecar=["sh", "-c", "trap '' TERM; sleep 90"],
        terminationGracePeriodSeconds=60,
    )
    run = kube.env(spec).execute(image=kube.image, flow_location=path)
    start = time.monotonic()
    with pytest.raises(JobFailedError) as info:
        bounded(lambda: run.wait(timeout=120), 180, "wait()")
    assert info.value.reason == "DeadlineExceeded"
    _, batch = kube.client()
    conditions = {
        c.type for c in batch.read_namespaced_job(run.name, kube.namespace).status.conditions
    }
    assert "FailureTarget" in conditions
    if "Failed" in conditions:  # only on a machine slower than the 60 s grace period
        assert time.monotonic() - start > 60
    assert run.status()["phase"] == "Failed"
    run.delete()


def test_a_job_managed_by_another_controller_fails_at_once_real(kube):
    spec = job_spec(unique("managed"))
    spec["spec"]["managedBy"] = "example.com/not-the-job-controller"
    run = kube.env(spec).execute(image=kube.image)
    with pytest.raises(JobFailedError) as info:
        bounded(lambda: run.wait(timeout=60), 120, "wait()")
    assert info.value.reason == "ManagedByAnotherController"
    assert 'spec.managedBy is "example.com/not-the-job-controller"' in str(info.value)
    run.delete()
