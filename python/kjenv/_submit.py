"""``kjenv submit``: create a Job from a spec file, optionally wait for it with a live progress
line (stderr, when it is a terminal) and the flow's log stream (stdout)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, TextIO

from kjenv._common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from kjenv.cli import one_line

# How often the progress line asks the API for the Job's status.
POLL_SECONDS = 0.5


def add_parser(sub: Any) -> None:
    """Register ``submit`` on the ``kjenv`` subparsers."""
    p = sub.add_parser(
        "submit",
        help="create the Job on a cluster and optionally wait for it",
        description="Create the Job for JOB_SPEC on a cluster and print its name. With --wait, "
        "show progress on stderr and exit 0 when the Job completes, 1 when it fails; --logs "
        "streams the flow container's log to stdout.",
    )
    p.add_argument("job_spec", metavar="JOB_SPEC", help="path to a Kubernetes Job YAML file")
    p.add_argument("--image", help="the flow image (else PREFECT__CONTEXT__IMAGE)")
    p.add_argument("--namespace", help="the namespace (else the spec's, the kubeconfig's)")
    p.add_argument("--kubeconfig", help="kubeconfig file (else KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--flow-run-id", help="the flow run id (else a new uuid4)")
    p.add_argument("--flow-file-path", help="where the flow file is inside the image")
    p.add_argument("--wait", action="store_true", help="wait until the Job completes or fails")
    p.add_argument("--logs", action="store_true", help="stream the flow's log (implies --wait)")
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="give up waiting after this long"
    )
    p.add_argument("--log-file", help="also write the whole log to this file (implies --wait)")
    from kjenv._attach import add_wait_flags

    add_wait_flags(p)
    p.set_defaults(func=run)


def _error(message: str) -> None:
    sys.stderr.write(f"kjenv: {message}\n")
    sys.stderr.flush()


def progress_text(status: dict[str, Any], elapsed: float) -> str:
    """The progress line for a ``JobRun.status()``."""
    counts = {"Pending": 0, "Running": 0, "Succeeded": 0, "Failed": 0}
    for pod in status.get("pods", []):
        phase = pod.get("phase", "Pending")
        counts[phase] = counts.get(phase, 0) + 1
    pods = ", ".join(f"{n} {phase.lower()}" for phase, n in counts.items())
    text = f"{status['name']}: {status['phase'].lower()} · pods {pods} · {elapsed:.1f}s"
    # What holds the Job back (pods that cannot be created, a disrupted attempt), as it happens.
    problem = status.get("problem")
    return f"{text} · {problem}" if problem else text


class Progress:
    """A one-line display on a terminal, redrawn in place; log lines go above it."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.lock = threading.Lock()
        self.text = ""

    def draw(self, text: str) -> None:
        with self.lock:
            self.text = text
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()

    def clear(self) -> None:
        with self.lock:
            if self.text:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self.text = ""

    def hidden(self, write) -> None:
        """Run ``write`` with the line cleared, then draw it again."""
        with self.lock:
            if self.text:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            write()
            if self.text:
                self.stream.write(self.text)
                self.stream.flush()


class _Stdout:
    """``sys.stdout`` while the progress line is up: log lines are written above the line."""

    def __init__(self, real: TextIO, progress: Progress):
        self.real = real
        self.progress = progress

    def write(self, s: str) -> int:
        self.progress.hidden(lambda: (self.real.write(s), self.real.flush()))
        return len(s)

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _poll(run: Any, progress: Progress, start: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            status = run.status()
        except Exception:  # a transient API failure: keep the last line
            status = None
        if status is not None and not stop.is_set():
            progress.draw(progress_text(status, time.monotonic() - start))
        stop.wait(POLL_SECONDS)


def wait_with_progress(
    run: Any,
    timeout: float | None,
    logs: bool,
    *,
    log_file: str | None = None,
    on_interrupt: str = "keep",
    **wait_options: Any,
) -> tuple[int, str]:
    """Wait for ``run`` with the progress line (on a terminal) and, with ``logs``, the flow's log
    on stdout (and every line in ``log_file``); ``wait_options`` go to ``run.wait()``. Returns the
    exit code and a one-line outcome. ``KeyboardInterrupt`` (Ctrl-C, SIGTERM in the CLI)
    propagates, after ``on_interrupt`` kept or deleted the Job (which ``JobRun.wait`` says on the
    ``kjenv`` logger)."""
    from kjenv import JobFailedError, JobTimeoutError

    start = time.monotonic()
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None
    stop = threading.Event()
    poller = None
    real_stdout = sys.stdout
    if progress is not None:
        if logs and sys.stdout.isatty():
            sys.stdout = _Stdout(real_stdout, progress)  # type: ignore[assignment]
        poller = threading.Thread(
            target=_poll, args=(run, progress, start, stop), name="kjenv-progress", daemon=True
        )
        poller.start()
    try:
        run.wait(
            timeout=timeout,
            stream_logs=logs,
            log_file=log_file,
            on_interrupt=on_interrupt,
            **wait_options,
        )
    except JobFailedError as exc:
        outcome = (EXIT_FAILED, f"job {run.name} failed: {exc.reason}\n{exc}")
    except JobTimeoutError as exc:
        outcome = (EXIT_FAILED, f"job {run.name} timed out: {one_line(exc)}")
    else:
        outcome = (EXIT_OK, f"job {run.name} succeeded in {time.monotonic() - start:.1f}s")
    finally:
        stop.set()
        if poller is not None:
            poller.join(timeout=2)
        if progress is not None:
            progress.clear()
        sys.stdout = real_stdout
    return outcome


def _wait(run: Any, args: argparse.Namespace, options: dict[str, Any]) -> int:
    code, message = wait_with_progress(
        run, args.timeout, args.logs, log_file=args.log_file, **options
    )
    _error(message)
    return code


def run(args: argparse.Namespace) -> int:
    """``kjenv submit``: exit 0 on success, 1 when the Job fails or the API refuses it, 2 on bad
    input (a bad spec, no image, no cluster configuration, a spec the API finds invalid)."""
    from kjenv import KubeApiError, KubernetesJobEnvironment
    from kjenv._attach import wait_options

    if args.timeout is not None and args.timeout < 0:
        _error("error: --timeout must not be negative")
        return EXIT_BAD_INPUT
    try:
        options = wait_options(args)
    except ValueError as exc:
        _error(f"error: {exc}")
        return EXIT_BAD_INPUT
    env = KubernetesJobEnvironment(
        job_spec_file=args.job_spec,
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        context=args.context,
    )
    try:
        job = env.execute(
            image=args.image,
            flow_run_id=args.flow_run_id,
            namespace=args.namespace,
            flow_location=args.flow_file_path,
        )
    except KubeApiError as exc:
        _error(f"error: {one_line(exc)}")
        # The API found the Job invalid: bad input. Anything else (a taken name, no access,
        # an unreachable cluster) is a failure to run.
        return EXIT_BAD_INPUT if exc.status in (400, 422) else EXIT_FAILED
    sys.stdout.write(f"{job.name}\n")
    sys.stdout.flush()
    if not (args.wait or args.logs or args.log_file or args.timeout is not None):
        return EXIT_OK
    return _wait(job, args, options)
