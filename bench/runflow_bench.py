"""Container start-up: the flow one-liner against Prefect 0.15.13's in-container path.

Each figure is a whole process (wall time and peak RSS, median of N runs) running the same
trivial flow file:

- kjenv: ``python -c "from kjenv import KubernetesJobEnvironment;
  KubernetesJobEnvironment().run_flow()"`` with ``PREFECT__CONTEXT__FLOW_FILE_PATH`` set;
- Prefect: ``Flow.load(path)`` + ``FlowRunner(flow).run()`` (what ``load_and_run_flow`` does
  once it has the flow; that function itself needs a Prefect backend);
- kjenv with a plain-Python flow: kjenv's own overhead, no Prefect import.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import median_wall_and_peak

ONE_LINER = "from kjenv import KubernetesJobEnvironment; KubernetesJobEnvironment().run_flow()"
PREFECT_PATH = (
    "import sys; from prefect.core.flow import Flow; "
    "from prefect.engine.flow_runner import FlowRunner; "
    "state = FlowRunner(flow=Flow.load(sys.argv[1])).run(); "
    "sys.exit(0 if state.is_successful() else 1)"
)


def build_flows(directory: Path) -> tuple[str, str]:
    """A trivial Prefect flow saved with Flow.save (cloudpickle), and a trivial plain flow."""
    code = f"""
import warnings; warnings.simplefilter("ignore")
import cloudpickle
from prefect import Flow, task

@task
def one():
    return 1

with Flow("trivial") as flow:
    one()
flow.save({str(directory / "prefect.flow")!r})

class Plain:
    def run(self):
        return 1

cloudpickle.register_pickle_by_value(__import__("__main__"))
open({str(directory / "plain.flow")!r}, "wb").write(cloudpickle.dumps(Plain()))
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    return str(directory / "prefect.flow"), str(directory / "plain.flow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 runs each, for CI")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    runs = 3 if args.quick else 9
    with tempfile.TemporaryDirectory() as tmp:
        prefect_flow, plain_flow = build_flows(Path(tmp))
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
        base["PYTHONWARNINGS"] = "ignore"
        local = {
            "PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS": "prefect.engine.flow_runner.FlowRunner",
            "PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS": "prefect.engine.task_runner.TaskRunner",
        }
        kjenv_env = {**base, **local, "PREFECT__CONTEXT__FLOW_FILE_PATH": prefect_flow}
        plain_env = {**base, **local, "PREFECT__CONTEXT__FLOW_FILE_PATH": plain_flow}
        rows = {
            "kjenv one-liner, Prefect flow": median_wall_and_peak(
                [sys.executable, "-c", ONE_LINER], runs, kjenv_env
            ),
            "prefect Flow.load + FlowRunner": median_wall_and_peak(
                [sys.executable, "-c", PREFECT_PATH, prefect_flow], runs, base
            ),
            "kjenv one-liner, plain flow": median_wall_and_peak(
                [sys.executable, "-c", ONE_LINER], runs, plain_env
            ),
            "python -c pass": median_wall_and_peak([sys.executable, "-c", "pass"], runs, base),
        }
    anchor_wall, anchor_rss = rows["prefect Flow.load + FlowRunner"]
    print(f"{'process':<34} {'wall ms':>9} {'peak RSS MiB':>13} {'wall ratio':>11}")
    for name, (wall, rss) in rows.items():
        print(f"{name:<34} {wall:>9.1f} {rss:>13.1f} {anchor_wall / wall:>10.2f}x")
    kj_wall, kj_rss = rows["kjenv one-liner, Prefect flow"]
    print(
        f"same Prefect flow: kjenv is {anchor_wall / kj_wall:.2f}x Prefect's wall time and uses "
        f"{kj_rss / anchor_rss:.2f}x its peak memory (both import Prefect to unpickle the flow)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({k: {"wall_ms": w, "rss_mib": r} for k, (w, r) in rows.items()}, indent=2)
        )


if __name__ == "__main__":
    main()
