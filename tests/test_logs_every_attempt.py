"""Every log line kept: ``wait(log_file=...)`` writes the whole log to a file; the log of every
attempt (each pod of a retried Job, each restart of an ``OnFailure`` container) is read while
it runs, before a TTL or a delete removes it; multi-container pods name the container in the
lines; a log read that fails is a warning, not a failed run."""

from __future__ import annotations

import logging
import sys
import uuid

import cloudpickle
import pytest
from kube_cluster import (
    PrintFlow,
    flow_file,
    job_spec,
    kjenv_cli,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    unique,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FailsUntil:
    """Prints which attempt this is; fails until the ``succeed_on``-th attempt (counted in a
    file next to the flow, which every attempt's process sees on these clusters)."""

    def __init__(self, counter: str, succeed_on: int):
        self.counter, self.succeed_on = counter, succeed_on

    def run(self) -> None:
        import os

        n = 1 + (os.path.getsize(self.counter) if os.path.exists(self.counter) else 0)
        with open(self.counter, "a") as f:
            f.write("x")
        print(f"attempt {n} starts", flush=True)
        print(f"attempt {n} ends", flush=True)
        if n < self.succeed_on:
            raise RuntimeError(f"attempt {n} fails on purpose")


def _flow(tmp_path, flow) -> str:
    flow_file(tmp_path, PrintFlow([]))  # registers the helpers module for pickling by value
    path = tmp_path / f"flow-{uuid.uuid4().hex[:8]}.pkl"
    path.write_bytes(cloudpickle.dumps(flow))
    return str(path)


def _attempt_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("attempt ")]


def test_log_file_keeps_the_streamed_lines_real(kube, tmp_path, capfd):
    path = flow_file(tmp_path, PrintFlow(["kept one", "kept two"]))
    run = kube.env(job_spec(unique("lf"))).execute(flow_location=path, image=kube.image)
    log = tmp_path / "run.log"
    run.wait(timeout=120, stream_logs=True, log_file=log)
    out = capfd.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("kept ")] == [
        "kept one",
        "kept two",
    ]
    assert log.read_text() == out, "the file has every line the stream printed, nothing else"
    # Without stream_logs the file still gets the log, and stdout nothing.
    quiet = tmp_path / "quiet.log"
    again = kube.env(job_spec(unique("lf2"))).execute(flow_location=path, image=kube.image)
    again.wait(timeout=120, log_file=str(quiet))
    assert "kept one\n" in quiet.read_text() and "kept two\n" in quiet.read_text()
    assert capfd.readouterr().out == ""
    run.delete()
    again.delete()


def test_a_log_file_that_cannot_be_made_is_refused_before_the_wait(kube, tmp_path):
    run = kube.env(job_spec(unique("lfbad"), sidecar=["sleep", "60"])).execute(image=kube.image)
    with pytest.raises(ValueError, match="cannot write the log file .*missing-dir"):
        run.wait(timeout=60, log_file=tmp_path / "missing-dir" / "x.log")
    run.cancel()


def test_every_pod_of_a_retried_job_is_streamed_real(kube, tmp_path, capfd):
    path = _flow(tmp_path, FailsUntil(str(tmp_path / "count"), succeed_on=3))
    run = kube.env(job_spec(unique("retry"), backoff_limit=3)).execute(
        flow_location=path, image=kube.image
    )
    log = tmp_path / "all.log"
    finished = run.wait(timeout=180, stream_logs=True, log_file=log)
    assert finished["failed"] == 2 and finished["succeeded"] == 1
    expected = [f"attempt {n} {what}" for n in (1, 2, 3) for what in ("starts", "ends")]
    assert _attempt_lines(capfd.readouterr().out) == expected
    assert _attempt_lines(log.read_text()) == expected
    # Read again afterwards: every pod's log, oldest first, each under its header.
    every = run.logs(all_attempts=True)
    assert _attempt_lines(every) == expected
    # Each pod's section once; their order is the attempts' (checked by the lines above), not
    # status()'s, whose creation times have whole seconds and may tie.
    headers = [line for line in every.splitlines() if line.startswith("==> ")]
    pods = [p["name"] for p in run.status()["pods"]]
    assert sorted(pods) == sorted(finished["pods"])
    assert sorted(headers) == sorted(f"==> pod {p}, container flow <==" for p in pods), every
    cli = kjenv_cli(
        "logs", run.name, "--all", "-n", kube.namespace, "--kubeconfig", kube.kubeconfig
    )
    assert (cli.returncode, cli.stdout) == (0, every), cli.stderr
    run.delete()


