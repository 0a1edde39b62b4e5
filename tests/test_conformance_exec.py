"""Conformance: ``exec`` into a running pod of the local cluster, with clients nobody here wrote.

kubectl >= 1.30 and the official Python client (``kubernetes.stream.stream``, 37.x) speak
WebSocket ``v5.channel.k8s.io`` (kube-apiserver's stream translator answers it; the Python
client offers ``v4.channel.k8s.io`` after it, which the kubelet answers). The command runs
as a process in the container: its environment (``$(VAR)`` expansion and downward values
included) and working directory, in its process group (it stops with the pod). kubectl 1.20
speaks SPDY, which the local cluster refuses with a Status that says what works instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import websocket
from kube_cluster import unique
from kube_cluster import wait_until as poll
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from test_conformance_kubectl import Kubectl, kubectl_binary
from test_conformance_kubectl_new import new_kubectl_binary

NS = "default"


def new_api(kubeconfig: str) -> client.ApiClient:
    """An ``ApiClient`` of its own: ``stream`` patches the client it is given."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def core(local_cluster):
    with new_api(local_cluster.kubeconfig) as api:
        yield client.CoreV1Api(api)


def pod_body(name: str, workdir: str, *, annotations: dict | None = None) -> dict:
    sleep = ["sh", "-c", "sleep 3600"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": sleep,
                    "workingDir": workdir,
                    "env": [
                        {"name": "GREETING", "value": "hello"},
                        {"name": "DERIVED", "value": "$(GREETING)-world"},
                        {
                            "name": "MY_POD",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                    ],
                },
                {
                    "name": "side",
                    "image": "busybox",
                    "command": sleep,
                    "env": [{"name": "SIDE", "value": "yes"}],
                },
            ],
        },
    }


def start_pod(core, name: str, workdir: str, **kw) -> str:
    core.create_namespaced_pod(NS, pod_body(name, workdir, **kw))

    def running():
        pod = core.read_namespaced_pod(name, NS)
        states = [s.state.running for s in pod.status.container_statuses or []]
        return len(states) == 2 and all(states)

    poll(running, timeout=30, what=f"pod {name} to run")
    return name


@pytest.fixture(scope="module")
def pod(core, tmp_path_factory):
    """A running pod of two containers (``main`` with env and workingDir, ``side``)."""
    workdir = tmp_path_factory.mktemp("exec-workdir")
    name = start_pod(core, unique("exec"), str(workdir))
    yield name, str(workdir)
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)


@pytest.fixture(scope="module")
def kubectl(local_cluster, tmp_path_factory) -> Kubectl:
    return Kubectl(new_kubectl_binary(), local_cluster.kubeconfig, tmp_path_factory.mktemp("k"))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# ---- kubectl >= 1.30 (WebSocket v5) --------------------------------------------------------


def test_kubectl_exec_sees_the_container_s_env_and_working_dir(kubectl, pod):
    name, workdir = pod
    proc = kubectl.run("exec", name, "-c", "main", "--", "sh", "-c", "echo $DERIVED $MY_POD; pwd")
    assert proc.stdout == f"hello-world {name}\n{os.path.realpath(workdir)}\n"
    proc = kubectl.run("exec", name, "-c", "side", "--", "sh", "-c", 'echo "$SIDE/$GREETING"')
    assert proc.stdout == "yes/\n"


def test_kubectl_defaults_to_the_first_container_and_says_so(kubectl, pod):
    name, _ = pod
    proc = kubectl.run("exec", name, "--", "sh", "-c", "echo $GREETING")
    assert proc.stdout == "hello\n"
    assert 'Defaulted container "main" out of: main, side' in proc.stderr


def test_kubectl_exec_pipes_stdin_and_closes_it(kubectl, pod):
    name, _ = pod
    proc = subprocess_run(kubectl, ["exec", "-i", name, "-c", "main", "--", "cat"], "hi\nthere\n")
    assert (proc.returncode, proc.stdout) == (0, "hi\nthere\n"), proc.stderr


