"""Turning a Python file into a stored flow: what ``kjenv run`` and ``kjenv demo`` share."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from kjenv._common import is_prefect_flow


class FlowFileError(ValueError):
    """The flow file cannot be used (not found, fails to import, no flow in it)."""


def import_file(path: str) -> ModuleType:
    """Import a Python file as a fresh module whose objects pickle by value."""
    file = Path(path)
    if not file.is_file():
        raise FlowFileError(f"flow file not found: {path}")
    name = f"kjenv_flow_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise FlowFileError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise FlowFileError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    import cloudpickle

    # The pod has no copy of this file: its functions and classes travel by value.
    cloudpickle.register_pickle_by_value(module)
    return module


def find_flow(module: ModuleType, name: str | None = None) -> Any:
    """The flow in ``module``: named by variable or flow name, else the only Prefect flow, else
    a variable called ``flow`` with a ``run()`` method."""
    items = {k: v for k, v in vars(module).items() if not k.startswith("_")}
    if name is not None:
        if name in items:
            return items[name]
        for obj in items.values():
            if is_prefect_flow(obj) and obj.name == name:
                return obj
        raise FlowFileError(f"no flow named {name!r} in {module.__file__}")
    flows = [v for v in items.values() if is_prefect_flow(v)]
    unique = list({id(f): f for f in flows}.values())
    if len(unique) == 1:
        return unique[0]
    if len(unique) > 1:
        names = ", ".join(sorted(f.name for f in unique))
        raise FlowFileError(
            f"{module.__file__} defines several flows ({names}): pick one with --flow"
        )
    candidate = items.get("flow")
    if candidate is not None and callable(getattr(candidate, "run", None)):
        return candidate
    raise FlowFileError(
        f"no flow in {module.__file__}: define a Prefect Flow, "
        "or a variable `flow` with a run() method"
    )


def store_flow(flow: Any, directory: str) -> str:
    """Write ``flow`` to a file in ``directory`` the way Prefect's storage does; return its path."""
    if is_prefect_flow(flow):
        from prefect.utilities.storage import flow_to_bytes_pickle

        data = flow_to_bytes_pickle(flow)
    else:
        import cloudpickle

        data = cloudpickle.dumps(flow)
    path = Path(directory) / f"flow-{uuid.uuid4().hex[:8]}.prefect"
    path.write_bytes(data)
    return str(path)
