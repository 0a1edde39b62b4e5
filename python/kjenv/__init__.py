"""kjenv: run a Python flow as a user-supplied Kubernetes Job.

A drop-in for legacy Prefect's ``KubernetesJobEnvironment``; change one import::

    from kjenv import KubernetesJobEnvironment
"""

from __future__ import annotations

from typing import Any

from kjenv import _kjenv
from kjenv._kjenv import (
    ClusterConfigError,
    JobFailedError,
    JobRun,
    JobSpecError,
    JobTimeoutError,
    KjenvError,
    KubeApiError,
    __version__,
)

__all__ = [
    "ClusterConfigError",
    "JobFailedError",
    "JobRun",
    "JobSpecError",
    "JobTimeoutError",
    "KjenvError",
    "KubeApiError",
    "KubernetesJobEnvironment",
    "__version__",
]


class KubernetesJobEnvironment(_kjenv.KubernetesJobEnvironment):
    """Run a flow as a user-supplied Kubernetes Job: the drop-in for Prefect's class.

    The job spec is loaded and checked once, here, as in Prefect; it is stored on the instance
    and travels with it when the environment is pickled into the flow's storage (as Prefect's
    did), though never in ``serialize()``: give credentials through ``secretKeyRef``, not as
    literal values in the spec. The first container of the Job runs the flow; everything else
    in the spec is submitted untouched.

    Args:
        job_spec_file: Path to a Kubernetes Job YAML file (stored as an absolute path).
        unique_job_name: Append ``-<8 hex>`` to the Job's name on every render.
        executor: The Prefect executor used when the flow runs.
        labels: Labels of this environment (agents match on them).
        on_start: Called before the flow runs.
        on_exit: Called after the flow ran, whatever the outcome.
        metadata: Extra metadata; ``metadata["image"]`` names the flow image.
        job_spec: The spec as YAML text or a dict, instead of ``job_spec_file``.
        namespace: The namespace to run in (else the spec's, Prefect's context, the kubeconfig's,
            ``default``).
        kubeconfig: A kubeconfig file to use instead of ``KUBECONFIG`` / ``~/.kube/config``.
        context: The kubeconfig context to use.

    Raises:
        JobSpecError: The spec is not a valid Job spec (the message says where).
        FileNotFoundError: ``job_spec_file`` does not exist.
        ValueError: Both ``job_spec_file`` and ``job_spec`` were given.
    """

    # The extension holds the state, the spec and the Job path; what is Python by nature (loading
    # and running a flow) is written here, so the extension imports no module of the package.
    # Pickles name this class, ``kjenv.KubernetesJobEnvironment``, as they always did; instances
    # keep the extension's layout (its __dict__, no __weakref__).
    __slots__ = ()

    def run_flow(self) -> None:
        """The in-container entry point: load the flow named by the run's context and run it.

        The flow is the file at ``PREFECT__CONTEXT__FLOW_FILE_PATH`` or the storage named in
        ``KJENV_FLOW_STORAGE``; it runs with Prefect's flow runner for the mode (a Prefect
        flow) or its ``run()`` method. ``on_start``, ``on_exit`` and the executor come from the
        environment stored with the flow, else from this one.

        Raises:
            SystemExit: ``1`` when the flow cannot be loaded (one ``kjenv: …`` line on stderr)
                or its run fails; the exit code tells Kubernetes the outcome.
        """
        from kjenv._runflow import run_flow

        run_flow(self)

    def run(self, flow: Any) -> Any:
        """Run ``flow`` in this process with Prefect's default flow runner.

        ``on_start`` is called first and ``on_exit`` always; returns the flow's final state.

        Raises:
            ImportError: Prefect is not installed.
        """
        from kjenv._prefect import run_here

        return run_here(self, flow)
