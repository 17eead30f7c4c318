"""The error every process turns into one clear message instead of a traceback.

Raise `UserError` (or a subclass) for problems in what the user gave: config files, overrides,
data rows, command-line arguments, a database URL. Entry points catch it, print the message
(which names the problem and where it is) and exit with status 2. Anything else is a bug and
propagates with its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem in the user's input; its message says what and where."""

    exit_code = 2


def one_line(exc: BaseException) -> str:
    """An exception as one line for the ledger and logs: its type and the first line of its
    message (a full disk says `OSError: [Errno 28] No space left on device`), at most 500
    characters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}"[:500] if text else type(exc).__name__


def resolved_against(path: str | Path) -> str:
    """For a message about a missing relative path: ` (resolved against <cwd>)`; "" for an
    absolute one."""
    return "" if Path(path).is_absolute() else f" (resolved against {Path.cwd()})"
