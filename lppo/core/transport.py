"""Thin ZeroMQ helpers: the three socket pairs of the system, speaking `lppo.core.wire` messages.

    work      learner ROUTER (bind)  <->  actor DEALER (connect)   requests and replies
    rollouts  learner PULL   (bind)  <-   actor PUSH   (connect)   finished groups
    weights   learner PUB    (bind)   ->  actor SUB    (connect)   weight notices, shutdown

`Channel` wraps one socket: it sets high-water marks, `LINGER 0` (closing never hangs on
unsent frames), reconnect backoff, and turns frames into typed messages. A bad frame never
reaches the caller: `recv` counts it in `Channel.rejected` by reason, logs it, and keeps
waiting, so one broken or hostile peer cannot stop a receiver.

Addresses come from `TransportConfig`: loopback TCP by default, `ipc://` sockets under the run
directory on one machine. Binding beyond loopback is refused by the config unless allowed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import zmq

from lppo.core.errors import UserError
from lppo.core.wire import Message, WireError, decode, encode

if TYPE_CHECKING:
    from lppo.core.config import TransportConfig

log = logging.getLogger(__name__)

MAX_SKIPPED_PER_RECV = 10_000
"""Most bad frames one `recv` call skips before returning None to its caller."""

LOG_FIRST_REJECTS = 10
LOG_EVERY_REJECTS = 1000
"""Rejected frames are logged the first 10 times per reason, then every 1000th."""

# Unix domain socket paths are limited to 107 bytes on Linux (sun_path is 108 with the NUL).
_MAX_IPC_PATH = 107


class EndpointError(UserError, ValueError):
    """An address given by the user cannot be used (bad URL, ipc path too long)."""


@dataclass(frozen=True)
class Endpoints:
    """The three addresses of a learner, as bound by the learner and connected to by actors."""

    work: str
    rollouts: str
    weights: str

    @classmethod
    def from_config(cls, cfg: TransportConfig, run_dir: Path) -> Endpoints:
        if cfg.scheme == "ipc":
            folder = (cfg.ipc_dir or run_dir / "sockets").resolve()
            folder.mkdir(parents=True, exist_ok=True)
            paths = {name: folder / f"{name}.sock" for name in ("work", "rollouts", "weights")}
            too_long = [str(p) for p in paths.values() if len(str(p)) > _MAX_IPC_PATH]
            if too_long:
                raise EndpointError(
                    f"transport.ipc_dir: socket path {too_long[0]!r} is longer than "
                    f"{_MAX_IPC_PATH} bytes; set transport.ipc_dir to a shorter folder"
                )
            return cls(**{name: f"ipc://{p}" for name, p in paths.items()})
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        return cls(
            work=f"tcp://{host}:{cfg.work_port}",
            rollouts=f"tcp://{host}:{cfg.rollout_port}",
            weights=f"tcp://{host}:{cfg.weights_port}",
        )

    @classmethod
    def for_learner(cls, learner: str, cfg: TransportConfig) -> Endpoints:
        """Addresses an actor connects to given `--learner tcp://HOST[:WORK_PORT]`.

        The rollout and weights ports come from the config (both sides share it).
        """
        parts = urlsplit(learner)
        if parts.scheme != "tcp" or not parts.hostname:
            raise EndpointError(f"--learner: expected tcp://HOST[:PORT], got {learner!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        work_port = parts.port or cfg.work_port
        return cls(
            work=f"tcp://{host}:{work_port}",
            rollouts=f"tcp://{host}:{cfg.rollout_port}",
            weights=f"tcp://{host}:{cfg.weights_port}",
        )


@dataclass(frozen=True)
class Received:
    """A decoded message and, on a ROUTER, the identity of the peer that sent it."""

    msg: Message
    peer: bytes | None = None


FRAME_SLACK = 4096
"""Bytes a message may exceed the frame limit by at the socket (envelope parts); the decoder
still holds every frame to the limit itself."""


class Channel:
    """One ZeroMQ socket that sends and receives `lppo.core.wire` messages."""

    def __init__(
        self,
        ctx: zmq.Context,
        socket_type: int,
        *,
        bind: str | None = None,
        connect: str | None = None,
        hwm: int = 1000,
        max_frame_bytes: int = 64 * 1024 * 1024,
        identity: bytes | None = None,
        name: str = "",
    ):
        if (bind is None) == (connect is None):
            raise ValueError("Channel: give exactly one of bind=, connect=")
        self.name = name or zmq.Socket.__name__
        self.max_frame_bytes = max_frame_bytes
        self.rejected: Counter[str] = Counter()
        self.received = 0
        self.sock = ctx.socket(socket_type)
        self._routed = socket_type == zmq.ROUTER
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        # A peer whose message is larger than a frame may be is cut off by ZeroMQ before the
        # message is buffered (the frame check after decoding comes too late for memory).
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes + FRAME_SLACK)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
        if identity is not None:
            self.sock.setsockopt(zmq.IDENTITY, identity)
        if socket_type == zmq.ROUTER:
            # Report sends to peers that are gone instead of dropping them silently.
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if socket_type == zmq.SUB:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        if bind is not None:
            self.sock.bind(bind)
            self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        else:
            self.sock.connect(connect)
            self.address = connect

    # -- sending -----------------------------------------------------------------------------

    def send(self, msg: Message, to: bytes | None = None, timeout_ms: int | None = None) -> bool:
        """Send one message (to peer `to` on a ROUTER). False if it could not be queued in time
        (high-water mark reached or, on a ROUTER, the peer is unknown)."""
        frame = encode(msg)
        parts = [to, frame] if self._routed else [frame]
        if self._routed and to is None:
            raise ValueError(f"{self.name}: a ROUTER send needs the peer identity")
        if timeout_ms is not None and not self.sock.poll(timeout_ms, zmq.POLLOUT):
            return False
        try:
            self.sock.send_multipart(parts, flags=zmq.NOBLOCK if timeout_ms is not None else 0)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                return False
            raise
        return True

    # -- receiving ---------------------------------------------------------------------------

    def recv(self, timeout_ms: int | None = None) -> Received | None:
        """Next valid message, or None when `timeout_ms` passes first (None: wait forever).

        Invalid frames are counted in `rejected`, logged, and skipped.
        """
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        for _ in range(MAX_SKIPPED_PER_RECV):
            remaining = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            # Frames already queued are read even past the deadline: garbage in front of a
            # valid message must not delay it by one caller round trip per bad frame.
            if not self.sock.poll(remaining, zmq.POLLIN):
                return None
            received = self._decode(self.sock.recv_multipart(copy=False))
            if received is not None:
                return received
        return None  # a flood of bad frames: give the caller its turn, continue next call

    def _decode(self, parts: list[zmq.Frame]) -> Received | None:
        peer = None
        try:
            if self._routed:
                if len(parts) != 2:
                    raise WireError(f"expected 2 frames (identity, message), got {len(parts)}",
                                    "framing")
                peer = parts[0].bytes
                payload = parts[1]
            else:
                if len(parts) != 1:
                    raise WireError(f"expected 1 frame, got {len(parts)}", "framing")
                payload = parts[0]
            msg = decode(payload.buffer, max_bytes=self.max_frame_bytes)
        except WireError as exc:
            bucket = exc.kind
            self.rejected[bucket] += 1
            count = self.rejected[bucket]
            if count <= LOG_FIRST_REJECTS or count % LOG_EVERY_REJECTS == 0:
                # Rate-limited: a flood of garbage must not turn into a flood of log lines.
                log.warning("%s: rejected frame%s (%s #%d): %s", self.name, _peer(peer),
                            bucket, count, exc.reason)
            return None
        self.received += 1
        return Received(msg=msg, peer=peer)

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _peer(peer: bytes | None) -> str:
    return "" if peer is None else f" from {peer!r}"


# --------------------------------------------------------------------------------------------
# the two sides
# --------------------------------------------------------------------------------------------


@dataclass
class LearnerSockets:
    """The learner's bound sockets: ROUTER for work, PULL for rollouts, PUB for weights."""

    work: Channel
    rollouts: Channel
    weights: Channel

    @classmethod
    def bind(cls, ctx: zmq.Context, ends: Endpoints, cfg: TransportConfig) -> LearnerSockets:
        kw = {"hwm": cfg.hwm, "max_frame_bytes": int(cfg.max_frame_mb * 2**20)}
        return cls(
            work=Channel(ctx, zmq.ROUTER, bind=ends.work, name="learner.work", **kw),
            rollouts=Channel(ctx, zmq.PULL, bind=ends.rollouts, name="learner.rollouts", **kw),
            weights=Channel(ctx, zmq.PUB, bind=ends.weights, name="learner.weights", **kw),
        )

    def close(self) -> None:
        for ch in (self.work, self.rollouts, self.weights):
            ch.close()


@dataclass
class ActorSockets:
    """An actor's connected sockets: DEALER for work, PUSH for rollouts, SUB for weights."""

    work: Channel
    rollouts: Channel
    weights: Channel

    @classmethod
    def connect(
        cls, ctx: zmq.Context, ends: Endpoints, cfg: TransportConfig, actor_id: str
    ) -> ActorSockets:
        kw = {"hwm": cfg.hwm, "max_frame_bytes": int(cfg.max_frame_mb * 2**20)}
        return cls(
            work=Channel(
                ctx, zmq.DEALER, connect=ends.work, identity=actor_id.encode(),
                name=f"{actor_id}.work", **kw,
            ),
            rollouts=Channel(ctx, zmq.PUSH, connect=ends.rollouts, name=f"{actor_id}.rollouts", **kw),
            weights=Channel(ctx, zmq.SUB, connect=ends.weights, name=f"{actor_id}.weights", **kw),
        )

    def close(self) -> None:
        for ch in (self.work, self.rollouts, self.weights):
            ch.close()
