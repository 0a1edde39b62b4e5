"""Conformance: the official Python ``kubernetes`` client against the local cluster.

The client is used unchanged, configured only from the cluster's kubeconfig. It sends bodies
without Content-Type, ``Accept: application/json``, and propagation policies in the query string;
these tests check what it gets back, typed and raw.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from kube_cluster import unique
from kube_cluster import wait_until as poll
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def api_client(local_cluster):
    """An ``ApiClient`` configured from the local cluster's kubeconfig."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=local_cluster.kubeconfig, client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        yield api


@pytest.fixture
def batch(api_client) -> client.BatchV1Api:
    """The batch/v1 API."""
    return client.BatchV1Api(api_client)


@pytest.fixture
def core(api_client) -> client.CoreV1Api:
    """The core/v1 API."""
    return client.CoreV1Api(api_client)


NS = "default"


def job_body(name: str, script: str, *, restart_policy: str = "Never", **spec) -> dict:
    """A Job running ``sh -c script`` once, as a plain dict (what users usually pass)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"suite": "pyclient"}},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                    ],
                }
            },
        },
    }


def condition(job: client.V1Job, type_: str):
    """The Job's condition of that type, or None."""
    for c in (job.status and job.status.conditions) or []:
        if c.type == type_:
            return c
    return None


def wait_complete(batch: client.BatchV1Api, name: str, timeout: float = 30) -> client.V1Job:
    """Watches the Job until its Complete condition is True; returns the Job."""
    w = watch.Watch()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for event in w.stream(
                batch.list_namespaced_job,
                NS,
                field_selector=f"metadata.name={name}",
                timeout_seconds=max(1, int(deadline - time.monotonic())),
            ):
                job = event["object"]
                c = condition(job, "Complete")
                if c is not None and c.status == "True":
                    return job
                if condition(job, "Failed") is not None:
                    pytest.fail(f"Job {name} failed: {job.status}")
    finally:
        w.stop()
    pytest.fail(f"Job {name} did not complete within {timeout}s")


def pods_of(core: client.CoreV1Api, name: str) -> list[client.V1Pod]:
    """The Job's pods, by the ``job-name`` label."""
    return core.list_namespaced_pod(NS, label_selector=f"job-name={name}").items


def api_error(exc: ApiException) -> dict:
    """The Status body of an ``ApiException``."""
    return json.loads(exc.body)


# --- jobs ---------------------------------------------------------------------------------


def test_create_read_list_job(batch):
    """create/read/list of a Job, typed: defaulting and server-set metadata come back."""
    name = unique("py-crud")
    created = batch.create_namespaced_job(NS, job_body(name, "echo hi"))
    assert isinstance(created, client.V1Job)
    assert created.metadata.name == name
    assert created.metadata.namespace == NS
    assert len(created.metadata.uid) == 36
    assert created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None  # parsed as a datetime
    assert created.metadata.creation_timestamp.tzinfo is not None
    assert created.spec.completions == 1 and created.spec.parallelism == 1
    assert created.spec.backoff_limit == 0
    assert created.spec.selector.match_labels == {
        "batch.kubernetes.io/controller-uid": created.metadata.uid
    }
    assert created.spec.template.metadata.labels["job-name"] == name
    assert created.metadata.labels == {"suite": "pyclient"}

    read = batch.read_namespaced_job(name, NS)
    assert read.metadata.uid == created.metadata.uid
    assert int(read.metadata.resource_version) >= int(created.metadata.resource_version)

    listed = batch.list_namespaced_job(NS, label_selector="suite=pyclient")
    assert isinstance(listed, client.V1JobList)
    assert int(listed.metadata.resource_version) > 0
    assert name in [j.metadata.name for j in listed.items]
    by_field = batch.list_namespaced_job(NS, field_selector=f"metadata.name={name}")
    assert [j.metadata.name for j in by_field.items] == [name]
    everywhere = batch.list_job_for_all_namespaces(field_selector=f"metadata.name={name}")
    assert [j.metadata.name for j in everywhere.items] == [name]

    done = wait_complete(batch, name)
    assert done.status.succeeded == 1
    assert done.status.start_time is not None and done.status.completion_time is not None
    complete = condition(done, "Complete")
    assert complete.reason == "CompletionsReached"
    assert complete.message == "Reached expected number of succeeded pods"
    assert condition(done, "SuccessCriteriaMet").status == "True"


