"""S3 storage, end to end on the local cluster: Prefect's S3 storage uploads the flow to moto's
S3 server (in this process, on 127.0.0.1, reached through the storage's ``client_options``), and
the pod downloads it from there with credentials that reach it only as the storage's secret
(``AWS_CREDENTIALS``, resolved in the pod from a Kubernetes Secret).

This file runs in its own environment (``scripts/test`` makes ``.venv-s3`` from
requirements-s3.txt): botocore needs python-dateutil < 3, the kubernetes client of the main
suite needs >= 3. The local cluster's pods run this environment's ``python``.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import urllib.request
import uuid
import warnings

import boto3
import cloudpickle
import pytest
import yaml
from moto.server import ThreadedMotoServer

from kjenv import KubernetesJobEnvironment

cloudpickle.register_pickle_by_value(sys.modules[__name__])

ACCESS_KEY = "AKIAKJENVTESTONLY0001"
SECRET_KEY = "kjenv-s3-secret-key-value-5d1c"


@pytest.fixture
def s3_endpoint():
    """moto's S3 server on a free port of 127.0.0.1; stopped with the test."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def create_secret(cluster, name: str, data: dict[str, str]) -> None:
    """POST a Secret to the cluster with its kubeconfig's CA and token."""
    with open(cluster.kubeconfig) as f:
        config = yaml.safe_load(f)
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    tls = ssl.create_default_context(cadata=ca.decode())
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
    request = urllib.request.Request(
        f"{cluster.url}/api/v1/namespaces/{cluster.namespace}/secrets",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {cluster.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=tls, timeout=60) as answer:
        assert answer.status == 201


def test_s3_storage_flow_runs_in_the_pod_with_its_credentials(local_cluster, s3_endpoint):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from prefect import Flow, task
        from prefect.storage import S3

    bucket = f"kjenv-flows-{uuid.uuid4().hex[:8]}"
    client_options = {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}
    creds = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}
    s3 = boto3.client("s3", **client_options, **creds)
    s3.create_bucket(Bucket=bucket)

    # The pod gets the credentials as Prefect's local secret AWS_CREDENTIALS (the name Prefect's
    # boto3 helper reads), from a Kubernetes Secret: no value of them is in the Job.
    secret = f"aws-{bucket}"
    aws_credentials = json.dumps({"ACCESS_KEY": ACCESS_KEY, "SECRET_ACCESS_KEY": SECRET_KEY})
    create_secret(local_cluster, secret, {"credentials": aws_credentials})
    from_secret = {"secretKeyRef": {"name": secret, "key": "credentials"}}
    spec = {
        "metadata": {"name": "s3-storage"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "flow",
                            "env": [
                                {
                                    "name": "PREFECT__CONTEXT__SECRETS__AWS_CREDENTIALS",
                                    "valueFrom": from_secret,
                                }
                            ],
                        }
                    ]
                }
            },
        },
    }
    env = KubernetesJobEnvironment(
        job_spec=json.dumps(spec), unique_job_name=True, kubeconfig=local_cluster.kubeconfig
    )

    @task
    def hello():
        print("hello from s3 storage")

    storage = S3(bucket=bucket, client_options=client_options, secrets=["AWS_CREDENTIALS"])
    with Flow("s3-flow", environment=env, storage=storage) as flow:
        hello()
    key = flow.storage.add_flow(flow)
    # Prefect's boto3 helper takes the credentials from context, as the pod will.
    import prefect

    with prefect.context(secrets={"AWS_CREDENTIALS": json.loads(aws_credentials)}):
        flow.storage.build()
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0, "the flow was uploaded"

    job = env.render(flow, image="i")
    container = job["spec"]["template"]["spec"]["containers"][0]
    description = {e["name"]: e.get("value") for e in container["env"]}["KJENV_FLOW_STORAGE"]
    described = json.loads(description)
    assert described["storage"]["type"] == "S3"
    assert described["storage"]["client_options"]["endpoint_url"] == s3_endpoint
    assert described["storage"]["secrets"] == ["AWS_CREDENTIALS"]
    assert SECRET_KEY not in json.dumps(job) and ACCESS_KEY not in json.dumps(job)

    run = env.execute(flow, image="local/flows:s3")
    try:
        run.wait(timeout=300)
        logs = run.logs()
        assert "hello from s3 storage" in logs
        assert f"Downloading flow from s3://{bucket}/{key}" in logs
        assert SECRET_KEY not in logs
    finally:
        run.delete()
