"""The verifier worker process and the messages it exchanges with the pool over its pipe.

A worker serves groups one at a time: it receives `Group(gold, outputs)`, answers `GoldParsed`
once the gold answer is parsed, then one `ItemDone` per output as soon as it is judged. That is
one round trip per group for the parent, while the parent can still hold every item to its own
deadline (it waits for each message with a timeout and kills the worker when one is late).

Inside, every step runs under a soft deadline (`verify.soft_deadline`, 80% of the hard one)
and any exception becomes verdict `error` with its message, sent back for the parent to log
and count; an exception never ends the worker. The worker exits when its pipe closes or on
`Stop`. Frames are msgpack (msgspec), like every other channel of lppo.

This module is light (no math-verify at import); `serve` imports `actor.reward.verify`, which
a forkserver preloads once so forked workers start in milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import time
from multiprocessing.connection import Connection

import msgspec

SOFT_FRACTION = 0.8
"""A worker stops itself at this share of the hard deadline (no restart needed)."""
MAX_DETAIL_CHARS = 500


class Ready(msgspec.Struct, tag="ready"):
    pid: int


class Group(msgspec.Struct, tag="group"):
    gold: str
    outputs: list[str]


class Stop(msgspec.Struct, tag="stop"):
    pass


class GoldParsed(msgspec.Struct, tag="gold"):
    ok: bool
    detail: str = ""
    timed_out: bool = False
    """The parse ran past the soft deadline: says nothing certain about the gold answer."""


class ItemDone(msgspec.Struct, tag="item"):
    index: int
    verdict: str
    detail: str
    seconds: float


ToWorker = Group | Stop
FromWorker = Ready | GoldParsed | ItemDone

_encoder = msgspec.msgpack.Encoder()
TO_WORKER = msgspec.msgpack.Decoder(ToWorker)
FROM_WORKER = msgspec.msgpack.Decoder(FromWorker)


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


def describe(exc: BaseException) -> str:
    """`Type: message`, bounded (sympy messages can embed enormous expressions)."""
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > MAX_DETAIL_CHARS:
        text = text[:MAX_DETAIL_CHARS] + "..."
    return text


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent (the forkserver) exits, so no worker outlives the
    actor even while stuck in C code; exit now if the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:
        os._exit(0)


def _limit_memory(memory_mb: int) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(conn: Connection, require_anchor: bool, deadline_s: float, memory_mb: int,
          die_with_parent: bool) -> None:
    """Worker main: load math-verify, say `Ready`, then judge groups until told to stop."""
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if die_with_parent:
        _die_with_parent()
    from actor.reward import verify

    verify.silence_timeout_warnings()
    verify.judge_text("\\frac{1}{2}", "so \\boxed{0.5}")  # warm caches before taking work
    _limit_memory(memory_mb)
    conn.send_bytes(encode(Ready(pid=os.getpid())))
    soft = deadline_s * SOFT_FRACTION
    while True:
        try:
            frame = conn.recv_bytes()
        except EOFError:
            return
        msg = TO_WORKER.decode(frame)
        if isinstance(msg, Stop):
            return
        _serve_group(conn, msg, require_anchor, soft, verify)


def _serve_group(conn: Connection, group: Group, require_anchor: bool, soft: float,
                 verify) -> None:
    try:
        with verify.soft_deadline(soft):
            gold = verify.parse_gold(group.gold)
        reply = GoldParsed(ok=bool(gold), detail="" if gold else "math-verify found no answer")
    except verify.DeadlineExceeded:
        reply = GoldParsed(ok=False, detail=f"gold answer parse ran past {soft:.2f} s",
                           timed_out=True)
    except Exception as exc:
        reply = GoldParsed(ok=False, detail=f"gold answer parse failed: {describe(exc)}")
    conn.send_bytes(encode(reply))
    if not reply.ok:
        return
    for index, output in enumerate(group.outputs):
        start = time.perf_counter()
        detail = ""
        try:
            with verify.soft_deadline(soft):
                verdict = verify.judge(gold, output, require_anchor).value
        except verify.DeadlineExceeded:
            verdict, detail = "timeout", f"stopped by the worker at {soft:.2f} s"
        except Exception as exc:
            verdict, detail = "error", describe(exc)
        seconds = time.perf_counter() - start
        conn.send_bytes(encode(ItemDone(index=index, verdict=verdict, detail=detail,
                                        seconds=seconds)))
