"""One logging setup for every lppo process.

`setup_logging(level, fmt, process)` configures the root logger once per process: rich console
output on a TTY (or when asked), plain timestamped lines otherwise (log files, CI, children of
`lppo run` whose output is captured). Every line names the process (`learner`, `actor-0`, ...)
so interleaved logs stay readable.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s [{process}] %(name)s: %(message)s"


def setup_logging(
    level: str = "INFO",
    fmt: Literal["auto", "rich", "plain"] = "auto",
    process: str = "lppo",
    stream=None,
) -> None:
    """Replace the root logger's handlers with one console handler of the chosen format."""
    stream = stream or sys.stderr
    use_rich = fmt == "rich" or (fmt == "auto" and getattr(stream, "isatty", lambda: False)())
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if use_rich:
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=Console(file=stream), show_path=False, rich_tracebacks=True, markup=False
        )
        handler.setFormatter(logging.Formatter(f"[{process}] %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(
            logging.Formatter(PLAIN_FORMAT.format(process=process), datefmt="%H:%M:%S")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party libraries that are chatty at INFO.
    for noisy in ("urllib3", "filelock", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
