"""The local cluster's benchmark: Job creates per second and a queue of 1,000 Jobs.

Run through ``bench/cluster``, which builds and runs the Rust half
(``localcluster/examples/create_bench.rs``: kube-rs creates over keep-alive, and the queued
Jobs) and passes its JSON files here with ``--rust-json``. This half measures the official Python
``kubernetes`` client (one thread, then a thread pool sharing one ``ApiClient``) against
``kjenv.testing.LocalCluster``, then prints one table.

    python bench/cluster_bench.py [--quick] [--rust-json FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config

from kjenv.testing import LocalCluster


def job_body(name: str) -> dict:
    """A suspended Job (it creates no pods, so the figure is the API's)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"bench": "py"}},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", "true"]}
                    ],
                }
            },
        },
    }


def creates_per_second(batch: client.BatchV1Api, prefix: str, n: int, threads: int) -> float:
    """Creates ``n`` Jobs from ``threads`` threads; returns creates per second."""

    def create(i: int) -> None:
        batch.create_namespaced_job("default", job_body(f"{prefix}-{i}"))

    started = time.perf_counter()
    if threads == 1:
        for i in range(n):
            create(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, range(n)))
    return n / (time.perf_counter() - started)


def python_figures(n: int, threads: int) -> dict:
    """The Python client's create rates against a fresh local cluster."""
    with LocalCluster() as cluster:
        cfg = client.Configuration()
        config.load_kube_config(config_file=cluster.kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = max(threads, 4)
        with client.ApiClient(cfg) as api:
            batch = client.BatchV1Api(api)
            creates_per_second(batch, "warm", 50, 1)
            single = creates_per_second(batch, "single", n, 1)
            pooled = creates_per_second(batch, "pool", n, threads)
    return {
        "python_n": n,
        "python_threads": threads,
        "python_creates_per_s_single": single,
        "python_creates_per_s_pool": pooled,
    }


def table(figures: dict) -> str:
    """The results as a small text table."""
    rows = []
    if "rust_creates_per_s_sequential" in figures:
        rows += [
            (
                f"Rust kube-rs, 1 in flight ({figures['rust_creates_sequential_n']} Jobs)",
                f"{figures['rust_creates_per_s_sequential']:,.0f} creates/s",
            ),
            (
                f"Rust kube-rs, {figures['rust_in_flight']} in flight "
                f"({figures['rust_creates_parallel_n']} Jobs)",
                f"{figures['rust_creates_per_s_parallel']:,.0f} creates/s",
            ),
        ]
    rows += [
        (
            f"Python kubernetes client, 1 thread ({figures['python_n']} Jobs)",
            f"{figures['python_creates_per_s_single']:,.0f} creates/s",
        ),
        (
            f"Python kubernetes client, {figures['python_threads']} threads "
            f"({figures['python_n']} Jobs)",
            f"{figures['python_creates_per_s_pool']:,.0f} creates/s",
        ),
    ]
    if "queued_seconds" in figures:
        q, s = figures["queued_jobs"], figures["queued_seconds"]
        rows.append(
            (
                f"{q} queued Jobs of `sh -c true`, {figures['queued_concurrency']} pods at once",
                f"{s:.2f} s ({q / s:,.0f} Jobs/s)",
            )
        )
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':<{width}}  result", f"{'-' * width}  {'-' * 24}"]
    lines += [f"{what:<{width}}  {figure}" for what, figure in rows]
    return "\n".join(lines)


def main() -> None:
    """Parses the arguments, runs the Python half, prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, a few seconds")
    parser.add_argument(
        "--rust-json",
        action="append",
        default=[],
        help="results of the Rust half (create_bench --json); may be repeated",
    )
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    figures: dict = {}
    for path in args.rust_json:
        with open(path) as f:
            figures.update(json.load(f))
    figures.update(python_figures(200 if args.quick else 2000, args.threads))
    print(table(figures))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
