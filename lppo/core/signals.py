"""One way for a process to stop cleanly on SIGTERM / SIGINT: set an event its loop checks."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


def stop_on_signals(stop: threading.Event, what: str = "stopping") -> None:
    """SIGTERM and SIGINT set `stop` (main thread only); the loop finishes its iteration,
    cleans up and exits with status 0."""

    def _handler(signum, frame):
        log.info("%s: %s", signal.Signals(signum).name, what)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
