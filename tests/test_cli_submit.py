"""``kjenv submit`` against the local cluster: the Job name, waiting, the log stream, the live
progress line on a terminal, and exit codes (0 success, 1 job failure, 2 bad input)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import yaml
from kube_cluster import PrintFlow, flow_file, job_spec, local_kube, unique

from kjenv import _submit
from kjenv.cli import main


def _spec_file(tmp_path, spec) -> str:
    path = tmp_path / f"{spec['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _submit_args(local_cluster, spec_path, *extra):
    return [
        "submit",
        spec_path,
        "--image",
        "img:1",
        "--kubeconfig",
        local_cluster.kubeconfig,
        *extra,
    ]


def test_submit_prints_the_job_name_and_returns(local_cluster, tmp_path, capsys):
    name = unique("cli")
    spec = _spec_file(tmp_path, job_spec(name, sidecar=["sleep", "30"]))
    assert main(_submit_args(local_cluster, spec, "--flow-run-id", "cli-run")) == 0
    assert capsys.readouterr().out == f"{name}\n"
    _, batch = local_kube(local_cluster).client()
    job = batch.read_namespaced_job(name, "default")
    assert job.metadata.labels["flow_run_id"] == "cli-run"
    batch.delete_namespaced_job(name, "default", propagation_policy="Background")


def test_submit_wait_logs_success(local_cluster, tmp_path, capsys):
    path = flow_file(tmp_path, PrintFlow(["log line one", "log line two"]))
    name = unique("cliok")
    spec = _spec_file(tmp_path, job_spec(name))
    args = _submit_args(local_cluster, spec, "--flow-file-path", path, "--logs", "--timeout", "60")
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith(f"{name}\n")
    assert "log line one\nlog line two\n" in captured.out
    assert f"job {name} succeeded" in captured.err


def test_submit_wait_failure_exits_1_with_the_reason(local_cluster, tmp_path, capsys):
    name = unique("clifail")
    # Retries left, but no flow file in the pod: a failure no retry fixes (test_unfixable.py).
    spec = _spec_file(tmp_path, job_spec(name, backoff_limit=2))
    code = main(_submit_args(local_cluster, spec, "--wait", "--timeout", "60"))
    err = capsys.readouterr().err
    assert code == 1
    assert f"job {name} failed: FlowNotLoaded" in err
    assert "kjenv: cannot read the flow file" in err
    assert "exited with code" in err


def test_submit_timeout_exits_1(local_cluster, tmp_path, capsys):
    spec = _spec_file(tmp_path, job_spec(unique("clislow")))
    slow = flow_file(tmp_path, PrintFlow([], sleep=30))
    args = _submit_args(local_cluster, spec, "--timeout", "0.3", "--flow-file-path", slow)
    assert main(args) == 1
    assert "timed out" in capsys.readouterr().err


def test_submit_bad_input_exits_2(local_cluster, tmp_path, capsys):
    assert main(_submit_args(local_cluster, str(tmp_path / "missing.yaml"))) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec:\n  template: 3\n")
    assert main(_submit_args(local_cluster, str(bad))) == 2
    assert "bad.yaml" in capsys.readouterr().err
    ok = _spec_file(tmp_path, job_spec(unique("clibad")))
    assert main(["submit", ok, "--kubeconfig", local_cluster.kubeconfig]) == 2  # no image
    assert main(_submit_args(local_cluster, ok, "--timeout", "-1")) == 2
    assert main(["submit", ok, "--image", "i", "--kubeconfig", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_submit_api_refusals(local_cluster, tmp_path, capsys):
    spec = _spec_file(tmp_path, job_spec(unique("cliapi"), sidecar=["sleep", "30"]))
    local_cluster.inject_fault(422, method="POST", path="*/jobs*")
    assert main(_submit_args(local_cluster, spec)) == 2
    assert main(_submit_args(local_cluster, spec, "--flow-run-id", "a")) == 0
    assert main(_submit_args(local_cluster, spec, "--flow-run-id", "b")) == 1
    assert "unique_job_name=True" in capsys.readouterr().err


def test_progress_text():
    status = {
        "name": "j",
        "phase": "Running",
        "pods": [{"phase": "Running"}, {"phase": "Failed"}, {"phase": "Pending"}],
    }
    text = _submit.progress_text(status, 2.25)
    assert text == "j: running · pods 1 pending, 1 running, 0 succeeded, 1 failed · 2.2s"


def test_progress_line_on_a_terminal(local_cluster, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["from the flow"], sleep=1.5))
    name = unique("clitty")
    spec = _spec_file(tmp_path, job_spec(name))
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kjenv",
            *_submit_args(local_cluster, spec, "--flow-file-path", path),
        ]
        + ["--logs", "--timeout", "60"],
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    assert proc.wait(timeout=10) == 0, out.decode(errors="replace")
    text = out.decode()
    assert f"{name}\r\n" in text
    assert "\r\x1b[K" in text
    assert f"{name}: running · pods 0 pending, 1 running" in text
    assert "from the flow" in text
    assert f"job {name} succeeded" in text
