"""``run_flow()``, the in-container runner: read the run's context, load the flow (a file, or
its storage), run it with Prefect's runner for the mode or its ``run()``, and turn the outcome
into the process's exit code (0 success, 1 failure, 66 when the flow cannot be loaded), which
tells Kubernetes how the pod ended. A flow that cannot be loaded also leaves its one-line reason
as the container's termination message."""

from __future__ import annotations

import binascii
import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any, Callable

from kjenv import _storage
from kjenv._common import (
    EXIT_FAILED,
    EXIT_FLOW_NOT_LOADED,
    FlowLoadError,
    is_prefect_flow,
    typed_line,
)
from kjenv._kjenv import KubernetesJobEnvironment, flow_context

# Where Kubernetes reads a container's termination message (terminationMessagePath's default).
TERMINATION_LOG = "/dev/termination-log"


def run_flow(default_env: KubernetesJobEnvironment) -> None:
    """Load the flow named by the run's context and run it; ``SystemExit(1)`` when it fails.

    ``default_env`` (the one-liner's fresh instance) serves only when the flow carries no
    environment of its own: the stored one holds the callbacks and the executor.
    """
    ctx = flow_context()
    setup_logging()
    logger = logging.getLogger("kjenv")
    try:
        flow, secrets, source = _load(ctx)
        if not (is_prefect_flow(flow) or hasattr(flow, "run")):
            raise FlowLoadError(
                f"the object in {source} is neither a Prefect flow nor has a "
                f"run() method (got {type(flow).__name__})"
            )
    except FlowLoadError as exc:
        # No retry can load it: a distinct exit code (the Job's podFailurePolicy fails the Job
        # on it) and the reason as the last log line and the termination message.
        line = f"kjenv: {exc}"
        sys.stderr.write(f"{line}\n")
        write_termination_message(line)
        raise SystemExit(EXIT_FLOW_NOT_LOADED) from None
    stored = _stored_environment(flow)
    env = default_env if stored is None else stored
    on_start, on_exit, executor = env.on_start, env.on_exit, env.executor
    run_id = ctx["flow_run_id"] or "unknown"
    logger.info("kjenv: running flow from %s (flow run %s)", source, run_id)
    try:
        if on_start is not None:
            on_start()
        succeeded = _run(flow, executor, ctx, secrets)
    except BaseException as exc:
        # An exception escaped the flow: show it, exit 1 (the Job's backoffLimit applies).
        _call_dropping_errors(on_exit)
        if isinstance(exc, SystemExit):
            raise  # the flow's own sys.exit(code) decides, as Python's handling of it does
        sys.excepthook(type(exc), exc, exc.__traceback__)
        raise SystemExit(EXIT_FAILED) from None
    if not succeeded:
        _call_dropping_errors(on_exit)
        logger.error("kjenv: flow run failed")
        raise SystemExit(EXIT_FAILED)
    if on_exit is not None:
        on_exit()  # after a successful run its error is the run's
    logger.info("kjenv: flow run succeeded")