def test_every_restart_of_an_on_failure_container_is_streamed(kube, tmp_path, capfd):
    path = _flow(tmp_path, FailsUntil(str(tmp_path / "count"), succeed_on=2))
    spec = job_spec(unique("onf"), backoff_limit=3, restartPolicy="OnFailure")
    run = kube.env(spec).execute(flow_location=path, image=kube.image)
    finished = run.wait(timeout=180, stream_logs=True)
    [pod] = run.status()["pods"]
    assert (finished["pods"], pod["containers"][0]["restart_count"]) == ([pod["name"]], 1)
    expected = [f"attempt {n} {what}" for n in (1, 2) for what in ("starts", "ends")]
    assert _attempt_lines(capfd.readouterr().out) == expected, "both runs of the one pod"
    every = run.logs(all_attempts=True)
    assert _attempt_lines(every) == expected, every
    name = pod["name"]
    headers = [line for line in every.splitlines() if line.startswith("==> ")]
    assert headers == [
        f"==> pod {name}, container flow, before restart 1 <==",
        f"==> pod {name}, container flow <==",
    ], every
    run.delete()


def test_a_multi_container_pod_names_the_container_real(kube, tmp_path, capfd):
    path = flow_file(tmp_path, PrintFlow(["from the flow"], sleep=0.5))
    sidecar = ["sh", "-c", "echo from the sidecar; echo sidecar again"]
    run = kube.env(job_spec(unique("multi"), sidecar=sidecar)).execute(
        flow_location=path, image=kube.image
    )
    run.wait(timeout=120, stream_logs=True)
    lines = capfd.readouterr().out.splitlines()
    assert "[flow] from the flow" in lines
    sidecar_lines = [line for line in lines if line.startswith("[sidecar] ")]
    assert sidecar_lines == ["[sidecar] from the sidecar", "[sidecar] sidecar again"]
    run.delete()


def test_logs_are_kept_when_a_ttl_deletes_the_job_real(kube, tmp_path):
    path = flow_file(tmp_path, PrintFlow(["before the ttl", "still kept"], sleep=1.0))
    spec = job_spec(unique("ttl"))
    spec["spec"]["ttlSecondsAfterFinished"] = 0
    run = kube.env(spec).execute(flow_location=path, image=kube.image)
    log = tmp_path / "ttl.log"
    run.wait(timeout=120, log_file=log)
    kept = log.read_text().splitlines()
    assert "before the ttl" in kept and "still kept" in kept
    run.delete()


def test_a_log_read_that_fails_is_a_warning_not_a_failure(cluster, tmp_path, caplog, capfd):
    from kube_cluster import local_kube

    kube = local_kube(cluster)
    path = flow_file(tmp_path, PrintFlow(["unread"], sleep=0.5))
    run = kube.env(job_spec(unique("nolog"))).execute(flow_location=path, image=kube.image)
    cluster.inject_fault(403, method="GET", path="*/log*", times=1000)
    with caplog.at_level(logging.WARNING, logger="kjenv"):
        finished = run.wait(timeout=120, stream_logs=True)
    assert finished["succeeded"] == 1, "the run succeeds without its log"
    cluster.clear_faults()
    [warning] = [r.getMessage() for r in caplog.records if "cannot read the log" in r.getMessage()]
    pod = finished["pods"][0]
    assert warning.startswith(
        f"cannot read the log of container flow in pod {pod}; the wait goes on without it: "
    ), warning
    assert "HTTP 403" in warning and "\n" not in warning
    assert "unread" not in capfd.readouterr().out
    run.delete()


def test_a_late_attach_reads_the_previous_run_of_a_restarted_container_real(kube, tmp_path, capfd):
    from kube_cluster import wait_until

    from kjenv import JobRun

    path = _flow(tmp_path, FailsUntil(str(tmp_path / "count"), succeed_on=2))
    spec = job_spec(unique("late"), backoff_limit=3, restartPolicy="OnFailure")
    run = kube.env(spec).execute(flow_location=path, image=kube.image)
    wait_until(lambda: run.status()["phase"] == "Succeeded", timeout=180, what="the Job's end")
    # Nobody followed the first run while it ran: it is the container's previous log now.
    again = JobRun.attach(run.name, namespace=kube.namespace, kubeconfig=kube.kubeconfig)
    again.wait(timeout=120, stream_logs=True)
    expected = [f"attempt {n} {what}" for n in (1, 2) for what in ("starts", "ends")]
    assert _attempt_lines(capfd.readouterr().out) == expected
    run.delete()
