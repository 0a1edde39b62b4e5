"""One execute + wait on a LocalCluster with a plain-Python flow: what a user's first try does.
Run by scripts/install-matrix in each fresh venv; exits non-zero on any failure."""

from __future__ import annotations

import sys
import tempfile

from kjenv import KubernetesJobEnvironment
from kjenv._flowfile import store_flow
from kjenv.testing import LocalCluster

SPEC = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "smoke"},
    "spec": {"template": {"spec": {"containers": [{"name": "flow"}]}}},
}


class SmokeFlow:
    """A flow without Prefect: anything with a run() method."""

    name = "smoke"

    def run(self) -> None:
        print(f"smoke flow ran on Python {sys.version_info[0]}.{sys.version_info[1]}", flush=True)


def main() -> int:
    flow = SmokeFlow()
    with tempfile.TemporaryDirectory() as tmp, LocalCluster() as cluster:
        env = KubernetesJobEnvironment(job_spec=SPEC, kubeconfig=cluster.kubeconfig)
        run = env.execute(flow, store_flow(flow, tmp), image="local/smoke:1")
        run.wait(timeout=120)
        logs = run.logs()
        run.delete()
    if "smoke flow ran" not in logs:
        print(f"the flow's line is not in the log: {logs!r}", file=sys.stderr)
        return 1
    print(next(line for line in logs.splitlines() if "smoke flow ran" in line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
