"""Throughput: 1,000 Jobs submitted from a thread pool, kjenv against the official client.

One local cluster in a separate process serves both. Each side uses a pool of T threads
(default 16):

- kjenv, its natural way: ``KubernetesJobEnvironment.execute`` from T threads (each thread has
  its own connection; the GIL is released while a request is in flight);
- the official ``kubernetes`` client at its best: ``create_namespaced_job`` of an already
  rendered body from T threads sharing one ``ApiClient`` with a pool of T connections.

The Jobs are suspended (no pods), so the figure is submission, not execution. CPU time per Job
is recorded for the client (this process) and the server (the cluster's process), since both
share this machine's cores: it says what limits each side. Rounds alternate
between the two so that drift (the store growing) hits both alike; the best round counts.

Against a real API server: ``--kubeconfig K`` (or ``KJENV_BENCH_KUBECONFIG=K``) instead of the
local cluster; the server's CPU is then that of the process listening on the kubeconfig's port
(kube-apiserver; etcd and the controllers not counted), when it is on this machine. The Jobs stay
suspended (no pods) and one delete-collection by the run's label removes them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import BENCH_LABEL, IMAGE, KUBECONFIG_ENV, Cluster, suspended_spec

TARGET = 20.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """This process's CPU seconds, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 Jobs, 1 round, for CI")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get(KUBECONFIG_ENV) or None,
        help=f"run against this cluster, not a local one (default: ${KUBECONFIG_ENV})",
    )
    args = parser.parse_args()
    n = 100 if args.quick else args.jobs
    rounds = 1 if args.quick else 3
    threads = args.threads

    warnings.simplefilter("ignore")
    from kubernetes import client, config

    from kjenv import KubernetesJobEnvironment

    deleted = 0
    tag = uuid.uuid4().hex[:6]
    with Cluster(kubeconfig=args.kubeconfig) as cluster:
        env = KubernetesJobEnvironment(
            job_spec=suspended_spec(tag=tag), kubeconfig=cluster.kubeconfig, unique_job_name=True
        )
        cfg = client.Configuration()
        config.load_kube_config(config_file=cluster.kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = threads
        api = client.ApiClient(cfg)
        batch = client.BatchV1Api(api)
        body = env.render(image=IMAGE, flow_run_id="py", namespace="default")

        def kjenv_one(i: int) -> None:
            env.execute(image=IMAGE, flow_run_id=f"k-{tag}-{i}", namespace="default")

        def official_one(i: int) -> None:
            job = dict(body, metadata=dict(body["metadata"], name=f"py-{tag}-{i}"))
            batch.create_namespaced_job("default", job)

        server = cluster.server_pid

        def server_cpu_seconds() -> float:
            return cpu_seconds(server) if server is not None else float("nan")

        def jobs_per_second(fn, base: int, side: str) -> float:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(fn, range(base - threads * 2, base)))  # warm every thread
                cpu = (own_cpu(), server_cpu_seconds())
                start = time.perf_counter()
                list(pool.map(fn, range(base, base + n)))
                rate = n / (time.perf_counter() - start)
                client_cpu[side].append((own_cpu() - cpu[0]) / n * 1e6)
                server_cpu[side].append((server_cpu_seconds() - cpu[1]) / n * 1e6)
                return rate

        rates = {"kjenv": [], "official": []}
        client_cpu = {"kjenv": [], "official": []}
        server_cpu = {"kjenv": [], "official": []}
        try:
            for r in range(rounds):
                base = (r + 1) * 1_000_000
                rates["kjenv"].append(jobs_per_second(kjenv_one, base, "kjenv"))
                rates["official"].append(jobs_per_second(official_one, base, "official"))
        finally:
            api.close()
            if cluster.real:
                deleted = cluster.delete_jobs(tag)

    best = {k: max(v) for k, v in rates.items()}
    cpu_us = {
        k: {
            "client": statistics.median(client_cpu[k]),
            "server": statistics.median(server_cpu[k]) if cluster.server_pid else None,
        }
        for k in rates
    }
    ratio = best["kjenv"] / best["official"]
    where = f"the API server at {cluster.server}" if cluster.real else "the local cluster"
    print(f"{n} Jobs from {threads} threads against {where} (best of {rounds} rounds)")
    print(f"  kjenv execute            {best['kjenv']:9,.0f} Jobs/s  ({n / best['kjenv']:.2f} s)")
    print(
        f"  official client create   {best['official']:9,.0f} Jobs/s  "
        f"({n / best['official']:.2f} s)"
    )
    for k, v in cpu_us.items():
        in_server = "?" if v["server"] is None else f"{v['server']:.0f}"
        print(
            f"  {k}: CPU per Job {v['client']:.0f} µs in the client, {in_server} µs in the server"
        )
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"  ratio {ratio:.1f}x; target ≥ {TARGET:.0f}x — {verdict}")
    if cluster.real:
        print(f"  deleted the {deleted} Jobs the run created (label {BENCH_LABEL}={tag})")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "server": cluster.server if cluster.real else "local",
                    "jobs": n,
                    "threads": threads,
                    "rounds": rates,
                    "best": best,
                    "cpu_us": cpu_us,
                    "jobs_deleted": deleted,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
