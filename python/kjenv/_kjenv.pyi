"""Type stubs and docstrings for kjenv's Rust extension, checked against the built module by
``scripts/stubtest`` (mypy's stubtest)."""

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Final, TypedDict, final, type_check_only

from typing_extensions import disjoint_base

__all__ = [
    "__version__",
    "KjenvError",
    "JobSpecError",
    "ClusterConfigError",
    "KubeApiError",
    "JobFailedError",
    "JobTimeoutError",
    "KubernetesJobEnvironment",
    "LocalCluster",
    "JobRun",
    "FLOW_COMMAND",
    "dump_yaml",
    "flow_context",
]

__version__: Final[str]
FLOW_COMMAND: Final[str]
"""The in-container one-liner the flow container runs under ``/bin/sh -c``."""

def dump_yaml(obj: Any) -> str:
    """Return a JSON-like object (dicts, lists, scalars) as YAML text."""

@type_check_only
class _FlowContext(TypedDict):
    """What :func:`flow_context` returns (a plain dict at run time)."""

    flow_file_path: str
    flow_run_id: str | None
    namespace: str | None
    image: str | None
    flow_runner: str
    task_runner: str
    storage: str | None
    cloud: bool
    backend: str | None
    """The GraphQL endpoint of the backend the run reports to (Cloud or Server); None
    backend-less."""

def flow_context() -> _FlowContext:
    """The flow container's run context, read from its environment variables.

    Returns:
        ``{"flow_file_path", "flow_run_id", "namespace", "image", "flow_runner",
        "task_runner", "storage", "cloud", "backend"}``; unset values are None.
    """

@type_check_only
class _WaitResult(TypedDict):
    """What :meth:`JobRun.wait` returns (a plain dict at run time)."""

    succeeded: int
    failed: int
    pods: list[str]

@type_check_only
class _Cancelled(TypedDict):
    """What :meth:`JobRun.cancel` returns (a plain dict at run time)."""

    deleted: bool
    pods: list[str]
    grace_period: int | None

class KjenvError(Exception):
    """Base class of every error kjenv raises."""

class JobSpecError(KjenvError, ValueError):
    """The job spec is malformed.

    The message names the file, line and column (for YAML) and the field path, for example
    ``job.yaml:6:19: spec.template.spec.containers: expected a list of containers, got an integer``.

    Attributes:
        file: The spec file, or None for YAML text and dicts.
        line: 1-based line, when known.
        column: 1-based column, when known.
        field: The field path, e.g. ``spec.template.spec.containers[0].env``, when known.
        detail: The message without its location.
    """

    file: str | None
    line: int | None
    column: int | None
    field: str | None
    detail: str

class ClusterConfigError(KjenvError, OSError):
    """No usable cluster configuration was found (kubeconfig, context or in-cluster account)."""

class KubeApiError(KjenvError):
    """The Kubernetes API refused a request.

    Attributes:
        status: HTTP status code.
        reason: Kubernetes' reason (``NotFound``, ``AlreadyExists``, ``Invalid``, …).
        message: Kubernetes' message.
    """

    status: int
    reason: str
    message: str

class JobFailedError(KjenvError):
    """The Job failed; the message gives the Kubernetes reason and the tail of the flow's log.

    Attributes:
        reason: Kubernetes' reason: ``BackoffLimitExceeded``, ``DeadlineExceeded``,
            ``ErrImagePull``, ``ImagePullBackOff``, ``CreateContainerConfigError``,
            ``OOMKilled``, ``Unschedulable``, or ``Deleted`` (the Job was deleted).
        exit_code: The exit code of the failed flow container, when it ran.
        log_tail: The last lines of the failed flow container's log (may be empty).
    """

    reason: str
    exit_code: int | None
    log_tail: str

class JobTimeoutError(KjenvError, TimeoutError):
    """Waiting for the Job took longer than the timeout."""

