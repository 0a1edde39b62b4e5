"""The auth token never leaves the run's Secret: a scan of everything kjenv emits with a token
configured (rendered Jobs, the objects on the cluster, reprs, ``serialize()``, pickles, DEBUG
logs, exception messages, CLI output); the Secret is owned by its Job and goes with it."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import pickle
import subprocess
import uuid

import cloudpickle
import pytest
import yaml
from kube_cluster import (
    PrintFlow,
    auth_token,
    flow_file,
    job_spec,
    jobs_of_run,
    kjenv_cli,
    kube_fixture,  # noqa: F401 (the `kube` fixture)
    local_kube,
    pods_of_job,
    secrets_of_run,
    unique,
    wait_until,
)

import kjenv
from kjenv import KubeApiError

TOKEN = f"kjenv-test-token-{uuid.uuid4().hex}"
SECRET_ENV = "PREFECT__CLOUD__AUTH_TOKEN"


def leaks(found: object) -> list[str]:
    """The forms of the token present in ``found`` (text, bytes, or anything with a repr)."""
    if isinstance(found, bytes):
        blob = found
    elif isinstance(found, str):
        blob = found.encode()
    else:
        blob = repr(found).encode()
    forms = {
        "plain": TOKEN.encode(),
        "base64": base64.b64encode(TOKEN.encode()),
        "utf-16": TOKEN.encode("utf-16-le"),
    }
    return [name for name, form in forms.items() if form in blob]


class Scan:
    """Everything collected for the scan, by where it came from."""

    def __init__(self):
        self.items: list[tuple[str, object]] = []

    def add(self, where: str, found: object) -> None:
        self.items.append((where, found))

    def check(self) -> None:
        bad = [(where, forms) for where, found in self.items if (forms := leaks(found))]
        assert not bad, f"the token was found in: {bad}"
        assert len(self.items) > 10


@contextlib.contextmanager
def every_log_record():
    """Every log record of every logger at DEBUG, whatever its propagation setting."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


def _formatted(record: logging.LogRecord) -> str:
    text = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return f"{text} {record.args!r} {record.__dict__!r}"


