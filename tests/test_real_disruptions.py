"""Disruptions and Indexed-Job semantics on the real control plane (issue 16, items 2 and 3),
and on the local cluster where its Job controller models them.

- preemption: the scheduler preempts the flow's pod for a higher-priority pod
  (``DisruptionTarget`` reason ``PreemptionByScheduler``); kjenv reports it as it happens, says
  the Job will retry it, and the retry succeeds once the preemptor is gone;
- node loss through a taint: a ``NoExecute`` taint on the node makes the taint-eviction
  controller delete the pod (``DeletionByTaintManager``), as when a node is lost; with no retry
  left the wait fails naming the disruption;
- ``successPolicy``: the wait ends as soon as the indexes the policy names have succeeded, while
  other indexes still run (``SuccessCriteriaMet`` reason ``SuccessPolicy``);
- ``backoffLimitPerIndex``: a failed index fails the Job (``FailedIndexes``) after the other
  indexes ended, and the error names the failed indexes.

Preemption and taints need a scheduler and a taint-eviction controller: those two run on the
real control plane only (``KJENV_TEST_KUBECONFIG``); the Indexed-Job tests run on both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import uuid

import cloudpickle
import pytest
from kube_cluster import (
    REAL_IMAGE,
    REAL_KUBECONFIG,
    Kube,
    job_spec,
    kube_fixture,  # noqa: F401 (the `kube` fixture: local, and real if set)
    unique,
    wait_until,
)

from kjenv import JobFailedError

# The flows below travel to the pod by value (the pod cannot import this test module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

real_only = pytest.mark.skipif(
    not REAL_KUBECONFIG, reason="needs the real control plane (KJENV_TEST_KUBECONFIG)"
)


class OnceDisruptedFlow:
    """Sleeps on its first attempt (to be disrupted), succeeds at once on the next ones."""

    def __init__(self, marker: str):
        self.marker = marker

    def run(self) -> None:
        import os
        import time

        if os.path.exists(self.marker):
            print("a later attempt: done", flush=True)
            return
        open(self.marker, "w").close()
        print("the first attempt: waiting to be disrupted", flush=True)
        time.sleep(300)


class IndexFlow:
    """An Indexed Job's flow: each index prints its number, then sleeps or fails as told."""

    def __init__(self, fail: tuple[int, ...] = (), sleep: tuple[int, ...] = ()):
        self.fail = fail
        self.sleep = sleep

    def run(self) -> None:
        import os
        import time

        index = int(os.environ["JOB_COMPLETION_INDEX"])
        print(f"index {index}", flush=True)
        if index in self.sleep:
            time.sleep(600)
        if index in self.fail:
            raise RuntimeError(f"index {index} failed on purpose")


def store(directory, flow) -> str:
    path = directory / f"flow-{uuid.uuid4().hex[:8]}.pkl"
    path.write_bytes(cloudpickle.dumps(flow))
    return str(path)


@pytest.fixture
def real() -> Kube:
    """The real control plane."""
    namespace = os.environ.get("KJENV_TEST_NAMESPACE", "default")
    return Kube("real", REAL_KUBECONFIG, namespace, REAL_IMAGE)


def _wait_in_thread(run, **kw):
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = run.wait(**kw)
        except BaseException as e:  # noqa: BLE001 (handed to the test)
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _running_pod(kube: Kube, run):
    core, _ = kube.client()

    def running():
        pods = core.list_namespaced_pod(kube.namespace, label_selector=f"controller-uid={run.uid}")
        return next((p for p in pods.items if p.status.phase == "Running"), None)

    return wait_until(running, timeout=120, what="a running pod")


def _disruption_reports(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "was disrupted" in r.getMessage()]


def _node_cpu_millis(kube: Kube, node: str) -> int:
    core, _ = kube.client()
    cpu = core.read_node(node).status.allocatable["cpu"]
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


@contextlib.contextmanager
def _priority_class(kube: Kube, value: int):
    """A PriorityClass of its own (cluster-scoped), deleted after."""
    from kubernetes import client, config

    api = client.SchedulingV1Api(config.new_client_from_config(config_file=kube.kubeconfig))
    name = unique("kjenv-high")
    api.create_priority_class(
        client.V1PriorityClass(metadata=client.V1ObjectMeta(name=name), value=value)
    )
    try:
        yield name
    finally:
        api.delete_priority_class(name)


