"""The bad-input corpus (tests/bad_inputs/cases.toml): every malformed job spec, kubeconfig and
argument raises its documented exception with a message naming the file and the field, without
hanging, never a panic, with bounded memory; the CLI turns each into exit code 2 and one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

import pytest
from kube_cluster import kjenv_cli

from kjenv import ClusterConfigError, JobSpecError, KubernetesJobEnvironment
from kjenv.cli import cli_words
from kjenv.cli import main as cli_main

CORPUS = Path(__file__).parent / "bad_inputs"


def _load_cases() -> dict[str, list[dict[str, Any]]]:
    """cases.toml and every cases-*.toml beside it (one per class of bad input), merged."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(CORPUS.glob("cases*.toml")):
        for section, cases in tomllib.loads(path.read_text()).items():
            merged.setdefault(section, []).extend(cases)
    return merged


CASES = _load_cases()
MINIMAL = str(Path(__file__).parent / "fixtures" / "minimal.yaml")
# A kubeconfig that resolves: execute() gets past the configuration and fails on its arguments.
GOOD_KUBECONFIG = str(CORPUS / "kubeconfigs" / "valid_for_context_argument.yaml")
# A bound that only catches a hang: each case is refused in milliseconds (bench/ measures speed).
HANG_GUARD_SECONDS = 30.0
# Messages are for people: one line and short, however large the input.
MAX_MESSAGE = 1000
EXCEPTIONS: dict[str, type[BaseException]] = {
    "JobSpecError": JobSpecError,
    "ClusterConfigError": ClusterConfigError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "FileNotFoundError": FileNotFoundError,
}
MB = 1024 * 1024


# -- inputs built at run time ---------------------------------------------------------------

JOB = "apiVersion: batch/v1\nkind: Job\n"