def test_watch_job_events(batch):
    """A watch from the list's resourceVersion sees ADDED then MODIFIED up to Complete."""
    name = unique("py-watch")
    rv = batch.list_namespaced_job(NS).metadata.resource_version
    batch.create_namespaced_job(NS, job_body(name, "true"))
    events = []
    w = watch.Watch()
    for event in w.stream(
        batch.list_namespaced_job,
        NS,
        resource_version=rv,
        field_selector=f"metadata.name={name}",
        timeout_seconds=20,
    ):
        events.append((event["type"], event["object"]))
        if condition(event["object"], "Complete") is not None:
            w.stop()
    types = [t for t, _ in events]
    assert types[0] == "ADDED", types
    assert set(types[1:]) == {"MODIFIED"}, types
    assert condition(events[-1][1], "Complete").status == "True"
    rvs = [int(obj.metadata.resource_version) for _, obj in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    assert all(isinstance(obj, client.V1Job) for _, obj in events)


def test_watch_times_out_cleanly(batch):
    """``timeout_seconds`` ends the stream without an error."""
    started = time.monotonic()
    events = list(
        watch.Watch().stream(
            batch.list_namespaced_job,
            NS,
            field_selector="metadata.name=nothing-here",
            timeout_seconds=1,
        )
    )
    assert events == []
    # It waited for the timeout, and ended (the upper bound is a hang guard).
    assert 0.8 < time.monotonic() - started < 30


# --- pods and logs ------------------------------------------------------------------------


def test_pods_list_watch_and_log(batch, core):
    """The Job's pod: watched to Succeeded, read with its owner reference, log read."""
    name = unique("py-pod")
    # stdout and stderr are separate pipes: the sleeps make the order across them defined.
    script = "echo line1; sleep 0.1; echo line2 >&2; sleep 0.1; echo line3"
    batch.create_namespaced_job(NS, job_body(name, script))
    phases = []
    pod = None
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod, NS, label_selector=f"job-name={name}", timeout_seconds=20
    ):
        pod = event["object"]
        phases.append(pod.status and pod.status.phase)  # see test_new_pod_has_pending_status
        if pod.status and pod.status.phase in ("Succeeded", "Failed"):
            w.stop()
    assert pod is not None, "no pod event"
    assert phases[-1] == "Succeeded", phases
    pod_name = pod.metadata.name
    assert pod_name.startswith(f"{name}-")

    read = core.read_namespaced_pod(pod_name, NS)
    owner = read.metadata.owner_references[0]
    assert (owner.api_version, owner.kind, owner.name) == ("batch/v1", "Job", name)
    assert owner.controller is True and owner.block_owner_deletion is True
    assert read.spec.node_name
    cs = read.status.container_statuses[0]
    assert cs.name == "main"
    assert cs.state.terminated.exit_code == 0
    assert cs.state.terminated.reason == "Completed"
    assert read.status.pod_ip

    listed = core.list_namespaced_pod(NS, label_selector=f"job-name={name}")
    assert [p.metadata.name for p in listed.items] == [pod_name]
    all_ns = core.list_pod_for_all_namespaces(field_selector=f"metadata.name={pod_name}")
    assert [p.metadata.name for p in all_ns.items] == [pod_name]

    log = core.read_namespaced_pod_log(pod_name, NS)
    assert log == "line1\nline2\nline3\n"
    assert core.read_namespaced_pod_log(pod_name, NS, container="main", tail_lines=1) == "line3\n"
    stamped = core.read_namespaced_pod_log(pod_name, NS, timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["line1", "line2", "line3"]


def test_new_pod_has_pending_status(batch, core):
    """Every pod the Job controller creates has ``status.phase`` from its first version on.

    The API server sets ``status: {phase: Pending, qosClass: …}`` on every pod it creates, so
    client code reading ``pod.status.phase`` from a watch's ADDED event works.
    (FIDELITY_BUGS.md #2.)
    """
    name = unique("py-podstatus")
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    batch.create_namespaced_job(NS, job_body(name, "true"))
    events = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod,
        NS,
        label_selector=f"job-name={name}",
        resource_version=rv,
        timeout_seconds=20,
    ):
        pod = event["object"]
        events.append((event["type"], pod.status and pod.status.phase, pod.status))
        if pod.status and pod.status.phase == "Succeeded":
            w.stop()
    assert events and events[0][0] == "ADDED", events
    assert events[0][1] == "Pending", f"the pod was created without status: {events[0]}"
    assert events[0][2].qos_class == "BestEffort"
    assert all(phase for _, phase, _ in events), [e[:2] for e in events]


