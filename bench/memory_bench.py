"""Memory: a process's RSS after importing the library and submitting 100 Jobs.

Each side runs in a fresh process against one local cluster (its own process):

- kjenv: ``import kjenv``, one ``KubernetesJobEnvironment``, 100 × ``execute``;
- Prefect 0.15.13's path: ``from prefect.environments import KubernetesJobEnvironment``, then
  100 × what its ``execute`` does (load the configuration, a new ``BatchV1Api``,
  ``_populate_run_time_job_spec_details``, ``create_namespaced_job``).

The figure is VmRSS (resident memory now) read from ``/proc/self/status`` after the last Job;
VmHWM (the peak) is reported beside it. Median of N processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml
from _common import IMAGE, Cluster, suspended_spec

TARGET = 3.0  # RSS at most a third of Prefect's path

READ_RSS = textwrap.dedent(
    """
    def _rss():
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return [int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")]
    """
)

KJENV = READ_RSS + textwrap.dedent(
    """
    import sys, uuid
    from kjenv import KubernetesJobEnvironment
    env = KubernetesJobEnvironment(job_spec_file=sys.argv[1], kubeconfig=sys.argv[2],
                                   unique_job_name=True)
    tag = uuid.uuid4().hex[:6]
    for i in range(int(sys.argv[3])):
        env.execute(image=IMAGE, flow_run_id=f"m-{tag}-{i}", namespace="default")
    print(*_rss())
    """
)

PREFECT = READ_RSS + textwrap.dedent(
    """
    import os, sys, uuid, warnings
    warnings.simplefilter("ignore")
    os.environ.setdefault("PREFECT__CLOUD__AUTH_TOKEN", "")
    import prefect
    from prefect.environments import KubernetesJobEnvironment
    from kubernetes import client, config
    env = KubernetesJobEnvironment(job_spec_file=sys.argv[1], unique_job_name=True)
    tag = uuid.uuid4().hex[:6]
    for i in range(int(sys.argv[3])):
        config.load_kube_config(config_file=sys.argv[2])
        batch = client.BatchV1Api()
        with prefect.context(flow_run_id=f"p-{tag}-{i}", namespace="default"):
            job = env._populate_run_time_job_spec_details(docker_name=IMAGE)
        batch.create_namespaced_job(namespace="default", body=job)
    print(*_rss())
    """
)


def rss(code: str, spec: str, kubeconfig: str, jobs: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB of one fresh process running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"IMAGE = {IMAGE!r}\n" + code, spec, kubeconfig, str(jobs)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")},
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    now, peak = out.stdout.split()
    return float(now), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 Jobs, 1 process each, for CI")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    jobs = 10 if args.quick else 100
    runs = 1 if args.quick else 5

    with Cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "job.yaml"
        spec.write_text(yaml.safe_dump(suspended_spec()))
        figures = {"kjenv": [], "prefect": []}
        for _ in range(runs):
            figures["kjenv"].append(rss(KJENV, str(spec), cluster.kubeconfig, jobs))
            figures["prefect"].append(rss(PREFECT, str(spec), cluster.kubeconfig, jobs))

    med = {k: tuple(statistics.median(x) for x in zip(*v, strict=True)) for k, v in figures.items()}
    ratio = med["prefect"][0] / med["kjenv"][0]
    print(f"RSS after import + {jobs} executes (median of {runs} processes)")
    for name, (now, peak) in med.items():
        print(f"  {name:<8} {now:7.1f} MiB now, {peak:7.1f} MiB peak")
    print(
        f"  kjenv uses 1/{ratio:.1f} of Prefect's; target ≤ 1/{TARGET:.0f} — "
        f"{'met' if ratio >= TARGET else 'MISSED'}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "jobs": jobs,
                    "rss_mib": {k: v[0] for k, v in med.items()},
                    "peak_mib": {k: v[1] for k, v in med.items()},
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
