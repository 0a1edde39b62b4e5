"""Throughput: 1,000 Jobs submitted from a thread pool, kjenv against the official client.

One local cluster in a separate process serves both. Each side uses a pool of T threads
(default 16):

- kjenv, its natural way: ``KubernetesJobEnvironment.execute`` from T threads (each thread has
  its own connection; the GIL is released while a request is in flight);
- the official ``kubernetes`` client at its best: ``create_namespaced_job`` of an already
  rendered body from T threads sharing one ``ApiClient`` with a pool of T connections.

The Jobs are suspended (no pods), so the figure is submission, not execution. Rounds alternate
between the two so that drift (the store growing) hits both alike; the best round counts.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import IMAGE, Cluster, suspended_spec

TARGET = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 Jobs, 1 round, for CI")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    n = 100 if args.quick else args.jobs
    rounds = 1 if args.quick else 3
    threads = args.threads

    warnings.simplefilter("ignore")
    from kubernetes import client, config

    from kjenv import KubernetesJobEnvironment

    with Cluster() as cluster:
        tag = uuid.uuid4().hex[:6]
        env = KubernetesJobEnvironment(
            job_spec=suspended_spec(), kubeconfig=cluster.kubeconfig, unique_job_name=True
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

        def jobs_per_second(fn, base: int) -> float:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(fn, range(base - threads * 2, base)))  # warm every thread
                start = time.perf_counter()
                list(pool.map(fn, range(base, base + n)))
                return n / (time.perf_counter() - start)

        rates = {"kjenv": [], "official": []}
        for r in range(rounds):
            base = (r + 1) * 1_000_000
            rates["kjenv"].append(jobs_per_second(kjenv_one, base))
            rates["official"].append(jobs_per_second(official_one, base))
        api.close()

    best = {k: max(v) for k, v in rates.items()}
    ratio = best["kjenv"] / best["official"]
    print(f"{n} Jobs from {threads} threads (best of {rounds} rounds)")
    print(f"  kjenv execute            {best['kjenv']:9,.0f} Jobs/s  ({n / best['kjenv']:.2f} s)")
    print(
        f"  official client create   {best['official']:9,.0f} Jobs/s  "
        f"({n / best['official']:.2f} s)"
    )
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"  ratio {ratio:.1f}x; target ≥ {TARGET:.0f}x — {verdict}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"jobs": n, "threads": threads, "rounds": rates, "best": best}, indent=2)
        )


if __name__ == "__main__":
    main()
