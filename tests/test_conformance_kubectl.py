"""Conformance: kubectl 1.20.2 (Debian's ``kubernetes-client``) against the local cluster.

kubectl is a client nobody here wrote; these tests run it unchanged and check what it prints
and what ends up in the cluster. The binary comes from ``$KJENV_KUBECTL`` or
``.kubectl/usr/bin/kubectl`` (installed by ``scripts/install-kubectl``); when it is missing the
tests fail (they never skip). ``/usr/bin/kubectl`` may be an unrelated kubectl and is never used.

Each kubectl run gets ``--kubeconfig`` of the cluster and a fresh ``HOME`` / ``--cache-dir`` for
the session, because kubectl caches discovery per server in ``~/.kube/cache``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from kube_cluster import unique
from kube_cluster import wait_until as poll

ROOT = Path(__file__).resolve().parent.parent

INSTALL_HINT = (
    "kubectl 1.20.2 is missing: run scripts/install-kubectl "
    "(or set KJENV_KUBECTL to a kubectl 1.20 binary)"
)


def kubectl_binary() -> str:
    """The kubectl 1.20 binary to test with; fails the test (never skips) when it is missing."""
    path = os.environ.get("KJENV_KUBECTL") or str(ROOT / ".kubectl" / "usr" / "bin" / "kubectl")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{INSTALL_HINT}; looked for {path}", pytrace=False)
    return path


class Kubectl:
    """Runs kubectl against one cluster with a private HOME and discovery cache."""

    def __init__(self, binary: str, kubeconfig: str, home: Path):
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.home = home
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KUBECONFIG": kubeconfig,
        }

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``kubectl args…``."""
        return [
            self.binary,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.home / 'cache'}",
            *args,
        ]

    def run(
        self, *args: str, timeout: float = 30, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Runs kubectl to completion; with ``check``, a non-zero exit fails the test."""
        proc = subprocess.run(
            self.argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> dict:
        """Runs ``kubectl args… -o json`` and returns the parsed output."""
        return json.loads(self.run(*args, "-o", "json").stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        """Starts kubectl in the background (stdout and stderr piped, text mode)."""
        return subprocess.Popen(
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="module")
def kubectl(local_cluster, tmp_path_factory) -> Kubectl:
    """kubectl 1.20.2 bound to the session's local cluster, with a fresh HOME for this module."""
    binary = kubectl_binary()
    home = tmp_path_factory.mktemp("kubectl-home")
    k = Kubectl(binary, local_cluster.kubeconfig, home)
    version = k.run("version", "--client", "--short").stdout
    assert "v1.20.2" in version, f"{binary} is not kubectl 1.20.2: {version}"
    return k


def job_manifest(name: str, script: str, **template_spec) -> dict:
    """A batch/v1 Job running ``sh -c script`` once (restartPolicy Never unless overridden)."""
    spec = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}],
    }
    spec.update(template_spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }


def write_manifest(tmp_path: Path, manifest: dict, filename: str = "job.yaml") -> str:
    """Writes ``manifest`` as YAML and returns the file's path."""
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return str(path)


def wait_job(kubectl: Kubectl, name: str, type_: str = "Complete", timeout: float = 30) -> dict:
    """Polls ``get job -o json`` until the Job has condition ``type_`` True; returns the Job.

    Tests that are not about ``kubectl wait`` use this, so they do not depend on it.
    """

    def done():
        job = kubectl.json("get", "job", name)
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(c["type"] == type_ and c["status"] == "True" for c in conditions) and job

    return poll(done, timeout=timeout, what=f"Job {name} to be {type_}")


def pods_of(kubectl: Kubectl, job: str) -> list[dict]:
    """The Job's pods, as kubectl lists them by the ``job-name`` label."""
    return kubectl.json("get", "pods", "-l", f"job-name={job}")["items"]


