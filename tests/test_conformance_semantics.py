"""Conformance: the emulator's semantics as kube-apiserver and the job controller have them.

Real clients, used unchanged, against the session's local cluster: kubectl 1.20.2
(``$KJENV_KUBECTL``) and the machine's kubectl 1.32+ (``/usr/bin/kubectl``, v1.33 here) for
updates of pods the Job controller made (``label``, ``annotate``) and for the printers' tables;
the official Python client for unchanged PUTs, ``spec.podFailurePolicy`` (FailJob / Ignore /
Count / FailIndex) and suspend/resume (the ``Suspended`` condition and events).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from kube_cluster import unique
from kube_cluster import wait_until as poll
from kubernetes import client, config
from test_conformance_kubectl import Kubectl, kubectl_binary

NS = "default"
MACHINE_KUBECTL = "/usr/bin/kubectl"
# Hang guards only: these Jobs finish in about a second here.
JOB_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def api_client(local_cluster):
    """An ``ApiClient`` configured from the local cluster's kubeconfig."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=local_cluster.kubeconfig, client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        yield api


@pytest.fixture
def batch(api_client) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


@pytest.fixture
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module", params=["1.20", "machine"])
def kubectl(request, local_cluster, tmp_path_factory) -> Kubectl:
    """kubectl 1.20.2 and the machine's kubectl (1.32 or later), each with a fresh HOME."""
    binary = kubectl_binary() if request.param == "1.20" else MACHINE_KUBECTL
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing", pytrace=False)
    k = Kubectl(binary, local_cluster.kubeconfig, tmp_path_factory.mktemp("kubectl-home"))
    version = json.loads(k.run("version", "--client", "-o", "json").stdout)["clientVersion"]
    minor = int(version["minor"].rstrip("+"))
    if request.param == "1.20":
        assert minor == 20, version
    else:
        assert minor >= 32, f"{binary} is kubectl {version['gitVersion']}, not 1.32+"
    return k


