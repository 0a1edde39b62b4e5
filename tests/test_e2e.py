"""End to end: execute → Job → pod → run_flow, as the documentation describes, on the local
cluster and (with ``KJENV_TEST_KUBECONFIG``) on a real control plane."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import cloudpickle
import kube_cluster
import pytest
from kube_cluster import kube_fixture  # noqa: F401 (the `kube` fixture: local, and real if set)

from kjenv import JobFailedError, KubernetesJobEnvironment

ROOT = Path(__file__).parent.parent
SEED_SPEC = str(ROOT / "examples" / "job_spec.yaml")

# Tasks defined here travel to the pod by value (the pod cannot import this test module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def prefect():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("prefect")


def seed_flow(prefect, env, storage_dir):
    from prefect import Flow, task
    from prefect.storage import Local

    @task
    def get_value():
        return "Example!"

    @task
    def output_value(value):
        print(value)

    flow = Flow(
        "Kubernetes Job Environment w/ Resource Requests & Limits",
        environment=env,
        storage=Local(directory=str(storage_dir)),
    )
    output_value.set_upstream(get_value, flow=flow)
    output_value.bind(value=get_value, flow=flow)
    flow.storage.add_flow(flow)
    return flow


def test_seed_example_flow_runs_as_a_job(prefect, kube, tmp_path, capfd):
    env = KubernetesJobEnvironment(
        job_spec_file=SEED_SPEC,
        unique_job_name=True,
        metadata={"image": "local/flows:seed"},
        kubeconfig=kube.kubeconfig,
        namespace=kube.namespace,
    )
    flow = seed_flow(prefect, env, tmp_path)
    run = flow.environment.execute(flow)
    run.wait(timeout=60, stream_logs=True)
    assert "Example!" in capfd.readouterr().out, "stream_logs printed the flow's output"
    assert "Example!" in run.logs()
    status = run.status()
    assert status["phase"] == "Succeeded" and status["succeeded"] == 1
    container = status["pods"][0]["containers"][0]
    assert container["name"] == "flow-container" and container["exit_code"] == 0
    run.delete()


def test_failing_flow_fails_the_job_with_its_log_tail(prefect, kube, tmp_path):
    from prefect import Flow, task
    from prefect.storage import Local

    @task
    def explode():
        raise RuntimeError("the flow broke on purpose")

    env = KubernetesJobEnvironment(
        job_spec="metadata:\n  name: failing-flow\nspec:\n  backoffLimit: 0\n",
        unique_job_name=True,
        metadata={"image": "local/flows:fail"},
        kubeconfig=kube.kubeconfig,
        namespace=kube.namespace,
    )
    with Flow("failing", environment=env, storage=Local(directory=str(tmp_path))) as flow:
        explode()
    flow.storage.add_flow(flow)
    run = env.execute(flow)
    with pytest.raises(JobFailedError) as info:
        run.wait(timeout=60)
    err = info.value
    assert err.reason == "BackoffLimitExceeded"
    assert err.exit_code == 1
    assert "the flow broke on purpose" in str(err)
    assert "the flow broke on purpose" in err.log_tail
    run.delete()


def kjenv_cli(*args, timeout=120):
    return kube_cluster.kjenv_cli(*args, timeout=timeout, cwd=ROOT)


def test_kjenv_run_local_runs_the_example_file(prefect):
    result = kjenv_cli("run", "examples/flow.py", "--local", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert "Example!" in result.stdout
    assert "outcome:  succeeded" in result.stdout


def test_kjenv_run_needs_the_flow_path_on_a_real_cluster(prefect):
    result = kjenv_cli("run", "examples/flow.py")
    assert result.returncode == 2
    assert "--flow-file-path" in result.stderr


def test_kjenv_run_bad_flow_file_is_exit_2(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    result = kjenv_cli("run", str(bad), "--local")
    assert result.returncode == 2
    assert "no flow in" in result.stderr
    assert kjenv_cli("run", str(tmp_path / "missing.py"), "--local").returncode == 2


def test_demo_runs_the_seed_example(prefect):
    result = kjenv_cli("demo", timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Prefect 0.15" in out
    assert "Example!" in out
    for field in ("job:      default/my-prefect-job", "pods:", "duration:", "outcome:  succeeded"):
        assert field in out


def test_demo_without_prefect_runs_the_plain_flow():
    code = "import sys; sys.modules['prefect'] = None; from kjenv.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "demo"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "plain Python; Prefect is not installed" in result.stdout
    assert "Example!" in result.stdout


def test_demo_with_a_broken_prefect_names_its_import_error(tmp_path):
    # Prefect 0.15 on Python 3.12+ without setuptools: installed, but its import fails.
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'distutils'\", name='distutils')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "kjenv", "demo"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "Prefect is installed but does not import" in first, first
    assert "No module named 'distutils'" in first and "pip install setuptools" in first, first
    assert "not installed" not in first
    assert "Example!" in result.stdout
