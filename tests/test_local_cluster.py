"""kjenv.testing.LocalCluster and ``kjenv cluster``: lifecycle, security, fault injection."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

import kjenv
from kjenv.testing import LocalCluster


def api(cluster, path, *, token=None, method="GET", body=None):
    """A raw HTTPS request to the cluster with its own CA (no client library in between)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False  # the certificate names 127.0.0.1 as an IP SAN
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(cluster.url + path, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
        req.data = json.dumps(body).encode()
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_lifecycle_kubeconfig_and_repr():
    with LocalCluster() as cluster:
        assert cluster.running
        assert cluster.url.startswith("https://127.0.0.1:")
        assert cluster.namespace == "default"
        assert stat.S_IMODE(os.stat(cluster.kubeconfig).st_mode) == 0o600
        assert cluster.token not in repr(cluster)
        assert api(cluster, "/version", token=cluster.token)[0] == 200
        kubeconfig = cluster.kubeconfig
    assert not cluster.running
    assert not os.path.exists(kubeconfig), "the temporary work dir is removed"
    cluster.stop()  # idempotent
    with pytest.raises(kjenv.KjenvError, match="stopped"):  # a KjenvError, no bare RuntimeError
        cluster.expire_watches()


def raw_request(cluster, authorization: str | None, path="/api/v1/namespaces/default/secrets"):
    """A hand-written HTTP/1.1 request over TLS (no client library that might add or drop a
    header): the status code and the body."""
    port = int(cluster.url.rsplit(":", 1)[1])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as tcp:
        with ctx.wrap_socket(tcp, server_hostname="127.0.0.1") as tls:
            tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        "Basic {token}",
        "Bearer {token}x",
        "Bearer {upper}",
        "bearer-{token}",
    ],
)
def test_requests_without_the_token_are_401(local_cluster, authorization):
    token = local_cluster.token
    if authorization is not None:
        authorization = authorization.format(token=token, upper=token.upper())
    status, body = raw_request(local_cluster, authorization)
    assert status == 401, body
    assert json.loads(body)["reason"] == "Unauthorized"
    assert token.encode() not in body
    assert b"items" not in body
    assert raw_request(local_cluster, f"Bearer {token}")[0] == 200


def _listening(port: int) -> list[str]:
    """The local addresses listening on ``port`` (from /proc/net/tcp and tcp6), as hex."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    found.append(address)
    return found


def test_the_listener_is_127_0_0_1_only(local_cluster):
    port = int(local_cluster.url.rsplit(":", 1)[1])
    assert local_cluster.url == f"https://127.0.0.1:{port}"
    # 127.0.0.1 in /proc/net/tcp's little-endian hex; nothing on 0.0.0.0 or any IPv6 address.
    assert _listening(port) == ["0100007F"]
    local_cluster.restart_listener()
    assert _listening(port) == ["0100007F"], "a restarted listener binds loopback again"
    for address in ("127.0.0.2", "::1"):
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=2).close()


def test_fault_injection_from_python(local_cluster):
    path = "/api/v1/namespaces/default/configmaps"
    local_cluster.inject_fault(503, method="GET", path=path, times=2)
    codes = [api(local_cluster, path, token=local_cluster.token)[0] for _ in range(3)]
    assert codes == [503, 503, 200]
    local_cluster.inject_fault(429, path="/version", retry_after=3)
    status, body = api(local_cluster, "/version", token=local_cluster.token)
    assert status == 429 and body["details"]["retryAfterSeconds"] == 3
    with pytest.raises(ValueError, match="exactly one"):
        local_cluster.inject_fault(500, reset=True)
    local_cluster.inject_fault(500, path="/version", times=5)
    local_cluster.clear_faults()
    assert api(local_cluster, "/version", token=local_cluster.token)[0] == 200


def test_bad_arguments():
    with pytest.raises(ValueError, match="concurrency"):
        LocalCluster(concurrency=0)
    with pytest.raises(ValueError, match="backoff_base"):
        LocalCluster(backoff_base=-1)


def _alive(marker: str) -> list[str]:
    out = subprocess.run(
        ["pgrep", "-f", marker], capture_output=True, text=True, timeout=300
    ).stdout
    return out.split()


def test_kjenv_cluster_ctrl_c_stops_it_and_its_processes(tmp_path):
    marker = f"kjenv-marker-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kjenv", "cluster"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kubeconfig = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and kubeconfig is None:
            line = proc.stdout.readline()
            if line.startswith("kubeconfig: "):
                kubeconfig = line.split(": ", 1)[1].strip()
        assert kubeconfig and os.path.exists(kubeconfig)
        from kubernetes import client, config

        api_client = config.new_client_from_config(kubeconfig)
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "sleeper"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "s",
                                "image": "x",
                                "command": ["sh", "-c", f"sleep 60 # {marker}"],
                            }
                        ],
                    }
                }
            },
        }
        client.BatchV1Api(api_client).create_namespaced_job("default", job)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _alive(marker):
            time.sleep(0.1)
        assert _alive(marker), "the pod's process started"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "local cluster stopped" in proc.stdout.read()
        assert not _alive(marker), "Ctrl-C killed every process the cluster started"
        assert not os.path.exists(kubeconfig)
    finally:
        if proc.poll() is None:
            proc.kill()
