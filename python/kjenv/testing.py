"""Test helpers: the embedded local Kubernetes cluster and a pytest fixture for it.

``LocalCluster`` is an HTTPS Kubernetes API on 127.0.0.1 with a job controller and a kubelet
that runs each pod's containers as local processes (images are not pulled). Use it as a context
manager; every process it started is gone when it stops::

    from kjenv.testing import LocalCluster

    with LocalCluster() as cluster:
        env = KubernetesJobEnvironment("job.yaml", kubeconfig=cluster.kubeconfig)

A SIGTERM is as clean as Ctrl-C: while a cluster runs, SIGTERM raises ``SystemExit(143)`` in the
main thread (unless the program installed a SIGTERM handler of its own), so ``with`` blocks and
``finally`` clauses run; clusters still running at exit are stopped. If the process is killed
outright, its containers die with it and the next cluster started removes the folders it left.

The ``local_cluster`` pytest fixture (session-scoped) is registered as a pytest plugin when kjenv
is installed.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from typing import Any

from kjenv._kjenv import LocalCluster as _LocalCluster

__all__ = ["LocalCluster", "local_cluster"]

# Every cluster made here, so a SIGTERM or the interpreter's exit can stop the running ones.
_clusters: weakref.WeakSet[_LocalCluster] = weakref.WeakSet()
_lock = threading.Lock()
_terminating = False


class LocalCluster(_LocalCluster):
    __doc__ = _LocalCluster.__doc__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The arguments were taken by ``__new__`` (the extension's constructor).
        with _lock:
            _clusters.add(self)
        _handle_sigterm()


def _running() -> list[_LocalCluster]:
    with _lock:
        return [c for c in _clusters if c.running]


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminating
    if not _running():
        # Nothing of ours to clean up: SIGTERM's default action, as if never handled.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if _terminating:
        return  # a second SIGTERM must not cut the clean-up of the first short
    _terminating = True
    # Unwinds like Ctrl-C does: context managers stop the clusters, atexit stops the rest.
    raise SystemExit(128 + signal.SIGTERM)


def _handle_sigterm() -> None:
    """Install the SIGTERM handler, unless someone else handles SIGTERM (the program, the CLI)
    or this is not the main thread (only it can install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


@atexit.register
def _stop_all() -> None:
    """A cluster not stopped by its program (no ``with``, or ``SystemExit`` from SIGTERM) stops
    at exit: its processes, kubeconfig and folders must not outlive the interpreter."""
    for cluster in _running():
        cluster.stop()


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
