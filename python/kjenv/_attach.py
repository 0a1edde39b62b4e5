"""``kjenv attach|status|logs|delete JOB``: an existing Job, found by name or by flow run id
(``JobRun.attach``), waited for again with its whole log, looked at, or deleted with its pods."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kjenv._common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from kjenv.cli import one_line

ON_INTERRUPT_HELP = (
    "what Ctrl-C or SIGTERM during the wait does to the Job: keep it running (the default; "
    "`kjenv attach` waits for it again) or delete it with its pods"
)


def add_wait_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the commands that wait (``submit``, ``run``, ``attach``): what Ctrl-C
    does, how long pods may fail to be created, whether classic sidecars are stopped."""
    parser.add_argument(
        "--on-interrupt", choices=["keep", "delete"], default="keep", help=ON_INTERRUPT_HELP
    )
    parser.add_argument(
        "--failed-create-grace",
        type=float,
        metavar="SECONDS",
        help="fail when the Job's pods cannot be created (FailedCreate: a quota, a missing "
        "ServiceAccount, an admission denial) for this long (default 120)",
    )
    parser.add_argument(
        "--keep-sidecars",
        action="store_true",
        help="when the flow container has ended but other containers keep its pod running, "
        "report the flow's outcome and leave the Job alone (default: delete the Job so that "
        "its sidecars stop)",
    )