@final
class JobRun:
    """A Job submitted by :meth:`KubernetesJobEnvironment.execute` (or found again by
    :meth:`attach`): wait for it, look at it, cancel or delete it. Every call goes to the
    cluster; the GIL is released while it waits."""

    @staticmethod
    def attach(
        name: str | None = None,
        namespace: str | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        *,
        flow_run_id: str | None = None,
    ) -> JobRun:
        """The ``JobRun`` of an existing Job, e.g. after the process that submitted it died.

        :meth:`wait` on it then streams the whole log from the start (every pod that is still
        there) and gives the Job's outcome, as the first wait would have.

        Args:
            name: The Job's name.
            namespace: Its namespace; None: the kubeconfig context's namespace.
            kubeconfig: A kubeconfig file; None: ``KUBECONFIG``, ``~/.kube/config``, in-cluster.
            context: A kubeconfig context; None: the current one.
            flow_run_id: Instead of ``name``: the one Job labelled ``flow_run_id=<id>`` (kjenv
                labels every Job it submits so).

        Raises:
            ValueError: Neither or both of ``name`` and ``flow_run_id``; several Jobs carry
                the flow run id (the message names them).
            KubeApiError: No such Job (status 404, e.g. ``no job "x" in namespace
                "default"``), or the API refused.
            ClusterConfigError: No usable cluster configuration.
        """

    @property
    def name(self) -> str:
        """The Job's name."""
    @property
    def namespace(self) -> str:
        """The Job's namespace."""
    @property
    def uid(self) -> str:
        """The Job's uid (its pods carry it in the ``controller-uid`` label)."""
    @property
    def flow_run_id(self) -> str:
        """The flow run id the Job is labelled with."""
    @property
    def container(self) -> str:
        """The name of the flow container (the Job's first container)."""
    def status(self) -> dict[str, Any]:
        """The Job's state now.

        Returns:
            ``{"name", "namespace", "phase", "active", "succeeded", "failed", "conditions",
            "pods", "last_event", "problem"}``: ``phase`` is ``Pending``, ``Running``,
            ``Succeeded`` or ``Failed``; ``conditions`` are the Job's (``type``, ``status``,
            ``reason``, ``message``); each pod is ``{"name", "phase", "containers"}`` with
            containers ``{"name", "state", "reason", "exit_code", "restart_count"}`` (``state``
            is ``waiting``, ``running`` or ``terminated``); ``last_event`` is the newest event of
            the Job or its pods as one line, or None; ``problem`` is what holds the Job back
            now, or None: its pods cannot be created (``FailedCreate: `` and the event's
            message) or its newest attempt was disrupted (``pod P was disrupted: REASON: …``).

        Raises:
            KubeApiError: The API refused (status 404 when the Job is gone) or cannot be reached.
        """
    def wait(
        self,
        timeout: float | None = None,
        stream_logs: bool = False,
        *,
        image_pull_grace: float | None = ...,
        start_timeout: float | None = ...,
        failed_create_grace: float | None = ...,
        log_file: str | os.PathLike[str] | None = None,
        on_interrupt: str = "keep",
        stop_sidecars: bool = True,
    ) -> _WaitResult:
        """Wait until the Job completes, watching the Job and its pods (no polling).

        Watches resume after dropped connections and expired resource versions. Ctrl-C
        interrupts the wait (``KeyboardInterrupt``) within 200 ms; ``on_interrupt`` says what
        happens to the Job then, and the ``kjenv`` logger says at WARNING what was done.

        Args:
            timeout: Seconds to wait at most; None waits as long as it takes.
            stream_logs: Print the log lines to ``sys.stdout`` as they come: of every pod
                (each attempt) and every restart of an ``OnFailure`` container (a container
                that restarted before the wait began: its previous run first); in a pod with
                several containers, each container's lines, starting ``[<container>] ``. A log
                that cannot be read is a WARNING on the ``kjenv`` logger, never a failure.
            image_pull_grace: Seconds a pod may fail to pull an image before the wait fails
                (default 120).
            start_timeout: Seconds a pod may stay unschedulable before the wait fails (default
                300).
            failed_create_grace: Seconds the Job controller may fail to create the Job's pods
                (``FailedCreate``: a quota, a missing ServiceAccount, an admission denial) while
                none is active before the wait fails with the event's message (default 120).
            log_file: Also write every log line the wait reads to this file (created or
                truncated first; with or without ``stream_logs``). A write that fails later is
                a warning on the ``kjenv`` logger, not a failure of the wait.
            on_interrupt: ``"keep"`` (the default: the Job keeps running and :meth:`attach`
                finds it again) or ``"delete"`` (:meth:`cancel` it: the Job and its pods are
                deleted before ``KeyboardInterrupt`` propagates; a second Ctrl-C stops that).
            stop_sidecars: When the flow container has ended but classic sidecars (other
                containers that never exit) keep its pod running, the wait returns the flow's
                outcome (exit 0 succeeds, reason ``FlowFailed`` otherwise) and, with this
                (default True), deletes the Job with its pods, which would otherwise run for
                ever; False leaves them.

        Returns:
            ``{"succeeded", "failed", "pods"}``: the Job's succeeded and failed pod counts and
            the names of its pods.

        Raises:
            JobFailedError: The Job failed (backoff limit, deadline, podFailurePolicy, failed
                indexes; named after the disruption when its last attempt was evicted,
                preempted or lost with its node), a pod cannot make progress (image pull past
                the grace period, container config or create error, OOM kill, unschedulable
                past the start timeout), its pods cannot be created (``FailedCreate`` past
                ``failed_create_grace``), its ``spec.managedBy`` names another controller, or
                the Job was deleted. Disrupted attempts the Job retries are reported at WARNING
                on the ``kjenv`` logger as they happen.
                Also at the first attempt for a failure no retry can fix (reason
                ``FlowNotLoaded``: the flow file is missing or does not unpickle;
                ``CommandCannotRun``: exit code 126, 127, 128, ``StartError``), with the line that
                says why, the Job's retries stopped (``backoffLimit`` set to 0 unless its
                podFailurePolicy failed it already).
            JobTimeoutError: ``timeout`` passed first (a ``TimeoutError``).
            ValueError: ``on_interrupt`` is not keep or delete; ``log_file`` cannot be created.
            KubeApiError: The API refused a request, or the watches' requests kept failing for
                ``KJENV_WAIT_RETRY_BUDGET`` seconds (default 60; the last HTTP status, or reason
                ``Unreachable``). While it retries, it says so at WARNING on the ``kjenv``
                logger.
        """
    def logs(
        self, follow: bool = False, container: str | None = None, all_attempts: bool = False
    ) -> str:
        """The log of the Job's newest pod: the flow container's, or ``container``'s.

        Args:
            follow: Wait until the container ends and return the whole log (a failed or dropped
                stream is resumed from the last line's timestamp, no line lost or repeated).
            container: Another container of the pod.
            all_attempts: The log of every attempt instead: each pod of the Job oldest first
                and, for a container that restarted (``restartPolicy: OnFailure``), its
                instance before the last restart (the only one the kubelet keeps), each
                section under a ``==> pod P, container C <==`` line
                (``==> pod P, container C, before restart N <==``). A section whose log
                cannot be read (a pod being deleted, a container not started) is one
                ``(no log: ...)`` line, not an error. With ``follow``, the newest pod's log is
                followed.

        Raises:
            KubeApiError: No pod yet (404), or the API refused (a followed stream: after
                the retry policy's attempts failed in a row).
        """
    def events(self) -> list[dict[str, Any]]:
        """Events of the Job and of its pods, oldest first.

        Returns:
            ``[{"type", "reason", "message", "object", "count", "time"}]`` where ``object`` is
            ``Job/<name>`` or ``Pod/<name>`` and ``time`` is RFC 3339 or None.
        """
    def cancel(self, grace_period: int | None = None) -> _Cancelled:
        """Cancel the Job: delete it and stop its running pods.

        The Job is deleted with background propagation (its name is free at once; its pods and
        Secret are deleted by the garbage collector), only if it is still this Job (its uid);
        then kjenv deletes each unfinished pod itself with ``grace_period``, so the pods get
        that grace rather than their own. The call returns without waiting for the pods'
        processes to end. A Job gone already is no error (``deleted`` is False).

        Args:
            grace_period: Seconds the pods have between SIGTERM and SIGKILL; None: each pod's
                ``terminationGracePeriodSeconds``; 0: at once.

        Returns:
            ``{"deleted", "pods", "grace_period"}``: whether the Job was deleted, and the names
            of the pods that were asked to stop.

        Raises:
            ValueError: ``grace_period`` is negative.
            KubeApiError: The API refused (409: another Job of that name replaced this one).
        """
    def delete(self, propagation: str = "Background") -> None:
        """Delete the Job and, through propagation, its pods and its Secret.

        Deleting a Job that is already gone succeeds.

        Args:
            propagation: ``"Background"`` (return at once, dependents go after) or
                ``"Foreground"``. ``"Orphan"`` is refused: it would leave pods running.

        Raises:
            ValueError: ``propagation`` is not Background or Foreground.
            KubeApiError: The API refused.
        """

