"""The ``kjenv`` command line: render, submit, run, run-flow, check, cluster and demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from kjenv import _common
from kjenv._common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"kjenv: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


# The library's messages name Python arguments; on the command line the flags stand for them.
_CLI_WORDS = (
    (
        'pass image=..., set metadata={"image": ...} on the environment, use Docker storage, '
        "or set PREFECT__CONTEXT__IMAGE",
        "pass --image or set PREFECT__CONTEXT__IMAGE",
    ),
    ("pass image=...", "pass --image"),
    ("pass context=...", "pass --context"),
    ("pass kubeconfig=...", "pass --kubeconfig"),
    ("the image argument", "--image"),
    ("the namespace argument", "--namespace"),
    ("the flow_run_id argument", "--flow-run-id"),
)


def cli_words(text: str) -> str:
    """``text`` with the library's Python argument names replaced by the CLI's flags."""
    for python, cli in _CLI_WORDS:
        text = text.replace(python, cli)
    return text


def one_line(exc: BaseException) -> str:
    """An exception's message as one line, in the command line's words (flags, not arguments)."""
    return cli_words(_common.one_line(exc))


def _cmd_render(args: argparse.Namespace) -> int:
    from kjenv import KubernetesJobEnvironment
    from kjenv._kjenv import dump_yaml

    env = KubernetesJobEnvironment(job_spec_file=args.job_spec)
    job = env.render(
        image=args.image,
        flow_run_id=args.flow_run_id,
        namespace=args.namespace,
        flow_file_path=args.flow_file_path,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(job, indent=2) + "\n")
    else:
        sys.stdout.write(dump_yaml(job))
    return EXIT_OK


def _cmd_cluster(args: argparse.Namespace) -> int:
    from kjenv.testing import LocalCluster

    # Ctrl-C and SIGTERM (main turns it into Terminated) both unwind through the with block,
    # so whenever they come, even while the cluster starts, it stops and its folder goes.
    try:
        with LocalCluster(port=args.port, concurrency=args.concurrency) as cluster:
            print(f"local cluster listening on {cluster.url}", flush=True)
            print(f"kubeconfig: {cluster.kubeconfig}", flush=True)
            print(f"use it:     export KUBECONFIG={cluster.kubeconfig}", flush=True)
            print("Ctrl-C stops it and every process it started.", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    print("local cluster stopped", flush=True)
    return EXIT_OK


def _cmd_run_flow(args: argparse.Namespace) -> int:
    from kjenv import KubernetesJobEnvironment

    KubernetesJobEnvironment().run_flow()  # raises SystemExit(1) when the flow fails
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from kjenv import KubernetesJobEnvironment
    from kjenv._attach import wait_options
    from kjenv._demo import run_as_job
    from kjenv._flowfile import find_flow, import_file, store_flow

    options = wait_options(args)  # a bad flag is refused before anything starts
    flow = find_flow(import_file(args.flow_file), args.flow)
    stored_env = getattr(flow, "environment", None)
    if args.job_spec is None and isinstance(stored_env, KubernetesJobEnvironment):
        spec = {"job_spec": stored_env.job_spec, "unique_job_name": stored_env.unique_job_name}
    else:
        spec = {"job_spec_file": args.job_spec}
    if not args.local and args.flow_file_path is None:
        raise ValueError(
            "on a real cluster the flow must already be in the image: pass --flow-file-path "
            "(its path inside the image), or --local to run on the embedded local cluster"
        )
    with contextlib.ExitStack() as stack:
        kubeconfig, flow_file_path = args.kubeconfig, args.flow_file_path
        if args.local:
            from kjenv.testing import LocalCluster

            cluster = stack.enter_context(LocalCluster(backoff_base=1.0))
            kubeconfig = cluster.kubeconfig
            # Named after this process: if it is killed outright, the next LocalCluster
            # started removes the folder (see src/python/cluster.rs).
            tmp = stack.enter_context(
                tempfile.TemporaryDirectory(prefix=f"kjenv-run-pid{os.getpid()}-")
            )
            flow_file_path = store_flow(flow, tmp)
        env = KubernetesJobEnvironment(
            **spec, kubeconfig=kubeconfig, context=args.context, namespace=args.namespace
        )
        image = args.image or ("local/flows:latest" if args.local else None)
        return run_as_job(
            flow,
            env,
            flow_file_path=flow_file_path,
            image=image,
            timeout=args.timeout,
            out=sys.stdout,
            **options,
        )


def _resource_name(group: str, resource: str) -> str:
    """``jobs.batch``, ``pods/log``: a resource as kubectl names it."""
    if not group:
        return resource
    name, _, sub = resource.partition("/")
    return f"{name}.{group}" + (f"/{sub}" if sub else "")


def check_table(report: dict) -> list[str]:
    """The lines ``kjenv check`` prints for a ``KubernetesJobEnvironment.check()`` report: one
    table (what is allowed, what is missing) and a summary line."""
    rows = [("RESULT", "VERB", "RESOURCE", "USED FOR")]
    missing = []
    for p in report["permissions"]:
        resource = _resource_name(p["group"], p["resource"])
        if p["allowed"]:
            result = "allowed"
        elif p["needed"]:
            result = "MISSING"
            missing.append(f"{p['verb']} {resource}")
        else:
            result = "unused"
        used_for = p["used_for"]
        if not p["needed"]:
            used_for += " (not needed: no Prefect Cloud token)"
        rows.append((result, p["verb"], resource, used_for))
    dry = report.get("dry_run")
    if dry is not None:
        result = "allowed" if dry["allowed"] else "REFUSED"
        what = f"dry run (dryRun=All) of job {dry['job']}"
        if not dry["allowed"]:
            what += f": {' '.join(dry['detail'].split())}"
            missing.append(f"the dry run of job {dry['job']}")
        rows.append((result, "create", "jobs.batch", what))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    ns = report["namespace"]
    if missing:
        lines.append(f"kjenv check: namespace {ns}: {len(missing)} missing: {', '.join(missing)}")
    else:
        lines.append(f"kjenv check: namespace {ns}: everything kjenv needs is allowed")
    return lines


def _cmd_check(args: argparse.Namespace) -> int:
    from kjenv import KjenvError, KubernetesJobEnvironment

    env = KubernetesJobEnvironment(
        job_spec_file=args.job_spec, kubeconfig=args.kubeconfig, context=args.context
    )
    try:
        report = env.check(
            image=args.image, namespace=args.namespace, dry_run=args.job_spec is not None
        )
    except (ValueError, OSError):
        raise  # bad input: main says so (exit 2)
    except KjenvError as exc:
        # The API server cannot answer (no access reviews, unreachable): nothing was checked.
        sys.stderr.write(f"kjenv: error: {one_line(exc)}\n")
        return EXIT_FAILED
    sys.stdout.write("".join(f"{line}\n" for line in check_table(report)))
    return EXIT_OK if report["ok"] else EXIT_FAILED


def _cmd_demo(args: argparse.Namespace) -> int:
    from kjenv._demo import main as demo

    return demo(timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kjenv",
        description="Run a Python flow as a user-supplied Kubernetes Job.",
    )
    from kjenv import __version__

    parser.add_argument("--version", action="version", version=f"kjenv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    render = sub.add_parser(
        "render",
        help="print the Job that execute would submit",
        description="Print the Job that KubernetesJobEnvironment.execute submits for JOB_SPEC.",
    )
    render.add_argument("job_spec", metavar="JOB_SPEC", help="path to a Kubernetes Job YAML file")
    render.add_argument("--image", help="the flow image (else PREFECT__CONTEXT__IMAGE)")
    render.add_argument("--flow-run-id", help="the flow run id (else a new uuid4)")
    render.add_argument("--namespace", help="the namespace (else the spec's, else 'default')")
    render.add_argument("--flow-file-path", help="where the flow file is inside the image")
    render.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    render.set_defaults(func=_cmd_render)

    cluster = sub.add_parser(
        "cluster",
        help="run the local Kubernetes cluster in the foreground",
        description="Run kjenv's local Kubernetes cluster (API on 127.0.0.1, pods as local "
        "processes) until Ctrl-C; prints the kubeconfig path.",
    )
    cluster.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    cluster.add_argument("--concurrency", type=int, default=8, help="pods running at once")
    cluster.set_defaults(func=_cmd_cluster)

    run_flow = sub.add_parser(
        "run-flow",
        help="run the flow of this Job's container (the in-container entry point)",
        description="Load the flow named by PREFECT__CONTEXT__FLOW_FILE_PATH and run it; exit 0 "
        "when it succeeds, 1 when it fails. The same as KubernetesJobEnvironment().run_flow().",
    )
    run_flow.set_defaults(func=_cmd_run_flow)

    run = sub.add_parser(
        "run",
        help="run a Python file's flow as a Kubernetes Job and wait for it",
        description="Import FLOW_FILE, store its flow, run it as a Job, stream its log; exit 0 "
        "when the Job succeeds, 1 when it fails, 2 on bad input.",
    )
    run.add_argument("flow_file", metavar="FLOW_FILE", help="a Python file defining the flow")
    run.add_argument("--job-spec", help="the Job spec (default: the flow's environment's)")
    run.add_argument("--flow", help="which flow (variable or flow name) when there are several")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)")
    run.add_argument("--context", help="kubeconfig context")
    run.add_argument("--namespace", help="namespace")
    run.add_argument("--image", help="the flow image")
    run.add_argument("--local", action="store_true", help="run on an embedded local cluster")
    run.add_argument("--flow-file-path", help="where the flow file is inside the image")
    run.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    _add_attach_commands(sub, run)
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser(
        "check",
        help="check the permissions kjenv needs (and, with JOB_SPEC, a dry run of its Job)",
        description="Ask the API server (a SelfSubjectAccessReview each) whether the "
        "configured credentials may make every request kjenv makes in the namespace; with "
        "JOB_SPEC, also create its rendered Job with dryRun=All (nothing is stored). Prints "
        "one table of what is allowed and what is missing; exit 0 when everything is allowed, "
        "1 otherwise (or when the server cannot answer), 2 on bad input.",
    )
    check.add_argument(
        "job_spec", metavar="JOB_SPEC", nargs="?", help="a Job spec YAML file to dry-run"
    )
    check.add_argument("--kubeconfig", help="kubeconfig file (else KUBECONFIG, ~/.kube/config)")
    check.add_argument("--context", help="kubeconfig context")
    check.add_argument(
        "-n", "--namespace", help="the namespace (else the spec's, the kubeconfig's, 'default')"
    )
    check.add_argument(
        "--image",
        help="the flow image for the dry run (else PREFECT__CONTEXT__IMAGE, the spec's image, "
        "a placeholder: a dry run pulls nothing)",
    )
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser(
        "demo",
        help="run the example flow on the embedded local cluster",
        description="Start the local cluster, run the example flow of Prefect's "
        "KubernetesJobEnvironment documentation (prints Example!) as a Kubernetes Job, stream "
        "its log, print a summary, stop the cluster.",
    )
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait at most")
    demo.set_defaults(func=_cmd_demo)

    from kjenv import _submit

    _submit.add_parser(sub)
    return parser


def _add_attach_commands(sub: Any, run: argparse.ArgumentParser) -> None:
    """The wait's flags on ``run``; the ``attach``, ``status``, ``logs`` and ``delete``
    commands (``_attach.py``)."""
    from kjenv import _attach

    _attach.add_wait_flags(run)
    _attach.add_parsers(sub)


def _warnings_to_stderr() -> None:
    """The library's warnings (the ``kjenv`` logger: a watch retrying, what Ctrl-C did to the
    Job, a log that could not be read) as ``kjenv: ...`` lines on stderr, unless the program
    calling ``main`` configured logging."""
    import logging

    logger = logging.getLogger("kjenv")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kjenv: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's ``KeyboardInterrupt`` so that it unwinds
    the same way: every ``with`` block (the local cluster, temporary folders) cleans up."""


def _on_sigterm(signum: int, frame: object) -> None:
    # A second SIGTERM during the clean-up of the first must not cut it short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the command runs, unless the program calling
    ``main`` handles SIGTERM itself (or this is not the main thread)."""
    main_thread = threading.current_thread() is threading.main_thread()
    if not main_thread or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kjenv`` console script and ``python -m kjenv``."""
    from kjenv import JobFailedError, JobTimeoutError

    parser = build_parser()
    args = parser.parse_args(argv)
    _warnings_to_stderr()
    try:
        with _sigterm_as_interrupt():
            return int(args.func(args))
    except Terminated:
        sys.stderr.write("kjenv: terminated\n")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        sys.stderr.write("kjenv: interrupted\n")
        return 130
    except (JobFailedError, JobTimeoutError) as exc:
        sys.stderr.write(f"kjenv: job failed: {one_line(exc)}\n")
        return EXIT_FAILED
    except (ValueError, TypeError, OSError) as exc:
        # Bad input: spec errors (JobSpecError is a ValueError), missing files, bad values.
        sys.stderr.write(f"kjenv: error: {one_line(exc)}\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