def wait_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``JobRun.wait`` keyword arguments of :func:`add_wait_flags`' flags; ``ValueError``
    for a negative grace (checked before anything is created)."""
    options: dict[str, Any] = {"on_interrupt": args.on_interrupt}
    if args.failed_create_grace is not None:
        if args.failed_create_grace < 0:
            raise ValueError("--failed-create-grace must not be negative")
        options["failed_create_grace"] = args.failed_create_grace
    if args.keep_sidecars:
        options["stop_sidecars"] = False
    return options


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", metavar="JOB", nargs="?", help="the Job's name")
    p.add_argument("--flow-run-id", help="find the Job by its flow_run_id label instead")
    p.add_argument("-n", "--namespace", help="the namespace (else the kubeconfig's)")
    p.add_argument("--kubeconfig", help="kubeconfig file (else KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")


def add_parsers(sub: Any) -> None:
    """Register ``attach``, ``status``, ``logs`` and ``delete`` on the ``kjenv`` subparsers."""
    attach = sub.add_parser(
        "attach",
        help="wait for an existing Job again, with its whole log",
        description="Find JOB (or the Job of --flow-run-id), stream its log from the start to "
        "stdout and wait for it like `submit --logs`: exit 0 when it completes, 1 when it fails.",
    )
    _target_args(attach)
    attach.add_argument("--no-logs", action="store_true", help="do not stream the log")
    attach.add_argument("--log-file", help="also write the whole log to this file")
    attach.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="give up waiting after this long"
    )
    add_wait_flags(attach)
    attach.set_defaults(func=_cmd_attach)

    status = sub.add_parser(
        "status", help="show a Job's state and pods", description="Show JOB's state and pods."
    )
    _target_args(status)
    status.add_argument("-o", "--output", choices=["text", "json"], default="text")
    status.set_defaults(func=_cmd_status)

    logs = sub.add_parser(
        "logs",
        help="print the log of a Job's newest pod, or of every attempt",
        description="Print the log of JOB's newest pod (its flow container unless -c); with "
        "--all, of every pod oldest first and of each container's instance before its last "
        "restart, each under a `==> pod P, container C <==` line.",
    )
    _target_args(logs)
    logs.add_argument("-c", "--container", help="another container of the pod")
    logs.add_argument("-f", "--follow", action="store_true", help="wait until the container ends")
    logs.add_argument(
        "-a", "--all", action="store_true", dest="all_attempts", help="every attempt's log"
    )
    logs.set_defaults(func=_cmd_logs)

    delete = sub.add_parser(
        "delete",
        help="delete a Job with its pods",
        description="Delete JOB (its pods and Secret go with it) and stop its running pods.",
    )
    _target_args(delete)
    delete.add_argument(
        "--grace-period",
        type=int,
        metavar="SECONDS",
        help="seconds the pods have to stop (else each pod's terminationGracePeriodSeconds)",
    )
    delete.set_defaults(func=_cmd_delete)


def _say(message: str) -> None:
    sys.stderr.write(f"kjenv: {message}\n")
    sys.stderr.flush()


def _attached(args: argparse.Namespace) -> Any:
    """The ``JobRun`` the arguments name; raises ``KubeApiError`` (404) when there is none."""
    from kjenv import JobRun

    if (args.job is None) == (args.flow_run_id is None):
        raise ValueError("name the Job: give JOB or --flow-run-id, exactly one of them")
    return JobRun.attach(
        args.job,
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        context=args.context,
        flow_run_id=args.flow_run_id,
    )


def _with_job(command):
    """Run ``command(run, args)`` on the attached Job; an API refusal is one line, exit 1."""

    def wrapped(args: argparse.Namespace) -> int:
        from kjenv import KubeApiError

        try:
            return command(_attached(args), args)
        except KubeApiError as exc:
            _say(f"error: {one_line(exc)}")
            return EXIT_FAILED

    return wrapped


def describe_cancel(run: Any, done: dict[str, Any]) -> str:
    """One line for what ``JobRun.cancel()`` did."""
    job = f"job {run.namespace}/{run.name}"
    if not done["deleted"]:
        return f"{job} was gone already"
    pods = done["pods"]
    stopping = {0: "no pod was running", 1: "1 pod stopping"}.get(
        len(pods), f"{len(pods)} pods stopping"
    )
    if pods:
        stopping += f": {', '.join(pods)}"
    grace = "" if done["grace_period"] is None else f", grace period {done['grace_period']}s"
    return f"deleted {job} ({stopping}{grace})"


def _attach(run: Any, args: argparse.Namespace) -> int:
    from kjenv._submit import wait_with_progress

    if args.timeout is not None and args.timeout < 0:
        _say("error: --timeout must not be negative")
        return EXIT_BAD_INPUT
    options = wait_options(args)
    flow_run = f" (flow run {run.flow_run_id})" if run.flow_run_id else ""
    _say(f"attached to job {run.namespace}/{run.name}{flow_run}")
    code, message = wait_with_progress(
        run, args.timeout, logs=not args.no_logs, log_file=args.log_file, **options
    )
    _say(message)
    return code


def status_text(status: dict[str, Any]) -> str:
    """``JobRun.status()`` as a few lines of text."""
    head = (
        f"job {status['namespace']}/{status['name']}: {status['phase']} (active "
        f"{status['active']}, succeeded {status['succeeded']}, failed {status['failed']})"
    )
    lines = [head]
    for c in status["conditions"]:
        why = ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
        lines.append(f"  condition {c['type']}={c['status']}" + (f" ({why})" if why else ""))
    for pod in status["pods"]:
        containers = ", ".join(
            f"{c['name']} {c['state']}"
            + (f" {c['reason']}" if c.get("reason") else "")
            + (f" exit {c['exit_code']}" if c.get("exit_code") is not None else "")
            + (f" restarts {c['restart_count']}" if c.get("restart_count") else "")
            for c in pod["containers"]
        )
        lines.append(
            f"  pod {pod['name']}: {pod['phase']}" + (f" · {containers}" if containers else "")
        )
    if status.get("last_event"):
        lines.append(f"  last event: {status['last_event']}")
    return "\n".join(lines) + "\n"


def _status(run: Any, args: argparse.Namespace) -> int:
    status = run.status()
    if args.output == "json":
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
    else:
        sys.stdout.write(status_text(status))
    return EXIT_OK


def _logs(run: Any, args: argparse.Namespace) -> int:
    text = run.logs(follow=args.follow, container=args.container, all_attempts=args.all_attempts)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


def _delete(run: Any, args: argparse.Namespace) -> int:
    if args.grace_period is not None and args.grace_period < 0:
        _say("error: --grace-period must not be negative")
        return EXIT_BAD_INPUT
    _say(describe_cancel(run, run.cancel(grace_period=args.grace_period)))
    return EXIT_OK


_cmd_attach = _with_job(_attach)
_cmd_status = _with_job(_status)
_cmd_logs = _with_job(_logs)
_cmd_delete = _with_job(_delete)