@disjoint_base
class KubernetesJobEnvironment:
    """The extension's half of :class:`kjenv.KubernetesJobEnvironment`, the class users import:
    the state, the spec, ``render`` and ``execute``. The constructor's arguments and errors are
    documented there (``python/kjenv/__init__.py``), which adds ``run_flow()`` and ``run()``."""

    unique_job_name: bool
    executor: Any
    on_start: Callable[[], Any] | None
    on_exit: Callable[[], Any] | None
    metadata: dict[str, Any]

    def __init__(
        self,
        job_spec_file: str | os.PathLike[str] | None = None,
        unique_job_name: bool = False,
        executor: Any = None,
        labels: Iterable[str] | None = None,
        on_start: Callable[[], Any] | None = None,
        on_exit: Callable[[], Any] | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        job_spec: str | Mapping[str, Any] | None = None,
        namespace: str | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
    ) -> None: ...
    @property
    def job_spec_file(self) -> str | None:
        """The absolute path of the spec file, or None."""
    @property
    def labels(self) -> set[str]:
        """This environment's labels; setting it takes any iterable of strings."""
    @labels.setter
    def labels(self, labels: Iterable[str]) -> None: ...
    @property
    def namespace(self) -> str | None:
        """The namespace given to the constructor, or None."""
    @property
    def kubeconfig(self) -> str | None:
        """The absolute path of the kubeconfig given to the constructor, or None."""
    @property
    def context(self) -> str | None:
        """The kubeconfig context given to the constructor, or None."""
    @property
    def logger(self) -> logging.Logger:
        """The logger ``kjenv.KubernetesJobEnvironment``."""
    @property
    def identifier_label(self) -> str:
        """A uuid4 labelling this environment's Jobs; new per instance and after unpickling."""
    @property
    def dependencies(self) -> list[str]:
        """Python packages the flow's image needs: ``["kjenv"]``."""
    @property
    def job_spec(self) -> dict[str, Any]:
        """A copy of the stored job spec."""
    def setup(self, flow: Any = None) -> None:
        """Do nothing: this environment needs no infrastructure set up beforehand."""
    def render(
        self,
        flow: Any = None,
        *,
        image: str | None = None,
        flow_run_id: str | None = None,
        namespace: str | None = None,
        flow_file_path: str | None = None,
    ) -> dict[str, Any]:
        """Return exactly the Job ``execute`` would submit.

        Values are resolved in this order: image from ``image``, ``metadata["image"]``, the
        flow's Docker storage, ``PREFECT__CONTEXT__IMAGE``; flow run id from ``flow_run_id``,
        ``prefect.context``, ``PREFECT__CONTEXT__FLOW_RUN_ID``, a new uuid4; namespace from
        ``namespace``, the constructor, the spec, ``prefect.context``, ``default``; flow file
        path from ``flow_file_path``, the flow's storage, ``PREFECT__CONTEXT__FLOW_FILE_PATH``,
        ``/root/.prefect/flow_env.prefect``. With a Prefect Cloud token configured, the token
        appears only as a ``secretKeyRef`` to the Secret ``<job-name>-kjenv``.

        Raises:
            ValueError: No image could be found.
        """
    def execute(
        self,
        flow: Any = None,
        flow_location: str | None = None,
        *,
        image: str | None = None,
        flow_run_id: str | None = None,
        namespace: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        stream_logs: bool = False,
        failed_create_grace: float | None = None,
        stop_sidecars: bool = True,
    ) -> JobRun:
        """Create the Job on the cluster and return its handle.

        Accepts ``execute(flow)`` (Prefect 0.13+) and ``execute(storage, flow_location)``
        (Prefect <= 0.10). Values resolve as in :meth:`render`. With a Prefect Cloud token the
        Secret ``<job-name>-kjenv`` is created first and becomes a dependent of the Job (it is
        deleted if the Job cannot be created). Submitting the same flow run again adopts its
        existing Job. Transient API errors (429, 5xx, resets) are retried; a request the server
        does not answer within ``KJENV_REQUEST_TIMEOUT`` seconds (default 30) twice in a row
        raises ``KubeApiError`` with reason ``Unreachable``.

        Args:
            wait: Then wait for the Job (see :meth:`JobRun.wait`).
            timeout: Seconds ``wait`` waits at most.
            stream_logs: ``wait`` prints the log lines (see :meth:`JobRun.wait`).
            failed_create_grace: As :meth:`JobRun.wait`'s (None: its default, 120 s).
            stop_sidecars: As :meth:`JobRun.wait`'s. For the other options of the wait, call
                ``execute(...).wait(...)``. ``stream_logs``, ``timeout`` or
                ``failed_create_grace`` without ``wait=True`` is a ``ValueError`` (before any
                request).

        Raises:
            ClusterConfigError: No cluster configuration (it lists what was tried).
            KubeApiError: The API refused; 409 when the Job name is taken by another flow run
                (use ``unique_job_name=True``).
            ValueError: No image could be found.
            JobFailedError: With ``wait``: the Job failed.
            JobTimeoutError: With ``wait``: the timeout passed.
        """
    def check(
        self,
        *,
        image: str | None = None,
        namespace: str | None = None,
        dry_run: bool = True,
    ) -> dict[str, Any]:
        """Check the configured credentials before a run (``kjenv check``).

        One SelfSubjectAccessReview for each request kjenv makes in the run's namespace
        (resolved as in :meth:`execute`): create, get, list, watch, delete ``jobs``; list, watch
        ``pods``; get ``pods/log``; list ``events``; create, get ``secrets`` (needed only with
        a Prefect Cloud token). With ``dry_run``, the rendered Job is created with
        ``dryRun=All`` (admission, validation and quota run; nothing is stored); without an
        image, the spec's own image or a placeholder stands in (a dry run pulls nothing).

        Returns:
            ``{"namespace", "permissions": [{"verb", "group", "resource", "used_for",
            "allowed", "needed", "detail"}], "dry_run": {"job", "allowed", "detail"} or None,
            "ok"}``; ``ok`` is True when every needed permission is allowed and the dry run
            admitted the Job.

        Raises:
            ClusterConfigError: No cluster configuration.
            KubeApiError: The API server does not serve access reviews (404), refuses them,
                or cannot be reached.
        """
    def serialize(self) -> dict[str, Any]:
        """``{"type": "KubernetesJobEnvironment", "labels": [...], "metadata": {...}}``.

        The job spec is never part of it.
        """
    def __getstate__(self) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...

