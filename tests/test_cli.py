"""The kjenv command line: render, --help, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from kube_cluster import kjenv_cli


def kjenv(*args, check=False):
    return kjenv_cli(*args, check=check, timeout=300)


def test_render_json(fixture_path):
    out = kjenv(
        "render",
        fixture_path("seed_job_spec.yaml"),
        "--image",
        "r/f:1",
        "--flow-run-id",
        "cli-run",
        "--namespace",
        "ns1",
        "--flow-file-path",
        "/f.prefect",
        "-o",
        "json",
        check=True,
    ).stdout
    job = json.loads(out)
    assert job["metadata"]["labels"]["flow_run_id"] == "cli-run"
    assert job["metadata"]["namespace"] == "ns1"
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PREFECT__CONTEXT__FLOW_FILE_PATH"] == "/f.prefect"
    assert env["PREFECT__CONTEXT__IMAGE"] == "r/f:1"


def test_render_yaml_round_trips(fixture_path):
    yaml = pytest.importorskip("yaml")
    out = kjenv("render", fixture_path("sidecar_init.yaml"), "--image", "r/f:1", check=True).stdout
    job = yaml.safe_load(out)
    assert job["kind"] == "Job"
    from kjenv._kjenv import FLOW_COMMAND

    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [FLOW_COMMAND]
    assert job["spec"]["template"]["spec"]["containers"][1]["name"] == "sidecar"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["render", "missing.yaml", "--image", "i"], "No such file or directory: "),
        (["render", "{minimal}"], "no image for the flow container"),
        (["render", "{bad}", "--image", "i"], "expected a list of containers"),
        (["render", "{minimal}", "--image", "i", "-o", "xml"], "invalid choice"),
        (["nope"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, fixture_path, args, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec:\n  template:\n    spec:\n      containers: 1\n")
    args = [a.format(minimal=fixture_path("minimal.yaml"), bad=bad) for a in args]
    result = kjenv(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kjenv: error: ")
    assert needle in lines[0]


@pytest.mark.parametrize("args", [["--help"], ["render", "--help"]])
def test_help(args):
    result = kjenv(*args)
    assert result.returncode == 0 and "usage: kjenv" in result.stdout


def test_console_script_and_version():
    import pathlib
    import shutil

    beside = pathlib.Path(sys.executable).parent / "kjenv"
    exe = str(beside) if beside.exists() else shutil.which("kjenv")
    assert exe, "the kjenv console script is installed"
    out = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    assert out.strip() == "kjenv 0.1.0"


@pytest.mark.parametrize(
    "args,flag",
    [
        (["render", "{minimal}"], "pass --image"),
        (["render", "{minimal}", "--image", "i", "--namespace", "Not_A_Label"], "--namespace"),
        (["submit", "{minimal}", "--image", "i", "--kubeconfig", "{no_context}"], "--context"),
    ],
)
def test_errors_name_cli_flags_not_python_arguments(tmp_path, fixture_path, args, flag):
    no_context = tmp_path / "kubeconfig"
    no_context.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    args = [a.format(minimal=fixture_path("minimal.yaml"), no_context=no_context) for a in args]
    result = kjenv(*args)
    assert result.returncode == 2, result.stderr
    assert flag in result.stderr
    assert not re.search(r"\b(image|namespace|context|kubeconfig|flow_run_id)=", result.stderr)
    assert "argument" not in result.stderr, result.stderr
