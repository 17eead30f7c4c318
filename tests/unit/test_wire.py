"""Wire messages: every kind round-trips, every bad frame raises `WireError` with a reason."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lppo.core import wire
from lppo.core.wire import (
    Ack,
    Array,
    Completion,
    Heartbeat,
    Register,
    RolloutGroup,
    Shutdown,
    WeightsLoaded,
    WeightsPull,
    WeightsReady,
    Welcome,
    WireError,
    Work,
    WorkItem,
    WorkRequest,
    decode,
    encode,
)

SHA = "ab" * 32


def _group(**changes) -> RolloutGroup:
    comp = Completion(
        token_ids=Array.of([5, 6, 7], "int32"), logprobs=Array.of([-0.1, -0.2, -0.3], "float32"),
        text="The answer is \\boxed{12}", finish_reason="stop", reward=1.0, verdict="correct",
    )
    fields = dict(
        attempt_id="a-1", sample_id=3, actor_id="actor-0", policy_version=2,
        prompt_ids=Array.of([1, 2, 3, 4], "int32"), prefix_ids=Array.of([9, 9], "int32"),
        prefix_ratio=0.5, prefix_len=2, completions=[comp, comp], gen_seconds=0.25,
    )
    fields.update(changes)
    return RolloutGroup(**fields)


EXAMPLES = [
    Register(actor_id="actor-0", engine="vllm", capacity=32),
    Welcome(epoch="e1", policy_version=3,
            weights=WeightsReady(version=3, uri="file:///w/v3", sha256=SHA)),
    Welcome(epoch="e2", policy_version=0),
    Ack(attempt_ids=["a-1", "a-2"]),
    Ack(),
    WorkRequest(actor_id="actor-0", slots=4),
    Work(
        items=[
            WorkItem(attempt_id="a-1", sample_id=1, prompt="What is 2+2?", n=8, answer="4"),
            WorkItem(
                attempt_id="a-2", sample_id=2, prompt_ids=Array.of([1, 2], "int64"),
                prefix_ids=Array.of([3], "int64"), prefix_ratio=0.5, n=4, answer="\\frac{1}{2}",
            ),
        ],
        policy_version=7,
    ),
    Work(items=[], policy_version=0),
    _group(),
    WeightsReady(version=4, uri="file:///runs/x/weights/v4/model.safetensors", sha256=SHA),
    WeightsLoaded(actor_id="actor-0", version=4, ok=False, reason="sha256 mismatch"),
    WeightsPull(actor_id="actor-0", key="actor-0/3f2a/1", world_size=2),
    Heartbeat(actor_id="actor-0", policy_version=4, inflight=3, buffered=0, sent_at=1.5),
    Shutdown(reason="done"),
]


def test_examples_cover_every_kind():
    assert {type(m) for m in EXAMPLES} == set(wire.MESSAGE_TYPES)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    frame = encode(msg)
    assert decode(frame) == msg
    raw = msgspec.msgpack.decode(frame)
    assert raw["kind"] == msg.__struct_config__.tag and raw["v"] == wire.SCHEMA_VERSION


def test_arrays_are_raw_little_endian_bytes():
    arr = Array.of(np.array([[1, 2], [3, 4]]), "int32")
    assert arr.shape == [2, 2] and arr.data == np.array([1, 2, 3, 4], "<i4").tobytes()
    assert arr.numpy().tolist() == [[1, 2], [3, 4]]
    assert not arr.numpy().flags.writeable


def _raw(msg) -> dict:
    return msgspec.msgpack.decode(encode(msg))


def _reject(raw_or_bytes, match: str) -> None:
    frame = raw_or_bytes if isinstance(raw_or_bytes, bytes) else msgspec.msgpack.encode(raw_or_bytes)
    with pytest.raises(WireError, match=match):
        decode(frame)


def test_rejects_oversized_before_decoding():
    frame = encode(Shutdown(reason="x" * 2000))
    with pytest.raises(WireError, match="exceeds the limit of 1000"):
        decode(frame, max_bytes=1000)


@pytest.mark.parametrize("frame", [b"", b"\xc1", encode(_group())[:-5], b"\x92\x01"])
def test_rejects_garbage_and_truncation(frame):
    with pytest.raises(WireError):
        decode(frame)


def test_rejects_unknown_kind_bad_version_and_fields():
    _reject({"kind": "exec", "v": 1}, "unknown message kind 'exec'")
    _reject({"v": 1, "actor_id": "a"}, "has no 'kind'")
    _reject({**_raw(Heartbeat(actor_id="a", policy_version=0)), "v": 2}, "schema version 2")
    _reject({"kind": "heartbeat", "v": 1}, "missing required field `actor_id`")
    _reject({**_raw(Shutdown()), "extra": 1}, "unknown field `extra`")
    _reject({**_raw(WorkRequest(actor_id="a", slots=1)), "slots": 0}, "invalid 'work_request'")
    _reject({**_raw(WorkRequest(actor_id="a", slots=1)), "slots": "many"}, "Expected `int`")
    _reject({**_raw(WeightsReady(version=1, uri="u", sha256=SHA)), "sha256": "nothex"}, "sha256")
    _reject([1, 2, 3], "invalid message")


def test_rejects_inconsistent_arrays():
    bad_len = _raw(_group())
    bad_len["prompt_ids"]["data"] = bad_len["prompt_ids"]["data"][:-1]
    _reject(bad_len, "needs 16 bytes, got 15")
    bad_dtype = _raw(_group())
    bad_dtype["prompt_ids"]["dtype"] = "object"
    _reject(bad_dtype, "dtype")
    _reject(_raw(_group(prefix_len=5)), "prefix_len: 5 but prefix_ids has 2 tokens")
    float_ids = _raw(_group(prompt_ids=Array.of([1.0], "float32")))
    _reject(float_ids, "expected an int array")
    matrix = _raw(_group(prompt_ids=Array.of([[1, 2]], "int32")))
    _reject(matrix, "expected 1 dimension")


def test_rejects_mismatched_completion_and_non_finite_values():
    comp = _group().completions[0]
    short = msgspec.structs.replace(comp, logprobs=Array.of([-0.1], "float32"))
    _reject(_raw(_group(completions=[short])), r"completions\[0\]: \[3\] token ids but \[1\]")
    nan = msgspec.structs.replace(comp, reward=math.nan)
    _reject(_raw(_group(completions=[nan])), "reward: expected a finite number")
    inf = msgspec.structs.replace(comp, logprobs=Array.of([-0.1, -np.inf, 0], "float32"))
    _reject(_raw(_group(completions=[inf])), "NaN or infinite")
    _reject(_raw(_group(completions=[msgspec.structs.replace(comp, verdict="maybe")])), "verdict")


def test_work_item_needs_exactly_one_prompt_form():
    both = WorkItem(attempt_id="a", sample_id=0, prompt="p", prompt_ids=Array.of([1], "int32"),
                    n=2, answer="1")
    neither = WorkItem(attempt_id="a", sample_id=0, n=2, answer="1")
    for item in (both, neither):
        _reject(_raw(Work(items=[item], policy_version=0)), "exactly one of prompt, prompt_ids")


# -- property-based: nothing but WireError ever escapes decode -------------------------------

VALID_FRAMES = [encode(m) for m in EXAMPLES]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_are_rejected_cleanly(frame):
    try:
        decode(frame)
    except WireError as exc:
        assert exc.reason


@st.composite
def mutated_frames(draw):
    frame = bytearray(draw(st.sampled_from(VALID_FRAMES)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del frame[pos:]
        elif op == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and frame:
            del frame[pos]
    return bytes(frame)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_frames())
def test_mutated_frames_decode_to_a_valid_message_or_are_rejected(frame):
    try:
        msg = decode(frame)
    except WireError as exc:
        assert exc.reason
        return
    # A mutation that still decodes must give a message that re-encodes and passes the checks.
    assert decode(encode(msg)) == msg


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(wire.KINDS)),
    st.dictionaries(st.sampled_from(["actor_id", "slots", "items", "version", "uri", "sha256",
                                     "completions", "prompt_ids", "capacity", "engine", "v"]),
                    msgpack_values, max_size=6),
)
def test_random_structured_messages_are_rejected_or_valid(kind, fields):
    frame = msgspec.msgpack.encode({"kind": kind, "v": 1, **fields})
    try:
        msg = decode(frame)
    except WireError:
        return
    assert msg.__struct_config__.tag == kind


@settings(max_examples=500, deadline=None)
@given(st.one_of(msgpack_values, st.sampled_from(sorted(wire.KINDS))), msgpack_values,
       st.dictionaries(st.text(max_size=10), msgpack_values, max_size=4))
def test_any_envelope_values_are_rejected_cleanly(kind, version, extra):
    """`kind` and `v` of any type (lists, maps, bytes...) never escape as another error."""
    frame = msgspec.msgpack.encode({**extra, "kind": kind, "v": version})
    try:
        decode(frame)
    except WireError as exc:
        assert exc.reason


def test_each_rejection_says_its_kind():
    """The receivers count rejected frames by `WireError.kind`, never by their wording."""
    bad_len = _raw(_group())
    bad_len["prompt_ids"]["data"] = bad_len["prompt_ids"]["data"][:-1]
    cases = [
        (encode(Shutdown(reason="x" * 2000)), "size"),
        (b"\xc1", "syntax"),
        (msgspec.msgpack.encode({"kind": "exec", "v": 1}), "kind"),
        (msgspec.msgpack.encode({"v": 1, "actor_id": "a"}), "kind"),
        (msgspec.msgpack.encode({**_raw(Heartbeat(actor_id="a", policy_version=0)), "v": 2}),
         "version"),
        (msgspec.msgpack.encode(bad_len), "array"),
        (msgspec.msgpack.encode(_raw(_group(prompt_ids=Array.of([[1, 2]], "int32")))), "array"),
        (msgspec.msgpack.encode({"kind": "heartbeat", "v": 1}), "field"),
    ]
    for frame, kind in cases:
        with pytest.raises(WireError) as info:
            decode(frame, max_bytes=1000)
        assert info.value.kind == kind, (info.value.reason, kind)
