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
        timeout=300,
    ).stdout
    assert "Example!" in out and "outcome:  succeeded" in out


def _block_with(marker: str, lang: str = "python") -> str:
    (block,) = [b for b in re.findall(rf"```{lang}\n(.*?)```", README, re.S) if marker in b]
    return block


def test_local_cluster_snippet_runs_the_example_as_written(tmp_path):
    pytest.importorskip("prefect")
    # The documentation's example defines `flow`; the LocalCluster snippet runs it as a Job.
    example = python_blocks()[0].split("flow.deploy(")[0]
    snippet = _block_with("with LocalCluster() as cluster:")
    script = tmp_path / "snippet.py"
    script.write_text(example + "\n" + snippet)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT / "examples",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Example!" in result.stdout


def _instructions(dockerfile: str) -> list[str]:
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    lines = [line.strip() for line in text.splitlines()]
    return [" ".join(line.split()) for line in lines if line and not line.startswith("#")]


def test_readme_dockerfile_is_examples_dockerfile():
    readme = _block_with("FROM python", "dockerfile")
    readme = "\n".join(line.strip() for line in readme.splitlines())
    assert _instructions(readme) == _instructions((ROOT / "examples" / "Dockerfile").read_text())


def _cli_options(command: str) -> list[set[str]]:
    """Each option of a subcommand as the set of its spellings (``{"-o", "--output"}``)."""
    from kjenv.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    options = [set(a.option_strings) for a in sub.choices[command]._actions]
    return [o for o in options if o and o != {"-h", "--help"}]


def test_cli_synopsis_is_true_to_the_parser():
    block = README.split("## CLI", 1)[1].split("```", 2)[1]
    synopsis: dict[str, set[str]] = {}
    command = None
    for line in block.splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["kjenv"]:
            command = words[1]
            synopsis[command] = set()
        if command:
            synopsis[command] |= set(re.findall(r"(--[a-z-]+|-o)\b", " ".join(words)))
    assert set(synopsis) == {"render", "submit", "run", "run-flow", "check", "cluster", "demo"} | {
        "attach",
        "status",
        "logs",
        "delete",
    }
    for command, flags in synopsis.items():
        options = _cli_options(command)
        missing = [sorted(o) for o in options if not o & flags]
        unknown = [f for f in flags if not any(f in o for o in options)]
        assert (missing, unknown) == ([], []), command


def test_no_project_jargon_in_user_facing_text():
    from kjenv.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    texts = [README, parser.format_help(), *(p.format_help() for p in sub.choices.values())]
    texts.append((ROOT / "python" / "kjenv" / "_kjenv.pyi").read_text())
    import kjenv

    texts += [kjenv.KubernetesJobEnvironment.__doc__ or "", kjenv.JobRun.__doc__ or ""]
    texts += [m.__doc__ or "" for m in vars(kjenv.KubernetesJobEnvironment).values()]
    for text in texts:
        assert not re.search(r"\bseed\b|\bseed's\b", text, re.I), text[:200]