@real_only
def test_a_preempted_attempt_is_reported_then_retried_real(real, tmp_path, caplog):
    from kubernetes import client

    caplog.set_level(logging.WARNING, logger="kjenv")
    core, _ = real.client()
    spec = job_spec(unique("preempt"), backoff_limit=1)
    path = store(tmp_path, OnceDisruptedFlow(str(tmp_path / "disrupted-once")))
    # The flow's pod asks for one CPU; the higher-priority pod below asks for all but half a
    # CPU of the node (one node: the process kubelet), so it can only run if the scheduler
    # preempts the flow's pod.
    spec["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
    with _priority_class(real, 1_000_000) as high:
        run = real.env(spec).execute(image=REAL_IMAGE, flow_location=path)
        thread, outcome = _wait_in_thread(run, timeout=400)
        first = _running_pod(real, run)
        wait_until(lambda: (tmp_path / "disrupted-once").exists(), timeout=60, what="the flow")
        need = _node_cpu_millis(real, first.spec.node_name) - 500
        preemptor = client.V1Pod(
            metadata=client.V1ObjectMeta(name=unique("preemptor")),
            spec=client.V1PodSpec(
                priority_class_name=high,
                restart_policy="Never",
                termination_grace_period_seconds=0,
                containers=[
                    client.V1Container(
                        name="main",
                        image=REAL_IMAGE,
                        command=["sleep", "600"],
                        resources=client.V1ResourceRequirements(requests={"cpu": f"{need}m"}),
                    )
                ],
            ),
        )
        core.create_namespaced_pod(real.namespace, preemptor)
        try:
            wait_until(
                lambda: _disruption_reports(caplog), timeout=180, what="the preemption report"
            )
        finally:
            core.delete_namespaced_pod(
                preemptor.metadata.name, real.namespace, grace_period_seconds=0
            )
        thread.join(400)
    assert not thread.is_alive(), "wait() did not return"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"]["succeeded"] == 1, outcome["value"]
    [report] = _disruption_reports(caplog)
    prefix = f"job {run.name}: pod {first.metadata.name} was disrupted: PreemptionByScheduler: "
    assert report.startswith(prefix), report
    assert report.endswith(
        "; the Job will retry it (failure 1 of the 1 its backoffLimit allows)"
    ), report
    run.delete()


@contextlib.contextmanager
def _tainted(kube: Kube, node: str, key: str):
    """The node with a NoExecute taint of its own; the node's taints restored after."""
    core, _ = kube.client()
    before = core.read_node(node).spec.taints or []
    taints = [t.to_dict() for t in before] + [{"key": key, "value": "x", "effect": "NoExecute"}]
    core.patch_node(node, {"spec": {"taints": taints}})
    try:
        yield
    finally:
        current = core.read_node(node).spec.taints or []
        kept = [t.to_dict() for t in current if t.key != key]
        core.patch_node(node, {"spec": {"taints": kept or None}})


@real_only
def test_a_pod_deleted_for_a_lost_node_fails_the_wait_naming_it_real(real, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kjenv")
    path = store(tmp_path, OnceDisruptedFlow(str(tmp_path / "disrupted-once")))
    run = real.env(job_spec(unique("taint"), backoff_limit=0)).execute(
        image=REAL_IMAGE, flow_location=path
    )
    thread, outcome = _wait_in_thread(run, timeout=300)
    pod = _running_pod(real, run)
    with _tainted(real, pod.spec.node_name, f"kjenv.test/{run.name}"):
        thread.join(300)
    assert not thread.is_alive(), "wait() did not return"
    err = outcome.get("error")
    assert isinstance(err, JobFailedError), err
    assert err.reason == "DeletionByTaintManager", str(err)
    name = pod.metadata.name
    assert str(err).startswith(
        f"job {run.name} failed: DeletionByTaintManager: pod {name} was disrupted: "
        "DeletionByTaintManager: "
    ), str(err)
    assert "the Job does not retry it" in str(err), str(err)
    [report] = _disruption_reports(caplog)
    assert report.endswith("the Job will not retry it (backoffLimit 0 reached)"), report
    run.delete()


def _indexed(name: str, completions: int, **spec) -> dict:
    job = job_spec(name)
    del job["spec"]["backoffLimit"]
    job["spec"].update(
        completionMode="Indexed", completions=completions, parallelism=completions, **spec
    )
    return job


def test_a_success_policy_ends_the_wait_when_its_indexes_succeed(kube, tmp_path):
    # Index 0 succeeds at once; indexes 1 and 2 would run for 10 minutes.
    spec = _indexed(
        unique("succpol"),
        3,
        successPolicy={"rules": [{"succeededIndexes": "0", "succeededCount": 1}]},
    )
    path = store(tmp_path, IndexFlow(sleep=(1, 2)))
    run = kube.env(spec).execute(image=kube.image, flow_location=path)
    result = run.wait(timeout=300)
    assert result["succeeded"] == 1, result
    _, batch = kube.client()
    job = batch.read_namespaced_job(run.name, kube.namespace)
    met = [c for c in job.status.conditions or [] if c.type == "SuccessCriteriaMet"]
    assert [(c.status, c.reason) for c in met] == [("True", "SuccessPolicy")], job.status
    assert job.status.completed_indexes == "0", job.status
    run.delete()


def test_backoff_limit_per_index_fails_naming_the_failed_index(kube, tmp_path):
    spec = _indexed(unique("perindex"), 3, backoffLimitPerIndex=0)
    path = store(tmp_path, IndexFlow(fail=(1,)))
    run = kube.env(spec).execute(image=kube.image, flow_location=path)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=300)
    err = info.value
    assert err.reason == "FailedIndexes", str(err)
    assert "(failed indexes: 1)" in str(err), str(err)
    assert "index 1 failed on purpose" in str(err), str(err)
    _, batch = kube.client()
    job = batch.read_namespaced_job(run.name, kube.namespace)
    assert job.status.failed_indexes == "1", job.status
    assert job.status.completed_indexes == "0,2", job.status
    run.delete()