def test_the_token_appears_nowhere_kjenv_writes(local_cluster, monkeypatch, tmp_path):
    import prefect  # noqa: F401 (the token then also comes from Prefect's config)

    k = local_kube(local_cluster)
    core, batch = k.client()
    scan = Scan()
    with auth_token(monkeypatch, TOKEN), every_log_record() as records:
        logging.getLogger("kjenv").debug("the scan is listening")
        # Rendering, the environment's own faces, pickles.
        name = unique("scan")
        env = k.env(job_spec(name, sidecar=["sleep", "30"]), metadata={"image": "img:1"})
        rendered = env.render(flow_run_id="run-scan")
        flow_env = {
            e["name"]: e for e in rendered["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert flow_env[SECRET_ENV] == {
            "name": SECRET_ENV,
            "valueFrom": {"secretKeyRef": {"name": f"{name}-kjenv", "key": "auth-token"}},
        }
        scan.add("render()", json.dumps(rendered))
        scan.add("repr(env)", repr(env))
        scan.add("serialize()", env.serialize())
        scan.add("env.__dict__", vars(env))
        scan.add("env.job_spec", env.job_spec)
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            scan.add(f"pickle protocol {protocol}", pickle.dumps(env, protocol=protocol))
        scan.add("cloudpickle", cloudpickle.dumps(env))
        scan.add("unpickled repr", repr(pickle.loads(pickle.dumps(env))))

        # A user spec that wrote the token in plain text: kjenv replaces the entry (and warns
        # without the value).
        spec = job_spec(unique("plain"), flow_env=[{"name": SECRET_ENV, "value": "user-token"}])
        plain = k.env(spec).render(image="img:1")
        scan.add("render() of a spec with a plain token", json.dumps(plain))
        assert "user-token" not in json.dumps(plain)

        # Submitting, and the objects on the cluster.
        slow = flow_file(tmp_path, PrintFlow([], sleep=30))  # still running at the timeout below
        run = env.execute(flow_location=slow, flow_run_id="run-scan")
        scan.add("repr(run)", repr(run))
        scan.add("status()", run.status())
        scan.add("events()", run.events())
        scan.add(
            "the Job on the cluster", batch.read_namespaced_job(run.name, k.namespace).to_dict()
        )
        wait_until(lambda: pods_of_job(k, run.uid), timeout=30, what="a pod")
        scan.add("the pods on the cluster", [p.to_dict() for p in pods_of_job(k, run.uid)])
        [secret] = secrets_of_run(k, "run-scan")
        assert base64.b64decode(secret.data["auth-token"]).decode() == TOKEN, "the pod's token"

        # Errors, provoked with the token configured.
        errors = []
        with pytest.raises(ValueError) as info:
            k.env(job_spec(unique("noimage"))).execute()
        errors.append(info.value)
        with pytest.raises(KubeApiError) as info:
            env.execute(flow_run_id="another-run")  # the name is taken by run-scan
        assert info.value.status == 409
        errors.append(info.value)
        local_cluster.inject_fault(403, method="POST", path="*/jobs")
        with pytest.raises(KubeApiError) as info:
            k.env(job_spec(unique("forbidden"))).execute(image="img:1")
        errors.append(info.value)
        with pytest.raises(kjenv.JobSpecError) as info:
            k.env({"apiVersion": "batch/v1", "kind": "Pod", "metadata": {"name": TOKEN[:5]}})
        errors.append(info.value)
        bad_kubeconfig = tmp_path / "bad-kubeconfig"
        bad_kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: x}}]\n"
        )
        with pytest.raises(kjenv.ClusterConfigError) as info:
            kjenv.KubernetesJobEnvironment(
                job_spec=job_spec("x"), kubeconfig=bad_kubeconfig
            ).execute(image="img:1")
        errors.append(info.value)
        with pytest.raises(kjenv.JobTimeoutError) as info:
            run.wait(timeout=0.2)
        errors.append(info.value)
        # The flow container fails (there is no flow file): its log tail is in the error.
        failing = k.env(job_spec(unique("fails"))).execute(image="img:1")
        with pytest.raises(kjenv.JobFailedError) as info:
            failing.wait(timeout=60)
        assert info.value.log_tail
        errors.append(info.value)
        monkeypatch.setenv("KJENV_REQUEST_TIMEOUT", "0.3")
        local_cluster.inject_fault(latency=5, method="POST", path="*/jobs", times=10)
        with pytest.raises(KubeApiError) as info:
            k.env(job_spec(unique("hung"))).execute(image="img:1")
        assert info.value.reason == "Unreachable"
        errors.append(info.value)
        local_cluster.clear_faults()
        monkeypatch.delenv("KJENV_REQUEST_TIMEOUT")
        for err in errors:
            scan.add(f"{type(err).__name__}", f"{err!s} {err!r} {err.args!r} {vars(err)!r}")
        for r in (run, failing):
            r.delete()

    scan.add("log records", [_formatted(r) for r in records])
    assert any(r.name.startswith("kjenv") for r in records), "the log capture works"
    scan.check()


