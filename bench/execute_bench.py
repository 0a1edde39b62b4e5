"""Submitting a Job: kjenv's ``execute`` against Prefect 0.15.13's path and a raw HTTP POST;
and how long after a Job completes ``JobRun.wait()`` returns.

One local cluster, started in a separate process (``python -m kjenv cluster``), serves all
three clients, so the figures compare the clients, not the servers:

(a) kjenv: ``KubernetesJobEnvironment.execute`` (render + submit) per Job.
(b) Prefect 0.15.13: ``_populate_run_time_job_spec_details`` plus the official ``kubernetes``
    client's ``create_namespaced_job``; as Prefect's ``execute`` does it (configuration loaded
    and a new ``BatchV1Api`` per call, with the kubeconfig standing in for the in-cluster
    account), and with one client reused (the anchor at its best).
(c) raw: the same body (kjenv's render) POSTed with ``http.client.HTTPSConnection`` over one
    keep-alive connection: the floor.

The Jobs are suspended (no pods), so the server's part is one store write. Wait latency: a Job
whose flow records the moment it ends (CLOCK_MONOTONIC) and exits; kjenv's ``wait()`` and the
official client's watch (in another thread, as ``kubectl wait`` would) watch the same Job, and
each figure is how long after the flow's end that client knew (median of N). Both include the
kubelet noticing the exit and the controller writing the condition.

Against a real API server: ``--kubeconfig K`` (or ``KJENV_BENCH_KUBECONFIG=K``) runs (a), (b)
and (c) against that cluster instead of starting the local one (a token or a client-certificate
kubeconfig, e.g. ``scripts/real-cluster up``'s); the Jobs stay suspended, so it creates no pods,
and one delete-collection by the run's label removes them at the end. Wait latency needs a node
and is measured on the local cluster only.

Run through ``bench/execute`` (it builds the venv); ``--quick`` for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import yaml
from _common import BENCH_LABEL, IMAGE, KUBECONFIG_ENV, Cluster, suspended_spec, timed

TARGETS = {"vs_prefect": 10.0, "vs_raw": 1.5, "wait_ms": 50.0}


class StampFlow:
    """A flow that records when it ends (CLOCK_MONOTONIC, shared by every process here)."""

    def __init__(self, path: str):
        self.path = path

    def run(self):
        with open(self.path, "w") as f:
            f.write(repr(time.monotonic()))


def wait_latency(cluster: Cluster, tmp: Path, run_tag: str, n_wait: int):
    """Median ms from a flow's end to kjenv's wait() returning and to the official client's
    watch seeing Complete, and every sample."""
    # Both clients watch the same Jobs at the same time.
    import cloudpickle
    from kubernetes import client, config, watch

    from kjenv import KubernetesJobEnvironment

    stamp = tmp / "ended"
    flow_path = tmp / "flow.pkl"
    flow_path.write_bytes(cloudpickle.dumps(StampFlow(str(stamp))))
    wait_env = KubernetesJobEnvironment(
        job_spec={"metadata": {"name": "wait"}, "spec": {"backoffLimit": 0}},
        kubeconfig=cluster.kubeconfig,
        unique_job_name=True,
    )
    watch_api = client.BatchV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))
    lat = {"kjenv": [], "official": []}
    for i in range(n_wait):
        stamp.unlink(missing_ok=True)
        run = wait_env.execute(
            flow_location=str(flow_path), image=IMAGE, flow_run_id=f"w-{run_tag}-{i}"
        )
        seen = {}

        def reference(name=run.name, seen=seen):
            w = watch.Watch()
            for ev in w.stream(
                watch_api.list_namespaced_job,
                "default",
                field_selector=f"metadata.name={name}",
                timeout_seconds=60,
            ):
                conds = ev["object"].status.conditions or []
                if any(c.type in ("Complete", "Failed") and c.status == "True" for c in conds):
                    seen["t"] = time.monotonic()
                    seen["ok"] = any(c.type == "Complete" for c in conds)
                    w.stop()
                    return

        t = threading.Thread(target=reference)
        t.start()
        run.wait(timeout=60)
        returned = time.monotonic()
        t.join(timeout=10)
        if "t" not in seen or not seen["ok"]:
            raise RuntimeError(f"the reference watch did not see {run.name} complete")
        ended = float(stamp.read_text())
        lat["kjenv"].append((returned - ended) * 1e3)
        lat["official"].append((seen["t"] - ended) * 1e3)
        run.delete()
    wait_ms = {k: statistics.median(v) for k, v in lat.items()}
    return wait_ms, lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for CI")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get(KUBECONFIG_ENV) or None,
        help=f"run against this cluster, not a local one (default: ${KUBECONFIG_ENV})",
    )
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    rounds = 3 if args.quick else 5
    n_wait = 3 if args.quick else 15

    warnings.simplefilter("ignore")
    os.environ.setdefault("PREFECT__CLOUD__AUTH_TOKEN", "")
    import prefect
    from kubernetes import client, config
    from prefect.environments import KubernetesJobEnvironment as PrefectEnv

    from kjenv import KubernetesJobEnvironment

    cluster = Cluster(kubeconfig=args.kubeconfig)
    tmp = Path(tempfile.mkdtemp(prefix="kjenv-bench-"))
    run_tag = uuid.uuid4().hex[:6]
    created = 0
    try:
        spec = suspended_spec(tag=run_tag)
        spec_file = tmp / "job.yaml"
        spec_file.write_text(yaml.safe_dump(spec))

        # (a) kjenv
        env = KubernetesJobEnvironment(
            job_spec=spec, kubeconfig=cluster.kubeconfig, unique_job_name=True
        )

        def kjenv_execute(i):
            env.execute(image=IMAGE, flow_run_id=f"a-{run_tag}-{i}", namespace="default")

        # (b) Prefect 0.15.13
        prefect_env = PrefectEnv(job_spec_file=str(spec_file), unique_job_name=True)

        def prefect_execute(i):
            # What Prefect's execute does per call (load_incluster_config → the kubeconfig).
            config.load_kube_config(config_file=cluster.kubeconfig)
            batch = client.BatchV1Api()
            with prefect.context(flow_run_id=f"b-{run_tag}-{i}", namespace="default"):
                job = prefect_env._populate_run_time_job_spec_details(docker_name=IMAGE)
                batch.create_namespaced_job(namespace="default", body=job)

        shared = client.BatchV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))

        def prefect_reused(i):
            with prefect.context(flow_run_id=f"c-{run_tag}-{i}", namespace="default"):
                job = prefect_env._populate_run_time_job_spec_details(docker_name=IMAGE)
                shared.create_namespaced_job(namespace="default", body=job)

        # (c) raw keep-alive POST of the same body
        body = env.render(image=IMAGE, flow_run_id="raw", namespace="default")
        conn = cluster.connection()
        headers = cluster.headers()

        def raw_post(i):
            body["metadata"]["name"] = f"raw-{run_tag}-{i}"
            conn.request(
                "POST",
                "/apis/batch/v1/namespaces/default/jobs",
                body=json.dumps(body),
                headers=headers,
            )
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 201:
                raise RuntimeError(f"raw POST: {resp.status} {data[:200]!r}")

        # Interleave rounds so that drift (the store growing) hits every client alike.
        figures = {"kjenv": [], "prefect": [], "prefect_reused": [], "raw": []}
        per_round = max(1, n // rounds)
        for r in range(rounds):
            base = r * 100000
            figures["kjenv"].append(timed(lambda i, b=base: kjenv_execute(b + i), per_round))
            figures["raw"].append(timed(lambda i, b=base: raw_post(b + i), per_round))
            figures["prefect_reused"].append(
                timed(lambda i, b=base: prefect_reused(b + i), per_round)
            )
            figures["prefect"].append(
                timed(lambda i, b=base: prefect_execute(b + i), max(1, per_round // 4))
            )
        conn.close()
        us = {k: min(v) for k, v in figures.items()}
        if cluster.real:
            wait_ms = lat = None
        else:
            wait_ms, lat = wait_latency(cluster, tmp, run_tag, n_wait)
    finally:
        try:
            if cluster.real:
                created = cluster.delete_jobs(run_tag)
        finally:
            cluster.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        ("(a) kjenv execute", us["kjenv"], ""),
        ("(b) Prefect 0.15.13 execute path", us["prefect"], f"{us['prefect'] / us['kjenv']:.1f}×"),
        (
            "(b') Prefect render + reused client",
            us["prefect_reused"],
            f"{us['prefect_reused'] / us['kjenv']:.1f}×",
        ),
        ("(c) raw keep-alive POST", us["raw"], f"{us['kjenv'] / us['raw']:.2f}× (kjenv/raw)"),
    ]
    where = f"the API server at {cluster.server}" if cluster.real else "the local cluster"
    print(
        f"Job submission against {where}, µs per Job (best of {rounds} rounds of {per_round}), "
        f"{platform.node()}"
    )
    for name, value, ratio in rows:
        print(f"  {name:<38} {value:10.0f} µs  {ratio}")
    print(
        f"  targets: (b)/(a) ≥ {TARGETS['vs_prefect']:.0f}× — "
        f"{'met' if us['prefect'] / us['kjenv'] >= TARGETS['vs_prefect'] else 'NOT met'}; "
        f"(a)/(c) ≤ {TARGETS['vs_raw']}× — "
        f"{'met' if us['kjenv'] / us['raw'] <= TARGETS['vs_raw'] else 'NOT met'}"
    )
    if cluster.real:
        print(f"  deleted the {created} Jobs the run created (label {BENCH_LABEL}={run_tag})")
    else:
        print(
            f"from the flow's end (median of {n_wait}): kjenv wait() returns after "
            f"{wait_ms['kjenv']:.1f} ms, the official client's watch sees Complete after "
            f"{wait_ms['official']:.1f} ms; target ≤ {TARGETS['wait_ms']:.0f} ms — "
            f"{'met' if wait_ms['kjenv'] <= TARGETS['wait_ms'] else 'NOT met'}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "server": cluster.server if cluster.real else "local",
                    "us_per_job": us,
                    "wait_ms": lat,
                    "wait_ms_median": wait_ms,
                    "jobs_deleted": created,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