def write_termination_message(line: str, path: str = TERMINATION_LOG) -> None:
    """Write ``line`` as the container's termination message, when the kubelet provides the
    file (it mounts it in every container); never create it (outside a pod, e.g. the local
    cluster's process pods, ``/dev`` is the host's)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError:
        return
    try:
        os.write(fd, line.encode("utf-8", "replace")[:4096])
    except OSError:
        pass
    finally:
        os.close(fd)


def _load(ctx: Mapping[str, Any]) -> tuple[Any, dict | None, str]:
    """The flow, its storage's secrets (None for a flow file in the image) and where it came
    from, for the log. A flow kept outside the image is found as Prefect finds it: with a
    backend, from the storage the backend holds for the flow run."""
    description = ctx["storage"]
    if description is None:
        path = ctx["flow_file_path"]
        return load_flow(path), None, path
    if ctx["backend"] is not None and ctx["flow_run_id"] is not None:
        return _storage.load_from_backend(ctx["flow_run_id"], description)
    return _storage.load(description)


def _stored_environment(flow: Any) -> KubernetesJobEnvironment | None:
    """The kjenv environment stored with the flow, if it has one."""
    try:
        env = flow.environment
    except Exception:  # any object can be a flow; its attributes may raise anything
        return None
    return env if isinstance(env, KubernetesJobEnvironment) else None


def _run(flow: Any, executor: Any, ctx: Mapping[str, Any], secrets: dict | None) -> bool:
    """Run ``flow`` the way its kind wants; True if it succeeded."""
    if is_prefect_flow(flow):
        context = {
            "flow_run_id": ctx["flow_run_id"],
            "namespace": ctx["namespace"],
            "image": ctx["image"],
            # The storage's secrets stay in context while the flow runs, as in Prefect.
            "secrets": secrets,
        }
        return run_prefect_flow(flow, executor, ctx["flow_runner"], context)
    if hasattr(flow, "run"):
        return run_plain(flow)
    raise TypeError(
        f"the object in {ctx['flow_file_path']} is neither a Prefect flow nor has a run() "
        f"method (got {type(flow).__name__})"
    )


def _call_dropping_errors(callback: Callable[[], Any] | None) -> None:
    """Call ``on_exit`` after a failed run: the run's failure is what the pod reports."""
    if callback is None:
        return
    try:
        callback()
    except BaseException:
        pass


def setup_logging() -> None:
    """Make Python ``logging`` output reach the container log (stderr), once."""
    # The seed's job spec sets PREFECT__LOGGING__LOG_TO_CLOUD, which Prefect 0.15 warns about.
    warnings.filterwarnings("ignore", message=r".*log_to_cloud.* is deprecated")
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="[%(asctime)s] %(levelname)s - %(name)s | %(message)s",
        )


def load_flow(path: str) -> Any:
    """Load the flow stored at ``path``.

    Reads both formats Prefect's storage writes: its versioned JSON wrapper and plain
    cloudpickle. Unpickling is done directly (Prefect's loader first lists the versions of every
    installed package, which costs most of a second); when it fails and Prefect is installed,
    Prefect's own loader is asked for its diagnosis (version mismatches between build and run).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FlowLoadError(f"cannot read the flow file {path}: {typed_line(exc)}") from exc
    flow_bytes = data
    if data[:1] == b"{":
        try:
            flow_bytes = binascii.a2b_base64(json.loads(data.decode("utf-8"))["flow"])
        except Exception:
            flow_bytes = data
    try:
        import cloudpickle

        return cloudpickle.loads(flow_bytes)
    except Exception as exc:  # any unpickling failure: a missing module, a bad file, …
        cause: BaseException = exc
        try:
            from prefect.utilities.storage import flow_from_bytes_pickle
        except Exception:
            flow_from_bytes_pickle = None
        if flow_from_bytes_pickle is not None:
            try:
                return flow_from_bytes_pickle(data)
            except Exception as prefect_exc:
                cause = prefect_exc
        raise FlowLoadError(f"cannot load the flow from {path}: {typed_line(cause)}") from exc


def run_prefect_flow(flow: Any, executor: Any, runner_class: str, context: dict) -> bool:
    """Run a Prefect flow with the named runner class inside ``prefect.context``; True if it
    succeeded."""
    import prefect
    from prefect.utilities.serialization import from_qualified_name

    runner_cls = from_qualified_name(runner_class)
    prefect_logger = logging.getLogger("prefect")
    if prefect_logger.handlers:
        # Prefect prints its own records; the root handler would print them twice.
        prefect_logger.propagate = False
    kwargs = {} if executor is None else {"executor": executor}
    with prefect.context(**{k: v for k, v in context.items() if v is not None}):
        state = runner_cls(flow=flow).run(**kwargs)
    return bool(state.is_successful())


def run_plain(flow: Any) -> bool:
    """Run anything with a ``run()`` method; a returned state-like object decides the outcome."""
    result = flow.run()
    is_failed = getattr(result, "is_failed", None)
    if callable(is_failed):
        return not is_failed()
    return True