def subprocess_run(kubectl: Kubectl, args: list[str], stdin: str):
    return subprocess.run(
        kubectl.argv(*args),
        env=kubectl.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kubectl_exec_exits_with_the_command_s_code_streams_apart(kubectl, pod):
    name, _ = pod
    script = "echo out; echo err >&2; exit 3"
    proc = kubectl.run("exec", name, "-c", "main", "--", "sh", "-c", script, check=False)
    assert proc.returncode == 3
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\ncommand terminated with exit code 3\n"


def test_kubectl_exec_of_a_missing_pod_or_container(kubectl, pod):
    name, _ = pod
    proc = kubectl.run("exec", "no-such-pod", "--", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'Error from server (NotFound): pods "no-such-pod" not found'
    proc = kubectl.run("exec", name, "-c", "nope", "--", "true", check=False)
    assert proc.returncode == 1
    assert "nope" in proc.stderr, proc.stderr


def test_kubectl_exec_of_a_missing_program_gets_the_runtime_s_error(kubectl, pod):
    name, _ = pod
    proc = kubectl.run("exec", name, "-c", "main", "--", "no-such-program", check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert err.startswith(
        "error: Internal error occurred: Internal error occurred: error executing command in "
        'container: failed to exec in container: failed to start exec "'
    ), err
    assert err.endswith(
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        '"no-such-program": executable file not found in $PATH: unknown'
    ), err


# ---- kubectl 1.20 (SPDY) -------------------------------------------------------------------


def test_kubectl_1_20_is_refused_with_a_status_naming_what_works(local_cluster, pod, tmp_path):
    name, _ = pod
    old = Kubectl(kubectl_binary(), local_cluster.kubeconfig, tmp_path)
    proc = old.run("exec", name, "-c", "main", "--", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error from server (BadRequest): unable to upgrade connection: the local cluster serves "
        "exec over WebSocket only (kubectl >= 1.30, the kubernetes Python client); SPDY/3.1 is "
        "not supported"
    )
    # What the API server checks itself still comes first, as on a real one.
    proc = old.run("exec", "no-such-pod", "--", "true", check=False)
    assert proc.stderr.strip() == 'Error from server (NotFound): pods "no-such-pod" not found'


# ---- the official Python client (WebSocket v5) ---------------------------------------------


def test_python_client_exec_captures_stdout(local_cluster, pod):
    name, workdir = pod
    with new_api(local_cluster.kubeconfig) as api:
        out = stream(
            client.CoreV1Api(api).connect_get_namespaced_pod_exec,
            name,
            NS,
            container="main",
            command=["sh", "-c", "echo $GREETING; pwd"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
    assert out == f"hello\n{os.path.realpath(workdir)}\n"


def test_python_client_exec_streams_with_returncode(local_cluster, pod):
    name, _ = pod
    with new_api(local_cluster.kubeconfig) as api:
        resp = stream(
            client.CoreV1Api(api).connect_get_namespaced_pod_exec,
            name,
            NS,
            container="main",
            command=["sh", "-c", "read line; echo got $line; echo oops >&2; exit 7"],
            stderr=True,
            stdin=True,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.write_stdin("ping\n")
        resp.run_forever(timeout=30)
        assert not resp.is_open(), "the exec did not end"
        assert resp.read_stdout() == "got ping\n"
        assert resp.read_stderr() == "oops\n"
        assert resp.returncode == 7
        resp.close()


def test_python_client_gets_the_api_server_s_400_for_a_bad_container(local_cluster, pod):
    name, _ = pod
    with new_api(local_cluster.kubeconfig) as api:
        with pytest.raises(ApiException) as e:
            stream(
                client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                name,
                NS,
                container="nope",
                command=["true"],
                stdout=True,
            )
    assert "400" in str(e.value) and f"container nope is not valid for pod {name}" in str(e.value)
    with new_api(local_cluster.kubeconfig) as api:
        with pytest.raises(ApiException) as e:
            stream(
                client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                name,
                NS,
                command=["true"],
                stdout=True,
            )
    assert f"a container name must be specified for pod {name}, choose one of: [main side]" in str(
        e.value
    )


def open_sleeper(kubeconfig: str, name: str):
    """An exec of a shell that prints its pid and sleeps; returns (api, response, pid)."""
    api = new_api(kubeconfig)
    resp = stream(
        client.CoreV1Api(api).connect_get_namespaced_pod_exec,
        name,
        NS,
        container="main",
        command=["sh", "-c", "echo $$; exec sleep 300"],
        stdout=True,
        stderr=True,
        _preload_content=False,
    )
    out = ""
    deadline = time.monotonic() + 30
    while "\n" not in out and time.monotonic() < deadline:
        resp.update(timeout=1)
        out += resp.read_stdout() or ""
    return api, resp, int(out.strip())


def test_an_exec_ends_when_its_client_goes_away(local_cluster, pod):
    name, _ = pod
    api, resp, pid = open_sleeper(local_cluster.kubeconfig, name)
    assert alive(pid)
    resp.close()
    api.close()
    poll(lambda: not alive(pid), timeout=10, what=f"exec process {pid} to end")


def test_an_exec_ends_with_its_pod(local_cluster, core, tmp_path):
    name = start_pod(core, unique("exec-stop"), str(tmp_path))
    api, resp, pid = open_sleeper(local_cluster.kubeconfig, name)
    assert alive(pid)
    core.delete_namespaced_pod(name, NS)
    poll(lambda: not alive(pid), timeout=20, what=f"exec process {pid} to end with its pod")
    resp.run_forever(timeout=20)
    assert not resp.is_open()
    assert resp.returncode != 0
    api.close()


# ---- RBAC ----------------------------------------------------------------------------------


def test_exec_needs_create_on_pods_exec(local_cluster, pod, tmp_path):
    """kubectl falls back from a refused WebSocket to SPDY, whose POST needs ``create``; the
    WebSocket GET needs ``get`` and, since kube-apiserver 1.35, ``create`` too."""
    name, _ = pod
    user = unique("no-exec")
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    kubeconfig = local_cluster.add_user(user, rules, namespace=NS)
    proc = Kubectl(new_kubectl_binary(), kubeconfig, tmp_path).run(
        "exec", name, "-c", "main", "--", "true", check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'Error from server (Forbidden): pods "{name}" is forbidden: User "{user}" cannot create '
        'resource "pods/exec" in API group "" in the namespace "default"'
    )
    # `get` alone on pods/exec passes the first check, not the second.
    rules.append({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]})
    kubeconfig = local_cluster.add_user(user, rules, namespace=NS)
    with new_api(kubeconfig) as api:
        with pytest.raises(ApiException) as e:
            stream(
                client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                name,
                NS,
                container="main",
                command=["true"],
                stdout=True,
            )
    assert "403" in str(e.value)
    assert 'cannot create resource \\"pods/exec\\"' in str(e.value) or (
        'cannot create resource "pods/exec"' in str(e.value)
    )
    # Both verbs: the exec runs.
    rules[-1]["verbs"] = ["get", "create"]
    kubeconfig = local_cluster.add_user(user, rules, namespace=NS)
    proc = Kubectl(new_kubectl_binary(), kubeconfig, tmp_path).run(
        "exec", name, "-c", "main", "--", "sh", "-c", "echo $GREETING"
    )
    assert proc.stdout == "hello\n"


def test_exec_into_a_container_that_ended(local_cluster, core, kubectl, tmp_path):
    """The kubelet finds no running container: v5 clients (kubectl, the Python client), whose
    requests the API server's stream translator serves, get that on the open stream."""
    name = unique("exec-ended")
    body = pod_body(name, str(tmp_path))
    body["spec"]["containers"][1]["command"] = ["true"]
    core.create_namespaced_pod(NS, body)

    def side_ended():
        statuses = core.read_namespaced_pod(name, NS).status.container_statuses or []
        return any(s.name == "side" and s.state.terminated for s in statuses)

    poll(side_ended, timeout=30, what=f"container side of {name} to end")
    proc = kubectl.run("exec", name, "-c", "side", "--", "true", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        'error: Internal error occurred: unable to upgrade connection: container not found ("side")'
    )
    with new_api(local_cluster.kubeconfig) as api:
        resp = stream(
            client.CoreV1Api(api).connect_get_namespaced_pod_exec,
            name,
            NS,
            container="side",
            command=["true"],
            stdout=True,
            _preload_content=False,
        )
        resp.run_forever(timeout=30)
        assert not resp.is_open(), "the exec did not end"
        status = json.loads(resp.read_channel(3))
        resp.close()
    assert status["message"] == (
        'Internal error occurred: unable to upgrade connection: container not found ("side")'
    )
    assert (status["reason"], status["code"]) == ("InternalError", 500)
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)


def test_a_v4_client_gets_the_kubelet_s_words(local_cluster, pod):
    """A client that offers only ``v4.channel.k8s.io`` (websocket-client, as older Python
    clients and kr8s use it) is answered as the kubelet answers: the Status of a non-zero exit
    names the command."""
    name, _ = pod
    cfg = client.Configuration()
    config.load_kube_config(config_file=local_cluster.kubeconfig, client_configuration=cfg)
    url = cfg.host.replace("https://", "wss://") + (
        f"/api/v1/namespaces/{NS}/pods/{name}/exec?container=main&stdout=true&stderr=true"
        "&command=sh&command=-c&command=echo%20hi%3B%20exit%203"
    )
    ws = websocket.create_connection(
        url,
        header=[f"Authorization: {cfg.auth_settings()['BearerToken']['value']}"],
        subprotocols=["v4.channel.k8s.io"],
        sslopt={"ca_certs": cfg.ssl_ca_cert},
        timeout=30,
    )
    assert ws.subprotocol == "v4.channel.k8s.io"
    frames = []
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        frames.append(data)
    ws.close()
    assert frames[0] == b"\x01"  # "connected": an empty message on the first output channel
    assert b"".join(f[1:] for f in frames if f[:1] == b"\x01") == b"hi\n"
    status = json.loads(b"".join(f[1:] for f in frames if f[:1] == b"\x03"))
    assert status == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        "[sh -c echo hi; exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
