"""Pieces the benchmarks share: the local cluster in its own process, the Job spec, timers."""

from __future__ import annotations

import base64
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import yaml

IMAGE = "example/flows:latest"


def suspended_spec(name: str = "bench") -> dict:
    """The seed's example Job, suspended so that it starts no pods (the figure is the API's)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"identifier": "", "flow_run_id": ""}},
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


class Cluster:
    """``python -m kjenv cluster`` in its own process, so it does not share the client's GIL."""

    def __init__(self, concurrency: int = 8):
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
        self.server = kc["clusters"][0]["cluster"]["server"]
        self.ca = base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"])
        self.token = kc["users"][0]["user"]["token"]

    def stop(self) -> None:
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