def job_body(name: str, script: str, **spec) -> dict:
    """A Job running ``sh -c script`` (restartPolicy Never), extra ``spec`` fields merged."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
                    ],
                }
            },
        },
    }


def conditions(batch, name: str) -> list:
    return batch.read_namespaced_job_status(name, NS).status.conditions or []


def wait_condition(batch, name: str, type_: str, status: str = "True"):
    """Polls until the Job has condition ``type_`` with ``status``; returns the Job."""

    def has():
        job = batch.read_namespaced_job_status(name, NS)
        found = [c for c in job.status.conditions or [] if c.type == type_]
        return found and found[0].status == status and job

    return poll(has, timeout=JOB_TIMEOUT, what=f"Job {name} {type_}={status}")


def job_pods(core, name: str) -> list:
    return core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items


def job_events(core, name: str) -> list:
    sel = f"involvedObject.kind=Job,involvedObject.name={name}"
    return core.list_namespaced_event(NS, field_selector=sel).items


def delete_job(batch, name: str) -> None:
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")


# --- (a) updates of a pod the Job controller created --------------------------------------


def test_label_and_annotate_a_job_pod_with_kubectl(kubectl, batch, core):
    name = unique("sem-label")
    batch.create_namespaced_job(NS, job_body(name, "sleep 30"))
    try:
        pod = poll(lambda: job_pods(core, name), timeout=JOB_TIMEOUT, what="the Job's pod")[0]
        pname = pod.metadata.name
        out = kubectl.run("label", "pod", pname, "sem=yes").stdout
        assert f"pod/{pname} labeled" in out
        out = kubectl.run("annotate", "pod", pname, "sem/note=hello").stdout
        assert f"pod/{pname} annotated" in out
        got = core.read_namespaced_pod(pname, NS)
        assert got.metadata.labels["sem"] == "yes"
        assert got.metadata.annotations["sem/note"] == "hello"
        # The controller's pod has what an API create gives: defaults and tolerations.
        assert got.spec.service_account_name == "default"
        assert got.spec.enable_service_links is True
        keys = [(t.key, t.toleration_seconds) for t in got.spec.tolerations]
        assert ("node.kubernetes.io/not-ready", 300) in keys
        assert ("node.kubernetes.io/unreachable", 300) in keys
    finally:
        delete_job(batch, name)


def replace_pod(core, name: str, change, attempts: int = 10):
    """Read, change and PUT the pod, again when the kubelet's status write came in between
    (409 Conflict on the resourceVersion, as any client of a real server sees)."""
    for attempt in range(attempts):
        current = core.read_namespaced_pod(name, NS)
        change(current)
        try:
            return core.replace_namespaced_pod(name, NS, current)
        except client.ApiException as e:
            if e.status != 409 or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def test_an_unchanged_put_of_a_job_pod_is_accepted(batch, core):
    name = unique("sem-put")
    batch.create_namespaced_job(NS, job_body(name, "sleep 30"))
    try:
        pod = poll(lambda: job_pods(core, name), timeout=JOB_TIMEOUT, what="the Job's pod")[0]

        def label(p):
            p.metadata.labels["put"] = "unchanged-spec"

        replaced = replace_pod(core, pod.metadata.name, label)
        assert replaced.metadata.labels["put"] == "unchanged-spec"
        # A real spec change is still refused, in kube-apiserver's words.

        def command(p):
            p.spec.containers[0].command = ["sh", "-c", "exit 1"]

        with pytest.raises(client.ApiException) as err:
            replace_pod(core, pod.metadata.name, command)
        assert err.value.status == 422
        assert "pod updates may not change fields other than" in err.value.body
    finally:
        delete_job(batch, name)


# --- (b) podFailurePolicy -------------------------------------------------------------------


def exit_code_rule(action: str, codes: list[int], operator: str = "In") -> dict:
    return {"action": action, "onExitCodes": {"operator": operator, "values": codes}}


def test_fail_job_rule_fails_at_once_with_the_real_message(batch, core):
    name = unique("sem-failjob")
    policy = {"rules": [exit_code_rule("FailJob", [42])]}
    batch.create_namespaced_job(
        NS, job_body(name, "exit 42", backoffLimit=6, podFailurePolicy=policy)
    )
    try:
        job = wait_condition(batch, name, "Failed")
        pods = job_pods(core, name)
        assert len(pods) == 1, [p.metadata.name for p in pods]
        want = (
            f"Container main for pod {NS}/{pods[0].metadata.name} failed with exit code 42 "
            "matching FailJob rule at index 0"
        )
        types = [c.type for c in job.status.conditions]
        assert types.index("FailureTarget") < types.index("Failed"), types
        for c in job.status.conditions:
            if c.type in ("FailureTarget", "Failed"):
                assert (c.reason, c.message) == ("PodFailurePolicy", want)
        assert job.status.failed == 1
        assert any(e.reason == "PodFailurePolicy" for e in job_events(core, name))
    finally:
        delete_job(batch, name)


def test_ignore_rule_does_not_count_the_failure(batch, core, tmp_path):
    name = unique("sem-ignore")
    marker = tmp_path / "ran-once"
    script = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 3"
    policy = {"rules": [exit_code_rule("Ignore", [3])]}
    batch.create_namespaced_job(NS, job_body(name, script, podFailurePolicy=policy))
    try:
        job = wait_condition(batch, name, "Complete")
        assert not job.status.failed, job.status
        assert job.status.succeeded == 1
        assert len(job_pods(core, name)) == 2
    finally:
        delete_job(batch, name)


def test_count_rule_counts_toward_the_backoff_limit(batch):
    name = unique("sem-count")
    policy = {"rules": [exit_code_rule("Count", [0], operator="NotIn")]}
    batch.create_namespaced_job(NS, job_body(name, "exit 3", podFailurePolicy=policy))
    try:
        job = wait_condition(batch, name, "Failed")
        failed = [c for c in job.status.conditions if c.type == "Failed"][0]
        assert failed.reason == "BackoffLimitExceeded"
        assert job.status.failed == 1
    finally:
        delete_job(batch, name)


def test_pod_condition_rule_names_the_condition(batch, core):
    name = unique("sem-podcond")
    policy = {
        "rules": [{"action": "FailJob", "onPodConditions": [{"type": "Ready", "status": "False"}]}]
    }
    batch.create_namespaced_job(
        NS, job_body(name, "exit 9", backoffLimit=4, podFailurePolicy=policy)
    )
    try:
        job = wait_condition(batch, name, "Failed")
        pod = job_pods(core, name)[0].metadata.name
        failed = [c for c in job.status.conditions if c.type == "Failed"][0]
        assert failed.reason == "PodFailurePolicy"
        assert (
            failed.message == f"Pod {NS}/{pod} has condition Ready matching FailJob rule at index 0"
        )
    finally:
        delete_job(batch, name)


def test_fail_index_rule_fails_only_that_index(batch, core):
    name = unique("sem-failindex")
    script = 'if [ "$JOB_COMPLETION_INDEX" = 0 ]; then exit 42; fi; exit 0'
    policy = {"rules": [exit_code_rule("FailIndex", [42])]}
    body = job_body(
        name,
        script,
        completions=2,
        parallelism=2,
        completionMode="Indexed",
        backoffLimitPerIndex=3,
        podFailurePolicy=policy,
    )
    del body["spec"]["backoffLimit"]
    batch.create_namespaced_job(NS, body)
    try:
        job = wait_condition(batch, name, "Failed")
        failed = [c for c in job.status.conditions if c.type == "Failed"][0]
        assert (failed.reason, failed.message) == ("FailedIndexes", "Job has failed indexes")
        assert job.status.failed_indexes == "0"
        assert job.status.completed_indexes == "1"
        # FailIndex: index 0 was not retried although backoffLimitPerIndex allows 3.
        assert len(job_pods(core, name)) == 2
    finally:
        delete_job(batch, name)


# --- (c) suspend / resume -------------------------------------------------------------------


def test_suspend_and_resume_set_the_condition_and_record_events(batch, core):
    name = unique("sem-suspend")
    batch.create_namespaced_job(NS, job_body(name, "exit 0", suspend=True))
    try:
        job = wait_condition(batch, name, "Suspended")
        c = [c for c in job.status.conditions if c.type == "Suspended"][0]
        assert (c.reason, c.message) == ("JobSuspended", "Job suspended")
        assert job.status.start_time is None
        assert not job_pods(core, name)
        batch.patch_namespaced_job(name, NS, {"spec": {"suspend": False}})
        job = wait_condition(batch, name, "Suspended", status="False")
        c = [c for c in job.status.conditions if c.type == "Suspended"][0]
        assert (c.reason, c.message) == ("JobResumed", "Job resumed")
        wait_condition(batch, name, "Complete")
        reasons = {(e.reason, e.message) for e in job_events(core, name)}
        assert ("Suspended", "Job suspended") in reasons
        assert ("Resumed", "Job resumed") in reasons
    finally:
        delete_job(batch, name)


# --- tables, column for column --------------------------------------------------------------


def header(out: str) -> list[str]:
    """The column names of kubectl's table header (split on 2+ spaces)."""
    return re.split(r"\s{2,}", out.splitlines()[0].strip())


