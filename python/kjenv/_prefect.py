"""Glue for what is Prefect by nature: running a flow with Prefect's own runner."""

from __future__ import annotations

from typing import Any

_NEEDS_PREFECT = (
    "running a flow needs Prefect's engine: pip install 'prefect==0.15.13' 'marshmallow<4'"
)


def run_here(env: Any, flow: Any) -> Any:
    """Run ``flow`` in this process, as Prefect's ``_RunMixin.run`` does.

    ``on_start`` runs first and ``on_exit`` always runs; the flow runner is Prefect's default
    one, given the environment's executor when it has one.
    """
    try:
        from prefect.engine import get_default_flow_runner_class
    except ImportError as exc:
        raise ImportError(_NEEDS_PREFECT) from exc

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
