"""The KubernetesJobEnvironment class: constructor, attributes, pickling, serialize, repr."""

from __future__ import annotations

import logging
import os
import pathlib
import pickle
import uuid

import cloudpickle
import pytest

import kjenv
from kjenv import KjenvError, KubernetesJobEnvironment


def test_public_names_and_version():
    assert set(kjenv.__all__) >= {
        "KubernetesJobEnvironment",
        "KjenvError",
        "JobSpecError",
        "ClusterConfigError",
        "KubeApiError",
        "JobFailedError",
        "JobTimeoutError",
    }
    assert kjenv.__version__ == "0.1.0"


def test_exception_tree():
    assert issubclass(kjenv.JobSpecError, (KjenvError, ValueError))
    assert issubclass(kjenv.JobSpecError, ValueError)
    assert issubclass(kjenv.ClusterConfigError, OSError)
    assert issubclass(kjenv.JobTimeoutError, TimeoutError)
    for cls in (kjenv.KubeApiError, kjenv.JobFailedError, kjenv.ClusterConfigError):
        assert issubclass(cls, KjenvError)
    assert kjenv.JobSpecError.__module__ == "kjenv"


def test_no_spec_is_valid():
    env = KubernetesJobEnvironment()
    assert env.job_spec_file is None
    assert env.job_spec == {"apiVersion": "batch/v1", "kind": "Job"}
    assert env.labels == set()
    assert env.metadata == {}
    assert env.executor is None and env.on_start is None and env.on_exit is None
    assert env.unique_job_name is False


def test_attributes(fixture_path):
    start, stop = (lambda: 1), (lambda: 2)
    env = KubernetesJobEnvironment(
        fixture_path("seed_job_spec.yaml"),
        unique_job_name=True,
        executor="exe",
        labels=["b", "a", "a"],
        on_start=start,
        on_exit=stop,
        metadata={"image": "repo/img:1"},
    )
    assert env.job_spec_file == fixture_path("seed_job_spec.yaml")
    assert os.path.isabs(env.job_spec_file)
    assert env.unique_job_name is True
    assert env.executor == "exe"
    assert env.labels == {"a", "b"}
    assert env.on_start is start and env.on_exit is stop
    assert env.metadata == {"image": "repo/img:1"}
    assert env.dependencies == ["kjenv"]
    assert isinstance(env.logger, logging.Logger)
    assert env.logger.name == "kjenv.KubernetesJobEnvironment"
    assert uuid.UUID(env.identifier_label).version == 4
    assert env.identifier_label == env.identifier_label
    assert env.identifier_label != KubernetesJobEnvironment().identifier_label
    env.setup()
    env.setup(object())


def test_job_spec_file_accepts_pathlike_and_relative(fixture_path, monkeypatch):
    path = pathlib.Path(fixture_path("minimal.yaml"))
    assert KubernetesJobEnvironment(path).job_spec_file == str(path)
    monkeypatch.chdir(path.parent)
    assert KubernetesJobEnvironment("minimal.yaml").job_spec_file == str(path)


def test_job_spec_is_a_copy(fixture_path):
    env = KubernetesJobEnvironment(fixture_path("seed_job_spec.yaml"))
    spec = env.job_spec
    spec["metadata"]["name"] = "changed"
    assert env.job_spec["metadata"]["name"] == "my-prefect-job"


def test_job_spec_from_text_and_dict():
    text = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: from-text\n"
    assert KubernetesJobEnvironment(job_spec=text).job_spec["metadata"]["name"] == "from-text"
    spec = {"metadata": {"name": "from-dict"}}
    env = KubernetesJobEnvironment(job_spec=spec)
    assert env.job_spec["metadata"]["name"] == "from-dict"
    assert env.job_spec["kind"] == "Job"
    assert spec == {"metadata": {"name": "from-dict"}}, "the caller's dict is not modified"


def test_job_spec_bad_arguments(fixture_path):
    with pytest.raises(ValueError, match="not both"):
        KubernetesJobEnvironment(fixture_path("minimal.yaml"), job_spec="kind: Job")
    with pytest.raises(TypeError, match="YAML text or a dict, got int"):
        KubernetesJobEnvironment(job_spec=5)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        KubernetesJobEnvironment("nope.yaml")


