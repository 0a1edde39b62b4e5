"""Glue for ``run_flow()``: what is Python by nature — unpickling a flow and running it."""

from __future__ import annotations

import binascii
import json
import logging
import sys
import warnings
from typing import Any


class FlowLoadError(Exception):
    """The flow file could not be read or unpickled; the message is one line."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


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
        raise FlowLoadError(f"cannot read the flow file {path}: {_one_line(exc)}") from exc
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
        raise FlowLoadError(f"cannot load the flow from {path}: {_one_line(cause)}") from exc


def is_prefect_flow(flow: Any) -> bool:
    """Whether ``flow`` is a Prefect Flow (without importing Prefect needlessly)."""
    prefect = sys.modules.get("prefect")
    return prefect is not None and isinstance(flow, prefect.Flow)


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