class LineReader:
    """Reads a stream's lines on a thread, so tests can wait for a line with a deadline."""

    def __init__(self, stream):
        self.lines: queue.Queue = queue.Queue()
        self.eof = False
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, predicate, timeout: float) -> list[str]:
        """Lines read until one satisfies ``predicate`` (included), EOF or ``timeout``."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self.eof = True
                break
            seen.append(line)
            if predicate(line):
                break
        return seen


# --- create, apply, get -------------------------------------------------------------------


def test_create_then_get_json(kubectl, tmp_path):
    """``create -f job.yaml`` then ``get jobs -o json``: the Job comes back defaulted."""
    name = unique("kc-create")
    path = write_manifest(tmp_path, job_manifest(name, "echo created"))

    out = kubectl.run("create", "-f", path).stdout
    assert out.strip() == f"job.batch/{name} created"

    jobs = kubectl.json("get", "jobs")
    assert jobs["kind"] == "List"
    assert jobs["apiVersion"] == "v1"
    by_name = {j["metadata"]["name"]: j for j in jobs["items"]}
    assert name in by_name
    job = by_name[name]
    assert job["kind"] == "Job"
    assert job["apiVersion"] == "batch/v1"
    meta = job["metadata"]
    assert meta["namespace"] == "default"
    assert len(meta["uid"]) == 36
    assert int(meta["resourceVersion"]) > 0
    assert meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z")
    spec = job["spec"]
    assert spec["completions"] == 1
    assert spec["parallelism"] == 1
    assert spec["backoffLimit"] == 0
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    uid = meta["uid"]
    assert spec["selector"]["matchLabels"] == {"batch.kubernetes.io/controller-uid": uid}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["job-name"] == name
    assert labels["batch.kubernetes.io/job-name"] == name
    assert labels["controller-uid"] == uid
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "echo created"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePolicy"] == "File"

    # A single object by name, too, and the controller's status shows up.
    single = kubectl.json("get", "job", name)
    assert single["metadata"]["uid"] == uid
    wait_job(kubectl, name)
    done = kubectl.json("get", "job", name)
    assert done["status"]["succeeded"] == 1
    assert done["status"]["startTime"].endswith("Z")
    assert done["status"]["completionTime"].endswith("Z")
    types = [c["type"] for c in done["status"]["conditions"]]
    assert "Complete" in types

    # Creating it again: AlreadyExists, as kubectl words it.
    again = kubectl.run("create", "-f", path, check=False)
    assert again.returncode == 1
    assert (
        again.stderr.strip() == f'Error from server (AlreadyExists): error when creating "{path}": '
        f'jobs.batch "{name}" already exists'
    )


def test_get_jobs_table(kubectl, tmp_path):
    """Plain ``get jobs`` prints kubectl's Job table (server-side Table)."""
    name = unique("kc-table")
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "true")))
    wait_job(kubectl, name)
    out = kubectl.run("get", "job", name).stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    row = out[1].split()
    assert row[0] == name
    assert row[1:3] == ["Complete", "1/1"]


def test_apply_twice_patches(kubectl, tmp_path):
    """``apply -f`` creates, a second ``apply -f`` with a change PATCHes, a third is a no-op."""
    name = unique("kc-apply")
    manifest = job_manifest(name, "echo applied")
    manifest["metadata"]["labels"] = {"app": "conformance", "round": "one"}
    path = write_manifest(tmp_path, manifest)

    first = kubectl.run("apply", "-f", path).stdout
    assert first.strip() == f"job.batch/{name} created"
    job = kubectl.json("get", "job", name)
    last_applied = json.loads(
        job["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last_applied["metadata"]["labels"] == {"app": "conformance", "round": "one"}
    rv1 = int(job["metadata"]["resourceVersion"])

    manifest["metadata"]["labels"] = {"app": "conformance", "round": "two", "extra": "yes"}
    manifest["metadata"]["annotations"] = {"note": "second apply"}
    path = write_manifest(tmp_path, manifest)
    second = kubectl.run("apply", "-f", path).stdout
    assert second.strip() == f"job.batch/{name} configured"

    job = kubectl.json("get", "job", name)
    assert job["metadata"]["labels"] == {"app": "conformance", "round": "two", "extra": "yes"}
    assert job["metadata"]["annotations"]["note"] == "second apply"
    last_applied = json.loads(
        job["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last_applied["metadata"]["labels"]["round"] == "two"
    assert int(job["metadata"]["resourceVersion"]) > rv1
    # A metadata-only change is not a spec change.
    assert job["metadata"]["generation"] == 1
    # The spec (and its defaulting) survived the patch.
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "sh",
        "-c",
        "echo applied",
    ]

    third = kubectl.run("apply", "-f", path).stdout
    assert third.strip() == f"job.batch/{name} unchanged"

    # Dropping a label from the file removes it from the object (three-way merge).
    manifest["metadata"]["labels"] = {"app": "conformance", "round": "two"}
    path = write_manifest(tmp_path, manifest)
    assert kubectl.run("apply", "-f", path).stdout.strip() == f"job.batch/{name} configured"
    job = kubectl.json("get", "job", name)
    assert job["metadata"]["labels"] == {"app": "conformance", "round": "two"}


# --- watch, wait, logs --------------------------------------------------------------------


def test_get_pods_watch(kubectl, tmp_path):
    """``get pods -l job-name=x -w`` prints the Job's pod as it appears and changes."""
    name = unique("kc-watch")
    # -v=6 logs each request once its response headers arrive.
    proc = kubectl.popen("get", "pods", "-l", f"job-name={name}", "-w", "-v=6")
    out, err = LineReader(proc.stdout), LineReader(proc.stderr)
    try:
        # The list is empty, then the watch starts: the pod must arrive as a watch event.
        log = err.until(lambda line: "watch=true" in line and "200 OK" in line, timeout=10)
        assert log and "200 OK" in log[-1], log
        kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "sleep 0.5")))
        lines = out.until(
            lambda line: line.startswith(f"{name}-") and "Completed" in line, timeout=20
        )
    finally:
        proc.kill()
        proc.wait(timeout=10)
    stderr = "".join(err.until(lambda line: False, timeout=0.2))
    pod_lines = [line.split() for line in lines if line.startswith(f"{name}-")]
    assert pod_lines, f"no pod line in the watch output: {lines!r} (stderr {stderr!r})"
    pod_name = pod_lines[0][0]
    assert pod_name.startswith(f"{name}-") and len(pod_name) == len(name) + 6
    # Columns: NAME READY STATUS RESTARTS AGE; the pod finishes as Completed.
    statuses = [cols[2] for cols in pod_lines]
    assert statuses[-1] == "Completed", statuses
    assert pod_lines[-1][1] == "0/1"
    assert all(cols[0] == pod_name for cols in pod_lines)


