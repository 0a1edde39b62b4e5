"""run_flow() loads the flow from its storage, backend-less, from the description that execute
puts in the Job (KJENV_FLOW_STORAGE): Module storage, Webhook storage against an HTTP server of
this test on 127.0.0.1 that wants a secret header, and Git storage cloning from a git daemon on
127.0.0.1. Secrets travel as names; the pod resolves them (here from
PREFECT__CONTEXT__SECRETS__…, Prefect's local secrets)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
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


def test_git_storage_flow_runs_in_the_pod_from_a_local_repository(prefect, local_cluster, tmp_path):
    pytest.importorskip("dulwich")
    if shutil.which("git") is None:
        pytest.skip("needs the git command for a repository and its daemon")

    repo = tmp_path / "repo"
    (repo / "flows").mkdir(parents=True)
    (repo / "flows" / "git_flow.py").write_text(
        "from prefect import Flow, task\n\n"
        "@task\n"
        "def hello():\n"
        "    print('hello from git storage')\n\n"
        "with Flow('git-flow') as flow:\n"
        "    hello()\n"
    )
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "flow"]):
        subprocess.run([*git, *args], check=True, timeout=60)

    # A git server on 127.0.0.1 (dulwich clones local paths only without `depth`, and Prefect's
    # Git storage clones with depth 1).
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={tmp_path}",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        _run_git_flow(local_cluster, f"git://127.0.0.1:{port}/repo")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 60  # a hang guard: git daemon listens within milliseconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"git daemon did not listen on port {port}")


def _run_git_flow(local_cluster, url: str) -> None:
    from prefect import Flow
    from prefect.storage import Git

    # The clone URL is a secret: its value is resolved in the pod, its name travels.
    pod_env = [{"name": "PREFECT__CONTEXT__SECRETS__GIT_CLONE_URL", "value": url}]
    env = KubernetesJobEnvironment(
        job_spec=job_spec("git-storage", pod_env),
        unique_job_name=True,
        kubeconfig=local_cluster.kubeconfig,
    )
    flow = Flow(
        "git-flow",
        environment=env,
        # Prefect 0.15.13's GitSchema refuses a null `repo` on load (Prefect's own pod would
        # fail the same way): a placeholder, which the clone URL secret overrides.
        storage=Git(
            repo="local/repo",
            flow_path="flows/git_flow.py",
            git_clone_url_secret_name="GIT_CLONE_URL",
        ),
    )
    flow.storage.add_flow(flow)
    description = storage_env(env.render(flow, image="i"))["KJENV_FLOW_STORAGE"]
    assert url not in description and "GIT_CLONE_URL" in description
    run = env.execute(flow, image="local/flows:git")
    run.wait(timeout=300)
    assert "hello from git storage" in run.logs()
    run.delete()