@disjoint_base
class LocalCluster:
    """A local Kubernetes cluster: an HTTPS API on 127.0.0.1 with a job controller and a kubelet
    that runs each pod's containers as local processes (images are not pulled).

    A context manager; ``stop()`` (or leaving the ``with`` block) kills every process it started.

    Args:
        port: Port on 127.0.0.1; 0 picks a free one.
        concurrency: The most pods running at once; more wait as Pending (default 8).
        backoff_base: Seconds of the Job controller's first pod-replacement backoff (default 10).
        backoff_max: Cap of that backoff, in seconds (default 360).
        work_dir: Where the kubeconfig goes; None for a temporary directory removed on stop.
        path_prefix: Directories put first on every container's PATH (default: the directory of
            this Python interpreter, so the flow one-liner's ``python`` has kjenv).
    """

    def __new__(
        cls,
        *,
        port: int = 0,
        concurrency: int | None = ...,
        backoff_base: float | None = ...,
        backoff_max: float | None = ...,
        work_dir: str | os.PathLike[str] | None = None,
        path_prefix: list[str] | None = None,
    ) -> LocalCluster: ...
    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
    @property
    def kubeconfig(self) -> str:
        """Path of a kubeconfig (mode 0600) for this cluster, with context namespace
        ``default``."""
    @property
    def token(self) -> str:
        """The bearer token clients must send."""
    @property
    def namespace(self) -> str:
        """``default``."""
    @property
    def running(self) -> bool:
        """Whether the cluster is running (``stop()`` has not been called)."""
    def stop(self) -> None:
        """Stop the API and kill every process the cluster started. Idempotent."""
    def __enter__(self) -> LocalCluster: ...
    def __exit__(self, *args: object) -> bool: ...
    def inject_fault(
        self,
        status: int | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        reset: bool = False,
        latency: float | None = None,
    ) -> None:
        """Fault injection: for the next ``times`` requests matching ``method`` and ``path``
        (``*`` is a wildcard; without one, a substring), answer ``status`` (with
        ``Retry-After: retry_after``), reset the connection, or add ``latency`` seconds."""
    def add_user(
        self, name: str, rules: list[dict[str, Any]], *, namespace: str | None = None
    ) -> str:
        """Add user ``name`` allowed what ``rules`` allow (RBAC ``PolicyRule`` dicts: ``apiGroups``,
        ``resources``, ``verbs``, ``resourceNames``, ``nonResourceURLs``) in ``namespace``, as a
        Role bound there would, or everywhere (``None``: a ClusterRole bound cluster-wide); an
        existing user keeps its token and gets these rules. Returns the path of a kubeconfig for
        that user (its context in ``namespace``, else ``default``). Its requests beyond the rules
        get kube-apiserver's 403, and access reviews (``kubectl auth can-i``) answer for it."""
    def clear_faults(self) -> None:
        """Disarm every fault rule."""
    def expire_watches(self) -> None:
        """End every open watch with an ERROR event carrying a 410 Expired Status."""
    def start_recording(self) -> None:
        """Start recording the authenticated requests the API receives (for tests of what a
        client needs, e.g. RBAC rules); a recording in progress is discarded."""
    def stop_recording(self) -> list[tuple[str, str, str]]:
        """Stop recording; return the requests as ``(method, path, query)`` tuples in arrival
        order (at most 100,000)."""
    def restart_listener(self) -> None:
        """Drop every connection and listen again on the same port; the state is kept."""
