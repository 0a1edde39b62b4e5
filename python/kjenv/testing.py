"""Test helpers: the embedded local Kubernetes cluster and a pytest fixture for it.

``LocalCluster`` is an HTTPS Kubernetes API on 127.0.0.1 with a job controller and a kubelet
that runs each pod's containers as local processes (images are not pulled). Use it as a context
manager; every process it started is gone when it stops::

    from kjenv.testing import LocalCluster

    with LocalCluster() as cluster:
        env = KubernetesJobEnvironment("job.yaml", kubeconfig=cluster.kubeconfig)

The ``local_cluster`` pytest fixture (session-scoped) is registered as a pytest plugin when kjenv
is installed.
"""

from __future__ import annotations

from kjenv._kjenv import LocalCluster

__all__ = ["LocalCluster", "local_cluster"]

try:
    import pytest
except ImportError:  # pytest is only needed for the fixture
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def local_cluster():
        """A local cluster for the whole test session, with short pod-replacement backoff."""
        with LocalCluster(backoff_base=0.2, backoff_max=2.0, concurrency=16) as cluster:
            yield cluster