def test_get_pods_watch_bounded_by_request_timeout(kubectl, tmp_path):
    """``get pods -w --request-timeout=2s`` lists the pod, then ends on its own."""
    name = unique("kc-wtimeout")
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "true")))
    wait_job(kubectl, name)
    started = time.monotonic()
    proc = kubectl.run(
        "get", "pods", "-l", f"job-name={name}", "-w", "--request-timeout=2s", check=False
    )
    elapsed = time.monotonic() - started
    # A hang guard: a watch that ignored its timeout would run until kubectl.run's own.
    assert elapsed < 60, f"the watch did not end with its timeout ({elapsed:.1f}s)"
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0][:3] == ["NAME", "READY", "STATUS"]
    assert any(r[0].startswith(f"{name}-") and r[2] == "Completed" for r in rows[1:]), rows


def test_wait_for_complete(kubectl, tmp_path):
    """``wait --for=condition=complete job/x`` returns when the Job completes."""
    name = unique("kc-wait")
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "sleep 1")))
    out = kubectl.run("wait", "--for=condition=complete", f"job/{name}", "--timeout=30s").stdout
    assert out.strip() == f"job.batch/{name} condition met"
    job = kubectl.json("get", "job", name)
    complete = [c for c in job["status"]["conditions"] if c["type"] == "Complete"]
    assert complete and complete[0]["status"] == "True"
    assert job["status"]["succeeded"] == 1


def test_wait_times_out_on_failed_job(kubectl, tmp_path):
    """A failed Job never meets ``condition=complete``: ``wait`` times out with kubectl's text;
    ``--for=condition=failed`` is met."""
    name = unique("kc-waitfail")
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "sleep 0.5; exit 3")))
    out = kubectl.run("wait", "--for=condition=failed", f"job/{name}", "--timeout=30s").stdout
    assert out.strip() == f"job.batch/{name} condition met"
    proc = kubectl.run(
        "wait", "--for=condition=complete", f"job/{name}", "--timeout=1s", check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: timed out waiting for the condition on jobs/{name}"
    job = kubectl.json("get", "job", name)
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "BackoffLimitExceeded"


def test_logs_job(kubectl, tmp_path):
    """``logs job/x`` prints the output of the Job's pod."""
    name = unique("kc-logs")
    # stdout and stderr are separate pipes (as with a container runtime): the sleeps keep the
    # order of lines written to different streams well defined.
    script = "echo hello; sleep 0.1; echo from stderr >&2; sleep 0.1; echo goodbye"
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, script)))
    wait_job(kubectl, name)
    out = kubectl.run("logs", f"job/{name}").stdout
    assert out == "hello\nfrom stderr\ngoodbye\n"
    # The same through the pod name, with --tail.
    pod = pods_of(kubectl, name)[0]["metadata"]["name"]
    assert kubectl.run("logs", pod, "--tail=1").stdout == "goodbye\n"
    assert kubectl.run("logs", pod, "-c", "main", "--tail=2").stdout == "from stderr\ngoodbye\n"


