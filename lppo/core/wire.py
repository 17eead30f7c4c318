"""Wire messages between actors and the learner, and their encoding.

Every frame is one msgpack map produced by msgspec from a typed `Struct`. The map carries
`kind` (the tag of a tagged union) and `v` (the schema version, `SCHEMA_VERSION`). Arrays of
token ids and log-probs travel as `Array`: raw little-endian bytes plus dtype and shape, so a
group of 8 x 1,000 tokens is a few memcpy's, not 16,000 msgpack integers.

Decoding is data-only: msgspec builds plain structs from the frame and never imports or
calls anything named in it (no pickle anywhere). Every way a frame can be bad (too large,
not msgpack, truncated, unknown `kind`, other `v`, a missing or mistyped field, an array whose
byte length does not match its dtype and shape) raises the one exception `WireError`, whose
`reason` says which; receivers count it, log it and carry on.

Message flow (docs/design.md, "Processes and data flow"):

    actor  --DEALER->  learner ROUTER   Register, WorkRequest, Heartbeat, WeightsLoaded,
                                        WeightsPull
    actor <-DEALER--   learner ROUTER   Welcome, Work, Ack, Shutdown
    actor  --PUSH-->   learner PULL     RolloutGroup
    actor <--SUB----   learner PUB      WeightsReady, Shutdown
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import msgspec
import numpy as np

from lppo.core.vocab import FinishReason, Verdict

SCHEMA_VERSION = 1
"""Bump on any change to a message's fields; peers with another version are rejected."""

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024