def test_pod_log_follow_streams(batch, core):
    """``read_namespaced_pod_log(follow=True, _preload_content=False)`` streams until exit."""
    name = unique("py-follow")
    batch.create_namespaced_job(NS, job_body(name, "echo first; sleep 1; echo second"))

    def running_pod():
        for p in pods_of(core, name):
            statuses = (p.status and p.status.container_statuses) or []
            if statuses and statuses[0].state.running is not None:
                return p.metadata.name
        return None

    pod_name = poll(running_pod, what="a running pod")
    started = time.monotonic()
    resp = core.read_namespaced_pod_log(pod_name, NS, follow=True, _preload_content=False)
    assert resp.status == 200
    assert resp.headers.get("Content-Type", "").startswith("text/plain")
    chunks: list[tuple[float, bytes]] = []
    for chunk in resp.stream(64):
        chunks.append((time.monotonic() - started, chunk))
    resp.release_conn()
    data = b"".join(c for _, c in chunks)
    assert data == b"first\nsecond\n"
    first_at = next(t for t, c in chunks if b"first" in c)
    assert first_at < 0.9, f"'first' was not streamed before the container exited ({first_at})"
    assert chunks[-1][0] >= 0.3, "the stream ended before the container exited"


def test_pod_log_errors(core):
    """Logs of a missing pod: 404 NotFound as an ApiException."""
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod_log("no-such-pod", NS)
    assert info.value.status == 404
    assert info.value.reason == "Not Found"
    body = api_error(info.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'pods "no-such-pod" not found'


# --- delete with propagation --------------------------------------------------------------


def start_sleeping_job(batch, core, name: str) -> str:
    """Creates a Job whose pod sleeps, waits until it runs, returns the pod's name."""
    batch.create_namespaced_job(NS, job_body(name, "exec sleep 60"))

    def running():
        pods = pods_of(core, name)
        ok = pods and pods[0].status and pods[0].status.phase == "Running"
        return ok and pods[0].metadata.name

    return poll(running, what="the Job's pod to run")


def test_delete_background(batch, core):
    """``propagation_policy="Background"``: the Job goes at once, its pods soon after."""
    name = unique("py-bg")
    pod = start_sleeping_job(batch, core, name)
    # kubernetes 37 types DELETE responses as "object": the raw JSON as a dict.
    status = batch.delete_namespaced_job(name, NS, propagation_policy="Background")
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == name
    assert status["details"]["kind"] == "jobs" and status["details"]["group"] == "batch"
    with pytest.raises(ApiException) as info:
        batch.read_namespaced_job(name, NS)
    assert info.value.status == 404
    poll(lambda: not pods_of(core, name), timeout=30, what=f"pod {pod} to be collected")


def test_delete_foreground(batch, core):
    """``propagation_policy="Foreground"``: the Job stays (with ``foregroundDeletion``) until
    its pods are gone, then goes."""
    name = unique("py-fg")
    pod = start_sleeping_job(batch, core, name)
    resp = batch.delete_namespaced_job(name, NS, propagation_policy="Foreground")
    # The API server answers with the Job itself (a dict here) while it waits for its
    # dependents: deletionTimestamp set, finalizer foregroundDeletion.
    assert resp["kind"] == "Job", resp
    assert resp["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in resp["metadata"]["finalizers"]

    def job_gone():
        try:
            batch.read_namespaced_job(name, NS)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    poll(job_gone, timeout=30, what="the Job to be deleted")
    # The Job only goes after its dependents.
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod(pod, NS)
    assert info.value.status == 404
    assert pods_of(core, name) == []


def test_delete_pod_returns_pod(core, batch):
    """Deleting a pod returns the Pod (with a deletionTimestamp while it terminates)."""
    name = unique("py-delpod")
    pod = start_sleeping_job(batch, core, name)
    resp = core.delete_namespaced_pod(pod, NS, grace_period_seconds=5)
    assert isinstance(resp, client.V1Pod)
    assert resp.metadata.name == pod
    assert resp.metadata.deletion_timestamp is not None
    assert resp.metadata.deletion_grace_period_seconds == 5
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")
    poll(lambda: not pods_of(core, name), timeout=30, what="pods to be deleted")


# --- errors -------------------------------------------------------------------------------


def test_invalid_is_422(batch):
    """An invalid Job surfaces as ApiException 422 with reason Invalid and field causes."""
    name = unique("py-invalid")
    with pytest.raises(ApiException) as info:
        batch.create_namespaced_job(NS, job_body(name, "true", restart_policy="Always"))
    exc = info.value
    assert exc.status == 422
    assert exc.reason == "Unprocessable Entity"
    assert exc.headers["Content-Type"].startswith("application/json")
    body = api_error(exc)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["reason"] == "Invalid"
    assert body["code"] == 422
    assert body["message"] == (
        f'Job.batch "{name}" is invalid: spec.template.spec.restartPolicy: '
        'Required value: valid values: "OnFailure", "Never"'
    )
    details = body["details"]
    assert details["name"] == name and details["group"] == "batch" and details["kind"] == "Job"
    assert details["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": 'Required value: valid values: "OnFailure", "Never"',
            "field": "spec.template.spec.restartPolicy",
        }
    ]
    with pytest.raises(ApiException) as missing:
        batch.read_namespaced_job(name, NS)
    assert missing.value.status == 404


def test_already_exists_is_409(batch):
    """Creating the same Job twice: ApiException 409 AlreadyExists."""
    name = unique("py-dup")
    batch.create_namespaced_job(NS, job_body(name, "true"))
    with pytest.raises(ApiException) as info:
        batch.create_namespaced_job(NS, job_body(name, "true"))
    exc = info.value
    assert exc.status == 409
    assert exc.reason == "Conflict"
    body = api_error(exc)
    assert body["reason"] == "AlreadyExists"
    assert body["code"] == 409
    assert body["message"] == f'jobs.batch "{name}" already exists'
    assert body["details"]["name"] == name
    assert body["details"]["kind"] == "jobs"
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")


def test_stale_update_is_409_conflict(batch):
    """A replace with an old resourceVersion: ApiException 409 Conflict."""
    name = unique("py-conflict")
    job = batch.create_namespaced_job(NS, job_body(name, "true", suspend=True))
    batch.patch_namespaced_job(name, NS, {"metadata": {"labels": {"touched": "yes"}}})
    job.metadata.labels = {"stale": "yes"}
    with pytest.raises(ApiException) as info:
        batch.replace_namespaced_job(name, NS, job)
    exc = info.value
    assert exc.status == 409
    body = api_error(exc)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        f'Operation cannot be fulfilled on jobs.batch "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")


def test_not_found_is_404(batch):
    """Reading a missing Job: ApiException 404 NotFound with the exact message."""
    with pytest.raises(ApiException) as info:
        batch.read_namespaced_job("missing", NS)
    assert info.value.status == 404
    body = api_error(info.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'jobs.batch "missing" not found'
    assert body["details"] == {"name": "missing", "group": "batch", "kind": "jobs"}


def test_patch_job_merge(batch):
    """A merge patch from the client (dict body) changes labels and bumps resourceVersion."""
    name = unique("py-patch")
    job = batch.create_namespaced_job(NS, job_body(name, "true", suspend=True))
    patched = batch.patch_namespaced_job(
        name, NS, {"metadata": {"labels": {"extra": "1"}}, "spec": {"parallelism": 0}}
    )
    assert patched.metadata.labels == {"suite": "pyclient", "extra": "1"}
    assert patched.spec.parallelism == 0
    assert patched.metadata.generation == 2
    assert int(patched.metadata.resource_version) > int(job.metadata.resource_version)
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")


def test_concurrent_clients(batch):
    """Creates from several threads sharing one ApiClient all succeed."""
    names = [unique("py-conc") for _ in range(16)]
    errors: list[BaseException] = []

    def create(n):
        try:
            batch.create_namespaced_job(NS, job_body(n, "true", suspend=True))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    listed = {j.metadata.name for j in batch.list_namespaced_job(NS).items}
    assert set(names) <= listed
    for n in names:
        batch.delete_namespaced_job(n, NS, propagation_policy="Background")


# --- more of what the client does ---------------------------------------------------------


def test_expired_watch_raises_410(batch, local_cluster):
    """An expired watch (ERROR event with a 410 Expired Status) surfaces from
    ``watch.Watch().stream(..., timeout_seconds=…)`` as ``ApiException`` 410."""
    name = unique("py-expire")
    seen = threading.Event()
    result: dict = {}

    def consume():
        try:
            for event in watch.Watch().stream(
                batch.list_namespaced_job,
                NS,
                field_selector=f"metadata.name={name}",
                timeout_seconds=20,
            ):
                result.setdefault("types", []).append(event["type"])
                seen.set()
        except ApiException as e:
            result["error"] = e
        finally:
            seen.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    # The ADDED event proves the watch is open; then expire it.
    deadline = time.monotonic() + 10
    while not seen.is_set() and time.monotonic() < deadline:
        batch.create_namespaced_job(NS, job_body(name, "true", suspend=True))
        seen.wait(2)
    assert seen.is_set(), "the watch saw no event"
    local_cluster.expire_watches()
    t.join(15)
    assert not t.is_alive(), "the watch did not end after expire_watches()"
    assert result["types"][0] == "ADDED"
    err = result.get("error")
    assert err is not None, f"no ApiException; events {result.get('types')}"
    assert err.status == 410
    assert err.reason.startswith("Expired: "), err.reason
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")


def test_dry_run_stores_nothing(batch):
    """``dry_run="All"``: 201 with server-set fields, nothing stored."""
    name = unique("py-dry")
    job = batch.create_namespaced_job(NS, job_body(name, "true"), dry_run="All")
    assert job.metadata.name == name
    assert job.metadata.uid and job.spec.backoff_limit == 0
    assert job.spec.template.metadata.labels["job-name"] == name
    with pytest.raises(ApiException) as info:
        batch.read_namespaced_job(name, NS)
    assert info.value.status == 404


def test_generate_name(batch):
    """``metadata.generateName``: the server picks ``<prefix><5 chars>``."""
    body = job_body("unused", "true", suspend=True)
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "py-gen-"
    job = batch.create_namespaced_job(NS, body)
    name = job.metadata.name
    assert name.startswith("py-gen-") and len(name) == len("py-gen-") + 5
    assert set(name[len("py-gen-") :]) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert job.metadata.generate_name == "py-gen-"
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")


def test_json_patch_and_set_selectors(batch):
    """A JSON patch (list body) and set-based label selectors (``in``, ``notin``, ``!key``)."""
    name = unique("py-jpatch")
    batch.create_namespaced_job(NS, job_body(name, "true", suspend=True))
    patched = batch.patch_namespaced_job(
        name, NS, [{"op": "add", "path": "/metadata/labels/tier", "value": "gold"}]
    )
    assert patched.metadata.labels == {"suite": "pyclient", "tier": "gold"}

    def names(selector: str) -> set[str]:
        return {
            j.metadata.name for j in batch.list_namespaced_job(NS, label_selector=selector).items
        }

    assert name in names("tier in (gold,silver)")
    assert name not in names("tier notin (gold)")
    assert name in names("suite=pyclient,tier")
    assert name not in names("!tier")
    with pytest.raises(ApiException) as info:
        batch.list_namespaced_job(NS, label_selector="tier in (gold")
    assert info.value.status == 400
    assert api_error(info.value)["reason"] == "BadRequest"
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")


def test_bad_token_is_401(local_cluster):
    """A wrong bearer token: ApiException 401 Unauthorized."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=local_cluster.kubeconfig, client_configuration=cfg)
    cfg.api_key = {"BearerToken": "Bearer wrong-token"}
    cfg.refresh_api_key_hook = None  # it would put the kubeconfig's token back
    with client.ApiClient(cfg) as api:
        with pytest.raises(ApiException) as info:
            client.BatchV1Api(api).list_namespaced_job(NS)
    assert info.value.status == 401
    body = api_error(info.value)
    assert body["reason"] == "Unauthorized" and body["message"] == "Unauthorized"