def test_logs_follow_streams_until_exit(kubectl, tmp_path):
    """``logs <pod> -f`` streams lines as they are written and ends when the container exits."""
    name = unique("kc-follow")
    script = "echo one; sleep 1; echo two; sleep 1; echo three"
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, script)))

    def running_pod():
        for pod in pods_of(kubectl, name):
            statuses = pod.get("status", {}).get("containerStatuses") or []
            if statuses and "running" in statuses[0].get("state", {}):
                return pod["metadata"]["name"]
        return None

    pod = poll(running_pod, timeout=20, what="a running pod")
    started = time.monotonic()
    proc = kubectl.popen("logs", pod, "-f")
    try:
        out = LineReader(proc.stdout)
        first = out.until(lambda line: line == "one\n", timeout=10)
        first_at = time.monotonic() - started
        rest = out.until(lambda line: False, timeout=20)  # to EOF: the stream must end
        ended_at = time.monotonic() - started
        proc.wait(timeout=10)
    finally:
        proc.kill()
    stderr = proc.stderr.read()
    assert out.eof, f"the stream did not end after the container exited: {rest!r}"
    assert proc.returncode == 0, stderr
    assert first == ["one\n"], first
    assert rest == ["two\n", "three\n"]
    # "one" arrived while the container still ran, the stream ended after "three".
    assert first_at < 1.9, f"the first line was not streamed ({first_at:.2f}s)"
    assert ended_at >= 1.0, f"the stream ended too early ({ended_at:.2f}s)"
    state = kubectl.json("get", "pod", pod)["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 0
    assert state["terminated"]["reason"] == "Completed"


def test_logs_follow_with_tail_and_timestamps(kubectl, tmp_path):
    """``logs <pod> -f --tail=1 --timestamps -c main`` on a finished pod: one stamped line."""
    name = unique("kc-tail")
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "echo a; echo b")))
    wait_job(kubectl, name)
    pod = pods_of(kubectl, name)[0]["metadata"]["name"]
    out = kubectl.run("logs", pod, "-f", "--tail=1", "--timestamps", "-c", "main").stdout
    lines = out.splitlines()
    assert len(lines) == 1, lines
    stamp, text = lines[0].split(" ", 1)
    assert text == "b"
    assert stamp[:2] == "20" and stamp.endswith("Z") and "T" in stamp


# --- delete -------------------------------------------------------------------------------


def test_delete_job_removes_pods(kubectl, tmp_path):
    """``delete job x`` (kubectl sends Background propagation) deletes the Job and its pods."""
    name = unique("kc-delete")
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "exec sleep 60")))

    def pod_running():
        pods = pods_of(kubectl, name)
        return pods and pods[0].get("status", {}).get("phase") == "Running"

    poll(pod_running, timeout=20, what="the Job's pod to run")
    out = kubectl.run("delete", "job", name, timeout=60).stdout
    assert out.strip() == f'job.batch "{name}" deleted'

    missing = kubectl.run("get", "job", name, check=False)
    assert missing.returncode == 1
    assert f'jobs.batch "{name}" not found' in missing.stderr
    # Background propagation: the pods are collected after the Job (the sleep gets SIGTERM).
    poll(lambda: not pods_of(kubectl, name), timeout=30, what="the Job's pods to be deleted")


def test_delete_cascade_orphan_keeps_pods(kubectl, tmp_path):
    """``delete job x --cascade=orphan`` keeps the pods and strips their ownerReference."""
    name = unique("kc-orphan")
    kubectl.run("create", "-f", write_manifest(tmp_path, job_manifest(name, "true")))
    wait_job(kubectl, name)
    out = kubectl.run("delete", "job", name, "--cascade=orphan").stdout
    assert out.strip() == f'job.batch "{name}" deleted'
    pods = pods_of(kubectl, name)
    assert len(pods) == 1
    pod = pods[0]["metadata"]["name"]

    def orphaned():
        meta = kubectl.json("get", "pod", pod)["metadata"]
        return not meta.get("ownerReferences")

    poll(orphaned, timeout=10, what="the pod's ownerReference to be removed")
    assert kubectl.run("delete", "pod", pod).stdout.strip() == f'pod "{pod}" deleted'


