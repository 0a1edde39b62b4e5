"""run_flow() loads the flow from its storage, backend-less, from the description that execute
puts in the Job (KJENV_FLOW_STORAGE): Module storage, and Webhook storage against an HTTP server
of this test on 127.0.0.1 that wants a secret header. Secrets travel as names; the pod resolves
them (here from PREFECT__CONTEXT__SECRETS__…, Prefect's local secrets)."""

from __future__ import annotations

import json
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cloudpickle
import pytest

from kjenv import KubernetesJobEnvironment

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SECRET = "webhook-token-value-9f3a"


@pytest.fixture
def prefect():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("prefect")


def job_spec(name: str, env: list[dict]) -> str:
    return json.dumps(
        {
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "template": {"spec": {"containers": [{"name": "flow", "env": env}]}},
            },
        }
    )


def storage_env(run_or_job) -> dict:
    container = run_or_job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_module_storage_flow_runs_in_the_pod(prefect, local_cluster, tmp_path, monkeypatch):
    from prefect.storage import Module

    (tmp_path / "kjenv_storage_module_flows.py").write_text(
        "from prefect import Flow, task\n\n"
        "@task\n"
        "def hello():\n"
        "    print('hello from module storage')\n\n"
        "with Flow('module-flow') as flow:\n"
        "    hello()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import kjenv_storage_module_flows as module

    env = KubernetesJobEnvironment(
        job_spec=job_spec("module-storage", [{"name": "PYTHONPATH", "value": str(tmp_path)}]),
        unique_job_name=True,
        kubeconfig=local_cluster.kubeconfig,
    )
    flow = module.flow
    flow.environment = env
    flow.storage = Module("kjenv_storage_module_flows")
    flow.storage.add_flow(flow)
    described = json.loads(storage_env(env.render(flow, image="i"))["KJENV_FLOW_STORAGE"])
    assert described["flow_name"] == "module-flow"
    assert described["storage"]["type"] == "Module"
    run = env.execute(flow, image="local/flows:module")
    run.wait(timeout=300)
    assert "hello from module storage" in run.logs()
    run.delete()


class _FlowStore(BaseHTTPRequestHandler):
    """Keeps one uploaded flow; serves it only with the right secret header."""

    store: dict

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.store["flow"] = self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(200, b"{}")

    def do_GET(self):  # noqa: N802
        self.store.setdefault("gets", []).append(self.headers.get("X-Token"))
        if self.headers.get("X-Token") != SECRET or "flow" not in self.store:
            self._reply(403, b"forbidden")
        else:
            self._reply(200, self.store["flow"])

    def _reply(self, code: int, body: bytes):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flow_store():
    handler = type("FlowStore", (_FlowStore,), {"store": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/flows/webhook-flow", handler.store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=60)


def test_webhook_storage_flow_runs_in_the_pod_with_its_secret(
    prefect, local_cluster, flow_store, monkeypatch
):
    from prefect import Flow, task
    from prefect.storage import Webhook

    url, store = flow_store

    @task
    def hello():
        print("hello from webhook storage")

    pod_env = [{"name": "PREFECT__CONTEXT__SECRETS__WEBHOOK_TOKEN", "value": SECRET}]
    env = KubernetesJobEnvironment(
        job_spec=job_spec("webhook-storage", pod_env),
        unique_job_name=True,
        kubeconfig=local_cluster.kubeconfig,
    )
    storage = Webhook(
        build_request_kwargs={"url": url},
        build_request_http_method="POST",
        get_flow_request_kwargs={"url": url, "headers": {"X-Token": "${WEBHOOK_TOKEN}"}},
        get_flow_request_http_method="GET",
        secrets=["WEBHOOK_TOKEN"],
    )
    with Flow("webhook-flow", environment=env, storage=storage) as flow:
        hello()
    flow.storage.add_flow(flow)
    flow.storage.build()
    assert "flow" in store, "the flow was uploaded"
    description = storage_env(env.render(flow, image="i"))["KJENV_FLOW_STORAGE"]
    assert SECRET not in description and "WEBHOOK_TOKEN" in description
    run = env.execute(flow, image="local/flows:webhook")
    run.wait(timeout=300)
    assert "hello from webhook storage" in run.logs()
    assert store["gets"] == [SECRET], "the pod fetched the flow with the resolved secret"
    run.delete()
