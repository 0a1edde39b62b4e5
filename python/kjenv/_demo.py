"""``kjenv demo``: the example flow of Prefect's ``KubernetesJobEnvironment`` documentation, run
as a Kubernetes Job on the embedded local cluster, with its log streamed and a short summary."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

# The documentation's second example: resource requests and limits.
JOB_SPEC = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: my-prefect-job
  labels:
    identifier: ""
spec:
  template:
    metadata:
      labels:
        identifier: ""
    spec:
      restartPolicy: Never
      containers:
      - name: flow-container
        image: ""
        command: []
        args: []
        env:
          - name: MY_ENV
            value: foo
        resources:
          limits:
            cpu: "2"
            memory: 4G
          requests:
            cpu: "1"
            memory: 2G
"""

FLOW_NAME = "Kubernetes Job Environment w/ Resource Requests & Limits"


class PlainExampleFlow:
    """The example flow without Prefect: get_value() then output_value(value)."""

    name = FLOW_NAME

    @staticmethod
    def get_value() -> str:
        return "Example!"

    @staticmethod
    def output_value(value: str) -> None:
        print(value, flush=True)

    def run(self) -> None:
        self.output_value(self.get_value())


def build_flow() -> tuple[Any, str]:
    """The example flow and what kind it is: a Prefect flow when Prefect imports, else the same
    steps in plain Python (the kind then says why: not installed, or the import error)."""
    import warnings

    from kjenv._prefect import import_prefect

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prefect, problem = import_prefect()
    if prefect is None:
        return PlainExampleFlow(), f"plain Python; {problem}"
    from prefect import Flow, task

    @task
    def get_value():
        return "Example!"

    @task
    def output_value(value):
        print(value)

    flow = Flow(FLOW_NAME)
    output_value.set_upstream(get_value, flow=flow)
    output_value.bind(value=get_value, flow=flow)
    return flow, f"Prefect {prefect.__version__}"


def run_as_job(
    flow: Any,
    env: Any,
    *,
    flow_file_path: str,
    image: str,
    timeout: float | None,
    out: TextIO,
    **wait_options: Any,
) -> int:
    """Execute ``flow`` with ``env``, stream its log and print a summary; ``wait_options`` go
    to ``JobRun.wait`` (``on_interrupt``, ``failed_create_grace``, ``stop_sidecars``).

    Returns 0 when the Job succeeded, 1 when it failed.
    """
    from kjenv._submit import wait_with_progress

    start = time.perf_counter()
    run = env.execute(flow, flow_file_path, image=image)
    print(f"job {run.namespace}/{run.name} created (flow run {run.flow_run_id})", file=out)
    print("--- flow log ---", file=out, flush=True)
    code, message = wait_with_progress(run, timeout, logs=True, **wait_options)
    outcome = "succeeded" if code == 0 else message.replace("\n", " | ")
    elapsed = time.perf_counter() - start
    print("--- summary ---", file=out)
    try:
        status = run.status()
        pods = ", ".join(f"{p['name']} ({p['phase']})" for p in status["pods"]) or "none"
    except Exception as exc:  # the summary must not hide the outcome
        pods = f"unknown ({exc})"
    print(f"job:      {run.namespace}/{run.name}", file=out)
    print(f"pods:     {pods}", file=out)
    print(f"duration: {elapsed:.2f} s", file=out)
    print(f"outcome:  {outcome}", file=out, flush=True)
    return code


def main(timeout: float = 60.0, out: TextIO = sys.stdout) -> int:
    """Start the local cluster, run the example flow as a Job, stop the cluster."""
    from kjenv import KubernetesJobEnvironment
    from kjenv._flowfile import store_flow
    from kjenv.testing import LocalCluster

    with tempfile.TemporaryDirectory(prefix="kjenv-demo-") as tmp:
        spec = Path(tmp) / "job_spec.yaml"
        spec.write_text(JOB_SPEC)
        flow, kind = build_flow()
        print(f"kjenv demo: the example flow ({kind}) as a Kubernetes Job", file=out)
        with LocalCluster(backoff_base=1.0) as cluster:
            print(f"local cluster: {cluster.url}", file=out, flush=True)
            env = KubernetesJobEnvironment(str(spec), kubeconfig=cluster.kubeconfig)
            path = store_flow(flow, tmp)
            return run_as_job(
                flow, env, flow_file_path=path, image="local/flows:demo", timeout=timeout, out=out
            )