# --- errors -------------------------------------------------------------------------------


def test_get_missing_job_is_not_found(kubectl):
    """``get job missing`` prints the server's NotFound text and exits 1."""
    proc = kubectl.run("get", "job", "missing", check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip() == 'Error from server (NotFound): jobs.batch "missing" not found'


def test_get_missing_pod_and_logs(kubectl):
    """NotFound for a pod and for the logs of a missing pod."""
    proc = kubectl.run("get", "pod", "nope", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    proc = kubectl.run("logs", "nope", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_invalid_restart_policy(kubectl, tmp_path):
    """A Job with ``restartPolicy: Always`` is refused with the API server's Invalid text."""
    name = unique("kc-invalid")
    path = write_manifest(tmp_path, job_manifest(name, "true", restartPolicy="Always"))
    proc = kubectl.run("create", "-f", path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'The Job "{name}" is invalid: spec.template.spec.restartPolicy: '
        'Required value: valid values: "OnFailure", "Never"'
    )
    missing = kubectl.run("get", "job", name, check=False)
    assert "NotFound" in missing.stderr


def test_invalid_several_causes(kubectl, tmp_path):
    """Several validation errors come back as kubectl's bracketed list."""
    name = unique("kc-invalid2")
    manifest = job_manifest(name, "true")
    manifest["spec"]["backoffLimit"] = -1
    manifest["spec"]["template"]["spec"]["containers"][0]["name"] = "Bad_Name"
    proc = kubectl.run("create", "-f", write_manifest(tmp_path, manifest), check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    # kubectl 1.20 prints each cause of a multi-cause Invalid on its own "* " line.
    lines = err.splitlines()
    assert lines[0] == f'The Job "{name}" is invalid: '
    assert "* spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0" in lines
    name_error = [line for line in lines if "containers[0].name" in line]
    assert name_error and name_error[0].startswith(
        '* spec.template.spec.containers[0].name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 label must consist of"
    ), lines


def test_namespace_not_found(kubectl, tmp_path):
    """Creating in a namespace that does not exist is NotFound for the namespace."""
    name = unique("kc-nons")
    path = write_manifest(tmp_path, job_manifest(name, "true"))
    proc = kubectl.run("create", "-f", path, "-n", "no-such-ns", check=False)
    assert proc.returncode == 1
    assert 'namespaces "no-such-ns" not found' in proc.stderr
    assert proc.stderr.startswith("Error from server (NotFound)")


# --- describe, get all, delete -f -------------------------------------------------------


def test_describe_job_and_logs_follow_job(kubectl, tmp_path):
    """``logs -f job/x`` follows the Job's pod; ``describe job`` shows status and events;
    ``get all`` lists the pod and the Job; ``delete -f`` deletes it."""
    name = unique("kc-describe")
    path = write_manifest(tmp_path, job_manifest(name, "echo hi; sleep 0.5; echo bye"))
    kubectl.run("create", "-f", path)
    assert kubectl.run("logs", "-f", f"job/{name}").stdout == "hi\nbye\n"
    wait_job(kubectl, name)

    out = kubectl.run("describe", "job", name).stdout
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith(" ") and value.strip():
            fields[key] = value.strip()
    assert fields["Name"] == name
    assert fields["Namespace"] == "default"
    assert fields["Parallelism"] == "1"
    assert fields["Completions"] == "1"
    assert fields["Pods Statuses"] == "0 Running / 1 Succeeded / 0 Failed"
    assert "Completed At" in fields
    events = out[out.index("Events:") :]
    assert "SuccessfulCreate" in events and f"Created pod: {name}-" in events
    assert "echo hi; sleep 0.5; echo bye" in out

    rows = [line.split() for line in kubectl.run("get", "all").stdout.splitlines() if line]
    assert any(r[0] == f"job.batch/{name}" and r[1:3] == ["Complete", "1/1"] for r in rows), rows
    assert any(r[0].startswith(f"pod/{name}-") and r[2] == "Completed" for r in rows), rows

    assert kubectl.run("delete", "-f", path).stdout.strip() == f'job.batch "{name}" deleted'
    poll(lambda: not pods_of(kubectl, name), timeout=20, what="the Job's pods to be deleted")