def _cli(*args: str, token: str = TOKEN, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT__", "KUBECONFIG"))}
    env[SECRET_ENV] = token
    return kjenv_cli(*args, env=env, timeout=90, **kw)


def test_the_token_appears_nowhere_in_cli_output(local_cluster, tmp_path):
    k = local_kube(local_cluster)
    name = unique("cli")
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text(yaml.safe_dump(job_spec(name)))
    outputs = []
    for output in ("yaml", "json"):
        rendered = _cli("render", str(spec_path), "--image", "img:1", "-o", output)
        assert rendered.returncode == 0, rendered.stderr
        assert "secretKeyRef" in rendered.stdout
        outputs.append(rendered)
    good_flow = flow_file(tmp_path, PrintFlow(["flow ran"]))
    submitted = _cli(
        "submit",
        str(spec_path),
        "--image",
        "img:1",
        "--kubeconfig",
        k.kubeconfig,
        "--flow-file-path",
        good_flow,
        "--logs",
        "--timeout",
        "60",
        "--flow-run-id",
        "cli-scan",
    )
    assert submitted.returncode == 0, submitted.stderr
    assert "flow ran" in submitted.stdout
    outputs.append(submitted)
    # Failures: the Job fails, the name is taken, the spec is bad.
    failing = tmp_path / "failing.yaml"
    failing.write_text(yaml.safe_dump(job_spec(unique("clifail"))))
    outputs.append(
        _cli("submit", str(failing), "--image", "img:1", "--kubeconfig", k.kubeconfig, "--wait")
    )
    assert outputs[-1].returncode == 1
    outputs.append(_cli("submit", str(spec_path), "--image", "img:1", "--kubeconfig", k.kubeconfig))
    assert outputs[-1].returncode == 1  # the name is taken by cli-scan
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Job\nspec: [\n")
    outputs.append(_cli("submit", str(bad), "--image", "img:1", "--kubeconfig", k.kubeconfig))
    assert outputs[-1].returncode == 2
    outputs.append(_cli("render", str(bad), "--image", "img:1"))
    for out in outputs:
        assert not leaks(out.stdout + out.stderr), (out.args, out.stdout, out.stderr)
    for job in jobs_of_run(k, "cli-scan"):
        local_kube(local_cluster).client()[1].delete_namespaced_job(
            job.metadata.name, k.namespace, propagation_policy="Background"
        )


# ---- the run's Secret --------------------------------------------------------------------------


def test_token_secret_is_owned_by_the_job_and_goes_with_it(kube, monkeypatch):
    core, _ = kube.client()
    name = unique("tok")
    with auth_token(monkeypatch, "tok-123-secret"):
        env = kube.env(job_spec(name, sidecar=["sleep", "30"]))
        run = env.execute(image=kube.image, flow_run_id="run-owned")
    [secret] = [s for s in secrets_of_run(kube, "run-owned") if s.metadata.name == f"{name}-kjenv"]
    assert base64.b64decode(secret.data["auth-token"]).decode() == "tok-123-secret"
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "kjenv"
    owners = [
        (o.api_version, o.kind, o.name, o.uid) for o in secret.metadata.owner_references or []
    ]
    assert owners == [("batch/v1", "Job", name, run.uid)]
    # The Job reads the token from that Secret, never as a plain value.
    _, batch = kube.client()
    container = batch.read_namespaced_job(name, kube.namespace).spec.template.spec.containers[0]
    [token_env] = [e for e in container.env if e.name == SECRET_ENV]
    assert token_env.value is None
    assert token_env.value_from.secret_key_ref.name == f"{name}-kjenv"
    assert token_env.value_from.secret_key_ref.key == "auth-token"
    assert "tok-123-secret" not in repr(run)
    run.delete()
    wait_until(lambda: not secrets_of_run(kube, "run-owned"), timeout=20, what="the Secret to go")


def test_no_secret_is_left_when_the_job_cannot_be_created(local_cluster, monkeypatch):
    k = local_kube(local_cluster)
    local_cluster.inject_fault(403, method="POST", path="*/jobs", times=1)
    with auth_token(monkeypatch, "tok-456"), pytest.raises(KubeApiError) as info:
        k.env(job_spec(unique("nojob"))).execute(image="img:1", flow_run_id="run-nojob")
    assert info.value.status == 403
    assert secrets_of_run(k, "run-nojob") == []
    assert "tok-456" not in str(info.value)


def test_a_name_collision_leaves_the_other_runs_secret_alone(kube, monkeypatch):
    name = unique("tokcol")
    env = kube.env(job_spec(name, sidecar=["sleep", "30"]))
    with auth_token(monkeypatch, "tok-a"):
        first = env.execute(image=kube.image, flow_run_id="run-col-a")
        with pytest.raises(KubeApiError) as info:
            env.execute(image=kube.image, flow_run_id="run-col-b")
    assert info.value.status == 409
    [secret] = secrets_of_run(kube, "run-col-a")
    assert [o.uid for o in secret.metadata.owner_references] == [first.uid]
    assert secrets_of_run(kube, "run-col-b") == []
    first.delete()
    wait_until(lambda: not secrets_of_run(kube, "run-col-a"), timeout=20, what="the Secret to go")


# ---- the local cluster's files -----------------------------------------------------------------


def test_local_cluster_kubeconfigs_are_private(tmp_path):
    from kjenv.testing import LocalCluster

    for work_dir in (None, tmp_path / "work"):
        with LocalCluster(work_dir=work_dir) as cluster:
            mode = os.stat(cluster.kubeconfig).st_mode & 0o777
            assert mode == 0o600, oct(mode)
            with open(cluster.kubeconfig) as f:
                assert cluster.token in f.read()
            cluster.restart_listener()
            assert os.stat(cluster.kubeconfig).st_mode & 0o777 == 0o600
            assert cluster.token not in repr(cluster)