def _alias_bomb(indent: str = "") -> str:
    """Billion laughs: nine levels of nine aliases each (387 million strings if expanded)."""
    lines = [f'{indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{indent}{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def _kubeconfig(**over: str) -> str:
    text = (CORPUS / "kubeconfigs" / "valid_for_context_argument.yaml").read_text()
    for old, new in over.items():
        text = text.replace(old, new)
    return text


GENERATORS: dict[str, Callable[[], Any]] = {
    "spec_file_50mb": lambda: JOB + "metadata:\n  annotations:\n    x: " + "a" * (50 * MB) + "\n",
    "spec_text_50mb": lambda: JOB + "metadata:\n  annotations:\n    x: " + "a" * (50 * MB) + "\n",
    "flow_nesting_10000": lambda: JOB + "spec: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "flow_mapping_nesting_10000": lambda: JOB + "spec: " + "{a: " * 10_000 + "1" + "}" * 10_000,
    "block_nesting_2000": lambda: (
        JOB + "".join(f"{' ' * i}a:\n" for i in range(2000)) + " " * 2000 + "a: 1\n"
    ),
    "dict_nesting_10000": lambda: _nested_dict(10_000),
    "dict_containing_itself": lambda: _self_containing(),
    "alias_bomb": lambda: JOB + "metadata:\n  annotations:\n" + _alias_bomb("    "),
    "alias_bomb_in_env": lambda: (
        JOB
        + "x: &x {name: A, value: b}\n"
        + "spec:\n  template:\n    spec:\n      containers:\n      - name: flow\n        env: "
        + "["
        + ",".join(["*x"] * 120_000)
        + "]\n"
    ),
    "huge_kind": lambda: "apiVersion: batch/v1\nkind: " + "x" * (7 * MB) + "\n",
    "huge_name": lambda: JOB + "metadata:\n  name: " + "n" * (7 * MB) + "\n",
    "huge_label_key": lambda: JOB + "metadata:\n  labels:\n    ? " + "k" * MB + "\n    : 5\n",
    "huge_env_value_type": lambda: (
        JOB
        + "spec:\n  template:\n    spec:\n      containers:\n      - name: flow\n        env:\n"
        + "        - name: A\n          value: ["
        + ",".join(["v" * 1000] * 5000)
        + "]\n"
    ),
    "many_documents": lambda: (JOB + "---\n") * 100_000,
    "kubeconfig_50mb": lambda: _kubeconfig() + "preferences: {x: " + "a" * (50 * MB) + "}\n",
    "kubeconfig_alias_bomb": lambda: _kubeconfig() + "extensions:\n" + _alias_bomb("  - "),
    "kubeconfig_nesting_10000": lambda: _kubeconfig() + "x: " + "[" * 10_000 + "]" * 10_000,
    "kubeconfig_huge_context_name": lambda: _kubeconfig(
        **{"current-context: dev": "current-context: " + "c" * (4 * MB)}
    ),
}


def _nested_dict(depth: int) -> dict:
    spec: dict = {}
    for _ in range(depth):
        spec = {"spec": spec}
    return spec


def _self_containing() -> dict:
    spec: dict = {"apiVersion": "batch/v1", "kind": "Job"}
    spec["spec"] = spec
    return spec


def materialize(case: dict, tmp_path: Path) -> Any:
    """The generated input of `case`: a file path (file, kubeconfig) or the object itself."""
    value = GENERATORS[case["name"]]()
    if case["via"] in ("file", "kubeconfig"):
        path = tmp_path / f"{case['name']}.yaml"
        path.write_text(value)
        return str(path)
    return value


# -- running a case -------------------------------------------------------------------------


def _env(init: dict[str, Any]) -> KubernetesJobEnvironment:
    init = dict(init)
    spec_file = init.get("job_spec_file")
    if isinstance(spec_file, str) and not spec_file.startswith("/"):
        init["job_spec_file"] = str(CORPUS / spec_file)
    if "job_spec" not in init and "job_spec_file" not in init:
        init["job_spec_file"] = MINIMAL
    return KubernetesJobEnvironment(**init)


def call_argument_case(case: dict) -> None:
    init = case.get("init", {})
    if case["call"] == "execute":
        init = {**init, "kubeconfig": GOOD_KUBECONFIG}
    env = _env(init)
    if case["call"] == "render":
        env.render(**case["kwargs"])
    elif case["call"] == "execute":
        env.execute(**case["kwargs"])


def call_generated_case(case: dict, value: Any) -> None:
    via = case["via"]
    if via == "file":
        KubernetesJobEnvironment(value).render(image="img")
    elif via in ("text", "dict"):
        KubernetesJobEnvironment(job_spec=value).render(image="img")
    else:
        KubernetesJobEnvironment(kubeconfig=value).execute(image="img")


def call_spec_case(case: dict) -> None:
    KubernetesJobEnvironment(str(CORPUS / "specs" / case["file"])).render(image="img")


def call_kubeconfig_case(case: dict) -> None:
    path = str(CORPUS / "kubeconfigs" / case["file"])
    env = KubernetesJobEnvironment(MINIMAL, kubeconfig=path, context=case.get("context"))
    env.execute(image="img")


def expect_failure(fn: Callable[[], None]) -> tuple[BaseException, float]:
    """Run `fn`; return what it raised and how long it took. A panic fails the test."""
    start = time.perf_counter()
    try:
        fn()
    except BaseException as exc:  # pyo3's PanicException derives from BaseException
        elapsed = time.perf_counter() - start
        if type(exc).__name__ == "PanicException":
            pytest.fail(f"kjenv panicked: {exc}")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return exc, elapsed
    pytest.fail("no exception raised")


def check_exception(exc: BaseException, case: dict, elapsed: float) -> str:
    expected = EXCEPTIONS[case["raises"]]
    assert type(exc) is expected, f"{type(exc).__name__} ({exc}), expected {case['raises']}"
    message = str(exc)
    # pyo3 names a mistyped argument in a note: "while processing 'namespace'".
    named = " ".join([message, *getattr(exc, "__notes__", [])])
    assert case["message"] in named, f"{case['message']!r} not in {named!r}"
    assert "\n" not in message, f"multi-line message: {message!r}"
    assert len(message) <= MAX_MESSAGE, f"message of {len(message)} characters"
    assert elapsed < HANG_GUARD_SECONDS, f"took {elapsed:.2f}s"
    return message


def _ids(section: str, key: str) -> list[str]:
    return [c[key] for c in CASES[section]]


def test_the_corpus_is_large_and_every_file_has_a_case():
    assert sum(len(v) for v in CASES.values()) >= 60
    for section, folder in (("spec", "specs"), ("kubeconfig", "kubeconfigs")):
        listed = {c["file"] for c in CASES[section]}
        on_disk = {p.name for p in (CORPUS / folder).iterdir()}
        assert listed == on_disk, (
            f"{folder}: without a case {on_disk - listed}, missing {listed - on_disk}"
        )
    assert set(_ids("generated", "name")) == set(GENERATORS)


# -- the Python API -------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["spec"], ids=_ids("spec", "file"))
def test_bad_spec_file(case):
    path = str(CORPUS / "specs" / case["file"])
    exc, elapsed = expect_failure(lambda: call_spec_case(case))
    message = check_exception(exc, case, elapsed)
    assert message.startswith(path + ":"), message
    assert exc.file == path
    assert exc.field == (case["field"] or None)
    if case["field"]:
        assert f": {case['field']}: " in message
    if "line" in case:
        assert (exc.line, exc.column is not None) == (case["line"], True)
        assert message.startswith(f"{path}:{case['line']}:{exc.column}: ")


@pytest.mark.parametrize("case", CASES["kubeconfig"], ids=_ids("kubeconfig", "file"))
def test_bad_kubeconfig(case):
    path = str(CORPUS / "kubeconfigs" / case["file"])
    exc, elapsed = expect_failure(lambda: call_kubeconfig_case(case))
    message = check_exception(exc, case, elapsed)
    assert path in message
    # A kubeconfig holds credentials: an error never quotes it.
    assert "not-a-real-token" not in message


@pytest.mark.parametrize(
    "case", CASES["argument"], ids=[f"{c['call']}-{c['message'][:30]}" for c in CASES["argument"]]
)
def test_bad_argument(case):
    exc, elapsed = expect_failure(lambda: call_argument_case(case))
    check_exception(exc, case, elapsed)


@pytest.mark.parametrize("case", CASES["generated"], ids=_ids("generated", "name"))
def test_generated_bad_input(case, tmp_path):
    value = materialize(case, tmp_path)
    exc, elapsed = expect_failure(lambda: call_generated_case(case, value))
    message = check_exception(exc, case, elapsed)
    if case["via"] in ("file", "kubeconfig"):
        assert value in message


def test_bounded_memory(tmp_path):
    """The whole corpus in a fresh process, once and then three times more: once the inputs
    exist (the 50 MB ones included) the peak RSS grows by little, so no input makes kjenv
    allocate without bound (alias bombs, deep nesting, huge strings), and repeating the corpus
    does not accumulate memory."""
    script = textwrap.dedent(
        f"""
        import gc, json, resource, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_bad_inputs as t
        tmp = Path({str(tmp_path)!r})
        runs = [(t.call_spec_case, c) for c in t.CASES["spec"]]
        runs += [(t.call_kubeconfig_case, c) for c in t.CASES["kubeconfig"]]
        runs += [(t.call_argument_case, c) for c in t.CASES["argument"]]
        made = [(c, t.materialize(c, tmp)) for c in t.CASES["generated"]]
        gc.collect()
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        def once():
            failures = 0
            for fn, case in runs:
                try:
                    fn(case)
                except Exception:
                    failures += 1
            for case, value in made:
                try:
                    t.call_generated_case(case, value)
                except Exception:
                    failures += 1
            return failures
        before = peak()
        failures = [once()]
        first = peak()
        failures += [once() for _ in range(3)]
        print(json.dumps({{"before": before, "first": first, "after": peak(),
                          "failures": failures, "cases": len(runs) + len(made)}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failures"] == [result["cases"]] * 4, result
    # The largest input is 50 MB and is refused before it is read; the largest one parsed is
    # 7 MB. An expanded alias bomb or a copied 50 MB input would blow far past this.
    growth = result["first"] - result["before"]
    assert growth < 64 * MB, f"the corpus raised the peak RSS by {growth / MB:.0f} MB"
    # Going through it three times more leaves the peak where it was (nothing accumulates).
    again = result["after"] - result["first"]
    assert again < 16 * MB, f"three more passes raised the peak RSS by {again / MB:.0f} MB"


# -- the command line -----------------------------------------------------------------------


def run_cli(capsys, argv: list[str]) -> str:
    """`kjenv ARGV` in this process: exit code 2, nothing on stdout, one line on stderr."""
    code = cli_main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}: {err}"
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("kjenv: error: ")
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("case", CASES["spec"], ids=_ids("spec", "file"))
def test_cli_render_bad_spec(capsys, case):
    path = str(CORPUS / "specs" / case["file"])
    err = run_cli(capsys, ["render", path, "--image", "img"])
    assert path in err
    assert " ".join(case["message"].split()) in err
    if case["field"]:
        assert case["field"] in err


@pytest.mark.parametrize("case", CASES["kubeconfig"], ids=_ids("kubeconfig", "file"))
def test_cli_submit_bad_kubeconfig(capsys, case):
    path = str(CORPUS / "kubeconfigs" / case["file"])
    argv = ["submit", MINIMAL, "--image", "img", "--kubeconfig", path]
    if "context" in case:
        argv += ["--context", case["context"]]
    err = run_cli(capsys, argv)
    assert path in err and cli_words(case["message"]) in err


@pytest.mark.parametrize(
    "case",
    [c for c in CASES["argument"] if "cli" in c],
    ids=[c["cli"][-1] if c["cli"] else "no-image" for c in CASES["argument"] if "cli" in c],
)
def test_cli_render_bad_argument(capsys, case):
    err = run_cli(capsys, ["render", MINIMAL, *case["cli"]])
    assert cli_words(case["message"]) in err


@pytest.mark.parametrize(
    "case", [c for c in CASES["generated"] if c["via"] == "file"], ids=lambda c: c["name"]
)
def test_cli_render_generated(capsys, case, tmp_path):
    path = materialize(case, tmp_path)
    err = run_cli(capsys, ["render", path, "--image", "img"])
    assert path in err and len(err) <= MAX_MESSAGE + 20


def test_cli_missing_spec_file(capsys):
    err = run_cli(capsys, ["render", "/nonexistent/kjenv/job.yaml", "--image", "img"])
    assert "/nonexistent/kjenv/job.yaml" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["render", str(CORPUS / "specs" / "syntax_unclosed_quote.yaml"), "--image", "img"],
        ["render", str(CORPUS / "specs" / "binary.bin"), "--image", "img"],
        ["submit", MINIMAL, "--image", "img", "--kubeconfig", GOOD_KUBECONFIG, "--context", "x"],
    ],
    ids=["syntax", "binary", "kubeconfig"],
)
def test_cli_entry_point_in_a_process(argv):
    """The real entry point (`python -m kjenv`): exit 2, one line, no traceback."""
    out = kjenv_cli(*argv, timeout=30)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("kjenv: error: "), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
