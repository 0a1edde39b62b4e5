"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_seed_example_runs_with_only_the_import_changed(monkeypatch):
    pytest.importorskip("prefect")
    block = python_blocks()[0]
    assert "from kjenv import KubernetesJobEnvironment" in block
    assert "flow.deploy(" in block
    # flow.deploy needs Prefect Cloud and a Docker engine: everything before it runs.
    code = block.split("flow.deploy(")[0]
    monkeypatch.chdir(ROOT / "examples")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    flow = namespace["flow"]
    env = flow.environment
    assert env.job_spec_file == str(ROOT / "examples" / "job_spec.yaml")
    job = env.render(flow, image="joshmeek18/flows:latest")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "joshmeek18/flows:latest"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4G"}
    state = flow.run()
    assert state.is_successful()


def test_readme_has_exactly_two_setup_commands_and_they_exist():
    section = README.split("## Set-up commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(commands) == 2
    assert "bash scripts/test" in commands[1]
    assert (ROOT / "scripts" / "test").exists()


def test_main_job_command_works():
    main = re.findall(r"```bash\n(.*?)```", README.split("## Set-up commands", 1)[1], re.S)[0]
    command = main.strip().split("&&", 1)[1].strip()
    assert command.startswith("kjenv ")
    args = command.split()[1:]
    out = subprocess.run(
        [sys.executable, "-m", "kjenv", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Example!" in out and "outcome:  succeeded" in out
