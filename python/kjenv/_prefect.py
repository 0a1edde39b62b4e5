"""Glue for what is Prefect by nature: running a flow with Prefect's own runner."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from kjenv._common import typed_line

_NEEDS_PREFECT = (
    "running a flow needs Prefect's engine, and Prefect is not installed: "
    "uv pip install 'kjenv[prefect]' (pip >= 24.1 refuses prefect 0.15.13; see the README)"
)


def import_prefect() -> tuple[ModuleType | None, str | None]:
    """Prefect, or ``None`` and why not in one line.

    "Not installed" only when no ``prefect`` package is there; an installed Prefect that fails to
    import (e.g. ``No module named 'distutils'`` on Python 3.12+ without setuptools) is reported
    with its import error.
    """
    try:
        import prefect

        return prefect, None
    except Exception as exc:  # an installed Prefect can fail with more than ImportError
        if isinstance(exc, ModuleNotFoundError) and exc.name == "prefect":
            return None, "Prefect is not installed"
        if importlib.util.find_spec("prefect") is None:
            return None, "Prefect is not installed"
        return None, f"Prefect is installed but does not import: {_why(exc)}"


def _why(exc: BaseException) -> str:
    hint = ""
    if isinstance(exc, ModuleNotFoundError) and exc.name == "distutils":
        hint = " (Python 3.12+ removed distutils: pip install setuptools)"
    return f"{typed_line(exc)}{hint}"


def run_here(env: Any, flow: Any) -> Any:
    """Run ``flow`` in this process, as Prefect's ``_RunMixin.run`` does.

    ``on_start`` runs first and ``on_exit`` always runs; the flow runner is Prefect's default
    one, given the environment's executor when it has one.
    """
    prefect, problem = import_prefect()
    if prefect is None:
        message = _NEEDS_PREFECT if problem == "Prefect is not installed" else problem
        raise ImportError(message)
    from prefect.engine import get_default_flow_runner_class

    if env.on_start:
        env.on_start()
    try:
        runner_cls = get_default_flow_runner_class()
        kwargs = {} if env.executor is None else {"executor": env.executor}
        return runner_cls(flow=flow).run(**kwargs)
    except Exception as exc:
        env.logger.exception("Unexpected error raised during flow run: %s", exc)
        raise
    finally:
        if env.on_exit:
            env.on_exit()
