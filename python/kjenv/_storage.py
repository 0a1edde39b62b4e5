"""Glue for flows kept outside the image (Module, Webhook, S3, … storage): what is Prefect by
nature. ``execute`` describes the storage for the pod with Prefect's own ``StorageSchema``;
``run_flow()`` loads the storage back, resolves its secrets in the pod and asks it for the flow,
the way Prefect's ``load_and_run_flow()`` does with the storage it gets from the backend."""

from __future__ import annotations

import json
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


def load(description: str) -> tuple[Any, dict]:
    """The flow and the storage's secrets (resolved here), from a description of ``describe``."""
    try:
        desc = json.loads(description)
        import prefect
        from prefect.serialization.storage import StorageSchema

        storage = StorageSchema().load(desc["storage"])
        secrets = dict(prefect.context.get("secrets", {}))
        for name in storage.secrets:
            secrets[name] = prefect.tasks.secrets.PrefectSecret(name=name).run()
        with prefect.context(secrets=secrets):
            flow = storage.get_flow(desc["flow_name"])
    except Exception as exc:
        kind = "its storage"
        if isinstance(locals().get("desc"), dict):
            kind = f"its {desc.get('storage', {}).get('type', 'unknown')} storage"
        raise FlowLoadError(f"cannot load the flow from {kind}: {typed_line(exc)}") from exc
    return flow, secrets