def test_instances_accept_extra_attributes_and_subclass():
    class Custom(KubernetesJobEnvironment):
        def __init__(self, extra, **kwargs):
            super().__init__(**kwargs)
            self.extra = extra

    env = Custom(7, job_spec={"metadata": {"name": "sub"}}, labels=["x"])
    assert env.extra == 7 and env.labels == {"x"}
    assert env.job_spec["metadata"]["name"] == "sub"
    env.anything = "ok"
    assert env.anything == "ok"


class _Sub(KubernetesJobEnvironment):
    pass


def _callback():
    return "called"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_every_protocol(fixture_path, protocol):
    env = _Sub(
        fixture_path("sidecar_init.yaml"),
        unique_job_name=True,
        labels=["l"],
        on_start=_callback,
        metadata={"image": "i:1"},
        namespace="ns",
    )
    env.extra = {"k": 1}
    copy = pickle.loads(pickle.dumps(env, protocol=protocol))
    assert type(copy) is _Sub
    assert copy.job_spec == env.job_spec
    assert copy.job_spec_file == env.job_spec_file
    assert copy.unique_job_name is True
    assert copy.labels == {"l"}
    assert copy.on_start() == "called"
    assert copy.metadata == {"image": "i:1"}
    assert copy.namespace == "ns"
    assert copy.extra == {"k": 1}
    assert copy.identifier_label != env.identifier_label, "identifier is regenerated"


def test_cloudpickle_with_lambdas(fixture_path):
    env = KubernetesJobEnvironment(
        fixture_path("minimal.yaml"), on_start=lambda: "start", on_exit=lambda: "exit"
    )
    copy = cloudpickle.loads(cloudpickle.dumps(env))
    assert copy.on_start() == "start" and copy.on_exit() == "exit"
    assert copy.job_spec == env.job_spec


def test_pickle_survives_deleted_spec_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("metadata:\n  name: gone-later\n")
    data = pickle.dumps(KubernetesJobEnvironment(str(path)))
    path.unlink()
    assert pickle.loads(data).job_spec["metadata"]["name"] == "gone-later"


def test_serialize_never_contains_the_spec(fixture_path):
    env = KubernetesJobEnvironment(
        fixture_path("sidecar_init.yaml"), labels=["b", "a"], metadata={"m": 1}
    )
    assert env.serialize() == {
        "type": "KubernetesJobEnvironment",
        "labels": ["a", "b"],
        "metadata": {"m": 1},
    }


def test_repr(fixture_path):
    env = KubernetesJobEnvironment(fixture_path("minimal.yaml"), labels=["a"])
    assert repr(env) == (
        f"<KubernetesJobEnvironment: job_spec_file='{fixture_path('minimal.yaml')}' labels=['a']>"
    )
    assert repr(_Sub()) == "<_Sub: job_spec_file=None labels=[]>"


def test_run_needs_prefect_or_runs_the_flow():
    prefect = pytest.importorskip("prefect")
    calls = []

    @prefect.task
    def value():
        return 3

    with prefect.Flow("run-here") as flow:
        value()
    env = KubernetesJobEnvironment(
        on_start=lambda: calls.append("start"), on_exit=lambda: calls.append("exit")
    )
    state = env.run(flow)
    assert state.is_successful()
    assert calls == ["start", "exit"]


def test_run_calls_on_exit_when_the_flow_fails():
    prefect = pytest.importorskip("prefect")
    calls = []

    @prefect.task
    def boom():
        raise RuntimeError("boom")

    with prefect.Flow("failing") as flow:
        boom()
    env = KubernetesJobEnvironment(on_exit=lambda: calls.append("exit"))
    assert env.run(flow).is_failed()
    assert calls == ["exit"]


def test_run_without_prefect_is_a_clear_import_error():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['prefect'] = None\n"
        "from kjenv import KubernetesJobEnvironment\n"
        "try:\n    KubernetesJobEnvironment().run(object())\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    ).stdout
    assert "Prefect is not installed" in out and "uv pip install 'kjenv[prefect]'" in out


def test_run_with_a_broken_prefect_names_its_import_error(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "__init__.py").write_text("raise ImportError('a broken install')\n")
    code = (
        "from kjenv import KubernetesJobEnvironment\n"
        "try:\n    KubernetesJobEnvironment().run(object())\n"
        "except ImportError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    ).stdout
    assert "Prefect is installed but does not import: ImportError: a broken install" in out
    assert "not installed" not in out
