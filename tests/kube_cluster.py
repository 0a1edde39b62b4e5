"""The cluster the execute/JobRun integration tests run against.

Every test that needs no simulation hook takes the ``kube`` fixture: it is parametrized over the
local cluster (always) and a real cluster (when ``KJENV_TEST_KUBECONFIG`` names a kubeconfig),
so the default run executes every test and the opt-in run executes the portable ones twice.
Tests that need fault injection or the kubelet's simulations take ``local_cluster`` directly.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from kjenv import KubernetesJobEnvironment

REAL_KUBECONFIG = os.environ.get("KJENV_TEST_KUBECONFIG")
SIMULATE = "kjenv.local/simulate"
# The local cluster does not pull images; a real cluster needs one that has sh and sleep.
REAL_IMAGE = os.environ.get("KJENV_TEST_IMAGE", "busybox:1.36")
BAD_IMAGE = "registry.invalid/kjenv/does-not-exist:0"


@dataclass
class Kube:
    """A cluster to test against."""

    kind: str  # "local" or "real"
    kubeconfig: str
    namespace: str
    image: str

    def env(self, spec: dict[str, Any], **kwargs: Any) -> KubernetesJobEnvironment:
        """An environment for ``spec`` on this cluster."""
        return KubernetesJobEnvironment(job_spec=spec, kubeconfig=self.kubeconfig, **kwargs)

    def client(self):
        """The official Python client's CoreV1Api and BatchV1Api, to look behind kjenv's back."""
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=self.kubeconfig)
        return client.CoreV1Api(api), client.BatchV1Api(api)


def kjenv_cli(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess:
    """Run the ``kjenv`` command (``python -m kjenv`` with this interpreter), output as text."""
    return subprocess.run(
        [sys.executable, "-m", "kjenv", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def unique(prefix: str) -> str:
    """A Job name no other test in the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def job_spec(
    name: str,
    *,
    backoff_limit: int = 0,
    deadline: int | None = None,
    sidecar: list[str] | None = None,
    flow_env: list[dict[str, Any]] | None = None,
    simulate: str | None = None,
    image: str = REAL_IMAGE,
    init: dict[str, Any] | None = None,
    **pod_spec: Any,
) -> dict[str, Any]:
    """A Job spec whose first container is the flow container (kjenv rewrites it).

    ``sidecar`` is the command of a second container (e.g. ``["sleep", "30"]``) that keeps the
    pod running after the flow container ended; ``init`` the fields of an init container.
    """
    containers: list[dict[str, Any]] = [{"name": "flow", "image": image}]
    if flow_env:
        containers[0]["env"] = flow_env
    if sidecar:
        containers.append({"name": "sidecar", "image": image, "command": sidecar})
    if init:
        pod_spec["initContainers"] = [{"name": "init", "image": image, **init}]
    template: dict[str, Any] = {"spec": {"containers": containers, **pod_spec}}
    if simulate:
        template["metadata"] = {"annotations": {SIMULATE: simulate}}
    spec: dict[str, Any] = {"backoffLimit": backoff_limit, "template": template}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": spec,
    }


def local_kube(cluster) -> Kube:
    """The local cluster as a :class:`Kube`."""
    return Kube("local", cluster.kubeconfig, cluster.namespace, REAL_IMAGE)


@pytest.fixture(name="kube", params=["local", "real"] if REAL_KUBECONFIG else ["local"])
def kube_fixture(request) -> Kube:
    """The local cluster, and a real one when ``KJENV_TEST_KUBECONFIG`` is set."""
    if request.param == "local":
        return local_kube(request.getfixturevalue("local_cluster"))
    namespace = os.environ.get("KJENV_TEST_NAMESPACE", "default")
    return Kube("real", REAL_KUBECONFIG, namespace, REAL_IMAGE)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (and return it); fail the test after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def auth_token(monkeypatch, token: str):
    """Configure a Prefect Cloud token: in the environment, and in Prefect's config if loaded."""
    monkeypatch.setenv("PREFECT__CLOUD__AUTH_TOKEN", token)
    if "prefect" in sys.modules:
        from prefect.utilities.configuration import set_temporary_config

        with set_temporary_config({"cloud.auth_token": token}):
            yield
    else:
        yield


class PrintFlow:
    """A flow without Prefect (anything with ``run()``): prints lines, sleeps, maybe fails.

    Pickled by value (see below), so the pod's Python needs no copy of this module.
    """

    def __init__(self, lines: list[str], sleep: float = 0.0, fail: bool = False):
        self.lines = lines
        self.sleep = sleep
        self.fail = fail

    def run(self) -> None:
        import time

        for line in self.lines:
            print(line, flush=True)
        time.sleep(self.sleep)
        if self.fail:
            raise RuntimeError("the flow failed on purpose")


def flow_file(directory, flow: PrintFlow) -> str:
    """Store ``flow`` where the local cluster's pods can read it; return the path."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    path = directory / f"flow-{uuid.uuid4().hex[:8]}.pkl"
    path.write_bytes(cloudpickle.dumps(flow))
    return str(path)


# ---- reliability helpers (faults, concurrency, secrets) ----------------------------------------


def instant_job_spec(name: str) -> dict[str, Any]:
    """A Job that completes at once without a pod (``completions: 0``): for tests of kjenv's own
    machinery (submit, watch, wait, delete) that need no flow to run."""
    spec = job_spec(name)
    spec["spec"]["completions"] = 0
    return spec


def jobs_of_run(kube: Kube, flow_run_id: str) -> list:
    """The Jobs labelled with this flow run id, listed with the official client."""
    _, batch = kube.client()
    return batch.list_namespaced_job(
        kube.namespace, label_selector=f"flow_run_id={flow_run_id}"
    ).items


def secrets_of_run(kube: Kube, flow_run_id: str) -> list:
    """The Secrets labelled with this flow run id (kjenv labels the token Secret so)."""
    core, _ = kube.client()
    return core.list_namespaced_secret(
        kube.namespace, label_selector=f"flow_run_id={flow_run_id}"
    ).items


def pods_of_job(kube: Kube, uid: str) -> list:
    """The pods of the Job with this uid."""
    core, _ = kube.client()
    return core.list_namespaced_pod(kube.namespace, label_selector=f"controller-uid={uid}").items


def bounded(fn, timeout: float, what: str = "the call"):
    """Run ``fn()`` in a thread and return its result (or raise its exception); fail the test if
    it has not returned after ``timeout`` seconds (a hang)."""
    import threading

    outcome: dict[str, Any] = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as e:  # noqa: BLE001 (handed to the caller)
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"{what} did not return within {timeout}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def arm_fault(cluster, **rule: Any) -> None:
    """Arm a fault through the local cluster's admin endpoint (``POST /_kjenv/faults``), for
    rules the Python API has no argument for, e.g. ``lateAnswerMs`` (serve, then answer late)."""
    import json
    import ssl
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False  # loopback, the cluster's own self-signed CA
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(
        cluster.url + "/_kjenv/faults", data=json.dumps(rule).encode(), method="POST"
    )
    req.add_header("Authorization", f"Bearer {cluster.token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        assert resp.status == 200