def test_get_jobs_has_status_and_wide_columns(kubectl, batch):
    name = unique("sem-table")
    batch.create_namespaced_job(NS, job_body(name, "exit 0", suspend=True))
    try:
        wait_condition(batch, name, "Suspended")
        out = kubectl.run("get", "job", name).stdout
        assert header(out) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
        assert re.split(r"\s{2,}", out.splitlines()[1].strip())[:3] == [name, "Suspended", "0/1"]
        wide = kubectl.run("get", "job", name, "-o", "wide").stdout
        cols = header(wide)
        assert cols[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"], cols
        row = re.split(r"\s{2,}", wide.splitlines()[1].strip())
        assert row[-3] == "main" and row[-2] == "busybox:1.36"
        assert row[-1].startswith("batch.kubernetes.io/controller-uid=")
    finally:
        delete_job(batch, name)


def test_get_events_namespaces_secrets_and_pods_tables(kubectl, batch, core, tmp_path: Path):
    name = unique("sem-events")
    batch.create_namespaced_job(NS, job_body(name, "exit 0", suspend=True))
    try:
        wait_condition(batch, name, "Suspended")
        out = kubectl.run("get", "events", "--field-selector", f"involvedObject.name={name}")
        assert header(out.stdout) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        assert re.search(rf"Normal\s+Suspended\s+job/{name}\s+Job suspended", out.stdout)
        out = kubectl.run("get", "namespace", NS).stdout
        assert header(out) == ["NAME", "STATUS", "AGE"]
        assert re.split(r"\s{2,}", out.splitlines()[1].strip())[:2] == [NS, "Active"]
        secret = unique("sem-secret")
        core.create_namespaced_secret(
            NS, {"metadata": {"name": secret}, "stringData": {"a": "1", "b": "2"}}
        )
        out = kubectl.run("get", "secret", secret).stdout
        assert header(out) == ["NAME", "TYPE", "DATA", "AGE"]
        assert re.split(r"\s{2,}", out.splitlines()[1].strip())[:3] == [secret, "Opaque", "2"]
        core.delete_namespaced_secret(secret, NS)
        batch.patch_namespaced_job(name, NS, {"spec": {"suspend": False}})
        wait_condition(batch, name, "Complete")
        pod = job_pods(core, name)[0].metadata.name
        out = kubectl.run("get", "pod", pod, "-o", "wide").stdout
        assert header(out) == [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
        ]
        assert re.split(r"\s{2,}", out.splitlines()[1].strip())[1:3] == ["0/1", "Completed"]
    finally:
        delete_job(batch, name)
