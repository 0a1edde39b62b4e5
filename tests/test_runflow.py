"""run_flow(): the in-container entry point, run here as the pod would run it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import cloudpickle
import pytest

from kjenv._common import EXIT_FLOW_NOT_LOADED
from kjenv._kjenv import FLOW_COMMAND

ONE_LINER = FLOW_COMMAND.split("-c ", 1)[1].strip('"')

# The "container" (a subprocess) cannot import this test module: pickle its classes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run_in_container(flow_file, *args, extra_env=None):
    """Run the one-liner (or ``kjenv run-flow``) as the flow container would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
    env.update(
        {
            "PREFECT__CONTEXT__FLOW_FILE_PATH": str(flow_file),
            "PREFECT__CONTEXT__FLOW_RUN_ID": "run-in-test",
            "PREFECT__CONTEXT__NAMESPACE": "default",
            "PREFECT__CONTEXT__IMAGE": "local/img:1",
            "PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS": "prefect.engine.flow_runner.FlowRunner",
            "PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS": "prefect.engine.task_runner.TaskRunner",
        }
    )
    env.update(extra_env or {})
    cmd = [sys.executable, *args] if args else [sys.executable, "-c", ONE_LINER]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


class Plain:
    """A flow without Prefect: anything with run()."""

    def __init__(self, marker, fail=False):
        self.marker = marker
        self.fail = fail

    def run(self):
        import logging

        logging.getLogger("user.flow").info("plain flow logging works")
        with open(self.marker, "a") as f:
            f.write("ran\n")
        if self.fail:
            raise RuntimeError("plain flow exploded")


def test_plain_flow_succeeds(tmp_path):
    path = tmp_path / "flow.pkl"
    path.write_bytes(cloudpickle.dumps(Plain(str(tmp_path / "marker"))))
    result = run_in_container(path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "marker").read_text() == "ran\n"
    assert "plain flow logging works" in result.stderr
    assert "kjenv: flow run succeeded" in result.stderr


def test_plain_flow_raising_exits_1_with_the_traceback(tmp_path):
    path = tmp_path / "flow.pkl"
    path.write_bytes(cloudpickle.dumps(Plain(str(tmp_path / "marker"), fail=True)))
    result = run_in_container(path)
    assert result.returncode == 1
    assert "RuntimeError: plain flow exploded" in result.stderr


def test_missing_flow_file_is_one_clear_line(tmp_path):
    result = run_in_container(tmp_path / "nope.prefect")
    assert result.returncode == EXIT_FLOW_NOT_LOADED
    lines = [line for line in result.stderr.splitlines() if line.startswith("kjenv: ")]
    assert len(lines) == 1
    assert str(tmp_path / "nope.prefect") in lines[0]
    assert "No such file or directory" in lines[0]
    assert "Traceback" not in result.stderr


def test_unpickling_error_names_the_path_and_the_missing_module(tmp_path):
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "gone_module.py").write_text("class Thing:\n    def run(self):\n        pass\n")
    path = tmp_path / "flow.pkl"
    code = (
        "import sys, cloudpickle; sys.path.insert(0, sys.argv[1]); import gone_module;"
        "open(sys.argv[2], 'wb').write(cloudpickle.dumps(gone_module.Thing()))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(module_dir), str(path)], check=True, timeout=300
    )
    result = run_in_container(path)
    assert result.returncode == EXIT_FLOW_NOT_LOADED
    line = [x for x in result.stderr.splitlines() if x.startswith("kjenv: ")][0]
    assert str(path) in line and "gone_module" in line, result.stderr


def test_not_a_flow(tmp_path):
    path = tmp_path / "flow.pkl"
    path.write_bytes(cloudpickle.dumps(42))
    result = run_in_container(path)
    assert result.returncode == EXIT_FLOW_NOT_LOADED
    assert "neither a Prefect flow nor has a run() method" in result.stderr


def write_prefect_flow(tmp_path, body: str, env_kwargs: str = "") -> str:
    """Build a Prefect flow in a subprocess (as a user would) and store it with Local storage."""
    script = tmp_path / "build.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from prefect import Flow, task
            from prefect.storage import Local
            from kjenv import KubernetesJobEnvironment

            {textwrap.indent(textwrap.dedent(body), "            ").strip()}

            flow.environment = KubernetesJobEnvironment({env_kwargs})
            flow.storage = Local(directory=sys.argv[1])
            print(flow.storage.add_flow(flow))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.strip().splitlines()[-1]


def test_prefect_flow_runs_with_context_and_stored_callbacks(tmp_path):
    pytest.importorskip("prefect")
    marker = tmp_path / "marker"
    path = write_prefect_flow(
        tmp_path,
        """
        import prefect

        @task
        def show():
            print("Example!", prefect.context.get("flow_run_id"), prefect.context.get("image"))

        with Flow("ctx") as flow:
            show()
        """,
        env_kwargs=(
            f"on_start=lambda: open({str(marker)!r}, 'a').write('start' + chr(10)), "
            f"on_exit=lambda: open({str(marker)!r}, 'a').write('exit' + chr(10))"
        ),
    )
    result = run_in_container(path)
    assert result.returncode == 0, result.stderr
    assert "Example! run-in-test local/img:1" in result.stdout
    assert marker.read_text() == "start\nexit\n"


def test_failing_prefect_flow_exits_1_and_calls_on_exit(tmp_path):
    pytest.importorskip("prefect")
    marker = tmp_path / "marker"
    path = write_prefect_flow(
        tmp_path,
        """
        @task
        def boom():
            raise ValueError("task failed on purpose")

        with Flow("failing") as flow:
            boom()
        """,
        env_kwargs=f"on_exit=lambda: open({str(marker)!r}, 'a').write('exit' + chr(10))",
    )
    result = run_in_container(path)
    assert result.returncode == 1
    assert "task failed on purpose" in result.stdout + result.stderr
    assert "kjenv: flow run failed" in result.stderr
    assert marker.read_text() == "exit\n"


def test_cli_run_flow_is_the_same_entry_point(tmp_path):
    path = tmp_path / "flow.pkl"
    path.write_bytes(cloudpickle.dumps(Plain(str(tmp_path / "marker"))))
    result = run_in_container(path, "-m", "kjenv", "run-flow")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "marker").read_text() == "ran\n"
    result = run_in_container(tmp_path / "missing", "-m", "kjenv", "run-flow")
    assert result.returncode == EXIT_FLOW_NOT_LOADED
