"""What several kjenv modules share: exit codes, one-line messages, the Prefect flow test.

A leaf: it imports nothing of kjenv, so any module of the package (and the extension) can use it
without an import circle.
"""

from __future__ import annotations

import sys
from typing import Any

# The process exit codes of the command line and of the in-container runner.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# The in-container runner could not load the flow (its file is missing or does not unpickle, its
# storage cannot give it): no retry can fix that. The rendered Job's podFailurePolicy fails the
# Job at once on this exit code of the flow container (sysexits' EX_NOINPUT).
EXIT_FLOW_NOT_LOADED = 66


class FlowLoadError(Exception):
    """The flow could not be read, unpickled or got from its storage; the message is one line."""


def one_line(exc: BaseException) -> str:
    """An exception's message folded to one line; its type's name when it has no message."""
    return " ".join(str(exc).split()) or type(exc).__name__


def typed_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for messages that wrap another error."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def is_prefect_flow(obj: Any) -> bool:
    """Whether ``obj`` is a Prefect Flow; Prefect is not imported if the program has not."""
    prefect = sys.modules.get("prefect")
    return prefect is not None and isinstance(obj, prefect.Flow)
