"""The ``kjenv`` command line: ``kjenv render``, and more as they land."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"kjenv: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _cmd_render(args: argparse.Namespace) -> int:
    from kjenv import KubernetesJobEnvironment
    from kjenv._kjenv import dump_yaml

    env = KubernetesJobEnvironment(job_spec_file=args.job_spec)
    job = env.render(
        image=args.image,
        flow_run_id=args.flow_run_id,
        namespace=args.namespace,
        flow_file_path=args.flow_file,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(job, indent=2) + "\n")
    else:
        sys.stdout.write(dump_yaml(job))
    return EXIT_OK


def _cmd_cluster(args: argparse.Namespace) -> int:
    import signal
    import threading

    from kjenv.testing import LocalCluster

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalCluster(port=args.port, concurrency=args.concurrency) as cluster:
        print(f"local cluster listening on {cluster.url}", flush=True)
        print(f"kubeconfig: {cluster.kubeconfig}", flush=True)
        print(f"use it:     export KUBECONFIG={cluster.kubeconfig}", flush=True)
        print("Ctrl-C stops it and every process it started.", flush=True)
        while not stop.wait(0.2):
            pass
    print("local cluster stopped", flush=True)
    return EXIT_OK


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
    render.add_argument("--flow-file", help="the flow file path inside the image")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kjenv`` console script and ``python -m kjenv``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        sys.stderr.write("kjenv: interrupted\n")
        return 130
    except (ValueError, TypeError, OSError) as exc:
        # Bad input: spec errors (JobSpecError is a ValueError), missing files, bad values.
        sys.stderr.write(f"kjenv: error: {_one_line(exc)}\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
