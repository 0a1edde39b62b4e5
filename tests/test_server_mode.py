"""In the pod, a Server-mode flow run talks to the Server: a Prefect flow runs on the local cluster
with ``PREFECT__BACKEND=server`` pointing at a listener of this test on 127.0.0.1, and the
CloudFlowRunner's GraphQL requests arrive there.

The listener (``prefect_server.py``) is no Prefect Server: it answers every query with a GraphQL
error, so the flow run itself fails (the runner cannot read its flow run) and the Job fails. What
this test proves is that the pod reports to the backend the submitter was configured with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import cloudpickle
import pytest
from prefect_server import listening

ROOT = Path(__file__).parent.parent
SEED_SPEC = str(ROOT / "examples" / "job_spec.yaml")

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def listener():
    with listening() as served:
        yield served


def test_server_mode_flow_run_sends_its_graphql_to_the_server(local_cluster, listener, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("prefect")
    from prefect import Flow, task

    @task
    def hello():
        print("hello from the pod")

    with Flow("server-mode") as flow:
        hello()
    flow_path = str(tmp_path / "server-mode.prefect")
    with open(flow_path, "wb") as f:
        cloudpickle.dump(flow, f)

    endpoint, recorder = listener
    flow_run_id = str(uuid.uuid4())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
    env.update({"PREFECT__BACKEND": "server", "PREFECT__SERVER__ENDPOINT": endpoint})
    args = [
        SEED_SPEC,
        "--image",
        "local/flows:server",
        "--flow-file-path",
        flow_path,
        "--flow-run-id",
        flow_run_id,
        "--kubeconfig",
        local_cluster.kubeconfig,
    ]
    rendered = subprocess.run(
        [sys.executable, "-m", "kjenv", "render", *args[:-2], "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    pod_env = {
        e["name"]: e.get("value")
        for e in json.loads(rendered.stdout)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert pod_env["PREFECT__BACKEND"] == "server"
    assert pod_env["PREFECT__CLOUD__GRAPHQL"] == f"{endpoint}/graphql"
    assert pod_env["PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"] == (
        "prefect.engine.cloud.CloudFlowRunner"
    )

    # The seed spec's name is fixed: a unique one per run keeps reruns apart.
    spec = tmp_path / "job.yaml"
    spec.write_text(
        Path(SEED_SPEC)
        .read_text()
        .replace("name: my-prefect-job", f"name: server-mode-{flow_run_id[:8]}")
        .replace("spec:\n  template:", "spec:\n  backoffLimit: 0\n  template:", 1)
    )
    args[0] = str(spec)
    done = subprocess.run(
        [sys.executable, "-m", "kjenv", "submit", *args, "--wait", "--logs", "--timeout", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seen = recorder.seen()
    # The listener answers with errors, so the flow run fails and so does the Job.
    assert done.returncode == 1, done.stdout + done.stderr
    assert seen, f"no request reached the Server; pod log:\n{done.stdout}\n{done.stderr}"
    queries = [json.loads(r["body"]) for r in seen if r["body"].startswith("{")]
    assert all(r["path"] in ("/", "/graphql", "/graphql/") for r in seen), seen
    # CloudFlowRunner.initialize_run asks the Server for this flow run first.
    assert any(
        "flow_run_by_pk" in q.get("query", "") and flow_run_id in json.dumps(q) for q in queries
    ), queries
    assert all(r["auth"] is None or r["auth"] == "Bearer " for r in seen), "no token to a Server"
