"""kjenv: run a Python flow as a user-supplied Kubernetes Job.

A drop-in for legacy Prefect's ``KubernetesJobEnvironment``; change one import::

    from kjenv import KubernetesJobEnvironment
"""

from kjenv._kjenv import (
    ClusterConfigError,
    JobFailedError,
    JobRun,
    JobSpecError,
    JobTimeoutError,
    KjenvError,
    KubeApiError,
    KubernetesJobEnvironment,
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
