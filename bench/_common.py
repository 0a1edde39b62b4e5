"""Pieces the benchmarks share: the cluster (the local one in its own process, or a given
kubeconfig's), the Job spec, timers."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable

import yaml

IMAGE = "example/flows:latest"
# Every Job a benchmark creates carries this label (value: the run's tag), so that it can delete
# them all at the end with one delete-collection.
BENCH_LABEL = "kjenv-bench"
# The kubeconfig of a cluster to run against instead of starting the local one (or --kubeconfig).
KUBECONFIG_ENV = "KJENV_BENCH_KUBECONFIG"


def suspended_spec(name: str = "bench", tag: str = "") -> dict:
    """The seed's example Job, suspended so that it starts no pods (the figure is the API's)."""
    labels = {"identifier": "", "flow_run_id": ""}
    if tag:
        labels[BENCH_LABEL] = tag
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "suspend": True,
            "template": {
                "metadata": {"labels": {"identifier": "", "flow_run_id": ""}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "flow",
                            "image": "",
                            "command": [],
                            "args": [],
                            "env": [{"name": "EXTRA", "value": "1"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                        }
                    ],
                },
            },
        },
    }


def listening_pid(port: int) -> int | None:
    """The process that listens on 127.0.0.1:``port`` (TCP), from /proc; None if not found."""
    inodes = set()
    try:
        with open("/proc/net/tcp") as f:
            for line in list(f)[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.split(":")[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    except OSError:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
            except OSError:
                continue
    return None


class Cluster:
    """The API server the benchmarks talk to.

    Without ``kubeconfig``: ``python -m kjenv cluster`` in its own process, so it does not share
    the client's GIL, stopped by ``stop()``. With one (e.g. a real kube-apiserver's, from
    ``scripts/real-cluster up``): that cluster, left running; ``server_pid`` is then the process
    listening on its port when it is on this machine (for CPU figures), else None. Either way the
    kubeconfig may authenticate with a bearer token or a client certificate.
    """

    def __init__(self, concurrency: int = 8, kubeconfig: str | None = None):
        self.proc = None
        self.real = kubeconfig is not None
        if kubeconfig is not None:
            self.kubeconfig = kubeconfig
        else:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kjenv",
                    "cluster",
                    "--port",
                    "0",
                    "--concurrency",
                    str(concurrency),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.kubeconfig = ""
            for line in self.proc.stdout:
                if line.startswith("kubeconfig:"):
                    self.kubeconfig = line.split(":", 1)[1].strip()
                    break
            if not self.kubeconfig:
                self.proc.kill()
                raise RuntimeError("the local cluster did not start")
        with open(self.kubeconfig) as f:
            kc = yaml.safe_load(f)
        current = kc.get("current-context")
        context = next(
            (c["context"] for c in kc.get("contexts") or [] if c["name"] == current), None
        )

        def pick(kind: str, key: str) -> dict:
            items = kc[kind]
            if context is not None:
                items = [x for x in items if x["name"] == context[key]] or items
            return items[0][key]

        cluster, user = pick("clusters", "cluster"), pick("users", "user")
        self.server = cluster["server"]
        self.ca = base64.b64decode(cluster["certificate-authority-data"])
        self.token = user.get("token")
        self._cert = user.get("client-certificate-data")
        self._key = user.get("client-key-data")
        if not self.token and not (self._cert and self._key):
            raise RuntimeError(
                f"{self.kubeconfig}: the bench needs a token or client-certificate-data and "
                "client-key-data"
            )
        parsed = urllib.parse.urlsplit(self.server)
        self.host, self.port = parsed.hostname, parsed.port or 443
        if self.proc is not None:
            self.server_pid: int | None = self.proc.pid
        elif self.host in ("127.0.0.1", "localhost"):
            self.server_pid = listening_pid(self.port)
        else:
            self.server_pid = None

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the cluster's CA and presents the kubeconfig's client
        certificate, if it has one. The certificate and key go through a 0600 temporary file
        (``load_cert_chain`` reads only files), removed before this returns."""
        ctx = ssl.create_default_context(cadata=self.ca.decode())
        if self._cert and self._key:
            fd, path = tempfile.mkstemp(prefix="kjenv-bench-", suffix=".pem")
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64decode(self._cert))
                    f.write(b"\n")
                    f.write(base64.b64decode(self._key))
                ctx.load_cert_chain(path)
            finally:
                os.unlink(path)
        return ctx

    def headers(self) -> dict:
        """The headers of a JSON request to this cluster (its bearer token, if it has one)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def connection(self) -> http.client.HTTPSConnection:
        """One keep-alive HTTPS connection to the API server."""
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl_context())

    def delete_jobs(self, tag: str, namespace: str = "default") -> int:
        """Delete every Job the run tagged ``tag`` created (one delete-collection); how many."""
        query = urllib.parse.urlencode(
            {"labelSelector": f"{BENCH_LABEL}={tag}", "propagationPolicy": "Background"}
        )
        conn = self.connection()
        try:
            conn.request(
                "DELETE",
                f"/apis/batch/v1/namespaces/{namespace}/jobs?{query}",
                headers=self.headers(),
            )
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"deleting the bench's Jobs: {resp.status} {data[:200]!r}")
            return len(json.loads(data).get("items") or [])
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def timed(fn: Callable[[int], object], n: int) -> float:
    """µs per call of ``fn(i)`` over ``n`` calls (after 10% warm-up calls)."""
    for i in range(max(3, n // 10)):
        fn(-1 - i)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def wall_and_peak(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall ms and peak RSS MiB of one process running ``argv`` (wait4's rusage).

    Linux carries the forking parent's peak into the child's ``ru_maxrss``, so this is only
    right from a small parent; ``python_wall_and_peak`` asks the process itself instead.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1e3
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def median_wall_and_peak(argv: list[str], runs: int, env: dict | None = None):
    """Median wall ms and median peak RSS MiB over ``runs`` processes."""
    walls, peaks = zip(*(wall_and_peak(argv, env) for _ in range(runs)), strict=True)
    return statistics.median(walls), statistics.median(peaks)


PEAK = (
    "\nimport sys as _s\n_s.stdout.write([l for l in open('/proc/self/status')"
    " if l.startswith('VmHWM')][0].split()[1])"
)


def python_wall_and_peak(codes: dict[str, str], runs: int) -> dict[str, tuple[float, float]]:
    """For each ``python -c code``: median wall ms and median peak RSS MiB over ``runs``
    processes. The codes take turns (so a disturbance hits all alike), after one untimed round
    that warms the page cache; the peak is the process's own VmHWM, read as its last act."""
    walls: dict[str, list[float]] = {name: [] for name in codes}
    peaks: dict[str, list[float]] = {name: [] for name in codes}
    for round_ in range(runs + 1):
        for name, code in codes.items():
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-W", "ignore", "-c", code + PEAK],
                capture_output=True,
                text=True,
            )
            wall = (time.perf_counter() - start) * 1e3
            if out.returncode != 0:
                raise RuntimeError(f"python -c {code!r} failed: {out.stderr[-2000:]}")
            if round_ > 0:
                walls[name].append(wall)
                peaks[name].append(int(out.stdout.strip().splitlines()[-1]) / 1024)
    return {
        name: (statistics.median(walls[name]), statistics.median(peaks[name])) for name in codes
    }