# Array dtypes accepted on the wire, all little-endian.
DTYPES: dict[str, np.dtype] = {
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PosInt = Annotated[int, msgspec.Meta(ge=1)]
Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


RejectKind = Literal["size", "syntax", "kind", "version", "framing", "array", "field"]
"""Why a frame was rejected, in one word: the bucket of the receivers' counters."""


class WireError(ValueError):
    """A frame was rejected: `reason` says why in words, `kind` in one (`RejectKind`)."""

    def __init__(self, reason: str, kind: RejectKind = "field"):
        super().__init__(reason)
        self.reason = reason
        self.kind: RejectKind = kind


# --------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------


class Array(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An n-d array as raw little-endian bytes. Build with `Array.of`, read with `.numpy()`."""

    dtype: Literal["int32", "int64", "float32", "float64"]
    shape: list[NonNegInt]
    data: bytes

    @classmethod
    def of(cls, values: np.ndarray | list, dtype: str) -> Array:
        arr = np.ascontiguousarray(np.asarray(values, dtype=DTYPES[dtype]))
        return cls(dtype=dtype, shape=list(arr.shape), data=arr.tobytes())

    def numpy(self) -> np.ndarray:
        """A read-only view of the bytes with the declared dtype and shape."""
        return np.frombuffer(self.data, dtype=DTYPES[self.dtype]).reshape(self.shape)

    def tolist(self) -> list:
        return self.numpy().tolist()

    def check(self, where: str, kind: Literal["int", "float"] | None = None, ndim: int = 1) -> None:
        """Raise `WireError` unless the bytes match dtype x shape (and the expected kind/ndim)."""
        if kind is not None and not self.dtype.startswith(kind):
            raise WireError(f"{where}: expected an {kind} array, got dtype {self.dtype}", "array")
        if len(self.shape) != ndim:
            raise WireError(f"{where}: expected {ndim} dimension(s), got shape {self.shape}",
                            "array")
        expected = math.prod(self.shape) * DTYPES[self.dtype].itemsize
        if len(self.data) != expected:
            raise WireError(
                f"{where}: array of dtype {self.dtype} and shape {self.shape} needs "
                f"{expected} bytes, got {len(self.data)}", "array"
            )


# --------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------


class _Msg(msgspec.Struct, tag_field="kind", forbid_unknown_fields=True, kw_only=True):
    v: int = SCHEMA_VERSION


class Register(_Msg, tag="register"):
    """Actor -> learner: an actor joins (or rejoins after a restart)."""

    actor_id: Name
    engine: str
    capacity: PosInt
    """Work items the actor can keep in flight."""


class Welcome(_Msg, tag="welcome"):
    """Learner -> actor: registration accepted; the weights to load before sampling, if any.

    `epoch` identifies the learner process: a new epoch tells the actor the learner restarted,
    so it re-sends every group not yet acknowledged."""

    epoch: Name
    policy_version: NonNegInt
    weights: WeightsReady | None = None
    heartbeat_s: float = 5.0


class WorkRequest(_Msg, tag="work_request"):
    """Actor -> learner: the actor has `slots` free work slots."""

    actor_id: Name
    slots: PosInt


class WorkItem(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One prompt to sample `n` completions for; `prefix_ids` is the expert hint (may be empty)."""

    attempt_id: Name
    sample_id: NonNegInt
    prompt: str | None = None
    prompt_ids: Array | None = None
    prefix_ids: Array | None = None
    prefix_ratio: Ratio = 0.0
    n: PosInt
    guided: PosInt | None = None
    """How many of the `n` completions see the prefix; the rest are sampled without it (a
    mixed group, `lppo.pg.guided_share`). None: all of them."""
    answer: str
    """Gold answer, verified against by the actor's reward service."""


class Work(_Msg, tag="work"):
    """Learner -> actor: work items, possibly none when admission control says wait."""

    items: list[WorkItem]
    policy_version: NonNegInt


class Completion(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One sampled continuation: the policy's tokens only (never the prefix)."""

    token_ids: Array
    logprobs: Array
    """Behaviour-policy log-prob of each sampled token, same length as token_ids."""
    text: str
    finish_reason: FinishReason
    reward: float
    verdict: Verdict
    unguided: bool = False
    """Sampled without the group's prefix: the unguided part of a mixed group."""


class RolloutGroup(_Msg, tag="rollout_group"):
    """Actor -> learner: the n completions of one work item, verified."""

    attempt_id: Name
    sample_id: NonNegInt
    actor_id: Name
    policy_version: NonNegInt
    prompt_ids: Array
    prefix_ids: Array
    prefix_ratio: Ratio
    prefix_len: NonNegInt
    completions: list[Completion]
    gen_seconds: Annotated[float, msgspec.Meta(ge=0.0)]
    verify_seconds: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    error: str = ""
    """Non-empty when the item could not be sampled (e.g. prompt too long): no completions."""


class Ack(_Msg, tag="ack"):
    """Learner -> actor: these groups are recorded (the actor may forget them). Also the
    learner's answer to a Heartbeat, with an empty list, so actors know it is alive."""

    attempt_ids: list[Name] = []


class WeightsReady(_Msg, tag="weights_ready"):
    """Learner -> actors: policy `version` is at `uri`: `file://...` (filesystem backend) or
    `collective://host:port` (pull it over a process group: WeightsPull)."""

    version: NonNegInt
    uri: str
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class WeightsLoaded(_Msg, tag="weights_loaded"):
    """Actor -> learner: result of loading `version` (ok, or refused with the reason)."""

    actor_id: Name
    version: NonNegInt
    ok: bool
    reason: str = ""
    seconds: float = 0.0


class WeightsPull(_Msg, tag="weights_pull"):
    """Actor -> learner, `collective` backend: ready to receive the newest weights over the
    process group `key` of `world_size` members (learner rank 0 and the actor's engine
    workers); a key the learner has not seen from this actor forms a new group."""

    actor_id: Name
    key: Name
    world_size: PosInt


class Heartbeat(_Msg, tag="heartbeat"):
    """Actor -> learner, every `transport.heartbeat_s`: alive, with current counters."""

    actor_id: Name
    policy_version: NonNegInt
    inflight: NonNegInt = 0
    buffered: NonNegInt = 0
    sent_at: float = 0.0
    metrics: dict[str, float] = {}
    """Cumulative counters since the actor started (reward pool verdicts, timeouts, worker
    restarts, tokens, groups); the learner takes per-step differences."""


class Shutdown(_Msg, tag="shutdown"):
    """Learner -> actors: finish or drop in-flight work and exit cleanly."""

    reason: str = ""


Message = Union[  # noqa: UP007 (msgspec needs a real Union of tagged structs)
    Register, Welcome, WorkRequest, Work, RolloutGroup, Ack, WeightsReady, WeightsLoaded,
    WeightsPull, Heartbeat, Shutdown,
]
MESSAGE_TYPES: tuple[type[_Msg], ...] = Message.__args__  # type: ignore[attr-defined]
KINDS = frozenset(t.__struct_config__.tag for t in MESSAGE_TYPES)


class _Envelope(msgspec.Struct):
    """Just enough of a frame to explain why the full decode failed."""

    kind: object = None
    v: object = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)
_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)


def encode(msg: Message) -> bytes:
    """Serialise a message into one msgpack frame."""
    return _encoder.encode(msg)


def decode(frame: bytes | memoryview, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Parse and check one frame. Raises `WireError` with the reason for any bad frame."""
    if len(frame) > max_bytes:
        raise WireError(f"frame of {len(frame)} bytes exceeds the limit of {max_bytes}", "size")
    try:
        msg = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise WireError(*_explain(frame, str(exc))) from None
    except msgspec.DecodeError as exc:
        raise WireError(f"not a msgpack frame: {exc}", "syntax") from None
    except UnicodeDecodeError as exc:
        # msgspec raises this (not DecodeError) for invalid UTF-8 in a tag or key.
        raise WireError(f"invalid UTF-8 in frame: {exc.reason} at byte {exc.start}",
                        "syntax") from None
    if msg.v != SCHEMA_VERSION:
        raise WireError(f"schema version {msg.v} of {type(msg).__name__} is not {SCHEMA_VERSION}",
                        "version")
    _check_arrays(msg)
    return msg


def _explain(frame: bytes | memoryview, detail: str) -> tuple[str, RejectKind]:
    """Turn a validation failure into a reason (and its kind) that leads with kind/version
    problems."""
    try:
        env = _envelope_decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return f"invalid message: {detail}", "field"
    if env.kind is None:
        return "message has no 'kind'", "kind"
    if not isinstance(env.kind, str) or env.kind not in KINDS:
        return f"unknown message kind {env.kind!r}", "kind"
    if env.v != SCHEMA_VERSION:
        return f"schema version {env.v!r} of {env.kind!r} is not {SCHEMA_VERSION}", "version"
    return f"invalid {env.kind!r} message: {detail}", "field"


def _check_arrays(msg: Message) -> None:
    if isinstance(msg, Work):
        for i, item in enumerate(msg.items):
            if (item.prompt is None) == (item.prompt_ids is None):
                raise WireError(f"work.items[{i}]: exactly one of prompt, prompt_ids is required")
            for name in ("prompt_ids", "prefix_ids"):
                arr = getattr(item, name)
                if arr is not None:
                    arr.check(f"work.items[{i}].{name}", "int")
    elif isinstance(msg, RolloutGroup):
        msg.prompt_ids.check("rollout_group.prompt_ids", "int")
        msg.prefix_ids.check("rollout_group.prefix_ids", "int")
        if msg.prefix_len != msg.prefix_ids.numpy().size:
            raise WireError(
                f"rollout_group.prefix_len: {msg.prefix_len} but prefix_ids has "
                f"{msg.prefix_ids.numpy().size} tokens"
            )
        for i, comp in enumerate(msg.completions):
            where = f"rollout_group.completions[{i}]"
            comp.token_ids.check(f"{where}.token_ids", "int")
            comp.logprobs.check(f"{where}.logprobs", "float")
            if not math.isfinite(comp.reward):
                raise WireError(f"{where}.reward: expected a finite number, got {comp.reward}")
            if not np.isfinite(comp.logprobs.numpy()).all():
                raise WireError(f"{where}.logprobs: contains NaN or infinite values")
            if comp.token_ids.numpy().shape != comp.logprobs.numpy().shape:
                raise WireError(
                    f"{where}: {comp.token_ids.shape} token ids but {comp.logprobs.shape} logprobs"
                )
    elif isinstance(msg, Welcome) and msg.weights is not None and msg.weights.v != SCHEMA_VERSION:
        raise WireError(f"welcome.weights: schema version {msg.weights.v} is not {SCHEMA_VERSION}",
                        "version")
