"""With a backend, ``run_flow()`` finds a flow kept outside the image the way Prefect's
``load_and_run_flow()`` does: it asks the backend (here a Prefect Server's place, taken by the
listener of ``prefect_server.py`` on 127.0.0.1) for the flow run's flow and storage, and loads
the flow from that storage. When the backend cannot say, it warns and falls back on the storage
described in the Job. Two Module storages tell the two paths apart: each module prints a line
when the pod imports it.

The listener answers only the storage query; the CloudFlowRunner's own queries get GraphQL
errors, so each flow run fails after its flow was loaded (what these tests look at)."""

from __future__ import annotations

import json
import sys
import uuid
import warnings

import cloudpickle
import pytest
from prefect_server import NOT_A_SERVER, listening

import kjenv
from kjenv import KubernetesJobEnvironment

cloudpickle.register_pickle_by_value(sys.modules[__name__])

MODULE = """\
print("{marker}")
from prefect import Flow, task

@task
def hello():
    print("hello")

with Flow("{flow}") as flow:
    hello()
"""


@pytest.fixture
def prefect():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("prefect")


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Two flow modules on the path: the Job's (what the submitter's flow is) and the
    backend's (what the listener says the flow run's storage is)."""
    tag = uuid.uuid4().hex[:8]
    names = {"job": f"kjenv_job_flows_{tag}", "backend": f"kjenv_backend_flows_{tag}"}
    for side, name in names.items():
        text = MODULE.format(marker=f"imported the {side}'s module", flow=f"{side}-flow")
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path, names


def storage_answer(flow_name: str, module: str):
    """The listener's answers: the flow run's flow and its Module storage for Prefect's
    storage query, an error for everything else."""
    from prefect.serialization.storage import StorageSchema
    from prefect.storage import Module

    registered = Module(module)
    registered.flows[flow_name] = module  # what Module.add_flow records for the flow
    storage = StorageSchema().dump(registered)

    def answer(query: dict):
        text = query.get("query", "")
        if "flow_run(" in text and "storage" in text:
            return {"data": {"flow_run": [{"flow": {"name": flow_name, "storage": storage}}]}}
        return NOT_A_SERVER

    return answer


def run_in_server_mode(
    prefect, monkeypatch, kubeconfig: str, endpoint: str, modules
) -> tuple[str, str]:
    """Submit the Job's module flow in Server mode against ``endpoint``; its flow run id and
    the pod's log (the run fails: the listener is no Server)."""
    folder, names = modules
    monkeypatch.setitem(prefect.config, "backend", "server")
    monkeypatch.setitem(prefect.config.cloud, "graphql", f"{endpoint}/graphql")
    monkeypatch.setitem(prefect.config.cloud, "api", endpoint)
    module = __import__(names["job"])
    spec = {
        "metadata": {"name": "server-storage"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "flow", "env": [{"name": "PYTHONPATH", "value": str(folder)}]}
                    ]
                }
            },
        },
    }
    env = KubernetesJobEnvironment(
        job_spec=json.dumps(spec),
        unique_job_name=True,
        kubeconfig=kubeconfig,
    )
    flow = module.flow
    flow.environment = env
    flow.storage = prefect.storage.Module(names["job"])
    flow.storage.add_flow(flow)
    flow_run_id = str(uuid.uuid4())
    run = env.execute(flow, image="local/flows:server-storage", flow_run_id=flow_run_id)
    try:
        with pytest.raises(kjenv.JobFailedError):
            run.wait(timeout=300)
        return flow_run_id, run.logs()
    finally:
        run.delete()


def storage_queries(recorder, flow_run_id: str) -> list[dict]:
    queries = [json.loads(r["body"]) for r in recorder.seen() if r["body"].startswith("{")]
    return [q for q in queries if "storage" in q.get("query", "") and flow_run_id in json.dumps(q)]


def test_with_a_backend_the_pod_loads_the_storage_the_backend_holds(
    prefect, local_cluster, modules, monkeypatch
):
    _, names = modules
    answer = storage_answer("backend-flow", names["backend"])
    with listening(answer) as (endpoint, recorder):
        flow_run_id, logs = run_in_server_mode(
            prefect, monkeypatch, local_cluster.kubeconfig, endpoint, modules
        )
        assert storage_queries(recorder, flow_run_id), recorder.seen()
    assert "imported the backend's module" in logs, logs
    assert "imported the job's module" not in logs, logs
    assert "running flow from its Module storage, given by the backend" in logs, logs
    # Then the CloudFlowRunner asks the same listener for its flow run, and gets an error.
    assert "flow_run_by_pk" in json.dumps(recorder.seen())


def test_when_the_backend_cannot_say_the_pod_warns_and_uses_the_job_s_description(
    prefect, local_cluster, modules, monkeypatch
):
    with listening() as (endpoint, recorder):
        flow_run_id, logs = run_in_server_mode(
            prefect, monkeypatch, local_cluster.kubeconfig, endpoint, modules
        )
        assert storage_queries(recorder, flow_run_id), recorder.seen()
    assert f"the backend did not give the storage of flow run {flow_run_id}" in logs, logs
    assert "kjenv test listener: not a Prefect Server" in logs, logs
    assert "imported the job's module" in logs, logs
    assert "running flow from its Module storage, described in the Job" in logs, logs
