"""Glue for flows kept outside the image (Module, Webhook, S3, … storage): what is Prefect by
nature. ``execute`` describes the storage for the pod with Prefect's own ``StorageSchema``;
``run_flow()`` gets the storage the way Prefect's ``load_and_run_flow()`` does — from the backend
that scheduled the run (Cloud or Server), asked for the flow run's flow — or, backend-less (or
when the backend cannot say), from that description in the Job; then it resolves the storage's
secrets in the pod and asks the storage for the flow."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from kjenv._common import FlowLoadError, typed_line

# The flow is a file in the image: the pod reads PREFECT__CONTEXT__FLOW_FILE_PATH.
_FILE_IN_IMAGE = {"Docker", "Local"}


def describe(storage: Any, flow_name: str | None) -> str | None:
    """The storage as JSON for the Job, or ``None`` when the flow is a file in the image.

    Prefect's serialization holds what the storage needs to find the flow and the *names* of its
    secrets (``storage.secrets``), the same document Prefect registers with its backend.
    """
    prefect = sys.modules.get("prefect")
    if prefect is None or flow_name is None or type(storage).__name__ in _FILE_IN_IMAGE:
        return None
    if not isinstance(storage, prefect.storage.Storage):
        return None
    from prefect.serialization.storage import StorageSchema

    data = StorageSchema().dump(storage)
    return json.dumps({"flow_name": flow_name, "storage": data}, sort_keys=True)


def load(description: str) -> tuple[Any, dict, str]:
    """The flow, the storage's secrets (resolved here) and what it came from, from a
    description of ``describe``."""
    try:
        desc = json.loads(description)
    except ValueError as exc:
        raise FlowLoadError(f"cannot load the flow from its storage: {typed_line(exc)}") from exc
    return _from_storage(desc, "described in the Job")


def load_from_backend(flow_run_id: str, description: str) -> tuple[Any, dict, str]:
    """As :func:`load`, with the storage the backend holds for flow run ``flow_run_id`` (what
    Prefect's ``load_and_run_flow()`` asks for); when the backend cannot say, a WARNING and the
    Job's ``description``."""
    try:
        desc = _backend_storage(flow_run_id)
    except Exception as exc:  # the backend's client raises anything: HTTP, GraphQL, shapes
        logging.getLogger("kjenv").warning(
            "kjenv: the backend did not give the storage of flow run %s (%s); "
            "loading the flow from the storage described in the Job",
            flow_run_id,
            typed_line(exc),
        )
        return load(description)
    return _from_storage(desc, "given by the backend")


def _backend_storage(flow_run_id: str) -> dict:
    """``{"flow_name", "storage"}`` of the flow run's flow, from the backend's GraphQL API."""
    import prefect
    from prefect.utilities.graphql import with_args

    where = {"where": {"id": {"_eq": flow_run_id}}}
    query = {"query": {with_args("flow_run", where): {"flow": {"name": True, "storage": True}}}}
    runs = prefect.Client().graphql(query).data.flow_run
    if not runs:
        raise LookupError(f"the backend knows no flow run {flow_run_id}")
    flow = runs[0].flow
    return {"flow_name": flow.name, "storage": dict(flow.storage)}


def _from_storage(desc: Any, origin: str) -> tuple[Any, dict, str]:
    """Load ``desc["storage"]``, resolve its secrets, get ``desc["flow_name"]`` from it; the
    flow, the secrets and what it came from (``its S3 storage, given by the backend``)."""
    kind = "its storage"
    try:
        import prefect
        from prefect.serialization.storage import StorageSchema

        kind = f"its {desc.get('storage', {}).get('type', 'unknown')} storage"
        storage = StorageSchema().load(desc["storage"])
        secrets = dict(prefect.context.get("secrets", {}))
        for name in storage.secrets:
            secrets[name] = prefect.tasks.secrets.PrefectSecret(name=name).run()
        with prefect.context(secrets=secrets):
            flow = storage.get_flow(desc["flow_name"])
    except Exception as exc:
        raise FlowLoadError(
            f"cannot load the flow from {kind} ({origin}): {typed_line(exc)}"
        ) from exc
    return flow, secrets, f"{kind}, {origin}"
