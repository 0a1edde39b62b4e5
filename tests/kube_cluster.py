"""The cluster the execute/JobRun integration tests run against.

Every test that needs no simulation hook takes the ``kube`` fixture: it is parametrized over the
local cluster (always) and a real cluster (when ``KJENV_TEST_KUBECONFIG`` names a kubeconfig),
so the default run executes every test and the opt-in run executes the portable ones twice.
Tests that need fault injection or the kubelet's simulations take ``local_cluster`` directly.
"""

from __future__ import annotations

import contextlib
import os
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


def unique(prefix: str) -> str:
    """A Job name no other test uses."""
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
